"""``planner simulate`` and ``planner emulate``: the simulator and the emulated vLLM server on the command line.

``register(app)`` adds them to the root app (planner/cli/main.py); the work of ``simulate`` is in
planner/cli/simulate_run.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

from planner.cli.console import figure_path, friendly_errors, stdout_console
from planner.io.errors import InputError
from planner.io.schema import Variant
from planner.perf.laws import VariantPerf, lookup_variant_perf

PerfLookup = Callable[..., VariantPerf | None]
# where `planner simulate` saves its latency plot unless --png or --no-png says otherwise
DEFAULT_SIMULATION_PNG = Path("out/simulation.png")


def default_perf_lookup(profiles_dir: Path | None = None) -> PerfLookup:
    """`PerfModel.load().get`: the laws of a (model, gpu, tp, precision) from the bundled profiles (and the catalog
    folder's), or from `profiles_dir` where given."""
    from planner.io.validate import check_profiles_found
    from planner.perf.laws import PerfModel

    pm = PerfModel.load(profiles_dir=profiles_dir)
    # a root without a profile is exit 2, as solve and whatif say it (found by hand: `simulate --profiles EMPTY` timed
    # the plan's pools with the uncalibrated prior and reported its attainment, exit 0)
    check_profiles_found(len(pm.measured), profiles_dir)
    return lambda model, gpu, tp, weight_dtype="bf16", kv_dtype="bf16": pm.get(model, gpu, tp, weight_dtype, kv_dtype)


def plan_profiles_root(plan: Path, profiles: Path | None) -> Path | None:
    """The profile root whose laws time a plan's pools: --profiles where given (said when the plan was solved with
    another), else the plan's own profiles_root (found by hand at stop 56: a plan solved with `--profiles` predicted ITL
    p90 16.2 ms and `planner simulate` timed it with the bundled laws, 9.8 ms, without a word); an InputError naming
    the plan's field where that root is gone."""
    from planner.io.planfile import load_plan

    recorded = load_plan(plan).profiles_root
    if profiles is not None:
        if recorded is not None and Path(recorded) != profiles.resolve():
            stdout_console().print(f"note: the plan was solved with the profiles under {recorded}; --profiles times its "
                                   f"pools with those under {profiles}", highlight=False)
        return profiles
    if recorded is None:
        return None
    if not Path(recorded).is_dir():
        raise InputError(str(plan), "profiles_root", f"the profile root the plan was solved with, {recorded}, is not a "
                         "folder here: give the profiles to time its pools with (--profiles)")
    return Path(recorded)


def lookup_variant(perf_lookup: PerfLookup, pool_id: str, where: str = "--variant") -> VariantPerf:
    try:
        v = Variant.parse(pool_id)
    except ValueError as exc:
        raise InputError(None, where, str(exc)) from exc
    from planner.io.catalog import Catalog

    catalog = Catalog.load()
    catalog.model(v.model, where)  # an unknown name is an InputError naming `where` and the known ones
    catalog.gpu(v.gpu, where)
    perf = lookup_variant_perf(perf_lookup, v.model, v.gpu, v.tp, v.weight_dtype, v.kv_dtype)
    if perf is None:
        from planner.perf.laws import cannot_run_reason

        raise InputError(None, where, f"{v.model} cannot run on {v.gpu} tp{v.tp}{v.precision}: "
                         f"{cannot_run_reason(catalog, v.model, v.gpu, v.tp, v.weight_dtype, v.kv_dtype)}")
    return perf


def register(app: typer.Typer) -> None:
    """Add `simulate` and `emulate` to the planner CLI."""

    @app.command("emulate")
    @friendly_errors
    def emulate(
        variant: str = typer.Option(..., help="pool id model/role/gpu/tpN whose latency laws time the tokens"),
        port: int = typer.Option(8000, help="first port; replica i listens on port+i (0: ports the OS picks, printed)"),
        replicas: int = typer.Option(1, min=1, help="replicas in this process"),
        host: str = typer.Option("127.0.0.1", help="bind address"),
        time_scale: float = typer.Option(1.0, min=1e-4, help="wall seconds per emulated second (0.1 = 10x faster)"),
        served_model_name: str | None = typer.Option(None, help="model name in the API (default: the variant's model)"),
        log_iterations: bool = typer.Option(False, help="print every engine step as vLLM's --enable-logging-iteration-details "
                                                        "does (profiles/iterations.py, bench/step_composition.py read it)"),
        max_model_len: int | None = typer.Option(None, min=2, help="longest prompt + max_tokens served, as vllm "
                                                 "--max-model-len (default: the model's context length, as vLLM's)"),
    ) -> None:
        """Serve emulated vLLM replicas (OpenAI completions + vLLM /metrics) timed by the performance model."""
        from planner.io.catalog import Catalog
        from planner.io.validate import check_max_model_len, check_port_free
        from planner.simulate.emulator import serve_forever, time_scale_warning

        check_port_free(host, port, replicas)  # before start-up: a busy port is exit 2, not a thread's traceback
        perf = lookup_variant(default_perf_lookup(), variant)
        context = Catalog.load().model(perf.model).max_context
        if max_model_len is not None:
            check_max_model_len(max_model_len, perf.model, context)
        max_model_len = max_model_len or context  # None: the model states no context (the emulator's own cap)
        where = f"{host}:{port}..{port + replicas - 1}" if port else f"{host}, ports the OS picks (said once bound)"
        stdout_console().print(f"emulating {variant} ({perf.source} laws) on {where}, "
                               f"time_scale={time_scale}, max_model_len={max_model_len or 'unstated'}; Ctrl-C stops",
                               soft_wrap=True)  # one line in a log, whole
        if warning := time_scale_warning(perf, time_scale):
            stdout_console().print(f"[yellow]{warning}", soft_wrap=True, highlight=False)
        serve_forever(perf, port=port, replicas=replicas, host=host, time_scale=time_scale, model_name=served_model_name,
                      log_iterations=log_iterations, max_model_len=max_model_len)

    @app.command("simulate")
    @friendly_errors
    def simulate(
        plan_path: Path | None = typer.Argument(None, help="plan YAML/JSON (planner solve output), as `planner explain PLAN` "
                                                           "takes it"),
        plan_option: Path | None = typer.Option(None, "--plan", help="the plan file (or give it as the argument)"),
        trace: Path | None = typer.Option(None, help="trace CSV: timestamp, model, input_tokens, output_tokens (or an "
                                                     "Azure, BurstGPT or Mooncake trace)"),
        workload: Path | None = typer.Option(None, help="workload YAML: its classes' arrivals, Poisson, or clustered "
                                                 "where a class states its burstiness (planner.simulate.arrivals)"),
        duration: float | None = typer.Option(None, help="seconds of arrivals to simulate (default: whole trace, or 600 s)"),
        seed: int = typer.Option(0, min=0, help="random seed (arrivals, routing)"),
        png: Path | None = typer.Option(None, help="where to save the latency plot (its folder is created; default "
                                                    f"{DEFAULT_SIMULATION_PNG})"),
        no_png: bool = typer.Option(False, "--no-png", help="save no plot (as `planner profile show --no-png`)"),
        model: str | None = typer.Option(None, help="model of a trace without a model column (e.g. the Azure "
                                              "trace); with one, replay that model's requests alone"),
        routing: str | None = typer.Option(None, help="how a request picks a replica of its pool: least_loaded or random "
                                                      "(default: the plan's replica_routing, what it was sized for)"),
        kv_policy: str = typer.Option("on_demand", help="how mixed and decode replicas hold KV: on_demand (as vLLM 0.26: blocks as a "
                                                         "sequence grows, preempting when full) or reserve (prompt + output "
                                                         "reserved at admission)"),
        drop_over_context: bool = typer.Option(
            False, "--drop-over-context", help="leave out the trace's requests whose prompt + output exceed their "
                                                "model's context, as vLLM refuses them (default: such a request is an "
                                                "error naming its row)"),
        profiles: Path | None = typer.Option(None, "--profiles", help="profile root whose laws time the pools "
                                             "(default: the one the plan was solved with, its profiles_root, else the "
                                             "bundled profiles)"),
    ) -> None:
        """Replay a trace or a workload against a plan; per-class latency percentiles and SLO attainment."""
        from planner.cli.simulate_run import parse_kv_policy, parse_routing, run_simulate
        from planner.io.catalog import Catalog

        # found in QA: `planner simulate PLAN`, as `planner explain PLAN` reads it, was "Missing option '--plan'"
        plan = plan_path or plan_option
        if plan is None or (plan_path is not None and plan_option is not None):
            raise InputError(None, "--plan", "one plan file, as `planner simulate PLAN` or `planner simulate --plan PLAN`; "
                             "got " + ("none" if plan is None else f"two ({plan_path} and {plan_option})"))
        png = figure_path(png, no_png, DEFAULT_SIMULATION_PNG)
        root = plan_profiles_root(plan, profiles)
        run_simulate(plan=plan, trace=trace, workload=workload, duration=duration, seed=seed, png=png, model=model,
                     perf_lookup=default_perf_lookup(root), routing=parse_routing(routing), kv_policy=parse_kv_policy(kv_policy),
                     # default_perf_lookup's catalog: a plan of another catalog is said before any work
                     catalog=Catalog.load(), drop_over_context=drop_over_context)
