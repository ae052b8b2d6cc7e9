"""Records that cross module boundaries: catalogs, workloads, fleets, variants and plans.

Every file the product reads is validated into one of these pydantic models; every error names
the file, the field and what was expected (see :mod:`planner.io.errors`). Units are SI-flavoured and
spelled in the field names (``_ms``, ``_rps``, ``_gib``, ``_tb_s``, ``_gb_s``, ``_per_hour``).
"""

from __future__ import annotations

import math
from typing import Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from planner.planning.slo_metrics import SloMetric

Role = Literal["prefill", "decode", "mixed"]
ROLES: tuple[Role, ...] = ("prefill", "decode", "mixed")
PREFILL_SIDE: tuple[Role, ...] = ("prefill", "mixed")
Source = Literal["measured", "prior"]
Dtype = Literal["bf16", "fp8"]


def _bf16_only() -> list[Dtype]:
    return ["bf16"]
"""Precision of weights or of the KV cache. bf16 is vLLM's default ("auto" on bf16 checkpoints);
fp8 weights are vLLM's ``--quantization fp8`` (per-tensor E4M3, embeddings and lm_head stay bf16),
an fp8 KV cache is ``--kv-cache-dtype fp8``."""
DTYPES: tuple[Dtype, ...] = ("bf16", "fp8")
DTYPE_BYTES: dict[str, int] = {"bf16": 2, "fp8": 1}
LawSource = Literal["measured-vllm", "measured-torch", "splitwise", "measured", "prior"]
"""Where a variant's laws come from: a vLLM-measured profile, the torch reference decoder, the
Splitwise data set, another measured backend, or the calibrated roofline prior."""


def precision_suffix(weight_dtype: str = "bf16", kv_dtype: str = "bf16") -> str:
    """'' for bf16/bf16, else '-fp8' (FP8 weights) and/or '-kvfp8' (FP8 KV cache): the tail of
    pool ids (``model/role/gpu/tpN-fp8``) and of profile directories (``tp1-fp8-kvfp8``)."""
    return ("-fp8" if weight_dtype == "fp8" else "") + ("-kvfp8" if kv_dtype == "fp8" else "")


def parse_tp_part(part: str) -> tuple[int, Dtype, Dtype]:
    """'tp4' -> (4, 'bf16', 'bf16'); 'tp1-fp8-kvfp8' -> (1, 'fp8', 'fp8'); ValueError otherwise."""
    head, *tail = part.split("-")
    w: Dtype = "fp8" if tail[:1] == ["fp8"] else "bf16"
    kv: Dtype = "fp8" if tail[1 if w == "fp8" else 0:] == ["kvfp8"] else "bf16"
    n = head.removeprefix("tp")
    if (not head.startswith("tp") or not n.isdigit() or int(n) <= 0
            or len(tail) != (w == "fp8") + (kv == "fp8")):
        raise ValueError(f"expected tpN[-fp8][-kvfp8] with N > 0, got '{part}'")
    return int(n), w, kv


class _Strict(BaseModel):
    # allow_inf_nan=False: `.inf` or `.nan` in a YAML number is never a meaningful rate, SLO or size.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


_M = TypeVar("_M", bound=BaseModel)


def revalidated(model: _M) -> _M:
    """`model` validated again from its own dump. pydantic's `model_copy(update=...)` does not validate, so a copy
    made that way can hold what no input file could (a negative price, a NaN SLO): the what-if helpers
    (planner/planning/whatif.py) return their copies through this, so a bad what-if value is a ValidationError
    naming the field instead of a plan priced below zero (stop 49)."""
    return type(model).model_validate(model.model_dump())


# Largest class rate accepted, req/s. Not a traffic claim but the solver's dynamic range: HiGHS's
# default feasibility tolerance is 1e-7 and its infinity 1e20 (HiGHS options primal_feasibility_tolerance,
# infinite_bound), and per-replica capacities go down to ~1e-2 req/s, so rates beyond 1e6 leave the
# ~1e9 coefficient range in which the ILP's answer is reliable. 1e6 req/s is also ~1e4 x the Azure
# 2023 conversation trace's busiest second (../shared/data/README.md).
MAX_RATE_RPS = 1e6

# Largest squared CV of prompt lengths accepted. Lengths bounded by a context window of L tokens with mean m
# have scv at most L/m - 1 (all-or-nothing lengths); 100 is a 1M-token window at a 10k-token mean, beyond any
# serving deployment, so a larger value is a unit error (a variance given instead of its ratio to mean²).
MAX_ISL_SCV = 100.0

