"""vLLM's CUDA-graph size limit as it shows in a measured MoE prefill, and what to tell the operator.

vLLM 0.26 captures CUDA graphs for steps of up to min(2 x max_num_seqs, 512) tokens by default (its
CompilationConfig docstring); larger steps run without a graph. A small-expert MoE's larger prefill steps are then
launch-bound: qwen3-30b-a3b on the H200 took 24 ms for 512 tokens and 90 ms for 1,024 by default, 24 and 29 ms with
graphs captured to 4,096 tokens; qwen1.5-moe-a2.7b 2,048 tokens 84.7 -> 27.5 ms (profiles/runs/2026-12-04-s15).
Pure functions of a fitted VariantPerf; the plan's notes (planner.planning.assemble) and `planner profile show`
print the advice.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.perf.laws import VLLM_DEFAULT_GRAPH_TOKENS, VariantPerf, table_ratio

__all__ = ["GRAPH_LIMIT_JUMP", "VLLM_DEFAULT_GRAPH_TOKENS", "GraphLimit", "graph_limit"]

GRAPH_LIMIT_JUMP = 1.3
"""An MoE's measured prefill stands beside its smooth law as a table of measured / law by tokens per pass
(planner.perf.laws.prefill_token_table). Where the ratio past the graph limit (513-2,048 tokens) rises over the
ratio at it by more than this factor, the rise is taken for the graph limit. Source, the H200 vLLM profiles:
small-expert MoEs with the default graphs 1.59-2.93 (qwen3-30b-a3b in s6, s8, s9 and the bundled profile;
qwen1.5-moe-a2.7b 2.15); with graphs captured to 4,096 tokens 0.98 and 1.01 (s15); Mixtral-8x7B (8 large
experts) 0.94."""


@dataclass(frozen=True)
class GraphLimit:
    """Where a measured MoE prefill jumps past the graph limit, and by how much."""

    tokens: float
    """Tokens per pass (513-2,048) where the measured / law ratio is highest."""
    jump: float
    """That ratio over the ratio at the limit (> GRAPH_LIMIT_JUMP)."""

    def advice(self) -> str:
        n = VLLM_DEFAULT_GRAPH_TOKENS
        return (f"its measured prefill at {self.tokens:,.0f} tokens per pass runs {self.jump:.1f}x further above its "
                f"law than at {n}, the mark of vLLM's default CUDA-graph sizes (up to {n} tokens) on a small-expert "
                "MoE: with graphs captured to 4,096 tokens two such MoEs prefilled 1-4k-token steps 1.1-3.1x faster "
                "(profiles/runs/2026-12-04-s15); where the deployment may set --cudagraph-capture-sizes, profile it "
                "with those flags (planner profile --backend vllm --extra-args '--cudagraph-capture-sizes ...') and "
                "plan from that profile")


def graph_limit(vp: VariantPerf) -> GraphLimit | None:
    """The graph limit's mark on a measured MoE prefill (GRAPH_LIMIT_JUMP), or None: no measured token table
    (dense models, priors), no table point past the limit, or no jump."""
    if vp.source != "measured" or not vp.prefill_table_tokens:
        return None
    n = VLLM_DEFAULT_GRAPH_TOKENS
    past = [t for t in vp.prefill_table_tokens if n < t <= 4 * n]
    if not past:
        return None

    def ratio(t: float) -> float:
        return table_ratio(vp.prefill_table_tokens, vp.prefill_table_ratio, t)

    worst = max(past, key=ratio)
    jump = ratio(worst) / ratio(n)
    return GraphLimit(worst, jump) if jump > GRAPH_LIMIT_JUMP else None
