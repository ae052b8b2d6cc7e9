"""`planner whatif`: the scaling and price questions on the command line, as Rich tables.

    planner whatif -w examples/default/workload.yaml -f examples/default/fleet.yaml \\
        --traffic 0.5,1,2,4 --price H100-SXM-80GB=2.5 --add-gpu H200-141GB=16 --remove-gpu L40S

prints (1) cost and GPUs when every class's rate is multiplied by each --traffic factor, and
(2) the baseline next to each single change (a GPU price, GPUs added, a GPU type removed), with
the cost change against the baseline. `--headroom` adds how much more traffic the fleet as it
stands takes within SLO; `--pairing` what it costs to pair prefill and decode only on the same GPU
type (and TP). Each row is one ILP solve (planner.planning.whatif). Exit 3 (as `planner solve`'s infeasible plan) when
every point asked is infeasible (a headroom of 0x, some model with no pool within SLO, counts as such), after its
tables and CSV are written; 0 when any point is feasible.

``register(app)`` adds the command to the root app (planner/cli/main.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import typer
from rich.table import Table

from planner.cli.console import stdout_console
from planner.io.errors import InputError
from solvers import backend_help, backend_names, choices_text  # the registry of solver backends

DEFAULT_TRAFFIC = "0.5,1,2,4"


def parse_factors(text: str, option: str = "--traffic") -> list[float]:
    """'0.5,1,2' -> [0.5, 1.0, 2.0]; every factor must be a positive number."""
    out: list[float] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            f = float(part)
        except ValueError:
            raise InputError(None, option, f"expected comma-separated positive numbers (e.g. {DEFAULT_TRAFFIC}), got {part!r}") from None
        if not math.isfinite(f) or f <= 0:
            raise InputError(None, option, f"expected positive factors, got {part!r}")
        out.append(f)
    if not out:
        raise InputError(None, option, f"expected at least one factor (e.g. {DEFAULT_TRAFFIC})")
    return out


def parse_assignments(items: list[str], option: str, what: str, integer: bool = False,
                      check: Callable[[float], float] | None = None) -> list[tuple[str, float]]:
    """['H100=2.5', 'L40S=1', 'H100=4'] -> [('H100', 2.5), ('L40S', 1.0), ('H100', 4.0)]; values must be positive, or
    pass `check` (a ValueError saying what is expected, e.g. schema.check_price_per_hour: a price's range and how owned
    GPUs are priced, where 'positive' alone let 1e20 and 1e-10 through, found in QA at stop 58).

    A list, not a dict: one GPU type given twice is two scenarios (found by hand: `--price H100-SXM-80GB=2 --price
    H100-SXM-80GB=3` solved only the $3 one, without a word)."""
    out: list[tuple[str, float]] = []
    for item in items:
        gpu, sep, value = item.partition("=")
        gpu, value = gpu.strip(), value.strip()
        try:
            v = int(value) if integer else float(value)
        except ValueError:
            v = None
        if not sep or not gpu or v is None or not math.isfinite(v) or (check is None and v <= 0):
            raise InputError(None, option, f"expected GPU={what} with a positive {'integer' if integer else 'number'}, got {item!r}")
        if check is not None:
            try:
                check(float(v))
            except ValueError as exc:
                raise InputError(None, option, f"{exc}; got {item!r}") from None
        out.append((gpu, float(v)))
    return out


NO_SHARE = ("this fleet serves no share of today's traffic within SLO: some model has no pool the fleet can run within "
            "its SLO (`planner solve` says what binds)")
"""What a headroom row of load multiplier 0 says (its solve is feasible: the fleet at no load)."""


def _answered(question: str, df: pd.DataFrame) -> pd.Series:
    """Per row, whether it is a feasible answer for the exit code: a feasible plan, and for the headroom a multiplier
    above 0 (found in QA: `planner whatif --headroom` on a fleet of one L40S said 'serves no share of today's
    traffic' and exited 0, its max-load solve feasible at multiplier 0)."""
    ok = df["feasible"].astype(bool)
    return ok & (df["load_multiplier"] > 0) if question == "headroom" else ok


def _cost_where(df: pd.DataFrame, key: str, value: object) -> float | None:
    """The cost of the row whose `key` is `value` (the baseline a table compares against), if any."""
    b = df.loc[df[key] == value, "cost_per_hour"]
    return float(b.iloc[0]) if len(b) else None


def _money(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"${x:,.2f}"


def _gpu_mix(row: pd.Series, gpu_cols: list[str]) -> str:
    parts = [f"{int(row[c])} {c.removeprefix('gpus_')}" for c in gpu_cols if pd.notna(row[c]) and row[c] > 0]
    return "\n".join(parts) or "-"


def results_table(df: pd.DataFrame, key: str, key_title: str, title: str, baseline_cost: float | None) -> Table:
    """A what-if DataFrame as a Rich table: key, cost, change vs baseline, GPUs, mix (one type a line),
    share of requests served disaggregated, and a note (solver status when not proven optimal, or why
    a point is infeasible)."""
    t = Table(title=title)
    for col, just in ((key_title, "left"), ("$/h", "right"), ("vs base", "right"), ("GPUs", "right"),
                      ("GPU mix", "left"), ("P/D", "right"), ("note", "left")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    gpu_cols = [c for c in df.columns if c.startswith("gpus_")]
    for _, r in df.iterrows():
        k = r[key]
        key_txt = f"x{k:g}" if isinstance(k, float) else str(k)
        if r["feasible"]:
            delta = "-"
            if baseline_cost and not math.isnan(baseline_cost):
                delta = f"{(r['cost_per_hour'] / baseline_cost - 1):+.1%}"
            share = r["disaggregated_share"]
            notes = [] if r["status"] == "optimal" else [str(r["status"])]
            if r["prior_gpus"] > 0:
                notes.append(f"{int(r['prior_gpus'])} of {int(r['gpus'])} GPUs planned from the roofline prior (no profile)")
            if r.get("over_slo"):
                notes.append(f"predicts {r['over_slo']} over their SLO behind their pools' mix (`planner solve` verifies "
                             "such a plan)")
            t.add_row(key_txt, _money(r["cost_per_hour"]), delta, str(int(r["gpus"])), _gpu_mix(r, gpu_cols),
                      "-" if pd.isna(share) else f"{share:.0%}", "; ".join(notes))
        else:
            t.add_row(key_txt, "[red]infeasible[/]", "-", "-", "-", "-", str(r["diagnosis"]))
    return t


def summarise_binding(binding: str) -> str:
    """Binding constraints, '; '-joined, in short: every non-capacity one in full, pools at their
    utilization target counted (at the max-load optimum nearly every pool is)."""
    parts = [b for b in binding.split("; ") if b]
    at_target = [b for b in parts if b.startswith("pool ") and "utilization target" in b]
    rest = [b for b in parts if b not in at_target]
    if at_target:
        rest.append(f"{len(at_target)} pool(s) at their utilization target")
    return "; ".join(rest) or "none"


def register(app: typer.Typer) -> None:
    """Add `whatif` to the planner CLI."""

    @app.command("whatif")
    def whatif_cmd(
        workload: Path = typer.Option(..., "--workload", "-w", help="workload YAML (models with SLOs, request classes)"),
        fleet: Path = typer.Option(..., "--fleet", "-f", help="fleet YAML (GPU inventory, limits)"),
        traffic: list[str] = typer.Option(  # repeatable: `--traffic 1 --traffic 2` solved only x2 (found in QA)
            [], "--traffic", metavar="F,F,...", help=f"comma-separated traffic factors, repeatable (default {DEFAULT_TRAFFIC} when no other "
            "question is asked)"),
        price: list[str] = typer.Option(
            [], "--price", metavar="GPU=USD",
            help="GPU=USD per GPU-hour; repeatable: each change is a scenario of its own against the baseline"),
        add_gpu: list[str] = typer.Option(
            [], "--add-gpu", metavar="GPU=N",
            help="GPU=count: add this many GPUs of a type (new or existing); repeatable, each a scenario of its own"),
        remove_gpu: list[str] = typer.Option(
            [], "--remove-gpu", metavar="GPU",
            help="GPU type to remove from the fleet; repeatable, each a scenario of its own (not removed together)"),
        headroom: bool = typer.Option(False, "--headroom", help="also: how much more traffic the fleet as it stands takes within SLO"),
        pairing: bool = typer.Option(False, "--pairing", help="also: what restricting P->D pairing to the same GPU type (and TP) costs"),
        profiles: Path | None = typer.Option(None, "--profiles", help="profile root (default: the bundled profiles/data)"),
        backend: str = typer.Option("highs", "--backend", "-b", help=backend_help()),
        time_limit_s: float = typer.Option(10.0, "--time-limit", min=0.01, max=86400.0,
                                            help="solver time limit per point, seconds (as `planner solve` takes it)"),
        csv: Path | None = typer.Option(None, "--csv", help="also write all rows to this CSV (atomically)"),
    ) -> None:
        """What if traffic grows, GPU prices change, or GPU types are added or removed? Cost and GPUs per case.

        Exit 3 (as `planner solve`) when every point is infeasible, after the tables and --csv are written."""
        from planner import whatif
        from planner.api import SolveOptions
        from planner.cli.console import EXIT_INFEASIBLE, friendly_errors
        from planner.io.files import write_csv_atomic
        from planner.io.schema import MAX_GPUS_AVAILABLE, MAX_RATE_RPS, Fleet, Workload, check_price_per_hour

        @friendly_errors
        def run() -> None:
            if backend not in backend_names():
                raise InputError(None, "--backend", f"expected {choices_text(backend_names())}, got {backend!r}")
            from planner.api import laws
            from planner.io.files import check_writable
            from planner.io.validate import check_profiles_found, load_workload_fleet

            if csv is not None:
                check_writable(csv, "--csv")  # before the solves, so that no work is lost
            catalog, perf = laws(profiles)
            check_profiles_found(len(perf.measured), profiles)
            wl, fl = load_workload_fleet(workload, fleet, catalog)
            prices = parse_assignments(price, "--price", "USD_per_hour", check=check_price_per_hour)
            adds = [(g, int(n)) for g, n in parse_assignments(add_gpu, "--add-gpu", "count", integer=True)]
            priced = [g for g, _ in prices]
            for g in [*priced, *remove_gpu]:
                if g not in fl.gpus:
                    opt = "--price" if g in priced else "--remove-gpu"
                    raise InputError(str(fleet), f"gpus.{g}", f"{opt} names GPU type '{g}', which the fleet does not have "
                                     f"(fleet GPUs: {', '.join(sorted(fl.gpus))})")
            if remove_gpu and len(fl.gpus) == 1:  # found in QA: the fleet without it has no GPU, a pydantic traceback
                raise InputError(None, "--remove-gpu", f"'{remove_gpu[0]}' is the only GPU type of {fleet}, and a fleet "
                                 "without GPUs plans nothing; expected a type of a fleet that holds another one "
                                 "(--add-gpu GPU=N prices a fleet with more types)")
            for g, n in adds:
                catalog.gpu(g, "--add-gpu")  # an unknown GPU type is an InputError naming the option and the known ones
                have = fl.gpus[g].available if g in fl.gpus else 0
                if have + n > MAX_GPUS_AVAILABLE:  # found in QA: L40S=99999999999999 was a pydantic traceback, after
                    # the traffic sweep's solves
                    raise InputError(None, "--add-gpu", f"expected at most {MAX_GPUS_AVAILABLE - have:,} {g} GPUs to add "
                                     f"({fleet} has {have:,}; a fleet holds at most {MAX_GPUS_AVAILABLE:,} of a type), "
                                     f"got {n:,}")
            kw: SolveOptions = {"perf": perf, "catalog": catalog, "backend": backend, "time_limit_s": time_limit_s}
            console = stdout_console()
            if fl.limits.max_step is not None and fl.current:
                # the controller's pacing (found by hand at stop 51: traffic x8 was 'infeasible' because one pool could
                # not grow by more than max_step in one re-plan): a what-if asks what the fleet costs at each point
                console.print(f"note: {fleet}'s limits.max_step ({fl.limits.max_step}) paces the controller's re-plans "
                              "from its current replicas; each case here is planned without it (the fleet that case "
                              "needs, however many re-plans it takes to get there)", highlight=False)
                fl = fl.model_copy(update={"limits": fl.limits.model_copy(update={"max_step": None})})
            frames: dict[str, pd.DataFrame] = {}
            asked_changes = bool(prices or adds or remove_gpu)
            factors = parse_factors(",".join(traffic)) if traffic else (
                None if asked_changes or headroom or pairing else parse_factors(DEFAULT_TRAFFIC))

            if factors:
                try:  # whatif.traffic checks every factor before its first solve (the ILP's rate range)
                    with console.status(f"solving {len(factors)} traffic points…"):
                        df = whatif.traffic(wl, fl, factors, **kw)
                except whatif.TrafficFactorError as exc:
                    raise InputError(None, "--traffic", f"factors up to {exc.cap:.4g}, which keep every class of "
                                     f"{workload} within {MAX_RATE_RPS:g} req/s (the planner's rate range); "
                                     f"got {exc.factor:g}") from None
                console.print(results_table(df, "traffic_factor", "traffic", "What if traffic changes? (every class's rate x factor)",
                                            _cost_where(df, "traffic_factor", 1.0)))
                frames["traffic"] = df
            if asked_changes:
                scen: dict[str, tuple[Workload, Fleet]] = {"baseline": (wl, fl)}
                for g, p in prices:
                    scen[f"{g} at ${p:g}/h"] = (wl, whatif.with_price(fl, g, p))
                for g, n in adds:
                    scen[f"+{n} {g}"] = (wl, whatif.with_gpu(fl, g, n))
                for g in remove_gpu:
                    scen[f"without {g}"] = (wl, whatif.without_gpu(fl, g))
                with console.status(f"solving {len(scen)} scenarios…"):
                    df = whatif.compare(scen, **kw)
                console.print(results_table(df, "scenario", "scenario", "What if GPU prices or the GPU mix change?",
                                            _cost_where(df, "scenario", "baseline")))
                frames["fleet"] = df
            if pairing:
                with console.status("solving 3 pairing policies…"):
                    df = whatif.pairing(wl, fl, **kw)
                console.print(results_table(df, "pairing", "P->D pairing", "What if prefill may hand KV only to the same GPU type (and TP)?",
                                            _cost_where(df, "pairing", "any")))
                frames["pairing"] = df
            if headroom:
                with console.status("solving for the largest load multiplier…"):
                    df = whatif.headroom(wl, fl, **kw)
                r = df.iloc[0]
                if r["feasible"] and not r["load_multiplier"] > 0:  # factor 0: some model has no pool within SLO
                    console.print(f"[bold red]Headroom[/]: {NO_SHARE}")
                elif r["feasible"] and r["load_capped"]:  # found in QA at stop 58: 1e6 H100s read 51,961x
                    console.print(f"[bold]Headroom[/]: this fleet serves >= {r['load_multiplier']:.2f}x today's traffic "
                                  f"within SLO (the largest rate planned: every class within {MAX_RATE_RPS:g} req/s, the "
                                  f"planner's rate range; {int(r['gpus'])} of {int(r['inventory_gpus'])} GPUs)")
                elif r["feasible"]:
                    console.print(f"[bold]Headroom[/]: this fleet serves {r['load_multiplier']:.2f}x today's traffic within SLO "
                                  f"({int(r['gpus'])} of {int(r['inventory_gpus'])} GPUs); what binds: {summarise_binding(r['binding'])}")
                else:
                    console.print(f"[bold red]Headroom[/]: the fleet cannot serve today's traffic within SLO: {r['diagnosis']}")
                frames["headroom"] = df
            if csv is not None and frames:
                write_csv_atomic(csv, whatif.stack(frames))
                console.print(f"rows written to {csv}")
            if frames and not any(_answered(q, df).any() for q, df in frames.items()):
                # `planner solve`'s exit for an infeasible plan (found in QA at stop 58: a fleet of one L40S exited 0
                # with every row 'infeasible'); the tables and the CSV are still written, a record of the question
                first = next(str(d) if not ok else NO_SHARE for df in frames.values()
                             for ok, d in zip(df["feasible"].astype(bool), df["diagnosis"], strict=True))
                console.print(f"[bold red]Every point is infeasible[/] (the tables above{' and ' + str(csv) if csv else ''} "
                              f"say each one's diagnosis); the first: {first}", highlight=False)
                raise typer.Exit(EXIT_INFEASIBLE)

        run()
