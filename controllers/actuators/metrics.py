"""MetricsActuator: exports `pd_planner_desired_replicas{namespace, target_kind, target_name, model,
role, gpu, tp}` for an HPA (External metric) or KEDA to act on, from the lease holder only; changes
nothing itself. Registered as actuator.kind `metrics`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge

from controllers.actuators.base import ACTUATORS, Actuation, ActuatorContext, ApplyRequest, ApplyResult, PoolState
from controllers.discover import Target
from planner.io.schema import Variant

LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
"""A Kubernetes label value (what an HPA External metric's selector.matchLabels accepts)."""
DESIRED_LABELS = ["namespace", "target_kind", "target_name", "model", "role", "gpu", "tp"]


def label_value(v: str) -> str:
    """`v` as a valid Kubernetes label value: other characters become '-', ends trimmed, <= 63."""
    s = re.sub(r"[^-A-Za-z0-9_.]", "-", v)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", s)


class MetricsActuator:
    """Exports what the controller wants for an HPA (External metric) or KEDA (Prometheus trigger)
    to act on; changes nothing itself.

    `pd_planner_desired_replicas{namespace, target_kind, target_name, model, role, gpu, tp}`: one
    series per scalable target, labels that are valid Kubernetes label values (no '/'), so that a
    ScaledObject query or an HPA metric selector picks exactly one series by target. The targets
    and their real replica counts come from `targets` (the cluster, read through the same
    discovery as KubernetesActuator); without it (no cluster: tests, dry runs) the last desired
    value stands in for both. `withdraw()` removes every series: a replica that loses the lease
    stops exporting, so two controller replicas never both answer (controllers/leader.py)."""

    def __init__(self, registry: CollectorRegistry | None = None, initial: dict[str, int] | None = None, namespace: str = "default",
                 targets: Callable[[], dict[str, Target]] | None = None, export_initial: bool = True):
        self.registry = registry if registry is not None else CollectorRegistry()
        self.namespace = namespace
        self._targets = targets
        self.gauge = Gauge("pd_planner_desired_replicas", "Replicas the pd-planner controller wants per scalable target",
                           DESIRED_LABELS, registry=self.registry)
        self.routing = Gauge("routing_weight", "Share of a class routed to a pool", ["model", "class_id", "pool"], registry=self.registry)
        self.pairing = Gauge("pairing_weight", "Share of a prefill pool's KV cache (for one class) sent to a decode pool",
                             ["model", "class_id", "prefill_pool", "decode_pool"], registry=self.registry)
        self._desired = dict(initial or {})
        self._exported: set[tuple[str, ...]] = set()
        if export_initial and self._desired:
            self._export(self._desired, self._known_targets())

    def _known_targets(self) -> dict[str, Target]:
        return self._targets() if self._targets is not None else {}

    def _labels(self, pool: str, t: Target | None) -> tuple[str, ...]:
        v = Variant.parse(pool)
        kind, name = (t.kind, t.name) if t is not None else ("", "")
        if t is not None and t.external_scaler:
            # what KEDA/an HPA scale for an External-mode role: the scaler the DS controller creates
            kind, name = "DisaggregatedSetRoleScaler", t.external_scaler
        return tuple(label_value(x) for x in (self.namespace, kind, name, v.model, v.role, v.gpu, str(v.tp)))

    def _export(self, desired: dict[str, int], targets: dict[str, Target]) -> list[str]:
        errors = []
        now: set[tuple[str, ...]] = set()
        for p, n in sorted(desired.items()):
            t = targets.get(p)
            if t is None and self._targets is not None:
                if n > 0:
                    errors.append(f"{p}: no workload found for this pool; not exported")
                continue
            key = self._labels(p, t)
            self.gauge.labels(*key).set(n)
            now.add(key)
        for key in self._exported - now:
            self.gauge.remove(*key)
        self._exported = now
        return errors

    def withdraw(self) -> None:
        """Stop exporting desired replicas (this replica no longer holds the lease)."""
        for key in self._exported:
            self.gauge.remove(*key)
        self._exported = set()

    def pools(self) -> dict[str, PoolState]:
        if self._targets is not None:
            return {p: PoolState(p, t.desired, t.ready) for p, t in self._targets().items()}
        # Without a platform to read from, the last desired value is the best knowledge of the fleet.
        return {p: PoolState(p, n, n) for p, n in self._desired.items()}

    def apply(self, request: ApplyRequest) -> ApplyResult:
        res = ApplyResult()
        try:
            targets = self._known_targets()
        except Exception as exc:  # noqa: BLE001 - reported, the loop holds
            res.errors.append(f"list pools: {exc}")
            return res
        for p, n in request.target.items():
            before = targets[p].desired if p in targets else self._desired.get(p, 0)
            if before != n:
                res.changed[p] = (before, n)
            self._desired[p] = n
        res.errors.extend(self._export(self._desired, targets))
        for model, classes in request.routing.items():
            for cid, weights in classes.items():
                for p, w in weights.items():
                    self.routing.labels(model=model, class_id=cid, pool=p).set(w)
        for model, pairs in request.pairing.items():
            for cid, by_prefill in pairs.items():
                for pre, to_decode in by_prefill.items():
                    for dec, w in to_decode.items():
                        self.pairing.labels(model=model, class_id=cid, prefill_pool=pre, decode_pool=dec).set(w)
        return res


@ACTUATORS.register("metrics", "export pd_planner_desired_replicas for an HPA (External metric) or KEDA to act on")
def build(ctx: ActuatorContext) -> Actuation:
    """Real replica counts and the targets' names come from the cluster when there is one (an
    HPA/KEDA scales them); the lease keeps a second controller replica from exporting too."""
    from controllers.access import check_access
    from controllers.actuators.kubernetes import KubernetesActuator, label_scheme, probe_namespace
    from controllers.leader import ExportGate, LeaseElector, default_identity

    cfg, a = ctx.cfg, ctx.cfg.actuator
    reader = None
    leader_only = cfg.export.leader_only and cfg.leader.enabled
    if ctx.api_client is not None or cfg.export.read_cluster or leader_only:
        reader = KubernetesActuator(ctx.kube(), a.namespace, None, tuple(a.workload_kinds), a.max_retries, a.backoff_s,
                                    scheme=label_scheme(cfg), gpu_from_nodes=cfg.labels.gpu_from_nodes)
        probe_namespace(ctx.kube(), a.namespace)
        check_access(ctx.kube(), cfg, reads_cluster=True, dry_run=ctx.dry_run)
    actuator = MetricsActuator(registry=ctx.metrics_registry, initial=dict(ctx.fleet.current), namespace=a.namespace,
                               targets=reader.targets if reader is not None else None, export_initial=not leader_only)
    if not leader_only:
        return Actuation(actuator)
    lease = LeaseElector(ctx.kube(), a.namespace, cfg.leader.lease_name, cfg.leader.identity or default_identity(),
                         cfg.lease_duration_s)
    if not ctx.dry_run:  # a dry run elects no leader (controllers/loop.py)
        lease.probe()
    return Actuation(actuator, ExportGate(lease, actuator.withdraw))
