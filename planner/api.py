"""The public Python API's functions: load inputs, solve, simulate; thin over the domain modules.

Notebooks and scripts use these through `planner` (see planner/__init__.py):

    from planner import load_workload, load_fleet, solve
    plan = solve(load_workload("examples/default/workload.yaml"), load_fleet("examples/default/fleet.yaml"))

The catalog and the performance model are loaded once per profile directory and reused (fitting the
laws is the slow part of a first solve; a what-if sweep solves the same instance many times).
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, Unpack

from planner.io.catalog import Catalog
from planner.io.errors import InputError
from planner.io.files import load_model
from planner.io.schema import Fleet, Plan, Slo, Workload
from planner.simulate.attainment import DEFAULT_VERIFY_ROUNDS
from planner.solvedplan import SolvedPlan

if TYPE_CHECKING:  # imported when used: `import planner.api` stays light
    import pandas as pd

    from planner.perf.laws import PerfModel
    from planner.simulate.report import SimReport

PathLike = str | os.PathLike[str]

MAX_LENGTH_BUCKETS = 100
"""Most length buckets per model `workload_from_trace` takes: the range of `planner workload from-trace`'s --isl-buckets
and --osl-buckets (planner/cli/main.py)."""


class SolveOptions(TypedDict, total=False):
    """`solve`'s keyword options other than the objective (what `headroom` and the what-if sweeps pass on)."""

    backend: str
    time_limit_s: float
    mip_gap: float
    perf: PerfModel | None
    catalog: Catalog | None
    profiles_dir: PathLike | None
    verify: bool | None
    verify_rounds: int
    seed: int


class SolveKwargs(SolveOptions, total=False):
    """All of `solve`'s keyword options."""

    objective: str


def _check_record(name: str, value: object, kind: type, made_by: str) -> None:
    """`value` is a `kind`, else a TypeError naming the argument and what makes one (found by a helper: solve(path,
    path) was "'str' object has no attribute 'models'", and save(workload, path) wrote the workload as a plan file)."""
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be a {kind.__name__} ({made_by}), got {type(value).__name__}")


def load_workload(path: PathLike) -> Workload:
    """Read and validate a workload YAML (models with SLOs, request classes with rates)."""
    return load_model(Workload, path)


def load_fleet(path: PathLike) -> Fleet:
    """Read and validate a fleet YAML (GPU inventory, limits, current replicas)."""
    return load_model(Fleet, path)


def workload_from_trace(path: PathLike, slo: Slo | dict[str, Slo], model: str | None = None,
                        isl_buckets: int = 3, osl_buckets: int = 2, rate_quantile: float | None = None,
                        length_spread: bool = False, burstiness: bool = True) -> Workload:
    """Bucket a request trace (product, Azure, BurstGPT or Mooncake format: planner.io.traces) into request classes with rates,
    as `planner workload from-trace` does; with `length_spread` each class states its prompts' spread (isl_scv,
    isl_max), as `--length-spread` does. Each class carries the trace's measured burstiness (IDCs, the
    planner sizes clustered arrivals for it) unless `burstiness=False` (`--poisson`: Poisson classes, which size a
    bursty trace's fleet short).

    Requests whose prompt + output exceed their model's context (the catalog's) are left out, as the CLI leaves them
    out: vLLM refuses them, so no class may hold them. What the CLI notes of the reading is a `UserWarning` here: the
    requests left out, and a `timestamp` of no stated unit read as seconds over more than a day."""
    import warnings

    from planner.io.traces import bucket_trace, check_rate_span, over_context_note, read_trace, time_unit_note

    # the CLI's option ranges, before the trace is read (were a NumPy 'Quantiles must be in the range [0, 1]', and one
    # bucket where 0 or -1 were asked for)
    for name, buckets in (("isl_buckets", isl_buckets), ("osl_buckets", osl_buckets)):
        if isinstance(buckets, bool) or not isinstance(buckets, int) or not 1 <= buckets <= MAX_LENGTH_BUCKETS:
            raise ValueError(f"{name} must be an integer in [1, {MAX_LENGTH_BUCKETS}], got {buckets!r}")
    if rate_quantile is not None and not 0.0 <= rate_quantile <= 1.0:
        raise ValueError(f"rate_quantile must be a quantile in [0, 1] (e.g. 0.9) or None, got {rate_quantile!r}")
    catalog = Catalog.load()
    contexts = catalog.contexts(catalog.models)
    trace = read_trace(path, model, contexts=contexts, drop_over_context=True)
    check_rate_span(trace, path)  # one instant: no rate (was one made up over a 1-s span)
    for note in (time_unit_note(trace), over_context_note(trace, contexts)):
        if note:
            warnings.warn(note, UserWarning, stacklevel=2)
    return bucket_trace(trace, slo, isl_buckets, osl_buckets, rate_quantile=rate_quantile,
                        burstiness=burstiness, length_spread=length_spread)


