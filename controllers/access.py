"""Every Kubernetes API call the controller makes, and a start-up check that its identity may make them.

`API_CALLS` is the source of truth both for the check below and for tests/test_chart.py, which checks that the chart's
and controllers/deploy's Roles grant what a rendered config leads to (and no verb outside the table); a scan there fails
when a call is added to or removed from controllers/ without this table.

`check_access` asks the API server, by one SelfSubjectAccessReview (authorization.k8s.io/v1, what `kubectl auth can-i`
sends; every authenticated identity may create one) per call and object, whether the controller may make each call its
config leads to in actuator.namespace. Without it a ServiceAccount that may get its Lease but not update it was
`not_leader` every interval with only a warning, and one without update on deployments/scale failed only at its first
write.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, NamedTuple

from controllers.config import ControllerConfig
from planner.io.errors import InputError

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

log = logging.getLogger("pd_planner.controller.access")


class ApiCall(NamedTuple):
    """One call: the client method, the RBAC (apiGroup, resource[/subresource], verb) it needs, and when it is made:
    keys of `_conditions`, joined by '+' when all must hold."""

    method: str
    group: str
    resource: str
    verb: str
    when: str


# controllers/actuators/kubernetes.py, controllers/leader.py, this module
API_CALLS: list[ApiCall] = [
    ApiCall("list_namespaced_deployment", "apps", "deployments", "list", "reads+deployment"),
    ApiCall("read_namespaced_deployment_scale", "apps", "deployments/scale", "get", "kubernetes+deployment"),
    ApiCall("replace_namespaced_deployment_scale", "apps", "deployments/scale", "update", "kubernetes+deployment"),
    ApiCall("list_namespaced_custom_object", "leaderworkerset.x-k8s.io", "leaderworkersets", "list", "reads+leaderworkerset"),
    ApiCall("get_namespaced_custom_object_scale", "leaderworkerset.x-k8s.io", "leaderworkersets/scale", "get",
            "kubernetes+leaderworkerset"),
    ApiCall("replace_namespaced_custom_object_scale", "leaderworkerset.x-k8s.io", "leaderworkersets/scale", "update",
            "kubernetes+leaderworkerset"),
    ApiCall("list_namespaced_custom_object", "disaggregatedset.x-k8s.io", "disaggregatedsets", "list", "reads+disaggregatedset"),
    ApiCall("get_namespaced_custom_object", "disaggregatedset.x-k8s.io", "disaggregatedsets", "get", "kubernetes+disaggregatedset"),
    ApiCall("replace_namespaced_custom_object", "disaggregatedset.x-k8s.io", "disaggregatedsets", "update",
            "kubernetes+disaggregatedset"),
    ApiCall("list_namespaced_pod", "", "pods", "list", "reads+gpu_from_nodes"),
    ApiCall("read_node", "", "nodes", "get", "reads+gpu_from_nodes"),
    ApiCall("create_namespaced_event", "", "events", "create", "kubernetes"),
    ApiCall("read_namespaced_config_map", "", "configmaps", "get", "export_configmap"),
    ApiCall("create_namespaced_config_map", "", "configmaps", "create", "export_configmap"),
    ApiCall("replace_namespaced_config_map", "", "configmaps", "update", "export_configmap"),
    ApiCall("get_namespaced_custom_object", "gateway.networking.k8s.io", "httproutes", "get", "routes"),
    ApiCall("replace_namespaced_custom_object", "gateway.networking.k8s.io", "httproutes", "update", "routes"),
    ApiCall("get_namespaced_custom_object", "inference.networking.k8s.io", "inferencepools", "get", "inference_pool_routes"),
    ApiCall("get_namespaced_custom_object", "inference.networking.x-k8s.io", "inferencepools", "get", "inference_pool_routes"),
    ApiCall("read_namespaced_lease", "coordination.k8s.io", "leases", "get", "leader"),
    ApiCall("create_namespaced_lease", "coordination.k8s.io", "leases", "create", "leader"),
    ApiCall("replace_namespaced_lease", "coordination.k8s.io", "leases", "update", "leader"),
    # start-up probe of actuator.namespace: a 403 is tolerated (a namespaced Role cannot grant it), so never required
    ApiCall("read_namespace", "", "namespaces", "get", "optional"),
    # this module's question: every authenticated identity may ask it (system:basic-user), so never required
    ApiCall("create_self_subject_access_review", "authorization.k8s.io", "selfsubjectaccessreviews", "create", "optional"),
]

CLUSTER_SCOPED = {"nodes", "namespaces", "selfsubjectaccessreviews"}
"""Resources without a namespace: asked about cluster-wide (a ClusterRole's)."""

WHY = {"deployment": "actuator.workload_kinds", "leaderworkerset": "actuator.workload_kinds",
       "disaggregatedset": "actuator.workload_kinds", "kubernetes": "actuator.kind kubernetes", "reads": "export.read_cluster / export.leader_only",
       "gpu_from_nodes": "labels.gpu_from_nodes", "leader": "leader.enabled", "export_configmap": "routing.export_configmap",
       "routes": "routing.inference_pool_routes / actuator.httproutes", "inference_pool_routes": "routing.inference_pool_routes"}
"""The config field behind each condition of API_CALLS, named next to a call the identity may not make."""

RBAC_FIX = "controllers/deploy/rbac.yaml, or the chart's rbac values"


def _conditions(cfg: ControllerConfig, reads_cluster: bool | None) -> dict[str, bool]:
    a = cfg.actuator
    kube = a.kind == "kubernetes"
    leader_only = cfg.export.leader_only and cfg.leader.enabled
    # the metrics actuator reads the targets when export.read_cluster, or when it needs the Lease (metrics.build)
    reads = kube or (a.kind == "metrics" and ((cfg.export.read_cluster or leader_only) if reads_cluster is None else reads_cluster))
    return {"reads": reads, "kubernetes": kube, "deployment": "deployment" in a.workload_kinds,
            "leaderworkerset": "leaderworkerset" in a.workload_kinds, "disaggregatedset": "disaggregatedset" in a.workload_kinds,
            "gpu_from_nodes": cfg.labels.gpu_from_nodes, "leader": cfg.leader.enabled and (kube or leader_only),
            "export_configmap": kube and cfg.routing.export_configmap,
            "routes": kube and bool(cfg.routing.inference_pool_routes or a.httproutes),
            "inference_pool_routes": kube and bool(cfg.routing.inference_pool_routes), "optional": False}


def needed(cfg: ControllerConfig, reads_cluster: bool | None = None) -> dict[tuple[str, str, str], frozenset[str] | None]:
    """(apiGroup, resource, verb) of each call `cfg` leads to -> the object names the controller calls it on (None:
    objects it finds, lists or creates, unnamed). `reads_cluster`: whether the metrics actuator reads the cluster (None:
    as the config says)."""
    return {k: names for k, (names, _) in _needed_why(cfg, reads_cluster).items()}


def _needed_why(cfg: ControllerConfig, reads_cluster: bool | None) -> dict[tuple[str, str, str], tuple[frozenset[str] | None, str]]:
    on = _conditions(cfg, reads_cluster)
    a = cfg.actuator
    names = {"leases": frozenset({cfg.leader.lease_name}), "configmaps": frozenset({a.routing_configmap}),
             "httproutes": frozenset(cfg.routing.inference_pool_routes.values()) | frozenset(a.httproutes.values())}
    out: dict[tuple[str, str, str], tuple[frozenset[str] | None, str]] = {}
    for call in API_CALLS:
        conds = call.when.split("+")
        if all(on[c] for c in conds):
            why = ", ".join(dict.fromkeys(WHY[c] for c in conds if c != "reads" or not on["kubernetes"]))
            out[(call.group, call.resource, call.verb)] = (names.get(call.resource) if call.verb in ("get", "update") else None, why)
    return out


# What a dry run (`planner control --dry-run`) never does: write, and elect (the Lease is not used, controllers/loop.py)
DRY_RUN_UNUSED_VERBS = frozenset({"create", "update", "patch", "delete"})


def check_access(api_client: ApiClient, cfg: ControllerConfig, reads_cluster: bool | None = None,
                 dry_run: bool = False) -> None:
    """Ask the API server whether the controller's identity may make each call `cfg` leads to (on each named object) in
    actuator.namespace: any it may not is an InputError listing them, the config field that leads to each and where
    RBAC is granted. A review that cannot be made (API unreachable, reviews not allowed) says nothing either way: one
    warning, and the calls themselves report what fails, as the other start-up probes do.

    `dry_run`: the writes and the Lease, which a dry run does not use, are only warned of (a read-only identity may
    dry-run the controller from a laptop; found in review at stop 59: it was refused); the reads stay required."""
    from kubernetes import client

    from controllers.actuators.kubernetes import api_error_text

    api = client.AuthorizationV1Api(api_client)
    ns = cfg.actuator.namespace
    missing: list[str] = []
    unused: list[str] = []
    for (group, resource, verb), (names, why) in sorted(_needed_why(cfg, reads_cluster).items()):
        res, _, sub = resource.partition("/")
        for name in sorted(names) if names else [None]:
            attrs = client.V1ResourceAttributes(namespace=None if res in CLUSTER_SCOPED else ns, group=group, resource=res,
                                                subresource=sub or None, verb=verb, name=name)
            body = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attrs))
            try:
                answer = api.create_self_subject_access_review(body)
            except Exception as exc:  # noqa: BLE001 - unreachable, or reviews not allowed: the calls report what fails
                log.warning("could not ask the API server what the controller may do (SelfSubjectAccessReview: %s); "
                            "a permission it lacks shows at its first call", api_error_text(exc))
                return
            if not (answer.status is not None and answer.status.allowed):
                what = f"{group or 'core'} {resource}" + (f" {name}" if name else "")
                dry_unused = dry_run and (verb in DRY_RUN_UNUSED_VERBS or resource == "leases")
                (unused if dry_unused else missing).append(f"{verb} {what} ({why})")
    if unused:
        log.warning("a dry run writes nothing and elects no leader, but the controller itself would need, in namespace "
                    "%s: %s (%s)", ns, "; ".join(unused), RBAC_FIX)
    if missing:
        raise InputError(None, "actuator.namespace", (
            f"a controller identity (ServiceAccount) that may make every Kubernetes API call this config leads to; in "
            f"namespace {ns} it may not: {'; '.join(missing)}. Grant those verbs ({RBAC_FIX}) or change the field "
            "named with each"))
