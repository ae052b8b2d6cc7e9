"""``planner profile show DIR``: the fitted laws of a profile, their residuals, and a PNG.

The laws are the planner's own fit (:func:`planner.perf.laws.fit_profile`: its floor, knee, MoE and overhead terms),
so what this shows is what ``planner solve`` will use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from planner.io.catalog import Catalog
from planner.io.errors import InputError
from planner.io.plot_axes import label_log_axis
from planner.perf.fit import FitReport, experts_touched
from planner.perf.laws import VariantPerf, fit_profile, measured_ttft_overhead
from planner.perf.profiledata import Profile, central_points, law_source, load_profile
from profiles.format import META_FILE, VLLM_SUBDIR, interrupted_points, interrupted_run_text

if TYPE_CHECKING:
    import numpy.typing as npt
    from rich.console import Console


@dataclass(frozen=True)
class ProfileFit:
    """A profile's fitted laws and per-point residuals (pure data, for tables and plots)."""

    profile: Profile
    prefill_coef: tuple[float, float, float]
    decode_coef: tuple[float, ...]
    """(alpha, beta, gamma) or, for a MoE model, (alpha, beta, gamma, moe) (planner.perf.fit.fit_decode_moe)."""
    prefill_report: FitReport
    decode_report: FitReport
    prefill_points: pd.DataFrame
    """isl, batch, ttft_ms (measured), fit_ms, rel_err"""
    decode_points: pd.DataFrame
    """batch, context_tokens, itl_ms (measured), fit_ms, rel_err"""
    law_source: str = "measured"
    """Which profile the planner uses for this variant: measured-vllm, measured-torch, splitwise, measured."""
    ttft_overhead_ms: float = 0.0
    """Fitted per-request TTFT overhead (vLLM profiles; part of prefill_coef[0] here), else 0."""
    client_ttft: bool = False
    route_share: float = 0.0
    used_by_planner: bool = True
    """False where the variant's vllm/ profile exists beside this one: the planner uses that."""
    """k/E of a MoE model (the decode law's 4th term), 0 for dense models."""
    """Whether the prefill rows are client TTFTs (overhead included) rather than engine step times."""
    others: tuple[str, ...] = ()
    """Other profiles of the same variant that the planner does not use (their paths and sources)."""
    perf: VariantPerf | None = None
    """The planner's laws of this profile (planner.perf.laws.fit_profile): the floor and knee terms beside the
    coefficients above; the residuals and plotted lines are its."""


def prefill_law_ms(coef: tuple[float, float, float], isl: npt.ArrayLike,
                   batch: npt.ArrayLike) -> npt.NDArray[np.float64]:
    a, b, c = coef
    isl_a = np.asarray(isl, dtype=np.float64)
    batch_a = np.asarray(batch, dtype=np.float64)
    return a + b * batch_a * isl_a + c * batch_a * isl_a * isl_a


def decode_law_ms(coef: tuple[float, ...], batch: npt.ArrayLike, context: npt.ArrayLike,
                  route_share: float = 0.0) -> npt.NDArray[np.float64]:
    al, be, ga = coef[:3]
    batch_a = np.asarray(batch, dtype=np.float64)
    context_a = np.asarray(context, dtype=np.float64)
    moe = coef[3] * experts_touched(batch_a, route_share) if len(coef) > 3 else 0.0
    return al + be * batch_a + ga * batch_a * context_a + moe


