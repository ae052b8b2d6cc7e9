"""The mixed closed form against the steady-state simulator, off the measured points, split by model kind.

    .venv/bin/python bench/mixed_grid.py [--isl 4096] [--osl 128] [--loads 0.5,0.7,0.85] [--models M,...]

Each swept vLLM profile's laws (the sweeps bench/vllm_under_load.py reads; fitted as it fits them) at every
`--isl` x `--osl` x `--loads` (shares of the model's own saturation rate): the closed form's TTFT and ITL p90
(planner.planning.capacity.mixed_latency) against the steady simulator's (vllm_under_load.steady_sim_p90), signed
error per point. Dense and MoE profiles are reported apart: the MoE rows carry a known separate difference (the
closed form's prompt work is the law's; the simulator's mixed steps add part of the measured token table).
This is where stop 34's rule R3 (capacity.py module doc, Mixed: the prompts queued behind a request in its life)
was chosen and reported: tuning `--isl 4096`, held out `--isl 6144,12288`; the short grid `--isl 512,2048 --osl
128,256 --loads 0.3,0.5,0.7,0.85` (vllm_under_load's GRID_*).
Last line: RESULT dense_ttft_p90_mape_pct=... dense_itl_p90_mape_pct=... moe_... all_ttft_p90_mape_pct=...
all_itl_p90_mape_pct=... all_ttft_p90_bias_pct=... all_itl_p90_bias_pct=... points=...
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vllm_under_load as vul  # noqa: E402
from bench_input import fail, known_model  # noqa: E402

from planner.io.catalog import Catalog  # noqa: E402
from planner.perf.laws import VariantPerf, fit_profile  # noqa: E402
from planner.perf.profiledata import load_profile  # noqa: E402


def swept_laws(models: set[str] | None = None) -> list[VariantPerf]:
    """Each swept profile's laws once, in sweep order (as bench/vllm_under_load.py fits them)."""
    vul.use_byo_catalog_unless_set()
    catalog = Catalog.load()
    fitted: dict[Path, VariantPerf] = {}
    for _, prof in vul.default_sweeps():
        if prof.resolve() in fitted:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vp = fit_profile(load_profile(prof), catalog)[0]
        if models is None or vp.model in models:
            fitted[prof.resolve()] = vp
    return list(fitted.values())


def is_moe(vp: VariantPerf, catalog: Catalog) -> bool:
    """An MoE model by the catalog (its `moe` spec: experts and experts per token)."""
    return catalog.model(vp.model).moe is not None


def _parse(text: str, kind: type, flag: str) -> tuple:
    """A comma list of `kind`, or exit 2 naming `flag` (found in QA: `--isl abc` said "expected comma-separated
    numbers, got 'abc'", naming no flag)."""
    try:
        return tuple(kind(x) for x in text.split(",") if x.strip())
    except ValueError:
        fail(f"{flag}: expected comma-separated numbers, got '{text}'")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--isl", default="4096", help="comma-separated prompt lengths, tokens")
    ap.add_argument("--osl", default="128", help="comma-separated output lengths, tokens")
    ap.add_argument("--loads", default="0.5,0.7,0.85",
                    help="comma-separated shares of the model's saturation rate, in (0, 1)")
    ap.add_argument("--models", default=None, help="comma-separated models (default: every swept profile)")
    a = ap.parse_args(argv)
    isls, osls, loads = _parse(a.isl, int, "--isl"), _parse(a.osl, int, "--osl"), _parse(a.loads, float, "--loads")
    if not all(0.0 < x < 1.0 for x in loads) or min(isls + osls, default=0) < 1 or not (isls and osls and loads):
        fail(f"expected --loads shares of saturation in (0, 1) and --isl / --osl whole numbers >= 1, got --loads "
             f"{a.loads} --isl {a.isl} --osl {a.osl}")
    catalog = Catalog.load()
    # the catalog's models in any case, an unknown one named before the profiles are fitted (found in QA: --models
    # LLAMA-3.1-8B was "no swept profile", the profiles' names compared as typed)
    models = {known_model(catalog, m.strip(), "--models") for m in a.models.split(",") if m.strip()} if a.models else None
    laws = swept_laws(models)
    if not laws:
        print(f"--models: no swept profile of {sorted(models or [])}", file=sys.stderr)
        return 2
    con = Console(width=160)
    t = Table(title=f"Mixed closed form vs steady simulator, p90 signed error % (ISL {isls}, OSL {osls}, loads {loads})")
    for c in ("profile", "kind", "TTFT", "ITL"):
        t.add_column(c, justify="left" if c in ("profile", "kind") else "right")
    err: dict[tuple[str, str], list[float]] = {(g, k): [] for g in ("dense", "moe") for k in ("ttft", "itl")}
    for vp in laws:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = vul.grid_errors(vp, isls, osls, loads)
        kind = "moe" if is_moe(vp, catalog) else "dense"
        for k in ("ttft", "itl"):
            err[(kind, k)].extend(g[k])
        t.add_row(f"{vp.model}/{vp.gpu}/tp{vp.tp}{vp.precision}", kind, " ".join(f"{x:+.1f}" for x in g["ttft"]),
                  " ".join(f"{x:+.1f}" for x in g["itl"]))
    con.print(t)

    def mape(xs: list[float]) -> float:
        return float(np.mean(np.abs(xs))) if xs else float("nan")

    every = {k: err[("dense", k)] + err[("moe", k)] for k in ("ttft", "itl")}
    print(f"RESULT dense_ttft_p90_mape_pct={mape(err[('dense', 'ttft')]):.2f} dense_itl_p90_mape_pct={mape(err[('dense', 'itl')]):.2f} "
          f"moe_ttft_p90_mape_pct={mape(err[('moe', 'ttft')]):.2f} moe_itl_p90_mape_pct={mape(err[('moe', 'itl')]):.2f} "
          f"all_ttft_p90_mape_pct={mape(every['ttft']):.2f} all_itl_p90_mape_pct={mape(every['itl']):.2f} "
          f"all_ttft_p90_bias_pct={float(np.mean(every['ttft'])):+.2f} all_itl_p90_bias_pct={float(np.mean(every['itl'])):+.2f} "
          f"points={len(every['ttft'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
