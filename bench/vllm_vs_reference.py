"""vLLM-measured profiles against the torch reference decoder and the roofline floor, per variant.

    python bench/vllm_vs_reference.py [--data profiles/data] [--gpu H200-141GB]

For every ``<model>/<gpu>/tp<N>[-fp8][-kvfp8]/vllm/`` profile: the decode step at batch 1, 32 and 128
(context 2048) and the prefill of one prompt of 512 and 4096 tokens, as measured on vLLM, as measured
by the torch reference decoder of the same model and GPU (``tp<N>/``, bf16; '-' where there is none),
and the roofline floor max(FLOPs / peak, bytes / HBM bandwidth) at datasheet rates (planner.perf.prior's
FLOP and byte counts; FP8 weights halve the weight bytes and use the FP8 tensor-core peak, an FP8 KV
cache halves the KV bytes). Points a profile lacks are '-', never interpolated.
Last line: RESULT with the median vLLM/reference ratio of decode and of prefill over all cells.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from planner.io.catalog import Catalog  # noqa: E402
from bench_input import known_gpu  # noqa: E402
from planner.perf.profiledata import central_points, load_profile  # noqa: E402
from planner.perf.prior import kv_bytes_per_token_replica, weight_bytes_touched  # noqa: E402

DECODE_POINTS = [(1, 2048), (32, 2048), (128, 2048)]
PREFILL_POINTS = [(512, 1), (4096, 1)]


def _lookup(df, axes: list[str], value: str, key: tuple[int, int]) -> float | None:
    c = central_points(df, axes, value)
    row = c[(c[axes[0]] == key[0]) & (c[axes[1]] == key[1])]
    return float(row[value].iloc[0]) if len(row) else None


def roofline_ms(model, gpu, tp: int, phase: str, key: tuple[int, int], weight_fp8: bool, kv_fp8: bool) -> float:
    """max(compute, memory) of one forward pass at datasheet rates, with the variant's dtypes."""
    wscale = 0.5 if weight_fp8 else 1.0
    kscale = 0.5 if kv_fp8 else 1.0
    peak = (gpu.fp8_tflops if weight_fp8 and getattr(gpu, "fp8_tflops", None) else gpu.bf16_tflops) * 1e12 * tp
    kvb = kv_bytes_per_token_replica(model, tp) * kscale
    if phase == "decode":
        batch, ctx = key
        flops = batch * (model.flops_per_token + model.attn_flops_per_token_per_ctx * ctx)
        nbytes = weight_bytes_touched(model, batch) * wscale + batch * ctx * kvb
    else:
        isl, batch = key
        tokens = isl * batch
        flops = tokens * model.flops_per_token + batch * model.attn_flops_per_token_per_ctx * isl * (isl + 1) / 2
        nbytes = weight_bytes_touched(model, tokens) * wscale + tokens * kvb
    return max(flops / peak, nbytes / (tp * gpu.hbm_tb_s * 1e12)) * 1e3


def rows(data: Path, gpu_name: str | None) -> list[dict]:
    cat = Catalog.load()
    out = []
    for meta in sorted(data.glob("*/*/tp*/vllm/meta.yaml")):
        d = meta.parent
        prof = load_profile(d)
        m = prof.meta
        if gpu_name and m.gpu != gpu_name:
            continue
        model, gpu = cat.model(m.model), cat.gpu(m.gpu)
        ref_dir = d.parent.parent / f"tp{m.tp}"
        ref = load_profile(ref_dir) if (ref_dir / "meta.yaml").is_file() else None
        wfp8, kfp8 = m.weight_dtype == "fp8", m.kv_dtype == "fp8"
        for phase, points in (("decode", DECODE_POINTS), ("prefill", PREFILL_POINTS)):
            axes, value = (["batch", "context_tokens"], "itl_ms") if phase == "decode" else (["isl", "batch"], "ttft_ms")
            for key in points:
                v = _lookup(getattr(prof, phase), axes, value, key)
                r = _lookup(getattr(ref, phase), axes, value, key) if ref is not None else None
                out.append({"variant": f"{m.model}/{d.parent.name}", "phase": phase, "point": key, "vllm_ms": v, "ref_ms": r,
                            "roof_ms": roofline_ms(model, gpu, m.tp, phase, key, wfp8, kfp8),
                            "prefill_source": "client TTFT" if phase == "prefill" and "source" in prof.prefill.columns else ""})
    return out


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / "profiles" / "data",
                    help="profile root laid out as profiles/data (default: the bundled one)")
    ap.add_argument("--gpu", default="H200-141GB",
                    help="catalog GPU type whose profiles are compared (case-insensitive)")
    a = ap.parse_args(argv)
    a.gpu = known_gpu(Catalog.load(), a.gpu)
    rs = rows(a.data, a.gpu)
    if not rs:
        print(f"{a.data}: no vLLM profiles (*/*/tp*/vllm/meta.yaml) for GPU {a.gpu}", file=sys.stderr)
        return 2
    print("| variant | phase | point | vLLM ms | torch ref ms | roofline ms | vLLM / ref | vLLM / roofline |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    ratios: dict[str, list[float]] = {"decode": [], "prefill": []}
    for r in rs:
        label = f"b{r['point'][0]} ctx{r['point'][1]}" if r["phase"] == "decode" else f"isl{r['point'][0]} b{r['point'][1]}"
        vr = r["vllm_ms"] / r["ref_ms"] if r["vllm_ms"] and r["ref_ms"] else None
        if vr is not None and "fp8" not in r["variant"]:
            ratios[r["phase"]].append(vr)
        note = f" ({r['prefill_source']})" if r["prefill_source"] else ""
        print(f"| {r['variant']} | {r['phase']}{note} | {label} | {fmt(r['vllm_ms'])} | {fmt(r['ref_ms'])} | {r['roof_ms']:.2f} | "
              f"{fmt(vr)} | {fmt(r['vllm_ms'] / r['roof_ms'] if r['vllm_ms'] else None)} |")
    med = {k: (statistics.median(v) if v else float("nan")) for k, v in ratios.items()}
    print(f"RESULT vllm_over_ref_decode_median={med['decode']:.3f} vllm_over_ref_prefill_median={med['prefill']:.3f} "
          f"cells={len(rs)} bf16_pairs={len(ratios['decode']) + len(ratios['prefill'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
