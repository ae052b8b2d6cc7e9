"""Find the planner's pools in the workloads a cluster runs, under a label preset.

Pure functions over workload objects as the API server returns them (dicts, camelCase keys), so
the same code reads a live cluster, a rendered chart and a test fixture.

Presets (`labels.preset` in the controller config, controllers/config.py LabelsConfig):
  llm-d       what llm-d-modelservice renders (charts/llm-d-modelservice/templates/_helpers.tpl,
              examples/output-pd.yaml): `llm-d.ai/model` and `llm-d.ai/role` (prefill | decode |
              both) on the POD TEMPLATE; tensor parallelism only in the vLLM arguments
              (`--tensor-parallel-size N`, added by the chart when N > 1; vLLM's default is 1);
              the GPU type in a node selector or a required node affinity on the GPU product label
              (the chart's `acceleratorTypes.labelKey/labelValues`), else `labels.default_gpu`.
  pd-planner  pd-planner.io/{model,role,gpu,tp} on the workload (this project's own manifests).
  custom      the label keys given in the config.
Targets: apps/v1 Deployment, leaderworkerset.x-k8s.io/v1 LeaderWorkerSet (pod template
`spec.leaderWorkerTemplate.workerTemplate`, the leader's when set) and DisaggregatedSet
(disaggregatedset.x-k8s.io/v1: `spec.roles[i]` each with `replicas` (per slice; `spec.slices` copies)
and a `leaderWorkerTemplate`, readiness in `status.roleStatuses[]`;
the v1 docs put both under `spec.roles[i].spec`, v1alpha1 directly on the role; both are read.
Shape from the DisaggregatedSet docs, "Roles in DisaggregatedSet", and the llm-d benchmark
kustomize patches `/spec/roles/0/spec/replicas`). A DisaggregatedSet role's name is its role
when the pod template carries no role label.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from planner.io.schema import Variant

K8sObject = dict[str, Any]
"""A workload as the API server returns it (camelCase JSON; the kubernetes client types custom objects
as `object`): read with .get() defaults, this alias is where untyped JSON enters the controller."""
TargetKind = Literal["Deployment", "LeaderWorkerSet", "DisaggregatedSet"]

LLMD_MODEL, LLMD_ROLE = "llm-d.ai/model", "llm-d.ai/role"
PDP_MODEL, PDP_ROLE, PDP_GPU, PDP_TP = "pd-planner.io/model", "pd-planner.io/role", "pd-planner.io/gpu", "pd-planner.io/tp"

GPU_NODE_LABELS = ("nvidia.com/gpu.product", "cloud.google.com/gke-accelerator")
"""Node labels naming the GPU: NVIDIA GPU Feature Discovery's product label, and GKE's accelerator label."""

GPU_PRODUCTS: dict[str, str] = {
    # nvidia.com/gpu.product is `nvidia-smi --query-gpu=name` with spaces as '-' (GPU Feature Discovery)
    "NVIDIA-H100-80GB-HBM3": "H100-SXM-80GB",
    "NVIDIA-H100-SXM5-80GB": "H100-SXM-80GB",
    "NVIDIA-H200": "H200-141GB",
    "NVIDIA-H200-141GB-HBM3e": "H200-141GB",
    "NVIDIA-A100-SXM4-80GB": "A100-80GB",
    "NVIDIA-A10G": "A10G",
    "NVIDIA-L4": "L4",
    "NVIDIA-L40S": "L40S",
    "NVIDIA-B200": "B200",
    # cloud.google.com/gke-accelerator values (GKE GPU docs)
    "nvidia-h100-80gb": "H100-SXM-80GB",
    "nvidia-h100-mega-80gb": "H100-SXM-80GB",
    "nvidia-h200-141gb": "H200-141GB",
    "nvidia-a100-80gb": "A100-80GB",
    "nvidia-l4": "L4",
    "nvidia-b200": "B200",
}
"""GPU product label values -> catalog names (profiles/gpus.yaml); extended by labels.gpu_products."""

ROLE_VALUES_LLMD = {"prefill": "prefill", "decode": "decode", "both": "mixed"}
ROLE_VALUES_PDP = {"prefill": "prefill", "decode": "decode", "mixed": "mixed"}


@dataclass
class LabelScheme:
    """The resolved label keys of a preset (see LabelsConfig for the fields)."""

    model_label: str
    role_label: str
    role_values: dict[str, str]
    gpu_label: str | None
    tp_label: str | None
    default_gpu: str | None
    gpu_products: dict[str, str]
    models: dict[str, str]
    """label value -> planner model name; empty: the label value is the planner model name."""

    def model_of(self, label_value: str | None) -> str | None:
        if label_value is None:
            return None
        return self.models.get(label_value) if self.models else label_value


@dataclass(frozen=True)
class Target:
    """One scalable thing that serves one pool."""

    pool: str
    kind: TargetKind
    name: str
    desired: int
    ready: int
    role_index: int | None = None
    """DisaggregatedSet only: index in spec.roles."""
    pod_labels: dict[str, str] = field(default_factory=dict, compare=False)
    """Labels of the pod template (what an InferencePool selector matches)."""
    external_scaler: str | None = None
    """DisaggregatedSet role with `scaling.mode: External`: the DisaggregatedSetRoleScaler the DS
    controller creates for it ("<ds>-<role>"); its replicas belong to that scaler (HPA/KEDA)."""

    @property
    def role_name(self) -> str:
        return Variant.parse(self.pool).role


def sanitize_label_value(name: str) -> str:
    """A served model name as llm-d-modelservice's `sanitizedModelName` makes it (lower case,
    [^a-z0-9_.-] -> '-', '.' -> '-', trimmed, <= 63): 'facebook/opt-125m' -> 'facebook-opt-125m'."""
    s = re.sub(r"[^a-z0-9_.-]", "-", name.lower().strip())
    s = re.sub(r"^[-._]+", "", s)
    s = re.sub(r"[-._]+$", "", s)
    return s.replace(".", "-")[:63]


def model_label_map(served: dict[str, str], explicit: dict[str, str] | None = None) -> dict[str, str]:
    """label value -> planner model: the planner name itself, the sanitized served name, then explicit entries."""
    out: dict[str, str] = {}
    for m, s in served.items():
        out[m] = m
        out[sanitize_label_value(s)] = m
        out[sanitize_label_value(m)] = m
    out.update(explicit or {})
    return out


def tp_from_args(containers: Iterable[K8sObject]) -> int | None:
    """--tensor-parallel-size / -tp (as 'N', '=N', in args or command, also inside a shell string)."""
    for c in containers:
        words: list[str] = []
        todo = [str(w) for w in list(c.get("command") or []) + list(c.get("args") or [])]
        while todo:  # a shell string (`sh -c "vllm serve ... -tp 2"`) is split until no word has a space
            w = todo.pop(0)
            if " " not in w.strip():
                words.append(w)
                continue
            try:
                todo[:0] = shlex.split(w)
            except ValueError:
                todo[:0] = w.split()
        for i, w in enumerate(words):
            for flag in ("--tensor-parallel-size", "-tp"):
                if w == flag and i + 1 < len(words):
                    return int(words[i + 1])
                if w.startswith(flag + "="):
                    return int(w.split("=", 1)[1])
    return None


def _node_gpu_values(pod_spec: K8sObject) -> list[str]:
    vals: list[str] = []
    for k in GPU_NODE_LABELS:
        v = (pod_spec.get("nodeSelector") or {}).get(k)
        if v:
            vals.append(str(v))
    req = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
           .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in req.get("nodeSelectorTerms") or []:
        for e in term.get("matchExpressions") or []:
            if e.get("key") in GPU_NODE_LABELS and e.get("operator") == "In":
                vals.extend(str(v) for v in e.get("values") or [])
    return vals


def gpu_named(pod_spec: K8sObject) -> bool:
    """Whether the pod spec names a GPU type through a node selector or required node affinity."""
    return bool(_node_gpu_values(pod_spec))


def gpu_of(pod_spec: K8sObject, scheme: LabelScheme) -> tuple[str | None, str]:
    """(catalog GPU name, '') or (None, why)."""
    vals = _node_gpu_values(pod_spec)
    names = {scheme.gpu_products.get(v, GPU_PRODUCTS.get(v)) for v in vals}
    if vals:
        if None in names:
            unknown = [v for v in vals if scheme.gpu_products.get(v, GPU_PRODUCTS.get(v)) is None]
            return None, f"GPU product {', '.join(unknown)} is not in the catalog map (labels.gpu_products)"
        if len(names) > 1:
            return None, f"node selector/affinity allows several GPU types ({', '.join(sorted(vals))}); one pool is one GPU type"
        return names.pop(), ""
    if scheme.default_gpu:
        return scheme.default_gpu, ""
    return None, ("no GPU type: no node selector/affinity on " + " or ".join(GPU_NODE_LABELS)
                  + " and no labels.default_gpu")


@dataclass(frozen=True)
class _Template:
    kind: TargetKind
    name: str
    labels: dict[str, str]
    pod_spec: K8sObject
    desired: int
    ready: int
    role_index: int | None = None
    role_hint: str | None = None
    external_scaler: str | None = None


def _templates(obj: K8sObject) -> list[_Template]:
    kind = obj.get("kind")
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    meta_labels = dict(meta.get("labels") or {})
    if kind == "Deployment":
        t = spec.get("template") or {}
        return [_Template("Deployment", name, {**meta_labels, **((t.get("metadata") or {}).get("labels") or {})},
                          t.get("spec") or {}, int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1),
                          int(status.get("readyReplicas") or 0))]
    if kind == "LeaderWorkerSet":
        lwt = spec.get("leaderWorkerTemplate") or {}
        t = lwt.get("leaderTemplate") or lwt.get("workerTemplate") or {}
        return [_Template("LeaderWorkerSet", name, {**meta_labels, **((t.get("metadata") or {}).get("labels") or {})},
                          t.get("spec") or {}, int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1),
                          int(status.get("readyReplicas") or 0))]
    if kind == "DisaggregatedSet":
        out = []
        # status.roleStatuses[] {name, replicas, readyReplicas, updatedReplicas} (DisaggregatedSetStatus)
        st_roles = {r.get("name"): r for r in status.get("roleStatuses") or status.get("roles") or [] if isinstance(r, dict)}
        slices = max(1, int(spec.get("slices") or 1))  # spec.slices identical copies, each with every role
        for i, role in enumerate(spec.get("roles") or []):
            rs = role.get("spec") if isinstance(role.get("spec"), dict) else role
            lwt = rs.get("leaderWorkerTemplate") or {}
            t = lwt.get("leaderTemplate") or lwt.get("workerTemplate") or {}
            desired = int(rs.get("replicas") if rs.get("replicas") is not None else 1) * slices
            ready = int((st_roles.get(role.get("name")) or {}).get("readyReplicas") or 0)
            scaling = role.get("scaling") or rs.get("scaling") or {}
            ext = f"{name}-{role.get('name')}" if scaling.get("mode") == "External" else None
            out.append(_Template("DisaggregatedSet", name, {**meta_labels, **((t.get("metadata") or {}).get("labels") or {})},
                                 t.get("spec") or {}, desired, ready, i, role.get("name"), ext))
        return out
    return []


def discover(objects: Iterable[K8sObject], scheme: LabelScheme) -> tuple[dict[str, Target], list[str]]:
    """Pools found in `objects` and, for workloads that carry the model label but cannot be read as a
    pool, one problem each (what is missing and where). A workload without the model label, or with a
    model label that maps to no configured model, is not ours and is skipped silently."""
    found: dict[str, Target] = {}
    problems: list[str] = []
    for obj in objects:
        for t in _templates(obj):
            where = f"{t.kind}/{t.name}" + (f" role[{t.role_index}]" if t.role_index is not None else "")
            model = scheme.model_of(t.labels.get(scheme.model_label))
            if model is None:
                continue
            rv = t.labels.get(scheme.role_label, t.role_hint)
            if rv is None:
                problems.append(f"{where}: no {scheme.role_label} label on the pod template")
                continue
            role = scheme.role_values.get(rv)
            if role is None:
                problems.append(f"{where}: {scheme.role_label}={rv!r} is not one of {', '.join(sorted(scheme.role_values))}")
                continue
            gpu: str | None
            if scheme.gpu_label and scheme.gpu_label in t.labels:
                gpu, why = t.labels[scheme.gpu_label], ""
            else:
                gpu, why = gpu_of(t.pod_spec, scheme)
            if gpu is None:
                problems.append(f"{where}: {why}")
                continue
            try:
                if scheme.tp_label and scheme.tp_label in t.labels:
                    tp = int(t.labels[scheme.tp_label].removeprefix("tp"))
                else:
                    tp = tp_from_args(t.pod_spec.get("containers") or []) or 1  # vLLM's default TP is 1
                pool = Variant.model_validate({"model": model, "role": role, "gpu": gpu, "tp": tp}).id
            except ValueError as exc:
                problems.append(f"{where}: {exc}")
                continue
            if pool in found:
                other = found[pool]
                problems.append(f"{where} and {other.kind}/{other.name} both serve pool {pool}; one target per pool")
                continue
            found[pool] = Target(pool, t.kind, t.name, t.desired, t.ready, t.role_index, dict(t.labels), t.external_scaler)
    return found, problems


def preset_scheme(preset: str, *, model_label: str | None = None, role_label: str | None = None,
                  role_values: dict[str, str] | None = None, gpu_label: str | None = None, tp_label: str | None = None,
                  default_gpu: str | None = None, gpu_products: dict[str, str] | None = None,
                  models: dict[str, str] | None = None) -> LabelScheme:
    """The LabelScheme of a preset; explicit arguments override the preset's keys (all required for custom)."""
    base: tuple[str, str, dict[str, str], str | None, str | None]  # model, role label; role values; gpu, tp label
    if preset == "llm-d":
        base = (LLMD_MODEL, LLMD_ROLE, ROLE_VALUES_LLMD, PDP_GPU, None)
    elif preset == "pd-planner":
        base = (PDP_MODEL, PDP_ROLE, ROLE_VALUES_PDP, PDP_GPU, PDP_TP)
    elif preset == "custom":
        if not model_label or not role_label:
            raise ValueError("labels.preset custom needs labels.model_label and labels.role_label")
        base = (model_label, role_label, ROLE_VALUES_LLMD | ROLE_VALUES_PDP, None, None)
    else:
        raise ValueError(f"unknown label preset {preset!r} (llm-d | pd-planner | custom)")
    # explicit (non-empty) arguments override the preset's
    return LabelScheme(model_label=model_label or base[0], role_label=role_label or base[1], role_values=role_values or base[2],
                       gpu_label=gpu_label or base[3], tp_label=tp_label or base[4], default_gpu=default_gpu,
                       gpu_products=dict(gpu_products or {}), models=dict(models or {}))