# Most GPUs of one type a fleet may hold: the bound on the ILP's integer replica counts (planner/planning/assemble.py
# asks for the fewest-GPU plan with this many of each type).
MAX_GPUS_AVAILABLE = 10**6


# Price range of one GPU-hour, USD. The largest: ~80x the dearest public on-demand list price of one GPU-hour we know
# (AWS EC2 p5.48xlarge, 8 x H100, us-east-1: $98.32/h in 2024, $12.29 per GPU-hour; p6-b200.48xlarge, 8 x B200:
# $113.93/h, $14.24 per GPU-hour), so a larger value is a unit error (cents, or a node's or a month's price); found in QA
# at stop 58, 1e20 read "infeasible" with a false inventory diagnosis and 1e15 lost every other type's cents. The
# least: one cent, the resolution at which plans are shown ($x.xx/h); below it 1e-10 planned 25 GPUs at "$0.00".
MAX_PRICE_PER_HOUR = 1000.0
MIN_PRICE_PER_HOUR = 0.01
PRICE_RANGE_TEXT = (f"expected USD per GPU-hour from {MIN_PRICE_PER_HOUR:g} (one cent, the plans' resolution) to "
                    f"{MAX_PRICE_PER_HOUR:g} (~80x any public on-demand list price); owned GPUs: give "
                    f"{MIN_PRICE_PER_HOUR:g}, the planner has no price of 0")


def check_price_per_hour(price_per_hour: float) -> float:
    """`price_per_hour` if within [MIN_PRICE_PER_HOUR, MAX_PRICE_PER_HOUR], else ValueError saying the range (and how
    owned GPUs are priced): the one check of a GPU price, for the catalog, the fleet and `planner whatif --price`."""
    if not MIN_PRICE_PER_HOUR <= price_per_hour <= MAX_PRICE_PER_HOUR:
        raise ValueError(PRICE_RANGE_TEXT)
    return price_per_hour


# --------------------------------------------------------------------------- catalogs
class GpuType(_Strict):
    """One accelerator kind, from its vendor datasheet (see profiles/gpus.yaml for sources)."""

    name: str
    vendor: str
    memory_gib: float = Field(gt=0)
    hbm_tb_s: float = Field(gt=0, description="HBM bandwidth, TB/s (1e12 B/s)")
    bf16_tflops: float = Field(gt=0, description="dense BF16 tensor TFLOP/s (no sparsity)")
    fp8_tflops: float | None = Field(default=None, gt=0, description="dense FP8 TFLOP/s")
    intra_link_gb_s: float = Field(gt=0, description="GPU-GPU link within a node, GB/s per GPU, one direction")
    kv_link_gb_s: float = Field(gt=0, description="inter-node link used for KV transfer, GB/s per GPU")
    gpus_per_node: int = Field(gt=0)
    price_per_hour: float = Field(description="default on-demand price per GPU-hour, USD (MIN_PRICE_PER_HOUR to "
                                  "MAX_PRICE_PER_HOUR)")
    power_w: float | None = Field(default=None, gt=0, description="board power (TDP), W")
    driver_name: str | None = Field(default=None, description=(
        "the device name the driver reports (nvidia-smi / torch.cuda.get_device_name), by which engines look up their "
        "tuned kernel tables (planner.perf.kernel_tables)"))

    @field_validator("price_per_hour")
    @classmethod
    def _price_in_range(cls, v: float) -> float:
        return check_price_per_hour(v)


class MoeSpec(_Strict):
    """Mixture-of-experts facts; the FFN of a MoE layer is `experts` experts of `expert_intermediate`."""

    experts: int = Field(gt=0)
    experts_per_token: int = Field(gt=0)
    expert_intermediate: int = Field(gt=0)
    shared_experts: int = Field(default=0, ge=0)


