"""Roofline prior: ideal prefill and decode times of (model, GPU, tp) from catalog facts, KV capacity,
and the calibration of efficiency factors on measured profiles.

Ideal time of one forward pass on a tp-way tensor-parallel replica (every GPU holds 1/tp of the
weights and of the KV heads):

  compute_ms = FLOPs / (tp * bf16_tflops)             FLOPs = tokens * flops_per_token
                                                            + attention-score FLOPs (causal: isl^2/2)
  memory_ms  = bytes / (tp * hbm_tb_s)                bytes = weights touched + KV read
  comm_ms    = 2 all-reduces per layer (after attention and after the FFN) of tokens*hidden*dtype
               bytes each: measured times where the GPU type has them (planner.perf.allreduce), else the
               ring algorithm on the datasheet link, 2*(tp-1)/tp * bytes / intra_link + a fixed latency
  time_ms    = layers * overhead_per_layer
               + max(compute_ms / eff_compute, memory_ms / eff_bw) * tp**tp_exponent + comm_ms

tp_exponent (fitted, 0 = ideal 1/tp speed-up) says how far tensor parallelism falls short of
linear: each GPU's slice of a GEMM is narrower and runs further from peak. On the bundled profiles
it fits ~0.3, and it halves the prior's held-out error on H100 tp2-8 (see tests/test_perf.py).

MoE: every token runs `experts_per_token` experts (FLOPs from active parameters), but the weights
READ per step are those of the distinct experts touched by the batch: each expert is missed by one
token with probability 1 - k/E, so the expected touched share is 1 - (1 - k/E)^tokens (uniform routing).

The fixed overhead is per layer (kernel launches, norms, sampling amortised) so that it transfers
between models of different depth. Efficiency factors and overheads are fitted on every measured
point that exists (:func:`calibrate`, ``scipy.optimize.least_squares`` on relative residuals);
without profiles, :data:`DEFAULT_EFFICIENCY` applies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from planner.io.schema import GpuType, ModelSpec
from planner.perf.allreduce import AllReduceTable

GIB = 2**30
# vLLM's default --gpu-memory-utilization (vllm/config: CacheConfig.gpu_memory_utilization = 0.9).
GPU_MEMORY_UTILIZATION = 0.9
# Memory per GPU outside weights, activations and KV: CUDA context, NCCL buffers, CUDA graphs. vLLM
# start-up logs of 8B-70B models show roughly 0.5-1.5 GiB of "non-torch" + graph memory; 1 GiB.
RUNTIME_RESERVE_GIB_PER_GPU = 1.0
# Latency of one small all-reduce inside a node (NCCL / vLLM custom all-reduce on NVLink, nccl-tests
# small-message latency is ~5-20 us); 10 us.
ALLREDUCE_LATENCY_S = 10e-6
TP_EXPONENT_MAX = 1.0
# Upper bound of the fitted per-step overhead: vLLM V1's CPU-side step (scheduler, input prep,
# sampler) is ~1-5 ms per step on Hopper hosts (vLLM V1 blog, 2025); 20 ms leaves room and still
# stops the fit trading it against the per-layer term when both explain the data equally.
STEP_OVERHEAD_MAX_MS = 20.0
"""Upper bound of the fitted TP exponent: at 1 a larger TP would not speed a pass up at all."""
# Lower bound of the fitted MoE share of the compute efficiency (Efficiency.moe_compute): an MoE's prefill at a
# fifth of a dense model's efficiency would be a broken kernel, not a law (measured: 0.70, see the field).
MOE_COMPUTE_MIN = 0.2
# Lower bound of the fitted FP8 share of the compute efficiency (Efficiency.fp8_compute): at 0.5 FP8 weight GEMMs run
# no faster than BF16 ones (the FP8 peak is 2x the BF16 one on Hopper), so below it the fit would be pricing a broken
# kernel; measured on vLLM 0.26's CutlassFP8ScaledMM: FP8 prefill 0.66-0.71x BF16 (profiles/runs/2026-12-05-h1).
FP8_COMPUTE_MIN = 0.5
ALLREDUCES_PER_LAYER = 2  # Megatron-style TP: one after attention (o_proj), one after the FFN (down_proj)


@dataclass(frozen=True)
class Efficiency:
    """Achieved share of peak rates, and fixed per-layer overheads (ms), shared by all variants."""

    compute: float
    bandwidth: float
    prefill_overhead_ms_per_layer: float
    decode_overhead_ms_per_layer: float
    source: str
    prefill_overhead_ms_tbs_per_layer: float = 0.0
    """Bandwidth-bound part of the per-layer overhead, ms x TB/s: divided by the GPU's hbm_tb_s."""
    decode_overhead_ms_tbs_per_layer: float = 0.0
    tp_exponent: float = 0.0
    """Sub-linear tensor-parallel scaling: compute and memory time are multiplied by tp**tp_exponent
    (0: ideal 1/tp speed-up). Narrower per-GPU matrices run further from peak; the Splitwise tp2/4/8
    profiles show it (without it the prior is 25-45% too fast at tp4-8)."""
    prefill_step_overhead_ms: float = 0.0
    """Fixed cost of one engine step regardless of depth (scheduling, input preparation, sampling):
    with the per-layer overhead, told apart only across models of different layer counts."""
    decode_step_overhead_ms: float = 0.0
    moe_compute: float = 1.0
    """An MoE's compute efficiency relative to a dense model's: vLLM's fused-MoE kernel runs each expert's few
    tokens as a grouped GEMM further from peak than a dense GEMM over all of them (qwen3-30b-a3b and Mixtral prefill
    ran 1.4-1.6x the dense-calibrated prior in compute-bound steps). Fitted only where MoE and dense profiles are
    both in the calibration (else 1); 0.70 on the bundled profiles. Whether to fit it: `Calibration.moe_share`."""
    fp8_compute: float = 1.0
    """FP8 weight GEMMs' compute efficiency relative to BF16 GEMMs' (the rest of an FP8 model's compute, attention, runs
    at BF16): vLLM's W8A8 kernels reach a smaller share of the FP8 tensor-core peak than BF16 GEMMs of theirs (FP8
    prefill ran 0.66-0.71x BF16 on H100 and H200, where the FP8 peak is 2x). Fitted only where FP8-weight and
    BF16-weight profiles are both in the calibration (else 1). Whether to fit it: `Calibration.fp8_share`."""
    n_points: int = 0
    median_rel_err: float | None = None
    max_rel_err: float | None = None


