"""The `planner` command line's root app: solve, explain and workload from-trace here; every other
command is in a module of planner/cli/ that adds it with `register(app)` below.

Exit codes: 0 success; 2 bad input (the message names file, field and expectation); 3 the
instance is infeasible (the plan file is still written, with its diagnosis).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import typer
from rich.table import Table

from planner.cli import catalog, control, profile, simulate, synth, whatif
from planner.cli.console import EXIT_INFEASIBLE, command_group, friendly_errors, stdout_console, whole_summaries
from planner.io.errors import InputError
from planner.io.schema import Plan
from planner.simulate.attainment import DEFAULT_VERIFY_ROUNDS
from planner.solvedplan import pd_summary
from planner.words import plural
from solvers import backend_help, backend_names, choices_text, objective_help, objective_names  # the registries

# Below this many requests `workload from-trace` notes how uncertain the rates are: 100 Poisson arrivals give a
# rate to +-10% (one standard error, 1/sqrt(n)).
FEW_REQUESTS = 100

app = command_group("Plan and autoscale prefill/decode-disaggregated LLM serving on vLLM.")
workload_app = command_group("Workloads: traces -> request classes.")
app.add_typer(workload_app, name="workload")
console = stdout_console()


@app.callback()
@friendly_errors
def root(
    catalog_dir: Path | None = typer.Option(
        None, "--catalog", envvar="PLANNER_CATALOG",
        help="your catalog folder (models.yaml, gpus.yaml, model_configs.yaml in the bundled formats, and/or a "
             "profiles/ subfolder of measured profiles in profiles/data's layout): its models, GPU types and profiles "
             "are added to the bundled ones, a bundled name or variant replaced; `planner catalog import-hf` writes one"),
) -> None:
    """Plan and autoscale prefill/decode-disaggregated LLM serving on vLLM."""
    import os

    from planner.io.catalog import CATALOG_ENV, user_catalog_dir

    if catalog_dir is not None:
        os.environ[CATALOG_ENV] = str(catalog_dir)
        try:
            user_catalog_dir()  # a folder holding a catalog file, checked before any command runs
        except InputError as exc:  # one line naming the flag, as every other bad input (was Click's 3-line usage)
            raise InputError(str(catalog_dir), "--catalog", exc.expected) from None

def plan_table(plan: Plan, title: str = "Plan") -> Table:
    """Pools of a plan with utilization and the predicted percentiles of the classes they serve."""
    from planner.io.schema import precision_suffix

    t = Table(title=title)
    for col, just in (("model", "left"), ("role", "left"), ("GPU", "left"), ("tp", "right"), ("replicas", "right"),
                      ("GPUs", "right"), ("$/h", "right"), ("util", "right"), ("TTFT ms", "right"), ("ITL ms", "right"), ("laws", "left")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    mixed_pct = False
    for model, mp in plan.models.items():
        for p in mp.pools:
            # a pool's TTFT / ITL is the worst of its classes, each at its own SLO percentile: label every percentile
            pcts = sorted({mp.predicted[c].percentile for c, w in mp.routing.items() if w.get(p.id, 0) > 0 and c in mp.predicted})
            pct = "/".join(f"p{x:g}" for x in pcts)
            mixed_pct |= len(pcts) > 1
            ttft, itl = p.ttft_ms, p.itl_ms
            t.add_row(model, p.role, p.gpu, f"{p.tp}{precision_suffix(p.weight_dtype, p.kv_dtype)}", str(p.replicas), str(p.gpus),
                      f"{p.cost_per_hour:,.2f}",
                      f"{p.utilization:.0%}",
                      f"{ttft:.0f} ({pct})" if ttft is not None and pct else "-",
                      f"{itl:.1f} ({pct})" if itl is not None and pct else "-", p.law_source or p.source)
    if mixed_pct:
        t.caption = ("several percentiles (pA/pB): the worst of the pool's classes, each at its own SLO percentile "
                     "(`planner explain`: per class)")
    return t


def print_plan(plan: Plan) -> None:
    """The plan's pools table, totals and solver facts (or its diagnosis when infeasible)."""
    if not plan.feasible and plan.solver.status == "time_limit":  # no plan found in time: not shown infeasible
        console.print("[bold red]No plan within the solver's time limit.[/]")
        for d in plan.diagnosis:
            console.print(f"  • {d}")
        return
    if not plan.feasible:
        console.print("[bold red]Infeasible.[/] What binds and what would make it feasible:")
        for d in plan.diagnosis:
            console.print(f"  • {d}")
        return
    console.print(plan_table(plan))
    gpus = ", ".join(f"{n} x {g}" for g, n in sorted(plan.gpus.items()))
    power = f"   power {plan.power_kw:,.1f} kW at TDP" if plan.power_kw is not None else ""
    console.print(f"[bold]Total[/]: ${plan.cost_per_hour:,.2f}/h   GPUs: {gpus}{power}")
    for model, mp in plan.models.items():
        console.print(f"  {model}: {pd_summary(mp)}")
    s = plan.solver
    gap = f"{s.gap * 100:.3f}%" if s.gap is not None else "n/a"
    for n in plan.notes:
        console.print(f"[yellow]note:[/] {n}", highlight=False)
    unit = f" {s.objective_unit}" if s.objective_unit else ""

    def num(x: float | None) -> str:
        return "n/a" if x is None else f"{x + 0.0:,.6g}{unit}"  # + 0.0: a solver's -0.0 prints as 0

    console.print(f"Solver: {s.backend} {s.status}, objective {num(s.objective)}, bound {num(s.bound)}, gap {gap}, {s.seconds:.2f}s")
    if plan.load_multiplier is not None:
        console.print(f"[bold]Load multiplier[/]: {plan.load_multiplier:.3f}x the workload fits this fleet within SLO")


