"""Fitting the latency laws on measured points: non-negative least squares, residuals kept.

Laws (DESIGN.md, Performance model):
  prefill of a batch of equal prompts   t = a + max(floor, b * sum(isl) + c * sum(isl^2))
                                          = a + max(floor, b * batch*isl + c * batch*isl^2)   [ms]
  decode step                           t = alpha + beta * batch + gamma * batch*context
                                            + kappa * max(0, batch - knee)                    [ms]

Both are roofline-shaped (planner/perf/prior.py: time = max(compute, memory)):
- prefill ``floor``: a pass over few tokens is memory bound (it reads every weight once, as a decode
  step does); its compute grows with the tokens and takes over past the ridge. The floor is bounded
  by the decode step at batch 1 (which reads the same weights, plus its own step overhead), so it
  is identified even where one small prompt was measured. floor = 0 is the linear law.
- decode ``knee``: past the GPU's ridge batch (:func:`planner.perf.prior.ridge_batch`, datasheet
  FLOP/s over HBM bytes/s x bytes per weight / 2 FLOPs) the weight GEMMs of a step are compute
  bound: each further sequence costs its compute time, not a share of one weight read. vLLM 0.26 on
  H200 shows it (Llama-3.1-8B, context 512: 8.1 ms at batch 128, 19.6 ms at 256; Qwen3-32B: 25.6,
  41.0 ms), a convexity no linear term follows. knee comes from the catalog, kappa is fitted; it is
  0 (the linear law) where no point lies past the knee.
Scored by leave-one-out cross-validation within the sparse halves of the vLLM profiles
(bench/calibrate_prior.py, part A0) among forms the planner's consumers can evaluate; which the
planner uses by default is planner.perf.laws.LawForms (both the knee and the floor since 2026-12-03).

Coefficients are constrained >= 0 (``scipy.optimize.nnls``) so the laws are monotone in every
size: latency never falls as a prompt, a batch or a context grows, also outside the measured range.
Rows are weighted by 1/measured so the fit minimises RELATIVE error: points span two orders of
magnitude (65 ms to 8 s in the Splitwise data) and an SLO cares about ratios, not absolute ms.
Pure functions: arrays in, coefficients and a :class:`FitReport` out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares, nnls


@dataclass(frozen=True)
class FitReport:
    """Quality of one fitted law on the points it was fitted on."""

    law: str
    n_points: int
    coef: tuple[float, ...]
    median_rel_err: float
    max_rel_err: float

    def describe(self) -> str:
        return (f"{self.law}: {self.n_points} points, median |rel err| {self.median_rel_err:.1%}, "
                f"max {self.max_rel_err:.1%}")


def _fit(design: np.ndarray, y: np.ndarray, law: str) -> tuple[np.ndarray, FitReport]:
    y = np.asarray(y, dtype=float)
    if design.shape[0] == 0:
        raise ValueError(f"{law}: no points to fit")
    w = 1.0 / y
    # Column scaling keeps NNLS well conditioned (columns range from 1 to ~1e10).
    scale = np.abs(design).max(axis=0)
    scale[scale == 0] = 1.0
    coef_scaled, _ = nnls(design / scale * w[:, None], y * w)
    coef = coef_scaled / scale
    rel = np.abs(design @ coef - y) / y
    return coef, FitReport(law, len(y), tuple(float(c) for c in coef), float(np.median(rel)), float(rel.max()))


def prefill_design(isl: np.ndarray, batch: np.ndarray) -> np.ndarray:
    isl = np.asarray(isl, dtype=float)
    batch = np.asarray(batch, dtype=float)
    return np.column_stack([np.ones_like(isl), batch * isl, batch * isl * isl])


def knee_column(batch: np.ndarray | float, knee_batch: float | None) -> np.ndarray:
    """max(0, batch - knee): the sequences past the ridge batch (zeros without a knee)."""
    b = np.asarray(batch, dtype=float)
    if knee_batch is None or not np.isfinite(knee_batch):
        return np.zeros_like(b)
    return np.maximum(0.0, b - knee_batch)


def decode_design(batch: np.ndarray, context: np.ndarray) -> np.ndarray:
    batch = np.asarray(batch, dtype=float)
    context = np.asarray(context, dtype=float)
    return np.column_stack([np.ones_like(batch), batch, batch * context])


def fit_prefill(isl: np.ndarray, batch: np.ndarray, ttft_ms: np.ndarray) -> tuple[tuple[float, float, float], FitReport]:
    """(a, b, c) of t = a + b*batch*isl + c*batch*isl^2, all >= 0, and the fit's residuals."""
    coef, rep = _fit(prefill_design(isl, batch), ttft_ms, "prefill a + b*sum(isl) + c*sum(isl^2)")
    return (float(coef[0]), float(coef[1]), float(coef[2])), rep


