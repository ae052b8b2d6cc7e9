"""Torch backend: a compact reference decoder with a model's real shapes, measured on a GPU.

Why: vLLM cannot be installed on the GPU machines this project can borrow (their image has torch
2.11, no package registry). This backend measures what dominates vLLM's step times -- the same
matrix products, attention over a KV cache and memory traffic -- with a plain decoder:

  embedding -> L x [RMSNorm, fused QKV, RoPE, GQA attention (torch SDPA, flash kernel on GPU),
  output projection, RMSNorm, SwiGLU MLP (fused gate/up, down)] -> RMSNorm -> LM head (last token)

with random bf16 weights of the real shapes from profiles/models.yaml, a static KV cache
(preallocated, per layer [batch, kv_heads, context, head_dim] views of one pool) and CUDA-graph
captured decode steps (one graph per (batch, context) point, replayed back to back, so launch gaps
are those of an engine that also uses CUDA graphs, as vLLM does for decode).

What it does NOT model: the scheduler and
sampling overheads, paged-attention block tables, tokenizer/HTTP, chunked-prefill interleaving.
meta.yaml says ``backend: torch`` so nobody mistakes these curves for vLLM's. They are NOT a lower bound
on an engine's latency: vLLM 0.26.0's kernels (FlashAttention-3, fused ops) ran 0.65-0.88x these times
on the same H200 (profiles/data/llama-3.1-8b/ROOFLINE.md), and 0.78-0.93x at the median on the H100 for three
more models (profiles/runs/2026-12-06-d2).

Measurements (same grids as the vLLM backend, profiles.sweep):
  prefill: one forward pass of `batch` prompts of `isl` tokens, logits of the last token, argmax;
           time with CUDA events; warm-up once; median of repeats -> ttft_ms.
  decode:  graph replay of one decode step of `batch` sequences at `context` tokens of context
           (the new token's K/V is written at position context-1 and attention reads all `context`
           positions); median over repeats of (time of N replays / N) -> itl_ms.
  KV capacity: as vLLM computes it: mem_fraction x total memory - (weights + peak activation of a
           profile forward of max_num_batched_tokens tokens + non-torch memory), over KV bytes/token.

Run it standalone on a GPU machine (needs only torch, numpy, pyyaml):
  python -m profiles.backends.torch_ref --model llama-3.1-8b --gpu H100-SXM-80GB --tp 1 --out DIR --check
and on a CPU with --tiny for a smoke test of the code paths (CI).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from profiles import format as pfmt
from profiles import sweep

# torch is imported lazily (functions below) so that `--help` and the pure helpers work without it.
if TYPE_CHECKING:
    import torch
    from torch import Tensor

KvViews = list[tuple["Tensor", "Tensor"]]
"""Per-layer (K, V) cache views of one point, each [batch, kv_heads, ctx, head_dim] (KvPool.views)."""
GraphPool = tuple[int, int]
"""A CUDA-graph memory pool handle (torch.cuda.graph_pool_handle())."""

MODELS_YAML = Path(__file__).resolve().parents[1] / "models.yaml"

# vLLM's defaults, so the torch profile's KV capacity is comparable with an engine's:
# --gpu-memory-utilization 0.9 (vllm EngineArgs.gpu_memory_utilization default) and a profile
# forward of max_num_batched_tokens = 8192 tokens (V1 online-serving default, see planner/perf/laws.py).
DEFAULT_MEM_FRACTION = 0.9
PROFILE_RUN_TOKENS = 8192
# RoPE base frequency of Llama-3 (config.json rope_theta: 500000.0); the value changes no timing.
ROPE_THETA = 500_000.0
# RMSNorm epsilon of Llama-3 (config.json rms_norm_eps: 1e-05).
RMS_EPS = 1e-5
# Standard deviation of the random weights: 0.02 is the initializer_range of Llama/Qwen configs;
# it keeps activations finite through many layers (values do not change timings of dense kernels).
INIT_STD = 0.02


# =========================================================================== shapes
@dataclass(frozen=True)
class Shapes:
    """The architecture numbers the decoder needs (a subset of planner.io.schema.ModelSpec)."""

    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    dtype_bytes: int = 2
    kv_dtype_bytes: int = 2

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V of every layer for one token (same formula as ModelSpec.kv_bytes_per_token)."""
        return 2 * self.layers * self.kv_heads * self.head_dim * self.kv_dtype_bytes

    @property
    def params(self) -> int:
        """Parameters of this decoder: embedding + LM head + per layer QKV, O, gate/up, down, 2 norms."""
        qkv = self.hidden * (self.heads + 2 * self.kv_heads) * self.head_dim
        o = self.heads * self.head_dim * self.hidden
        mlp = 3 * self.hidden * self.intermediate
        return 2 * self.vocab * self.hidden + self.layers * (qkv + o + mlp + 2 * self.hidden) + self.hidden

    @property
    def weight_bytes(self) -> int:
        return self.params * self.dtype_bytes


# A tiny decoder for CPU smoke tests: every code path (GQA 4:2, RoPE, SwiGLU, cache) at toy size.
TINY = Shapes(name="tiny", layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16, intermediate=128, vocab=256)


