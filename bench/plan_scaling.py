"""How `planner solve` scales with the workload: wall seconds of the plan and of its SLO price list.

`bench/solve_scaling.py` times the ILP alone on synthetic problems; this times what a user waits for: sizing every
class on every allowed pool, the ILP with its burst fixed point, then the SLO price list (`slo_costs`: two re-plans
per SLO term, which the pool memo of planner/planning/capacity.py and the per-model answer memo of solvers/backends.py
make re-size and re-solve only the model whose SLO moved).

A size "MxC" is M bundled models (in the catalog's order) with C request classes each (seeded lengths and rates), on
`--fleet` (default: five GPU types, 64-512 GPUs each, TP 1-8, every role). `--workload W` runs that workload alone.
Each cell is the median of --repeats runs, every run from empty memos (so a cell is a user's first solve). The
memo columns count the pools sized and the per-model ILPs solved against those asked for.

    .venv/bin/python bench/plan_scaling.py                      # sizes 1x12,3x12,7x12
    .venv/bin/python bench/plan_scaling.py --sizes 2x6 --repeats 1
    .venv/bin/python bench/plan_scaling.py --workload examples/default/workload.yaml --fleet examples/default/fleet.yaml

Last line: RESULT plan_seconds=<largest> slo_prices_seconds=<largest> slo_terms=<largest> pools_sized_share=<largest>
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench_input import fail, refused_as_input  # noqa: E402
from planner.io.catalog import Catalog  # noqa: E402
from planner.io.files import load_model  # noqa: E402
from planner.io.schema import Fleet, Workload  # noqa: E402
from planner.perf.laws import PerfModel  # noqa: E402
from planner.planning import capacity  # noqa: E402
from planner.planning.assemble import plan_workload, slo_costs, slo_terms  # noqa: E402
from solvers import backends  # noqa: E402

DEFAULT_SIZES = "1x12,3x12,7x12"
# Five GPU types of the bundled catalog with inventories large enough that no size is infeasible.
DEFAULT_FLEET = {"gpus": {"H100-SXM-80GB": {"available": 512}, "A100-80GB": {"available": 256},
                          "L40S": {"available": 128}, "H200-141GB": {"available": 128}, "L4": {"available": 64}},
                 "limits": {"allowed_tp": [1, 2, 4, 8], "roles": ["prefill", "decode", "mixed"]}}
# Lengths and SLOs drawn for the synthetic classes: chat- to summarisation-like prompts (the Azure conversation
# trace's median input is ~1k tokens, ../shared/data/README.md) and the example workload's SLO range.
ISL_CHOICES = (256, 512, 1024, 2048, 3000)
OSL_CHOICES = (64, 128, 256, 512)
TTFT_MS_CHOICES = (500, 1000, 2000)
ITL_MS_CHOICES = (30, 50, 80)
RATE_RPS_RANGE = (0.5, 20.0)


def synthetic_workload(models: list[str], classes: int, seed: int) -> Workload:
    """`classes` classes of each of `models`, lengths, rates and model SLOs drawn with `seed`."""
    rng = np.random.default_rng(seed)
    wl: dict[str, object] = {
        "models": {m: {"slo": {"ttft_ms": int(rng.choice(TTFT_MS_CHOICES)), "itl_ms": int(rng.choice(ITL_MS_CHOICES)),
                               "percentile": 90}} for m in models},
        "classes": [{"id": f"{m}/c{i}", "model": m, "isl": int(rng.choice(ISL_CHOICES)), "osl": int(rng.choice(OSL_CHOICES)),
                     "rate_rps": round(float(rng.uniform(*RATE_RPS_RANGE)), 2)} for m in models for i in range(classes)]}
    return Workload.model_validate(wl)


def run_once(wl: Workload, fleet: Fleet, perf: PerfModel, catalog: Catalog) -> dict[str, float]:
    """One user's first solve from empty memos: seconds of the plan and of the SLO price list, and the memos' counts."""
    capacity._pool_class_capacities_memo.cache_clear()
    backends._GROUP_MEMO.clear()
    t0 = time.perf_counter()
    plan = plan_workload(wl, fleet, perf, catalog)
    t1 = time.perf_counter()
    if not plan.feasible:
        fail(f"the workload does not plan on the fleet: {'; '.join(plan.diagnosis)}", 3)
    slo_costs(wl, fleet, perf, catalog)
    t2 = time.perf_counter()
    info = capacity._pool_class_capacities_memo.cache_info()
    return {"plan_s": t1 - t0, "slo_s": t2 - t1, "pools_sized": info.misses, "pools_asked": info.misses + info.hits}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated MxC (bundled models x classes per model)")
    ap.add_argument("--workload", type=Path, default=None, help="run this workload alone (instead of --sizes)")
    ap.add_argument("--fleet", type=Path, default=None, help="fleet YAML (default: five GPU types, every role)")
    ap.add_argument("--repeats", type=int, default=1, help="runs per cell (median kept)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic workloads' lengths and rates")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        fail(f"--repeats: expected a whole number >= 1, got {args.repeats}")
    if args.seed < 0:  # found in QA: --seed -1 was a traceback (numpy: expected non-negative integer)
        fail(f"--seed: expected a whole number >= 0, got {args.seed}")
    with refused_as_input():
        catalog = Catalog.load()
        perf = PerfModel.load(catalog=catalog)
        fleet = load_model(Fleet, args.fleet) if args.fleet else Fleet.model_validate(DEFAULT_FLEET)
        cases: list[tuple[str, Workload]] = []
        if args.workload is not None:
            cases.append((args.workload.name, load_model(Workload, args.workload)))
        else:
            names = sorted(catalog.models)
            for size in args.sizes.split(","):
                try:
                    m, c = (int(x) for x in size.lower().split("x"))
                except ValueError:
                    fail(f"--sizes: expected MxC (e.g. 3x12), got {size!r}")
                if not 1 <= m <= len(names) or c < 1:
                    fail(f"--sizes {size}: 1 to {len(names)} bundled models and >= 1 class each")
                cases.append((f"{m}x{c}", synthetic_workload(names[:m], c, args.seed)))
    table = Table(title=f"planner solve end to end: medians of {args.repeats} run(s), each from empty memos "
                        f"(fleet: {', '.join(f'{n.available} {g}' for g, n in fleet.gpus.items())})")
    for col in ("workload", "models", "classes", "SLO terms", "plan s", "SLO price list s", "pools sized / asked"):
        table.add_column(col, justify="left" if col == "workload" else "right")
    last: dict[str, float] = {}
    for name, wl in cases:
        runs = [run_once(wl, fleet, perf, catalog) for _ in range(args.repeats)]
        last = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        last["terms"] = len(slo_terms(wl))
        table.add_row(name, str(len(wl.models)), str(len(wl.classes)), str(int(last["terms"])), f"{last['plan_s']:.1f}",
                      f"{last['slo_s']:.1f}", f"{int(last['pools_sized'])} / {int(last['pools_asked'])}")
    Console(width=140).print(table)
    share = last["pools_sized"] / max(1.0, last["pools_asked"])
    print(f"RESULT plan_seconds={last['plan_s']:.2f} slo_prices_seconds={last['slo_s']:.2f} slo_terms={int(last['terms'])} "
          f"pools_sized_share={share:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
