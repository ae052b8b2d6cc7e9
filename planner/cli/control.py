"""`planner control`: run the controller from a config file (see controllers/config.py).

    planner control --config C.yaml [--dry-run] [--once]

--dry-run prints the decision and the diff against the fleet and changes nothing;
--once runs one interval and exits (cron-style use, and smoke tests): exit 3 (EXIT_INFEASIBLE, as `planner solve`)
where that interval holds the fleet because no plan meets the SLOs, with the diagnosis `planner solve` gives; exit 1
(EXIT_SOLVER_ERROR) where it holds because the solver itself failed.
A decision that holds the fleet is logged at WARNING, every interval (the loop keeps running and holding).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from controllers.actuators.kubernetes import kube_api_client, label_scheme
from controllers.config import ControllerConfig, load_config
from controllers.correct import PerfSource
from planner.cli.console import friendly_errors
from planner.io.schema import Fleet

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from controllers.loop import Controller, Decision

__all__ = ["build_controller", "decision_text", "holds_for_no_plan", "holds_for_solver_error", "kube_api_client",
           "label_scheme", "register", "report_decision"]


def build_controller(cfg: ControllerConfig, fleet: Fleet, dry_run: bool, api_client: ApiClient | None = None,
                     perf: PerfSource | None = None, sim: object | None = None,
                     clock: Callable[[], float] | None = None, one_shot: bool = False) -> Controller:
    """Wire the observer and the actuator registered under `cfg.observer` and `cfg.actuator.kind`
    (controllers/observers/, controllers/actuators/), the elector the actuator asks for, and the
    metrics; the parts tests swap (Kubernetes client, performance model, simulator) are arguments.
    `one_shot` (--once): an infeasible plan's diagnosis is refined to exact numbers (default_plan_fn)."""
    from controllers.actuators import ActuatorContext, build_actuator
    from controllers.loop import Controller, default_plan_fn
    from controllers.metrics import ControllerMetrics
    from controllers.observers import ObserverContext, build_observer

    metrics = ControllerMetrics()
    observer = build_observer(ObserverContext(cfg, sim=sim))
    actuation = build_actuator(ActuatorContext(cfg, fleet, metrics.registry, api_client=api_client,
                                               make_api_client=kube_api_client, sim=sim, clock=clock,
                                               dry_run=dry_run))
    if perf is None:
        from planner.perf.laws import PerfModel

        perf = PerfModel.load()
    return Controller(cfg, fleet, observer, actuation.actuator, perf, metrics=metrics, elector=actuation.elector,
                      dry_run=dry_run, plan_fn=default_plan_fn(cfg.backend, cfg.solver_time_limit_s,
                                                               refine_diagnosis=one_shot))


def prior_only_models(models: Iterable[str], fleet_gpus: Iterable[str], measured_gpus: Callable[[str], frozenset[str]]
                      ) -> dict[str, list[str]]:
    """Models with no profile on any of the fleet's GPU types (-> those GPU types): the controller plans them from the
    roofline prior alone, which `planner solve` notes on every plan and the controller had never said (found by hand
    at stop 54 with an imported model on a cluster)."""
    gpus = sorted(set(fleet_gpus))
    return {m: gpus for m in models if not measured_gpus(m) & set(gpus)}


def prior_only_warning(model: str, gpus: list[str]) -> str:
    return (f"{model}: no measured profile on the fleet's GPU types ({', '.join(gpus)}): every plan for it comes from "
            f"the roofline prior (`planner solve` says how far the prior missed held-out models); measure it "
            f"(planner profile --backend vllm --dummy-weights --model {model} ...) and give the controller the profile "
            "(the catalog folder's profiles/, the chart's catalog.volume)")


