"""Rule 60-B's check: how a P/D prefill pool's mix of classes batches at saturation (capacity.MIX_BATCHING), read by
the plan's per-class TTFT p90 against the simulator's on the same plan.

Cases are the P/D cases of `bench/mixed_sizing.py`'s grid (32: two classes of one model, a short one with a tight
TTFT SLO and a long one; chat 500 / 800 tokens at TTFT 150 / 300 ms, doc 4,000 / 8,000, chat 4 / 12 req/s, doc 1 /
3 req/s), each planned class by class on `--gpu` (`planner solve` without verification: the sizing does not read the
form, only the plan's predictions do), then simulated at each of `--seeds` for `--duration` s (planner.api.simulate,
Poisson); per class the simulated TTFT p90 is pooled over the seeds. Per form, the plan's predicted TTFT p90 of each
class against it: the pooled MAPE, and the binding class's (larger simulated p90 / SLO) worst error. The column
"p90 less KV wait" is the simulated p90 of TTFT minus each request's wait for decode admission (the part the
prediction does not count, rule 59-K), to read which errors are the prefill pool's.

    .venv/bin/python bench/pd_mix_prediction.py                              # rule 60-B's tuning grids, ~3 min
    .venv/bin/python bench/pd_mix_prediction.py --models qwen3-32b           # held out

Last line: ``RESULT cases=<n> classes=<n>`` then per form F ``mape_F=<%> bind_worst_F=<%>`` (pooled over the models'
cases), then per model M and form ``mape_F_M=<%> bind_worst_F_M=<%>``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import track
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_input import fail, known_gpu, known_model, seed_list, simulated_seconds  # noqa: E402
from mixed_sizing import GRID, fleet_of, plan, workload  # noqa: E402

from planner.api import simulate  # noqa: E402
from planner.io.catalog import Catalog  # noqa: E402
from planner.io.schema import Plan  # noqa: E402
from planner.perf.laws import PerfModel, quiet_extrapolation  # noqa: E402
from planner.planning import capacity  # noqa: E402

FORMS = capacity.MIX_BATCHING_FORMS  # capacity.MIX_BATCHING's candidates (rule 60-B: B0, B1, B2; 60-B3; 61-B)


def predicted_ttft_ms(p: Plan) -> dict[str, float]:
    """The plan's predicted TTFT of each class, at its SLO's percentile."""
    return {cid: float(cp.ttft_ms) for mp in p.models.values() for cid, cp in mp.predicted.items()
            if cp.ttft_ms is not None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="llama-3.1-8b,qwen3-30b-a3b",
                    help="comma list of catalog models, any case (default: rule 60-B's tuning ones)")
    ap.add_argument("--gpu", default="H100-SXM-80GB", help="catalog GPU type, any case")
    ap.add_argument("--seeds", default="1,2", help="simulation seeds, comma list")
    ap.add_argument("--duration", type=float, default=600.0, help="simulated seconds per seed")
    ap.add_argument("--forms", default=",".join(FORMS), help=f"comma list of {', '.join(FORMS)}")
    ap.add_argument("--limit", type=int, default=None, help="the first N cases of each model only (a smoke run)")
    args = ap.parse_args(argv)
    seeds = seed_list(args.seeds)
    simulated_seconds(args.duration)
    forms = [f.strip() for f in args.forms.split(",") if f.strip()]
    if not forms or any(f not in FORMS for f in forms):
        fail(f"--forms: expected a comma list of {', '.join(FORMS)}, got {args.forms!r}")
    if args.limit is not None and args.limit < 1:
        fail(f"--limit: expected an integer >= 1, got {args.limit}")
    cat = Catalog.load()
    gpu = known_gpu(cat, args.gpu)
    models = [known_model(cat, m.strip(), "--models") for m in args.models.split(",") if m.strip()]
    pm = PerfModel.load()
    for m in models:
        if pm.get(m, gpu, 1) is None:
            fail(f"--models/--gpu: {m} has no performance law on {gpu} at tp1")
    cases = [g for g in GRID if g[5] == "pd"][:args.limit]
    con = Console(width=220)
    rows: list[dict[str, object]] = []
    for model in models:
        for case in track(cases, description=f"{model} cases", console=con):
            chat_isl, chat_ttft, doc_isl, chat_rps, doc_rps, _ = case
            wl = workload(model, chat_isl, chat_ttft, doc_isl, chat_rps, doc_rps)
            fleet = fleet_of(gpu, "pd")
            preds: dict[str, dict[str, float]] = {}
            base: Plan | None = None
            for f in forms:
                with capacity.mix_batching(f):
                    p = plan(wl, fleet, pm, False)
                if not p.feasible:
                    break
                if base is not None and (p.gpus != base.gpus or p.cost_per_hour != base.cost_per_hour):
                    raise SystemExit(f"{model} {case}: form {f} changed the plan's sizing; rule 60-B reads "
                                     "predictions of one plan")
                base = base or p
                preds[f] = predicted_ttft_ms(p)
            if base is None or len(preds) < len(forms):
                continue
            reqs = []
            for s in seeds:
                with quiet_extrapolation():
                    reqs.append(simulate(base, wl, duration_s=args.duration, seed=s, perf=pm).requests)
            df = pd.concat(reqs)
            df = df[df.finished.astype(bool)]
            for c in wl.classes:
                d = df[df.class_id == c.id]
                if d.empty:
                    continue
                slo = wl.slo_of(c).ttft_ms
                row: dict[str, object] = {
                    "model": model, "case": f"{chat_isl}/{doc_isl}@{chat_rps:g}+{doc_rps:g} ({chat_ttft:g} ms)",
                    "cls": c.id.split("/")[-1], "sim": float(np.percentile(d.ttft_ms, 90)),
                    "sim_less_kv": float(np.percentile(d.ttft_ms - d.kv_wait_ms.fillna(0.0), 90)), "slo": slo}
                for f in forms:
                    row[f] = preds[f].get(c.id, float("nan"))
                rows.append(row)
    if not rows:
        fail("no case gave a feasible plan")
    res = pd.DataFrame(rows)
    res["ratio"] = res.sim / res.slo
    bind = res.loc[res.groupby(["model", "case"]).ratio.idxmax()]
    table = Table(title=f"P/D plans on {gpu}: each class's TTFT p90, ms, simulated (seeds {args.seeds}, "
                        f"{args.duration:g} s each, pooled) and predicted per form (capacity.MIX_BATCHING)")
    for col in ("model", "case", "class", "simulated", "p90 less KV wait", *forms):
        table.add_column(col, justify="right")
    for r in res.itertuples():
        table.add_row(str(r.model), str(r.case), str(r.cls), f"{r.sim:.0f}", f"{r.sim_less_kv:.0f}",
                      *(f"{getattr(r, f):.0f} ({100 * (getattr(r, f) / r.sim - 1):+.0f}%)" for f in forms))
    con.print(table)

    def figures(sub: pd.DataFrame, b: pd.DataFrame, f: str) -> tuple[float, float]:
        mape = float(100 * np.mean(np.abs(sub[f] / sub.sim - 1)))
        worst = float(100 * np.min(b[f] / b.sim - 1))
        return mape, worst

    summary = Table(title="per form: per-class TTFT p90 MAPE and the binding class's worst error, %")
    summary.add_column("set")
    for f in forms:
        summary.add_column(f"{f} MAPE / binding worst", justify="right")
    parts = [f"RESULT cases={res.groupby(['model', 'case']).ngroups} classes={len(res)}"]
    pooled = [figures(res, bind, f) for f in forms]
    summary.add_row("all", *(f"{m:.1f} / {w:+.1f}" for m, w in pooled))
    parts += [f"mape_{f}={m:.1f} bind_worst_{f}={w:.1f}" for f, (m, w) in zip(forms, pooled, strict=True)]
    for model in models:
        per = [figures(res[res.model == model], bind[bind.model == model], f) for f in forms]
        summary.add_row(model, *(f"{m:.1f} / {w:+.1f}" for m, w in per))
        parts += [f"mape_{f}_{model}={m:.1f} bind_worst_{f}_{model}={w:.1f}"
                  for f, (m, w) in zip(forms, per, strict=True)]
    con.print(summary)
    print(" ".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
