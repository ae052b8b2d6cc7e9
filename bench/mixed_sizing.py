"""Rule 58-S's check: plans of classes with different TTFT SLOs sharing pools, sized class by class (the ILP's
Mélange fractions, the form before stop 58) and with the pools' utilization tightened until every class meets its
TTFT SLO behind the pool's mix of classes (planner/planning/mixfit.py), each plan simulated.

Each case is one model's workload of two classes: a short interactive one (`--chat-isl` tokens, 200 out, a tight TTFT
SLO) and a long document one (`--doc-isl` tokens, 300 out, TTFT 2,000 ms), ITL 50 ms p90 for both, Poisson, at the
rates given, planned on `--gpu` (64 available, tp 1, bf16) with P/D roles or mixed ones, and simulated `--duration`
seconds at each seed (planner.api.simulate). A class misses when its simulated TTFT p90 exceeds its SLO by more than
5% at any seed. Rule 58-S's tuning set is the default: llama-3.1-8b on the H100, 16 of the 64 combinations of the
grid (chat 500 / 800 tokens at TTFT 150 / 300 ms, doc 4,000 / 8,000 tokens, chat 4 / 12 req/s, doc 1 / 3 req/s, P/D /
mixed), drawn once by numpy's default_rng(58); `--model qwen3-32b` is its held-out report.

    .venv/bin/python bench/mixed_sizing.py                       # rule 58-S's tuning set, ~2 min
    .venv/bin/python bench/mixed_sizing.py --model qwen3-32b     # held out
    .venv/bin/python bench/mixed_sizing.py --cases 64            # the whole grid

Last line: ``RESULT cases=<n> classes=<n> misses_alone=<n> misses_mix=<n> cost_alone=<USD/h> cost_mix=<USD/h>
max_cost_rise_pct=<%> tightened=<plans> cost_verify=<USD/h> over_verify=<plans> misses_verify=<n> flagged=<plans> missed_unflagged=<n> cost_auto=<USD/h>
misses_auto=<n>`` (misses over every class of every
case; costs summed over the cases; over_verify: rule 58-S's plans costing more than --verify's for the same case;
flagged: class-by-class plans whose over-SLO note fires; auto: rule 58-V, --verify's plan where flagged, else the
class-by-class one; missed_unflagged: misses in plans the note did not flag).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_input import fail, known_gpu, known_model, seed_list, simulated_seconds  # noqa: E402

from planner.api import simulate  # noqa: E402
from planner.io.catalog import Catalog  # noqa: E402
from planner.io.schema import Fleet, Plan, Workload  # noqa: E402
from planner.perf.laws import PerfModel, quiet_extrapolation  # noqa: E402
from planner.planning import assemble  # noqa: E402
from planner.planning.verify import verified_by_default, verify_and_resolve  # noqa: E402

DOC_TTFT_MS = 2000.0
ITL_MS = 50.0
MISS_TOL = 1.05  # a simulated p90 over 1.05 x its SLO is a miss (the p90 of 900 s of a few req/s is noisy by a few %)
GRID = list(itertools.product((500, 800), (150.0, 300.0), (4000, 8000), (4.0, 12.0), (1.0, 3.0), ("pd", "mixed")))
GRID_SEED = 58  # rule 58-S's draw of its 16 tuning cases
RULE_58S_ROUNDS = 4  # the rounds rule 58-S measured (assemble._MIX_REPLANS ships 0: not adopted)


def workload(model: str, chat_isl: int, chat_ttft_ms: float, doc_isl: int, chat_rps: float, doc_rps: float) -> Workload:
    return Workload.model_validate({
        "models": {model: {"slo": {"ttft_ms": DOC_TTFT_MS, "itl_ms": ITL_MS, "percentile": 90}}},
        "classes": [
            {"id": f"{model}/chat", "model": model, "isl": chat_isl, "osl": 200, "rate_rps": chat_rps,
             "slo": {"ttft_ms": chat_ttft_ms, "itl_ms": ITL_MS, "percentile": 90}},
            {"id": f"{model}/doc", "model": model, "isl": doc_isl, "osl": 300, "rate_rps": doc_rps}]})


def fleet_of(gpu: str, roles: str) -> Fleet:
    """64 GPUs of `gpu`, tp 1, bf16, P/D roles ("pd") or mixed ones; the other limits the fleet's defaults."""
    return Fleet.model_validate({"gpus": {gpu: {"available": 64}},
                                 "limits": {"allowed_tp": [1], "allowed_dtypes": ["bf16"],
                                            "roles": ["prefill", "decode"] if roles == "pd" else ["mixed"]}})


def plan(wl: Workload, fleet: Fleet, pm: PerfModel, mix_rounds: bool) -> Plan:
    """The plan of `wl` on `fleet`: with rule 58-S's rounds or without them (the class-by-class sizing)."""
    kept = assemble._MIX_REPLANS
    assemble._MIX_REPLANS = RULE_58S_ROUNDS if mix_rounds else 0
    try:
        with quiet_extrapolation():
            return assemble.plan_workload(wl, fleet, pm, pm.catalog, refine_diagnosis=False)
    finally:
        assemble._MIX_REPLANS = kept