class ModelSpec(_Strict):
    """Architecture facts of a decoder-only transformer; sizes are derived, not typed in."""

    name: str
    hf_id: str | None = None
    layers: int = Field(gt=0)
    hidden: int = Field(gt=0)
    heads: int = Field(gt=0)
    kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    intermediate: int = Field(gt=0, description="dense FFN width (SwiGLU: 3 matrices)")
    gated_ffn: bool = Field(default=True, description="dense FFN of gate, up and down matrices (SwiGLU / GeGLU: 3 x "
                            "hidden x intermediate weights); false: up and down only (the plain GELU / ReLU^2 MLP of "
                            "StarCoder2, Phi-2, GPT-NeoX, Nemotron: 2); a MoE's experts are gated")
    vocab: int = Field(gt=0)
    dtype_bytes: int = Field(default=2, gt=0, description="bytes per weight (bf16 = 2)")
    kv_dtype_bytes: int = Field(default=2, gt=0, description="bytes per KV element")
    embedding_dtype_bytes: int | None = Field(default=None, gt=0, description="bytes per embedding/lm_head weight "
                                              "and per activation; None = dtype_bytes (set by with_precision)")
    tied_embeddings: bool = False
    moe: MoeSpec | None = None
    max_context: int | None = Field(default=None, gt=0, description="longest prompt + output the model takes, tokens "
                                    "(config.json max_position_embeddings); None: unchecked")

    def with_precision(self, weight_dtype: str = "bf16", kv_dtype: str = "bf16") -> ModelSpec:
        """This model served with `weight_dtype` weights and a `kv_dtype` KV cache.

        FP8 weights (vLLM ``--quantization fp8``) quantize the linear layers only: embeddings and
        lm_head stay in the checkpoint's dtype and activations stay bf16. Check: Llama-3.1-8B shapes
        on vLLM 0.26 load 8.54 GiB of FP8 weights (shared/tools/vllm-offline/README.md); this gives
        8.46 GiB (6.98 G linear params x 1 B + 1.05 G embedding params x 2 B)."""
        if weight_dtype == "bf16" and kv_dtype == "bf16":
            return self
        act = self.activation_bytes
        return self.model_copy(update={"dtype_bytes": DTYPE_BYTES[weight_dtype] if weight_dtype != "bf16" else self.dtype_bytes,
                                       "kv_dtype_bytes": DTYPE_BYTES[kv_dtype] if kv_dtype != "bf16" else self.kv_dtype_bytes,
                                       "embedding_dtype_bytes": act})

    @property
    def activation_bytes(self) -> int:
        """Bytes per activation element and per embedding weight (the checkpoint's dtype)."""
        return self.embedding_dtype_bytes or self.dtype_bytes

    # --- derived sizes (counted parameters, not a typed-in headline number)
    @property
    def attn_params_per_layer(self) -> int:
        q = self.hidden * self.heads * self.head_dim
        kv = 2 * self.hidden * self.kv_heads * self.head_dim
        o = self.heads * self.head_dim * self.hidden
        return q + kv + o

    @property
    def ffn_params_per_layer(self) -> int:
        if self.moe is None:
            return self.ffn_matrices * self.hidden * self.intermediate
        m = self.moe
        router = self.hidden * m.experts
        return router + 3 * self.hidden * m.expert_intermediate * (m.experts + m.shared_experts)

    @property
    def ffn_matrices(self) -> int:
        """Weight matrices of hidden x intermediate in a dense FFN: 3 gated (gate, up, down), 2 plain (up, down)."""
        return 3 if self.gated_ffn else 2

    @property
    def active_ffn_params_per_layer(self) -> int:
        if self.moe is None:
            return self.ffn_params_per_layer
        m = self.moe
        router = self.hidden * m.experts
        return router + 3 * self.hidden * m.expert_intermediate * (m.experts_per_token + m.shared_experts)

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)

    @property
    def params(self) -> int:
        """Total parameters (all experts)."""
        return self.layers * (self.attn_params_per_layer + self.ffn_params_per_layer) + self.embedding_params

    @property
    def active_params(self) -> int:
        """Parameters touched per token (routed experts only for MoE)."""
        return self.layers * (self.attn_params_per_layer + self.active_ffn_params_per_layer) + self.embedding_params

    @property
    def weight_bytes(self) -> int:
        emb = self.embedding_params
        return (self.params - emb) * self.dtype_bytes + emb * self.activation_bytes

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V of every layer for one token."""
        return 2 * self.layers * self.kv_heads * self.head_dim * self.kv_dtype_bytes

    @property
    def flops_per_token(self) -> float:
        """Matmul FLOPs per token excluding attention scores: 2 x active parameters (no embeddings lookup)."""
        return 2.0 * (self.active_params - self.vocab * self.hidden * (0 if self.tied_embeddings else 1))

    @property
    def attn_flops_per_token_per_ctx(self) -> float:
        """Attention-score FLOPs per (query token, context token): QK^T and PV, 2 FLOPs per MAC."""
        return 4.0 * self.layers * self.heads * self.head_dim


# --------------------------------------------------------------------------- workload
class Slo(_Strict):
    """Latency bounds at one percentile. A request meets SLO when it meets every bound given."""

    ttft_ms: float | None = Field(default=None, gt=0)
    itl_ms: float | None = Field(default=None, gt=0)
    percentile: float = Field(default=90.0, gt=0, lt=100)

    @model_validator(mode="after")
    def _some_bound(self) -> Slo:
        if self.ttft_ms is None and self.itl_ms is None:
            raise ValueError("an SLO needs ttft_ms, itl_ms or both")
        return self

    def describe(self) -> str:
        parts = []
        if self.ttft_ms is not None:
            parts.append(f"TTFT p{self.percentile:g} {self.ttft_ms:g} ms")
        if self.itl_ms is not None:
            parts.append(f"ITL p{self.percentile:g} {self.itl_ms:g} ms")
        return ", ".join(parts)


# Floor on an index of dispersion of counts: a process more regular than this (IDC 0.05 = counts
# 20x less variable than Poisson) is a metronome, not traffic; smaller values are typing errors.
MIN_IDC = 0.05


class Burstiness(_Strict):
    """Arrival over-dispersion of a request class (absent = Poisson: IDC 1, ca2 1).

    Measured by `planner workload from-trace` (planner/io/traces.py, `measure_burstiness`) or
    written by hand. The capacity model (planner/planning/capacity.py) uses the IDC at the TTFT SLO's
    time scale for the prefill wait and the p99 one-second prompt-token burst for decode KV."""

    idc_1s: float = Field(ge=MIN_IDC, allow_inf_nan=False,
                          description="index of dispersion (variance/mean) of 1-s arrival counts, within each minute")
    idc_10s: float | None = Field(default=None, ge=MIN_IDC, allow_inf_nan=False,
                                  description="the same for 10-s counts (default: idc_1s)")
    ca2: float | None = Field(default=None, ge=0, allow_inf_nan=False,
                              description="squared coefficient of variation of inter-arrival times")
    p99_prompt_tokens_per_s: float | None = Field(default=None, ge=0, allow_inf_nan=False,
                                                  description="p99 over seconds of the prompt tokens arriving in one second")

    def idc_at(self, window_s: float) -> float:
        """IDC at a `window_s` time scale: log-linear between the 1 s and 10 s measurements,
        held constant outside [1 s, 10 s] (nothing measured there)."""
        hi = self.idc_1s if self.idc_10s is None else self.idc_10s
        x = min(max(window_s, 1.0), 10.0)
        return self.idc_1s + (hi - self.idc_1s) * math.log10(x)


class RequestClass(_Strict):
    """Requests of one model with similar lengths; `isl`/`osl` are mean input/output tokens."""

    id: str
    model: str
    isl: int = Field(gt=0, description="mean input (prompt) tokens")
    osl: int = Field(gt=0, description="mean output tokens")
    rate_rps: float = Field(ge=0, le=MAX_RATE_RPS, description="arrival rate, requests/s")
    slo: Slo | None = Field(default=None, description="overrides the model's SLO")
    burstiness: Burstiness | None = Field(default=None, description="arrival over-dispersion; absent = Poisson")
    isl_scv: float | None = Field(default=None, ge=0, le=MAX_ISL_SCV, allow_inf_nan=False,
                                  description="squared coefficient of variation of the prompt lengths (variance / "
                                              "mean²); absent = every prompt of `isl` tokens. The prefill TTFT "
                                              "model waits as M/G/1 and counts each request's own prompt with it "
                                              "(planner/planning/capacity.py, Prompt-length dispersion)")
    isl_max: int | None = Field(default=None, gt=0, description="the longest prompt, tokens (the context window or "
                                                               "the longest measured): the length law is clipped "
                                                               "there; absent = unclipped")
    osl_scv: float | None = Field(default=None, ge=0, le=MAX_ISL_SCV, allow_inf_nan=False,
                                  description="squared coefficient of variation of the output lengths; absent = every "
                                              "output of `osl` tokens. The decode KV check counts the running batch's "
                                              "reservations length-biased, isl + osl·(1 + osl_scv) per sequence "
                                              "(planner/planning/capacity.py, Output-length dispersion)")

    def scaled(self, factor: float) -> RequestClass:
        """This class with its rate multiplied by `factor`. The superposition of independent copies
        keeps the IDCs and ca2; the prompt-token burst grows with the rate. ValueError for a factor that is not a
        finite number >= 0 (model_copy does not validate: a negative rate would reach the ILP)."""
        if not (math.isfinite(factor) and factor >= 0):
            raise ValueError(f"class {self.id}: a rate factor must be a finite number >= 0, got {factor!r}")
        update: dict[str, object] = {"rate_rps": self.rate_rps * factor}
        b = self.burstiness
        if b is not None and b.p99_prompt_tokens_per_s is not None:
            update["burstiness"] = b.model_copy(update={"p99_prompt_tokens_per_s": b.p99_prompt_tokens_per_s * factor})
        return self.model_copy(update=update)


class ModelEntry(_Strict):
    slo: Slo


class Workload(_Strict):
    """Models with their default SLOs, and request classes with rates."""

    models: dict[str, ModelEntry]
    classes: list[RequestClass]

    @model_validator(mode="after")
    def _check(self) -> Workload:
        seen: set[str] = set()
        for i, c in enumerate(self.classes):
            if c.model not in self.models:
                raise ValueError(f"classes[{i}].model: '{c.model}' is not listed under models ({sorted(self.models)})")
            if c.id in seen:
                raise ValueError(f"classes[{i}].id: duplicate class id '{c.id}'")
            if c.isl_max is not None and c.isl_max < c.isl:
                raise ValueError(f"classes[{i}].isl_max: the longest prompt ({c.isl_max} tokens) is below the mean "
                                 f"isl ({c.isl}); expected isl_max >= isl")
            seen.add(c.id)
        return self

    def slo_of(self, c: RequestClass) -> Slo:
        return c.slo or self.models[c.model].slo

    def scaled(self, factor: float) -> Workload:
        """The same workload with every class rate multiplied by `factor`."""
        return self.model_copy(update={"classes": [c.scaled(factor) for c in self.classes]})


# --------------------------------------------------------------------------- fleet
class GpuInventory(_Strict):
    available: int = Field(ge=0, le=MAX_GPUS_AVAILABLE, description="GPUs of this type; 1e6 bounds the ILP's integers")
    price_per_hour: float | None = Field(default=None, description="overrides the catalog price (MIN_PRICE_PER_HOUR "
                                         "to MAX_PRICE_PER_HOUR USD per GPU-hour)")

    @field_validator("price_per_hour")
    @classmethod
    def _price_in_range(cls, v: float | None) -> float | None:
        return None if v is None else check_price_per_hour(v)


PairingPolicy = Literal["any", "same_gpu", "same_gpu_tp"]
ReplicaRouting = Literal["least_loaded", "random"]
"""How a request picks a replica within its pool (the plan's routing weights pick the pool):
`least_loaded` behind a load-aware router (llm-d's scorers: queue depth, KV use; the simulator's key is the
tokens queued), so a prompt waits only when every replica is busy; `random` behind a plain Kubernetes Service
(kube-proxy picks an endpoint at random; round-robin queues the same way), so each replica queues alone.
The capacity model sizes pools for it (planner/planning/capacity.py, Pool of replicas) and the simulator routes
by it (planner/simulate/fleet.py)."""
REPLICA_ROUTINGS: tuple[ReplicaRouting, ...] = get_args(ReplicaRouting)


class PairRule(_Strict):
    """A forbidden P->D pairing: the KV cache of a prefill on `prefill` may not ship to a decode on `decode`.

    Each side is a GPU type ('A100-80GB'), a GPU type and TP size ('A100-80GB/tp4'), or '*' (any).
    Why a fleet forbids one: no RDMA path between two node pools, a KV connector that cannot map
    one TP layout onto another, or an operator who wants to keep failure domains apart.
    """

    prefill: str
    decode: str
    reason: str | None = Field(default=None, description="why, for the plan's explanation")

    @field_validator("prefill", "decode")
    @classmethod
    def _selector(cls, v: str) -> str:
        parse_selector(v)
        return v

    def forbids(self, prefill_gpu: str, prefill_tp: int, decode_gpu: str, decode_tp: int) -> bool:
        return selector_matches(self.prefill, prefill_gpu, prefill_tp) and selector_matches(self.decode, decode_gpu, decode_tp)

    @property
    def names_tp(self) -> bool:
        return parse_selector(self.prefill)[1] is not None or parse_selector(self.decode)[1] is not None


def parse_selector(sel: str) -> tuple[str, int | None]:
    """'GPU' -> (GPU, None); 'GPU/tpN' -> (GPU, N); '*' -> ('*', None)."""
    gpu, slash, tp = sel.partition("/")
    if not gpu or (slash and not (tp.startswith("tp") and tp[2:].isdigit() and int(tp[2:]) > 0)):
        raise ValueError(f"expected a GPU type, 'GPU/tpN' or '*', got '{sel}'")
    return gpu, int(tp[2:]) if slash else None


def selector_matches(sel: str, gpu: str, tp: int) -> bool:
    s_gpu, s_tp = parse_selector(sel)
    return s_gpu in ("*", gpu) and s_tp in (None, tp)


class FleetLimits(_Strict):
    allowed_tp: list[int] = Field(default_factory=lambda: [1, 2, 4, 8])
    roles: list[Role] = Field(default_factory=lambda: list(ROLES))
    min_replicas: dict[str, int] = Field(default_factory=dict, description="per model; applies to each side (prefill-side and decode-side)")
    default_min_replicas: int = Field(default=1, ge=0)
    pool_min_replicas: dict[str, int] = Field(
        default_factory=dict,
        description="per pool id (model/role/gpu/tpN): a floor on that pool's replicas the plan keeps, within the "
                    "inventory (the ILP's pool_floor rows; the controller plans its guard.min_replicas with it); a "
                    "floor on a model the workload does not list is not planned")
    max_replicas_per_pool: int | None = Field(default=None, ge=0)
    utilization: float = Field(default=0.85, gt=0, le=1, description="target utilization of a replica's SLO capacity (headroom)")
    pd_ratio_min: float | None = Field(default=None, ge=0, description="lower bound on prefill GPUs / decode GPUs")
    pd_ratio_max: float | None = Field(default=None, ge=0)
    max_step: int | None = Field(default=None, ge=0, description="largest change of one pool's replicas per re-plan")
    churn_cost_per_replica: float = Field(default=0.0, ge=0, description="USD/h-equivalent penalty per replica changed")
    pairing: PairingPolicy = Field(default="any", description="which prefill pools may ship KV to which decode pools: "
                                   "any (vLLM's KV connectors allow heterogeneous GPUs and TP), same_gpu, same_gpu_tp")
    forbid_pairs: list[PairRule] = Field(default_factory=list, description="P->D pairings the fleet cannot run")
    allowed_dtypes: list[Dtype] = Field(default_factory=_bf16_only, min_length=1,
                                        description="weight and KV-cache precisions the planner may choose (bf16, fp8); "
                                                    "default bf16 only: FP8 changes model outputs, so an operator opts in")
    routing: ReplicaRouting = Field(default="least_loaded",
                                    description="how a request picks a replica of its pool: least_loaded (a load-aware "
                                                "router such as llm-d's) or random (a plain Kubernetes Service); pools are "
                                                "sized for it and `planner solve --verify` simulates it")
    decode_kv_pooling: bool = Field(default=True,
                                    description="behind least_loaded routing, check a decode pool's KV cache as one "
                                                "cache shared by its replicas (planner/planning/capacity.py, Pool of decode "
                                                "replicas); false: each replica holds its own share's p99 batch, the "
                                                "surplus the autoscaling controller keeps as burst headroom "
                                                "(forecast.decode_kv_pooling)")

    def pair_forbidden(self, prefill_gpu: str, prefill_tp: int, decode_gpu: str, decode_tp: int) -> bool:
        """May a prefill on (prefill_gpu, prefill_tp) not hand its KV cache to a decode on (decode_gpu, decode_tp)?"""
        if self.pairing == "same_gpu" and prefill_gpu != decode_gpu:
            return True
        if self.pairing == "same_gpu_tp" and (prefill_gpu, prefill_tp) != (decode_gpu, decode_tp):
            return True
        return any(r.forbids(prefill_gpu, prefill_tp, decode_gpu, decode_tp) for r in self.forbid_pairs)

    @property
    def pairing_restricted(self) -> bool:
        return self.pairing != "any" or bool(self.forbid_pairs)

    @property
    def pairing_by_tp(self) -> bool:
        """Whether pairing rules tell TP sizes apart (else they speak of GPU types only)."""
        return self.pairing == "same_gpu_tp" or any(r.names_tp for r in self.forbid_pairs)

    @model_validator(mode="after")
    def _consistent(self) -> FleetLimits:
        if self.pd_ratio_min is not None and self.pd_ratio_max is not None and self.pd_ratio_min > self.pd_ratio_max:
            raise ValueError(f"pd_ratio_min ({self.pd_ratio_min:g}) must not exceed pd_ratio_max ({self.pd_ratio_max:g})")
        if self.max_replicas_per_pool is not None and self.max_replicas_per_pool < self.default_min_replicas:
            raise ValueError(f"max_replicas_per_pool ({self.max_replicas_per_pool}) is below default_min_replicas "
                             f"({self.default_min_replicas}): no pool count satisfies both")
        for m, n in self.min_replicas.items():
            if n < 0:
                raise ValueError(f"min_replicas.{m}: expected a count >= 0, got {n}")
        for pool, n in self.pool_min_replicas.items():
            if n < 0:
                raise ValueError(f"pool_min_replicas.{pool}: expected a count >= 0, got {n}")
            try:
                Variant.parse(pool)
            except ValueError as exc:
                raise ValueError(f"pool_min_replicas.{pool}: {exc}") from None
            if self.max_replicas_per_pool is not None and n > self.max_replicas_per_pool:
                raise ValueError(f"pool_min_replicas.{pool} ({n}) is above max_replicas_per_pool "
                                 f"({self.max_replicas_per_pool}): no pool count satisfies both")
        if not self.roles:
            raise ValueError("roles: expected at least one of prefill, decode, mixed")
        if set(self.roles) == {"prefill"} or set(self.roles) == {"decode"}:
            raise ValueError(f"roles {self.roles}: a request needs a prefill side and a decode side; "
                             "allow mixed, or both prefill and decode")
        return self

    @field_validator("allowed_tp")
    @classmethod
    def _tp_powers(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("expected at least one tensor-parallel size")
        for tp in v:
            if tp <= 0:
                raise ValueError(f"tensor-parallel sizes must be positive, got {tp}")
        return sorted(set(v))


class Fleet(_Strict):
    """GPU inventory, current replicas per pool id (for re-planning) and policy limits."""

    gpus: dict[str, GpuInventory]
    current: dict[str, int] = Field(default_factory=dict)
    limits: FleetLimits = Field(default_factory=FleetLimits)

    @field_validator("gpus")
    @classmethod
    def _some_gpu(cls, v: dict[str, GpuInventory]) -> dict[str, GpuInventory]:
        if not v:
            raise ValueError("expected at least one GPU type with its available count, e.g. {H100-SXM-80GB: {available: 8}}")
        return v

    @field_validator("current")
    @classmethod
    def _replicas(cls, v: dict[str, int]) -> dict[str, int]:
        for pool, n in v.items():
            if n < 0:
                raise ValueError(f"{pool}: expected replicas >= 0, got {n}")
            try:
                Variant.parse(pool)
            except ValueError as exc:
                raise ValueError(str(exc)) from None
        return v


# --------------------------------------------------------------------------- variants and plans
class Variant(_Strict):
    """One deployable engine configuration: (model, role, GPU type, tp, weight dtype, KV dtype).

    Pool id ``model/role/gpu/tpN[-fp8][-kvfp8]``; bf16/bf16 ids carry no suffix (unchanged)."""

    model: str
    role: Role
    gpu: str
    tp: int = Field(gt=0)
    weight_dtype: Dtype = "bf16"
    kv_dtype: Dtype = "bf16"

    @property
    def id(self) -> str:
        return f"{self.model}/{self.role}/{self.gpu}/tp{self.tp}{self.precision}"

    @property
    def precision(self) -> str:
        """The id's precision suffix ('' for bf16/bf16)."""
        return precision_suffix(self.weight_dtype, self.kv_dtype)

    @classmethod
    def parse(cls, pool_id: str) -> Variant:
        try:
            model, role, gpu, tp_part = pool_id.rsplit("/", 3)
            tp, w, kv = parse_tp_part(tp_part)
            return cls(model=model, role=role, gpu=gpu, tp=tp, weight_dtype=w, kv_dtype=kv)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - reworded for the user
            raise ValueError(f"pool id '{pool_id}' is not of the form model/role/gpu/tpN[-fp8][-kvfp8]") from exc


class SolverInfo(BaseModel):
    backend: str
    status: str
    objective: float | None = None
    objective_unit: str | None = Field(default=None, description="USD/h (cost), GPUs, W (power) or 'x load' (max_load)")
    bound: float | None = None
    gap: float | None = None
    seconds: float = 0.0


class PoolPlan(BaseModel):
    id: str
    role: Role
    gpu: str
    tp: int
    replicas: int
    gpus: int
    cost_per_hour: float
    utilization: float = Field(description="share of the pool's SLO capacity in use")
    source: Source = "prior"
    weight_dtype: Dtype = "bf16"
    kv_dtype: Dtype = "bf16"
    law_source: LawSource | None = Field(default=None, description="which laws: measured-vllm, measured-torch, "
                                         "splitwise, measured (another backend) or prior (calibrated roofline)")
    ttft_ms: float | None = Field(default=None, description="worst predicted TTFT of the classes routed here, at their SLO percentile")
    itl_ms: float | None = Field(default=None, description="worst predicted ITL of the classes routed here, at their SLO percentile")
    law_fit_err: dict[str, float] | None = Field(
        default=None, description="measured laws only: median relative error of the law on its own profile's points, "
                                  "per phase the pool runs ('prefill', 'decode'); None for the prior")


class ClassPrediction(BaseModel):
    percentile: float
    rate_rps: float | None = Field(default=None, ge=0.0, description="the class's request rate the plan was sized and "
                                   "predicted for, req/s (a max-load plan's: the workload's x its load_multiplier); "
                                   "None in plans written before stop 61")
    isl: float | None = Field(default=None, ge=0.0, description="the class's mean prompt length planned for, tokens")
    osl: float | None = Field(default=None, ge=0.0, description="the class's mean output length planned for, tokens")
    ttft_ms: float | None = None
    itl_ms: float | None = None
    slo_ttft_ms: float | None = None
    slo_itl_ms: float | None = None
    disaggregated_share: float = 0.0
    decode_kv_tokens: float | None = Field(
        default=None, description="KV tokens a replica of the class's P/D decode pool holds at the class's percentile "
                                  "behind the pool's mix of classes (rule 59-K; the fullest of its decode pools serving "
                                  "more than one class); None where no such pool")
    decode_kv_capacity_tokens: float | None = Field(
        default=None, description="that replica's KV cache, tokens: above it a share of the arrivals beyond the TTFT "
                                  "percentile's tail waits for admission, which ttft_ms does not count")


class ModelPlan(BaseModel):
    pd_ratio: float | None = Field(default=None, description="prefill GPUs / decode GPUs; None when no P/D pools")
    pools: list[PoolPlan]
    routing: dict[str, dict[str, float]]
    predicted: dict[str, ClassPrediction]
    pairing: dict[str, dict[str, dict[str, float]]] = Field(
        default_factory=dict,
        description="class -> prefill pool -> {decode pool: weight}: where the KV cache of a request prefilled on "
                    "that pool goes (weights sum to 1). Present only when the fleet restricts pairing; otherwise a "
                    "request's decode pool is drawn from the class's decode routing weights, whatever its prefill pool.")


class SloCost(BaseModel):
    """What one SLO term costs: the plan's cost with that bound tightened or loosened by `factor`."""

    model: str
    class_id: str | None = Field(default=None, description="the class whose own SLO this is (None: the model's SLO)")
    metric: SloMetric
    percentile: float
    bound_ms: float
    tighter_ms: float
    tighter_cost_per_hour: float | None = Field(description="None when the tighter bound is infeasible")
    looser_ms: float
    looser_cost_per_hour: float | None


class Plan(BaseModel):
    """The product: what to run, where to route, what it costs and what it predicts."""

    feasible: bool = True
    cost_per_hour: float = 0.0
    gpus: dict[str, int] = Field(default_factory=dict)
    solver: SolverInfo
    models: dict[str, ModelPlan] = Field(default_factory=dict)
    binding: list[str] = Field(default_factory=list)
    diagnosis: list[str] = Field(default_factory=list, description="why infeasible and what would fix it")
    load_multiplier: float | None = Field(default=None, description="max-load mode: common traffic factor served")
    power_kw: float | None = Field(default=None, description="board power of the plan's GPUs at TDP, kW (profiles/gpus.yaml power_w)")
    slo_costs: list[SloCost] = Field(default_factory=list, description="cost of each SLO term (sensitivity)")
    replica_routing: ReplicaRouting = Field(default="least_loaded",
                                            description="how requests pick a replica within a pool, as the plan was sized "
                                                        "for (the fleet's limits.routing); the simulator routes so")
    profiles_root: str | None = Field(
        default=None, description="the profile root the plan was solved with (`planner solve --profiles`, absolute); "
                                  "None: the bundled profiles and the catalog folder's. `planner simulate` times the "
                                  "pools with the same laws")
    notes: list[str] = Field(default_factory=list)

    def replicas(self) -> dict[str, int]:
        """Pool id -> replicas, the shape of Fleet.current (for diffs and re-planning)."""
        return {p.id: p.replicas for m in self.models.values() for p in m.pools}