def experts_touched(batch: np.ndarray | float, route_share: float) -> np.ndarray:
    """Expected share of a MoE layer's experts a batch of `batch` tokens reads: 1 - (1 - k/E)^batch
    (uniform routing; `route_share` = k/E, 0 for dense models -> 0)."""
    b = np.asarray(batch, dtype=float)
    if route_share <= 0:
        return np.zeros_like(b)
    share: np.ndarray = 1.0 - (1.0 - route_share) ** np.maximum(b, 0.0)
    return share


def fit_decode_moe(batch: np.ndarray, context: np.ndarray, itl_ms: np.ndarray,
                   route_share: float) -> tuple[tuple[float, float, float, float], FitReport]:
    """(alpha, beta, gamma, moe) of t = alpha + beta*batch + gamma*batch*context + moe*touched(batch).

    A MoE decode step reads the weights of the experts its batch touches: that share rises steeply
    from k/E at batch 1 to ~1 (Qwen3-30B-A3B on vLLM 0.26, H200: ITL 4.12 ms at batch 1, 12.59 at 16;
    shared/tools/vllm-offline/README.md), a shape no linear term follows. The regressor's shape is
    known from the catalog (:func:`experts_touched`); its coefficient is fitted, >= 0 like the rest."""
    batch = np.asarray(batch, dtype=float)
    design = np.column_stack([decode_design(batch, context), experts_touched(batch, route_share)])
    coef, rep = _fit(design, itl_ms, "decode alpha + beta*batch + gamma*batch*context + moe*touched(batch)")
    return (float(coef[0]), float(coef[1]), float(coef[2]), float(coef[3])), rep


def fit_decode_knee(batch: np.ndarray, context: np.ndarray, itl_ms: np.ndarray, route_share: float,
                    knee_batch: float | None) -> tuple[tuple[float, float, float, float, float], FitReport]:
    """(alpha, beta, gamma, moe, kappa) of the decode law with the MoE term (route_share > 0) and
    the knee term kappa * max(0, batch - knee_batch) (module doc). Linear in its coefficients:
    non-negative least squares as the rest; a column of zeros (no point past the knee, dense
    model) gets coefficient 0, so the law is then exactly the linear one."""
    batch = np.asarray(batch, dtype=float)
    design = np.column_stack([decode_design(batch, context), experts_touched(batch, route_share),
                              knee_column(batch, knee_batch)])
    coef, rep = _fit(design, itl_ms, "decode alpha + beta*batch + gamma*batch*context + moe*touched(batch) "
                                     "+ kappa*max(0, batch-knee)")
    return (float(coef[0]), float(coef[1]), float(coef[2]), float(coef[3]), float(coef[4])), rep


def prefill_floor_ms(a: float, b: float, c: float, floor: float, isl: np.ndarray | float,
                     batch: np.ndarray | float) -> np.ndarray:
    """The prefill law a + max(floor, b*batch*isl + c*batch*isl^2), ms."""
    isl = np.asarray(isl, dtype=float)
    batch = np.asarray(batch, dtype=float)
    return np.asarray(a + np.maximum(floor, b * batch * isl + c * batch * isl * isl), dtype=float)


