"""Speed of the fleet simulator: one simulated hour of a 100-replica P/D fleet at 50 rps.

Fleet: 30 prefill + 70 decode replicas with llama-3.1-8b-like laws (the bundled performance
model's H100 tp1 laws when available, else the constants below); Poisson arrivals of one class,
ISL 2048, OSL 256 (issue #4). Reports wall seconds and events per second, median of repeats.

Usage: .venv/bin/python bench/simulate_scaling.py [--duration 3600] [--rate 50] [--repeats 3] [--workload W.yaml]
       [--trace T.csv]
With --workload, its classes replace the single class (routing: all pools by the same weights). With --trace, the
trace's first --duration seconds of requests (either column convention: planner.simulate.arrivals.normalise_trace;
requests without a model column are the laws' model's) replace the Poisson arrivals, mapped to the classes.
Last line: RESULT seconds=... events_per_s=...
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_input import fail, not_found, refused_as_input  # noqa: E402
from planner.io.errors import InputError  # noqa: E402
from planner.io.files import load_model  # noqa: E402
from planner.perf.laws import VariantPerf  # noqa: E402
from planner.io.schema import Workload  # noqa: E402
from planner.simulate.arrivals import poisson_arrivals, trace_arrivals  # noqa: E402
from planner.simulate.fleet import ClassRoute, FleetSimulator, PoolSpec  # noqa: E402
from planner.simulate.report import build_report  # noqa: E402


def laws() -> VariantPerf:
    try:
        from planner.perf.laws import PerfModel

        p = PerfModel.load().get("llama-3.1-8b", "H100-SXM-80GB", 1)
        if p is not None:
            return p
    except Exception:  # noqa: BLE001 - fall back to fixed laws; the bench measures the simulator
        pass
    # llama-3.1-8b on one H100, rounded roofline numbers: ~15 ms fixed + 0.06 ms/token prefill,
    # ~7 ms per decode step (16 GB weights / 3.35 TB/s ~ 5 ms + overheads)
    return VariantPerf(model="llama-3.1-8b", gpu="H100-SXM-80GB", tp=1, source="prior", prefill_a_ms=15.0,
                       prefill_b_ms_per_token=0.06, prefill_c_ms_per_token2=2e-6, decode_alpha_ms=7.0,
                       decode_beta_ms_per_seq=0.04, decode_gamma_ms_per_token=5e-5, kv_capacity_tokens=450_000,
                       kv_bytes_per_token=131072, kv_link_gb_s=50.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=3600.0, help="simulated seconds of arrivals")
    ap.add_argument("--rate", type=float, default=50.0, help="requests per second")
    ap.add_argument("--prefill", type=int, default=30, help="prefill replicas")
    ap.add_argument("--decode", type=int, default=70, help="decode replicas")
    ap.add_argument("--repeats", type=int, default=3, help="simulations (median wall time kept)")
    ap.add_argument("--workload", type=Path, default=None, help="workload YAML whose classes replace the single class")
    ap.add_argument("--trace", type=Path, default=None,
                    help="simulate this request trace's arrivals (its first --duration seconds) instead of Poisson ones")
    args = ap.parse_args(argv)
    perf = laws()
    # every input checked before any work (exit 2 naming the file and the field)
    for flag, value in (("--duration", args.duration), ("--rate", args.rate), ("--prefill", args.prefill),
                        ("--decode", args.decode), ("--repeats", args.repeats)):
        if not value > 0:  # `not >`: nan is refused too
            fail(f"{flag}: expected a number > 0, got {value}")
    with refused_as_input():
        wl = load_model(Workload, args.workload) if args.workload else Workload.model_validate({
            "models": {perf.model: {"slo": {"ttft_ms": 1000, "itl_ms": 50}}},
            "classes": [{"id": "c", "model": perf.model, "isl": 2048, "osl": 256, "rate_rps": args.rate}]})
        if args.trace is not None and not args.trace.is_file():
            raise InputError(str(args.trace), None, f"{not_found(args.trace)} (expected a request trace CSV)")
        try:
            traced = None if args.trace is None else trace_arrivals(
                pd.read_csv(args.trace), wl, str(args.trace), model=perf.model, duration_s=args.duration)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            fail(f"--trace {args.trace}: not a CSV request trace ({str(exc).strip()})")
    pools = [PoolSpec("p", "prefill", perf, args.prefill), PoolSpec("d", "decode", perf, args.decode)]
    routes = {c.id: ClassRoute(c.model, ((0, 1.0),), ((1, 1.0),)) for c in wl.classes}
    slos = {c.id: wl.slo_of(c) for c in wl.classes}
    rows = []
    for rep in range(args.repeats):
        arr = traced if traced is not None else poisson_arrivals(wl, args.duration, np.random.default_rng(rep))
        t0 = time.perf_counter()
        sim = FleetSimulator(pools, routes, arr, slos, seed=rep)
        sim.run()
        secs = time.perf_counter() - t0
        r = build_report(sim)
        rows.append((len(arr), sim.events_processed, secs, sim.events_processed / secs,
                     float(np.nanpercentile(r.requests.ttft_ms, 90)), float(np.nanpercentile(r.requests.itl_ms, 90))))
    load = (f"the trace {args.trace.name}" if traced is not None else f"{args.rate:g} rps" if args.workload is None
            else f"{sum(c.rate_rps for c in wl.classes):.3g} rps, the {len(wl.classes)} classes of "
                 f"{args.workload.name}")
    t = Table(title=f"{args.duration:.0f} s simulated, {args.prefill}P + {args.decode}D replicas "
                    f"({perf.source} laws of {perf.model}), {load}; latency p90 over every request")
    for c in ("repeat", "requests", "events", "seconds", "events/s", "TTFT p90 ms", "ITL p90 ms"):
        t.add_column(c, justify="right")
    for i, (n, e, s, eps, tt, it) in enumerate(rows):
        t.add_row(str(i), f"{n:,}", f"{e:,}", f"{s:.2f}", f"{eps:,.0f}", f"{tt:.0f}", f"{it:.1f}")
    Console(width=140).print(t)
    secs = statistics.median(r[2] for r in rows)
    eps = statistics.median(r[3] for r in rows)
    print(f"RESULT seconds={secs:.2f} events_per_s={eps:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
