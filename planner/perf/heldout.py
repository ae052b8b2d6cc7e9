"""Held-out checks of the performance laws and of the roofline prior (pure; bench/calibrate_prior.py prints them).

Three questions, each answered on points the fit or calibration did not see:

1. **Sparse profile** (:func:`sparse_fit_errors`): fit a variant's laws on half of its measured
   points (a checkerboard over the sorted grid values, so the held-out half interleaves the fitted
   one) and predict the other half. Goal (issue 10): p90 <= 10% on vLLM profiles.
2. **Unprofiled model** (:func:`leave_one_model_out`): calibrate the prior without any profile of
   one model, then predict that model's profiles point by point. Goal: median <= 15%.
3. **Unprofiled tensor-parallel sizes** (:func:`held_out_gpu_tp`): calibrate without one GPU type,
   predict its tp >= 2 profiles (the Splitwise H100 tp2-8 case of tests/test_perf.py).
4. **Torch reference or prior** (:func:`torch_reference_vs_prior`): where a variant has both a vLLM profile and a
   torch-reference one, which would have planned it better without the vLLM one: the torch reference decoder's
   laws, or the prior calibrated without any profile of the model. It chose the loader's rule (PerfModel.from_profiles:
   with vLLM profiles present a torch-reference profile is not used).

5. **FP8 weights on another card** (:func:`fp8_cross_errors`): each FP8-weight vLLM profile predicted by the prior
   calibrated on every other profile (the other card's FP8 profile in): whether an FP8 share of the compute efficiency
   (planner.perf.prior.Calibration.fp8_share) carries from one card to the other (rule F1, bench/calibrate_prior.py
   part F).

TTFT is compared as measured: a vLLM profile's prefill rows are client TTFTs, so the prediction
adds the per-request overhead; other backends timed forward passes only, so it does not.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from planner.io.catalog import CATALOG_ENV, PROFILES_DIR, Catalog
from planner.perf.allreduce import AllReduceTable
from planner.perf.laws import (
    DEFAULT_LAW_FORMS,
    KNEE128_BATCH,
    LawForms,
    PerfModel,
    VariantKey,
    VariantPerf,
    client_ttft_rows,
    fit_profile,
    quiet_extrapolation,
    variant_key,
)
from planner.perf.prior import DEFAULT_CALIBRATION, Calibration
from planner.perf.profiledata import Profile, central_points, law_source


@dataclass(frozen=True)
class HeldOut:
    """Relative errors |pred - meas| / meas of one variant's held-out points, per phase."""

    label: str
    law_source: str
    prefill_rel_err: np.ndarray
    decode_rel_err: np.ndarray
    moe: bool = False
    """The model is a mixture of experts (the held-out set's figures are quoted per kind)."""

    def all_rel_err(self) -> np.ndarray:
        """Prefill and decode errors pooled (the unit of part D's rule, `prior_beats_torch`)."""
        both: np.ndarray = np.concatenate([self.prefill_rel_err, self.decode_rel_err])
        return both

    def stats(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for phase, e in (("prefill", self.prefill_rel_err), ("decode", self.decode_rel_err)):
            out[f"{phase}_median"] = float(np.median(e)) if e.size else float("nan")
            out[f"{phase}_p90"] = float(np.percentile(e, 90)) if e.size else float("nan")
            out[f"{phase}_n"] = float(e.size)
        return out


def label(p: Profile) -> str:
    m = p.meta
    suffix = ("-fp8" if m.weight_dtype == "fp8" else "") + ("-kvfp8" if m.kv_dtype == "fp8" else "")
    return f"{m.model}/{m.gpu}/tp{m.tp}{suffix} ({law_source(m)})"


def _points(p: Profile) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (central_points(p.prefill, ["isl", "batch"], "ttft_ms"),
            central_points(p.decode, ["batch", "context_tokens"], "itl_ms"))


def checkerboard(df: pd.DataFrame, x: str, y: str) -> np.ndarray:
    """Boolean mask of the fitted half: (rank of x + rank of y) even over the sorted grid values."""
    ix = df[x].rank(method="dense").astype(int).to_numpy()
    iy = df[y].rank(method="dense").astype(int).to_numpy()
    mask: np.ndarray = (ix + iy) % 2 == 0
    return mask


def predict_points(vp: VariantPerf, pre: pd.DataFrame, dec: pd.DataFrame, ttft_overhead_ms: float = 0.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """`vp`'s prefill time (plus `ttft_overhead_ms`) at each row of `pre` (isl, batch) and decode step at each row
    of `dec` (batch, context_tokens), ms."""
    with quiet_extrapolation():  # held-out points may lie past the fitted ones: that is the test
        tp = np.array([ttft_overhead_ms + vp.prefill_ms(float(i), float(b)) for i, b in zip(pre.isl, pre.batch, strict=True)])
        td = np.array([vp.decode_step_ms(float(b), float(c)) for b, c in zip(dec.batch, dec.context_tokens, strict=True)])
    return tp, td


def rel_errors(vp: VariantPerf, pre: pd.DataFrame, dec: pd.DataFrame, ttft_overhead_ms: float = 0.0
               ) -> tuple[np.ndarray, np.ndarray]:
    """|predicted - measured| / measured of :func:`predict_points` against `pre.ttft_ms` and `dec.itl_ms`."""
    tp, td = predict_points(vp, pre, dec, ttft_overhead_ms)
    return (np.abs(tp - pre.ttft_ms.to_numpy()) / pre.ttft_ms.to_numpy(),
            np.abs(td - dec.itl_ms.to_numpy()) / dec.itl_ms.to_numpy())


def predict_errors(vp: VariantPerf, p: Profile, pre_mask: np.ndarray | None = None,
                   dec_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Relative errors of `vp` on the profile's points (those selected by the masks, default all)."""
    pre, dec = _points(p)
    if pre_mask is not None:
        pre = pre[pre_mask]
    if dec_mask is not None:
        dec = dec[dec_mask]
    over = vp.ttft_overhead_ms if client_ttft_rows(p) else 0.0  # compare like with like
    return rel_errors(vp, pre, dec, over)


def _rows_at(raw: pd.DataFrame, points: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The rows of `raw` at the grid points of `points` (same key values), all columns kept."""
    chosen = set(map(tuple, points[keys].astype(float).to_numpy()))
    mask = [tuple(k) in chosen for k in raw[keys].astype(float).to_numpy()]
    return raw[np.array(mask, dtype=bool)].reset_index(drop=True)


def sparse_fit_errors(p: Profile, catalog: Catalog, forms: LawForms = DEFAULT_LAW_FORMS) -> HeldOut:
    """Fit on the checkerboard half of the points, errors on the other half."""
    pre, dec = _points(p)
    return subset_fit_errors(p, catalog, checkerboard(pre, "isl", "batch"), checkerboard(dec, "batch", "context_tokens"),
                             forms)


def subset_fit_errors(p: Profile, catalog: Catalog, pre_mask: np.ndarray, dec_mask: np.ndarray,
                      forms: LawForms = DEFAULT_LAW_FORMS) -> HeldOut:
    """The planner's laws fitted on the grid points the masks select (over the central points of :func:`_points`,
    prefill by (isl, batch), decode by (batch, context_tokens)), their errors on the points they leave out."""
    pre, dec = _points(p)
    # The raw rows of the fitted grid points, every column kept: a vLLM profile's ttft_e2e_ms says
    # its ttft_ms are engine steps (the overhead measured beside them), not client TTFTs.
    sparse = dataclasses.replace(p, prefill=_rows_at(p.prefill, pre[pre_mask], ["isl", "batch"]),
                                 decode=_rows_at(p.decode, dec[dec_mask], ["batch", "context_tokens"]))
    vp, _, _ = fit_profile(sparse, catalog, forms=forms)
    e_pre, e_dec = predict_errors(vp, p, ~pre_mask, ~dec_mask)
    return HeldOut(label(p), law_source(p.meta), e_pre, e_dec)


def sparse_cv_errors(p: Profile, catalog: Catalog, forms: LawForms) -> HeldOut:
    """Leave-one-out errors WITHIN the sparse (checkerboard) half: each of its grid points is
    predicted by the laws fitted on the rest of that half. The held-out half is never read, so these
    errors may choose the law forms while the held-out half reports them (:func:`choose_forms`)."""
    pre, dec = _points(p)
    mp, md = checkerboard(pre, "isl", "batch"), checkerboard(dec, "batch", "context_tokens")
    fit_pre, fit_dec = pre[mp].reset_index(drop=True), dec[md].reset_index(drop=True)
    errs: dict[str, list[float]] = {"prefill": [], "decode": []}
    for phase, pts in (("prefill", fit_pre), ("decode", fit_dec)):
        for i in range(len(pts)):
            keep = np.ones(len(pts), dtype=bool)
            keep[i] = False
            pre_keep = fit_pre[keep] if phase == "prefill" else fit_pre
            dec_keep = fit_dec[keep] if phase == "decode" else fit_dec
            loo = dataclasses.replace(p, prefill=_rows_at(p.prefill, pre_keep, ["isl", "batch"]),
                                      decode=_rows_at(p.decode, dec_keep, ["batch", "context_tokens"]))
            vp, _, _ = fit_profile(loo, catalog, forms=forms)
            if phase == "prefill":
                one = dataclasses.replace(p, prefill=_rows_at(p.prefill, pts.iloc[[i]], ["isl", "batch"]))
            else:
                one = dataclasses.replace(p, decode=_rows_at(p.decode, pts.iloc[[i]], ["batch", "context_tokens"]))
            e_pre, e_dec = predict_errors(vp, one)
            errs[phase].append(float((e_pre if phase == "prefill" else e_dec)[0]))
    return HeldOut(label(p), law_source(p.meta), np.array(errs["prefill"]), np.array(errs["decode"]))


FORM_CANDIDATES: dict[str, dict[str, LawForms]] = {
    "prefill": {"linear": LawForms(prefill_floor=False), "floor": LawForms(prefill_floor=True)},
    "decode": {"linear": LawForms(decode_knee=False), "knee": LawForms(decode_knee=True),
               # rule K5 (stop 38): the knee at min(ridge, 128), where vLLM 0.26's own step jumps on every card measured
               "knee128": LawForms(decode_knee=True, decode_knee_max_batch=KNEE128_BATCH)},
}
"""Law forms the planner's consumers can evaluate (planner.perf.laws.VariantPerf), per phase."""


def form_name(forms: LawForms, phase: str) -> str:
    """The FORM_CANDIDATES name of `forms` for one phase."""
    if phase == "prefill":
        return "floor" if forms.prefill_floor else "linear"
    if not forms.decode_knee:
        return "linear"
    return "knee" if forms.decode_knee_max_batch is None else f"knee{forms.decode_knee_max_batch:g}"


def choose_forms(profiles: list[Profile], catalog: Catalog) -> tuple[LawForms, dict[str, dict[str, dict[str, float]]]]:
    """Per phase, the candidate form with the lowest pooled p90 of :func:`sparse_cv_errors` (the
    goal's statistic), then the lowest median, then the simpler (listed first); returns the chosen
    forms and every candidate's CV stats. Lexicographic because the p90 of ~26 points is often one
    and the same worst point under every form."""
    stats: dict[str, dict[str, dict[str, float]]] = {}
    chosen: dict[str, LawForms] = {}
    for phase, cands in FORM_CANDIDATES.items():
        stats[phase] = {}
        for name, forms in cands.items():
            s = pooled([sparse_cv_errors(p, catalog, forms) for p in profiles])
            stats[phase][name] = {"median": s[f"{phase}_median"], "p90": s[f"{phase}_p90"], "n": s[f"{phase}_n"]}
        best = min(cands, key=lambda n: (round(stats[phase][n]["p90"], 6), round(stats[phase][n]["median"], 6),
                                         list(cands).index(n)))
        chosen[phase] = cands[best]
    # the decode candidate's forms (every decode field, the knee's cap included) with the prefill choice
    return dataclasses.replace(chosen["decode"], prefill_floor=chosen["prefill"].prefill_floor), stats


def _prior_errors(pm: PerfModel, targets: Iterable[Profile]) -> list[HeldOut]:
    out = []
    for p in targets:
        m = p.meta
        vp = pm.get(m.model, m.gpu, m.tp, m.weight_dtype, m.kv_dtype)
        if vp is None:
            continue
        assert vp.source == "prior", f"{label(p)} was in the calibration set"
        e_pre, e_dec = predict_errors(vp, p)
        out.append(HeldOut(label(p), law_source(m), e_pre, e_dec))
    return out


def leave_one_model_out(profiles: list[Profile], catalog: Catalog, allreduce: dict[str, AllReduceTable] | None = None,
                        target_source: str = "measured-vllm", calibrate_on: str = "engines",
                        calibration: Calibration = DEFAULT_CALIBRATION) -> list[HeldOut]:
    """Per model with a `target_source` profile: calibrate on the other models' profiles and predict
    that model's. calibrate_on: 'engines' (the planner's default, PerfModel.from_profiles), 'all'
    (every preferred profile, torch reference included) or 'same' (`target_source` profiles only);
    `calibration`: the calibration's options (planner.perf.prior.Calibration)."""
    targets = [p for p in profiles if law_source(p.meta) == target_source]
    out: list[HeldOut] = []
    for model in sorted({p.meta.model for p in targets}):
        calib = [p for p in profiles if p.meta.model != model
                 and (calibrate_on != "same" or law_source(p.meta) == target_source)]
        if not calib:
            continue
        pm = PerfModel.from_profiles(catalog, calib, allreduce=allreduce,
                                     calibrate_on="all" if calibrate_on == "all" else "engines", calibration=calibration)
        out.extend(_prior_errors(pm, [p for p in targets if p.meta.model == model]))
    return out


@dataclass(frozen=True)
class TorchVsPrior:
    """One variant measured by both vLLM and the torch reference decoder: two predictions of its vLLM points."""

    label: str
    torch: HeldOut
    """The torch-reference profile's fitted laws, with the TTFT overhead the planner gives non-vLLM laws (the median
    of the other vLLM profiles')."""
    prior: HeldOut
    """The prior calibrated as the planner does on every profile of the OTHER models."""


def torch_reference_vs_prior(profiles: list[Profile], catalog: Catalog, allreduce: dict[str, AllReduceTable] | None = None,
                             calibration: Calibration = DEFAULT_CALIBRATION) -> list[TorchVsPrior]:
    """Per variant with a vLLM profile and a torch-reference profile: the errors on the vLLM profile's points of the
    torch reference's laws and of the prior calibrated without the model (leave one model out, as
    :func:`leave_one_model_out`). Question 4 of the module doc."""
    torch_of = _torch_profiles(profiles)
    out: list[TorchVsPrior] = []
    for target in profiles:
        if law_source(target.meta) != "measured-vllm" or variant_key(target) not in torch_of:
            continue
        m = target.meta
        others = PerfModel.from_profiles(catalog, [p for p in profiles if p.meta.model != m.model], allreduce=allreduce,
                                         calibration=calibration)
        vp_t = _torch_laws(torch_of[variant_key(target)], catalog, others.ttft_overhead_ms)
        vp_p = others.get(m.model, m.gpu, m.tp, m.weight_dtype, m.kv_dtype)
        if vp_p is None:
            continue
        out.append(TorchVsPrior(label(target), HeldOut(label(torch_of[variant_key(target)]), "measured-torch", *predict_errors(vp_t, target)),
                                HeldOut(f"{m.model} prior", "prior", *predict_errors(vp_p, target))))
    return out


D_MARGIN_PCT = 2.0
"""Part D's rule (bench/calibrate_prior.py, stop 33): the prior replaces a torch-reference profile only where it is at
least this many points better at the median (pooled prefill and decode |rel err|): a margin above the spread of a refit
on the same points (the sparse fits of part A move the median by ~1-2 points)."""


def prior_beats_torch(prior_err: np.ndarray, torch_err: np.ndarray) -> bool:
    """Part D's rule on pooled |relative errors| of one set of points: the prior's median at least D_MARGIN_PCT points
    below the torch reference's, and its p90 not above."""
    return bool(np.median(prior_err) <= np.median(torch_err) - D_MARGIN_PCT / 100
                and np.percentile(prior_err, 90) <= np.percentile(torch_err, 90))


def part_d_verdict(rows: Sequence[TorchVsPrior]) -> bool:
    """Part D's verdict (bench/calibrate_prior.py; planner.perf.laws.TORCH_ONLY_LAWS follows it): True (the prior plans
    torch-only variants) where :func:`prior_beats_torch` holds on the errors pooled over every variant measured by both.

    Pooled since stop 43 (rule D2, written at stop 42 before the pair it names was measured): D's per-variant form
    (the prior on every variant) and the pooled form disagreed on the bundled four pairs (per variant: the torch
    reference, by llama-3.1-8b's p90 on the H200; pooled: the prior, 7.7 / 22.2% against 20.4 / 33.0%). The next pair
    measured by both outside the four, qwen3-14b on the H100 (plan d2), agreed with the pooled form: the prior 3.2%
    (median) / 7.8% (p90) against the torch reference's 15.7 / 27.1%; the two other pairs of plan d2 (reported only)
    agree too (qwen2.5-14b 5.7 / 17.0%, mistral-nemo-12b 4.5 / 15.5% at the median, prior / torch)."""
    if not rows:
        return False
    return prior_beats_torch(np.concatenate([r.prior.all_rel_err() for r in rows]),
                             np.concatenate([r.torch.all_rel_err() for r in rows]))


@dataclass(frozen=True)
class RunHeldOut:
    """One variant of a new run (a GPU or model the bundled profiles lack): its vLLM points predicted by the laws the
    planner uses for it, and by its torch-reference profile's laws where one is bundled."""

    label: str
    planner: HeldOut
    """The laws `PerfModel.get` answers with (the prior for a variant with no vLLM profile)."""
    torch: HeldOut | None
    """The bundled torch-reference profile's laws with the planner's TTFT overhead; None where none is bundled."""


def perf_leaving_out(runs: Iterable[Profile], catalog: Catalog, card_unseen: bool = False) -> PerfModel:
    """The planner's laws as if no variant the `runs` measured had a profile: `PerfModel.load()` leaving out every
    bundled (or user) vLLM profile of those variants, so a run is held out of the laws it is scored against even after
    its profiles were bundled (plan h1's, at stop 37), and the prior is calibrated without them; their torch-reference
    profiles are left out too, so the variants get the prior whatever laws.TORCH_ONLY_LAWS says (the torch reference's
    laws are scored beside it by :func:`held_out_runs`). `card_unseen`: every profile of the runs' GPU types is left
    out too, of any source and model (a card nobody profiled: the prior from its catalog entry alone)."""
    runs = list(runs)
    measured = {variant_key(p) for p in runs}
    cards = {p.meta.gpu for p in runs} if card_unseen else set()
    return PerfModel.load(catalog, leave_out=lambda p: p.meta.gpu in cards
                          or (law_source(p.meta) in ("measured-vllm", "measured-torch") and variant_key(p) in measured))


def held_out_runs(pm: PerfModel, catalog: Catalog, runs: Iterable[Profile], bundled: Iterable[Profile]) -> list[RunHeldOut]:
    """Score every vLLM profile of `runs` against the laws `pm` plans it with. A variant that `pm` fitted from a
    measured profile is an error (it would not be held out); torch-reference profiles of `bundled` with the same
    (model, GPU, tp, dtypes) are scored beside it (the question of bench/calibrate_prior.py part D, on a new run)."""
    torch_of = _torch_profiles(bundled)
    out: list[RunHeldOut] = []
    for target in runs:
        if law_source(target.meta) != "measured-vllm":
            continue
        m = target.meta
        if pm.is_measured(m.model, m.gpu, m.tp, m.weight_dtype, m.kv_dtype):
            raise ValueError(f"{label(target)}: the planner already fits this variant from a profile; not held out")
        vp = pm.get(m.model, m.gpu, m.tp, m.weight_dtype, m.kv_dtype)
        if vp is None:
            raise ValueError(f"{label(target)}: the planner has no laws for this variant (it does not fit the GPU)")
        moe = catalog.model(m.model).moe is not None
        mine = HeldOut(label(target), vp.source, *predict_errors(vp, target), moe=moe)
        ref = None
        if variant_key(target) in torch_of:
            vp_t = _torch_laws(torch_of[variant_key(target)], catalog, pm.ttft_overhead_ms)
            ref = HeldOut(label(torch_of[variant_key(target)]), "measured-torch", *predict_errors(vp_t, target), moe=moe)
        out.append(RunHeldOut(label(target), mine, ref))
    return out


def _torch_profiles(profiles: Iterable[Profile]) -> dict[VariantKey, Profile]:
    """The torch-reference profiles of `profiles` by variant (model, GPU, tp, dtypes)."""
    return {variant_key(p): p for p in profiles if law_source(p.meta) == "measured-torch"}


def _torch_laws(torch: Profile, catalog: Catalog, ttft_overhead_ms: float) -> VariantPerf:
    """A torch-reference profile's fitted laws with the TTFT overhead the planner gives non-vLLM laws."""
    return dataclasses.replace(fit_profile(torch, catalog)[0], ttft_overhead_ms=ttft_overhead_ms)


def fp8_cross_errors(profiles: list[Profile], catalog: Catalog, allreduce: dict[str, AllReduceTable] | None = None,
                     calibration: Calibration = DEFAULT_CALIBRATION) -> list[HeldOut]:
    """Each FP8-weight vLLM profile predicted by the prior calibrated (with `calibration`) on every other profile,
    the other cards' FP8 profiles included. Question 5 of the module doc."""
    out: list[HeldOut] = []
    for t in profiles:
        if law_source(t.meta) != "measured-vllm" or t.meta.weight_dtype != "fp8":
            continue
        pm = PerfModel.from_profiles(catalog, [p for p in profiles if p is not t], allreduce=allreduce, calibration=calibration)
        out.extend(_prior_errors(pm, [t]))
    return out


FP8_TUNING_GPU = "H200-141GB"
"""Rule F1's tuning target (written at stop 37 before its run): the H200's FP8 profile, predicted with the H100's in the
calibration; the H100's, predicted from the H200's (plan h1's run, bench/gpu_heldout.py), is held out of the choice."""
F1_MIN_GAIN_PCT, F1_MAX_DECODE_RISE_PCT, F1_MAX_LOMO_RISE_PCT = 2.0, 1.0, 0.5
"""Rule F1: the FP8 share is fitted where the tuning prefill median falls by >= 2 points, its decode median rises by
<= 1 point, and part B0's pooled leave-one-model-out medians rise by <= 0.5 point each."""


def fp8_share_rule(tune_off: HeldOut, tune_on: HeldOut, lomo_off: dict[str, float], lomo_on: dict[str, float]) -> bool:
    """Rule F1 (:data:`F1_MIN_GAIN_PCT` and its siblings) on the tuning row without and with the FP8 share and on the
    leave-one-model-out pooled stats of both."""
    off, on = tune_off.stats(), tune_on.stats()
    return bool(100 * (off["prefill_median"] - on["prefill_median"]) >= F1_MIN_GAIN_PCT
                and 100 * (on["decode_median"] - off["decode_median"]) <= F1_MAX_DECODE_RISE_PCT
                and all(100 * (lomo_on[k] - lomo_off[k]) <= F1_MAX_LOMO_RISE_PCT for k in ("prefill_median", "decode_median")))


def held_out_gpu_tp(profiles: list[Profile], catalog: Catalog, gpu: str, allreduce: dict[str, AllReduceTable] | None = None,
                    min_tp: int = 2, calibration: Calibration = DEFAULT_CALIBRATION) -> list[HeldOut]:
    """Calibrate without `gpu`'s profiles, predict its profiles of tp >= `min_tp`."""
    pm = PerfModel.from_profiles(catalog, [p for p in profiles if p.meta.gpu != gpu], allreduce=allreduce, calibration=calibration)
    return _prior_errors(pm, [p for p in profiles if p.meta.gpu == gpu and p.meta.tp >= min_tp])


def leave_one_gpu_out(profiles: list[Profile], catalog: Catalog, allreduce: dict[str, AllReduceTable] | None = None,
                      target_source: str = "measured-vllm", model_too: bool = False,
                      calibration: Calibration = DEFAULT_CALIBRATION) -> dict[str, list[HeldOut]]:
    """Hardware not seen: per GPU type with a `target_source` profile, the prior calibrated without every profile of
    that GPU (any source: Splitwise, torch reference, vLLM) predicting its `target_source` profiles; with `model_too`,
    without the predicted model's profiles on any GPU as well (a new model on a new card, the strictest case).
    GPU type -> rows. Why: the planner is asked for GPU types nobody profiled (a catalog entry's peak FLOP/s and
    bandwidth are all it has); leave-one-model-out keeps every card in the calibration and cannot say how far the
    prior carries to a card it has not seen."""
    targets = [p for p in profiles if law_source(p.meta) == target_source]
    out: dict[str, list[HeldOut]] = {}
    for gpu in sorted({p.meta.gpu for p in targets}):
        on_gpu = [p for p in targets if p.meta.gpu == gpu]
        groups = [[p for p in on_gpu if p.meta.model == m] for m in sorted({p.meta.model for p in on_gpu})] \
            if model_too else [on_gpu]
        rows: list[HeldOut] = []
        for group in groups:
            left_out = {p.meta.model for p in group} if model_too else set()
            calib = [p for p in profiles if p.meta.gpu != gpu and p.meta.model not in left_out]
            if not calib:
                continue
            pm = PerfModel.from_profiles(catalog, calib, allreduce=allreduce, calibration=calibration)
            rows.extend(_prior_errors(pm, group))
        out[gpu] = rows
    return out


def choose_calibration(profiles: list[Profile], catalog: Catalog, allreduce: dict[str, AllReduceTable] | None,
                candidates: Iterable[Calibration], target_source: str = "measured-vllm",
                ) -> tuple[Calibration, dict[Calibration, dict[str, float]]]:
    """Score each calibration (loss, MoE share) by :func:`leave_one_model_out` (calibrated as the planner does) and pick the
    lowest larger-of-the-two pooled medians (prefill, decode: issue 10's goal is both), then the lower larger p90,
    then the earlier candidate. Returns the choice and every candidate's pooled stats."""
    stats = {c: pooled(leave_one_model_out(profiles, catalog, allreduce, target_source, "engines", c)) for c in candidates}
    order = list(stats)

    def key(c: Calibration) -> tuple[float, float, int]:
        s = stats[c]
        return (round(max(s["prefill_median"], s["decode_median"]), 6), round(max(s["prefill_p90"], s["decode_p90"]), 6),
                order.index(c))

    return min(order, key=key), stats


def pooled(rows: list[HeldOut]) -> dict[str, float]:
    """Median and p90 over every point of every row, per phase."""
    if not rows:
        return {}
    both = HeldOut("all", "-", np.concatenate([r.prefill_rel_err for r in rows]), np.concatenate([r.decode_rel_err for r in rows]))
    return both.stats()


# --------------------------------------------------------------------------- the committed held-out set
RUNS_DIR = PROFILES_DIR / "runs"
BYO_CATALOG_DIR = PROFILES_DIR.parent / "examples" / "byo-model" / "catalog"
"""The catalog folder of the held-out models that are not in the bundled catalog (PLANNER_CATALOG)."""


def use_byo_catalog_unless_set() -> None:
    """Set PLANNER_CATALOG to BYO_CATALOG_DIR where no user catalog is set (the benches that read the imported
    models' profiles); a catalog the user set is kept."""
    if not os.environ.get(CATALOG_ENV, "").strip():
        os.environ[CATALOG_ENV] = str(BYO_CATALOG_DIR)
HELD_OUT_SET: tuple[tuple[str, str, str], ...] = (
    # (model, folder of prefill.csv, folder of decode.csv) under profiles/runs; all H200 tp1 bf16, vLLM 0.26.0
    ("qwen3-14b", "2026-12-02-s2/qwen3-14b-partial", "2026-12-03-s3/qwen3-14b"),
    ("llama-3.2-3b", "2026-12-03-s7/llama-3.2-3b-profile", "2026-12-03-s7/llama-3.2-3b-profile"),
    ("mistral-nemo-12b", *(2 * ("2026-12-03-s12/mistral-nemo-12b/H200-141GB/tp1/vllm",))),
    ("qwen2.5-14b", *(2 * ("2026-12-03-s14/qwen2.5-14b/H200-141GB/tp1/vllm",))),
    ("qwen1.5-moe-a2.7b", *(2 * ("2026-12-03-s14/qwen1.5-moe-a2.7b/H200-141GB/tp1/vllm",))),
)
"""Every real vLLM profile of a model that no calibration, law form or constant was chosen on (their sessions'
READMEs under profiles/runs say when and how each was measured). Mixtral-8x7B (s12) was here until it joined the
tuning set of the MoE share (TUNING_EXTRA_PROFILES)."""
HELD_OUT_SET_CARD: tuple[str, int] = ("H200-141GB", 1)
"""The GPU type and TP size every profile of HELD_OUT_SET was measured on."""
HELD_OUT_H100: tuple[str, ...] = (
    "2026-12-05-h2/qwen3-14b/H100-SXM-80GB/tp1-fp8/vllm",
    "2026-12-06-h3/llama-3.2-3b/H100-SXM-80GB/tp1/vllm",
    "2026-12-06-v3/qwen2.5-14b/H100-SXM-80GB/tp1/vllm",
    "2026-12-06-h4/mistral-nemo-12b/H100-SXM-80GB/tp1/vllm",
    "2026-12-06-h5/qwen3-14b/H100-SXM-80GB/tp1/vllm",
    "2026-12-06-h7/llama-3.2-3b/H100-SXM-80GB/tp1-fp8/vllm",
)
"""Profile folders under profiles/runs of the HELD_OUT_SET models measured on the H100 (plans h2-h7, each run under a rule
written before it, none calibrated on): `bench/gpu_heldout.py --held-out-set` scores them together."""
HELD_OUT_H100_TORCH: tuple[str, ...] = (
    "2026-12-06-d2/qwen3-14b/H100-SXM-80GB/tp1",
    "2026-12-06-d2/qwen2.5-14b/H100-SXM-80GB/tp1",
    "2026-12-06-d2/mistral-nemo-12b/H100-SXM-80GB/tp1",
)
"""Torch-reference profiles (profiles/backends/torch_ref.py) of three HELD_OUT_H100 variants on the H100 (plan d2, stop
43, rules D2b / D2c): the first pairs measured by both vLLM and the torch reference outside part D's four (rule D2).
Kept in profiles/runs, not bundled: no loaded variant changes by them. `bench/gpu_heldout.py --held-out-set` scores
them beside the prior."""
HELD_OUT_MOE_GRAPHS: tuple[str, str] = ("qwen1.5-moe-a2.7b", "2026-12-04-s16/qwen1.5-moe-a2.7b/H200-141GB/tp1-graphs4k/vllm")
"""The held-out MoE profiled again with CUDA graphs captured to 4,096 tokens (s16, `--cudagraph-capture-sizes ... 4096`):
at vLLM's default sizes its prefill steps of 513-4,096 tokens run eagerly, launch-bound at ~85-92 ms whatever their
FLOPs (planner/perf/graphs.py), which no roofline can predict; with graphs they follow the FLOPs. The prior's error on
it is quoted beside the default-graph one (:data:`PRIOR_HELD_OUT_MOE_GRAPHS`)."""
TUNING_EXTRA_PROFILES: tuple[str, ...] = ("2026-12-03-s12/mixtral-8x7b/H200-141GB/tp1/vllm",)
"""Profiles under profiles/runs (models of BYO_CATALOG_DIR) added to the bundled ones in the tuning set of the MoE share
(planner.perf.prior.DEFAULT_CALIBRATION, bench/calibrate_prior.py part B0b): a second MoE, so that leaving one model
out still leaves an MoE to fit the share on. Not in the planner's calibration (the bundled profiles only)."""


@dataclass(frozen=True)
class PriorAccuracy:
    """Median |relative error| of the roofline prior on held-out models, per phase and kind of model."""

    dense_prefill: float
    dense_decode: float
    moe_prefill: float
    moe_decode: float
    models: int
    moe_models: int

    @property
    def dense_models(self) -> int:
        return self.models - self.moe_models

    def of_kind(self, moe: bool) -> tuple[int, float, float]:
        """(held-out models, prefill median, decode median) of the MoE or the dense models."""
        if moe:
            return self.moe_models, self.moe_prefill, self.moe_decode
        return self.dense_models, self.dense_prefill, self.dense_decode


PRIOR_HELD_OUT = PriorAccuracy(dense_prefill=0.061, dense_decode=0.031, moe_prefill=0.53, moe_decode=0.062, models=5,
                               moe_models=1)
"""What :func:`held_out_set_errors` gives with the bundled profiles (bench/heldout_model.py --set; a test holds the
two together): the planner's notes on pools planned from the prior quote it. (Stop 37: the H100 vLLM profiles joined
the calibration; dense 7.3 / 5.5% -> 6.5 / 2.5%, the MoE 53.2 / 2.8% -> 49.3 / 5.6%. Stop 38: plan h2's FP8 profiles of
qwen3-32b and the MoE joined it, 6.2 / 2.2%, and rule F2 fitted the FP8 share, 8.7 / 2.2%, the MoE 51.1 / 6.3%: these
five models are all BF16, whose prefill the share no longer lets the FP8 rows pull; the held-out FP8 model, qwen3-14b
on the H100, went 22.6 / 6.1% -> 6.6 / 5.1%. Stop 39: rule V1 left the MoE's FP8 profile out (below its roofline
floor, planner/perf/floor.py): 8.6 / 2.5%, the MoE 50.4 / 5.6%; qwen3-14b FP8 on the H100 6.6 / 5.6%. Stop 40: the
re-measured FP8 MoE on the H100 is not calibrated on (rule V2b: unchanged); plan h3's FP8-KV llama-3.1-8b on the H100
joined the calibration (rule H3): 8.1 / 2.5%, the MoE 50.7 / 5.7%. Stop 41: rule V3 took the H100's bf16 MoE out of
it, measured on vLLM's default fused-MoE tiles: 8.3 / 2.7%, the MoE 52.3 / 5.5%. Stop 42: rule B2 made the
calibration's loss Cauchy at 5% (chosen on leave-one-model-out): 6.1 / 3.1%, the MoE 53.0 / 6.2%.)"""


PRIOR_HELD_OUT_MOE_GRAPHS = (0.129, 0.076)
"""(prefill, decode) median |relative error| of the prior on HELD_OUT_MOE_GRAPHS (:func:`held_out_moe_graphs_errors`;
bench/heldout_model.py --set prints it; a test holds the two together): quoted by the plan's note on an MoE pool
planned from the prior, beside PRIOR_HELD_OUT's default-graph figure (stop 41: 10.4 / 7.1%; rule B2's Cauchy loss at stop
42: 12.9 / 7.6%)."""


@dataclass(frozen=True)
class GpuHeldOut:
    """Median |relative error| of the prior on the profiles of a GPU type left out of its calibration."""

    gpu: str
    min_tp: int
    prefill: float
    decode: float


PRIOR_HELD_OUT_GPU = GpuHeldOut("H100-SXM-80GB", 2, prefill=0.097, decode=0.069)
""":func:`held_out_gpu_tp` on the bundled profiles (bench/calibrate_prior.py part C: Splitwise's H100 tp2-8, the
prior calibrated without any H100 profile; a test holds the two together): quoted by the planner's notes on pools of
a GPU type no profile measured."""


PRIOR_CARD_AND_MODEL_UNSEEN = (0.118, 0.087)
"""(prefill, decode) median |relative error| of the prior on every bundled vLLM profile, each predicted with its card
and its model both left out of the calibration (:func:`leave_one_gpu_out` with model_too, pooled over the cards;
bench/calibrate_prior.py part C2' prints it; a test holds the two together): quoted beside PRIOR_HELD_OUT_GPU by the
planner's notes on pools of a GPU type no profile measured (stop 42)."""


def _prior_row(pm: PerfModel, catalog: Catalog, model: str, pdir: str, ddir: str, gpu: str, tp: int,
               suffix: str = "") -> HeldOut:
    """The prior of `pm` for `model` against the prefill.csv of RUNS_DIR/pdir and the decode.csv of RUNS_DIR/ddir; a
    model with a profile in `pm`'s calibration is an error, not a held-out model."""
    if pm.is_measured(model, gpu, tp):
        raise ValueError(f"{model} on {gpu} tp{tp} has a profile in the calibration set: not a held-out model")
    vp = pm.get(model, gpu, tp)
    if vp is None:
        raise ValueError(f"no prior for {model} on {gpu} tp{tp}")
    pre = central_points(pd.read_csv(RUNS_DIR / pdir / "prefill.csv"), ["isl", "batch"], "ttft_ms")
    dec = central_points(pd.read_csv(RUNS_DIR / ddir / "decode.csv"), ["batch", "context_tokens"], "itl_ms")
    moe = catalog.model(model).moe is not None
    return HeldOut(f"{model} ({'moe' if moe else 'dense'}{suffix})", "prior", *rel_errors(vp, pre, dec), moe=moe)


def held_out_set_errors(pm: PerfModel, catalog: Catalog) -> list[HeldOut]:
    """The prior of `pm` against each model of HELD_OUT_SET, on the card it was measured on (HELD_OUT_SET_CARD; the
    catalog must know them all: the bundled one with BYO_CATALOG_DIR over it)."""
    gpu, tp = HELD_OUT_SET_CARD
    return [_prior_row(pm, catalog, model, pdir, ddir, gpu, tp) for model, pdir, ddir in HELD_OUT_SET]


def held_out_moe_graphs_errors(pm: PerfModel, catalog: Catalog) -> HeldOut:
    """The prior of `pm` against HELD_OUT_MOE_GRAPHS (the held-out MoE served with CUDA graphs to 4,096 tokens), on the
    card it was measured on (HELD_OUT_SET_CARD)."""
    model, pdir = HELD_OUT_MOE_GRAPHS
    gpu, tp = HELD_OUT_SET_CARD
    return _prior_row(pm, catalog, model, pdir, pdir, gpu, tp, suffix=", graphs to 4,096")


def prior_accuracy(rows: list[HeldOut]) -> PriorAccuracy:
    """Pooled medians of :func:`held_out_set_errors`' rows, dense and MoE apart."""
    dense, moe = pooled([r for r in rows if not r.moe]), pooled([r for r in rows if r.moe])
    return PriorAccuracy(round(dense["prefill_median"], 3), round(dense["decode_median"], 3), round(moe["prefill_median"], 3),
                         round(moe["decode_median"], 3), len(rows), sum(r.moe for r in rows))