# Used when no profile exists. compute 0.5: large-batch prefill in vLLM-class engines reaches roughly
# 40-60% model-FLOPs utilisation (e.g. Databricks, "LLM Inference Performance Engineering: Best
# Practices", 2023); bandwidth 0.7: the same post reports ~60-70% memory-bandwidth utilisation for
# decode; 0.02 ms per layer of step overhead is ~1-2 ms per step for 32-80-layer models, the order
# of vLLM V1's CUDA-graph decode step overhead.
DEFAULT_EFFICIENCY = Efficiency(0.5, 0.7, 0.02, 0.02, source="defaults (no profiles to calibrate on)")


# --------------------------------------------------------------------------- sizes
def kv_bytes_per_token_replica(model: ModelSpec, tp: int) -> int:
    """KV bytes per token over the whole replica: KV heads are split over tp, replicated if tp > kv_heads."""
    return model.kv_bytes_per_token * max(1, -(-tp // model.kv_heads))


def moe_expert_params(model: ModelSpec) -> int:
    """Parameters in routed experts (all layers); 0 for dense models."""
    if model.moe is None:
        return 0
    return model.layers * 3 * model.hidden * model.moe.expert_intermediate * model.moe.experts


def weight_bytes_touched(model: ModelSpec, tokens: float) -> float:
    """Weight bytes read by one forward pass over `tokens` tokens (all of them for dense models)."""
    if model.moe is None:
        return float(model.weight_bytes)
    m = model.moe
    touched = 1.0 - (1.0 - m.experts_per_token / m.experts) ** max(tokens, 1.0)
    expert = moe_expert_params(model)
    return float(model.weight_bytes - expert * (1.0 - touched) * model.dtype_bytes)


def activation_bytes_per_gpu(model: ModelSpec, tp: int, max_batched_tokens: int, max_num_seqs: int) -> float:
    """Peak activation memory vLLM reserves from its profiling run (largest step: max_batched_tokens).

    Hidden-size tensors (residual, norms, q/k/v, attention out: ~4 x hidden) are full size on each
    GPU; the FFN's gate+up outputs (up alone in a plain MLP) are split over tp; logits of the sampled rows are fp32.
    """
    ffn = model.intermediate if model.moe is None else model.moe.experts_per_token * model.moe.expert_intermediate
    ffn_outputs = model.ffn_matrices - 1 if model.moe is None else 2  # gate + up, or up alone; experts are gated
    per_token = (4 * model.hidden + ffn_outputs * ffn / tp) * model.activation_bytes
    return max_batched_tokens * per_token + max_num_seqs * model.vocab * 4


def kv_capacity_tokens(
    model: ModelSpec,
    gpu: GpuType,
    tp: int,
    gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION,
    max_batched_tokens: int = 8192,
    max_num_seqs: int = 256,
) -> int | None:
    """KV-cache capacity of one replica in tokens, as vLLM would size it; None if the weights don't fit.

    (memory_gib * tp * utilization - weights - tp * (runtime reserve + activations)) / KV bytes per token.
    """
    budget = tp * (gpu.memory_gib * GIB * gpu_memory_utilization - RUNTIME_RESERVE_GIB_PER_GPU * GIB
                   - activation_bytes_per_gpu(model, tp, max_batched_tokens, max_num_seqs))
    free = budget - model.weight_bytes
    if free <= 0:
        return None
    tokens = int(free // kv_bytes_per_token_replica(model, tp))
    return tokens if tokens > 0 else None


# --------------------------------------------------------------------------- ideal times
@dataclass(frozen=True)
class IdealParts:
    """Unscaled parts of one forward pass, ms (before efficiencies and overheads)."""

    compute_ms: np.ndarray
    memory_ms: np.ndarray
    comm_ms: np.ndarray
    layers: int
    hbm_tb_s: float
    tp: int = 1
    moe: bool = False
    """A mixture-of-experts model (its compute runs at Efficiency.moe_compute x the compute efficiency)."""
    fp8_gemm_ms: np.ndarray | float = 0.0
    """The part of `compute_ms` that the weight GEMMs take at the FP8 tensor-core peak (FP8 weights on a GPU with
    one; else 0): it runs at Efficiency.fp8_compute x the compute efficiency."""


def _comm_ms(model: ModelSpec, gpu: GpuType, tp: int, tokens: np.ndarray, allreduce: AllReduceTable | None = None) -> np.ndarray:
    if tp == 1:
        return np.zeros_like(tokens, dtype=float)
    nbytes = tokens * model.hidden * model.activation_bytes  # activations stay bf16 under FP8 weights
    if allreduce is not None:
        per = allreduce.seconds(tp, nbytes)
    else:
        per = 2.0 * (tp - 1) / tp * nbytes / (gpu.intra_link_gb_s * 1e9) + ALLREDUCE_LATENCY_S
    return model.layers * ALLREDUCES_PER_LAYER * per * 1e3


def _fp8_peak(model: ModelSpec, gpu: GpuType) -> float | None:
    """The FP8 tensor-core peak where the weight GEMMs run on it (FP8 weights on a GPU that has one), else None."""
    return gpu.fp8_tflops if model.dtype_bytes == 1 else None


def matmul_tflops(model: ModelSpec, gpu: GpuType) -> float:
    """Peak of the weight GEMMs: the FP8 tensor-core peak for FP8 weights (vLLM's W8A8 kernels,
    e.g. CutlassFP8ScaledMM on Hopper) where the GPU has one, else the BF16 peak (FP8 weights on
    GPUs without FP8 tensor cores run weight-only kernels, e.g. Marlin on Ampere: BF16 math)."""
    peak = _fp8_peak(model, gpu)
    return peak if peak is not None else gpu.bf16_tflops


def ridge_batch(model: ModelSpec, gpu: GpuType) -> float:
    """Decode batch at which a step's weight GEMMs turn compute bound, from datasheet peaks: each
    weight (dtype_bytes bytes, read once per step) does 2 FLOPs per sequence, so the arithmetic
    intensity is 2 * batch / dtype_bytes FLOP/byte, equal to the ridge point peak_flops / hbm_bytes
    at batch = matmul_tflops / hbm_tb_s * dtype_bytes / 2 (H200: 206 for bf16 and for fp8; H100 SXM:
    295; A100: 153 for bf16). Independent of tp (each GPU holds 1/tp of the weights and sees the whole batch).
    The decode law's knee sits here or below (planner.perf.laws.decode_knee_batch: min(ridge, 128) by default)."""
    return matmul_tflops(model, gpu) / gpu.hbm_tb_s * model.dtype_bytes / 2.0


def _compute_ms(model: ModelSpec, gpu: GpuType, tp: int, matmul_flops: np.ndarray, attn_flops: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """(all compute, the FP8 GEMMs' part of it), ms: weight GEMMs at the weights' tensor-core peak, attention scores
    at the BF16 peak."""
    gemm = matmul_flops / matmul_tflops(model, gpu) / (tp * 1e12) * 1e3
    attn = attn_flops / gpu.bf16_tflops / (tp * 1e12) * 1e3
    return gemm + attn, (gemm if _fp8_peak(model, gpu) is not None else np.zeros_like(gemm))


def prefill_parts(model: ModelSpec, gpu: GpuType, tp: int, isl: Sequence[float] | np.ndarray, batch: Sequence[float] | np.ndarray,
                  allreduce: AllReduceTable | None = None) -> IdealParts:
    """Ideal parts of prefilling `batch` prompts of `isl` tokens in one pass (arrays broadcast)."""
    isl = np.asarray(isl, dtype=float)
    batch = np.asarray(batch, dtype=float)
    tokens = isl * batch
    attn = batch * model.attn_flops_per_token_per_ctx * isl * (isl + 1) / 2
    compute, fp8_gemm = _compute_ms(model, gpu, tp, tokens * model.flops_per_token, attn)
    wbytes = np.vectorize(lambda t: weight_bytes_touched(model, t))(tokens)
    kv_write = tokens * kv_bytes_per_token_replica(model, tp)
    memory = (wbytes + kv_write) / (tp * gpu.hbm_tb_s * 1e12) * 1e3
    return IdealParts(compute, memory, _comm_ms(model, gpu, tp, tokens, allreduce), model.layers, gpu.hbm_tb_s, tp,
                      model.moe is not None, fp8_gemm)


def decode_parts(model: ModelSpec, gpu: GpuType, tp: int, batch: Sequence[float] | np.ndarray, context: Sequence[float] | np.ndarray,
                 allreduce: AllReduceTable | None = None) -> IdealParts:
    """Ideal parts of one decode step of `batch` sequences with mean context `context` (arrays broadcast)."""
    batch = np.asarray(batch, dtype=float)
    context = np.asarray(context, dtype=float)
    compute, fp8_gemm = _compute_ms(model, gpu, tp, batch * model.flops_per_token, batch * model.attn_flops_per_token_per_ctx * context)
    wbytes = np.vectorize(lambda b: weight_bytes_touched(model, b))(batch)
    kv_read = batch * context * kv_bytes_per_token_replica(model, tp)
    memory = (wbytes + kv_read) / (tp * gpu.hbm_tb_s * 1e12) * 1e3
    return IdealParts(compute, memory, _comm_ms(model, gpu, tp, batch, allreduce), model.layers, gpu.hbm_tb_s, tp,
                      model.moe is not None, fp8_gemm)


OVERLAP = "max"
"""How compute and memory time combine: "max" (perfect overlap, the classic roofline) or "sum" (none)."""


def predict_ms(parts: IdealParts, eff: Efficiency, phase: str) -> np.ndarray:
    """Roofline time of a forward pass given efficiencies: overhead + combine(compute, memory) + comm."""
    if phase == "prefill":
        over = eff.prefill_overhead_ms_per_layer + eff.prefill_overhead_ms_tbs_per_layer / parts.hbm_tb_s
    else:
        over = eff.decode_overhead_ms_per_layer + eff.decode_overhead_ms_tbs_per_layer / parts.hbm_tb_s
    compute = parts.compute_ms + parts.fp8_gemm_ms * (1.0 / eff.fp8_compute - 1.0)  # FP8 GEMMs at their own share
    c, m = compute / (eff.compute * (eff.moe_compute if parts.moe else 1.0)), parts.memory_ms / eff.bandwidth
    body = np.maximum(c, m) if OVERLAP == "max" else c + m
    step = eff.prefill_step_overhead_ms if phase == "prefill" else eff.decode_step_overhead_ms
    ms: np.ndarray = step + parts.layers * over + body * parts.tp ** eff.tp_exponent + parts.comm_ms
    return ms


# --------------------------------------------------------------------------- calibration
@dataclass(frozen=True)
class Calibration:
    """How the prior is calibrated: the loss of the least squares on relative residuals
    (``scipy.optimize.least_squares``' ``loss`` and ``f_scale``) and whether an MoE gets its own share of the
    compute efficiency. "linear" is plain least squares; the robust losses ("soft_l1", "huber", "cauchy") grow
    slower than the square past `f_scale` (a relative error: 0.05 = 5%), so that a few points a roofline cannot
    describe (an MoE kernel's tile configuration switching at some token counts: qwen3-30b-a3b prefills 1,024
    tokens in 90 ms and 4,096 in 79 ms) do not drag the efficiencies and overheads of every other model with them."""

    name: str = "linear"
    f_scale: float = 1.0
    moe_share: bool = True
    """Fit Efficiency.moe_compute (an MoE's share of the compute efficiency) where MoE and dense profiles are both
    calibrated on; False pins it at 1 (the MoE priced at the dense efficiency)."""
    fp8_share: bool = False
    """Fit Efficiency.fp8_compute (FP8 weight GEMMs' share of the compute efficiency) where FP8-weight and BF16-weight
    profiles are both calibrated on; False pins it at 1 (FP8 GEMMs at the BF16 GEMMs' share of their 2x peak)."""

    @property
    def label(self) -> str:
        base = self.name if self.name == "linear" else f"{self.name} {self.f_scale:g}"
        return base + (" + moe share" if self.moe_share else "") + (" + fp8 share" if self.fp8_share else "")


CALIBRATION_LOSSES: tuple[Calibration, ...] = (
    Calibration(moe_share=False),
    *(Calibration(n, f, moe_share=False) for n in ("soft_l1", "huber", "cauchy") for f in (0.05, 0.1, 0.2)),
)
"""Candidate losses of bench/calibrate_prior.py part B0 (scored by leave-one-model-out on the bundled vLLM
profiles, the tuning set; the rule: the lowest larger of the two pooled medians, prefill and decode)."""
DEFAULT_CALIBRATION = Calibration("cauchy", 0.05, moe_share=True, fp8_share=True)
"""Stop 42, rule B2 (written before either loss was re-scored in the full calibration): part B0 had preferred a Cauchy
loss since stop 39 while rule B1 kept Huber at 5% (re-run with Cauchy, part D had stopped picking the prior); since stop
41 part D picks the torch reference under Huber too. B2 scored the planner's calibration with each loss by part B1's
leave-one-model-out on the bundled vLLM profiles: Huber 0.05 10.4 / 9.5% (prefill / decode median), Cauchy 0.05 9.9 /
8.6%; with Cauchy part D's verdict is unchanged (torch) and part F still fits the FP8 share: Cauchy 0.05. Held out,
reported after the choice: the held-out set (bench/heldout_model.py --set) 10.2 / 3.5% -> 7.9 / 3.3% (dense 8.3 / 2.7
-> 6.1 / 3.1%, the MoE 52.3 / 5.5 -> 53.0 / 6.2%, with graphs to 4,096 tokens 10.4 / 7.1 -> 12.9 / 7.6%); the six
models held out on the H100 (bench/gpu_heldout.py) 6.8 / 4.6 -> 5.0 / 4.2%; plan h1 8.2 -> 6.2% (its p90 19.8 ->
34.5%); a card with no profile (part C2') 14.2 / 9.2 -> 11.8 / 8.7%; `make run` unchanged ($59.19/h).
Before stop 42 the loss was Huber at 5%: chosen by bench/calibrate_prior.py part B0 on the bundled leave-one-model-out set (five vLLM variants of
three models; the candidates' medians in profiles/runs/2026-12-03-s14/README.md): prefill / decode median 17.2 /
11.8% with plain least squares, 11.9 / 10.0% with Huber at 5%. The MoE share: chosen by part B0b with that loss, by
the same rule, on leave-one-model-out over the bundled profiles and Mixtral-8x7B's (profiles/runs/2026-12-03-s12:
the bundled set holds one MoE, and leaving it out leaves the share unfitted, so that set cannot score it): 17.4 /
6.3% without, 10.1 / 7.7% with (each MoE predicted from the other: qwen3-30b-a3b 28 -> 11%, Mixtral 28 -> 8% at the
prefill median). Held out of both choices: planner.perf.heldout.HELD_OUT_SET (bench/heldout_model.py --set).
The FP8 share (`fp8_share`): fitted by rule F2 (stop 38, bench/calibrate_prior.py part F, rule F1's thresholds).
Rule F1 (stop 37) had left it off: with one FP8 model, leaving that model out left the share unfitted, and the
leave-one-model-out prefill median rose 15.0 -> 15.7%, past the rule's 0.5 point. Plan h2 (profiles/runs/2026-12-05-h2)
bundled the FP8 profiles of qwen3-32b and qwen3-30b-a3b on the H100; with them, predicting the H200's FP8 llama-3.1-8b
profile, the share cut the prefill median 16.0 -> 7.6% (decode 3.5 -> 4.0%), and leave-one-model-out 16.5 / 7.0% ->
12.7 / 7.0%. Held out, reported and not chosen on: qwen3-14b with FP8 weights on the H100 (a model never calibrated
on) 22.6 / 6.1% -> 6.6 / 5.1% (prefill / decode median); the BF16 held-out set (HELD_OUT_SET) 7.7 / 2.4% -> 10.8 /
2.5%."""


@dataclass(frozen=True)
class Observation:
    """Measured points of one variant and phase with their ideal parts."""

    phase: str  # "prefill" | "decode"
    parts: IdealParts
    measured_ms: np.ndarray


def calibrate(observations: Sequence[Observation], source: str = "calibrated",
              calibration: Calibration = DEFAULT_CALIBRATION) -> Efficiency:
    """Fit efficiencies and per-layer overheads to measured points.

    Parameters: eff_compute, eff_bw, and per phase a fixed per-layer overhead (ms) and a
    bandwidth-bound one (ms x TB/s, divided by the GPU's HBM TB/s: small kernels such as norms,
    rotary and sampling are memory-latency bound and run faster on faster memory). Least squares on
    relative residuals (``scipy.optimize.least_squares``) with `calibration`'s loss, and an MoE's share of the
    compute efficiency where it says so (:class:`Calibration`; the reported median / max errors are the plain
    relative residuals); efficiencies bounded to (0.01, 1]
    (nothing beats the datasheet peak), overheads to [0, 5]. A phase with no observation keeps
    the default overheads.
    """
    obs = [o for o in observations if len(o.measured_ms)]
    if not obs:
        return DEFAULT_EFFICIENCY
    has = {o.phase for o in obs}
    d = DEFAULT_EFFICIENCY

    def eff_of(x: np.ndarray) -> Efficiency:
        pre = (x[2], x[4], x[7]) if "prefill" in has else (d.prefill_overhead_ms_per_layer, d.prefill_overhead_ms_tbs_per_layer,
                                                            d.prefill_step_overhead_ms)
        dec = (x[3], x[5], x[8]) if "decode" in has else (d.decode_overhead_ms_per_layer, d.decode_overhead_ms_tbs_per_layer,
                                                           d.decode_step_overhead_ms)
        return Efficiency(float(x[0]), float(x[1]), float(pre[0]), float(dec[0]), source,
                          prefill_overhead_ms_tbs_per_layer=float(pre[1]), decode_overhead_ms_tbs_per_layer=float(dec[1]),
                          tp_exponent=float(x[6]), prefill_step_overhead_ms=float(pre[2]), decode_step_overhead_ms=float(dec[2]),
                          moe_compute=float(x[9]), fp8_compute=float(x[10]) if len(x) > 10 else 1.0)

    def resid(x: np.ndarray) -> np.ndarray:
        e = eff_of(x)
        return np.concatenate([(predict_ms(o.parts, e, o.phase) - o.measured_ms) / o.measured_ms for o in obs])

    # The fixed and the bandwidth-scaled overheads can only be told apart across GPUs of different
    # HBM speed; with one, they are collinear and the scaled part is pinned to ~0.
    scaled_max = 5.0 if len({o.parts.hbm_tb_s for o in obs}) >= 2 else 1e-9
    # The TP exponent needs profiles at two or more TP sizes; with one it stays at 0 (ideal scaling).
    tp_max = TP_EXPONENT_MAX if len({o.parts.tp for o in obs}) >= 2 else 1e-9
    # The per-step overhead is told apart from the per-layer one only across models of different depth.
    step_max = STEP_OVERHEAD_MAX_MS if len({o.parts.layers for o in obs}) >= 2 else 1e-9
    # The MoE share is told apart only with MoE and dense models both in the set (else pinned at 1).
    moe_free = calibration.moe_share and len({o.parts.moe for o in obs}) == 2
    moe_lo, moe_hi = (MOE_COMPUTE_MIN, 1.0) if moe_free else (1.0 - 1e-9, 1.0)
    # The FP8 share likewise only with FP8-weight and BF16-weight profiles both in the set.
    # (a parameter of its own only then: without it the fit is the one it was before the share existed)
    fp8_free = calibration.fp8_share and len({bool(np.any(np.asarray(o.parts.fp8_gemm_ms) > 0)) for o in obs}) == 2
    fp8 = ([(FP8_COMPUTE_MIN + 1.0) / 2], [FP8_COMPUTE_MIN], [1.0], [0.1]) if fp8_free else ([], [], [], [])
    x0 = np.array([d.compute, d.bandwidth, d.prefill_overhead_ms_per_layer, d.decode_overhead_ms_per_layer,
                   scaled_max / 2 if scaled_max < 1 else 0.01, scaled_max / 2 if scaled_max < 1 else 0.01,
                   tp_max / 2 if tp_max < 1e-6 else 0.1, step_max / 2 if step_max < 1 else 0.5, step_max / 2 if step_max < 1 else 0.5,
                   (moe_lo + moe_hi) / 2, *fp8[0]])
    sol = least_squares(resid, x0, bounds=([0.01, 0.01, 0, 0, 0, 0, 0, 0, 0, moe_lo, *fp8[1]],
                                           [1.0, 1.0, 5, 5, scaled_max, scaled_max, tp_max, step_max, step_max, moe_hi, *fp8[2]]),
                        x_scale=[0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.1, 0.5, 0.5, 0.1, *fp8[3]], loss=calibration.name,
                        f_scale=calibration.f_scale)
    rel = np.abs(resid(sol.x))
    e = eff_of(sol.x)
    return dataclasses.replace(e, n_points=int(rel.size), median_rel_err=float(np.median(rel)), max_rel_err=float(rel.max()))