def load_shapes(model: str, models_yaml: str | os.PathLike[str] = MODELS_YAML) -> Shapes:
    """Read `model`'s shapes from the models catalog with plain YAML (no pydantic on GPU machines)."""
    path = Path(models_yaml)
    if not path.is_file():
        raise SystemExit(f"{path}: models catalog not found")
    data = yaml.safe_load(path.read_text()) or {}
    if model not in data:
        raise SystemExit(f"{path}: unknown model '{model}'; known: {', '.join(sorted(data))}")
    e = data[model]
    if e.get("moe"):
        raise SystemExit(f"{path}: field '{model}.moe': the torch reference decoder has dense FFNs only; "
                         "MoE models are not supported")
    if e.get("gated_ffn") is False:
        raise SystemExit(f"{path}: field '{model}.gated_ffn': the torch reference decoder has gated (SwiGLU) FFNs "
                         "only; a plain MLP is not supported (profile it with --backend vllm --dummy-weights)")
    try:
        return Shapes(
            name=model,
            layers=int(e["layers"]),
            hidden=int(e["hidden"]),
            heads=int(e["heads"]),
            kv_heads=int(e["kv_heads"]),
            head_dim=int(e["head_dim"]),
            intermediate=int(e["intermediate"]),
            vocab=int(e["vocab"]),
            dtype_bytes=int(e.get("dtype_bytes", 2)),
            kv_dtype_bytes=int(e.get("kv_dtype_bytes", 2)),
        )
    except KeyError as exc:
        raise SystemExit(f"{path}: field '{model}.{exc.args[0]}': missing; the decoder needs layers, hidden, heads, "
                         "kv_heads, head_dim, intermediate, vocab") from None


# =========================================================================== the decoder
class RefDecoder:
    """Random-weight decoder of `shapes` on `device`; forward passes for prefill and one decode step.

    Weights are stored as [out, in] for torch.nn.functional.linear (cuBLAS/cuBLASLt GEMMs), QKV and
    gate/up fused as vLLM does (QKVParallelLinear, MergedColumnParallelLinear).
    """

    def __init__(self, shapes: Shapes, device: str = "cuda", dtype: torch.dtype | None = None, seed: int = 0,
                 rope: bool = True, max_pos: int = 32768):
        import torch

        self.torch = torch
        self.s = shapes
        self.device = torch.device(device)
        self.dtype = dtype or torch.bfloat16
        self.rope = rope
        g = torch.Generator(device=self.device)
        g.manual_seed(seed)
        self._gen = g
        s = shapes
        qkv_out = (s.heads + 2 * s.kv_heads) * s.head_dim

        def w(*shape: int) -> Tensor:
            t = torch.empty(*shape, device=self.device, dtype=self.dtype)
            t.normal_(0.0, INIT_STD, generator=g)
            return t

        self.embed = w(s.vocab, s.hidden)
        self.lm_head = w(s.vocab, s.hidden)
        self.final_norm = torch.ones(s.hidden, device=self.device, dtype=self.dtype)
        self.layers: list[dict[str, Tensor]] = []
        for _ in range(s.layers):
            self.layers.append(
                {
                    "ln1": torch.ones(s.hidden, device=self.device, dtype=self.dtype),
                    "wqkv": w(qkv_out, s.hidden),
                    "wo": w(s.hidden, s.heads * s.head_dim),
                    "ln2": torch.ones(s.hidden, device=self.device, dtype=self.dtype),
                    "wgu": w(2 * s.intermediate, s.hidden),
                    "wdown": w(s.hidden, s.intermediate),
                }
            )
        # RoPE tables in float32 (as HF/vLLM compute them), cast to the model dtype when applied.
        inv = 1.0 / (ROPE_THETA ** (torch.arange(0, s.head_dim, 2, device=self.device, dtype=torch.float32)
                                    / s.head_dim))
        pos = torch.arange(max_pos, device=self.device, dtype=torch.float32)
        freqs = torch.outer(pos, inv)
        self.cos = torch.cat([freqs.cos(), freqs.cos()], dim=-1).to(self.dtype)  # [max_pos, head_dim]
        self.sin = torch.cat([freqs.sin(), freqs.sin()], dim=-1).to(self.dtype)
        self.max_pos = max_pos

    # ------------------------------------------------------------------ pieces
    def _rms(self, x: Tensor, weight: Tensor) -> Tensor:
        return self.torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, RMS_EPS)

    @staticmethod
    def _rotate_half(x: Tensor) -> Tensor:
        h = x.shape[-1] // 2
        return __import__("torch").cat([-x[..., h:], x[..., :h]], dim=-1)

    def _apply_rope(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        # x [B, n, S, d]; cos/sin [S, d]
        return x * cos + self._rotate_half(x) * sin

    attention_backend: str | None = None
    """How attention ran, decided on first use: 'flash+gqa' on GPU (FlashAttention-2 kernel of torch
    SDPA reading the grouped KV heads directly, no copy), else a named fallback."""

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, causal: bool) -> Tensor:
        F = self.torch.nn.functional
        if self.device.type != "cuda":
            self.attention_backend = "sdpa-cpu+gqa"
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
        from torch.nn.attention import SDPBackend, sdpa_kernel

        # Flash only: a silent fallback to the math kernel would materialize S x S scores (OOM at
        # 16k tokens) and time the wrong thing. If flash refuses GQA, expand the KV heads (a copy,
        # said so in meta.yaml) and let flash/cuDNN/efficient run it.
        if self.attention_backend in (None, "flash+gqa"):
            try:
                with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
                    out = F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
                self.attention_backend = "flash+gqa"
                return out
            except (RuntimeError, TypeError) as exc:
                if self.attention_backend == "flash+gqa":
                    raise
                log(f"flash SDPA with enable_gqa refused ({str(exc).splitlines()[0][:200]}); expanding KV heads")
        self.attention_backend = "sdpa-fused+repeat_kv"
        rep = q.shape[1] // k.shape[1]
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
            return F.scaled_dot_product_attention(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1),
                                                  is_causal=causal)

    def _layer(self, x: Tensor, lw: dict[str, Tensor], pos_cos: Tensor, pos_sin: Tensor, k_cache: Tensor,
               v_cache: Tensor, start: int, causal: bool) -> Tensor:
        """One decoder layer on x [B, S, H]; writes this chunk's K/V at [start, start+S) of the cache
        views [B, kv_heads, ctx, d] and attends to cache positions [0, start+S)."""
        F = self.torch.nn.functional
        s = self.s
        B, S, _ = x.shape
        h = self._rms(x, lw["ln1"])
        qkv = F.linear(h, lw["wqkv"])
        q, k, v = qkv.split([s.heads * s.head_dim, s.kv_heads * s.head_dim, s.kv_heads * s.head_dim], dim=-1)
        q = q.view(B, S, s.heads, s.head_dim).transpose(1, 2)
        k = k.view(B, S, s.kv_heads, s.head_dim).transpose(1, 2)
        v = v.view(B, S, s.kv_heads, s.head_dim).transpose(1, 2)
        if self.rope:
            q = self._apply_rope(q, pos_cos, pos_sin)
            k = self._apply_rope(k, pos_cos, pos_sin)
        k_cache[:, :, start : start + S].copy_(k)
        v_cache[:, :, start : start + S].copy_(v)
        if start == 0:
            # Prefill from scratch: attend to this chunk's own K/V (contiguous, causal).
            o = self._attend(q, k_cache[:, :, :S], v_cache[:, :, :S], causal=causal)
        else:
            # Decode (S == 1): the new token sees every cached position, so no mask is needed.
            o = self._attend(q, k_cache[:, :, : start + S], v_cache[:, :, : start + S], causal=False)
        o = o.transpose(1, 2).reshape(B, S, s.heads * s.head_dim)
        x = x + F.linear(o, lw["wo"])
        h = self._rms(x, lw["ln2"])
        gu = F.linear(h, lw["wgu"])
        g, u = gu.chunk(2, dim=-1)
        return x + F.linear(F.silu(g) * u, lw["wdown"])

    # ------------------------------------------------------------------ passes
    def prefill(self, tokens: Tensor, caches: KvViews) -> Tensor:
        """tokens [B, S] -> logits of the last position [B, vocab]; fills caches[l] = (K, V) views
        of shape [B, kv_heads, >=S, head_dim] at positions [0, S)."""
        S = tokens.shape[1]
        x = self.embed[tokens]
        cos, sin = self.cos[:S], self.sin[:S]
        for lw, (kc, vc) in zip(self.layers, caches, strict=False):
            x = self._layer(x, lw, cos, sin, kc, vc, 0, causal=True)
        x = self._rms(x[:, -1], self.final_norm)
        return self.torch.nn.functional.linear(x, self.lm_head)

    def decode_step(self, tokens: Tensor, caches: KvViews, position: int) -> Tensor:
        """tokens [B] at `position` -> logits [B, vocab]; writes K/V at `position`, attends [0, position]."""
        x = self.embed[tokens].unsqueeze(1)
        cos, sin = self.cos[position : position + 1], self.sin[position : position + 1]
        for lw, (kc, vc) in zip(self.layers, caches, strict=False):
            x = self._layer(x, lw, cos, sin, kc, vc, position, causal=False)
        x = self._rms(x[:, -1], self.final_norm)
        return self.torch.nn.functional.linear(x, self.lm_head)


