"""Rule A45's ablation (stop 45): bench/vllm_under_load.py with one-boundary admission instead of async scheduling.

vLLM 0.26.0 schedules step k+1 while step k runs (async scheduling), so the simulator and the capacity model admit a
prompt that reaches a busy mixed replica during step k into step k+2 (planner.simulate.steptime.ASYNC_SCHEDULING,
adopted at stop 24 with the frontend constant refitted 0.52 -> 0.27 ms per running request). The alternative measured
here admits it at the next step boundary (k+1, the behaviour before stop 24), in the simulator and the closed form
alike, with the frontend constant refitted on its own tuning split (llama-3.1-8b H200 ISL 1,024 of the bundled sweep,
bench/fidelity.py's fit_frontend_ms_per_running). Everything else is bench/vllm_under_load.py as shipped; its
arguments pass through (--sweep ...).

    .venv/bin/python bench/admission_ablation.py                        # every committed sweep, alternative B
    .venv/bin/python bench/admission_ablation.py --sweep SWEEP.csv=PROFILE_DIR

Prints the fitted constant, then vllm_under_load.py's tables and its RESULT line (alternative B's figures).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import fidelity  # noqa: E402
import vllm_under_load  # noqa: E402

import planner.simulate.steptime as steptime  # noqa: E402
from planner.io.catalog import Catalog  # noqa: E402
from planner.perf.heldout import use_byo_catalog_unless_set  # noqa: E402
from planner.perf.laws import fit_profile  # noqa: E402
from planner.perf.profiledata import load_profile  # noqa: E402


def use_boundary_admission() -> float:
    """Switch the simulator and the capacity model to one-boundary admission and refit the frontend constant on its
    tuning split; returns the refitted constant (ms per running request), also set as the shipped one. Both read
    steptime's constants when called (FleetSimulator, capacity.mixed_latency), so setting them here switches every
    use in this process."""
    steptime.ASYNC_SCHEDULING = False
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
    fitted = use_boundary_admission()
    print(f"one-boundary admission; frontend constant refitted on llama-3.1-8b H200 ISL 1024: {fitted:.3f} ms per "
          "running request")
    return vllm_under_load.main(argv)


if __name__ == "__main__":
    sys.exit(main())
