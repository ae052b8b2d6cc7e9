"""`planner simulate`: load a plan and a workload or trace, simulate, print tables, save a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from planner.cli.console import stdout_console
from planner.io.catalog import Catalog
from planner.io.errors import InputError
from planner.io.files import load_model
from planner.io.schema import REPLICA_ROUTINGS, ModelEntry, Plan, ReplicaRouting, Slo, Workload
from planner.simulate.arrivals import (
    DEFAULT_WORKLOAD_DURATION_S,
    Arrivals,
    over_request_limit,
    poisson_arrivals,
    trace_arrivals,
)
from planner.simulate.engine import KV_POLICIES, KvPolicy
from planner.simulate.fleet import FleetSimulator, PerfLookup
from planner.simulate.report import SimReport, build_report, plot_report


def check_duration(duration: float | None, wl: Workload | None, where: str = "--duration") -> None:
    """A positive, finite duration; with `wl`, the workload whose Poisson arrivals are drawn (no trace), the arrivals
    expected over it, or over DEFAULT_WORKLOAD_DURATION_S where none is given, fit
    planner.simulate.arrivals.MAX_SIM_REQUESTS (checked before any work). Found in QA: without --duration, a workload
    class at 1e6 req/s drew 600 s of it until the kernel killed the process (exit 137), and with --trace, whose own
    rows bound the requests, --duration 1e6 over a 500-row trace was refused as ~57,000,000 requests."""
    if duration is not None and not (np.isfinite(duration) and duration > 0):
        raise InputError(None, where, f"expected seconds > 0, got {duration:g}")
    if wl is None:
        return
    seconds = duration if duration is not None else DEFAULT_WORKLOAD_DURATION_S
    over = over_request_limit(seconds, sum(c.rate_rps for c in wl.classes))
    if over is not None:
        raise InputError(None, where, over + ("" if duration is not None else f" ({seconds:g} s is {where}'s default)"))


def plan_slos(plan: Plan) -> dict[str, Slo]:
    """Per model, the SLO the plan was solved for (from its class predictions)."""
    out: dict[str, Slo] = {}
    for model, mp in plan.models.items():
        for pr in mp.predicted.values():
            if pr.slo_ttft_ms is not None or pr.slo_itl_ms is not None:
                out[model] = Slo(ttft_ms=pr.slo_ttft_ms, itl_ms=pr.slo_itl_ms, percentile=pr.percentile)
                break
    return out


def _check_routed(plan: Plan, wl: Workload, path: str) -> None:
    """Every class of the workload is one the plan routes (before any arrival is drawn), else exit 2 naming it."""
    for i, c in enumerate(wl.classes):
        mp = plan.models.get(c.model)
        if mp is None:
            raise InputError(path, f"classes[{i}].model", f"class '{c.id}' is of model {c.model}, which the plan does not "
                             f"serve (plan models: {sorted(plan.models)}); solve this workload, or pass the one the plan was solved for")
        if c.id not in mp.routing and c.rate_rps > 0:
            raise InputError(path, f"classes[{i}].id", f"class '{c.id}' is not routed by the plan (its classes of {c.model}: "
                             f"{sorted(mp.routing)}); solve this workload, or pass the one the plan was solved for")


LOAD_RTOL = 0.01
"""Relative difference of a class's rate or mean lengths from the plan's record beyond which `load_differences` says
it (below: the rounding of a rate written to YAML)."""


def load_differences(plan: Plan, wl: Workload) -> list[str]:
    """Each class of `wl` whose rate or mean lengths differ from what the plan was sized for (its ClassPrediction's
    rate_rps / isl / osl, recorded since stop 61; a plan without them says nothing), e.g. 'chat 12 req/s (planned 10)'.
    Found in QA: `planner simulate` of an old plan against a workload whose rates had grown gave no word of it."""
    out: list[str] = []
    for c in wl.classes:
        mp = plan.models.get(c.model)
        pr = mp.predicted.get(c.id) if mp is not None else None
        if pr is None:
            continue
        parts = [f"{what}{now:g}{unit} (planned {was:g})" for what, now, was, unit in (
            ("", c.rate_rps, pr.rate_rps, " req/s"), ("isl ", c.isl, pr.isl, ""), ("osl ", c.osl, pr.osl, ""))
            if was is not None and abs(now - was) > LOAD_RTOL * max(abs(was), 1e-9)]
        if parts:
            out.append(f"{c.id} " + ", ".join(parts))
    return out


def load_arrivals(plan: Plan, trace: Path | None, workload: Path | None, duration: float | None,
                  seed: int, model: str | None = None, drop_over_context: bool = False,
                  console: Console | None = None) -> tuple[Arrivals, Workload]:
    """Arrivals and the classes they belong to. With a trace and no workload, the trace is bucketed
    with `planner workload`'s defaults and its class ids must match the plan's routing. `drop_over_context`: the
    trace's requests beyond their model's context are left out (said on `console`) instead of refused."""
    if trace is None and workload is None:
        raise InputError(None, "--trace/--workload", "give a trace CSV or a workload YAML to simulate")
    wl = load_model(Workload, workload) if workload is not None else None
    check_duration(duration, wl if trace is None else None)  # a trace's own rows bound its requests
    if wl is not None:
        _check_routed(plan, wl, str(workload))
        # a class beyond its model's context is refused, as `planner solve` refuses it and vLLM its requests (found in
        # QA: a workload of isl 200000 on llama-3.1-8b's 131072 simulated a plan without a word)
        from planner.io.validate import check_contexts
        check_contexts(wl, Catalog.load(), str(workload))
        if console is not None and (differ := load_differences(plan, wl)):
            console.print(f"note: {workload} asks another load than the plan was sized for (a what-if: the plan is "
                          f"simulated as it is): {'; '.join(differ)}", highlight=False)
    if trace is None:
        assert wl is not None
        seconds = duration or DEFAULT_WORKLOAD_DURATION_S
        arr = poisson_arrivals(wl, seconds, np.random.default_rng(seed))
        if not len(arr):  # found in QA: --duration 1e-9 was "field 'arrivals': no requests to simulate", no flag named
            rate = sum(c.rate_rps for c in wl.classes)
            raise InputError(None, "--duration", f"{seconds:g} s of the workload's {rate:g} req/s drew no request; expected "
                             f"seconds enough for many (a request every {1.0 / rate:.3g} s on average)")
        return arr, wl
    from planner.io.traces import bucket_trace, has_model_column, over_context_note, read_trace, time_unit_note, zero_token_note

    single = model or (next(iter(plan.models)) if len(plan.models) == 1 else None)
    named = has_model_column(trace)  # an unreadable file counts as named: read_trace then says what is wrong with it
    if not named and single is None:
        raise InputError(str(trace), "model", f"the trace has no model column and the plan has several models ({sorted(plan.models)}): pass --model")
    if model is not None and model not in plan.models:
        raise InputError(None, "--model", f"a model of the plan ({', '.join(sorted(plan.models))}); got {model!r}")
    # --model names a trace's model where it has no model column, and picks that model's requests where it has one;
    # the plan's models' context lengths: a request beyond one is refused, as vLLM does
    contexts = Catalog.load().contexts(plan.models)
    df = read_trace(trace, model=model if named else single, contexts=contexts, drop_over_context=drop_over_context)
    # with --duration, the requests left out of the part simulated: the arrivals' clock starts at the first request
    # kept (planner.simulate.arrivals.normalise_trace), so the part ends duration s after it; those left out before
    # it, at the trace's start, are in the part (found in QA: the whole trace's count was given)
    until_s = float(df["t_s"].iloc[0]) + duration if duration is not None and len(df) else None
    within = f"(in the {duration:g} s simulated, --duration)" if duration is not None else ""
    for note in (time_unit_note(df), over_context_note(df, contexts, until_s, within), zero_token_note(df)):
        if note and console is not None:
            console.print(note, highlight=False)
    check_trace_models(df, plan, str(trace))
    if wl is None:
        slos = plan_slos(plan)
        missing = sorted(set(df["model"]) - set(slos))
        if missing:
            raise InputError(str(trace), "model", f"trace models {missing} are not in the plan (plan models: {sorted(plan.models)})")
        wl = bucket_trace(df, slos)
        routed = {c for mp in plan.models.values() for c in mp.routing}
        unknown = [c.id for c in wl.classes if c.id not in routed]
        if unknown:
            raise InputError(str(trace), "classes", f"bucketing the trace gives classes {unknown} that the plan does not route; "
                             "pass the workload the plan was solved for with --workload")
        # found in QA: a plan solved on --isl-buckets 4 (classes isl0..isl3) took the trace's default 3 buckets by their
        # names alone, its requests routed and judged as classes of other lengths; the default buckets of the plan's
        # own trace give every class the plan routes for the trace's models
        bucketed = {c.id for c in wl.classes}
        unmatched = sorted(c for m in set(df["model"]) for c in plan.models[m].routing if c not in bucketed)
        if unmatched:
            raise InputError(str(trace), "classes", f"bucketing the trace (`planner workload from-trace`'s default "
                             f"buckets) gives none of the plan's classes {unmatched[:5]}: the plan was solved for other "
                             "classes, so names alone do not match them; pass the workload the plan was solved for with "
                             "--workload")
    df = df.rename(columns={"t_s": "timestamp"})
    return trace_arrivals(df, wl, str(trace), duration_s=duration), wl


def check_trace_models(df: pd.DataFrame, plan: Plan, path: str) -> None:
    """Every model of the trace's requests `df` is one the plan serves, else an InputError naming the trace's models
    (with their request counts) and, where the plan serves one of them, --model to replay its requests alone (found in
    QA: a trace of two models on a plan of one was refused as "trace models ['qwen3-14b'] are not in the plan", naming
    neither the models found nor --model)."""
    counts = df["model"].astype(str).value_counts()
    missing = sorted(m for m in counts.index if m not in plan.models)
    if not missing:
        return
    found = ", ".join(f"{m} ({n:,} requests)" for m, n in sorted(counts.items()))
    served = sorted(m for m in counts.index if m in plan.models)
    hint = (f"pass --model {served[0]} to replay that model's requests alone" if served
            else "simulate a plan solved for them")
    raise InputError(path, "model", f"models the plan serves ({', '.join(sorted(plan.models))}); the trace has {found}, "
                     f"of which {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not in the plan: {hint}")


def class_table(rep: SimReport) -> Table:
    span = f"{rep.arrivals_s:,.0f}" if rep.arrivals_s >= 10 else f"{rep.arrivals_s:.3g}"  # a short run is not '0 s'
    t = Table(title=f"Simulated classes ({span} s of arrivals, {len(rep.requests):,} requests, {rep.events:,} events)")
    for col in ("class", "reqs", "TTFT p50/p90/p99 ms", "ITL p50/p90/p99 ms", "e2e p90 ms", "SLO", "attainment", "goodput rps"):
        t.add_column(col, justify="left" if col in ("class", "SLO") else "right")
    for r in rep.classes.itertuples():
        slo = []
        if r.slo_ttft_ms == r.slo_ttft_ms:
            slo.append(f"TTFT<={r.slo_ttft_ms:g}")
        if r.slo_itl_ms == r.slo_itl_ms:
            slo.append(f"ITL<={r.slo_itl_ms:g}")
        att = f"{r.attainment:.1%}"
        att = f"[green]{att}[/]" if r.slo_holds else f"[red]{att}[/]"
        t.add_row(str(r.class_id), f"{r.requests:,}",
                  # NaN: no request of the class got a first token (rejected, or still waiting at the drain limit)
                  f"{r.ttft_p50_ms:.0f}/{r.ttft_p90_ms:.0f}/{r.ttft_p99_ms:.0f}" if r.ttft_p50_ms == r.ttft_p50_ms else "-",
                  # NaN: every output of the class one token long, no inter-token gap to time
                  f"{r.itl_p50_ms:.1f}/{r.itl_p90_ms:.1f}/{r.itl_p99_ms:.1f}" if r.itl_p50_ms == r.itl_p50_ms else "-",
                  f"{r.e2e_p90_ms:,.0f}" if r.e2e_p90_ms == r.e2e_p90_ms else "-",  # NaN: none finished
                  (" ".join(slo) + f" @p{r.slo_percentile:g}") if slo else "-", att,
                  f"{r.goodput_rps:.2f}" if r.goodput_rps == r.goodput_rps else "-")  # NaN: arrivals at one instant
    return t


def sample_notes(rep: SimReport, wl: Workload, model: str | None = None) -> list[str]:
    """Classes whose SLO verdict the simulated requests cannot support: none simulated, or too few to tell their
    attainment from the SLO's percentile claim (95% Wilson interval, `undecided_share`); `model` (--model): the one
    model replayed, whose classes alone are expected. Found in QA: 0.05 s of the workload showed two classes' 2 and 1
    requests at 100.0% attainment in green, 'meeting' a p90 claim, and left the third class out of the table without a
    word."""
    from planner.simulate.attainment import undecided_note

    out = []
    seen = set(rep.classes["class_id"]) if not rep.classes.empty else set()
    for c in wl.classes:
        if c.rate_rps > 0 and c.id not in seen and model in (None, c.model):
            out.append(f"{c.id}: no simulated request: its SLO is not checked (a longer --duration, or a trace holding it)")
    for r in rep.classes.itertuples():
        # found in QA: a class none of whose 46 requests finished by the drain limit read attainment 0.0% with its
        # e2e 'nan' and no word of why; the percentiles are over the requests that got that far, attainment over all
        unserved = (rep.requests[(rep.requests["class_id"] == r.class_id) & ~rep.requests["finished"]]
                    if not rep.requests.empty else rep.requests)
        if len(unserved):
            rejected = int(unserved["rejected"].sum())
            # duration_s is the drain limit only where a request is still in the fleet, else the last one's end
            held = len(unserved) - rejected
            stopped = (f"{held:,} still in the fleet when the simulation stopped at {rep.duration_s:,.0f} s, its drain "
                       "limit" if held else "none still in the fleet")
            out.append(f"{r.class_id}: {len(unserved):,} of {int(r.requests):,} requests unfinished, counted as missing "
                       f"their SLO ({rejected:,} rejected: prompt + output beyond their pool's KV cache; {stopped})")
        if r.slo_percentile != r.slo_percentile:  # no SLO: nothing to tell
            continue
        note = undecided_note(str(r.class_id), int(r.requests), float(r.attainment), float(r.slo_percentile),
                              "simulate longer (--duration) or on a longer trace")
        if note is not None:
            out.append(note)
    return out


def pool_table(rep: SimReport) -> Table:
    """Per pool over the run: replicas, busy time, queue, KV usage, preemptions. "busy" is the share of time a replica
    runs a step, not the plan's "util" (the share of the pool's SLO capacity in use): a decode replica steps whenever
    it holds one sequence, so it reads busy at a fraction of its capacity."""
    t = Table(title="Pools", caption="busy: share of time a replica runs a step (the plan's util is the share of its "
                                     "SLO capacity in use)")
    for col in ("pool", "role", "replicas", "busy", "queue mean/max", "KV mean/max", "preemptions"):
        t.add_column(col, justify="left" if col in ("pool", "role") else "right")
    for pid, r in rep.pool_summary().iterrows():
        busy = f"{r['utilization']:.0%}" if r["utilization"] == r["utilization"] else "-"  # NaN: no interval closed
        t.add_row(str(pid), r["role"], str(int(r["replicas"])), busy,
                  f"{r['queue_mean']:.1f}/{int(r['queue_max'])}", f"{r['kv_mean']:.0%}/{r['kv_max']:.0%}",
                  f"{int(r['preemptions']):,}")
    return t


def parse_routing(value: str | None) -> ReplicaRouting | None:
    """`--routing` as a ReplicaRouting (None: the plan's); anything else is a bad parameter (exit 2)."""
    if value is None:
        return None
    for r in REPLICA_ROUTINGS:
        if r == value:
            return r
    raise typer.BadParameter(f"--routing must be one of {', '.join(REPLICA_ROUTINGS)}, got {value!r}")


def parse_kv_policy(value: str) -> KvPolicy:
    """`--kv-policy` as a KvPolicy (planner/simulate/engine.py); anything else is a bad parameter (exit 2)."""
    for k in KV_POLICIES:
        if k == value:
            return k
    raise typer.BadParameter(f"--kv-policy must be one of {', '.join(KV_POLICIES)}, got {value!r}")


def _check_plan_catalog(plan: Plan, path: str, catalog: Catalog) -> None:
    """Every model and GPU type of the plan's pools is in the catalog the simulator times them with (found by hand at
    stop 51: a plan made with `planner --catalog DIR` and simulated without it blamed the bundled gpus.yaml)."""
    for model, mp in plan.models.items():
        for pool in mp.pools:
            if model not in catalog.models or pool.gpu not in catalog.gpus:
                what = (catalog.unknown_model_text(model) if model not in catalog.models
                        else catalog.unknown_gpu_text(pool.gpu))
                raise InputError(path, f"models.{model}", f"pool {pool.id}: {what}; a plan made with `planner --catalog DIR` "
                                 "is simulated with the same --catalog")


def _check_plan_runs(plan: Plan, path: str, catalog: Catalog, perf_lookup: PerfLookup) -> None:
    """Every pool of the plan has laws to time it with, else exit 2 naming the plan's pool and why it cannot run (found
    in QA: a plan's decode pool edited by hand to llama-2-70b on one L40S was "field 'models.llama-2-70b.pools.<id>':
    no performance model for llama-2-70b on L40S tp1", naming neither the file nor the reason)."""
    from planner.perf.laws import cannot_run_reason, lookup_variant_perf

    for model, mp in plan.models.items():
        for i, pool in enumerate(mp.pools):
            if lookup_variant_perf(perf_lookup, model, pool.gpu, pool.tp, pool.weight_dtype, pool.kv_dtype) is None:
                why = cannot_run_reason(catalog, model, pool.gpu, pool.tp, pool.weight_dtype, pool.kv_dtype)
                raise InputError(path, f"models.{model}.pools[{i}]", f"pool {pool.id}: {model} cannot run on {pool.gpu} "
                                 f"tp{pool.tp} ({why}); expected a GPU type and TP size that run it, as `planner solve` plans")


def run_simulate(*, plan: Path, trace: Path | None, workload: Path | None, duration: float | None, seed: int,
                 png: Path | None, perf_lookup: PerfLookup, console: Console | None = None,
                 model: str | None = None, routing: ReplicaRouting | None = None,
                 kv_policy: KvPolicy = "on_demand", catalog: Catalog | None = None,
                 drop_over_context: bool = False) -> SimReport:
    """Simulate `plan` and print its tables; `routing` overrides the plan's replica routing (what it was sized for);
    `kv_policy`: how its mixed and decode replicas hold KV; `catalog`: the one `perf_lookup` times the pools with,
    whose models and GPU types the plan's pools must be (the CLI's; a test's own lookup passes none)."""
    from planner.io.files import check_writable
    from planner.io.planfile import load_plan

    console = console or stdout_console()
    check_duration(duration, None)
    if png is not None:
        check_writable(png, "--png")
    p = load_plan(plan)
    if not p.feasible:
        raise InputError(str(plan), "feasible", "the plan is infeasible: nothing to simulate")
    if catalog is not None:
        _check_plan_catalog(p, str(plan), catalog)
        _check_plan_runs(p, str(plan), catalog, perf_lookup)
    arr, wl = load_arrivals(p, trace, workload, duration, seed, model, drop_over_context, console)
    sim = FleetSimulator.from_plan(p, perf_lookup, arr, wl, seed=seed + 1, replica_routing=routing or p.replica_routing,
                                   kv_policy=kv_policy, decode_kv_policy=kv_policy)
    sim.run()
    rep = build_report(sim)
    console.print(f"replica routing: {sim.replica_routing}" + (" (--routing; the plan was sized for "
                                                               f"{p.replica_routing})" if routing and routing != p.replica_routing else ""))
    console.print(class_table(rep))
    for note in sample_notes(rep, wl, model):
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    console.print(pool_table(rep))
    if png is not None:
        plot_report(rep, png)
        console.print(f"plot: {png}")
    return rep


__all__ = ["run_simulate", "load_arrivals", "plan_slos", "ModelEntry"]
