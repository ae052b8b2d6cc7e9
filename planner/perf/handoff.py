"""The KV hand-off law fitted to a measured 1P1D pair (planner/perf/pairprofile.py).

The planner charges a prompt's trip from its prefill to its decode replica (DESIGN.md, perf.py)

    t_kv(isl) = fixed_ms + isl * kv_bytes_per_token / link            [ms]

with the catalog's link bandwidth and a 2 ms fixed latency. Given a pair profile's measured hand-off
times, :func:`fit_handoff` fits (fixed_ms, link) with non-negative least squares (SciPy) on relative
residuals (each point weighted by 1/measured, so a 1k prompt counts as much as a 16k one: the goal is
a relative error across ISL), on the median of the repeats at each ISL, and reports model-vs-measured
per ISL for both the fitted law and the planner's prior.

:func:`handoff_laws` gives the fitted (link GB/s, fixed ms) per prefill variant (model, gpu, prefill
tp) of every pair profile under a root; :func:`apply_handoff_laws` (called by
:meth:`planner.perf.laws.PerfModel.load`) puts them into the model's laws of those variants, so a measured
pair replaces the formula for that prefill variant's transfers (and its KV-link capacity in the ILP:
the effective bandwidth, a conservative bound). Other variants keep the formula.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from planner.io.catalog import Catalog
from planner.perf.pairprofile import PairProfile, iter_pair_profiles

if TYPE_CHECKING:
    from planner.perf.laws import PerfModel, VariantKey, VariantPerf


@dataclass(frozen=True)
class HandoffFit:
    """t_kv(isl) = fixed_ms + isl * kv_bytes_per_token / (link_gb_s * 1e9) * 1e3, and how well it fits."""

    fixed_ms: float
    link_gb_s: float
    """Effective bandwidth, GB/s; inf when the time does not grow with isl (latency-bound hand-off)."""
    kv_bytes_per_token: int
    table: pd.DataFrame
    """Per ISL: isl, n, measured_ms (median of repeats), fitted_ms, fitted_rel_err (signed)."""

    def predict_ms(self, isl: float | np.ndarray) -> float | np.ndarray:
        per_token = 0.0 if math.isinf(self.link_gb_s) else self.kv_bytes_per_token / (self.link_gb_s * 1e9) * 1e3
        return self.fixed_ms + per_token * np.asarray(isl, dtype=float)

    @property
    def median_abs_rel_err(self) -> float:
        return float(self.table["fitted_rel_err"].abs().median())

    @property
    def max_abs_rel_err(self) -> float:
        return float(self.table["fitted_rel_err"].abs().max())


def fit_handoff(isl: np.ndarray | list[float], transfer_ms: np.ndarray | list[float], kv_bytes_per_token: int) -> HandoffFit:
    """Fit the hand-off law to measured (isl, transfer time) samples; NNLS on relative residuals."""
    df = pd.DataFrame({"isl": np.asarray(isl, float), "ms": np.asarray(transfer_ms, float)}).dropna()
    if df.empty:
        raise ValueError("no hand-off samples to fit")
    if (df.isl <= 0).any() or (df.ms < 0).any():
        raise ValueError("hand-off samples need isl > 0 and times >= 0")
    med = df.groupby("isl").ms.agg(["median", "size"]).reset_index().rename(columns={"median": "measured_ms", "size": "n"})
    y = med.measured_ms.to_numpy()
    w = 1.0 / np.maximum(y, 1e-3)  # relative residuals; 1 µs floor keeps a zero sample finite
    a = np.column_stack([np.ones_like(y), med.isl.to_numpy()]) * w[:, None]
    (fixed, slope), _ = nnls(a, y * w)
    link = math.inf if slope <= 0 else kv_bytes_per_token / (slope * 1e6)  # slope ms/token -> GB/s
    fitted = fixed + slope * med.isl.to_numpy()
    med["fitted_ms"] = fitted
    med["fitted_rel_err"] = (fitted - y) / np.maximum(y, 1e-3)
    return HandoffFit(fixed_ms=float(fixed), link_gb_s=float(link), kv_bytes_per_token=int(kv_bytes_per_token), table=med)


def fit_pair(profile: PairProfile) -> HandoffFit:
    """The hand-off law of one pair profile (its kv_transfer_ms column)."""
    h = profile.handoff
    return fit_handoff(h.isl.to_numpy(), h.kv_transfer_ms.to_numpy(), profile.meta.kv_bytes_per_token)


def compare_with_prior(fit: HandoffFit, prior_ms: Callable[[float], float]) -> pd.DataFrame:
    """fit.table plus the planner's prior law (`prior_ms(isl)`, e.g. VariantPerf.kv_transfer_ms) and its error."""
    t = fit.table.copy()
    t["prior_ms"] = [float(prior_ms(float(i))) for i in t.isl]
    t["prior_rel_err"] = (t.prior_ms - t.measured_ms) / t.measured_ms.clip(lower=1e-3)
    return t


def handoff_laws(root: str | os.PathLike[str], catalog: Catalog | None = None) -> dict[tuple[str, str, int], tuple[float, float]]:
    """(model, prefill gpu, prefill tp) -> (link GB/s, fixed ms) fitted on every pair profile under `root`.

    The link is expressed for the KV bytes per token the performance model charges that variant
    (planner/perf/prior.py, from `catalog`), so that the model's transfer time equals the fitted one
    even where the profile's meta counted the bytes differently. A latency-bound fit (no growth with
    isl) keeps no bandwidth term: it is left out, so the catalog's link stays in force. Several pairs
    of one prefill variant (different decode tp): the slowest wins."""
    from planner.perf.prior import kv_bytes_per_token_replica

    out: dict[tuple[str, str, int], tuple[float, float]] = {}
    for prof in iter_pair_profiles(root):
        fit = fit_pair(prof)
        if math.isinf(fit.link_gb_s):
            continue
        m = prof.meta
        link = fit.link_gb_s
        if catalog is not None and m.model in catalog.models:
            link *= kv_bytes_per_token_replica(catalog.model(m.model), m.prefill_tp) / fit.kv_bytes_per_token
        key = (m.model, m.gpu, m.prefill_tp)
        if key not in out or link < out[key][0]:
            out[key] = (link, fit.fixed_ms)
    return out


def apply_handoff_laws(pm: PerfModel, root: str | os.PathLike[str]) -> PerfModel:
    """Give the prefill variants of the pair profiles under `root` their fitted hand-off law; returns `pm`.

    The laws are set on the VariantPerf objects the model hands out (measured fits, and priors, which
    the model computes and caches here), found by identity in its stores, so this works whatever
    the stores are keyed by."""
    laws = handoff_laws(root, pm.catalog)
    stores: list[dict[VariantKey, VariantPerf] | dict[VariantKey, VariantPerf | None]] = [pm.measured, pm._cache]  # noqa: SLF001 - the model's own stores; see docstring
    for (model, gpu, tp), (link, fixed) in laws.items():
        if model not in pm.catalog.models or gpu not in pm.catalog.gpus:
            continue
        vp = pm.get(model, gpu, tp)
        if vp is None:
            continue
        new = dataclasses.replace(vp, kv_link_gb_s=link, kv_fixed_ms=fixed)
        for store in stores:
            for key, val in store.items():
                if val is vp:
                    store[key] = new
    return pm
