"""Controller configuration: one YAML file validated into pydantic records.

`planner control --config C.yaml` reads this. Every knob has a default that suits a small
production fleet; the values and where they come from are documented on each field. Errors name
the file and the field (planner.fileio.load_model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from planner.fileio import load_model, parse_model, read_yaml
from planner.schema import Fleet, Slo


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PrometheusConfig(_Strict):
    """Where and how to query vLLM metrics through the Prometheus HTTP API."""

    url: str = "http://prometheus-operated.monitoring:9090"
    timeout_s: float = Field(default=5.0, gt=0)
    rate_window_s: float = Field(
        default=120.0, gt=0,
        description="range of rate()/histogram_quantile(); >= 4 scrape intervals (Prometheus guidance for rate())",
    )
    staleness_s: float = Field(
        default=90.0, gt=0,
        description="newest sample older than this -> metrics are stale and the controller holds",
    )
    selector: str = Field(default="", description="extra PromQL label matchers, e.g. 'namespace=\"llm\"'")
    role_label: str = Field(default="role", description="series label carrying the pool role (relabelled from pd-planner.io/role)")
    pool_label: str = Field(default="pool", description="series label carrying the pool id, if relabelled")
    missing_role: Literal["fail", "mixed"] = Field(
        default="fail",
        description="a vLLM series without role_label: fail the observation (the loop holds and says why), or read it "
                    "as a mixed pool (only for fleets without P/D); llm-d's own PodMonitor adds no role label, "
                    "controllers/deploy ships one that does")
    itl_metric: Literal["request_mean", "per_token"] = Field(
        default="request_mean",
        description="request_mean: vllm:request_time_per_output_token_seconds (each request's mean inter-token time, "
                    "what an ITL SLO percentile is over); per_token: vllm:inter_token_latency_seconds")
    gateway_ttft_metric: str | None = Field(
        default=None,
        description="a TTFT histogram measured in front of the model servers (gateway or endpoint picker), labelled "
                    "model_name, in seconds; when set and present it is the TTFT (what the client sees, queueing in "
                    "the gateway included) instead of the sum of the prefill and decode sides. None: vLLM's only "
                    "(the GIE EPP metrics list no TTFT histogram; set the name your gateway exports)")
    epp_queue_metric: str | None = Field(
        default="inference_extension_flow_control_queue_size",
        description="endpoint-picker gauge of requests held in its flow-control queue (GIE EPP metric, labels model_name, "
                    "inference_pool; the llm-d router may export it with an llm_d_epp_ prefix: set the name), counted as "
                    "backlog when present "
                    "(gateway-api-inference-extension EPP metrics); None: ignore")


class ModelConfig(_Strict):
    """One served model: its planner name, the `model_name` label vLLM exports, its SLO."""

    served_name: str | None = Field(default=None, description="vLLM's model_name label; defaults to the planner name")
    slo: Slo


class ForecastConfig(_Strict):
    """Holt / Holt-Winters (statsmodels) over the observed request rate, planned at an upper quantile."""

    history_points: int = Field(default=240, gt=0, description="observations kept (one per interval)")
    season_s: float | None = Field(default=None, gt=0, description="seasonal period (e.g. 86400 for daily); None: no seasonality")
    quantile: float = Field(
        default=0.6, gt=0.5, lt=1.0,
        description="plan for this one-sided quantile of the forecast (rate and token rates, horizon start-up + "
                    "interval). 0.6, not higher: the ILP already keeps 15% headroom (FleetLimits.utilization 0.85) "
                    "and queues feed back as backlog. Chosen by `bench/autoscale_trace.py --sweep` (Azure conversation "
                    "trace, llama-2-70b H100 tp2, SLO TTFT p99 2 s / ITL p99 100 ms, start-up 180 s): on the first half "
                    "every q in {0.55..0.9} holds >= 99% at a 60 s window and GPU-hours rise ~7-8% per 0.1 of q; the "
                    "held-out second half rejects 0.55 (85% attainment: a cliff), so one grid step above it",
    )
    token_rates: bool = Field(
        default=True,
        description="also forecast the prompt- and output-token rates (arrivals x mean lengths) and plan the class "
                    "lengths so that rate x length = their upper quantile: prefill work scales with prompt tokens, "
                    "decode work with output tokens, and the mean lengths of a minute move as much as its request "
                    "count (Azure conversation trace: mean prompt 777-1,450 tokens from one minute to the next); "
                    "False: last interval's mean lengths, only the request rate has a prediction interval",
    )
    min_points_trend: int = Field(default=15, ge=3, description="below this many points: no trend (simple exponential smoothing); "
                                  "a damped-trend ETS has 5 parameters, ~3 points per parameter")


class CorrectConfig(_Strict):
    """Performance-model correction from observed / predicted latency, bounded and smoothed."""

    min_factor: float = Field(default=0.5, gt=0)
    max_factor: float = Field(default=2.0, gt=0)
    smoothing: float = Field(default=0.3, gt=0, le=1, description="EWMA weight of the newest ratio")
    min_rate_rps: float = Field(default=0.05, ge=0, description="below this load the latency sample is too thin to learn from")


class GuardConfig(_Strict):
    """Safety rules that are not optimisation."""

    scale_up_cooldown_s: float = Field(default=0.0, ge=0, description="HPA default: no scale-up delay")
    scale_down_cooldown_s: float = Field(default=60.0, ge=0, description="after any change, no scale-down for this long")
    scale_down_stabilization_s: float = Field(
        default=60.0, ge=0,
        description="scale down to the max recommendation in this window. Each recommendation already plans for the "
                    "upper forecast of start-up + interval ahead (rate and token rates), so the window only absorbs one "
                    "recommendation's noise: 60 s (one bench interval), not the HPA's 300 s, which exists for a purely "
                    "reactive scaler. Sweep (see ForecastConfig.quantile): 0 s collapses to ~86% attainment (a replica "
                    "released on a quiet minute is missing for a whole start-up), 60 s holds >= 99.9%, 120/180 s cost "
                    "+2-4% GPU-hours for no attainment",
    )
    min_replicas: dict[str, int] = Field(default_factory=dict, description="pool id -> floor (safety, also given to the ILP)")
    queue_drain_s: float | None = Field(
        default=None, gt=0,
        description="waiting requests are added to the load as backlog / queue_drain_s; None: start-up + interval "
                    "(capacity asked for now is ready only after start-up, so a shorter drain time over-provisions "
                    "for a backlog that the replicas already starting will drain)",
    )


class ActuatorConfig(_Strict):
    kind: Literal["kubernetes", "metrics", "simulator"] = "kubernetes"
    namespace: str = "default"
    routing_configmap: str = Field(default="pd-planner-routing", description="ConfigMap routing.json is exported to when routing.export_configmap")
    httproutes: dict[str, str] = Field(
        default_factory=dict,
        description="model -> Gateway API HTTPRoute (same namespace) whose backendRefs get the model's prefill-side "
                    "weights: a backendRef named like a pool's Deployment/LeaderWorkerSet gets that pool's share "
                    "(integers summing to 100), any other backendRef of the route 0. Optional (gateways that route to workloads directly; llm-d: routing.inference_pool_routes)")
    workload_kinds: list[Literal["deployment", "leaderworkerset", "disaggregatedset"]] = Field(
        default_factory=lambda: ["deployment", "leaderworkerset", "disaggregatedset"])
    max_retries: int = Field(default=5, ge=0)
    backoff_s: float = Field(default=0.2, ge=0, description="first retry delay, doubled each retry")
    in_cluster: bool = True


class LeaderConfig(_Strict):
    enabled: bool = True
    lease_name: str = "pd-planner-controller"
    lease_duration_s: int = Field(default=15, gt=0, description="client-go default LeaseDuration")
    identity: str | None = Field(default=None, description="defaults to $POD_NAME or the host name")


class RecordConfig(_Strict):
    metrics_port: int | None = Field(default=9100, description="the controller's own /metrics; None: off")
    decision_log: str | None = Field(default=None, description="JSONL file, one decision per interval")


class LabelsConfig(_Strict):
    """How pools are found on workloads (controllers/discover.py): a preset, optionally overridden."""

    preset: Literal["llm-d", "pd-planner", "custom"] = Field(
        default="llm-d",
        description="llm-d: llm-d.ai/model + llm-d.ai/role (prefill|decode|both) on the pod template, TP from the vLLM "
                    "args, GPU from the node selector/affinity on nvidia.com/gpu.product (llm-d-modelservice's shape); "
                    "pd-planner: pd-planner.io/{model,role,gpu,tp}; custom: the keys below")
    model_label: str | None = Field(default=None, description="override of the preset's model label key")
    role_label: str | None = Field(default=None, description="override of the preset's role label key")
    role_values: dict[str, Literal["prefill", "decode", "mixed"]] = Field(
        default_factory=dict, description="label value -> role (llm-d: both -> mixed)")
    gpu_label: str | None = Field(default=None, description="pod-template label naming the catalog GPU (wins over node selectors)")
    tp_label: str | None = Field(default=None, description="pod-template label carrying TP (else the vLLM args)")
    default_gpu: str | None = Field(default=None, description="catalog GPU when a workload names none (one-GPU-type clusters)")
    gpu_from_nodes: bool = Field(
        default=False,
        description="when a workload names no GPU type, read nvidia.com/gpu.product from the nodes its running pods are on "
                    "(needs list pods in the namespace and get nodes, a ClusterRole: the chart's rbac.readNodes)")
    gpu_products: dict[str, str] = Field(default_factory=dict, description="extra GPU product label value -> catalog GPU name")
    models: dict[str, str] = Field(
        default_factory=dict,
        description="model label value -> planner model; the planner name and the DNS-sanitised served name "
                    "(llm-d-modelservice: 'facebook/opt-125m' -> 'facebook-opt-125m') match without an entry")


class RoutingConfig(_Strict):
    """How the plan's routing reaches the router (controllers/actuate.py)."""

    inference_pool_routes: dict[str, str] = Field(
        default_factory=dict,
        description="model -> HTTPRoute (actuator namespace) whose backendRefs of kind InferencePool are weighted "
                    "from the plan's decode routing: each InferencePool must select the decode workloads of exactly "
                    "one decode variant (model, GPU, TP), as llm-d's endpoint picker picks a decode pod first")
    export_configmap: bool = Field(
        default=False,
        description="also write actuator.routing_configmap (routing.json, pairing.json) for routers other than llm-d's")