def given(ctx: typer.Context, param: str) -> bool:
    """Whether the command line gave option `param` (its Python name), even at its default value: click's parameter
    source, its enum compared by name, as its module differs between typer versions (typer 0.29 vendors click)."""
    source = ctx.get_parameter_source(param)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT", "PROMPT")


@app.command()
@friendly_errors
def solve(
    ctx: typer.Context,
    workload: Path = typer.Option(..., "--workload", "-w", help="workload YAML (models with SLOs, request classes)"),
    fleet: Path = typer.Option(..., "--fleet", "-f", help="fleet YAML (GPU inventory, limits, current replicas)"),
    profiles: Path | None = typer.Option(None, "--profiles", help="profile root (default: the bundled profiles/data)"),
    backend: str = typer.Option("highs", "--backend", "-b", help=backend_help()),
    objective: str = typer.Option("cost", "--objective", help=objective_help()),
    time_limit_s: float = typer.Option(10.0, "--time-limit", min=0.01, max=86400.0, help="solver time limit, seconds"),
    output: Path | None = typer.Option(None, "--output", "-o", help="write the plan here (.yaml or .json)"),
    verify: bool | None = typer.Option(
        None, "--verify/--no-verify",
        help="simulate the plan; tighten and re-solve where SLO attainment is short. Default: only a plan that predicts "
             "a class over its SLO behind its pools' mix of classes (rule 58-V)"),
    verify_rounds: int = typer.Option(DEFAULT_VERIFY_ROUNDS, "--verify-rounds", min=0,
                                      help="most re-solves when verifying (with --verify or --verify-trace)"),
    seed: int = typer.Option(0, "--seed", min=0, help="simulation seed (with --verify or --verify-trace)"),
    verify_trace: Path | None = typer.Option(
        None, "--verify-trace",
        help="verify (implies --verify) against this request trace's own requests, their arrival times and lengths, "
             "instead of Poisson arrivals of the classes (timestamp,model,input_tokens,output_tokens; or an Azure, "
             "BurstGPT or Mooncake trace)"),
    verify_duration_s: float | None = typer.Option(None, "--verify-duration-s", min=1.0,
                                                   help="with --verify-trace: its first seconds only (default: all of it); "
                                                        "with --verify: seconds of Poisson arrivals (default 600)"),
    drop_over_context: bool = typer.Option(
        False, "--drop-over-context", help="with --verify-trace: leave out its requests beyond their model's context, as "
                                           "vLLM refuses them (default: such a request is an error naming its row)"),
    slo_cost: bool = typer.Option(True, "--slo-cost/--no-slo-cost",
                                  help="also price each SLO term (re-solves with each bound tightened/loosened 25%)"),
) -> None:
    """Cheapest plan (pools, replicas, routing) that meets the workload's SLOs on the fleet."""
    from planner.io.catalog import Catalog
    from planner.io.files import check_writable
    from planner.io.planfile import save_plan
    from planner.io.validate import check_profiles_found, load_workload_fleet
    from planner.perf.laws import PerfModel
    from planner.planning.assemble import plan_workload, serves_no_share
    from planner.planning.verify import verified_by_default, verify_and_resolve

    if backend not in backend_names():
        raise typer.BadParameter(f"--backend must be {choices_text(backend_names())}, got {backend!r}")
    if objective not in objective_names():
        raise typer.BadParameter(f"--objective must be {choices_text(objective_names())}, got {objective!r}")
    # the options that act only while verifying: given without what they need they were silently ignored (found by a
    # helper: `--seed 5 --verify-rounds 7 --verify-duration-s 30 --drop-over-context` without --verify
    # solved and wrote the plan, exit 0); told before any work, naming the first one given
    verifying = "--verify or --verify-trace"
    for param, name, needs, does in (
            ("seed", "--seed", verifying, "it seeds the simulation that verifies the plan"),
            ("verify_rounds", "--verify-rounds", verifying, "it bounds the re-solves of verifying"),
            ("verify_duration_s", "--verify-duration-s", verifying, "it is the verifying simulation's length"),
            ("drop_over_context", "--drop-over-context", "--verify-trace",
             "it leaves out the verifying trace's requests beyond their model's context")):
        if given(ctx, param) and not (verify_trace is not None or (verify is not False and needs == verifying)):
            raise InputError(None, name, f"needs {needs} ({does}); given without, it would be ignored")
    if output is not None:
        check_writable(output, "--output")  # before the solve, so that no work is lost
    catalog = Catalog.load()
    wl, fl = load_workload_fleet(workload, fleet, catalog)
    arrivals = None
    if verify_trace is not None:  # read and mapped to the classes before any solve: a bad trace is exit 2, no work lost
        from planner.io.traces import has_model_column, over_context_note, read_trace, time_unit_note, zero_token_note
        from planner.simulate.arrivals import trace_arrivals

        single = next(iter(wl.models)) if len(wl.models) == 1 else None
        if single is None and not has_model_column(verify_trace):
            raise InputError(str(verify_trace), "model", f"the trace has no model column and the workload has several "
                             f"models ({', '.join(sorted(wl.models))}): --verify-trace needs a trace whose model column "
                             "names them, or a workload of one model")
        contexts = catalog.contexts(wl.models)
        requests = read_trace(verify_trace, single, contexts, drop_over_context=drop_over_context)
        for note in (time_unit_note(requests), over_context_note(requests, contexts), zero_token_note(requests)):
            if note:
                console.print(note, highlight=False)
        arrivals = trace_arrivals(requests.rename(columns={"t_s": "timestamp"}), wl, str(verify_trace), model=single,
                                  duration_s=verify_duration_s)
        verify = True
    perf = PerfModel.load(catalog=catalog, profiles_dir=profiles)
    check_profiles_found(len(perf.measured), profiles)
    with console.status(f"sizing {len(wl.classes):,} classes on every allowed pool, then solving the ILP…"):
        plan = plan_workload(wl, fl, perf, catalog, backend=backend, time_limit_s=time_limit_s, objective=objective)
    if slo_cost and plan.feasible and objective == "cost":
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from planner.planning.assemble import slo_costs, slo_terms

        # two re-plans per term (tighter, looser): a bar, as a 7-model workload's 14 terms take minutes
        with Progress(TextColumn("pricing each SLO term: {task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("", total=len(slo_terms(wl)))
            plan.slo_costs = slo_costs(wl, fl, perf, catalog, backend=backend, time_limit_s=time_limit_s,
                                       on_term=lambda done, name: bar.update(task, description=name, completed=done))
    if verify is None and (judged := verified_by_default(plan, objective)):
        # rule 58-V: the plan's own prediction contradicts a SLO it was sized for, or (rule 60-N) a class sharing a pool
        # is predicted within VERIFY_MARGIN of its SLO, where the mix forms read low: a simulation judges it
        from planner.planning.assemble import classes_over_slo
        from planner.planning.verify import VERIFY_MARGIN

        over = set(classes_over_slo(plan))
        said = [f"{', '.join(c for c in judged if c in over)} over their SLO"] if over else []
        if near := [c for c in judged if c not in over]:
            said.append(f"{', '.join(near)} within {1.0 - VERIFY_MARGIN:.0%} of it")
        console.print(f"verifying: the plan predicts {' and '.join(said)} behind their pools' mix of classes "
                      "(--no-verify skips this)", highlight=False)
        verify = True
    if verify and plan.feasible:
        from planner.simulate.attainment import DEFAULT_VERIFY_DURATION_S

        plan = verify_and_resolve(wl, fl, perf, catalog, plan, backend=backend, time_limit_s=time_limit_s,
                                  rounds=verify_rounds, seed=seed, console=console, arrivals=arrivals,
                                  arrivals_source=str(verify_trace) if verify_trace is not None else None,
                                  duration_s=verify_duration_s if verify_duration_s and arrivals is None
                                  else DEFAULT_VERIFY_DURATION_S)
    if profiles is not None:  # said in the plan, so that `planner simulate` times its pools with the same laws
        plan.profiles_root = str(profiles.resolve())
    print_plan(plan)
    if output is not None:
        save_plan(output, plan)
        console.print(f"plan written to {output}")
    if not plan.feasible or serves_no_share(plan):  # max_load at 0x: no share fits (the plan's note says why)
        raise typer.Exit(EXIT_INFEASIBLE)


@app.command("explain")
@friendly_errors
def explain_cmd(
    plan_path: Path | None = typer.Argument(None, help="plan file written by `planner solve`"),
    plan_option: Path | None = typer.Option(None, "--plan", help="the plan file, as `planner simulate --plan` takes it"),
) -> None:
    """Binding constraints of a plan and what each class is predicted to see against its SLO."""
    from planner.io.errors import InputError
    from planner.io.planfile import load_plan
    from planner.planning.explain import explain

    # `simulate` takes --plan; `explain --plan P` was "No such option" (found by hand at stop 52): either form is read
    chosen = plan_path or plan_option
    if chosen is None or (plan_path is not None and plan_option is not None):
        raise InputError(None, "--plan", "one plan file, as `planner explain PLAN` or `planner explain --plan PLAN`; got "
                         + ("none" if chosen is None else f"two ({plan_path} and {plan_option})"))
    for line in explain(load_plan(chosen)):
        console.print(line, highlight=False)


@workload_app.command("from-trace")
@friendly_errors
def workload_from_trace(
    trace: Path = typer.Argument(..., help="trace CSV: timestamp,model,input_tokens,output_tokens (timestamp in seconds "
                                 "or date-times; timestamp_ms, _us, _ns or _s in its place states its unit); or an Azure "
                                 "(TIMESTAMP,ContextTokens,GeneratedTokens), BurstGPT (Timestamp,Request tokens,Response "
                                 "tokens) or Mooncake (JSON lines: timestamp ms, input_length, output_length) trace"),
    model: str | None = typer.Option(None, "--model", help="model of a trace without a model column"),
    ttft_ms: float = typer.Option(1000.0, "--ttft-ms", help="TTFT bound of the SLO, ms"),
    itl_ms: float = typer.Option(50.0, "--itl-ms", help="ITL bound of the SLO, ms"),
    percentile: float = typer.Option(90.0, "--percentile", help="SLO percentile"),
    isl_buckets: int = typer.Option(3, "--isl-buckets", min=1, max=100, help="input-length buckets per model"),
    osl_buckets: int = typer.Option(2, "--osl-buckets", min=1, max=100, help="output-length buckets per model"),
    rate_quantile: float | None = typer.Option(
        None, "--rate-quantile", help="size classes for this quantile of the per-minute rate (e.g. 0.9) instead of the mean"),
    poisson: bool = typer.Option(False, "--poisson", help="do not measure burstiness: the classes are Poisson"),
    length_spread: bool = typer.Option(
        False, "--length-spread/--mean-lengths",
        help="write each class's prompt-length spread (isl_scv, isl_max), so the prefill TTFT model waits as M/G/1 "
             "and counts each request's own prompt, and its output-length spread (osl_scv), so the decode KV check "
             "counts the running batch's length-biased reservations (planner/planning/capacity.py, Prompt- and "
             "Output-length dispersion); off by default: on bench/fidelity_lengths.py's tuning traces it bought "
             "replicas that passing plans did not need"),
    output: Path | None = typer.Option(None, "--output", "-o", help="write the workload YAML here"),
) -> None:
    """Bucket a request trace into request classes (ISL x OSL per model) with rates."""
    from planner.io.catalog import Catalog
    from planner.io.errors import InputError
    from planner.io.files import check_writable, dump_yaml, write_atomic
    from planner.io.traces import (
        bucket_trace,
        busy_window_note,
        check_rate_span,
        duplicate_note,
        over_context_note,
        prefix_block_reuse,
        read_trace,
        time_unit_note,
        zero_token_note,
    )
    from planner.io.validate import slo_from_options

    slo = slo_from_options(ttft_ms, itl_ms, percentile)
    if rate_quantile is not None and not (0.0 <= rate_quantile <= 1.0):
        raise InputError(None, "--rate-quantile", f"expected a quantile in [0, 1] (e.g. 0.9), got {rate_quantile:g}")
    if output is not None:
        check_writable(output, "--output")
    catalog = Catalog.load()
    # requests beyond their model's context (the catalog's, where it knows the model) are left out and said: vLLM
    # refuses them, so no class of the workload may hold them (found by hand at stop 54: the README's Azure example
    # bucketed Llama-2-70B's 1,612 over-context requests into its classes, and `planner simulate` then refused the trace)
    contexts = catalog.contexts(catalog.models)
    tr = read_trace(trace, model, contexts=contexts, drop_over_context=True)
    # the 0-token requests its classes count as 1 token, as `planner simulate` says them (found in QA: not a word here)
    for note in (time_unit_note(tr), over_context_note(tr, contexts), zero_token_note(tr), duplicate_note(tr)):
        if note:
            console.print(note, highlight=False)
    check_rate_span(tr, trace)
    # bucketed once with the spread measured; without --length-spread it is only noted, not written
    measured = bucket_trace(tr, slo, isl_buckets, osl_buckets, rate_quantile=rate_quantile, burstiness=not poisson,
                            length_spread=True)
    wl = measured if length_spread else measured.model_copy(update={"classes": [
        c.model_copy(update={"isl_scv": None, "isl_max": None, "osl_scv": None}) for c in measured.classes]})
    t = Table(title=f"{len(tr):,} requests over {tr['t_s'].max():,.0f} s")
    cols = ["class", "isl", "osl", "rate req/s", "IDC 1s", "IDC 10s", "p99 prompt tok/s"] + (
        ["isl cv²", "isl max", "osl cv²"] if length_spread else [])
    for col in cols:
        t.add_column(col)
    for c in wl.classes:
        b = c.burstiness
        t.add_row(c.id, str(c.isl), str(c.osl), f"{c.rate_rps:.3f}", f"{b.idc_1s:.2f}" if b else "-",
                  f"{b.idc_10s:.2f}" if b and b.idc_10s is not None else "-",
                  f"{b.p99_prompt_tokens_per_s:.0f}" if b and b.p99_prompt_tokens_per_s is not None else "-",
                  *([f"{c.isl_scv:.2f}" if c.isl_scv is not None else "-", str(c.isl_max or "-"),
                     f"{c.osl_scv:.2f}" if c.osl_scv is not None else "-"] if length_spread else []))
    console.print(t)
    # each model's rate rests on its own requests, not the trace's (found by hand: 90 + 9 requests of two models were
    # noted '99 requests: each model's rate is known to about ±10%', the 9-request model's is ±33%; 1,991 + 9 no note)
    few = {str(m): int(n) for m, n in tr["model"].value_counts().sort_index().items() if n < FEW_REQUESTS}
    if few and len(wl.models) == 1:
        console.print(f"note: {plural(len(tr), 'request')}: each model's rate is known to about ±{100 / math.sqrt(len(tr)):.0f}% "
                      "(one standard error of a Poisson count), a class's less; a longer trace narrows it",
                      highlight=False)
    elif few:
        console.print("note: " + "; ".join(
            f"{m}'s {plural(n, 'request')} give its rate to about ±{100 / math.sqrt(n):.0f}%" for m, n in few.items())
            + " (one standard error of a Poisson count), a class's less; a longer trace narrows it", highlight=False)
    elif len(tr) < FEW_REQUESTS * len(wl.classes):
        console.print(f"note: {len(wl.classes):,} classes from {len(tr):,} requests ({len(tr) / len(wl.classes):.1f} a "
                      f"class on average, fewer than {FEW_REQUESTS}): a class's rate is known to worse than "
                      f"±{100 / math.sqrt(FEW_REQUESTS):.0f}%, and `planner solve`'s time grows with the classes; fewer "
                      "buckets (--isl-buckets, --osl-buckets) pool them", highlight=False)
    if not length_spread:
        # what the mean-length classes leave out (bench/fidelity_lengths.py: at cv² ~0.66 mean-length TTFT runs
        # 25-50% under the simulator's with the spread)
        spread = max(((c.isl_scv or 0.0, c.id) for c in measured.classes), default=(0.0, ""))
        if spread[0] > 0:
            console.print(f"note: prompt lengths spread within the classes (largest cv² {spread[0]:.2f}, {spread[1]}); "
                          "--length-spread states it, so that TTFT is sized for it (README, Prompt-length spread)",
                          highlight=False)
        out_spread = max(((c.osl_scv or 0.0, c.id) for c in measured.classes), default=(0.0, ""))
        if out_spread[0] > 0:
            console.print(f"note: output lengths spread within the classes (largest cv² {out_spread[0]:.2f}, "
                          f"{out_spread[1]}); --length-spread states it, so that decode KV is sized for it (README, "
                          "Output-length spread)", highlight=False)
    idc = {m: max((c.burstiness.idc_10s or c.burstiness.idc_1s if c.burstiness else 1.0) for c in wl.classes if c.model == m)
           for m in wl.models}
    written = {m: sum(c.rate_rps for c in wl.classes if c.model == m) for m in wl.models}
    if busy := busy_window_note(tr, written, idc):
        console.print(busy, highlight=False)
    reuse = prefix_block_reuse(trace)
    if reuse:  # Mooncake's hash_ids: prefix caching is not modelled, every prompt token is prefilled (the safe side)
        console.print(f"note: {reuse:.0%} of the prompts' blocks (the trace's hash_ids) repeat an earlier request's: vLLM's "
                      "prefix cache could skip their prefill; the plan sizes prefill for every prompt token (prefix "
                      "caching is not modelled)", highlight=False)
    for m in sorted(set(wl.models) - set(catalog.models)):  # written anyway (the catalog may get it), said now
        console.print(f"note: `planner solve` refuses this workload until the catalog knows {m}: "
                      f"{catalog.unknown_model_text(m)}", highlight=False)
    text = dump_yaml(wl.model_dump(mode="json", exclude_none=True))
    if output is not None:
        write_atomic(output, text)
        console.print(f"workload written to {output}")
    else:
        sys.stdout.write(text)


# --- the other commands, one module of planner/cli/ each
simulate.register(app)  # simulate, emulate
whatif.register(app)  # whatif
control.register(app)  # control
profile.register(app)  # profile, profile show
catalog.register(app)  # catalog import-hf, catalog list
synth.register(workload_app)  # workload synth
whole_summaries(app)  # the command lists give each summary whole


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
