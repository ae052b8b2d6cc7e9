"""The admission ablation (rules A45, A46): bench/vllm_under_load.py with the other admission of a mixed replica.

A prompt that reaches a busy mixed replica during step k is scheduled either into step k+2 (async scheduling, vLLM
0.26.0's default engine loop: `--admission async`) or at the next step boundary, step k+1 (`--admission boundary`),
in the simulator and the closed form alike (planner.simulate.steptime.ASYNC_SCHEDULING). The shipped admission is
the boundary one since rule A46 (stop 46, chosen on settled samples of the steady state); stop 24 to stop 45
shipped the async one. Whichever is measured, the frontend constant (steptime.FRONTEND_MS_PER_RUNNING) is refitted
with it on its own tuning split (llama-3.1-8b H200 ISL 1,024 of the bundled sweep, bench/fidelity.py's
fit_frontend_ms_per_running), as each was when it shipped. Everything else is bench/vllm_under_load.py as shipped;
its arguments pass through (--sweep ...).

    .venv/bin/python bench/admission_ablation.py                        # every committed sweep, the other admission
    .venv/bin/python bench/admission_ablation.py --admission async --sweep SWEEP.csv=PROFILE_DIR

Prints the admission and the fitted constant, then vllm_under_load.py's tables and its RESULT line.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import fidelity  # noqa: E402
import vllm_under_load  # noqa: E402

import planner.simulate.steptime as steptime  # noqa: E402
from planner.io.catalog import CATALOG_ENV, Catalog  # noqa: E402
from planner.perf.heldout import use_byo_catalog_unless_set  # noqa: E402
from planner.perf.laws import fit_profile  # noqa: E402
from planner.perf.profiledata import load_profile  # noqa: E402

ADMISSIONS = {"async": True, "boundary": False}
"""--admission's names -> steptime.ASYNC_SCHEDULING."""


def use_admission(async_scheduling: bool) -> float:
    """Switch the simulator and the capacity model to the admission `async_scheduling` names and refit the frontend
    constant on its tuning split; returns the refitted constant (ms per running request), also set as the shipped
    one. Both read steptime's constants when called (FleetSimulator, capacity.mixed_latency), so setting them here
    switches every use in this process."""
    steptime.ASYNC_SCHEDULING = async_scheduling
    use_byo_catalog_unless_set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        perf = fit_profile(load_profile(vllm_under_load.TUNING_SWEEP.parent), Catalog.load())[0]
        points = fidelity.read_load_sweep(vllm_under_load.TUNING_SWEEP)
        sat = fidelity.saturation(perf, points)
        tune = [p for p in points if p.isl == min(q.isl for q in points) and sat.below(p)]
        fitted = fidelity.fit_frontend_ms_per_running(perf, tune)
    steptime.FRONTEND_MS_PER_RUNNING = fitted
    vllm_under_load.FRONTEND_MS_PER_RUNNING = fitted
    return fitted


def main(argv: list[str] | None = None) -> int:
    shipped = next(name for name, flag in ADMISSIONS.items() if flag == steptime.ASYNC_SCHEDULING)
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--admission", choices=list(ADMISSIONS), default=next(n for n in ADMISSIONS if n != shipped),
                    help="the admission to measure (default: the one not shipped)")
    try:
        known, args = ap.parse_known_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as e:  # argparse has printed what was expected
        return int(e.code or 2)
    name = known.admission
    # the admission and frontend constants are process-wide (use_admission): put the shipped ones back when done, so
    # that a caller in the same process (the test suite: test_bench_bad_inputs' --help of every bench) is not left
    # simulating the other admission (found by the suite: vllm_trace_replay's figures moved 8% in that worker)
    kept = (steptime.ASYNC_SCHEDULING, steptime.FRONTEND_MS_PER_RUNNING, vllm_under_load.FRONTEND_MS_PER_RUNNING,
            os.environ.get(CATALOG_ENV))
    try:
        fitted = use_admission(ADMISSIONS[name])
        print(f"admission: {name} (shipped: {shipped}); frontend constant refitted on llama-3.1-8b H200 ISL 1024: "
              f"{fitted:.3f} ms per running request")
        return vllm_under_load.main(args)
    finally:
        steptime.ASYNC_SCHEDULING, steptime.FRONTEND_MS_PER_RUNNING, vllm_under_load.FRONTEND_MS_PER_RUNNING = kept[:3]
        if kept[3] is None:
            os.environ.pop(CATALOG_ENV, None)
        else:
            os.environ[CATALOG_ENV] = kept[3]


if __name__ == "__main__":
    sys.exit(main())