def fit_profile_dir(directory: str | os.PathLike[str], own: bool = False) -> ProfileFit:
    """Load and validate DIR, fit both laws, compute residuals per measured point.

    DIR's ``vllm/`` profile is shown where DIR holds one, the one the planner and `planner profile rates DIR` use
    (found in QA: `show tp1` showed the torch profile where `rates tp1` fitted tp1/vllm); ``own`` shows DIR's own
    profile instead (flagged as not used where the vllm/ one exists). The lines say which the planner uses."""
    d = Path(directory)
    others: tuple[str, ...] = ()
    used = True
    if (d / VLLM_SUBDIR / META_FILE).is_file():
        if (d / META_FILE).is_file() and own:  # DIR's own profile, asked for; the planner prefers the vllm/ one
            used = False
            others = (f"{d / VLLM_SUBDIR} (measured-vllm): the planner uses this one instead",)
        else:  # the vllm/ one, naming DIR's own profile, if any, as not used
            d = d / VLLM_SUBDIR
            if (d.parent / META_FILE).is_file():
                others = (f"{d.parent} ({law_source(load_profile(d.parent).meta)}): not used, this vllm/ profile is "
                          "preferred (--own shows it)",)
    elif d.name == VLLM_SUBDIR and (d.parent / META_FILE).is_file():
        others = (f"{d.parent} ({law_source(load_profile(d.parent).meta)}): not used, this vllm/ profile is preferred",)
    elif d.is_dir() and not (d / META_FILE).is_file():
        for run_dir in (d, d / VLLM_SUBDIR):  # found in QA: an interrupted run's said "meta.yaml: file not found"
            counts = interrupted_points(run_dir)
            if counts is not None:
                raise InputError(str(run_dir), None, interrupted_run_text(counts))
        below = sorted(str(m.parent) for m in d.rglob(META_FILE))  # a model's or a GPU's folder, not a profile's
        if below:
            shown = ", ".join(below[:6]) + (f" and {len(below) - 6} more" if len(below) > 6 else "")
            raise InputError(str(d), None, f"is not a profile directory (no {META_FILE}); "
                             f"the profiles under it: {shown}")
    prof = load_profile(d)
    if used and law_source(prof.meta) == "measured-torch":
        from planner.perf import laws

        vllm_root = _vllm_profiles_root(d)
        if vllm_root is not None and laws.TORCH_ONLY_LAWS == "prior":  # the loader's rule (PerfModel.from_profiles)
            used = False
            others = (f"the roofline prior calibrated on the vLLM profiles under {vllm_root}: the planner uses it "
                      "instead (a torch-reference profile is used only where no vLLM profile exists; "
                      "bench/calibrate_prior.py part D says why)",)
    pre = central_points(prof.prefill, ["isl", "batch"], "ttft_ms")
    dec = central_points(prof.decode, ["batch", "context_tokens"], "itl_ms")
    # the planner's own fit (floor, knee, MoE and overhead terms included; found by hand: a plain 3-term refit here
    # showed 4.1% median prefill error where the planner's law missed by 0.08%, and the bundled H200 8B profile's decode
    # at 26.5% worst where the planner's knee law missed by 0.9%)
    vp, prep, drep = fit_profile(prof, Catalog.load())
    share = vp.moe_route_share
    src = law_source(prof.meta)
    client = src == "measured-vllm" and measured_ttft_overhead(prof.prefill) is None  # client TTFTs: overhead in rows
    over = vp.ttft_overhead_ms if src == "measured-vllm" else 0.0
    pc = (vp.prefill_a_ms, vp.prefill_b_ms_per_token, vp.prefill_c_ms_per_token2)
    dc: tuple[float, ...] = (vp.decode_alpha_ms, vp.decode_beta_ms_per_seq, vp.decode_gamma_ms_per_token) + (
        (vp.decode_moe_ms,) if share > 0 else ())
    # the pass the planner prices, the MoE token table's ratio included where the variant has one
    pre = pre.assign(fit_ms=[over * client + vp.prefill_pass_ms(float(b * i), float(b * i * i))
                             for i, b in zip(pre.isl, pre.batch, strict=True)])
    pre = pre.assign(rel_err=(pre.fit_ms - pre.ttft_ms) / pre.ttft_ms)
    dec = dec.assign(fit_ms=[vp.decode_step_ms(float(b), float(c)) for b, c in zip(dec.batch, dec.context_tokens,
                                                                                   strict=True)])
    dec = dec.assign(rel_err=(dec.fit_ms - dec.itl_ms) / dec.itl_ms)
    return ProfileFit(prof, pc, dc, prep, drep, pre, dec, law_source=src, ttft_overhead_ms=over, others=others,
                      client_ttft=client, route_share=share, used_by_planner=used, perf=vp)


