"""How the fleet-sizing ILP scales: seconds and gap per instance size and backend.

Instances come from `tests/solvers_synthetic.py` (seeded; capacities shaped like measured ones). A size
"MxGxT" is M models x G GPU types x T tensor-parallel sizes x 3 roles variants, with 12 request
classes per model; the largest default, 20x8x4, is 1920 variants and 240 classes.

    .venv/bin/python bench/solve_scaling.py [--sizes 1x3x1,20x8x4] [--repeats 3] [--time-limit 60]
                                            [--gap 0.01] [--backends highs,cbc,ortools] [--seed 1]
                                            [--robustness-seeds 2,3,4,5,6,7,8] [--pairing any|same_gpu]

Each cell is the median over --repeats solves of the same instance (wall seconds, model building
included). CBC or OR-Tools, once a solve runs past --time-limit, is not repeated on that size nor
tried on larger ones (said in the table); HiGHS, the measure of the RESULT line, always runs.
A second table solves the largest size once per --robustness-seeds with HiGHS and a 10 s limit
(the issue's goal: within 1% of the bound in <= 10 s) and counts the seeds that meet it.
Last line: RESULT seconds=<largest, highs> gap_pct=<largest, highs> seeds_within_goal=<k/n>.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the synthetic instances are a test fixture

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from solvers.backends import BACKENDS, solve  # noqa: E402
from solvers.formulation import build  # noqa: E402
from solvers_synthetic import synthetic_problem  # noqa: E402

DEFAULT_SIZES = "1x3x1,2x4x2,5x6x3,10x8x4,20x8x4"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated MxGxT (models x GPU types x TP sizes)")
    ap.add_argument("--repeats", type=int, default=3, help="solves per cell (median kept)")
    ap.add_argument("--time-limit", type=float, default=60.0, help="seconds per solve")
    ap.add_argument("--gap", type=float, default=0.01, help="relative MIP gap to stop at")
    ap.add_argument("--backends", default=",".join(BACKENDS),
                    help="comma-separated ILP backends (default: all of them)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the synthetic instances")
    ap.add_argument("--classes", type=int, default=12, help="request classes per model")
    ap.add_argument("--robustness-seeds", default="2,3,4,5,6,7,8",
                    help="other seeds of the largest size, each solved once by HiGHS with a 10 s limit ('' to skip)")
    ap.add_argument("--pairing", choices=("any", "same_gpu"), default="any",
                    help="same_gpu: forbid every cross-GPU-type P->D pairing (adds pair-flow variables and rows)")
    args = ap.parse_args(argv)
    try:
        sizes = [tuple(int(k) for k in s.split("x")) for s in args.sizes.split(",")]
        assert sizes and all(len(s) == 3 and min(s) >= 1 for s in sizes)
    except (ValueError, AssertionError):
        ap.error(f"--sizes: expected comma-separated MxGxT (whole numbers >= 1) like 1x3x1,20x8x4, got {args.sizes!r}")
    backends = args.backends.split(",")
    if unknown := set(backends) - set(BACKENDS):
        ap.error(f"--backends: unknown {sorted(unknown)}; choose from {BACKENDS}")
    # the numbers in their ranges before any solve (found in QA: --repeats 0 was a StatisticsError traceback, 'no
    # median for empty data', after the first instance was built; --seed -1 a numpy one)
    for flag, ok, expected, got in (
            ("--repeats", args.repeats >= 1, "a whole number >= 1", args.repeats),
            ("--time-limit", 0 < args.time_limit < math.inf, "a finite number of seconds > 0", args.time_limit),
            ("--gap", 0 <= args.gap < 1, "a relative gap in [0, 1)", args.gap),
            ("--classes", args.classes >= 1, "a whole number >= 1", args.classes),
            ("--seed", args.seed >= 0, "a whole number >= 0", args.seed)):
        if not ok:
            ap.error(f"{flag}: expected {expected}, got {got}")
    try:
        robustness = [int(x) for x in args.robustness_seeds.split(",") if x.strip()]
        assert all(x >= 0 for x in robustness)
    except (ValueError, AssertionError):
        ap.error(f"--robustness-seeds: expected comma-separated whole numbers >= 0 ('' to skip), "
                 f"got {args.robustness_seeds!r}")

    table = Table(title=f"ILP scaling: median of {args.repeats}, gap target {args.gap:.1%}, "
                        f"time limit {args.time_limit:g}s, {os.cpu_count()} CPU cores, seed {args.seed}, "
                        f"pairing {args.pairing}")
    for col in ("size", "variants", "classes", "vars", "int vars", "rows", "backend", "seconds", "gap %",
                "status", "objective", "note"):
        table.add_column(col, justify="left" if col in ("size", "backend", "status", "note") else "right")
    given_up: set[str] = set()
    result = {}
    for m, g, t in sizes:
        prob = _instance(m, g, t, args, args.seed)
        model = build(prob)
        shape = (f"{m}x{g}x{t}", str(len(prob.variants)), str(len(prob.classes)), str(len(model.vars)),
                 str(model.num_integer), str(len(model.rows)))
        for backend in backends:
            if backend in given_up:
                table.add_row(*shape, backend, "-", "-", "skipped", "-", "ran past the limit on a smaller size")
                continue
            runs = []
            for _ in range(args.repeats):
                runs.append(solve(prob, backend, time_limit_s=args.time_limit, mip_gap=args.gap))
                if runs[-1].seconds > args.time_limit and backend != "highs":  # highs is the measure
                    given_up.add(backend)
                    break
            secs = statistics.median(r.seconds for r in runs)
            gaps = [r.gap for r in runs if r.gap is not None]
            gap = statistics.median(gaps) * 100 if gaps else float("nan")
            last = runs[-1]
            note = f"{len(runs)} run(s), past the limit" if backend in given_up else ""
            note = "; ".join(filter(None, [note, _how(last.message)]))
            table.add_row(*shape, last.backend, f"{secs:.2f}", f"{gap:.2f}", last.status,
                          f"{last.objective:.1f}" if last.objective is not None else "-", note)
            result[backend] = (secs, gap)
        table.add_section()
    Console(width=200).print(table)
    secs, gap = result.get("highs", (float("nan"), float("nan")))
    seeds = robustness
    met = [(secs <= GOAL_SECONDS and gap <= GOAL_GAP_PCT)]
    if seeds:
        m, g, t = sizes[-1]
        rob = Table(title=f"Robustness: {m}x{g}x{t} on other seeds, HiGHS, time limit {GOAL_SECONDS:g}s, "
                          f"gap target {args.gap:.1%} (goal: <= {GOAL_GAP_PCT:g}% in <= {GOAL_SECONDS:g}s)")
        for col in ("seed", "seconds", "gap %", "status", "objective", "how", "goal met"):
            rob.add_column(col, justify="left" if col in ("status", "how", "goal met") else "right")
        for seed in seeds:
            prob = _instance(m, g, t, args, seed)
            sol = solve(prob, "highs", time_limit_s=GOAL_SECONDS, mip_gap=args.gap)
            gp = (sol.gap if sol.gap is not None else float("nan")) * 100
            ok = sol.seconds <= GOAL_SECONDS and gp <= GOAL_GAP_PCT
            met.append(ok)
            rob.add_row(str(seed), f"{sol.seconds:.2f}", f"{gp:.2f}", sol.status,
                        f"{sol.objective:.1f}" if sol.objective is not None else "-", _how(sol.message), "yes" if ok else "no")
        Console(width=200).print(rob)
    print(f"RESULT seconds={secs:.2f} gap_pct={gap:.2f} seeds_within_goal={sum(met)}/{len(met)}")
    return 0


GOAL_SECONDS = 10.0
"""The issue's goal for the largest size: within GOAL_GAP_PCT of the bound in this many seconds."""
GOAL_GAP_PCT = 1.0


def _instance(m: int, g: int, t: int, args: argparse.Namespace, seed: int):
    prob = synthetic_problem(m, g, t, n_classes=args.classes, seed=seed)
    if args.pairing == "same_gpu":
        types = sorted({v.resource for v in prob.variants})
        prob = dataclasses.replace(prob, forbidden_pairs=frozenset((a, b) for a in types for b in types if a != b))
    return prob


def _how(message: str) -> str:
    """Which step of solvers.backends.solve produced the answer, from its message."""
    if "solved one by one" in message:
        return "model by model"
    if "contend" in message:
        return "whole MIP (models contend for GPUs)"
    if "RENS" in message:
        return "LP bound + RENS"
    return ""


if __name__ == "__main__":
    raise SystemExit(main())
