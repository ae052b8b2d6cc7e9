"""`planner control`: run the controller from a config file (see controllers/config.py).

    planner control --config C.yaml [--dry-run] [--once]

--dry-run prints the decision and the diff against the fleet and changes nothing;
--once runs one interval and exits (cron-style use, and smoke tests).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import typer

from controllers.config import ControllerConfig, load_config
from planner.console import friendly_errors


def kube_api_client(in_cluster: bool) -> Any:
    """The official client's ApiClient: in-cluster service account, or the local kubeconfig."""
    from kubernetes import client, config

    from planner.errors import InputError

    try:
        if in_cluster:
            config.load_incluster_config()
        else:
            config.load_kube_config()
    except config.ConfigException as exc:
        raise InputError(None, "actuator.in_cluster",
                         f"a Kubernetes API to talk to ({'in-cluster service account' if in_cluster else 'kubeconfig'}): {exc}; "
                         "without a cluster use actuator.kind metrics with export.read_cluster false and leader.enabled false") from exc
    return client.ApiClient()


def label_scheme(cfg: ControllerConfig) -> Any:
    """The discovery LabelScheme of `cfg.labels` (controllers/discover.py), with the models' label values."""
    from controllers.discover import model_label_map, preset_scheme

    lc = cfg.labels
    served = {m: mc.served_name or m for m, mc in cfg.models.items()}
    return preset_scheme(lc.preset, model_label=lc.model_label, role_label=lc.role_label, role_values=dict(lc.role_values),
                         gpu_label=lc.gpu_label, tp_label=lc.tp_label, default_gpu=lc.default_gpu,
                         gpu_products=dict(lc.gpu_products), models=model_label_map(served, dict(lc.models)))


def build_controller(cfg: ControllerConfig, fleet: Any, dry_run: bool, api_client: Any = None, perf: Any = None):
    """Wire observer, actuator, elector and metrics for `cfg` (the parts tests swap are arguments)."""
    from controllers.actuate import KubernetesActuator, MetricsActuator
    from controllers.leader import LeaseElector, default_identity
    from controllers.loop import Controller
    from controllers.metrics import ControllerMetrics
    from controllers.observe import PrometheusObserver

    metrics = ControllerMetrics()
    observer = PrometheusObserver(
        cfg.prometheus, {m: mc.served_name or m for m, mc in cfg.models.items()},
        {m: mc.slo.percentile for m, mc in cfg.models.items()},
    )
    a = cfg.actuator
    elector = None
    if a.kind == "kubernetes":
        api_client = api_client or kube_api_client(a.in_cluster)
        actuator: Any = KubernetesActuator(
            api_client, a.namespace, a.routing_configmap if cfg.routing.export_configmap else None, tuple(a.workload_kinds),
            a.max_retries, a.backoff_s, httproutes=dict(a.httproutes), scheme=label_scheme(cfg),
            inference_pool_routes=dict(cfg.routing.inference_pool_routes), gpu_from_nodes=cfg.labels.gpu_from_nodes)
        if cfg.leader.enabled:
            elector = LeaseElector(api_client, a.namespace, cfg.leader.lease_name,
                                   cfg.leader.identity or default_identity(), cfg.leader.lease_duration_s)
    elif a.kind == "metrics":
        # Real replica counts and the targets' names come from the cluster when there is one (an
        # HPA/KEDA scales them); the lease keeps a second controller replica from exporting too.
        from controllers.leader import ExportGate

        reader = None
        leader_only = cfg.export.leader_only and cfg.leader.enabled
        if api_client is not None or cfg.export.read_cluster or leader_only:
            api_client = api_client or kube_api_client(a.in_cluster)
            reader = KubernetesActuator(api_client, a.namespace, None, tuple(a.workload_kinds), a.max_retries, a.backoff_s,
                                        scheme=label_scheme(cfg), gpu_from_nodes=cfg.labels.gpu_from_nodes)
        actuator = MetricsActuator(registry=metrics.registry, initial=dict(fleet.current), namespace=a.namespace,
                                   targets=reader.targets if reader is not None else None, export_initial=not leader_only)
        if leader_only:
            elector = ExportGate(LeaseElector(api_client, a.namespace, cfg.leader.lease_name,
                                              cfg.leader.identity or default_identity(), cfg.leader.lease_duration_s),
                                 actuator.withdraw)
    else:
        raise typer.BadParameter("actuator.kind 'simulator' is for replays (bench/autoscale_trace.py), not `planner control`")
    if perf is None:
        from planner.perf import PerfModel

        perf = PerfModel.load()
    return Controller(cfg, fleet, observer, actuator, perf, metrics=metrics, elector=elector, dry_run=dry_run)


def register(app: typer.Typer) -> None:
    @app.command("control")
    @friendly_errors
    def control(
        config: Path = typer.Option(..., "--config", help="controller config YAML (controllers/deploy/configmap.yaml shows one)"),
        dry_run: bool = typer.Option(False, "--dry-run", help="print the decision and diff; change nothing"),
        once: bool = typer.Option(False, "--once", help="one interval, then exit"),
    ) -> None:
        """Observe -> forecast -> correct -> re-plan -> guard -> apply, every interval."""
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        cfg, fleet = load_config(config)
        from planner.catalog import Catalog
        from planner.validate import check_controller_config

        # --once (with --dry-run: the validate-a-config mode) also connects to Prometheus once.
        check_controller_config(cfg, fleet, Catalog.load(), config, probe=once)
        ctl = build_controller(cfg, fleet, dry_run or cfg.dry_run)
        if cfg.record.metrics_port and not once:
            ctl.metrics.serve(cfg.record.metrics_port)

        def show(d: Any) -> None:
            typer.echo(f"[{d.outcome}] t={d.t_s:.0f} forecast_rps={ {m: round(v, 3) for m, v in d.forecast_rps.items()} }")
            for r in d.reasons:
                typer.echo(f"  {r}")
            for e in d.errors:
                typer.echo(f"  error: {e}")
            if d.proposal is not None:
                pools = sorted(set(d.current) | set(d.proposal))
                typer.echo("optimiser proposal (before the guard):")
                for p in pools:
                    a, b = d.current.get(p, 0), d.proposal.get(p, 0)
                    typer.echo(f"  {p}: {a} -> {b}" + ("" if a != b else " (same)"))
            typer.echo(("would change:\n" if ctl.dry_run else "changes:\n") + d.diff_text() if d.changes else "no change")

        if once:
            show(ctl.step())
            return
        import time

        while True:
            start = time.time()
            show(ctl.step())
            time.sleep(max(0.0, cfg.interval_s - (time.time() - start)))