def _vllm_profiles_root(d: Path) -> Path | None:
    """The first profile root with a vLLM profile among those the planner loads with this one: DIR's own root
    (``<root>/<model>/<gpu>/tp<N>``) and the bundled profiles/data; None when neither holds one."""
    from planner.perf.laws import DEFAULT_PROFILES_DIR

    roots = ([d.parents[2]] if len(d.parents) > 2 else []) + [Path(DEFAULT_PROFILES_DIR)]
    return next((r for r in roots if any(r.glob(f"*/*/*/{VLLM_SUBDIR}/{META_FILE}"))), None)


def law_lines(fit: ProfileFit) -> list[str]:
    a, b, c = fit.prefill_coef
    al, be, ga = fit.decode_coef[:3]
    moe = (f" + {fit.decode_coef[3]:.4g} ms x (1 - (1 - {fit.route_share:.4g})^batch) (MoE experts touched)"
           if len(fit.decode_coef) > 3 else "")
    vp = fit.perf
    floor = vp.prefill_floor_ms if vp is not None else 0.0
    work = f"{b:.4g} ms/token x sum(isl) + {c:.4g} ms/token^2 x sum(isl^2)"
    knee = (f" + {vp.decode_knee_ms_per_seq:.4g} ms/seq x max(0, batch - {vp.decode_knee_batch:g})"
            if vp is not None and vp.decode_knee_ms_per_seq > 0 and vp.decode_knee_batch > 0 else "")
    law = f"{a:.4g} ms + " + (f"max({floor:.4g} ms, {work})" if floor > 0 else work)
    table = vp is not None and bool(vp.prefill_table_tokens)
    err = fit.prefill_points["rel_err"].abs()  # of the pass the planner prices (the table's ratio included)
    return [
        "prefill  t = " + (f"({law}) x the measured token table's ratio at sum(isl) ({len(vp.prefill_table_tokens)} "
                           "sizes, MoE)" if table and vp is not None else law) + "   "
        f"({fit.prefill_report.n_points} points, median |err| {float(err.median()):.1%}, max {float(err.max()):.1%}"
        + (f"; the law alone {fit.prefill_report.median_rel_err:.1%}" if table else "") + ")",
        f"decode   t = {al:.4g} ms + {be:.4g} ms/seq x batch + {ga:.4g} ms/token x batch x context{moe}{knee}   "
        f"({fit.decode_report.n_points} points, median |err| {fit.decode_report.median_rel_err:.1%}, "
        f"max {fit.decode_report.max_rel_err:.1%})",
        f"KV capacity {fit.profile.meta.kv_capacity_tokens:,} tokens; backend {fit.profile.meta.backend}; "
        f"engine {fit.profile.meta.engine}"
        + (f" on {fit.profile.meta.device_name}" if fit.profile.meta.device_name else ""),
        ("laws used by the planner: " if fit.used_by_planner else "NOT the laws the planner uses (see below): ")
        + f"{fit.law_source} ({fit.profile.path}); weights {fit.profile.meta.weight_dtype}, "
        f"KV cache {fit.profile.meta.kv_dtype}"
        + (f"; TTFT = {fit.ttft_overhead_ms:.3g} ms per-request overhead (frontend, no GPU time"
           + (", fitted from client TTFTs" if fit.client_ttft else ", measured: ttft_e2e_ms - ttft_ms")
           + ") + the prefill law"
           if fit.law_source == "measured-vllm" else ""),
        *(f"also for this variant: {o}" for o in fit.others),
        *([f"not in the roofline prior's calibration (meta.yaml calibrate: false): "
           f"{fit.profile.meta.calibrate_note or 'no reason given'}"]
          if not fit.profile.meta.calibrate else []),
        *_kernel_lines(fit.profile),
    ]


def _kernel_lines(p: Profile) -> list[str]:
    """For an MoE profile of a vLLM version whose fused-MoE tables are known (planner.perf.kernel_tables, rule V3):
    whether the engine ran tuned or default tiles."""
    from planner.io.catalog import Catalog
    from planner.perf.kernel_tables import profile_kernel_tuning

    t = profile_kernel_tuning(p.meta, Catalog.load())
    return [f"fused-MoE kernels: {t.note}"] if t is not None and t.tuned is not None else []