class KvPool:
    """A static KV cache: one flat K and one flat V buffer per layer, holding `tokens` tokens.

    ``views(batch, ctx)`` returns per-layer (K, V) tensors of shape [batch, kv_heads, ctx, head_dim]
    over the first batch*ctx tokens of the pool: no allocation per point, contiguous for SDPA.
    """

    def __init__(self, shapes: Shapes, tokens: int, device: str | torch.device, dtype: torch.dtype,
                 fill_random: bool = True, seed: int = 1):
        import torch

        self.s = shapes
        self.tokens = int(tokens)
        n = self.tokens * shapes.kv_heads * shapes.head_dim
        self.k = [torch.empty(n, device=device, dtype=dtype) for _ in range(shapes.layers)]
        self.v = [torch.empty(n, device=device, dtype=dtype) for _ in range(shapes.layers)]
        if fill_random:
            # Never time on zeros (METHOD.md): fill with random data so kernels see real values.
            g = torch.Generator(device=device)
            g.manual_seed(seed)
            for t in self.k + self.v:
                t.normal_(0.0, 1.0, generator=g)

    def views(self, batch: int, ctx: int) -> KvViews:
        if batch * ctx > self.tokens:
            raise ValueError(f"KV pool holds {self.tokens} tokens, {batch}x{ctx} = {batch * ctx} requested")
        s = self.s
        n = batch * ctx * s.kv_heads * s.head_dim
        shape = (batch, s.kv_heads, ctx, s.head_dim)
        return [(k[:n].view(shape), v[:n].view(shape)) for k, v in zip(self.k, self.v, strict=True)]


# =========================================================================== timing
class Timer:
    """Times a callable on the device: CUDA events around it on GPU, perf_counter on CPU."""

    def __init__(self, device: str | torch.device):
        import torch

        self.torch = torch
        self.cuda = torch.device(device).type == "cuda"

    def time_ms(self, fn: Callable[[], object], inner: int = 1) -> float:
        """Milliseconds of one call of fn, timing `inner` back-to-back calls and dividing."""
        torch = self.torch
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(inner):
                fn()
            end.record()
            end.synchronize()
            elapsed_ms: float = start.elapsed_time(end)  # torch.cuda.Event.elapsed_time: milliseconds
            return elapsed_ms / inner
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        return (time.perf_counter() - t0) * 1e3 / inner

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()


