"""Real vLLM's own decode step time at each batch of a decode sweep, against the client's and the laws' (rule K4).

    .venv/bin/python bench/decode_steps.py --run ITER=PROFILE_DIR [--without-batch 256] [--run ...]

ITER is the ``iterations.csv.gz`` (or the server log) of a ``planner profile --backend vllm --log-iterations`` run
whose sweep measured decode points (``decode.csv`` beside it: the client's steady-state time per token at each
(batch, context)); PROFILE_DIR is the profile the laws are fitted on, ``--without-batch`` leaving out its decode rows
of those batches (the points the check is about must not be in the fit).

Why (plan s22, rule K4, written at stop 37 before its run): every bundled llama-3.1-8b profile that measured batch
256 x context 512 (H200 bf16 and FP8, H100 FP8) steps 2.4-2.6x slower there than at batch 128, where the bytes a
step reads grow 1.5x. The client stamps 256 streams' chunks; a frontend that falls behind them looks the same as a
slower engine. The engine's per-step log tells them apart, but its ``elapsed_ms`` is not a step's duration
(profiles/iterations.py), and its timestamps have a resolution of one second. So, as bench/step_composition.py does
for mixed steps: a second in which every logged step decoded the same batch with no prompt token, as did the seconds
before and after it, had the engine stepping that batch throughout, and its N steps took 1,000 ms: the engine's step
is 1,000 / N ms (one step cut by each edge of the second: +-1 step in N, 2% at 50 steps).

K4: if the engine's step at batch 256 is within 15% of the laws', the jump is the frontend's (the profiler should
take decode points past batch 128 from the engine's steps); else the laws need a term for it.

Last line: ``RESULT runs=<n> batches=<batches with pure-decode seconds> seconds=<their number>
engine_vs_laws_pct_b<batch>=<signed, each batch> client_vs_engine_pct_b<batch>=<signed> k4=frontend|engine|none``
(``none``: no pure-decode second at batch 256). Deterministic: one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from planner.io.catalog import Catalog  # noqa: E402
from planner.io.errors import InputError  # noqa: E402
from planner.perf.laws import fit_profile  # noqa: E402
from planner.perf.profiledata import load_profile  # noqa: E402
from profiles.iterations import read_iterations  # noqa: E402

BUSY_MS = 1000.0  # one second of steps
K4_BATCH = 256
K4_TOLERANCE_PCT = 15.0  # rule K4: the engine's step within this of the laws' means the jump is the frontend's


def pure_decode_seconds(it: pd.DataFrame) -> pd.DataFrame:
    """The seconds in which every logged step decoded one batch with no prompt token, as did the seconds just before
    and after (the engine stepping that batch for the whole second). Columns: second, batch, steps, step_ms."""
    t = pd.to_datetime(it["second"], format="%m-%d %H:%M:%S")
    g = it.assign(t=t).groupby("t", sort=True).agg(steps=("iteration", "size"), ctx=("ctx_tokens", "max"),
                                                     bmin=("gen_requests", "min"), bmax=("gen_requests", "max"))
    pure = (g.ctx == 0) & (g.bmin == g.bmax) & (g.bmin > 0)
    idx = g.index.to_series()
    one_s = pd.Timedelta(seconds=1)
    prev_ok = (idx.diff() == one_s) & pure.shift(1, fill_value=False) & (g.bmin.shift(1) == g.bmin)
    next_ok = (idx.diff(-1) == -one_s) & pure.shift(-1, fill_value=False) & (g.bmin.shift(-1) == g.bmin)
    keep = g[pure & prev_ok & next_ok]
    return pd.DataFrame({"second": keep.index, "batch": keep.bmin.to_numpy(), "steps": keep.steps.to_numpy(),
                         "step_ms": BUSY_MS / keep.steps.to_numpy()})


def client_itl_ms(decode_csv: Path) -> dict[int, tuple[float, int]]:
    """{batch: (the client's median time per token, its context)} of a sweep's decode.csv; a batch measured at
    several contexts takes the smallest (the seconds cannot tell contexts apart; the sweep of rule K4 has one)."""
    df = pd.read_csv(decode_csv)
    out: dict[int, tuple[float, int]] = {}
    for b, rows in df.groupby("batch"):
        r = rows.sort_values("context_tokens").iloc[0]
        out[int(b)] = (float(r.itl_ms), int(r.context_tokens))
    return out


def k4_verdict(engine_ms: float | None, laws_ms: float) -> str:
    """Rule K4 at batch 256: "frontend" where the engine's step is within K4_TOLERANCE_PCT of the laws', else
    "engine"; "none" without an engine figure."""
    if engine_ms is None:
        return "none"
    return "frontend" if abs(engine_ms / laws_ms - 1.0) * 100 <= K4_TOLERANCE_PCT else "engine"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", required=True, metavar="ITER=PROFILE_DIR",
                    help="a decode sweep's iterations.csv.gz (decode.csv beside it) and the profile the laws are fitted on")
    ap.add_argument("--without-batch", default="", help="comma list of decode batches left out of the laws' fit")
    a = ap.parse_args(argv)
    con = Console(width=160)
    try:
        drop = {int(x) for x in a.without_batch.split(",") if x.strip()}
    except ValueError:
        print(f"--without-batch {a.without_batch!r}: expected a comma list of integers", file=sys.stderr)
        return 2
    cat = Catalog.load()
    runs = []
    for spec in a.run:  # every input checked before any work
        it_path, sep, prof = spec.partition("=")
        it, pdir = Path(it_path), Path(prof)
        if not sep or not it.is_file() or not (it.parent / "decode.csv").is_file() or not pdir.is_dir():
            print(f"--run {spec}: expected ITER=PROFILE_DIR with ITER a file, decode.csv beside it and PROFILE_DIR a "
                  "profile folder", file=sys.stderr)
            return 2
        try:
            runs.append((it, read_iterations(it), client_itl_ms(it.parent / "decode.csv"), load_profile(pdir)))
        except (ValueError, InputError, KeyError) as exc:
            print(f"--run {spec}: {exc}", file=sys.stderr)
            return 2
    fields: dict[str, str] = {}
    n_sec, batches, k4 = 0, set(), "none"
    for it_path, it, client, prof in runs:
        prof = dataclasses.replace(prof, decode=prof.decode[~prof.decode.batch.isin(drop)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # extrapolation past the fitted batches is the question
            perf = fit_profile(prof, cat)[0]
        sec = pure_decode_seconds(it)
        tab = Table(title=f"{it_path}: the engine's pure-decode seconds against the client's time per token and the laws "
                          f"of {prof.path}{' without batch ' + a.without_batch if drop else ''}")
        for c in ("batch", "context", "seconds", "engine step ms", "client ms", "laws ms", "engine vs laws %",
                  "client vs engine %"):
            tab.add_column(c, justify="right")
        for b, rows in sec.groupby("batch"):
            b = int(b)
            if b not in client:
                continue
            c_ms, ctx = client[b]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                law = perf.decode_step_ms(float(b), float(ctx))
            eng = float(np.median(rows.step_ms))
            ev, ce = 100 * (eng / law - 1), 100 * (c_ms / eng - 1)
            tab.add_row(str(b), str(ctx), str(len(rows)), f"{eng:.2f}", f"{c_ms:.2f}", f"{law:.2f}", f"{ev:+.1f}", f"{ce:+.1f}")
            fields[f"engine_vs_laws_pct_b{b}"], fields[f"client_vs_engine_pct_b{b}"] = f"{ev:+.1f}", f"{ce:+.1f}"
            n_sec += len(rows)
            batches.add(b)
            if b == K4_BATCH:
                k4 = k4_verdict(eng, law)
        con.print(tab)
    con.print(f"Rule K4 at batch {K4_BATCH}: {k4} (frontend: the engine steps within {K4_TOLERANCE_PCT:g}% of the laws, "
              "the client's jump is not the engine's; engine: the engine's own step is off the laws)")
    print(f"RESULT runs={len(runs)} batches={len(batches)} seconds={n_sec} "
          + " ".join(f"{k}={v}" for k, v in fields.items()) + f" k4={k4}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