@functools.lru_cache(maxsize=4)
def _laws(profiles_dir: str | None) -> tuple[Catalog, PerfModel]:
    from planner.io.validate import check_profiles_found
    from planner.perf.laws import PerfModel

    catalog = Catalog.load()
    perf = PerfModel.load(catalog=catalog, profiles_dir=profiles_dir)
    check_profiles_found(len(perf.measured), profiles_dir, "profiles_dir")  # raised, so not cached
    return catalog, perf


def laws(profiles_dir: PathLike | None = None) -> tuple[Catalog, PerfModel]:
    """(catalog, PerfModel) for `profiles_dir` (default: the bundled profiles), loaded once and cached. A folder that
    holds no profile is an InputError naming it, as `--profiles` is: not every pool timed by the roofline prior."""
    return _laws(None if profiles_dir is None else str(profiles_dir))


def solve(workload: Workload, fleet: Fleet, *, objective: str = "cost", backend: str = "highs",
          time_limit_s: float = 10.0, mip_gap: float = 1e-4, perf: PerfModel | None = None, catalog: Catalog | None = None,
          profiles_dir: PathLike | None = None, verify: bool | None = None,
          verify_rounds: int = DEFAULT_VERIFY_ROUNDS,
          seed: int = 0) -> SolvedPlan:
    """The cheapest plan for `workload` on `fleet` (objective 'cost'), the fewest GPUs ('gpus'; of as many,
    the cheapest), the least board power ('power'), or the largest common traffic multiplier the fleet
    serves within SLO ('max_load').

    Returns a :class:`SolvedPlan` (a `Plan` with `.pools()`, `.classes()` DataFrames and a readable
    repr). An infeasible instance is not an exception: the plan has `feasible=False` and a diagnosis.
    With `profiles_dir` the plan records it (`profiles_root`), so that a simulation times its pools with those laws.
    `verify` as `planner solve --verify / --no-verify`: True simulates the plan and re-solves with tighter utilization
    where SLO attainment is short (at most `verify_rounds` times, the simulation seeded by `seed`); None (the default,
    rule 58-V) does so only for a plan that predicts a class over its SLO behind its pools' mix of classes, or (rule
    60-N) a class sharing a pool within 10% of its SLO (planner.planning.verify.VERIFY_MARGIN); False never.
    Inputs are checked against the catalog as the CLI checks its files (planner.io.validate: models and GPU types
    known, prompt + output within the model's context, current pools that can run): an InputError naming 'workload'
    or 'fleet' and the field, not a plan for requests no replica can serve.
    """
    from planner.io.validate import check_fleet, check_workload
    from planner.planning.assemble import plan_workload
    from solvers.objectives import as_objective

    _check_record("workload", workload, Workload, "planner.load_workload(path) reads one")
    _check_record("fleet", fleet, Fleet, "planner.load_fleet(path) reads one")
    as_objective(objective)  # ValueError naming the registered objectives
    if not (math.isfinite(time_limit_s) and time_limit_s > 0):  # `planner solve --time-limit` refuses these too
        raise ValueError(f"time_limit_s must be a finite number of seconds > 0, got {time_limit_s!r}")
    if not 0 <= mip_gap < 1:  # a relative gap; 1 accepts any incumbent as "optimal"
        raise ValueError(f"mip_gap must be a relative gap in [0, 1), got {mip_gap!r}")
    if perf is None or catalog is None:
        cat, pm = laws(profiles_dir)
        catalog = catalog or cat
        perf = perf or pm
    check_workload(workload, catalog, "workload")
    check_fleet(fleet, catalog, "fleet")
    if verify_rounds < 0:  # `planner solve --verify-rounds` refuses it too
        raise ValueError(f"verify_rounds must be >= 0, got {verify_rounds!r}")
    plan = plan_workload(workload, fleet, perf, catalog, backend=backend, time_limit_s=time_limit_s,
                         objective=objective, mip_gap=mip_gap)
    from planner.planning.verify import verified_by_default, verify_and_resolve

    if plan.feasible and (verify or (verify is None and verified_by_default(plan, objective))):

        plan = verify_and_resolve(workload, fleet, perf, catalog, plan, backend=backend, time_limit_s=time_limit_s,
                                  rounds=verify_rounds, seed=seed)
    if profiles_dir is not None:  # said in the plan, as `planner solve --profiles` says it: simulate_plan and
        plan.profiles_root = str(Path(profiles_dir).resolve())  # `planner simulate` time its pools with these laws
    return SolvedPlan.of(plan)


def headroom(workload: Workload, fleet: Fleet, **solve_kw: Unpack[SolveOptions]) -> SolvedPlan:
    """How much more traffic this fixed fleet takes within SLO: `solve(..., objective='max_load')`.

    The answer is `plan.load_multiplier` (1.0 = today's rates; 2.0 = twice every class's rate)."""
    return solve(workload, fleet, objective="max_load", **solve_kw)