def fit_prefill_floor(isl: np.ndarray, batch: np.ndarray, ttft_ms: np.ndarray,
                      floor_max_ms: float, c_fixed: float | None = None) -> tuple[tuple[float, float, float, float], FitReport]:
    """(a, b, c, floor) of t = a + max(floor, b*batch*isl + c*batch*isl^2), all >= 0, floor <= floor_max_ms.

    The max makes the law non-linear: ``scipy.optimize.least_squares`` on relative residuals (as
    :func:`_fit`), started from the linear NNLS solution (floor 0) and from floors of 25/50/75/100%
    of its bound; the best start wins, so the fit is never worse in-sample than the linear law.
    floor_max_ms <= 0 gives the linear law exactly. `c_fixed`: c is not fitted but held at this value (an MoE's
    attention term from the roofline prior, LawForms.moe_attention_prior); a, b and the floor are fitted around it."""
    isl = np.asarray(isl, dtype=float)
    batch = np.asarray(batch, dtype=float)
    y = np.asarray(ttft_ms, dtype=float)
    if c_fixed is not None:
        return _fit_prefill_floor_c_fixed(isl, batch, y, floor_max_ms, float(c_fixed))
    (a0, b0, c0), rep0 = fit_prefill(isl, batch, y)
    best = np.array([a0, b0, c0, 0.0])
    if floor_max_ms > 0:
        tokens = batch * isl
        scale = np.array([max(y.min(), 1e-6), max(y.max() / tokens.max(), 1e-12),
                          max(y.max() / (tokens * isl).max(), 1e-18), floor_max_ms])

        def resid(z: np.ndarray) -> np.ndarray:
            x = z * scale
            return np.asarray((prefill_floor_ms(x[0], x[1], x[2], x[3], isl, batch) - y) / y, dtype=float)

        cost = float(np.sum(resid(best / scale) ** 2))
        for share in (0.0, 0.25, 0.5, 0.75, 1.0):
            x0 = np.array([a0, b0, c0, share * floor_max_ms * 0.999]) / scale
            x0 = np.clip(x0, 0.0, [np.inf, np.inf, np.inf, 1.0])
            sol = least_squares(resid, x0, bounds=([0, 0, 0, 0], [np.inf, np.inf, np.inf, 1.0]))
            if 2 * sol.cost < cost - 1e-12:
                cost, best = 2 * sol.cost, sol.x * scale
    a, b, c, floor = (float(v) for v in best)
    rel = np.abs(prefill_floor_ms(a, b, c, floor, isl, batch) - y) / y
    return (a, b, c, floor), FitReport("prefill a + max(floor, b*sum(isl) + c*sum(isl^2))", len(y), (a, b, c, floor),
                                       float(np.median(rel)), float(rel.max()))


def _fit_prefill_floor_c_fixed(isl: np.ndarray, batch: np.ndarray, y: np.ndarray, floor_max_ms: float,
                               c: float) -> tuple[tuple[float, float, float, float], FitReport]:
    """:func:`fit_prefill_floor` with c held: (a, b, floor) by least squares on relative residuals, all >= 0, the floor
    <= floor_max_ms (0 where the bound is 0), started from the free fit's (a, b) and floors of 0-100% of the bound."""
    (a0, b0, _), _ = fit_prefill(isl, batch, y)
    tokens = batch * isl
    fmax = max(floor_max_ms, 0.0)
    scale = np.array([max(y.min(), 1e-6), max(y.max() / tokens.max(), 1e-12), max(fmax, 1e-9)])

    def law(x: np.ndarray) -> np.ndarray:
        return np.asarray(prefill_floor_ms(x[0], x[1], c, x[2], isl, batch), dtype=float)

    def resid(z: np.ndarray) -> np.ndarray:
        return np.asarray((law(z * scale) - y) / y, dtype=float)

    best, cost = np.array([a0, b0, 0.0]), math.inf
    for share in (0.0, 0.25, 0.5, 0.75, 1.0) if fmax > 0 else (0.0,):
        x0 = np.clip(np.array([a0, b0, share * fmax * 0.999]) / scale, 0.0, [np.inf, np.inf, 1.0])
        sol = least_squares(resid, x0, bounds=([0, 0, 0], [np.inf, np.inf, 1.0 if fmax > 0 else 1e-12]))
        if 2 * sol.cost < cost:
            cost, best = 2 * sol.cost, sol.x * scale
    a, b, floor = (float(v) for v in best)
    rel = np.abs(law(best) - y) / y
    return (a, b, c, floor), FitReport("prefill a + max(floor, b*sum(isl) + c*sum(isl^2)), c from the prior", len(y),
                                       (a, b, c, floor), float(np.median(rel)), float(rel.max()))


