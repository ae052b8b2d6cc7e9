"""P:D check: the planner's predictions against a measured 1P1D pair profile (planner/perf/pairprofile.py).

Two tables:

1. KV hand-off per ISL: measured (median of the unloaded repeats of handoff.csv), the law fitted on
   them (planner/perf/handoff.py) and the planner's prior (catalog link + 2 ms), with relative errors.
2. Latency under load (load.csv): for each measured rate, the predicted TTFT and ITL percentiles
   (planner/planning/capacity.py `latency`) of the 1P1D pair (prefill role with the fitted hand-off, decode
   role) and of one aggregated replica (mixed role) against the measured ones; and, per rate and
   percentile, whether the planner and the measurement agree on which of the two serves that load
   with the lower ITL and the lower TTFT (the P:D decision in miniature; within 5% is a tie, not a
   disagreement).

The performance laws come from `--profiles` (default: the bundled profiles/data), for the pair's
model on its prefill GPU/tp (prefill, mixed) and decode GPU/tp (decode).

    .venv/bin/python bench/pd_check.py --pair profiles/data/llama-3.1-8b/H200-141GB/pair-tp1-tp1

Last line: ``RESULT handoff_fit_max_err=... handoff_prior_max_err=... ttft_mape_pd=... itl_mape_pd=...
ttft_mape_mixed=... itl_mape_mixed=... decision_agree=k/n`` (errors as fractions; MAPE over rates and
percentiles p50/p90/p99).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from planner.planning.capacity import latency  # noqa: E402
from planner.io.errors import PlannerError  # noqa: E402
from planner.perf.handoff import HandoffFit, compare_with_prior, fit_pair  # noqa: E402
from planner.perf.pairprofile import PairProfile, load_pair_profile  # noqa: E402
from planner.perf.laws import PerfModel, VariantPerf, quiet_extrapolation  # noqa: E402

PERCENTILES = (50, 90, 99)
TIE_REL = 0.05
"""Latencies within 5% of each other are a tie: no decision (about the run-to-run spread of a measured
percentile over a few hundred requests; a planner choosing either is not wrong)."""


def pair_perfs(pm: PerfModel, prof: PairProfile, fit: HandoffFit | None) -> tuple[VariantPerf, VariantPerf, VariantPerf]:
    """(prefill with the fitted hand-off, decode, mixed) laws of the pair's variants."""
    m = prof.meta
    pre, dec = pm.get(m.model, m.gpu, m.prefill_tp), pm.get(m.model, m.decode_gpu, m.decode_tp)
    if pre is None or dec is None:
        raise PlannerError(f"{prof.path}: no performance law for {m.model} on {m.gpu}/tp{m.prefill_tp} or "
                           f"{m.decode_gpu}/tp{m.decode_tp} (does the model fit?)")
    mixed = pre
    if fit is not None and math.isfinite(fit.link_gb_s):
        pre = dataclasses.replace(pre, kv_link_gb_s=fit.link_gb_s * pre.kv_bytes_per_token / fit.kv_bytes_per_token,
                                  kv_fixed_ms=fit.fixed_ms)
    return pre, dec, mixed


def handoff_table(prof: PairProfile, fit: HandoffFit, prior: VariantPerf) -> pd.DataFrame:
    """Per ISL: measured, fitted and prior hand-off (ms) and relative errors."""
    return compare_with_prior(fit, prior.kv_transfer_ms)


def load_table(prof: PairProfile, pre: VariantPerf, dec: VariantPerf, mixed: VariantPerf) -> pd.DataFrame:
    """One row per (mode, rate, percentile): predicted and measured TTFT and ITL."""
    rows = []
    assert prof.load is not None
    for r in prof.load.itertuples(index=False):
        for q in PERCENTILES:
            with quiet_extrapolation():
                if r.mode == "pd":
                    ttft = latency(pre, "prefill", r.isl, r.osl, r.rate_rps, q).ttft_ms
                    itl = latency(dec, "decode", r.isl, r.osl, r.rate_rps, q).itl_ms
                else:
                    lat = latency(mixed, "mixed", r.isl, r.osl, r.rate_rps, q)
                    ttft, itl = lat.ttft_ms, lat.itl_ms
            rows.append({"mode": r.mode, "rate_rps": r.rate_rps, "q": q,
                         "ttft_pred_ms": ttft, "ttft_meas_ms": getattr(r, f"ttft_ms_p{q}"),
                         "itl_pred_ms": itl, "itl_meas_ms": getattr(r, f"itl_ms_p{q}")})
    t = pd.DataFrame(rows)
    t["ttft_err"] = (t.ttft_pred_ms - t.ttft_meas_ms) / t.ttft_meas_ms
    t["itl_err"] = (t.itl_pred_ms - t.itl_meas_ms) / t.itl_meas_ms
    return t