def misses(p: Plan, wl: Workload, seeds: list[int], duration_s: float, pm: PerfModel) -> dict[str, float]:
    """Per class, the largest simulated TTFT p90 / SLO over the seeds."""
    out: dict[str, float] = {}
    for s in seeds:
        with quiet_extrapolation():
            rep = simulate(p, wl, duration_s=duration_s, seed=s, perf=pm)
        for _, r in rep.classes.iterrows():
            slo = wl.slo_of(next(c for c in wl.classes if c.id == r.class_id)).ttft_ms
            out[r.class_id] = max(out.get(r.class_id, 0.0), float(r.ttft_p90_ms) / float(slo))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="llama-3.1-8b", help="catalog model, any case (default: rule 58-S's tuning one)")
    ap.add_argument("--gpu", default="H100-SXM-80GB", help="catalog GPU type, any case")
    ap.add_argument("--cases", type=int, default=16, help=f"cases drawn from the {len(GRID)}-case grid (default 16)")
    ap.add_argument("--seeds", default="1,2", help="simulation seeds, comma list")
    ap.add_argument("--duration", type=float, default=900.0, help="simulated seconds per seed")
    ap.add_argument("--verify", action=argparse.BooleanOptionalAction, default=True,
                    help="also plan each case with `planner solve --verify` (rule 58-S2's bound on the cost)")
    args = ap.parse_args(argv)
    if not 1 <= args.cases <= len(GRID):
        fail(f"--cases: expected 1..{len(GRID)}, got {args.cases}")
    seeds = seed_list(args.seeds)
    simulated_seconds(args.duration)
    cat = Catalog.load()
    model, gpu = known_model(cat, args.model), known_gpu(cat, args.gpu)
    pm = PerfModel.load()
    if pm.get(model, gpu, 1) is None:
        fail(f"--model/--gpu: {model} has no performance law on {gpu} at tp1")
    pick = sorted(np.random.default_rng(GRID_SEED).choice(len(GRID), size=args.cases, replace=False).tolist())
    con = Console(width=200)
    table = Table(title=f"{model} on {gpu}: two classes with different TTFT SLOs sharing pools; simulated TTFT p90 / "
                        f"SLO (worst of seeds {args.seeds}, {args.duration:g} s), class by class -> rule 58-S")
    for col in ("case", "roles", "chat TTFT SLO", "cost $/h", "--verify $/h", "chat p90/SLO", "doc p90/SLO"):
        table.add_column(col, justify="right")
    n_miss = {False: 0, True: 0}
    cost = {False: 0.0, True: 0.0}
    rise, tightened, classes = 0.0, 0, 0
    cost_verify, over_verify, miss_verify = 0.0, 0, 0
    flagged, missed_unflagged, cost_auto, miss_auto = 0, 0, 0.0, 0
    for k in track(pick, description="cases", console=con):
        chat_isl, chat_ttft, doc_isl, chat_rps, doc_rps, roles = GRID[k]
        wl = workload(model, chat_isl, chat_ttft, doc_isl, chat_rps, doc_rps)
        fleet = fleet_of(gpu, roles)
        got = {}
        base = None  # the class-by-class plan, which --verify starts from
        for form in (False, True):
            p = plan(wl, fleet, pm, form)
            if not p.feasible:
                got[form] = None
                continue
            base = p if not form else base
            m = misses(p, wl, seeds, args.duration, pm)
            got[form] = (p.cost_per_hour, m)
            n_miss[form] += sum(x > MISS_TOL for x in m.values())
            cost[form] += p.cost_per_hour
        a, b = got[False], got[True]
        v = None
        if args.verify and base is not None:
            with quiet_extrapolation():
                v = verify_and_resolve(wl, fleet, pm, pm.catalog, base)  # `planner solve --verify`, its defaults
        if v is not None and v.feasible and b is not None:
            cost_verify += v.cost_per_hour
            over_verify += b[0] > v.cost_per_hour + 1e-9
            m_verify = sum(x > MISS_TOL for x in misses(v, wl, seeds, args.duration, pm).values())
            miss_verify += m_verify
            # rule 58-V: --verify's rounds only where solve's default would run them (the over-SLO note's classes)
            flag = base is not None and bool(verified_by_default(base, "cost"))
            flagged += flag
            if a is not None:
                missed_unflagged += 0 if flag else sum(x > MISS_TOL for x in a[1].values())
                cost_auto += v.cost_per_hour if flag else a[0]
                miss_auto += m_verify if flag else sum(x > MISS_TOL for x in a[1].values())
        if a is not None and b is not None:
            classes += len(a[1])
            rise = max(rise, 100.0 * (b[0] / a[0] - 1.0))
            tightened += b[0] > a[0] + 1e-9
        name = f"{chat_isl}/{doc_isl} @ {chat_rps:g}+{doc_rps:g}"

        def cell(g: tuple[float, dict[str, float]] | None, cls: str) -> str:
            return "-" if g is None else f"{g[1].get(f'{model}/{cls}', float('nan')):.2f}"
        table.add_row(name, roles, f"{chat_ttft:g}", f"{a[0] if a else float('nan'):.2f} -> {b[0] if b else float('nan'):.2f}",
                      "-" if v is None or not v.feasible else f"{v.cost_per_hour:.2f}",
                      f"{cell(a, 'chat')} -> {cell(b, 'chat')}", f"{cell(a, 'doc')} -> {cell(b, 'doc')}")
    con.print(table)
    print(f"RESULT cases={len(pick)} classes={classes} misses_alone={n_miss[False]} misses_mix={n_miss[True]} "
          f"cost_alone={cost[False]:.2f} cost_mix={cost[True]:.2f} max_cost_rise_pct={rise:.1f} tightened={tightened}"
          + (f" cost_verify={cost_verify:.2f} over_verify={over_verify} misses_verify={miss_verify} flagged={flagged}"
             f" missed_unflagged={missed_unflagged} cost_auto={cost_auto:.2f} misses_auto={miss_auto}" if args.verify else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
