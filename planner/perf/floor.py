"""The roofline floor of a measured profile: no step of the deployed model can take less than the bytes it must
read at the GPU's peak HBM bandwidth, or its FLOPs at the peak tensor rate (rule V1, stop 39; issue 10).

Why: a weightless profile (``--load-format dummy``) can measure something the deployed model never does. vLLM's
online FP8 quantization of dummy weights sent a MoE's batch to few experts (qwen3-30b-a3b with FP8 weights on the
H100, plan h2): its decode step at batch 32 x 512 took 6.27 ms where reading every routed expert once takes 8.68 ms
at the card's peak bandwidth, and from batch 8 to 128 its steps grew 4.6 -> 8.6 ms where the bf16 profile's grew
4.7 -> 26.6 ms. Every other committed profile sits at 1.19x its ideal time or above (``bench/roofline_floor.py``);
re-measured with uniform routing (stop 40, profiles/runs/2026-12-05-h2v2) that variant lies at 1.47x, and that
profile is the bundled one since (plan h2's stays in its runs folder, the breach tests/test_perf_floor.py holds).
The ideal time is planner.perf.prior's: ``max(compute, memory)`` of :func:`prefill_parts` / :func:`decode_parts`
at efficiency 1, with a MoE's experts touched as a uniform router spreads a batch's tokens (a trained router's
load balancing approaches it). A profile with any point below it is not used for laws nor for the prior's
calibration (:meth:`planner.perf.laws.PerfModel.from_profiles`), and the profiler warns when it writes one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.io.catalog import Catalog
from planner.perf.prior import decode_parts, prefill_parts
from planner.perf.profiledata import Profile, central_points

FLOOR_RATIO = 1.0
"""A point below this x its ideal roofline time breaches the floor. 1: only the physically impossible (the catalog's
bandwidths and peaks are the spec sheets', which measured kernels do not exceed); the other committed profiles' lowest
ratios are 1.15 (prefill) and 1.19 (decode)."""


@dataclass(frozen=True)
class FloorPoint:
    """One measured point against its ideal roofline time (a breach where the ratio is below FLOOR_RATIO)."""

    phase: str
    """'prefill' or 'decode'."""
    point: str
    """Where, e.g. 'batch 32 x context 512'."""
    measured_ms: float
    ideal_ms: float

    @property
    def ratio(self) -> float:
        return self.measured_ms / self.ideal_ms


def point_times(p: Profile, catalog: Catalog) -> list[FloorPoint]:
    """Every central point of `p` (the fits' points) with its measured and ideal roofline time, prefill then decode.
    A model or GPU the catalog does not know gives none (the loader refuses it elsewhere)."""
    m = p.meta
    if m.model not in catalog.models or m.gpu not in catalog.gpus:
        return []
    model = catalog.model(m.model).with_precision(m.weight_dtype, m.kv_dtype)
    gpu = catalog.gpu(m.gpu)
    out: list[FloorPoint] = []
    phases = (("prefill", p.prefill, ("isl", "batch"), "ttft_ms", prefill_parts, "{1} x {0}-token prompts"),
              ("decode", p.decode, ("batch", "context_tokens"), "itl_ms", decode_parts, "batch {0} x context {1}"))
    for phase, raw, axes, value, parts_of, where in phases:
        pts = central_points(raw, list(axes), value) if not raw.empty else None
        if pts is None or pts.empty:
            continue
        x, y = pts[axes[0]].to_numpy(float), pts[axes[1]].to_numpy(float)
        parts = parts_of(model, gpu, m.tp, x, y)
        ideal = np.maximum(parts.compute_ms, parts.memory_ms)
        for a, b, t, i in zip(x, y, pts[value].to_numpy(float), ideal, strict=True):
            out.append(FloorPoint(phase, where.format(int(a), int(b)), float(t), float(i)))
    return out


def floor_breaches(p: Profile, catalog: Catalog) -> list[FloorPoint]:
    """The points of :func:`point_times` below FLOOR_RATIO x their ideal roofline time, worst first."""
    return sorted((x for x in point_times(p, catalog) if x.ratio < FLOOR_RATIO), key=lambda x: x.ratio)


def floor_reason(p: Profile, breaches: list[FloorPoint]) -> str:
    """One line: which profile, how many points, the worst, and what it means."""
    w = breaches[0]
    return (f"{p.path}: {len(breaches)} point{'s' if len(breaches) > 1 else ''} faster than the roofline allows (worst: "
            f"{w.phase} {w.point}, {w.measured_ms:.2f} ms measured where reading its bytes at the GPU's peak bandwidth "
            f"or its FLOPs at the peak rate takes {w.ideal_ms:.2f} ms, {w.ratio:.2f}x): it does not measure the deployed "
            f"model (a weightless MoE run whose router sent the batch to few experts?) and is not used")


def physical_profiles(profiles: list[Profile], catalog: Catalog) -> tuple[list[Profile], list[tuple[Profile, str]]]:
    """The profiles at or above their floor, and each one left out with its reason (:func:`floor_reason`): what the
    loader keeps (planner.perf.laws.PerfModel.from_profiles), for the benches that list profiles themselves too."""
    kept: list[Profile] = []
    left: list[tuple[Profile, str]] = []
    for p in profiles:
        b = floor_breaches(p, catalog)
        if b:
            left.append((p, floor_reason(p, b)))
        else:
            kept.append(p)
    return kept, left
