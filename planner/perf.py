"""Performance model of one variant: prefill and decode step laws, KV capacity, KV transfer.

Laws (DESIGN.md), fitted on measured profiles where they exist, else a roofline prior:
  prefill time of a batch  t_p = a + b * sum(isl) + c * sum(isl^2)      [ms]
  decode step time         t_d = alpha + beta * batch + gamma * sum(context)   [ms]
KV transfer of one prompt:   isl * kv_bytes_per_token / link + fixed latency.

STUB: the dataclass below is the interface other modules code against; fitting, the roofline
prior and `PerfModel` are filled in by the performance-model work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# vLLM V1 engine defaults (vllm/config: max_num_seqs=256; max_num_batched_tokens 8192 for online
# serving with chunked prefill); used when a profile does not record its own.
DEFAULT_MAX_NUM_SEQS = 256
DEFAULT_MAX_BATCHED_TOKENS = 8192
# Fixed KV-transfer set-up latency (connector handshake + first RDMA op), ms. NIXL/Mooncake report
# single-digit ms for small transfers; 2 ms is a conservative round number.
KV_TRANSFER_FIXED_MS = 2.0


@dataclass(frozen=True)
class VariantPerf:
    """Latency laws of one (model, GPU, tp) engine, in ms; `source` says measured or prior."""

    model: str
    gpu: str
    tp: int
    source: Literal["measured", "prior"]
    prefill_a_ms: float
    prefill_b_ms_per_token: float
    prefill_c_ms_per_token2: float
    decode_alpha_ms: float
    decode_beta_ms_per_seq: float
    decode_gamma_ms_per_token: float
    kv_capacity_tokens: int
    kv_bytes_per_token: int
    kv_link_gb_s: float
    """KV-transfer bandwidth of one replica, GB/s (per-GPU link x tp)."""
    max_num_seqs: int = DEFAULT_MAX_NUM_SEQS
    max_batched_tokens: int = DEFAULT_MAX_BATCHED_TOKENS
    prefill_rel_err: float = 0.0
    """Median relative residual of the prefill fit (0 for priors: unknown)."""
    decode_rel_err: float = 0.0

    def prefill_ms(self, isl: float, batch: float = 1.0) -> float:
        """Time to prefill `batch` prompts of `isl` tokens each, in one forward pass."""
        return self.prefill_a_ms + self.prefill_b_ms_per_token * batch * isl + self.prefill_c_ms_per_token2 * batch * isl * isl

    def decode_step_ms(self, batch: float, context: float) -> float:
        """One decode step of `batch` sequences whose mean context is `context` tokens."""
        return self.decode_alpha_ms + self.decode_beta_ms_per_seq * batch + self.decode_gamma_ms_per_token * batch * context

    def kv_transfer_ms(self, isl: float, peer_link_gb_s: float | None = None) -> float:
        """Ship one prompt's KV cache to a decode replica; the slower side's link sets the pace."""
        link = self.kv_link_gb_s if peer_link_gb_s is None else min(self.kv_link_gb_s, peer_link_gb_s)
        return KV_TRANSFER_FIXED_MS + isl * self.kv_bytes_per_token / (link * 1e9) * 1e3
