"""Candidate law forms on the vLLM profiles: cross-validated within the sparse halves, reported on the held-out halves.

Wider than bench/calibrate_prior.py part A0, which scores only the forms the planner's consumers
(planner.simulate.steptime, planner.planning.capacity) can evaluate: here also forms that would need new
consumer code, to show what each buys. Every form is fitted the same way: ``scipy.optimize.
least_squares`` on relative residuals, coefficients >= 0, several starts, best kept.

Decode (b = batch, c = context, s = share of MoE experts the batch touches, 0 for dense):
  linear        alpha + beta*b + gamma*b*c + moe*s                              (today's law)
  knee@ridge    linear + kappa*max(0, b - ridge)   ridge = planner.perf.prior.ridge_batch (catalog)
  knee@128      linear + kappa*max(0, b - min(ridge, 128))   the planner's since rule K5 (stop 38; laws.KNEE128_BATCH)
  quadratic     linear + q*b^2
  roofline-max  alpha + beta*b + max(w + gamma*b*c + moe*s, k*b)   (memory vs compute of GEMMs)
Prefill (T = b*isl, S2 = b*isl^2):
  linear        a + beta*T + c*S2
  per-seq       linear + d*b
  floor         a + max(f, beta*T + c*S2),   f <= the profile's decode step at batch 1
  floor+per-seq floor + d*b
  chunk-steps   a*ceil(T/8192) + beta*T + c*S2        (vLLM's token budget splits long batches)

Split: the checkerboard of planner.perf.heldout (rank(x) + rank(y) even = sparse half), a fixed rule.
"CV" = leave-one-out within the sparse half only (what may choose a form); "held-out" = the other
half (what reports it). Prefill rows are fitted as measured (ttft_ms; the MoE profile's rows are
client TTFTs, its overhead lands in the intercept). Deterministic: one run.

Usage: .venv/bin/python bench/law_forms.py [--profiles DIR]
Last line: RESULT <phase>_<form>_cv_p90_pct=... <phase>_<form>_heldout_p90_pct=... per form
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy.optimize import least_squares

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))
from bench_input import fail, refused_as_input  # noqa: E402
from planner.io.catalog import Catalog  # noqa: E402
from planner.perf.laws import DEFAULT_PROFILES_DIR, KNEE128_BATCH, model_of, route_share  # noqa: E402
from planner.perf.fit import experts_touched  # noqa: E402
from planner.perf.heldout import _points, checkerboard, label  # noqa: E402
from planner.perf.floor import physical_profiles  # noqa: E402
from planner.perf.profiledata import iter_profiles, law_source  # noqa: E402
from planner.perf.prior import ridge_batch  # noqa: E402

Arr = np.ndarray
TOKEN_BUDGET = 8192  # vLLM's --max-num-batched-tokens of every committed vLLM profile (meta.yaml)


def d_linear(x: Arr, b: Arr, c: Arr, s: Arr, knee: float) -> Arr:
    return x[0] + x[1] * b + x[2] * b * c + x[3] * s


def d_knee(x: Arr, b: Arr, c: Arr, s: Arr, knee: float) -> Arr:
    return d_linear(x, b, c, s, knee) + x[4] * np.maximum(0.0, b - knee)


def d_quad(x: Arr, b: Arr, c: Arr, s: Arr, knee: float) -> Arr:
    return d_linear(x, b, c, s, knee) + x[4] * b * b


def d_max(x: Arr, b: Arr, c: Arr, s: Arr, knee: float) -> Arr:
    return x[0] + x[1] * b + np.maximum(x[4] + x[2] * b * c + x[3] * s, x[5] * b)


def p_linear(x: Arr, isl: Arr, b: Arr) -> Arr:
    return x[0] + x[1] * b * isl + x[2] * b * isl * isl


def p_seq(x: Arr, isl: Arr, b: Arr) -> Arr:
    return p_linear(x, isl, b) + x[3] * b


def p_floor(x: Arr, isl: Arr, b: Arr) -> Arr:
    return x[0] + np.maximum(x[3], x[1] * b * isl + x[2] * b * isl * isl)


def p_floor_seq(x: Arr, isl: Arr, b: Arr) -> Arr:
    return p_floor(x, isl, b) + x[4] * b


def p_chunk(x: Arr, isl: Arr, b: Arr) -> Arr:
    return x[0] * np.ceil(b * isl / TOKEN_BUDGET) + x[1] * b * isl + x[2] * b * isl * isl


def d_knee128(x: Arr, b: Arr, c: Arr, s: Arr, knee: float) -> Arr:
    return d_knee(x, b, c, s, min(knee, KNEE128_BATCH))


DECODE: dict[str, tuple[Callable[..., Arr], int]] = {
    "linear": (d_linear, 4), "knee@ridge": (d_knee, 5), "knee@128": (d_knee128, 5), "quadratic": (d_quad, 5),
    "roofline-max": (d_max, 6)}
PREFILL: dict[str, tuple[Callable[..., Arr], int]] = {
    "linear": (p_linear, 3), "per-seq": (p_seq, 4), "floor": (p_floor, 4), "floor+per-seq": (p_floor_seq, 5),
    "chunk-steps": (p_chunk, 3)}
FLOORED = {p_floor, p_floor_seq}


def fit(f: Callable[..., Arr], n: int, args: tuple, y: Arr, floor_max: float) -> Arr:
    """Non-negative least squares on relative residuals; starts over a small grid, best kept."""
    def resid(x: Arr) -> Arr:
        return (f(x, *args) - y) / y

    hi = np.full(n, np.inf)
    if f in FLOORED:
        hi[3] = floor_max
    best = None
    for a0, e0 in itertools.product((0.1, 0.5, 0.9), (0.0, 0.3, 0.7, 1.0)):
        x0 = np.full(n, 1e-6)
        x0[0] = y.min() * a0
        if n > 3:
            x0[3] = min(y.min() * e0, 0.999 * hi[3]) if f in FLOORED else 1e-6
        if f is d_max:
            x0[4], x0[5] = y.min() * e0, e0 * y.max() / 256.0
        sol = least_squares(resid, x0, bounds=(np.zeros(n), hi), x_scale="jac", max_nfev=5000)
        if best is None or sol.cost < best.cost:
            best = sol
    return best.x


def rel(f: Callable[..., Arr], x: Arr, args: tuple, y: Arr) -> Arr:
    return np.abs(f(x, *args) - y) / y


def score(f: Callable[..., Arr], n: int, args: tuple, y: Arr, mask: Arr, floor_max: float) -> tuple[Arr, Arr]:
    """(LOO errors within the masked half, errors on the other half of a fit on the masked half)."""
    take = lambda m: tuple(a[m] if isinstance(a, np.ndarray) else a for a in args)  # noqa: E731
    x = fit(f, n, take(mask), y[mask], floor_max)
    held = rel(f, x, take(~mask), y[~mask])
    cv = []
    for i in np.where(mask)[0]:
        keep = mask.copy()
        keep[i] = False
        one = np.zeros_like(mask)
        one[i] = True
        xi = fit(f, n, take(keep), y[keep], floor_max)
        cv.append(rel(f, xi, take(one), y[one])[0])
    return np.array(cv), held


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", type=Path, default=DEFAULT_PROFILES_DIR, help="profile root (default: profiles/data)")
    args = ap.parse_args(argv)
    console = Console(width=150)
    # on stderr with 'error:' and the flag, as the other benches (found in QA: these two went to stdout), and a bad
    # meta.yaml under --profiles refused, not a traceback
    if not args.profiles.is_dir():
        fail(f"--profiles {args.profiles}: profile root directory not found")
    with refused_as_input("--profiles: "):
        cat = Catalog.load()
        found = list(iter_profiles(args.profiles))
    # the profiles the planner fits: one faster than its roofline floor is left out (rule V1, planner/perf/floor.py)
    profiles = [p for p in physical_profiles(found, cat)[0] if law_source(p.meta) == "measured-vllm"]
    if not profiles:
        fail(f"--profiles {args.profiles}: expected a profile root with vLLM-measured profiles "
             "(<model>/<gpu>/tp<N>/vllm/meta.yaml, backend: vllm); it holds none")
    out: dict[tuple[str, str], list[tuple[str, Arr, Arr]]] = {}
    for p in profiles:
        pre, dec = _points(p)
        mp, md = checkerboard(pre, "isl", "batch"), checkerboard(dec, "batch", "context_tokens")
        m = model_of(cat, p.meta.model, p.meta.weight_dtype, p.meta.kv_dtype)
        knee, share = ridge_batch(m, cat.gpu(p.meta.gpu)), route_share(m)
        b, c, y = (dec[k].to_numpy(float) for k in ("batch", "context_tokens", "itl_ms"))
        s = np.asarray(experts_touched(b, share), dtype=float)
        floor_max = float(dec.itl_ms[dec.batch == dec.batch.min()].min())
        for name, (f, n) in DECODE.items():
            cv, held = score(f, n, (b, c, s, knee), y, md, floor_max)
            out.setdefault(("decode", name), []).append((label(p), cv, held))
        isl, pb, t = (pre[k].to_numpy(float) for k in ("isl", "batch", "ttft_ms"))
        for name, (f, n) in PREFILL.items():
            cv, held = score(f, n, (isl, pb), t, mp, floor_max)
            out.setdefault(("prefill", name), []).append((label(p), cv, held))
    short = [label(p).split(" ")[0].replace("/H200-141GB/tp1", "") for p in profiles]
    t = Table(title=f"law forms on {len(profiles)} vLLM profiles: CV within the sparse halves (chooses) | "
                    "held-out halves (reports); pooled |rel err| %")
    cols = ("phase", "form", "CV median", "CV p90", "held-out median", "held-out p90", *[f"p90 {s}" for s in short])
    for col in cols:
        t.add_column(col, justify="left" if col in ("phase", "form") else "right")
    result = []
    for (phase, name), rows in out.items():
        cv = np.concatenate([r[1] for r in rows])
        held = np.concatenate([r[2] for r in rows])
        t.add_row(phase, name, f"{100 * np.median(cv):.1f}", f"{100 * np.percentile(cv, 90):.1f}",
                  f"{100 * np.median(held):.1f}", f"{100 * np.percentile(held, 90):.1f}",
                  *[f"{100 * np.percentile(r[2], 90):.0f}" for r in rows])
        key = f"{phase}_{name.replace('@', '_').replace('+', '_').replace('-', '_')}"
        result.append(f"{key}_cv_p90_pct={100 * np.percentile(cv, 90):.1f} "
                      f"{key}_heldout_p90_pct={100 * np.percentile(held, 90):.1f}")
    console.print(t)
    n_pre = sum(len(_points(p)[0]) for p in profiles)
    n_dec = sum(len(_points(p)[1]) for p in profiles)
    console.print(f"{n_pre} prefill and {n_dec} decode grid points in all; half of each profile's in the sparse half")
    print("RESULT " + " ".join(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