def decision_text(d: Decision, dry_run: bool) -> str:
    """What `planner control` prints of one decision: outcome and time, forecasts, reasons, errors, the optimiser's
    proposal against the pools the decision plans, and the diff. The proposal lists the pools of `d.target` (the
    controller's this interval) and those the proposal names; a pool the decision leaves as it is (another model's,
    a GPU type not in the fleet file, a model held for its metrics) is not in it (found by hand: a held model's
    3-replica pool was printed 'optimiser proposal (before the guard): ...: 3 -> 0' while the reasons said it was held)."""
    when = (datetime.fromtimestamp(d.t_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # was epoch seconds
            if math.isfinite(d.t_s) else "t=?")
    lines = [f"[{d.outcome}] {when} forecast_rps={ {m: round(v, 3) for m, v in d.forecast_rps.items()} }"]
    lines += [f"  {r}" for r in d.reasons]
    lines += [f"  error: {e}" for e in d.errors]
    if d.proposal is not None:
        pools = sorted(set(d.target) | set(d.proposal))
        lines.append("optimiser proposal (before the guard):" + ("" if pools else " no pool (no traffic to plan for)"))
        for p in pools:
            a, b = d.current.get(p, 0), d.proposal.get(p, 0)
            lines.append(f"  {p}: {a} -> {b}" + ("" if a != b else " (same)"))
    lines.append(("would change:\n" if dry_run else "changes:\n") + d.diff_text() if d.changes else "no change")
    return "\n".join(lines)


def report_decision(d: Decision, dry_run: bool) -> None:
    """Say one decision: on stdout, or logged at WARNING where it holds the fleet (found by hand: SLOs no plan meets
    held every interval, its reason printed like any decision's, nothing at warning level for a log to alert on)."""
    if d.hold_reason:
        logging.getLogger("planner.control").warning("%s", decision_text(d, dry_run))
    else:
        typer.echo(decision_text(d, dry_run))


def holds_for_no_plan(d: Decision) -> bool:
    """Whether `d` holds the fleet because the solver found no plan (infeasible, or out of time with none), not for
    an error of its own: SLOs or a fleet the config cannot meet, which `planner control --once` exits 3 on."""
    return d.hold_reason == "solver" and not d.errors


def holds_for_solver_error(d: Decision) -> bool:
    """Whether `d` holds the fleet because the solver itself failed (an exception, a backend status 'error': the
    decision's errors say it), which `planner control --once` exits 1 on (it exited 0, found in QA)."""
    return d.hold_reason == "solver" and bool(d.errors)


METRICS_ADDR = "0.0.0.0"
"""Where the controller serves its /metrics (every interface: Prometheus scrapes the pod's IP)."""

QUIET_LOGGERS = ("httpx", "httpcore", "planner.perf.laws")
"""Loggers held at WARNING in the controller's log: the HTTP client's INFO is a line per Prometheus query (~20 an
interval); the laws' INFO says which bundled profiles the roofline prior's calibration leaves out, a paragraph each
at start-up, whatever models the controller serves (`planner profile show` and the plans' notes say what matters)."""


def register(app: typer.Typer) -> None:
    @app.command("control")
    @friendly_errors
    def control(
        config: Annotated[Path, typer.Option("--config", help="controller config YAML (controllers/deploy/configmap.yaml shows one)")],
        dry_run: Annotated[bool, typer.Option("--dry-run", help="print the decision and diff; change nothing")] = False,
        once: Annotated[bool, typer.Option("--once", help="one interval, then exit")] = False,
    ) -> None:
        """Observe -> forecast -> correct -> re-plan -> guard -> apply, every interval."""
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        for chatty in QUIET_LOGGERS:  # their INFO buried the decision (found by hand at stop 51)
            logging.getLogger(chatty).setLevel(logging.WARNING)
        cfg, fleet = load_config(config)
        from planner.io.catalog import Catalog
        from planner.io.validate import check_controller_config

        # --once (with --dry-run: the validate-a-config mode) also connects to Prometheus once.
        check_controller_config(cfg, fleet, Catalog.load(), config, probe=once)
        from planner.io.errors import InputError
        from planner.io.validate import check_port_free

        try:  # a config field the controller cannot work with (a busy metrics port, no Kubernetes API): name the file
            if cfg.record.metrics_port and not once:  # before any work: a busy port was a traceback after start-up
                check_port_free(METRICS_ADDR, cfg.record.metrics_port, option="record.metrics_port")
            ctl = build_controller(cfg, fleet, dry_run or cfg.dry_run, one_shot=once)
        except InputError as exc:
            raise exc.in_file(str(config)) from None
        if cfg.record.metrics_port and not once:
            ctl.metrics.serve(cfg.record.metrics_port, METRICS_ADDR)
        from planner.perf.laws import PerfModel

        if isinstance(ctl.perf, PerfModel):
            for model, gpus in prior_only_models(cfg.models, fleet.gpus, ctl.perf.measured_gpus).items():
                logging.getLogger("planner.control").warning("%s", prior_only_warning(model, gpus))

        ctl.run(once=once, on_decision=lambda d: report_decision(d, ctl.dry_run))
        from rich.console import Console
        from rich.markup import escape

        if once and ctl.decisions and holds_for_solver_error(ctl.decisions[-1]):
            from planner.cli.console import EXIT_SOLVER_ERROR

            Console(stderr=True, soft_wrap=True).print(
                f"[bold red]solver error:[/] {escape(str(config))}: {escape('; '.join(ctl.decisions[-1].errors))}; the "
                "controller holds the fleet as it is on such an interval (backend, solver_time_limit_s)")
            raise typer.Exit(EXIT_SOLVER_ERROR)
        if once and ctl.decisions and holds_for_no_plan(ctl.decisions[-1]):
            from planner.cli.console import EXIT_INFEASIBLE

            # one logical line, as friendly_errors prints (the diagnosis is in the decision's hold reason above)
            Console(stderr=True, soft_wrap=True).print(
                f"[bold red]infeasible:[/] {escape(str(config))}: no plan meets the models' SLOs on the fleet; the "
                "controller holds the fleet as it is, every interval, until the SLOs, the fleet or the load change "
                "(the hold reason above says what binds)")
            raise typer.Exit(EXIT_INFEASIBLE)