def save(plan: Plan, path: PathLike) -> Path:
    """Write a plan file (YAML, or JSON for *.json) atomically; returns the path."""
    from planner.io.planfile import save_plan

    _check_record("plan", plan, Plan, "what planner.solve returns")
    save_plan(path, plan)
    return Path(path)


def simulate(plan: Plan, workload: Workload, *, duration_s: float | None = None,
             trace: PathLike | pd.DataFrame | None = None, seed: int = 0, perf: PerfModel | None = None,
             profiles_dir: PathLike | None = None, drop_over_context: bool = False, model: str | None = None) -> SimReport:
    """Run the plan through the discrete-event fleet simulator; returns a `SimReport`
    (`.classes`: per-class percentiles and SLO attainment; `.requests`; `.pools` timelines).

    Arrivals are Poisson at the workload's class rates for `duration_s` seconds (default 600), or, with `trace`
    (a DataFrame from `planner.io.traces.read_trace`, or a trace file), the trace's own requests mapped
    to the workload's classes: all of it, or its first `duration_s` seconds (`planner simulate`'s defaults).
    A trace file's request past its model's context is an InputError naming its row, as vLLM refuses it;
    `drop_over_context=True` leaves such requests out instead (`--drop-over-context`), with a UserWarning saying how
    many, as the CLI notes it. `model` names the model of a trace without a model column (Azure, BurstGPT, Mooncake;
    a workload of one model names it itself), and with one picks that model's requests alone (`--model`).
    The pools are timed with the laws of `profiles_dir`, else of the profile root the plan was solved with (its
    `profiles_root`, as `planner simulate` reads it), else the bundled ones."""
    import warnings

    import numpy as np

    from planner.simulate.arrivals import DEFAULT_WORKLOAD_DURATION_S, over_request_limit, poisson_arrivals, trace_arrivals
    from planner.simulate.fleet import FleetSimulator
    from planner.simulate.report import build_report

    _check_record("plan", plan, Plan, "what planner.solve returns, or planner.load_plan(path)")
    _check_record("workload", workload, Workload, "planner.load_workload(path) reads one")
    if not plan.feasible:
        raise ValueError("the plan is infeasible: nothing to simulate (see plan.diagnosis)")
    if duration_s is not None and not (math.isfinite(duration_s) and duration_s > 0):  # was "field 'duration'"
        raise ValueError(f"duration_s must be a finite number of seconds > 0, got {duration_s!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:  # was NumPy's "expected non-negative integer"
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if model is not None and model not in workload.models:  # `planner simulate --model` refuses it too
        raise ValueError(f"model must be a model of the workload ({', '.join(sorted(workload.models))}), got {model!r}")
    poisson_s = duration_s or DEFAULT_WORKLOAD_DURATION_S  # seconds of Poisson arrivals, without a trace
    rate_rps = sum(c.rate_rps for c in workload.classes)
    over = over_request_limit(poisson_s, rate_rps) if trace is None else None
    if over is not None:
        # `planner simulate --duration`'s bound (was a MemoryError, or the machine's memory, after minutes of drawing)
        raise ValueError(f"duration_s {over}")
    if perf is None and profiles_dir is None and plan.profiles_root is not None:  # was the bundled laws, not the plan's
        if not Path(plan.profiles_root).is_dir():
            raise InputError(None, "plan.profiles_root", f"the profile root the plan was solved with, "
                             f"{plan.profiles_root}, is not a folder here: give the profiles to time its pools with "
                             "(profiles_dir)")
        profiles_dir = plan.profiles_root
    if perf is None:
        perf = laws(profiles_dir)[1]
    if trace is None:
        arrivals = poisson_arrivals(workload, poisson_s, np.random.default_rng(seed))
    else:
        import pandas as pd

        from planner.io.traces import over_context_note, read_trace, time_unit_note

        single = model or (next(iter(workload.models)) if len(workload.models) == 1 else None)
        contexts = laws(profiles_dir)[0].contexts(workload.models)
        if isinstance(trace, pd.DataFrame):
            df = trace
        else:
            df = read_trace(trace, model=single, contexts=contexts, drop_over_context=drop_over_context,
                            drop_option="drop_over_context=True", model_option="model=")
            for note in (time_unit_note(df), over_context_note(df, contexts)):
                if note:
                    warnings.warn(note, UserWarning, stacklevel=2)
        df = df.rename(columns={"t_s": "timestamp"})
        arrivals = trace_arrivals(df, workload, str(trace) if not isinstance(trace, pd.DataFrame) else "<trace>",
                                  model=single, duration_s=duration_s)
    sim = FleetSimulator.from_plan(plan, perf.get, arrivals, workload, seed=seed + 1)
    sim.run()
    return build_report(sim)