class ExportConfig(_Strict):
    """Metrics mode (actuator.kind metrics): what HPA/KEDA read."""

    leader_only: bool = Field(default=True, description="only the lease holder exports pd_planner_desired_replicas "
                                                         "(needs the API server; leader.enabled)")
    read_cluster: bool = Field(default=True, description="read the targets (names, kinds) and their real replica "
                                                          "counts from the API server; False: no cluster (dry runs, "
                                                          "examples), the last desired value stands in and series "
                                                          "carry no target")


class ControllerConfig(_Strict):
    """The whole controller configuration."""

    interval_s: float = Field(default=30.0, gt=0)
    startup_s: float = Field(default=180.0, ge=0, description="pod start-up time (image pull + weights load); forecast horizon")
    dry_run: bool = False
    backend: str = "highs"
    solver_time_limit_s: float = Field(default=10.0, gt=0)
    fleet: str = Field(description="Fleet YAML: GPU inventory and limits (current replicas are observed)")
    models: dict[str, ModelConfig]
    prometheus: PrometheusConfig = Field(default_factory=PrometheusConfig)
    forecast: ForecastConfig = Field(default_factory=ForecastConfig)
    correct: CorrectConfig = Field(default_factory=CorrectConfig)
    guard: GuardConfig = Field(default_factory=GuardConfig)
    actuator: ActuatorConfig = Field(default_factory=ActuatorConfig)
    leader: LeaderConfig = Field(default_factory=LeaderConfig)
    record: RecordConfig = Field(default_factory=RecordConfig)
    labels: LabelsConfig = Field(default_factory=LabelsConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)


def load_config(path: str | Path) -> tuple[ControllerConfig, Fleet]:
    """Read the controller config and the fleet it names (relative to the config's folder)."""
    p = Path(path)
    cfg = parse_model(ControllerConfig, read_yaml(p), str(p))
    fleet_path = Path(cfg.fleet)
    if not fleet_path.is_absolute():
        fleet_path = p.parent / fleet_path
    fleet = load_model(Fleet, fleet_path)
    return cfg, fleet