def decisions(t: pd.DataFrame) -> pd.DataFrame:
    """Per (rate, percentile, metric) present for both modes: which is lower ('tie' within TIE_REL),
    predicted vs measured; `agree` unless one says pd and the other mixed."""
    out = []
    for (rate, q), g in t.groupby(["rate_rps", "q"]):
        if set(g["mode"]) != {"pd", "mixed"}:
            continue
        pd_row, mx_row = g[g["mode"] == "pd"].iloc[0], g[g["mode"] == "mixed"].iloc[0]
        for metric in ("ttft", "itl"):
            pred = _lower(pd_row[f"{metric}_pred_ms"], mx_row[f"{metric}_pred_ms"])
            meas = _lower(pd_row[f"{metric}_meas_ms"], mx_row[f"{metric}_meas_ms"])
            out.append({"rate_rps": rate, "q": q, "metric": metric, "predicted_lower": pred, "measured_lower": meas,
                        "agree": pred == meas or "tie" in (pred, meas)})
    return pd.DataFrame(out, columns=["rate_rps", "q", "metric", "predicted_lower", "measured_lower", "agree"])


def _lower(pd_ms: float, mixed_ms: float) -> str:
    if abs(pd_ms - mixed_ms) <= TIE_REL * min(pd_ms, mixed_ms):
        return "tie"
    return "pd" if pd_ms < mixed_ms else "mixed"


def mape(s: pd.Series) -> float:
    s = s.replace([math.inf, -math.inf], math.nan).dropna()
    return float(s.abs().mean()) if len(s) else math.nan


def run(pair: Path, profiles: Path | None) -> dict[str, object]:
    prof = load_pair_profile(pair)
    pm = PerfModel.load(profiles_dir=profiles)
    fit = fit_pair(prof)
    m = prof.meta
    prior = pm.get(m.model, m.gpu, m.prefill_tp)
    if prior is None:
        raise PlannerError(f"{pair}: no performance law for {m.model}/{m.gpu}/tp{m.prefill_tp}")
    prior = dataclasses.replace(prior, kv_link_gb_s=pm.catalog.gpu(m.gpu).kv_link_gb_s * m.prefill_tp,
                                kv_fixed_ms=VariantPerf.__dataclass_fields__["kv_fixed_ms"].default)  # the formula, not a fit
    ho = handoff_table(prof, fit, prior)
    res: dict[str, object] = {"handoff": ho, "fit": fit,
                              "handoff_fit_max_err": float(ho.fitted_rel_err.abs().max()),
                              "handoff_prior_max_err": float(ho.prior_rel_err.abs().max())}
    if prof.load is not None:
        pre, dec, mixed = pair_perfs(pm, prof, fit)
        lt = load_table(prof, pre, dec, mixed)
        dc = decisions(lt)
        res.update(load=lt, decisions=dc,
                   ttft_mape_pd=mape(lt[lt["mode"] == "pd"].ttft_err), itl_mape_pd=mape(lt[lt["mode"] == "pd"].itl_err),
                   ttft_mape_mixed=mape(lt[lt["mode"] == "mixed"].ttft_err), itl_mape_mixed=mape(lt[lt["mode"] == "mixed"].itl_err),
                   decision_agree=f"{int(dc.agree.sum())}/{len(dc)}")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", type=Path, required=True, help="pair profile directory (meta.yaml, handoff.csv[, load.csv])")
    ap.add_argument("--profiles", type=Path, default=None, help="profile root for the laws (default: bundled profiles/data)")
    a = ap.parse_args(argv)
    try:
        res = run(a.pair, a.profiles)
    except PlannerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    fit: HandoffFit = res["fit"]  # type: ignore[assignment]
    pd.set_option("display.width", 200)
    print(f"KV hand-off of {a.pair}: fitted fixed {fit.fixed_ms:.2f} ms + link {fit.link_gb_s:.2f} GB/s "
          f"({fit.kv_bytes_per_token} B/token); median of the repeats per ISL")
    print(res["handoff"].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    keys = ["handoff_fit_max_err", "handoff_prior_max_err"]
    if "load" in res:
        print("\nLatency under load: predicted (planner/planning/capacity.py) vs measured, per mode, rate and percentile")
        print(res["load"].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print("\nWhich serves the load with the lower latency (1P1D pair vs one mixed replica)")
        print(res["decisions"].to_string(index=False))
        keys += ["ttft_mape_pd", "itl_mape_pd", "ttft_mape_mixed", "itl_mape_mixed", "decision_agree"]
    print("RESULT " + " ".join(f"{k}={res[k]:.4f}" if isinstance(res[k], float) else f"{k}={res[k]}" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