def median_ms(timer: Timer, fn: Callable[[], object], warmup: int, repeats: int,
              inner: int = 1) -> tuple[float, list[float]]:
    for _ in range(warmup):
        fn()
    timer.sync()
    samples = [timer.time_ms(fn, inner) for _ in range(repeats)]
    return statistics.median(samples), samples


def timed_rounds(timer: Timer, fn: Callable[[], object], warmup: int, repeats: int,
                 inner: int = 1) -> Callable[[], list[float]]:
    """A round of `repeats` timings of `fn` per call (sweep.measured_with_floor may ask for more rounds), with the
    `warmup` calls before the first round only."""
    left = [warmup]

    def one_round() -> list[float]:
        w, left[0] = left[0], 0
        return median_ms(timer, fn, warmup=w, repeats=repeats, inner=inner)[1]

    return one_round


def _sweep_summary(res: sweep.SweepOutcome) -> dict[str, int | dict[str, str]]:
    """Counts of one sweep's outcome for the run record (run.yaml)."""
    return {"measured": len(res.measured), "resumed": len(res.resumed), "skipped": len(res.dominated),
            "stops": {str(k): v for k, v in res.stop_reasons.items()}}


def prefill_repeats(tokens: int) -> int:
    """Repeats per prefill point: more for short passes (noisier), fewer for long ones (costly)."""
    return 7 if tokens <= 4096 else 5 if tokens <= 32768 else 3


# =========================================================================== profile directory I/O
class PlainProfileDir(pfmt.ProfileStore):
    """The profile directory of a torch run: meta.yaml holds the ProfileMeta fields of the run record."""

    def write_meta(self, record: dict[str, Any]) -> None:
        super().write_record(record, profile_meta(record))


KV_CAPACITY_NOTE = (
    "vLLM's rule (gpu_worker.determine_available_memory): gpu_memory_utilization x total device memory "
    "- peak torch memory of a {tokens}-token profile forward (weights included) - non-torch memory, "
    "over KV bytes per token"
)


def profile_meta(rec: dict[str, Any]) -> dict[str, Any]:
    """The ProfileMeta fields (planner/perf/profiledata.py) of a run record; the rest stays in run.yaml.
    Both are YAML blobs (the record as run_profile builds it, with its nested engine_flags)."""
    f = rec["engine_flags"]
    flags = [
        f"--dtype={f['dtype']}",
        f"--attention={f['attention']}",
        f"--decode={f['decode']}",
        "--rope" if f.get("rope", True) else "--no-rope",
        f"--gpu-memory-utilization={f['gpu_memory_utilization']}",
        f"--profile-run-tokens={f['profile_run_tokens']}",
    ]
    notes = (
        "torch reference decoder (random bf16 weights, real shapes from profiles/models.yaml, SDPA attention, "
        "static KV cache, CUDA-graph decode steps); no scheduler, sampling, paging or HTTP overheads, but not "
        "a lower bound on an engine's latency (vLLM's kernels are faster). "
        "Rows are medians of repeated timings (CUDA events). "
        f"torch {rec.get('torch_version')}, CUDA {rec.get('cuda_version')}."
    )
    if rec.get("partial"):
        notes += f" PARTIAL: {rec['partial']}."
    meta = {
        "model": rec["model"],
        "gpu": rec["gpu"],
        "tp": rec["tp"],
        "engine": rec["engine"],
        "engine_version": f"torch {rec.get('torch_version')}",
        "engine_flags": flags,
        "kv_capacity_tokens": int(rec["kv_capacity_tokens"]),
        "kv_capacity_note": KV_CAPACITY_NOTE.format(tokens=f["profile_run_tokens"]),
        "max_num_seqs": int(rec.get("max_num_seqs", 256)),
        "max_batched_tokens": PROFILE_RUN_TOKENS,
        "date": rec["date"],
        "backend": "torch",
        "device_name": rec["device_name"],
        "notes": notes,
    }
    return meta


# =========================================================================== checks
def rel_err(a: Tensor, b: Tensor) -> float:
    """||a - b|| / ||b|| in float64."""
    a64, b64 = a.double(), b.double()
    return float((a64 - b64).norm() / b64.norm().clamp_min(1e-30))


