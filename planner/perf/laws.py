"""Performance model of one variant: prefill and decode step laws, KV capacity, KV transfer.

Laws (DESIGN.md), fitted on measured profiles where they exist, else a roofline prior:
  prefill time of a batch  t_p = a + max(floor, b * sum(isl) + c * sum(isl^2))      [ms]
                           [x the measured/law ratio at sum(isl) tokens: an MoE's token table, prefill_token_table]
  decode step time         t_d = alpha + beta * batch + gamma * sum(context)
                                 [+ moe * experts_touched(batch)] [+ kappa * max(0, batch - knee)]   [ms]
(floor: a short pass is memory bound, bounded by the decode step at batch 1; knee: the GPU's ridge
batch, planner.perf.prior.ridge_batch; planner.perf.fit says why; :class:`LawForms` selects the terms:
by default the knee, the floor opt-in (its docstring says why); bench/calibrate_prior.py part A0
scores them by cross-validation within sparse profiles.)
KV transfer of one prompt:   isl * kv_bytes_per_token / link + fixed latency.

A variant is (model, GPU, tp, weight dtype, KV dtype); bf16/bf16 unless a profile or a pool id
says fp8 (``tp<N>-fp8``, ``-kvfp8``). FP8 weights halve the linear layers' bytes and run their GEMMs
at the FP8 tensor-core peak; an FP8 KV cache halves KV bytes, so KV capacity about doubles.

Overheads (terms of the laws, fitted, non-negative):
- ``ttft_overhead_ms``: fixed per-request latency outside the engine's forward passes (HTTP
  frontend, tokenization, scheduling, detokenization of the first token). It adds to every TTFT but
  occupies no GPU time. The vLLM profiler times a prefill step inside the engine (``ttft_ms``) and,
  for some points, the TTFT a client sees on an idle server (``ttft_e2e_ms``): the overhead is the
  median difference (:func:`measured_ttft_overhead`). A vLLM profile whose prefill rows are client
  TTFTs (no ``ttft_e2e_ms``) gets what its smallest prefill exceeds a decode step of batch 1 (both
  read the weights once; :func:`planner.perf.fit.fit_prefill_client`), the law fitted on the rest. Laws from
  other sources (torch reference, Splitwise, prior) measured no frontend and get the median of the
  vLLM profiles' values, else :data:`DEFAULT_TTFT_OVERHEAD_MS`.
- the per-step scheduling cost is a term of the roofline (``Efficiency.*_step_overhead_ms``,
  fitted across models of different depth) and is inside the measured laws' intercepts.

Where the laws come from (:class:`PerfModel`):
- **measured**: a profile directory ``<profiles>/<model>/<gpu>/tp<N>[-fp8][-kvfp8]/[vllm/]`` exists;
  with several profiles of a variant the vLLM-measured one wins (``profiledata.LAW_PREFERENCE``) and
  ``law_source`` says which was used (measured-vllm, measured-torch, splitwise). Once any vLLM profile is
  loaded, the prior is calibrated on the serving engines only, and a variant measured only by the torch reference
  decoder is planned from its torch laws or from the prior as part D decides (:data:`TORCH_ONLY_LAWS`; with "prior"
  its profile stays in ``alternatives``). A profile whose meta.yaml says ``calibrate: false`` plans its variant but
  the prior is not calibrated on it (rules V2b and V3, stops 40-41: the MoE profiles whose engine ran vLLM's default
  fused-MoE tiles, no tuned table for the shape: planner.perf.kernel_tables). The laws are fitted
  with non-negative least squares on the central value of every measured point
  (:mod:`planner.perf.fit`); KV capacity, max_num_seqs and the token budget come from its meta.yaml.
  The measured ranges are kept; a query beyond them warns (:class:`ExtrapolationWarning`) once per
  variant and axis.
- **prior**: no profile. The roofline of :mod:`planner.perf.prior`, with efficiency factors calibrated
  on ALL measured points of all profiles (defaults when none exist), is evaluated on the profiler's
  default grid (DESIGN.md) and the same laws are fitted to it, so priors and measurements have one
  shape. KV capacity is derived as vLLM sizes it. None when the weights don't fit, tp does not divide
  the attention heads (vLLM requires it) or tp exceeds one node.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from planner.io.catalog import PROFILES_DIR, Catalog, _did_you_mean
from planner.io.errors import InputError
from planner.io.schema import Dtype, GpuType, LawSource, ModelSpec, precision_suffix
from planner.io.validate import check_fit_support
from planner.perf.allreduce import AllReduceTable, load_allreduce
from planner.perf.fit import (  # law forms (issue 10)
    FitReport,
    experts_touched,
    fit_decode,
    fit_decode_knee,
    fit_prefill_client_floor,
    fit_prefill_floor,
    knee_column,
)
from planner.perf.floor import physical_profiles
from planner.perf.prior import (
    DEFAULT_CALIBRATION,
    DEFAULT_EFFICIENCY,
    Calibration,
    Efficiency,
    Observation,
    calibrate,
    decode_parts,
    kv_bytes_per_token_replica,
    kv_capacity_tokens,
    predict_ms,
    prefill_parts,
    ridge_batch,
)
from planner.perf.profiledata import LAW_PREFERENCE, Profile, ProfileMeta, central_points, iter_profiles, law_source
from profiles import format as pfmt

log = logging.getLogger(__name__)

# vLLM V1 engine defaults (vllm/config: max_num_seqs=256; max_num_batched_tokens 8192 for online
# serving with chunked prefill); used when a profile does not record its own.
DEFAULT_MAX_NUM_SEQS = 256
DEFAULT_MAX_BATCHED_TOKENS = 8192
# Fixed KV-transfer set-up latency (connector handshake + first RDMA op), ms. NIXL/Mooncake report
# single-digit ms for small transfers; 2 ms is a conservative round number.
KV_TRANSFER_FIXED_MS = 2.0
DEFAULT_PROFILES_DIR = PROFILES_DIR / "data"
TORCH_ONLY_LAWS: Literal["torch", "prior"] = "prior"
"""What plans a variant whose only profile is the torch reference decoder's once vLLM profiles exist (the prior is
calibrated on the serving engines either way): part D of bench/calibrate_prior.py decides (planner.perf.heldout.
prior_beats_torch on every variant measured by both, the prior calibrated without the model: at least D_MARGIN_PCT
points better at the median and no worse at the p90), and tests/test_perf.py holds this constant to D's verdict on the
bundled profiles. "prior" from d3b5e7f (stop 33: the prior missed vLLM by 13.4% / 3.6% at the median where the torch
reference's laws missed by 26.1% / 19.5%) to stop 40; "torch" from stop 41 to stop 42 (rule V3b): with the H100's bf16 MoE,
measured on vLLM's default fused-MoE tiles, out of the prior's calibration (rule V3), D fails on llama-3.1-8b on the
H200 at the p90 (40.6% against 35.6%; medians 11.5% against 26.1%). "prior" again since stop 43 (rule D2: D's verdict
is taken on the errors pooled over its variants, planner.perf.heldout.part_d_verdict; pooled, the prior misses by 7.7%
at the median and 22.2% at the p90 where the torch reference misses by 20.4 / 33.0%, and the first pair measured
after the rule, qwen3-14b on the H100, agreed: 3.2 / 7.8% against 15.7 / 27.1%). The torch reference runs 1.2-1.5x
slower than vLLM's kernels, so its laws err on the side of more GPUs."""
ALLREDUCE_DIR = "allreduce"
"""Subdirectory of a profile root holding measured all-reduce times (<gpu>/allreduce.csv)."""
"""Bundled example profiles (Splitwise Llama2-70B on A100/H100)."""

# The prior is fitted on the profiler's default grids (profiles.format.PREFILL_ISL ..., DESIGN.md
# "Profiler"): the same points a profile would measure, so a prior and a later measurement are
# comparable point for point.
# Per-request TTFT overhead of vLLM's frontend when no vLLM profile measured one, by the rule of
# planner.perf.fit.fit_prefill_client on the facts in shared/tools/vllm-offline/README.md (vLLM 0.26.0, H200,
# Llama-3.1-8B shapes, CUDA graphs): TTFT 17.4 ms at 128 prompt tokens, ITL 4.86 ms at batch 1;
# 17.4 - 4.86 = 12.5 ms (issue 10 quotes ~13-19 ms).
DEFAULT_TTFT_OVERHEAD_MS = 12.5
VariantKey = tuple[str, str, int, str, str]
"""(model, gpu, tp, weight dtype, KV dtype)."""
# Share of an MoE's measured prefill token table (the excess over the law of a batch-1 prefill pass) that a
# prompt's tokens pay inside a mixed (chunked-prefill) step. Chosen on real vLLM's engine steps under load
# (profiles/runs/2026-12-03-s10, bench/step_composition.py, qwen3-30b-a3b: the busy seconds' measured / laws
# median at ISL 1,024 / 4,096 is 1.218 / 0.942 at share 0, 1.007 / 0.986 at 0.5, 0.881 / 1.025 at 1, the
# pooled error least at 0.5-0.6); held out: a second launch's steps (s10/launch2: 1.091 / 0.998, 7.6% median
# error; the law alone 16.9%, the whole table 7.6%) and the request timings of s8's two launches
# (bench/vllm_under_load.py). Why below 1 is not known (the table's excess is the steps run without a CUDA
# graph past 512 tokens, profiles/runs/2026-12-04-s15; a mixed step's mix of decodes and chunks is not a batch-1 pass).
MOE_TABLE_MIXED_SHARE = 0.5
# Queries this far past the measured maximum are still "inside" (grid rounding); beyond, warn.
EXTRAPOLATION_SLACK = 1.05


class ExtrapolationWarning(UserWarning):
    """A measured law is evaluated beyond the range it was measured on."""


class ExtrapolationWarnings:
    """Warn once per (variant, axis) that a measured law is evaluated past its measured range.

    The registry of warnings given and the depth of `quiet()` blocks are this object's state, not
    the module's: `EXTRAPOLATION_WARNINGS` is the process's one registry (what every VariantPerf
    warns through), and `reset()` forgets what was given (a test, or a new session in a notebook)."""

    def __init__(self) -> None:
        self._given: set[tuple[str, str, int, str, str]] = set()
        self._quiet_depth = 0

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """No extrapolation warnings inside; a warning skipped here is not counted as given."""
        self._quiet_depth += 1
        try:
            yield
        finally:
            self._quiet_depth -= 1

    def warn(self, vp: VariantPerf, axis: str, value: float, limit: float) -> None:
        """Log and `warnings.warn` an ExtrapolationWarning, the first time for this variant and axis."""
        key = (vp.model, vp.gpu, vp.tp, vp.precision, axis)
        if self._quiet_depth or key in self._given:
            return
        self._given.add(key)
        msg = (f"{vp.model}/{vp.gpu}/tp{vp.tp}{vp.precision}: {axis}={value:g} is beyond the measured range (max {limit:g}); "
               f"the fitted law is extrapolated")
        log.warning(msg)
        warnings.warn(msg, ExtrapolationWarning, stacklevel=3)  # the caller of the VariantPerf method

    def reset(self) -> None:
        self._given.clear()


EXTRAPOLATION_WARNINGS = ExtrapolationWarnings()


@contextlib.contextmanager
def quiet_extrapolation() -> Iterator[None]:
    """No extrapolation warnings inside: for probes that deliberately evaluate laws far past any
    operating point (the capacity search); callers check the operating points they settle on.
    A warning skipped here is not counted as given, so the first real one still shows."""
    with EXTRAPOLATION_WARNINGS.quiet():
        yield


@dataclass(frozen=True)
class VariantPerf:
    """Latency laws of one (model, GPU, tp, weight dtype, KV dtype) engine, in ms; `source` says
    measured or prior, `law_source` which measurement (measured-vllm, measured-torch, splitwise)."""

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
    kv_fixed_ms: float = KV_TRANSFER_FIXED_MS
    """Fixed KV-transfer latency, ms (fitted on a measured pair profile where one exists: planner/perf/handoff.py)."""
    max_num_seqs: int = DEFAULT_MAX_NUM_SEQS
    max_batched_tokens: int = DEFAULT_MAX_BATCHED_TOKENS
    prefill_rel_err: float = 0.0
    """Median relative residual of the prefill fit (0 for priors: unknown)."""
    decode_rel_err: float = 0.0
    # --- added by the performance-model work: measured ranges (None for priors: nothing measured)
    prefill_max_rel_err: float = 0.0
    """Largest relative residual of the prefill fit (0 for priors)."""
    decode_max_rel_err: float = 0.0
    max_isl_measured: int | None = None
    max_prefill_batch_measured: int | None = None
    max_decode_batch_measured: int | None = None
    max_context_measured: int | None = None
    # --- added by the precision/overhead work
    weight_dtype: Dtype = "bf16"
    kv_dtype: Dtype = "bf16"
    law_source: LawSource | None = None
    """measured-vllm, measured-torch, splitwise, measured or prior (None: unknown, hand-built laws)."""
    ttft_overhead_ms: float = 0.0
    """Fixed per-request latency outside the forward passes (frontend); adds to TTFT, not to GPU time."""
    decode_moe_ms: float = 0.0
    """MoE: time to read every expert's weights once; a step adds decode_moe_ms x the share of
    experts its batch touches, 1 - (1 - moe_route_share)^batch (planner.perf.fit.fit_decode_moe)."""
    moe_route_share: float = 0.0
    """experts_per_token / experts of a MoE model; 0 for dense models (no MoE term)."""
    # --- added by the law-form work (issue 10): roofline-shaped terms, 0 = the linear laws
    prefill_floor_ms: float = 0.0
    """Memory-bound floor of a prefill pass (one weight read): t = a + max(floor, b*sum(isl) + c*sum(isl^2))."""
    decode_knee_batch: float = 0.0
    """Batch past which the decode step grows by kappa per sequence: the ridge batch where decode GEMMs turn compute
    bound (planner.perf.prior.ridge_batch), capped at KNEE128_BATCH by default (rule K5); 0: no knee term."""
    decode_knee_ms_per_seq: float = 0.0
    """Extra step time per sequence past the knee: a step adds kappa * max(0, batch - knee)."""
    # --- added by the MoE prefill work (issue 10): the measured points where no law follows them
    prefill_table_tokens: tuple[float, ...] = ()
    """Tokens per prefill pass of the measured points (ascending); () = the law alone (dense models, priors)."""
    prefill_table_ratio: tuple[float, ...] = ()
    """Measured / law at those tokens: a pass costs the law times this ratio, interpolated in log tokens
    and held at the ends (:func:`prefill_token_table`); a mixed step adds the same excess to its chunks."""
    prefill_table_step_tokens: float = 0.0
    """Where > 0, the table is not interpolated across this many tokens per pass (the engine's CUDA-graph limit:
    LawForms.moe_table_graph_step, :func:`table_ratio`); 0 = interpolated across every point."""

    def decode_fixed_ms(self, batch: float) -> float:
        """The step cost that does not grow linearly with the batch: alpha, plus the experts a MoE
        batch reads, plus the compute-bound excess past the knee (kappa * max(0, batch - knee))."""
        t = self.decode_alpha_ms
        if self.decode_knee_ms_per_seq > 0.0 and self.decode_knee_batch > 0.0:
            t += self.decode_knee_ms_per_seq * max(0.0, batch - self.decode_knee_batch)
        if self.decode_moe_ms <= 0.0 or self.moe_route_share <= 0.0:
            return t
        return float(t + self.decode_moe_ms * (1.0 - (1.0 - self.moe_route_share) ** max(batch, 0.0)))

    @property
    def decode_fixed_is_constant(self) -> bool:
        """Whether decode_fixed_ms is alpha at every batch (no MoE and no knee term)."""
        return (self.decode_moe_ms <= 0.0 or self.moe_route_share <= 0.0) and self.decode_knee_ms_per_seq <= 0.0

    def prefill_pass_ms(self, sum_isl: float, sum_isl2: float) -> float:
        """One prefill forward pass over prompts with these token sums: a + max(floor, b*sum + c*sum2),
        times the measured table's ratio at sum_isl tokens where the variant has one (MoE)."""
        t = self._law_pass_ms(sum_isl, sum_isl2)
        if self.prefill_table_tokens:
            t *= table_ratio(self.prefill_table_tokens, self.prefill_table_ratio, sum_isl, self.prefill_table_step_tokens)
        return t

    def _law_pass_ms(self, sum_isl: float, sum_isl2: float) -> float:
        return self.prefill_a_ms + max(self.prefill_floor_ms,
                                       self.prefill_b_ms_per_token * sum_isl + self.prefill_c_ms_per_token2 * sum_isl2)

    def prefill_excess_ms(self, sum_isl: float, sum_isl2: float) -> float:
        """What the measured token table adds to the law's pass of sum_isl tokens: law x (ratio - 1);
        0 without a table, negative where the measurement ran faster than the law."""
        if not self.prefill_table_tokens:
            return 0.0
        r = table_ratio(self.prefill_table_tokens, self.prefill_table_ratio, sum_isl, self.prefill_table_step_tokens)
        return self._law_pass_ms(sum_isl, sum_isl2) * (r - 1.0)

    def prefill_marginal_ms(self, tokens: float, isl2: float) -> float:
        """The cost of `tokens` prefill tokens riding in a mixed (chunked-prefill) step, whose fixed cost
        the step pays once: b*tokens + c*isl2, plus MOE_TABLE_MIXED_SHARE of the token table's excess at that
        many tokens (MoE; real vLLM's mixed steps pay about half of it), never below 0
        (planner.simulate.steptime.mixed_step_ms; the closed-form mixed replica keeps the law's marginal,
        planner.planning.capacity._mixed_prompt_work_ms says why)."""
        m = self.prefill_b_ms_per_token * tokens + self.prefill_c_ms_per_token2 * isl2
        if not self.prefill_table_tokens:
            return m
        return max(0.0, m + MOE_TABLE_MIXED_SHARE * self.prefill_excess_ms(tokens, isl2))

    @property
    def precision(self) -> str:
        """'' for bf16/bf16, else '-fp8' and/or '-kvfp8' (as in pool ids)."""
        return precision_suffix(self.weight_dtype, self.kv_dtype)

    @property
    def key(self) -> VariantKey:
        return (self.model, self.gpu, self.tp, self.weight_dtype, self.kv_dtype)

    def prefill_ms(self, isl: float, batch: float = 1.0) -> float:
        """Time to prefill `batch` prompts of `isl` tokens each, in one forward pass."""
        if self.max_isl_measured is not None and isl > self.max_isl_measured * EXTRAPOLATION_SLACK:
            EXTRAPOLATION_WARNINGS.warn(self, "isl", isl, self.max_isl_measured)
        if self.max_prefill_batch_measured is not None and batch > self.max_prefill_batch_measured * EXTRAPOLATION_SLACK:
            EXTRAPOLATION_WARNINGS.warn(self, "prefill batch", batch, self.max_prefill_batch_measured)
        return self.prefill_pass_ms(batch * isl, batch * isl * isl)

    def decode_step_ms(self, batch: float, context: float) -> float:
        """One decode step of `batch` sequences whose mean context is `context` tokens."""
        if self.max_decode_batch_measured is not None and batch > self.max_decode_batch_measured * EXTRAPOLATION_SLACK:
            EXTRAPOLATION_WARNINGS.warn(self, "decode batch", batch, self.max_decode_batch_measured)
        if self.max_context_measured is not None and context > self.max_context_measured * EXTRAPOLATION_SLACK:
            EXTRAPOLATION_WARNINGS.warn(self, "context", context, self.max_context_measured)
        return self.decode_fixed_ms(batch) + self.decode_beta_ms_per_seq * batch + self.decode_gamma_ms_per_token * batch * context

    def kv_transfer_ms(self, isl: float, peer_link_gb_s: float | None = None) -> float:
        """Ship one prompt's KV cache to a decode replica; the slower side's link sets the pace."""
        link = self.kv_link_gb_s if peer_link_gb_s is None else min(self.kv_link_gb_s, peer_link_gb_s)
        return self.kv_fixed_ms + isl * self.kv_bytes_per_token / (link * 1e9) * 1e3


def lookup_variant_perf(lookup: Callable[..., VariantPerf | None], model: str, gpu: str, tp: int,
                        weight_dtype: str = "bf16", kv_dtype: str = "bf16") -> VariantPerf | None:
    """Call a (model, gpu, tp[, weight_dtype, kv_dtype]) lookup; bf16/bf16 variants pass three
    arguments only, so lookups written before precision existed keep working."""
    if weight_dtype == "bf16" and kv_dtype == "bf16":
        return lookup(model, gpu, tp)
    return lookup(model, gpu, tp, weight_dtype, kv_dtype)


# --------------------------------------------------------------------------- building blocks
def model_of(catalog: Catalog, name: str, weight_dtype: str = "bf16", kv_dtype: str = "bf16") -> ModelSpec:
    """The catalog's model served at this precision (sizes per weight and per KV element)."""
    return catalog.model(name).with_precision(weight_dtype, kv_dtype)


TTFT_E2E_COLUMN = "ttft_e2e_ms"
"""Optional prefill.csv column of the vLLM profiler: client-side TTFT of the point on an idle server."""


def measured_ttft_overhead(prefill: pd.DataFrame) -> float | None:
    """Median of ttft_e2e_ms - ttft_ms over the rows that have both (>= 0); None without such rows."""
    if TTFT_E2E_COLUMN not in prefill.columns:
        return None
    rows = prefill[prefill[TTFT_E2E_COLUMN].notna()]
    if "stat" in rows.columns:
        rows = rows[rows["stat"].astype(str).str.strip().str.lower().isin(("median", "p50", "mean", "sample"))]
    if rows.empty:
        return None
    return max(0.0, float(np.median(rows[TTFT_E2E_COLUMN].astype(float) - rows["ttft_ms"].astype(float))))


def client_ttft_rows(profile: Profile) -> bool:
    """Whether a profile's prefill rows are client TTFTs (overhead included): vLLM-measured without
    the profiler's separate step timing (ttft_e2e_ms)."""
    return law_source(profile.meta) == "measured-vllm" and measured_ttft_overhead(profile.prefill) is None


def route_share(model: ModelSpec) -> float:
    """experts_per_token / experts (0 for dense models): the shape of the MoE decode term."""
    return model.moe.experts_per_token / model.moe.experts if model.moe is not None else 0.0


def _fit_decode(batch: np.ndarray, context: np.ndarray, itl_ms: np.ndarray,
                share: float, knee_batch: float | None = None
                ) -> tuple[tuple[float, float, float, float, float], FitReport]:
    """The decode law (alpha, beta, gamma, moe, kappa): the MoE term for MoE models (moe = 0 for
    dense ones), the knee term past `knee_batch` (kappa = 0 where no point lies past it)."""
    if share > 0 or knee_batch is not None:
        return fit_decode_knee(batch, context, itl_ms, share, knee_batch)
    (al, be, ga), rep = fit_decode(batch, context, itl_ms)
    return (al, be, ga, 0.0, 0.0), rep


def prefill_floor_bound_ms(decode_coef: tuple[float, ...], share: float, knee_batch: float | None,
                           context: float) -> float:
    """Upper bound of the prefill floor: the decode step at batch 1 and this context (it reads the
    same weights once, plus its own step overhead; planner.perf.fit module doc). A MoE pass over
    `context` prompt tokens reads the experts those tokens touch, not those of one token (as the
    overhead rule of planner.perf.fit.fit_prefill_client)."""
    al, be, ga, moe, kappa = decode_coef
    touched = float(experts_touched(context, share)) if share > 0 else 0.0
    return al + be + ga * context + moe * touched + kappa * float(knee_column(1.0, knee_batch))


def observations(profile: Profile, catalog: Catalog, allreduce: dict[str, AllReduceTable] | None = None,
                 ttft_overhead_ms: float = 0.0) -> list[Observation]:
    """A profile's central points with their ideal roofline parts (for calibration).

    `ttft_overhead_ms` is taken off the prefill times first: the roofline models GPU time only."""
    meta = profile.meta
    model, gpu, tp = model_of(catalog, meta.model, meta.weight_dtype, meta.kv_dtype), catalog.gpu(meta.gpu), meta.tp
    ar = (allreduce or {}).get(profile.meta.gpu)
    pre = central_points(profile.prefill, ["isl", "batch"], "ttft_ms")
    dec = central_points(profile.decode, ["batch", "context_tokens"], "itl_ms")
    ttft = np.maximum(pre.ttft_ms.to_numpy() - ttft_overhead_ms, 0.05 * pre.ttft_ms.to_numpy())
    return [
        Observation("prefill", prefill_parts(model, gpu, tp, pre.isl.to_numpy(), pre.batch.to_numpy(), ar), ttft),
        Observation("decode", decode_parts(model, gpu, tp, dec.batch.to_numpy(), dec.context_tokens.to_numpy(), ar),
                    dec.itl_ms.to_numpy()),
    ]


VLLM_DEFAULT_GRAPH_TOKENS = 512
"""The largest step vLLM 0.26 captures in a CUDA graph by default (2 x max_num_seqs when that is smaller; its
CompilationConfig docstring; planner/perf/graphs.py reads what that does to an MoE's prefill)."""


def table_ratio(tokens: tuple[float, ...], ratio: tuple[float, ...], sum_isl: float, step_tokens: float = 0.0) -> float:
    """The measured/law ratio at `sum_isl` tokens: linear in log tokens between the table's points,
    the end values beyond them. With `step_tokens` > 0 only the points on sum_isl's side of it (<= or >) are used
    where that side has any: the table steps there instead of ramping across (an engine's CUDA-graph limit,
    LawForms.moe_table_graph_step)."""
    if step_tokens > 0.0:
        side = [(t, r) for t, r in zip(tokens, ratio, strict=True) if (t <= step_tokens) == (sum_isl <= step_tokens)]
        if side:
            tokens, ratio = tuple(t for t, _ in side), tuple(r for _, r in side)
    return float(np.interp(np.log(max(sum_isl, 1.0)), np.log(tokens), ratio))


def cuda_graph_limit_tokens(engine_flags: Sequence[str], max_num_seqs: int) -> float:
    """The largest step (tokens) the engine ran in a CUDA graph: the largest of `--cudagraph-capture-sizes` or
    `--max-cudagraph-capture-size` where its flags set them, else vLLM 0.26's default min(2 x max_num_seqs, 512)
    (its CompilationConfig docstring; planner/perf/graphs.py)."""
    words = " ".join(engine_flags).replace("=", " ").split()
    sizes: list[float] = []
    for i, w in enumerate(words):
        if w.endswith("--cudagraph-capture-sizes"):
            for v in words[i + 1:]:
                if not v.isdigit():
                    break
                sizes.append(float(v))
        elif w.endswith("--max-cudagraph-capture-size") and i + 1 < len(words) and words[i + 1].isdigit():
            sizes.append(float(words[i + 1]))
    return max(sizes) if sizes else float(min(2 * max_num_seqs, VLLM_DEFAULT_GRAPH_TOKENS))


def prefill_token_table(isl: np.ndarray, batch: np.ndarray, measured_ms: np.ndarray,
                        law_ms: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The measured prefill of an MoE as a table over tokens per pass: (tokens, measured / law), the
    median ratio where several points share a token count.

    Why: with its default CUDA-graph sizes (up to 512 tokens, vLLM 0.26's CompilationConfig) vLLM runs
    larger steps without a graph, and a small-expert MoE's many small kernels per layer make those
    steps launch-bound: its prefill time is a step function of tokens that no smooth law follows
    (first put down to the fused-MoE kernel's tile table; profiles/runs/2026-12-04-s15 found the graph
    limit: captured to 4,096 tokens, 1,024 tokens take 29 ms instead of 90 and the table is flat within
    3%). Measured on qwen3-30b-a3b, H200, vLLM 0.26.0 (profiles/runs/2026-12-03-s9): 512 tokens
    24 ms, 768 tokens 62 ms, 1,024 tokens 90 ms, 2,048 tokens 91 ms, 4,096 tokens 82 ms, 8,192 tokens
    150 ms; the law fitted on these points puts them at 29, 37, 54 and 90 ms for 512-4,096 tokens, and
    a replica under load at ISL 1,024 had twice the TTFT the law predicts (s8). Dense models' laws follow their
    points within the repeats' spread (median residual 1-3%), so they keep the law alone.

    Evidence (nothing in the table was fitted to a load sweep; bench/calibrate_prior.py part A,
    bench/vllm_under_load.py): within the MoE's profile, laws fitted on half the points miss the
    other half by 16.9% p90 with the table, 24.9% without; the simulator replaying the MoE's two
    warmed-up load sweeps (s8) misses TTFT / ITL p90 by 35.6 / 15.6% and 34.4 / 12.4% with it, 43.0 /
    25.3% and 42.1 / 26.0% without (most of the TTFT rest is one 2-s engine stall per launch)."""
    tokens = np.asarray(isl, dtype=float) * np.asarray(batch, dtype=float)
    rat = np.asarray(measured_ms, dtype=float) / np.maximum(np.asarray(law_ms, dtype=float), 1e-9)
    df = pd.DataFrame({"tokens": tokens, "ratio": rat}).groupby("tokens", sort=True)["ratio"].median()
    return tuple(float(t) for t in df.index), tuple(float(r) for r in df.to_numpy())


KNEE128_BATCH = 128.0
"""Rule K5's knee cap: the largest decode batch below the step-time jump in every bundled vLLM profile that measured
batch 256 (llama-3.1-8b on the H200 in BF16 and FP8, 2.4x batch 128's step; on the H100 in FP8, 2.5x), where the
bytes a step reads grow ~1.3-1.5x; plan h2's per-step log put the jump in the engine (bench/decode_steps.py)."""


@dataclass(frozen=True)
class LawForms:
    """Which roofline-shaped terms the fitted laws carry (planner.perf.fit module doc); all False
    gives the linear laws.

    Default: both, the decode knee and the prefill floor, chosen on the tuning evidence (2026-12-03,
    engine-timed vLLM prefill): leave-one-out cross-validation within the sparse halves of the vLLM
    profiles (bench/calibrate_prior.py, part A0: prefill CV median 6.8% vs 9.1% linear; decode CV p90
    22.0% vs 27.0%); the prior calibrated with it predicts an unprofiled model better (leave one model
    out, prefill median 14.9% vs 17.2%); the simulator replaying the tuning load sweep of real vLLM
    (llama-3.1-8b, bench/fidelity.py part 4) 10.6% / 5.1% TTFT / ITL p90 vs 11.8% / 6.8%; Splitwise
    prefill batches (part 2) 31.9% vs 35.6%; the closed-form model against the simulator unchanged
    (part 1 within 0.3 points; bench/vllm_under_load.py steady state on the tuning sweeps 6.6 / 6.4% vs
    6.5 / 6.6%). The floor was off until then because the capacity model's errors against the sweep past
    saturation (profiles/runs/2026-12-02-s2) grow with it (TTFT / ITL p90 46.0% / 81.8% vs 26.9% /
    49.4%): those 12-s samples from an empty replica are transient near saturation and the model
    predicts the steady state (bench/vllm_under_load.py shows it; the model against the simulator in
    steady state there: 11.1 / 12.2% vs 13.8 / 12.1%); what the samples can show of the closed form gets a
    little worse (against the simulator's chance-band median on the tuning sweep 7.1 / 3.7% vs 6.9 / 2.8%),
    weighed against the law's and the simulator's gains above. Held out, reported: the four dense variants'
    sparse-half prefill p90 4.4% vs 12.6%; qwen3-14b 13.7% vs 14.2%; H100 tp2-8 10.4% vs 11.7%; the
    qwen3-32b load sweep in replay 14.4% / 4.4% vs 11.7% / 2.7%. The default plan (make run) costs
    $68.16/h with it, $65.76/h with the linear prefill. The knee changes nothing where no point lies
    past the ridge batch (every non-H200 profile bundled).
    Stop 38, rule K5 (written before its fit): the decode knee at min(ridge, KNEE128_BATCH), the batch past which
    vLLM 0.26's own step jumps on the H200 and the H100 alike; part A0 picks it (decode CV median 1.7% against the
    ridge knee's 2.1%, p90 26.4% for both). Held out, reported: the H100 FP8 llama-3.1-8b laws at batch 160 / 192 /
    224 against the engine's steps (plan h2) -4 / -2 / -14% against -7 / -16 / -33%; qwen3-14b FP8 on the H100, sparse
    half decode p90 1.8% against 8.6%."""

    prefill_floor: bool = True
    """t = a + max(floor, b*sum(isl) + c*sum(isl^2)), floor <= the decode step at batch 1."""
    decode_knee: bool = True
    """+ kappa * max(0, batch - knee) in the decode step, the knee at the ridge batch or below it
    (decode_knee_max_batch; :func:`decode_knee_batch`)."""
    decode_knee_max_batch: float | None = None
    """Where set, the knee sits at min(ridge batch, this): the candidate "knee128" of rule K5 (stop 38; vLLM 0.26's
    own decode step jumps past batch 128 on the H100, whose ridge is 295: bench/decode_steps.py on plan h2's run).
    None: the knee at the ridge."""
    moe_prefill_table: bool = True
    """An MoE's measured prefill: the law times the measured/law ratio by tokens per pass
    (:func:`prefill_token_table`; its docstring says why and what chose it)."""
    moe_table_graph_step: bool = False
    """Where the MoE token table applies: it is not interpolated across the engine's CUDA-graph limit
    (:func:`cuda_graph_limit_tokens`; rule 48-G, stop 48): a pass on one side takes the ratio of the table's points on
    its side. Why: past the limit vLLM runs the step eagerly and a small-expert MoE's prefill jumps (planner/perf/
    graphs.py); interpolating in log tokens between a 128- and a 2,048-token point put qwen3-30b-a3b FP8 on the H100
    at 43 ms for 512 tokens where it measured 22 (its half-profile check, 93% off there). The default since stop 48
    (rule 48-G, bench/moe_law_rules.py): on its tuning profiles (qwen3-30b-a3b on the H100, bf16 and FP8) the
    half-profile prefill p90 16.2 -> 11.8% and 93.3 -> 22.5%, part C unchanged; held out, the H200 bf16 profile reads
    worse (part C 18.3 -> 26.2%, half 33.1 -> 34.1%: its jump spreads over 512-1,024 tokens)."""
    moe_attention_prior: bool = False
    """Where the MoE token table applies (on a profile whose prefill the engine timed, as every bundled vLLM profile's):
    the prefill attention coefficient c is the roofline prior's for the profile's (model, GPU, TP, dtypes), not fitted
    (rule 48-M, stop 48). Why: an MoE's step-function prefill drags
    the fitted c off its attention shape (qwen3-30b-a3b on the H200: 2.3e-7 ms per token^2 fitted, 7.9e-7 from the
    prior, which the dense H200 profiles' fits match within 10%), and the table, keyed by tokens per pass, then
    prices four 2,048-token prompts as one 8,192-token prompt. Not adopted (rule 48-M, bench/moe_law_rules.py): on its
    tuning profiles (the H100 MoEs) the held-out checks got worse (half-profile prefill p90 16.2 -> 18.5%, part C
    6.6 -> 8.5%); the held-out H200 profile would gain (part C 18.3 -> 5.1%)."""


def decode_knee_batch(model: ModelSpec, gpu: GpuType, forms: LawForms) -> float | None:
    """The batch past which the decode law adds its knee term under `forms` (None: no knee term)."""
    if not forms.decode_knee:
        return None
    ridge = ridge_batch(model, gpu)
    return ridge if forms.decode_knee_max_batch is None else min(ridge, forms.decode_knee_max_batch)


DEFAULT_LAW_FORMS = LawForms(prefill_floor=True, decode_knee=True, moe_prefill_table=True,
                             decode_knee_max_batch=KNEE128_BATCH, moe_table_graph_step=True)
LINEAR_LAW_FORMS = LawForms(prefill_floor=False, decode_knee=False, moe_prefill_table=False)


def check_catalog_names(profile: Profile, catalog: Catalog) -> None:
    """A profile's model and GPU must be the catalog's: else an InputError naming its meta.yaml and the field (found by
    hand: `planner profile rates DIR` on a meta.yaml of gpu H100-SXM-8GB blamed profiles/gpus.yaml, not the user's file)."""
    for name, known, field_name in ((profile.meta.model, catalog.models, "model"), (profile.meta.gpu, catalog.gpus, "gpu")):
        if name not in known:
            raise InputError(str(profile.path / "meta.yaml"), field_name,
                             f"'{name}' is not in the catalog{_did_you_mean(name, known)}; known: {', '.join(sorted(known))}")


def fit_profile(profile: Profile, catalog: Catalog, default_ttft_overhead_ms: float = DEFAULT_TTFT_OVERHEAD_MS,
                forms: LawForms = DEFAULT_LAW_FORMS) -> tuple[VariantPerf, FitReport, FitReport]:
    """Measured VariantPerf of one profile, with the prefill and decode fit reports.

    A vLLM-measured profile's TTFT overhead is fitted (:func:`planner.perf.fit.fit_prefill_client`);
    other sources measured no frontend and get `default_ttft_overhead_ms`. `forms` picks the law
    terms (the default everywhere but the bench's cross-validation)."""
    check_catalog_names(profile, catalog)
    meta = profile.meta
    model, gpu = model_of(catalog, meta.model, meta.weight_dtype, meta.kv_dtype), catalog.gpu(meta.gpu)
    pre = central_points(profile.prefill, ["isl", "batch"], "ttft_ms")
    dec = central_points(profile.decode, ["batch", "context_tokens"], "itl_ms")
    share = route_share(model)
    knee = decode_knee_batch(model, gpu, forms)
    dcoef, drep = _fit_decode(dec.batch.to_numpy(), dec.context_tokens.to_numpy(), dec.itl_ms.to_numpy(), share, knee)
    al, be, ga, moe, kappa = dcoef
    floor_max = prefill_floor_bound_ms(dcoef, share, knee, float(pre.isl.min())) if forms.prefill_floor else 0.0
    src = law_source(meta)
    step_timed = measured_ttft_overhead(profile.prefill) if src == "measured-vllm" else None
    if step_timed is not None:  # ttft_ms is the engine's prefill step; the overhead measured beside it
        c_prior = _moe_attention_prior_c(meta, catalog, forms) if share > 0 and forms.moe_prefill_table else None
        (a, b, c, floor), prep = fit_prefill_floor(pre.isl.to_numpy(), pre.batch.to_numpy(), pre.ttft_ms.to_numpy(),
                                                   floor_max, c_fixed=c_prior)
        over = step_timed
    elif src == "measured-vllm":
        (a, b, c, floor), prep, over = fit_prefill_client_floor(pre.isl.to_numpy(), pre.batch.to_numpy(),
                                                                pre.ttft_ms.to_numpy(), dcoef[:4], share, floor_max)
    else:
        (a, b, c, floor), prep = fit_prefill_floor(pre.isl.to_numpy(), pre.batch.to_numpy(), pre.ttft_ms.to_numpy(),
                                                   floor_max)
        over = default_ttft_overhead_ms
    vp = VariantPerf(
        model=meta.model, gpu=meta.gpu, tp=meta.tp, source="measured",
        weight_dtype=meta.weight_dtype, kv_dtype=meta.kv_dtype, law_source=src, ttft_overhead_ms=over,
        prefill_a_ms=a, prefill_b_ms_per_token=b, prefill_c_ms_per_token2=c, prefill_floor_ms=floor,
        decode_alpha_ms=al, decode_beta_ms_per_seq=be, decode_gamma_ms_per_token=ga,
        decode_moe_ms=moe, moe_route_share=share if moe > 0 else 0.0,
        decode_knee_batch=knee if knee is not None and kappa > 0 else 0.0, decode_knee_ms_per_seq=kappa,
        kv_capacity_tokens=meta.kv_capacity_tokens,
        kv_bytes_per_token=kv_bytes_per_token_replica(model, meta.tp),
        kv_link_gb_s=gpu.kv_link_gb_s * meta.tp,
        max_num_seqs=meta.max_num_seqs, max_batched_tokens=meta.max_batched_tokens,
        prefill_rel_err=prep.median_rel_err, decode_rel_err=drep.median_rel_err,
        prefill_max_rel_err=prep.max_rel_err, decode_max_rel_err=drep.max_rel_err,
        max_isl_measured=int(pre.isl.max()), max_prefill_batch_measured=int(pre.batch.max()),
        max_decode_batch_measured=int(dec.batch.max()), max_context_measured=int(dec.context_tokens.max()),
    )
    if forms.moe_prefill_table and share > 0:
        law = np.array([vp.prefill_pass_ms(i * b, b * i * i) for i, b in zip(pre.isl, pre.batch, strict=True)])
        # client TTFTs (no engine-timed rows) carry the fitted overhead; the law's pass does not
        client = over if step_timed is None and src == "measured-vllm" else 0.0
        tokens, ratio = prefill_token_table(pre.isl.to_numpy(), pre.batch.to_numpy(), pre.ttft_ms.to_numpy() - client, law)
        step = cuda_graph_limit_tokens(meta.engine_flags, meta.max_num_seqs) if forms.moe_table_graph_step else 0.0
        vp = replace(vp, prefill_table_tokens=tokens, prefill_table_ratio=ratio, prefill_table_step_tokens=step)
    return vp, prep, drep


def _moe_attention_prior_c(meta: ProfileMeta, catalog: Catalog, forms: LawForms) -> float | None:
    """The roofline prior's prefill attention coefficient for this profile's variant, where
    `forms.moe_attention_prior` asks for it (rule 48-M); None otherwise or where the prior cannot run the variant."""
    if not forms.moe_attention_prior:
        return None
    prior = prior_variant(meta.model, meta.gpu, meta.tp, catalog, weight_dtype=meta.weight_dtype, kv_dtype=meta.kv_dtype,
                          forms=replace(forms, moe_attention_prior=False))
    return None if prior is None else prior[0].prefill_c_ms_per_token2


RunBlocker = Literal["node", "heads", "memory"]


def run_blocker(model: ModelSpec, gpu: GpuType, tp: int) -> RunBlocker | None:
    """Why `model` cannot run on `gpu` at TP `tp` (the checks of `prior_variant`, in its order), None when it can:
    'node', TP beyond one node's GPUs (tensor parallelism stays in one NVLink domain); 'heads', a TP that does not
    divide the attention heads (vLLM splits them evenly over the ranks and refuses such a TP); 'memory', weights that
    leave no room for a KV cache (`kv_capacity_tokens`)."""
    if tp > gpu.gpus_per_node:
        return "node"
    if model.heads % tp:
        return "heads"
    if kv_capacity_tokens(model, gpu, tp, max_batched_tokens=DEFAULT_MAX_BATCHED_TOKENS, max_num_seqs=DEFAULT_MAX_NUM_SEQS) is None:
        return "memory"
    return None


def cannot_run_reason(catalog: Catalog, model_name: str, gpu_name: str, tp: int, weight_dtype: Dtype = "bf16",
                      kv_dtype: Dtype = "bf16") -> str:
    """Why the variant gets no laws, in words with the numbers that decide it (`run_blocker`)."""
    model, gpu = model_of(catalog, model_name, weight_dtype, kv_dtype), catalog.gpu(gpu_name)
    blocker = run_blocker(model, gpu, tp)
    return _blocker_text(blocker, model, gpu, tp) if blocker else "neither a profile nor the prior gives it laws"


STRUCTURAL_BLOCKERS: frozenset[RunBlocker] = frozenset({"node", "heads"})
"""What no deployment gets past (a TP beyond a node, or not dividing the heads). 'memory' is the prior's estimate of
vLLM's memory use: it must not refuse a fleet that runs, nor a measurement that would tell."""


def structural_blocker_reason(catalog: Catalog, model_name: str, gpu_name: str, tp: int, weight_dtype: Dtype = "bf16",
                              kv_dtype: Dtype = "bf16") -> str | None:
    """`cannot_run_reason` for the STRUCTURAL_BLOCKERS only (what input checks refuse); None otherwise."""
    model, gpu = model_of(catalog, model_name, weight_dtype, kv_dtype), catalog.gpu(gpu_name)
    blocker = run_blocker(model, gpu, tp)
    return _blocker_text(blocker, model, gpu, tp) if blocker in STRUCTURAL_BLOCKERS else None


def _blocker_text(blocker: RunBlocker, model: ModelSpec, gpu: GpuType, tp: int) -> str:
    """`run_blocker`'s answer in words, with the numbers that decide it."""
    if blocker == "node":
        return f"TP {tp} exceeds the {gpu.gpus_per_node} GPUs of a {gpu.name} node (tensor parallelism stays within one node)"
    if blocker == "heads":
        return f"TP {tp} does not divide the model's {model.heads} attention heads (vLLM splits them evenly over the TP ranks)"
    return (f"its {model.weight_bytes / 2**30:,.0f} GiB of weights leave no room for a KV cache on {tp} x "
            f"{gpu.memory_gib:g} GiB")


def prior_variant(model_name: str, gpu_name: str, tp: int, catalog: Catalog, eff: Efficiency = DEFAULT_EFFICIENCY,
                  allreduce: AllReduceTable | None = None, weight_dtype: Dtype = "bf16", kv_dtype: Dtype = "bf16",
                  ttft_overhead_ms: float = DEFAULT_TTFT_OVERHEAD_MS,
                  forms: LawForms = DEFAULT_LAW_FORMS) -> tuple[VariantPerf, FitReport, FitReport] | None:
    """Roofline-prior VariantPerf of (model, gpu, tp, weight dtype, KV dtype), or None when it can't
    run (see module docstring).

    The returned fit reports say how well the linear laws follow the roofline on the default grid.
    """
    model, gpu = model_of(catalog, model_name, weight_dtype, kv_dtype), catalog.gpu(gpu_name)
    if run_blocker(model, gpu, tp) is not None:
        return None
    kv = kv_capacity_tokens(model, gpu, tp, max_batched_tokens=DEFAULT_MAX_BATCHED_TOKENS, max_num_seqs=DEFAULT_MAX_NUM_SEQS)
    assert kv is not None  # run_blocker's 'memory'
    isl, pb = (a.ravel() for a in np.meshgrid(pfmt.PREFILL_ISL, pfmt.PREFILL_BATCH))
    keep = isl * pb <= max(kv, pfmt.PREFILL_ISL[0])
    isl, pb = isl[keep], pb[keep]
    db, ctx = (a.ravel() for a in np.meshgrid(pfmt.DECODE_BATCH, pfmt.DECODE_CONTEXT))
    keep = db * ctx <= max(kv, pfmt.DECODE_CONTEXT[0])
    db, ctx = db[keep], ctx[keep]
    t_pre = predict_ms(prefill_parts(model, gpu, tp, isl, pb, allreduce), eff, "prefill")
    t_dec = predict_ms(decode_parts(model, gpu, tp, db, ctx, allreduce), eff, "decode")
    share = route_share(model)
    knee = decode_knee_batch(model, gpu, forms)
    dcoef, drep = _fit_decode(db, ctx, t_dec, share, knee)
    al, be, ga, moe, kappa = dcoef
    floor_max = prefill_floor_bound_ms(dcoef, share, knee, float(isl.min())) if forms.prefill_floor else 0.0
    (a, b, c, floor), prep = fit_prefill_floor(isl, pb, t_pre, floor_max)
    vp = VariantPerf(
        model=model_name, gpu=gpu_name, tp=tp, source="prior",
        weight_dtype=weight_dtype, kv_dtype=kv_dtype, law_source="prior", ttft_overhead_ms=ttft_overhead_ms,
        prefill_a_ms=a, prefill_b_ms_per_token=b, prefill_c_ms_per_token2=c, prefill_floor_ms=floor,
        decode_alpha_ms=al, decode_beta_ms_per_seq=be, decode_gamma_ms_per_token=ga,
        decode_moe_ms=moe, moe_route_share=share if moe > 0 else 0.0,
        decode_knee_batch=knee if knee is not None and kappa > 0 else 0.0, decode_knee_ms_per_seq=kappa,
        kv_capacity_tokens=kv, kv_bytes_per_token=kv_bytes_per_token_replica(model, tp),
        kv_link_gb_s=gpu.kv_link_gb_s * tp,
    )
    return vp, prep, drep


def variant_key(p: Profile) -> VariantKey:
    m = p.meta
    return (m.model, m.gpu, m.tp, m.weight_dtype, m.kv_dtype)


def preferred_profiles(profiles: list[Profile]) -> tuple[dict[VariantKey, Profile], dict[VariantKey, list[LawSource]]]:
    """The profile the model uses per variant (``LAW_PREFERENCE``: vLLM-measured first), and every
    variant's available law sources, preferred first. Two profiles of one variant from the same
    source are ambiguous: an InputError naming both."""
    by_key: dict[VariantKey, list[Profile]] = {}
    for p in profiles:
        by_key.setdefault(variant_key(p), []).append(p)
    chosen: dict[VariantKey, Profile] = {}
    alts: dict[VariantKey, list[LawSource]] = {}
    for key, ps in by_key.items():
        ps = sorted(ps, key=lambda p: LAW_PREFERENCE.index(law_source(p.meta)))
        srcs = [law_source(p.meta) for p in ps]
        if len(set(srcs)) < len(srcs):
            dup = [p for p in ps if srcs.count(law_source(p.meta)) > 1]
            raise InputError(str(dup[1].path / "meta.yaml"), "backend",
                             f"two {law_source(dup[1].meta)} profiles of one variant ({dup[0].path} and {dup[1].path}); keep one")
        chosen[key] = ps[0]
        alts[key] = srcs
    return chosen, alts


# --------------------------------------------------------------------------- the model
@dataclass
class PerfModel:
    """Latency laws of every variant (model, GPU, tp, weight dtype, KV dtype): measured where
    profiled (the preferred profile where several exist), calibrated roofline prior elsewhere."""

    catalog: Catalog
    measured: dict[VariantKey, VariantPerf]
    efficiency: Efficiency
    fit_reports: dict[VariantKey, tuple[FitReport, FitReport]] = field(default_factory=dict)
    """variant key -> (prefill, decode) fit reports: of measured fits, and of priors once queried."""
    profiles_dir: str | None = None
    allreduce: dict[str, AllReduceTable] = field(default_factory=dict)
    """Measured tensor-parallel all-reduce times per GPU type (<profiles>/allreduce/<gpu>/), for the prior."""
    ttft_overhead_ms: float = DEFAULT_TTFT_OVERHEAD_MS
    """Per-request frontend overhead given to laws that did not measure one (median of the vLLM profiles')."""
    alternatives: dict[VariantKey, list[LawSource]] = field(default_factory=dict)
    """variant key -> the law sources of every profile found for it, preferred first."""
    unphysical: dict[VariantKey, str] = field(default_factory=dict)
    """variant key -> why its measured profile is not used: points below the roofline floor (planner.perf.floor, rule
    V1); the variant takes its next profile or the prior."""
    _cache: dict[VariantKey, VariantPerf | None] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, catalog: Catalog | None = None, profiles_dir: str | os.PathLike[str] | None = None,
             leave_out: Callable[[Profile], bool] | None = None) -> PerfModel:
        """Fit every profile under `profiles_dir` and calibrate the prior. Default: the bundled
        profiles/data plus the ``profiles/`` folder of the user's catalog folder (planner/io/catalog.py,
        PLANNER_CATALOG), same layout; a user profile replaces a bundled one of the same variant and source.
        `leave_out`: profiles for which it is true are neither fitted nor calibrated on (a held-out check of a run
        whose profiles were bundled since, bench/gpu_heldout.py)."""
        from planner.io.catalog import USER_PROFILES_DIR, user_catalog_dir

        cat = catalog or Catalog.load()
        root = Path(profiles_dir) if profiles_dir is not None else DEFAULT_PROFILES_DIR
        profiles = list(iter_profiles(root)) if root.is_dir() or profiles_dir is not None else []
        user = user_catalog_dir() if profiles_dir is None else None
        if user is not None and (user / USER_PROFILES_DIR).is_dir():
            mine = list(iter_profiles(user / USER_PROFILES_DIR))
            replaced = {(variant_key(p), law_source(p.meta)) for p in mine}
            profiles = [p for p in profiles if (variant_key(p), law_source(p.meta)) not in replaced] + mine
        if leave_out is not None:
            profiles = [p for p in profiles if not leave_out(p)]
        allreduce = load_allreduce(root / ALLREDUCE_DIR)
        for g in allreduce:
            cat.gpu(g)  # an unknown GPU type is an InputError naming the catalog
        pm = cls.from_profiles(cat, profiles, str(root), allreduce)
        from planner.perf.handoff import apply_handoff_laws  # measured P->D hand-offs (pair-tp<P>-tp<D>/ profiles)

        return apply_handoff_laws(pm, root)

    @classmethod
    def from_profiles(cls, catalog: Catalog, profiles: list[Profile], profiles_dir: str | None = None,
                      allreduce: dict[str, AllReduceTable] | None = None,
                      calibrate_on: Literal["engines", "all"] = "engines",
                      calibration: Calibration = DEFAULT_CALIBRATION) -> PerfModel:
        """Fit the preferred profile of every variant and calibrate the prior on them (GPU time:
        the fitted TTFT overheads are taken off vLLM-measured prefill rows first).

        calibrate_on="engines" (default): once any vLLM-measured profile exists, the prior is
        calibrated on serving engines only (vLLM, Splitwise's engine, other engines), not on the
        torch reference decoder, whose attention is 1.65-2x slower than vLLM's kernels (issue 10):
        the prior predicts what vLLM would do. "all": every preferred profile. `calibration`: the calibration's
        (planner.perf.prior.Calibration; bench/calibrate_prior.py part B0 compares the candidates)."""
        for p in profiles:
            check_catalog_names(p, catalog)
        # a profile faster than the roofline allows does not measure the deployed model (rule V1): neither its laws
        # nor the prior's calibration use it
        profiles, reasons = physical_profiles(profiles, catalog)
        unphysical: dict[VariantKey, str] = {}
        for bad, why in reasons:
            unphysical[variant_key(bad)] = why
            log.info(why)
        chosen, alternatives = preferred_profiles(profiles)
        fits = {key: fit_profile(p, catalog) for key, p in chosen.items()}
        vllm_over = [vp.ttft_overhead_ms for vp, _, _ in fits.values() if vp.law_source == "measured-vllm"]
        over = float(np.median(vllm_over)) if vllm_over else DEFAULT_TTFT_OVERHEAD_MS
        measured: dict[VariantKey, VariantPerf] = {}
        reports: dict[VariantKey, tuple[FitReport, FitReport]] = {}
        obs: list[Observation] = []
        for key, (vp, prep, drep) in fits.items():
            check_fit_support(chosen[key].path, prep, drep)  # too few points: refuse, not a degenerate law
            if vp.law_source != "measured-vllm":
                vp = replace(vp, ttft_overhead_ms=over)
            measured[key] = vp
            reports[key] = (prep, drep)
        skip_torch = calibrate_on == "engines" and bool(vllm_over)
        # a profile whose meta.yaml says calibrate: false plans its variant but leaves the prior alone (rule V2b, stop
        # 40: an engine that ran untuned fallback kernels measures that fallback, not the efficiency the prior carries)
        used = [key for key in fits if chosen[key].meta.calibrate
                and not (skip_torch and measured[key].law_source == "measured-torch")]
        for key in (k for k in fits if not chosen[k].meta.calibrate):
            log.info("%s: not in the prior's calibration (meta.yaml calibrate: false): %s", chosen[key].path,
                     chosen[key].meta.calibrate_note or "no reason given")
        if skip_torch and TORCH_ONLY_LAWS == "prior":
            # Whether its laws are used is part D's verdict (TORCH_ONLY_LAWS): where it says "prior", a variant whose
            # only profile is the torch reference decoder's is planned from the prior calibrated on the serving
            # engines; the profile stays listed in `alternatives`, and is used again with calibrate_on="all".
            for key in [k for k, vp in measured.items() if vp.law_source == "measured-torch"]:
                del measured[key], reports[key]
        for key in used:
            took_off = measured[key].ttft_overhead_ms if client_ttft_rows(chosen[key]) else 0.0
            obs.extend(observations(chosen[key], catalog, allreduce, ttft_overhead_ms=took_off))
        names = sorted({f"{k[0]}/{k[1]}" for k in used})
        eff = (calibrate(obs, source=f"calibrated on {len(used)} profiles ({', '.join(names)})", calibration=calibration) if obs
               else DEFAULT_EFFICIENCY)
        return cls(catalog=catalog, measured=measured, efficiency=eff, fit_reports=reports, profiles_dir=profiles_dir,
                   allreduce=dict(allreduce or {}), ttft_overhead_ms=over, alternatives=alternatives, unphysical=unphysical)

    @property
    def profiled_gpus(self) -> frozenset[str]:
        """The GPU types with a profile of any model (the others are priced from their catalog entry alone)."""
        return frozenset(key[1] for key in self.measured)

    def measured_gpus(self, model: str) -> frozenset[str]:
        """The GPU types with a profile of `model` (any TP and dtype): where its laws are measured, not the prior."""
        return frozenset(key[1] for key in self.measured if key[0] == model)

    def is_measured(self, model: str, gpu: str, tp: int, weight_dtype: str = "bf16", kv_dtype: str = "bf16") -> bool:
        return (model, gpu, tp, weight_dtype, kv_dtype) in self.measured

    def get(self, model: str, gpu: str, tp: int, weight_dtype: Dtype = "bf16", kv_dtype: Dtype = "bf16") -> VariantPerf | None:
        """Laws of the variant: the measured fit, else the calibrated prior; None if it can't run."""
        key = (model, gpu, tp, weight_dtype, kv_dtype)
        if key in self.measured:
            return self.measured[key]
        if key not in self._cache:
            got = prior_variant(model, gpu, tp, self.catalog, self.efficiency, self.allreduce.get(gpu),
                                weight_dtype=weight_dtype, kv_dtype=kv_dtype, ttft_overhead_ms=self.ttft_overhead_ms)
            if got is None:
                self._cache[key] = None
            else:
                self._cache[key] = got[0]
                self.fit_reports[key] = (got[1], got[2])
        return self._cache[key]

    def roofline_ms(self, model: str, gpu: str, tp: int, phase: Literal["prefill", "decode"], x: float, y: float,
                    weight_dtype: str = "bf16", kv_dtype: str = "bf16") -> float:
        """Calibrated roofline time of one point (prefill: x=isl, y=batch; decode: x=batch, y=context), GPU time."""
        m, g = model_of(self.catalog, model, weight_dtype, kv_dtype), self.catalog.gpu(gpu)
        ar = self.allreduce.get(gpu)
        parts = prefill_parts(m, g, tp, [x], [y], ar) if phase == "prefill" else decode_parts(m, g, tp, [x], [y], ar)
        return float(predict_ms(parts, self.efficiency, phase)[0])