def fit_prefill_client(isl: np.ndarray, batch: np.ndarray, ttft_ms: np.ndarray, decode_coef: tuple[float, ...],
                       route_share: float = 0.0) -> tuple[tuple[float, float, float], FitReport, float]:
    """Prefill law and per-request overhead of TTFTs measured at a client (vLLM profiles).

    A client TTFT is overhead + GPU time of the prefill pass. The smallest prompt of the smallest
    batch is memory bound (it reads the weights once, as a decode step does, and its FLOPs are
    below the GPU's ridge point), so its GPU time is the decode law at batch 1 and that context:
    overhead = max(0, TTFT_min - t_decode(1, isl_min)); for a MoE (decode_coef with a 4th, MoE
    term) the pass reads the experts its isl_min tokens touch, not those of one token. The law is fitted on TTFT - overhead
    (non-negative least squares as :func:`fit_prefill`); the report's residuals are of the client
    TTFT (overhead + law). Returns ((a, b, c), report, overhead_ms)."""
    isl = np.asarray(isl, dtype=float)
    batch = np.asarray(batch, dtype=float)
    y = np.asarray(ttft_ms, dtype=float)
    first = np.lexsort((isl, batch))[0]  # smallest batch, then smallest prompt
    al, be, ga = decode_coef[:3]
    moe = decode_coef[3] if len(decode_coef) > 3 else 0.0
    floor = al + be + ga * isl[first] + moe * float(experts_touched(isl[first] * batch[first], route_share))
    overhead = max(0.0, float(y[first] - floor))
    gpu = np.maximum(y - overhead, 0.05 * y)
    (a, b, c), _ = fit_prefill(isl, batch, gpu)
    rel = np.abs(overhead + prefill_design(isl, batch) @ np.array([a, b, c]) - y) / y
    rep = FitReport("prefill overhead + a + b*sum(isl) + c*sum(isl^2)", len(y), (overhead, a, b, c),
                    float(np.median(rel)), float(rel.max()))
    return (a, b, c), rep, overhead


def fit_decode(batch: np.ndarray, context: np.ndarray, itl_ms: np.ndarray) -> tuple[tuple[float, float, float], FitReport]:
    """(alpha, beta, gamma) of t = alpha + beta*batch + gamma*batch*context, all >= 0, and residuals."""
    coef, rep = _fit(decode_design(batch, context), itl_ms, "decode alpha + beta*batch + gamma*batch*context")
    return (float(coef[0]), float(coef[1]), float(coef[2])), rep


def fit_prefill_client_floor(isl: np.ndarray, batch: np.ndarray, ttft_ms: np.ndarray, decode_coef: tuple[float, ...],
                             route_share: float, floor_max_ms: float
                             ) -> tuple[tuple[float, float, float, float], FitReport, float]:
    """:func:`fit_prefill_client` with the floor law (:func:`fit_prefill_floor`): the overhead by the
    same rule (smallest TTFT less the decode step that reads the same weights), the law fitted on
    TTFT - overhead. Returns ((a, b, c, floor), report of the client TTFTs, overhead_ms)."""
    isl = np.asarray(isl, dtype=float)
    batch = np.asarray(batch, dtype=float)
    y = np.asarray(ttft_ms, dtype=float)
    _, _, overhead = fit_prefill_client(isl, batch, y, decode_coef, route_share)
    gpu = np.maximum(y - overhead, 0.05 * y)
    (a, b, c, floor), _ = fit_prefill_floor(isl, batch, gpu, floor_max_ms)
    rel = np.abs(overhead + prefill_floor_ms(a, b, c, floor, isl, batch) - y) / y
    rep = FitReport("prefill overhead + a + max(floor, b*sum(isl) + c*sum(isl^2))", len(y), (overhead, a, b, c, floor),
                    float(np.median(rel)), float(rel.max()))
    return (a, b, c, floor), rep, overhead