def reference_logits_fp64(dec: RefDecoder, tokens: Tensor) -> Tensor:
    """An independent float64 forward of the same weights, written plainly (explicit softmax with a
    causal mask, KV heads repeated, no SDPA, no cache) on the CPU: the check's ground truth."""
    import torch

    s = dec.s
    dev = torch.device("cpu")
    tok = tokens.to(dev)
    B, S = tok.shape

    def d(t: Tensor) -> Tensor:
        return t.detach().to(dev, torch.float64)

    def rms(x: Tensor, w: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + RMS_EPS) * w

    cos, sin = d(dec.cos[:S]), d(dec.sin[:S])

    def rope(x: Tensor) -> Tensor:
        if not dec.rope:
            return x
        h = x.shape[-1] // 2
        return x * cos + torch.cat([-x[..., h:], x[..., :h]], -1) * sin

    x = d(dec.embed)[tok]
    mask = torch.full((S, S), float("-inf"), dtype=torch.float64).triu(1)
    for lw in dec.layers:
        h = rms(x, d(lw["ln1"]))
        qkv = h @ d(lw["wqkv"]).T
        q, k, v = qkv.split([s.heads * s.head_dim, s.kv_heads * s.head_dim, s.kv_heads * s.head_dim], -1)
        q = rope(q.view(B, S, s.heads, s.head_dim).transpose(1, 2))
        k = rope(k.view(B, S, s.kv_heads, s.head_dim).transpose(1, 2)).repeat_interleave(s.heads // s.kv_heads, 1)
        v = v.view(B, S, s.kv_heads, s.head_dim).transpose(1, 2).repeat_interleave(s.heads // s.kv_heads, 1)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(s.head_dim) + mask, -1)
        o = (att @ v).transpose(1, 2).reshape(B, S, -1)
        x = x + o @ d(lw["wo"]).T
        h = rms(x, d(lw["ln2"]))
        g, u = (h @ d(lw["wgu"]).T).chunk(2, -1)
        x = x + (torch.nn.functional.silu(g) * u) @ d(lw["wdown"]).T
    return rms(x[:, -1], d(dec.final_norm)) @ d(dec.lm_head).T


def correctness_check(shapes: Shapes, device: str, layers: int = 2, batch: int = 2, seq: int = 64,
                      seed: int = 7) -> dict[str, float | bool | str]:
    """Build a `layers`-layer decoder with `shapes`' widths and check, on fresh random tokens:
    (1) prefill logits vs the float64 reference; (2) prefill of seq-1 tokens then one decode step
    (CUDA-graph captured on GPU) vs prefill of all seq tokens. Returns the relative errors and
    raises AssertionError past bf16 tolerances (3e-2 for whole-model logits)."""
    import torch

    small = Shapes(**{**asdict(shapes), "layers": layers, "name": f"{shapes.name}-check"})
    dtype = torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    dec = RefDecoder(small, device=device, dtype=dtype, seed=seed, max_pos=max(seq, 16))
    g = torch.Generator(device="cpu").manual_seed(seed + 1)
    tokens = torch.randint(0, small.vocab, (batch, seq), generator=g).to(device)
    pool = KvPool(small, batch * seq, device, dtype, fill_random=True)

    full = dec.prefill(tokens, pool.views(batch, seq))
    ref = reference_logits_fp64(dec, tokens)
    e_ref = rel_err(full.float().cpu(), ref)

    caches = pool.views(batch, seq)  # positions [0, seq-1) filled by prefill, seq-1 by the decode step
    # Poison the cache first so a missing write shows as a wrong answer, not as stale correct data.
    for kc, vc in caches:
        kc.fill_(float("nan"))
        vc.fill_(float("nan"))
    dec.prefill(tokens[:, : seq - 1], caches)
    static_tok = tokens[:, seq - 1].clone()
    step = _make_decode_runner(dec, static_tok, caches, seq - 1, use_graph=torch.device(device).type == "cuda")
    step.replay()
    assert step.logits is not None  # set by the step the runner ran (captured or eager)
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    e_step = rel_err(step.logits.float().cpu(), full.float().cpu())
    # bf16 tolerance for whole-model logits: ~12 bf16 roundings (2^-8 each) along a layer's path
    # add up to ~1-2e-2; a wrong cache/position/graph input gives O(1) errors.
    ok_ref = e_ref < (3e-2 if dtype == torch.bfloat16 else 1e-4)
    ok_step = e_step < (3e-2 if dtype == torch.bfloat16 else 1e-4)
    finite = bool(torch.isfinite(full).all() and torch.isfinite(step.logits).all())
    res: dict[str, float | bool | str] = {"rel_err_prefill_vs_fp64": e_ref, "rel_err_decode_vs_prefill": e_step,
                                          "finite": finite, "dtype": str(dtype), "device": device}
    if not (ok_ref and ok_step and finite):
        raise AssertionError(f"correctness check failed: {res}")
    return res


# =========================================================================== decode runner (CUDA graph)
class _DecodeRunner:
    """One decode step over static tensors; `replay()` runs it (a CUDA graph on GPU, eager on CPU).
    The argmax of the step's logits is fed back as the next input token, like a real decode loop."""

    def __init__(self, dec: RefDecoder, tokens: Tensor, caches: KvViews, position: int, use_graph: bool,
                 pool: GraphPool | None = None):
        import torch

        self.torch = torch
        self.dec, self.tokens, self.caches, self.position = dec, tokens, caches, position
        self.graph: torch.cuda.CUDAGraph | None = None
        self.logits: Tensor | None = None
        if use_graph:
            # Warm-up and capture run the step, which feeds its argmax back into `tokens`:
            # restore the caller's input afterwards so the first replay sees it.
            saved = tokens.clone()
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):  # warm-up on a side stream, as torch.cuda.graphs requires
                for _ in range(2):
                    self._eager()
            torch.cuda.current_stream().wait_stream(s)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, pool=pool):
                self._eager()
            tokens.copy_(saved)

    def _eager(self) -> None:
        self.logits = self.dec.decode_step(self.tokens, self.caches, self.position)
        self.tokens.copy_(self.logits.argmax(-1))

    def replay(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        else:
            self._eager()


def _make_decode_runner(dec: RefDecoder, tokens: Tensor, caches: KvViews, position: int, use_graph: bool,
                        pool: GraphPool | None = None) -> _DecodeRunner:
    return _DecodeRunner(dec, tokens, caches, position, use_graph, pool)


# =========================================================================== the profile run
@dataclass
class RunConfig:
    model: str
    gpu: str
    tp: int
    out: Path
    device: str = "cuda"
    mem_fraction: float = DEFAULT_MEM_FRACTION
    prefill_isl: tuple[int, ...] = pfmt.PREFILL_ISL
    prefill_batch: tuple[int, ...] = pfmt.PREFILL_BATCH
    decode_batch: tuple[int, ...] = pfmt.DECODE_BATCH
    decode_context: tuple[int, ...] = pfmt.DECODE_CONTEXT
    max_prefill_tokens: int | None = None
    ttft_cap_ms: float = sweep.DEFAULT_TTFT_CAP_MS
    itl_cap_ms: float = sweep.DEFAULT_ITL_CAP_MS
    decode_replays: int = 10
    decode_repeats: int = 5
    budget_s: float | None = None
    check: bool = False
    rope: bool = True
    models_yaml: Path = MODELS_YAML
    kv_capacity_override: int | None = None
    probe: dict[str, float] | None = None
    """Measured ceilings (bandwidth_probe) to record in run.yaml."""
    """Tiny/CPU runs: KV pool size in tokens instead of the memory-fraction rule (no device memory info)."""


class BudgetExceeded(Exception):
    pass


T = TypeVar("T")


def stop_on_out_of_memory(measure: Callable[[], T], oom: type[BaseException], what: str) -> T:
    """`measure()`, or a sweep.StopAxis where the device ran out of memory (larger points of that axis are skipped).

    The StopAxis is raised outside the except clause on purpose: raised inside it (even `from None`), it keeps the
    out-of-memory error as its __context__, whose traceback holds the failed pass's frames and so its activations and
    caches on the device, and the sweep keeps the StopAxis. On the H100 (stop 43) qwen3-14b's decode sweep could not
    allocate its KV pool (vLLM's memory rule) with 77.4 GiB allocated where the weights and the pool need 68.8, after
    its largest prefill point had most likely run out of memory: the run lost every decode point
    (profiles/runs/2026-12-06-d2)."""
    try:
        return measure()
    except oom as exc:
        reason = f"out of device memory at {what}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    log(f"{reason}; larger points of this axis are skipped")
    raise sweep.StopAxis(reason)


def log(msg: str) -> None:
    print(f"[torch_ref {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def kv_capacity_tokens(shapes: Shapes, mem_fraction: float, peak_bytes: int, non_torch_bytes: int,
                       total_bytes: int) -> int:
    """vLLM's rule (vllm/v1/worker/gpu_worker.determine_available_memory): the KV cache gets
    mem_fraction x total - (peak torch memory of a profile run, weights included) - non-torch memory."""
    avail = mem_fraction * total_bytes - peak_bytes - non_torch_bytes
    return max(0, int(avail // shapes.kv_bytes_per_token))


def run_profile(cfg: RunConfig, shapes: Shapes | None = None) -> dict[str, object]:
    """Build the decoder, optionally check it, measure both grids into cfg.out; returns a summary (a JSON blob)."""
    import torch

    t_start = time.monotonic()

    def check_budget() -> None:
        if cfg.budget_s is not None and time.monotonic() - t_start > cfg.budget_s:
            raise BudgetExceeded(f"time budget of {cfg.budget_s:.0f} s spent")

    if cfg.tp != 1:
        raise SystemExit(f"--tp {cfg.tp}: the torch reference decoder runs on one GPU (tp 1) only")
    shapes = shapes or load_shapes(cfg.model, cfg.models_yaml)
    dev = torch.device(cfg.device)
    is_cuda = dev.type == "cuda"
    if is_cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible to torch")
    dtype = torch.bfloat16 if is_cuda else torch.float32
    device_name = torch.cuda.get_device_name(dev) if is_cuda else f"cpu ({platform.processor() or platform.machine()})"
    log(f"device {device_name}; torch {torch.__version__}; model {shapes.name}: {shapes.params / 1e9:.2f} B params, "
        f"{shapes.weight_bytes / 2**30:.1f} GiB weights, {shapes.kv_bytes_per_token} KV B/token")
    summary: dict[str, object] = {"device_name": device_name, "model": cfg.model, "gpu": cfg.gpu}
    if is_cuda:
        torch.backends.cuda.matmul.allow_tf32 = False

    if cfg.check:
        t0 = time.monotonic()
        summary["check"] = correctness_check(shapes, cfg.device)
        log(f"correctness check passed in {time.monotonic() - t0:.1f} s: {summary['check']}")

    t0 = time.monotonic()
    dec = RefDecoder(shapes, device=cfg.device, dtype=dtype, rope=cfg.rope,
                     max_pos=max(max(cfg.prefill_isl), max(cfg.decode_context)) + 1)
    timer = Timer(cfg.device)
    timer.sync()
    log(f"weights built in {time.monotonic() - t0:.1f} s")
    store = PlainProfileDir(cfg.out)

    # ---- KV capacity by vLLM's rule: profile forward of PROFILE_RUN_TOKENS tokens
    if is_cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
        prof_tokens = PROFILE_RUN_TOKENS
        tmp_pool = KvPool(shapes, prof_tokens, dev, dtype, fill_random=False)
        tok = torch.randint(0, shapes.vocab, (1, prof_tokens), device=dev)
        dec.prefill(tok, tmp_pool.views(1, prof_tokens))
        torch.cuda.synchronize()
        # The profile run's own KV buffers are not part of vLLM's profile peak (vLLM runs it without
        # a KV cache), so subtract them.
        peak = (torch.cuda.max_memory_allocated(dev)
                - 2 * shapes.layers * prof_tokens * shapes.kv_heads * shapes.head_dim * 2)
        del tmp_pool, tok
        torch.cuda.empty_cache()
        free_b, total_b = torch.cuda.mem_get_info(dev)
        non_torch = max(0, total_b - free_b - torch.cuda.memory_reserved(dev))
        kv_cap = kv_capacity_tokens(shapes, cfg.mem_fraction, peak, non_torch, total_b)
        summary.update(total_memory_bytes=total_b, profile_peak_bytes=peak, non_torch_bytes=non_torch)
    else:
        kv_cap = cfg.kv_capacity_override or 65536
    if cfg.kv_capacity_override is not None:
        kv_cap = cfg.kv_capacity_override
    summary["kv_capacity_tokens"] = kv_cap
    log(f"KV capacity at memory fraction {cfg.mem_fraction}: {kv_cap} tokens "
        f"({kv_cap * shapes.kv_bytes_per_token / 2**30:.1f} GiB)")

    meta: dict[str, Any] = {  # the run record (a YAML blob: run.yaml, and meta.yaml through profile_meta)
        "model": cfg.model,
        "gpu": cfg.gpu,
        "tp": cfg.tp,
        "backend": "torch",
        "engine": "torch-ref-decoder",
        "engine_version": str(torch.__version__),
        "engine_flags": {
            "dtype": str(dtype).replace("torch.", ""),
            "attention": f"torch SDPA {dec.attention_backend}",
            "decode": "cuda-graph" if is_cuda else "eager",
            "rope": cfg.rope,
            "gpu_memory_utilization": cfg.mem_fraction,
            "profile_run_tokens": PROFILE_RUN_TOKENS,
        },
        "kv_capacity_tokens": int(kv_cap),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "device_name": device_name,
        "torch_version": str(torch.__version__),
        "cuda_version": torch.version.cuda,
        "weight_bytes": shapes.weight_bytes,
        "kv_bytes_per_token": shapes.kv_bytes_per_token,
        "notes": "reference decoder (random bf16 weights, real shapes); no scheduler, sampling, paging or HTTP "
                 "overheads; not a lower bound on an engine's latency (vLLM's kernels are faster)",
    }
    meta["max_num_seqs"] = max(cfg.decode_batch)
    if "check" in summary:
        meta["correctness_check"] = summary["check"]

    # ---- prefill sweep (before the big KV pool: the largest passes need activation memory)
    pre_pts = sweep.prefill_grid(cfg.prefill_isl, cfg.prefill_batch, max_tokens=cfg.max_prefill_tokens)
    max_pre_tokens = max((p.tokens for p in pre_pts), default=0)
    pre_pool = KvPool(shapes, max_pre_tokens, dev, dtype, fill_random=False) if pre_pts else None
    gen = torch.Generator(device="cpu").manual_seed(123)
    prefill_samples: list[float] = []  # the samples of the point just measured, for record_prefill

    def measure_prefill(p: sweep.PrefillPoint) -> float:
        nonlocal prefill_samples
        check_budget()
        # Fresh random prompts per point, rotated between repeats (no caching effects on repeated input).
        toks = [torch.randint(0, shapes.vocab, (p.batch, p.isl), generator=gen).to(dev) for _ in range(2)]
        assert pre_pool is not None  # there are prefill points to measure
        caches = pre_pool.views(p.batch, p.isl)
        i = [0]

        def fn() -> Tensor:
            i[0] += 1
            return dec.prefill(toks[i[0] % 2], caches).argmax(-1)

        rounds = timed_rounds(timer, fn, warmup=1, repeats=prefill_repeats(p.tokens))
        samples, central = stop_on_out_of_memory(lambda: sweep.measured_with_floor(p.key, store.prefill_done(), rounds),
                                                 torch.OutOfMemoryError, f"prefill isl={p.isl} batch={p.batch}")
        prefill_samples = samples
        return central

    def record_prefill(p: sweep.PrefillPoint, ms: float) -> None:
        store.add_prefill(p.isl, p.batch, prefill_samples, central=ms)
        log(f"prefill isl={p.isl:6d} batch={p.batch:2d}: {ms:9.2f} ms")

    budget_hit: str | None = None
    try:
        res_p = sweep.run_sweep(pre_pts, measure_prefill, record_prefill, done=store.prefill_done(),
                                latency_cap_ms=cfg.ttft_cap_ms)
        summary["prefill"] = _sweep_summary(res_p)
    except BudgetExceeded as exc:
        budget_hit = str(exc)
    pre_pool = None  # frees the pool (not `del`: measure_prefill closes over the name)
    gc.collect()  # exception tracebacks of stopped points form reference cycles that hold device tensors
    if is_cuda:
        torch.cuda.empty_cache()

    # ---- decode sweep over a static KV pool of kv_cap tokens
    dec_pts = sweep.decode_grid(cfg.decode_batch, cfg.decode_context, kv_capacity_tokens=kv_cap, decode_tokens=0)
    if dec_pts and budget_hit is None:
        pool_tokens = min(kv_cap, max(p.kv_tokens for p in dec_pts))
        t0 = time.monotonic()
        pool = KvPool(shapes, pool_tokens, dev, dtype, fill_random=True)
        timer.sync()
        log(f"KV pool of {pool_tokens} tokens allocated and filled in {time.monotonic() - t0:.1f} s")
        # Each graph gets its own private memory pool, freed with the graph (a pool handle shared
        # across graphs that are freed in between trips a caching-allocator assert in torch 2.11).
        gpool: GraphPool | None = None
        decode_samples: list[float] = []  # the samples of the point just measured, for record_decode

        def measure_decode(p: sweep.DecodePoint) -> float:
            nonlocal decode_samples
            check_budget()
            caches = pool.views(p.batch, p.context)
            tok = torch.randint(0, shapes.vocab, (p.batch,), generator=gen).to(dev)

            def replayed() -> tuple[list[float], float]:
                runner = _make_decode_runner(dec, tok, caches, p.context - 1, use_graph=is_cuda, pool=gpool)
                rounds = timed_rounds(timer, runner.replay, warmup=3, repeats=cfg.decode_repeats,
                                      inner=cfg.decode_replays)
                return sweep.measured_with_floor(p.key, store.decode_done(), rounds)

            samples, med = stop_on_out_of_memory(replayed, torch.OutOfMemoryError,
                                                 f"decode batch={p.batch} context={p.context}")
            decode_samples = samples
            return med

        def record_decode(p: sweep.DecodePoint, ms: float) -> None:
            store.add_decode(p.batch, p.context, decode_samples, central=ms)
            log(f"decode batch={p.batch:4d} context={p.context:5d}: {ms:8.3f} ms/step")

        try:
            res_d = sweep.run_sweep(dec_pts, measure_decode, record_decode, done=store.decode_done(),
                                    latency_cap_ms=cfg.itl_cap_ms)
            summary["decode"] = _sweep_summary(res_d)
        except BudgetExceeded as exc:
            budget_hit = str(exc)
        del pool
    if budget_hit:
        summary["budget"] = budget_hit
        meta["partial"] = budget_hit
        log(f"stopped early: {budget_hit}; the points measured so far are in {cfg.out}")
    summary["seconds"] = round(time.monotonic() - t_start, 1)
    meta["sweep_seconds"] = summary["seconds"]
    meta["engine_flags"]["attention"] = f"torch SDPA {dec.attention_backend}"
    meta["sweep"] = {k: summary[k] for k in ("prefill", "decode") if k in summary}
    if cfg.probe:
        meta["measured_ceilings"] = cfg.probe
    store.write_meta(meta)
    return summary


def bandwidth_probe(device: str = "cuda", gib: float = 4.0) -> dict[str, float]:
    """Measured ceilings (METHOD.md): device-to-device copy GB/s (read+write) and bf16 GEMM TFLOP/s."""
    import torch

    timer = Timer(device)
    n = int(gib * 2**30 // 2)
    a = torch.empty(n, device=device, dtype=torch.bfloat16).normal_()
    b = torch.empty_like(a)
    ms, _ = median_ms(timer, functools.partial(b.copy_, a), warmup=3, repeats=10)  # no closure: `del a, b` frees them
    copy_gb_s = 2 * n * 2 / (ms * 1e-3) / 1e9
    del a, b
    m = 8192
    x = torch.randn(m, m, device=device, dtype=torch.bfloat16)
    y = torch.randn(m, m, device=device, dtype=torch.bfloat16)
    ms2, _ = median_ms(timer, lambda: x @ y, warmup=3, repeats=10)
    tflops = 2 * m**3 / (ms2 * 1e-3) / 1e12
    return {"copy_gb_s": round(copy_gb_s, 1), "gemm_bf16_tflops": round(tflops, 1)}


# =========================================================================== CLI
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m profiles.backends.torch_ref", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="model name in profiles/models.yaml (or 'tiny' for a toy decoder)")
    ap.add_argument("--gpu", required=True, help="GPU type name in profiles/gpus.yaml, e.g. H100-SXM-80GB")
    ap.add_argument("--tp", type=int, default=1)
    ap.add_argument("--out", required=True, help="profile directory to write (resumable)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--models-yaml", default=str(MODELS_YAML))
    ap.add_argument("--mem-fraction", type=float, default=DEFAULT_MEM_FRACTION)
    ap.add_argument("--prefill-isl", default=None, help="comma list; default " + ",".join(map(str, pfmt.PREFILL_ISL)))
    ap.add_argument("--prefill-batch", default=None)
    ap.add_argument("--decode-batch", default=None)
    ap.add_argument("--decode-context", default=None)
    ap.add_argument("--max-prefill-tokens", type=int, default=None)
    ap.add_argument("--ttft-cap-ms", type=float, default=sweep.DEFAULT_TTFT_CAP_MS)
    ap.add_argument("--itl-cap-ms", type=float, default=sweep.DEFAULT_ITL_CAP_MS)
    ap.add_argument("--decode-replays", type=int, default=10)
    ap.add_argument("--decode-repeats", type=int, default=5)
    ap.add_argument("--budget-s", type=float, default=None,
                    help="stop measuring after this many seconds (points so far are kept)")
    ap.add_argument("--kv-capacity", type=int, default=None, help="KV pool tokens (overrides the memory-fraction rule)")
    ap.add_argument("--check", action="store_true", help="run the correctness check first")
    ap.add_argument("--probe", action="store_true", help="measure copy bandwidth and GEMM TFLOP/s first")
    ap.add_argument("--no-rope", action="store_true")
    ap.add_argument("--summary-json", default=None, help="also write the run summary here")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = RunConfig(
            model=args.model,
            gpu=args.gpu,
            tp=args.tp,
            out=Path(args.out),
            device=args.device,
            mem_fraction=args.mem_fraction,
            prefill_isl=sweep.parse_int_list(args.prefill_isl, pfmt.PREFILL_ISL),
            prefill_batch=sweep.parse_int_list(args.prefill_batch, pfmt.PREFILL_BATCH),
            decode_batch=sweep.parse_int_list(args.decode_batch, pfmt.DECODE_BATCH),
            decode_context=sweep.parse_int_list(args.decode_context, pfmt.DECODE_CONTEXT),
            max_prefill_tokens=args.max_prefill_tokens,
            ttft_cap_ms=args.ttft_cap_ms,
            itl_cap_ms=args.itl_cap_ms,
            decode_replays=args.decode_replays,
            decode_repeats=args.decode_repeats,
            budget_s=args.budget_s,
            check=args.check,
            rope=not args.no_rope,
            models_yaml=Path(args.models_yaml),
            kv_capacity_override=args.kv_capacity,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    shapes = TINY if args.model == "tiny" else None
    summary: dict[str, object] = {}
    if args.probe and args.device.startswith("cuda"):
        summary["probe"] = probe = bandwidth_probe(args.device)
        log(f"probe: {summary['probe']}")
        cfg.probe = probe
    summary.update(run_profile(cfg, shapes))
    if args.summary_json:
        pfmt.write_atomic(Path(args.summary_json), json.dumps(summary, indent=2, default=str))
    log("summary: " + json.dumps({k: v for k, v in summary.items() if k != "check"}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