def save_png(fit: ProfileFit, path: str | os.PathLike[str]) -> Path:
    """Measured points (markers) against the fitted laws (lines): prefill TTFT vs isl per batch,
    decode ITL vs batch per context; log-log axes, both panels in one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = fit.profile.meta
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    pre, dec = fit.prefill_points, fit.decode_points
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (batch, g) in enumerate(pre.groupby("batch")):
        col = colors[i % len(colors)]
        xs = np.geomspace(g.isl.min(), g.isl.max(), 64)
        ax1.plot(g.isl, g.ttft_ms, "o", color=col, label=f"batch {batch}")
        ys = (np.array([fit.perf.prefill_pass_ms(float(batch * x), float(batch * x * x)) for x in xs])
              if fit.perf is not None else prefill_law_ms(fit.prefill_coef, xs, batch))
        ys = fit.ttft_overhead_ms * fit.client_ttft + ys
        ax1.plot(xs, ys, "-", color=col, alpha=0.7)
    ax1.set(xscale="log", yscale="log", xlabel="input tokens per prompt (isl)", ylabel="prefill time (ms)",
            title=f"prefill: median |err| {float(pre['rel_err'].abs().median()):.1%}")
    ax1.legend(fontsize=8)
    for i, (ctx, g) in enumerate(dec.groupby("context_tokens")):
        col = colors[i % len(colors)]
        xs = np.geomspace(g.batch.min(), g.batch.max(), 64)
        ax2.plot(g.batch, g.itl_ms, "o", color=col, label=f"context {ctx}")
        dys = (np.array([fit.perf.decode_step_ms(float(x), float(ctx)) for x in xs]) if fit.perf is not None
               else decode_law_ms(fit.decode_coef, xs, ctx, fit.route_share))
        ax2.plot(xs, dys, "-", color=col, alpha=0.7)
    ax2.set(xscale="log", yscale="log", xlabel="decode batch (sequences)", ylabel="decode step / ITL (ms)",
            title=f"decode: median |err| {fit.decode_report.median_rel_err:.1%}")
    ax2.legend(fontsize=8)
    for ax in (ax1, ax2):
        label_log_axis(ax.xaxis, *ax.get_xlim())
        label_log_axis(ax.yaxis, *ax.get_ylim())
    where = m.device_name or m.engine
    fig.suptitle(f"{m.model} on {m.gpu} tp{m.tp} ({m.backend}" + (f", {where}" if where != m.backend else "")
                 + ") - points measured, lines fitted")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, out)
    return out


def graph_advice(profile: Profile) -> str | None:
    """What planner.perf.graphs says of the profile as the planner fits it (an MoE's prefill carrying vLLM's default
    CUDA-graph limit), or None; None too where the catalog does not know the model (the plot and tables still show)."""
    from planner.io.catalog import Catalog
    from planner.io.errors import PlannerError
    from planner.perf.graphs import graph_limit
    from planner.perf.laws import fit_profile

    try:
        vp, _, _ = fit_profile(profile, Catalog.load())
    except (PlannerError, KeyError):
        return None
    g = graph_limit(vp)
    return g.advice() if g is not None else None


def render(fit: ProfileFit, console: Console) -> None:
    """Print the laws and both residual tables with Rich."""
    from rich.table import Table

    for line in law_lines(fit):
        console.print(line)
    t = Table(title="prefill residuals (fit - measured) / measured")
    for c in ("isl", "batch", "measured ms", "fitted ms", "rel err"):
        t.add_column(c, justify="right")
    for r in fit.prefill_points.itertuples():
        t.add_row(str(r.isl), str(r.batch), f"{r.ttft_ms:.2f}", f"{r.fit_ms:.2f}", f"{r.rel_err:+.1%}")
    console.print(t)
    t = Table(title="decode residuals (fit - measured) / measured")
    for c in ("batch", "context", "measured ms", "fitted ms", "rel err"):
        t.add_column(c, justify="right")
    for r in fit.decode_points.itertuples():
        t.add_row(str(r.batch), str(r.context_tokens), f"{r.itl_ms:.3f}", f"{r.fit_ms:.3f}", f"{r.rel_err:+.1%}")
    console.print(t)
