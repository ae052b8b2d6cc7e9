"""Cost of pd-planner's plan against the field's baselines, at equal SLO.

Baselines (each must meet the same SLOs with the same capacity model and utilization target):
  (a) single-type aggregated: the best single GPU type, colocated (mixed) replicas only;
  (b) per-pool formula, as the SLA planners of the field size P/D pools (e.g. NVIDIA Dynamo's
      SLA planner): per GPU type, one fixed TP per role chosen by its SLO throughput per GPU, and
      replicas = ceil(load / (per-replica capacity x utilization)) per model and role;
  (c) heterogeneous aggregated (Mélange, Griggs et al. 2024): the ILP over all GPU types with
      mixed replicas only.
Workloads: the bundled default example, and one bucketed from the Azure LLM conversation trace
(../shared/data, `--trace`) for `--model`.

Usage: python bench/baselines.py [--workload W --fleet F] [--trace T.csv --model M --ttft-ms .. --itl-ms ..]
Last line: RESULT saving_vs_best_baseline_pct=<on the trace workload> ...
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from planner.io.catalog import Catalog  # noqa: E402
from bench_input import (  # noqa: E402
    fail, known_model, not_found, positive_floats, read_model_trace, refused_as_input, require, trace_model, with_a_span)
from planner.io.files import load_model  # noqa: E402
from planner.perf.laws import PerfModel  # noqa: E402
from planner.planning.assemble import plan_workload  # noqa: E402
from planner.planning.instance import build_instance  # noqa: E402
from planner.io.schema import Fleet, Workload  # noqa: E402
from planner.io.traces import bucket_trace  # noqa: E402
from planner.io.validate import slo_from_options  # noqa: E402

DEFAULT_TRACE = REPO.parent / "shared" / "data" / "azure-llm-2023" / "AzureLLMInferenceTrace_conv.csv"


def _with_limits(fleet: Fleet, **limits: object) -> Fleet:
    return fleet.model_copy(update={"limits": fleet.limits.model_copy(update=limits)})


def ours(wl: Workload, fleet: Fleet, perf: PerfModel, cat: Catalog) -> float:
    plan = plan_workload(wl, fleet, perf, cat)
    return plan.cost_per_hour if plan.feasible else math.inf


def single_type_aggregated(wl: Workload, fleet: Fleet, perf: PerfModel, cat: Catalog) -> tuple[float, str]:
    best = (math.inf, "-")
    for g in fleet.gpus:
        f = _with_limits(fleet.model_copy(update={"gpus": {g: fleet.gpus[g]}}), roles=["mixed"])
        plan = plan_workload(wl, f, perf, cat)
        if plan.feasible and plan.cost_per_hour < best[0]:
            best = (plan.cost_per_hour, g)
    return best


def per_pool_formula(wl: Workload, fleet: Fleet, perf: PerfModel, cat: Catalog) -> tuple[float, str]:
    """One GPU type, one TP per role (best SLO throughput per GPU), replicas = ceil(load / (cap x u))."""
    u = fleet.limits.utilization
    best = (math.inf, "-")
    for g in fleet.gpus:
        f = _with_limits(fleet.model_copy(update={"gpus": {g: fleet.gpus[g]}}), roles=["prefill", "decode"])
        inst = build_instance(wl, f, perf, cat)
        cost, gpus_used, ok = 0.0, 0, True
        for model in wl.models:
            classes = [c for c in wl.classes if c.model == model and c.rate_rps > 0]
            for role in ("prefill", "decode"):
                # The TP whose replica serves the model's mix at the least GPU-seconds per request.
                choices = []
                for vid, v in inst.variants.items():
                    if v.model != model or v.role != role:
                        continue
                    caps = [inst.caps[(c.id, vid)].rate_rps for c in classes]
                    if any(cp <= 0 for cp in caps):
                        continue
                    load = sum(c.rate_rps / cp for c, cp in zip(classes, caps))  # replicas' worth of work
                    choices.append((load * v.tp, load, v))
                if not choices:
                    ok = False
                    break
                _, load, v = min(choices, key=lambda t: t[0])
                n = max(fleet.limits.default_min_replicas, math.ceil(load / u - 1e-9))
                cost += n * v.tp * inst.price_per_hour[g]
                gpus_used += n * v.tp
            if not ok:
                break
        if ok and gpus_used <= fleet.gpus[g].available and cost < best[0]:
            best = (cost, g)
    return best


def hetero_aggregated(wl: Workload, fleet: Fleet, perf: PerfModel, cat: Catalog) -> float:
    plan = plan_workload(wl, _with_limits(fleet, roles=["mixed"]), perf, cat)
    return plan.cost_per_hour if plan.feasible else math.inf


def run_case(name: str, wl: Workload, fleet: Fleet, perf: PerfModel, cat: Catalog, repeats: int) -> dict[str, object]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        c_ours = ours(wl, fleet, perf, cat)
        times.append(time.perf_counter() - t0)
    c_a, g_a = single_type_aggregated(wl, fleet, perf, cat)
    c_b, g_b = per_pool_formula(wl, fleet, perf, cat)
    c_c = hetero_aggregated(wl, fleet, perf, cat)
    best = min(c_a, c_b, c_c)
    return {
        "case": name, "classes": len(wl.classes), "rate_rps": sum(c.rate_rps for c in wl.classes),
        "ours": c_ours, "a": c_a, "a_gpu": g_a, "b": c_b, "b_gpu": g_b, "c": c_c,
        "saving_pct": (1 - c_ours / best) * 100 if math.isfinite(best) and best > 0 else math.nan,
        "solve_s": statistics.median(times),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", type=Path, default=REPO / "examples/default/workload.yaml",
                    help="workload YAML of the first row (default: examples/default/workload.yaml)")
    ap.add_argument("--fleet", type=Path, default=REPO / "examples/default/fleet.yaml",
                    help="fleet YAML every row is planned on (default: examples/default/fleet.yaml)")
    ap.add_argument("--trace", type=Path, default=DEFAULT_TRACE,
                    help="request trace CSV of the trace rows, bucketed into classes (default: the bundled Azure "
                    "conversation trace; its rows are skipped where it is absent)")
    ap.add_argument("--model", default=None, help="model the trace's requests are served by (default: the trace's own "
                    "where its model column names one, else llama-2-70b, the Splitwise profiles' model)")
    ap.add_argument("--ttft-ms", type=float, default=1000.0, help="TTFT SLO of the trace's classes, ms")
    ap.add_argument("--itl-ms", type=float, default=60.0, help="ITL SLO of the trace's classes, ms")
    ap.add_argument("--percentile", type=float, default=90.0, help="percentile of the trace's SLO, in (0, 100)")
    ap.add_argument("--rate-quantile", type=float, default=0.9, help="size trace classes for this quantile of the per-minute rate")
    ap.add_argument("--repeats", type=int, default=3, help="plans per main row (median wall time kept)")
    ap.add_argument("--itl-sweep", default="40,50,80", help="extra rows: the trace workload at these ITL bounds (ms)")
    ap.add_argument("--scales", default="4", help="extra rows: the trace workload's rates times these factors")
    args = ap.parse_args(argv)

    # every input checked before any work (exit 2 naming the file): a trace named on the command line must exist;
    # the default one may be absent (a checkout without ../shared/data), its rows are then skipped
    itl_sweep, scales = positive_floats(args.itl_sweep, "--itl-sweep"), positive_floats(args.scales, "--scales")
    require(args.repeats >= 1, "--repeats", "a whole number >= 1", args.repeats)
    require(0 <= args.rate_quantile <= 1, "--rate-quantile", "a quantile in [0, 1] (e.g. 0.9)", args.rate_quantile)
    with refused_as_input():  # the trace workload's SLO, each bound named (planner workload from-trace's checks)
        slo = slo_from_options(args.ttft_ms, args.itl_ms, args.percentile)
    if args.trace != DEFAULT_TRACE and not args.trace.is_file():
        fail(f"--trace {args.trace}: {not_found(args.trace)} (expected a request trace CSV)")
    with refused_as_input():
        cat = Catalog.load()
        perf = PerfModel.load(catalog=cat)
    args.model = args.model or trace_model(args.trace) or "llama-2-70b"
    args.model = known_model(cat, args.model)  # the trace's model: in the catalog (an unknown one names the known ones)
    with refused_as_input():
        fleet = load_model(Fleet, args.fleet)
        workload = load_model(Workload, args.workload)
        tr = with_a_span(read_model_trace(args.trace, args.model), args.trace) if args.trace.is_file() else None
    rows = [run_case("default example", workload, fleet, perf, cat, args.repeats)]
    trace_row = None
    if tr is not None:
        wl = bucket_trace(tr, slo, isl_buckets=3, osl_buckets=2, rate_quantile=args.rate_quantile)
        trace_row = run_case(f"{args.trace.name} ({args.model}) ITL {args.itl_ms:g} ms", wl, fleet, perf, cat, args.repeats)
        rows.append(trace_row)
        for itl in itl_sweep:
            wl_i = bucket_trace(tr, slo.model_copy(update={"itl_ms": itl}), isl_buckets=3, osl_buckets=2,
                                rate_quantile=args.rate_quantile)
            rows.append(run_case(f"  same, ITL {itl:g} ms", wl_i, fleet, perf, cat, 1))
        big_fleet = fleet.model_copy(update={"gpus": {g: inv.model_copy(update={"available": inv.available * 8})
                                                      for g, inv in fleet.gpus.items()}})
        for k in scales:
            rows.append(run_case(f"  same, traffic x{k:g} (inventory x8)", wl.scaled(k), big_fleet, perf, cat, 1))
    else:
        print(f"trace {args.trace} not found: skipping the trace case", file=sys.stderr)

    t = Table(title="Cost per hour (USD) at equal SLO; lower is better")
    for col in ("workload", "classes", "req/s", "pd-planner", "(a) best single type, aggregated",
                "(b) per-pool formula", "(c) hetero aggregated", "saving vs best", "solve s (median)"):
        t.add_column(col)
    fmt = lambda x: f"{x:,.2f}" if isinstance(x, float) and math.isfinite(x) else "infeasible"  # noqa: E731
    for r in rows:
        t.add_row(str(r["case"]), str(r["classes"]), f"{r['rate_rps']:.1f}", fmt(r["ours"]), f"{fmt(r['a'])} ({r['a_gpu']})",
                  f"{fmt(r['b'])} ({r['b_gpu']})", fmt(r["c"]), f"{r['saving_pct']:.1f}%", f"{r['solve_s']:.2f}")
    Console(width=200).print(t)
    headline = trace_row or rows[0]
    print(f"RESULT saving_vs_best_baseline_pct={headline['saving_pct']:.2f} "
          f"saving_default_pct={rows[0]['saving_pct']:.2f} ours_per_hour={headline['ours']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
