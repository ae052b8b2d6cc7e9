"""Rule 59-V's check: how `planner solve --verify` judges a class in each round (planner.planning.verify.Verdict), on
plans of classes with different TTFT SLOs sharing pools, each verified plan refereed by fresh simulations.

Cases are `bench/mixed_sizing.py`'s grid (two classes of one model: a short one with a tight TTFT SLO and a long
one, P/D or mixed pools on `--gpu`); by default the 48 of its 64 cases that rule 58-S's draw left unused (rule 59-V's
tuning set on llama-3.1-8b; `--model qwen3-32b` its held-out report). Each case is planned class by class, then
verified with each verdict (`--verify`, its defaults otherwise: 600 s at seed 0, 3 rounds), and under rule 58-V's
default (verified only where the plan predicts a class over its SLO). The referee simulates each resulting plan at
seeds `--referee-seeds` (never a verdict's seeds), `--duration` s each; a class misses when its attainment (requests
within TTFT and ITL SLO) pooled over those seeds is below its SLO's percentile.

    .venv/bin/python bench/verify_verdicts.py                    # rule 59-V's tuning set (~20 min on 2 cores)
    .venv/bin/python bench/verify_verdicts.py --model qwen3-32b  # held out
    .venv/bin/python bench/verify_verdicts.py --cases drawn      # rule 58-S's 16 cases

Last line: ``RESULT cases=<n> classes=<n> misses_base=<n> cost_base=<USD/h>`` then per verdict V
``misses_V=<n> cost_V=<USD/h> misses_auto_V=<n> cost_auto_V=<USD/h>`` (misses over every class of every case, costs
summed over the cases; auto: rule 58-V's default with that verdict).
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import cast, get_args

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_input import fail, known_gpu, known_model  # noqa: E402
from mixed_sizing import GRID, GRID_SEED, fleet_of, plan, workload  # noqa: E402

from planner.api import simulate  # noqa: E402
from planner.io.catalog import Catalog  # noqa: E402
from planner.io.schema import Plan, Workload  # noqa: E402
from planner.perf.laws import PerfModel, quiet_extrapolation  # noqa: E402
from planner.planning import capacity, mixfit  # noqa: E402
from planner.planning.verify import Verdict, verified_by_default, verify_and_resolve  # noqa: E402

VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
DRAWN = 16  # rule 58-S's draw from the grid (bench/mixed_sizing.py's default --cases)


def case_ids(which: str) -> list[int]:
    """The grid's cases: 'unused' (those rule 58-S's draw of 16 left), 'drawn' (its 16) or 'all'."""
    drawn = set(np.random.default_rng(GRID_SEED).choice(len(GRID), size=DRAWN, replace=False).tolist())
    return [k for k in range(len(GRID)) if which == "all" or (k in drawn) == (which == "drawn")]


def referee(p: Plan, wl: Workload, seeds: list[int], duration_s: float,
            pm: PerfModel) -> dict[str, tuple[float, float]]:
    """Per class: (attainment pooled over the seeds, its claim as a share)."""
    met: dict[str, float] = {}
    n: dict[str, int] = {}
    claim: dict[str, float] = {}
    for s in seeds:
        with quiet_extrapolation():
            rep = simulate(p, wl, duration_s=duration_s, seed=s, perf=pm)
        for r in rep.classes.itertuples():
            cid = str(r.class_id)
            met[cid] = met.get(cid, 0.0) + float(r.attainment) * int(r.requests)
            n[cid] = n.get(cid, 0) + int(r.requests)
            claim[cid] = float(r.slo_percentile) / 100.0
    return {c: (met[c] / max(n[c], 1), claim[c]) for c in met}


def run_case(k: int, model: str, gpu: str, seeds: list[int], duration_s: float,
             verdicts: tuple[Verdict, ...] = VERDICTS, rounds: int = 3,
             margins: tuple[float, ...] = ()) -> dict[str, object]:
    """One case: the class-by-class plan and each verdict's, each refereed; a plan refereed once however many verdicts
    end on it."""
    pm = PerfModel.load()
    chat_isl, chat_ttft, doc_isl, chat_rps, doc_rps, roles = GRID[k]
    wl = workload(model, chat_isl, chat_ttft, doc_isl, chat_rps, doc_rps)
    fleet = fleet_of(gpu, roles)
    base = plan(wl, fleet, pm, False)
    out: dict[str, object] = {"case": f"{chat_isl}/{doc_isl} @ {chat_rps:g}+{doc_rps:g} {roles} {chat_ttft:g}ms"}
    if not base.feasible:
        return out
    seen: dict[str, dict[str, tuple[float, float]]] = {}

    def judged(p: Plan) -> tuple[float, int, dict[str, tuple[float, float]]]:
        key = p.model_dump_json(include={"models"})
        if key not in seen:
            seen[key] = referee(p, wl, seeds, duration_s, pm)
        att = seen[key]
        return p.cost_per_hour, sum(a < c for a, c in att.values()), att

    out["base"] = judged(base)
    flagged = bool(verified_by_default(base, "cost", margin=1.0))
    out["flagged"] = flagged
    out["flagged_m"] = {m: bool(verified_by_default(base, "cost", margin=m)) for m in margins}
    for v in verdicts:
        with quiet_extrapolation():
            vp = verify_and_resolve(wl, fleet, pm, pm.catalog, base.model_copy(deep=True), verdict=v, rounds=rounds)
        out[v] = judged(vp)
        out[f"auto_{v}"] = out[v] if flagged else out["base"]
        for m in margins:  # rule 60-N: the default with that margin, the same verified plan where it fires
            out[f"auto_{v}_m{m:g}"] = out[v] if out["flagged_m"][m] else out["base"]  # type: ignore[index]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="llama-3.1-8b", help="catalog model, any case (default: rule 59-V's tuning one)")
    ap.add_argument("--gpu", default="H100-SXM-80GB", help="catalog GPU type, any case")
    ap.add_argument("--cases", default="unused", choices=("unused", "drawn", "all"),
                    help="the grid's cases: those rule 58-S's draw left (default), its 16, or all 64")
    ap.add_argument("--referee-seeds", default="11,12,13", help="the referee's simulation seeds, comma list")
    ap.add_argument("--duration", type=float, default=900.0, help="the referee's simulated seconds per seed")
    ap.add_argument("--jobs", type=int, default=2, help="cases run in parallel processes (default 2)")
    ap.add_argument("--limit", type=int, default=None, help="the first N of the cases only (a smoke run)")
    ap.add_argument("--verdicts", default=",".join(VERDICTS), help=f"comma list of {', '.join(VERDICTS)}")
    ap.add_argument("--rounds", type=int, default=3, help="--verify's re-solve bound (rule 59-R; default 3)")
    ap.add_argument("--kv-tail-share", type=float, default=None,
                    help="rule 59-K2's candidates: mixfit.KV_TAIL_SHARE for this run (default: the shipped one)")
    ap.add_argument("--margins", default="",
                    help="rule 60-N's candidates: comma list of margins in (0, 1] for the default verification "
                         "(verify.VERIFY_MARGIN), each reported as misses_auto_<verdict>_m<margin>")
    ap.add_argument("--mix-batching", choices=capacity.MIX_BATCHING_FORMS, default=None,
                    help="rule 60-B's candidates: capacity.MIX_BATCHING for this run (default: the shipped one)")
    args = ap.parse_args(argv)
    try:
        seeds = [int(x) for x in args.referee_seeds.split(",")]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 2:
        fail("--referee-seeds: expected a comma list of integers >= 2 (0 and 1 are the verdicts'), "
             f"got {args.referee_seeds!r}")
    if not (np.isfinite(args.duration) and args.duration >= 60.0):
        fail(f"--duration: expected seconds >= 60 (a p90 of a few req/s needs minutes), got {args.duration}")
    if args.jobs < 1:
        fail(f"--jobs: expected >= 1, got {args.jobs}")
    if args.limit is not None and args.limit < 1:
        fail(f"--limit: expected >= 1, got {args.limit}")
    verdicts = cast(tuple[Verdict, ...], tuple(v for v in args.verdicts.split(",") if v))
    if not verdicts or any(v not in VERDICTS for v in verdicts):
        fail(f"--verdicts: expected a comma list of {', '.join(VERDICTS)}, got {args.verdicts!r}")
    if args.rounds < 0:
        fail(f"--rounds: expected >= 0, got {args.rounds}")
    if args.kv_tail_share is not None:
        if not 0.0 < args.kv_tail_share <= 1.0:
            fail(f"--kv-tail-share: expected a share in (0, 1], got {args.kv_tail_share}")
        mixfit.KV_TAIL_SHARE = args.kv_tail_share  # the worker processes fork from here and keep it
    if args.mix_batching is not None:
        capacity.MIX_BATCHING = args.mix_batching  # likewise
    try:
        margins = tuple(float(x) for x in args.margins.split(",") if x.strip())
    except ValueError:
        margins = (-1.0,)
    if any(not 0.0 < m <= 1.0 for m in margins):
        fail(f"--margins: expected a comma list of shares in (0, 1], got {args.margins!r}")
    cat = Catalog.load()
    model, gpu = known_model(cat, args.model), known_gpu(cat, args.gpu)
    if PerfModel.load().get(model, gpu, 1) is None:
        fail(f"--model/--gpu: {model} has no performance law on {gpu} at tp1")
    ks = case_ids(args.cases)[:args.limit]
    con = Console(width=220)
    with ProcessPoolExecutor(max_workers=args.jobs) as ex:
        futs = [ex.submit(run_case, k, model, gpu, seeds, args.duration, verdicts, args.rounds, margins) for k in ks]
        rows = [f.result() for f in track(futs, description="cases", console=con)]
    table = Table(title=f"{model} on {gpu}: classes under their claim at the referee (seeds {args.referee_seeds}, "
                        f"{args.duration:g} s each), $/h; {args.cases} grid cases; --verify's rounds {args.rounds}")
    for col in ("case", "flagged", "base", *verdicts):
        table.add_column(col, justify="right")
    tot: dict[str, list[float]] = {}
    classes = 0
    for r in rows:
        if "base" not in r:
            table.add_row(str(r["case"]), "-", "infeasible", *["-"] * len(verdicts))
            continue
        base_att = r["base"][2]  # type: ignore[index]
        classes += len(base_att)
        cells = []
        for key in ("base", *verdicts, *(f"auto_{v}" for v in verdicts),
                    *(f"auto_{v}_m{m:g}" for v in verdicts for m in margins)):
            cost, miss, att = r[key]  # type: ignore[misc]
            t = tot.setdefault(key, [0.0, 0.0])
            t[0] += miss
            t[1] += cost
            if not key.startswith("auto_"):
                worst = min(a - c for a, c in att.values())
                cells.append(f"{miss} ${cost:.2f} ({worst:+.1%})")
        table.add_row(str(r["case"]), "yes" if r["flagged"] else "", *cells)
    con.print(table)
    con.print("cell: classes under their claim, the plan's cost, the worst class's attainment minus its claim")
    parts = [f"cases={len(ks)}", f"classes={classes}", f"misses_base={tot['base'][0]:.0f}",
             f"cost_base={tot['base'][1]:.2f}"]
    for v in verdicts:
        parts += [f"misses_{v}={tot[v][0]:.0f}", f"cost_{v}={tot[v][1]:.2f}",
                  f"misses_auto_{v}={tot['auto_' + v][0]:.0f}", f"cost_auto_{v}={tot['auto_' + v][1]:.2f}"]
        for m in margins:
            key = f"auto_{v}_m{m:g}"
            parts += [f"misses_{key}={tot[key][0]:.0f}", f"cost_{key}={tot[key][1]:.2f}"]
    for m in margins:
        parts.append(f"verified_m{m:g}={sum(bool(r['flagged_m'][m]) for r in rows if 'flagged_m' in r)}")  # type: ignore[index]
    print("RESULT " + " ".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
