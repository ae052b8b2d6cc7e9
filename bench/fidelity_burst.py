"""Bursty section of bench/fidelity.py: the burst-aware queueing model (planner.planning.capacity, module doc
"Bursty arrivals") against the simulator fed clustered arrivals (planner.simulate.arrivals.
clustered_times, a Neyman-Scott process of the given 1-s IDC).

Cases: every class of the workload x role (prefill / decode / mixed, one replica) x IDC x load (a
share of the Poisson model's saturation rate, as in part 1), plus pools of POOL_REPLICAS prefill
replicas behind the simulator's least-loaded routing (the model's per-replica IDC there is
max(1, IDC/n), module doc; the binomial split 1 + (IDC - 1)/n of random routing was the
alternative, rejected on the tuning levels), and the same pools behind random routing (the fleet's
`limits.routing: random`: the model's binomial split, the simulator's random mode; reported, nothing chosen on it). The model's form was chosen while looking at IDC 3 and 10 (the
TUNING levels); IDC 2 and 6 were never looked at before this bench reported them (HELD-OUT).
Each case also gets the Poisson model's prediction (what the planner assumed before), and for the
prefill role the rate the model allows at the class's TTFT SLO is simulated: the Poisson capacity
against the burst-aware one, as the share of requests whose simulated TTFT p90 keeps the SLO.

Run by bench/fidelity.py (use --no-bursty to skip it); see that file for the command line. The larger least-loaded
pools (5 and 7 replicas; n/IDC below and above 1) run alone: `python bench/fidelity_burst.py [--sizes 5,7]
[--tuning-idc 3,10] [--held-out-idc 4,8] [--requests 1500] [--seeds 5] [--workload W]`, last line RESULT.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from rich.console import Console
from rich.table import Table

from planner.planning import capacity
from planner.perf.laws import PerfModel, VariantPerf
from planner.io.schema import Burstiness, ReplicaRouting, Slo, Workload
from planner.simulate.arrivals import Arrivals, clustered_times
from planner.simulate.fleet import ClassRoute, FleetSimulator, PoolSpec
from planner.simulate.report import build_report

TUNING_IDC = (3.0, 10.0)
HELD_OUT_IDC = (2.0, 6.0)
# Loads (share of the Poisson model's saturation rate): bursts push latency up long before
# saturation, so the grid stops where a bursty replica's p90 is already several SLOs.
BURST_LOADS = (0.3, 0.5, 0.7)
# Replicas of the pooled prefill cases: enough to show the split of clusters over replicas.
POOL_REPLICAS = 3
PERCENTILE = 90.0


@dataclass
class Errors:
    """Absolute percentage errors of the burst-aware and of the Poisson model, per split and metric."""

    burst: dict[str, list[float]]
    poisson: dict[str, list[float]]
    poisson_signed: dict[str, list[float]]


def _arrivals(rate: float, idc: float, n: int, isl: int, osl: int, seed: int) -> Arrivals:
    t = clustered_times(rate, idc, n / rate, np.random.default_rng(seed))
    m = t.size
    return Arrivals(t, np.zeros(m, dtype=np.int64), np.full(m, isl), np.full(m, osl), ("c",))


def simulate_bursty(perf: VariantPerf, role: str, isl: int, osl: int, rate: float, idc: float, n: int, seed: int,
                    replicas: int = 1, routing: ReplicaRouting = "least_loaded") -> tuple[float, float]:
    """(TTFT p90, ITL p90) ms of `replicas` replicas of `role` taking `rate` (in all) of clustered
    arrivals of 1-s IDC `idc`, routed to a replica by `routing`; the other side is over-provisioned (as in
    fidelity.simulate_role)."""
    arr = _arrivals(rate, idc, n, isl, osl, seed)
    slo = {"c": Slo(ttft_ms=1e9, itl_ms=1e9, percentile=PERCENTILE)}
    if role == "mixed":
        pools = [PoolSpec("m/mixed/g/tp1", "mixed", perf, replicas)]
        route = ClassRoute("m", ((0, 1.0),), ())
    else:
        n_pre = replicas if role == "prefill" else 64
        n_dec = 64 if role == "prefill" else replicas
        pools = [PoolSpec("m/prefill/g/tp1", "prefill", perf, n_pre), PoolSpec("m/decode/g/tp1", "decode", perf, n_dec)]
        route = ClassRoute("m", ((0, 1.0),), ((1, 1.0),))
    sim = FleetSimulator(pools, {"c": route}, arr, slo, seed=seed, replica_routing=routing)
    sim.run()
    df = build_report(sim).requests.iloc[len(arr) // 10:]  # drop the warm-up tenth
    return float(np.nanpercentile(df.ttft_ms, PERCENTILE)), float(np.nanpercentile(df.itl_ms, PERCENTILE))


def class_perf(pm: PerfModel, model: str, gpu: str) -> VariantPerf | None:
    """The variant a bursty case runs a class's model on: tp1, else tp4 (the example's 70B), else none."""
    return pm.get(model, gpu, 1) or pm.get(model, gpu, 4)


def _ape(sim: float, model: float) -> float:
    return abs(model - sim) / sim * 100.0


def run(pm: PerfModel, wl: Workload, gpu: str, saturation: Callable[[VariantPerf, str, int, int], float],
        n: int, seeds: int, con: Console) -> Errors:
    """The bursty cases; `saturation(perf, role, isl, osl)` is fidelity.model_saturation_rps."""
    keys = ("prefill_ttft", "decode_itl", "mixed_ttft", "mixed_itl", "pool_prefill_ttft", "random_pool_prefill_ttft")
    errs = Errors({f"{s}_{k}": [] for s in ("tuning", "held_out") for k in keys},
                  {f"{s}_{k}": [] for s in ("tuning", "held_out") for k in keys},
                  {f"{s}_{k}": [] for s in ("tuning", "held_out") for k in keys})
    t = Table(title=f"Bursty arrivals: burst-aware model vs simulation, p{PERCENTILE:g}, {n} requests x {seeds} seeds (median)")
    for c in ("class", "role", "n", "IDC", "split", "load", "sim TTFT", "model TTFT", "Poisson TTFT",
              "sim ITL", "model ITL", "Poisson ITL"):
        t.add_column(c, justify="left" if c in ("class", "role", "split") else "right")
    cases: list[tuple[str, int, ReplicaRouting]] = [(role, 1, "least_loaded") for role in ("prefill", "decode", "mixed")]
    cases += [("prefill", POOL_REPLICAS, "least_loaded"), ("prefill", POOL_REPLICAS, "random")]
    for c in wl.classes:
        perf = class_perf(pm, c.model, gpu)
        if perf is None:
            continue
        for role, reps, routing in cases:
            sat = saturation(perf, role, c.isl, c.osl)
            for split, levels in (("tuning", TUNING_IDC), ("held_out", HELD_OUT_IDC)):
                for idc in levels:
                    # the model's split of the clusters over the pool (capacity.replica_arrivals)
                    shape = capacity.replica_arrivals(Burstiness(idc_1s=idc), 0.0, c.isl, None, reps, routing)
                    for load in BURST_LOADS:
                        rate = load * sat  # per replica
                        runs = [simulate_bursty(perf, role, c.isl, c.osl, rate * reps, idc, n, s, reps, routing)
                                for s in range(seeds)]
                        s_ttft = float(np.median([r[0] for r in runs]))
                        s_itl = float(np.median([r[1] for r in runs]))
                        lat = capacity.latency(perf, role, c.isl, c.osl, rate, PERCENTILE, shape)
                        poi = capacity.latency(perf, role, c.isl, c.osl, rate, PERCENTILE)
                        metrics = []
                        if role != "decode":
                            pool_key = "random_pool_prefill_ttft" if routing == "random" else "pool_prefill_ttft"
                            metrics.append((pool_key if reps > 1 else f"{role}_ttft", s_ttft, lat.ttft_ms, poi.ttft_ms))
                        if role != "prefill":
                            metrics.append((f"{role}_itl", s_itl, lat.itl_ms, poi.itl_ms))
                        for key, s_v, m_v, p_v in metrics:
                            errs.burst[f"{split}_{key}"].append(_ape(s_v, m_v))
                            errs.poisson[f"{split}_{key}"].append(_ape(s_v, p_v))
                            errs.poisson_signed[f"{split}_{key}"].append((p_v - s_v) / s_v * 100.0)
                        show_t, show_i = role != "decode", role != "prefill"
                        t.add_row(c.id, role, f"{reps}{' random' if routing == 'random' else ''}", f"{idc:g}", split,
                                  f"{load:.2f}",
                                  f"{s_ttft:.0f}" if show_t else "-", f"{lat.ttft_ms:.0f}" if show_t else "-",
                                  f"{poi.ttft_ms:.0f}" if show_t else "-",
                                  f"{s_itl:.1f}" if show_i else "-", f"{lat.itl_ms:.1f}" if show_i else "-",
                                  f"{poi.itl_ms:.1f}" if show_i else "-")
    con.print(t)
    return errs


def capacity_check(pm: PerfModel, wl: Workload, gpu: str, n: int, seeds: int, con: Console) -> dict[str, list[float]]:
    """Prefill replica sized by each model at the class's TTFT SLO, then simulated under clustered
    arrivals: simulated TTFT p90 / SLO at the Poisson capacity and at the burst-aware capacity
    (held-out IDC levels only). > 1 means the SLO is missed: the Poisson model under-sizes."""
    t = Table(title=f"Prefill capacity at the TTFT SLO under clustered arrivals (held-out IDC), {n} requests x {seeds} seeds")
    for c in ("class", "IDC", "SLO ms", "Poisson cap rps", "sim p90/SLO", "burst cap rps", "sim p90/SLO", "Poisson/burst cap"):
        t.add_column(c, justify="left" if c == "class" else "right")
    out: dict[str, list[float]] = {"poisson_ratio": [], "burst_ratio": [], "cap_ratio": []}
    for c in wl.classes:
        perf = class_perf(pm, c.model, gpu)
        slo = wl.slo_of(c)
        if perf is None or slo.ttft_ms is None:
            continue
        for idc in HELD_OUT_IDC:
            b = Burstiness(idc_1s=idc)
            cap_p = capacity.capacity(perf, "prefill", c.isl, c.osl, PERCENTILE, slo.ttft_ms)
            # one replica taking the whole class: the IDC at the SLO's time scale, undiluted
            shape = capacity.ArrivalShape(idc=b.idc_at(slo.ttft_ms / 1000.0))
            cap_b = capacity.capacity(perf, "prefill", c.isl, c.osl, PERCENTILE, slo.ttft_ms, arrivals=shape)
            row = [c.id, f"{idc:g}", f"{slo.ttft_ms:g}"]
            for cap in (cap_p, cap_b):
                if cap.rate_rps <= 0:
                    row += ["0", "-"]
                    continue
                runs = [simulate_bursty(perf, "prefill", c.isl, c.osl, cap.rate_rps, idc, n, s)[0] for s in range(seeds)]
                ratio = float(np.median(runs)) / slo.ttft_ms
                out["poisson_ratio" if cap is cap_p else "burst_ratio"].append(ratio)
                row += [f"{cap.rate_rps:.2f}", f"{ratio:.2f}"]
            cr = cap_p.rate_rps / cap_b.rate_rps if cap_b.rate_rps > 0 else math.inf
            out["cap_ratio"].append(cr)
            row.append(f"{cr:.2f}")
            t.add_row(*row)
    con.print(t)
    return out


# Larger least-loaded pools (stop 33's rule B2): sizes where clusters span several blocks of replicas (n/IDC >= 1)
# and where they are larger than the pool (n/IDC < 1). Tuning IDC levels as above; held-out levels of their own,
# never looked at while the pooled model (capacity.pooled_wait_ms, n/IDC servers) was chosen.
POOL_SIZES = (5, 7)
POOL_TUNING_IDC = (3.0, 10.0)
POOL_HELD_OUT_IDC = (4.0, 8.0)


@dataclass
class PoolRow:
    """One larger-pool case: the simulator's and the model's TTFT p90 (ms) at a per-replica load."""

    cls: str
    replicas: int
    idc: float
    split: str
    load: float
    sim_ttft_ms: float
    model_ttft_ms: float

    @property
    def blocks(self) -> float:
        """n/IDC: the pool's blocks of IDC replicas (< 1: clusters larger than the pool)."""
        return self.replicas / self.idc

    @property
    def signed_pct(self) -> float:
        return (self.model_ttft_ms - self.sim_ttft_ms) / self.sim_ttft_ms * 100.0


def pool_sizes(pm: PerfModel, wl: Workload, gpu: str, saturation: Callable[[VariantPerf, str, int, int], float],
               n: int, seeds: int, con: Console, sizes: tuple[int, ...] = POOL_SIZES,
               tuning_idc: tuple[float, ...] = POOL_TUNING_IDC,
               held_out_idc: tuple[float, ...] = POOL_HELD_OUT_IDC) -> list[PoolRow]:
    """Prefill pools of `sizes` replicas behind least-loaded routing under clustered arrivals: every class x size x
    IDC (tuning and held-out levels) x load (BURST_LOADS of the Poisson saturation, per replica); the model's TTFT
    p90 at the pool's shape (capacity.replica_arrivals) against the simulator's (median of `seeds`, `n` requests
    per replica)."""
    rows: list[PoolRow] = []
    t = Table(title=f"Least-loaded prefill pools under clustered arrivals, p{PERCENTILE:g}, {n} requests per replica "
                    f"x {seeds} seeds (median)")
    for c in ("class", "n", "IDC", "n/IDC", "split", "load", "sim TTFT", "model TTFT", "model vs sim %"):
        t.add_column(c, justify="left" if c in ("class", "split") else "right")
    for c in wl.classes:
        perf = class_perf(pm, c.model, gpu)
        if perf is None:
            continue
        sat = saturation(perf, "prefill", c.isl, c.osl)
        for reps in sizes:
            for split, levels in (("tuning", tuning_idc), ("held_out", held_out_idc)):
                for idc in levels:
                    shape = capacity.replica_arrivals(Burstiness(idc_1s=idc), 0.0, c.isl, None, reps)
                    for load in BURST_LOADS:
                        rate = load * sat
                        sims = [simulate_bursty(perf, "prefill", c.isl, c.osl, rate * reps, idc, n * reps, s, reps)[0]
                                for s in range(seeds)]
                        lat = capacity.latency(perf, "prefill", c.isl, c.osl, rate, PERCENTILE, shape)
                        row = PoolRow(c.id, reps, idc, split, load, float(np.median(sims)), lat.ttft_ms)
                        rows.append(row)
                        t.add_row(c.id, str(reps), f"{idc:g}", f"{row.blocks:.2f}", split, f"{load:.2f}",
                                  f"{row.sim_ttft_ms:.0f}", f"{row.model_ttft_ms:.0f}", f"{row.signed_pct:+.1f}")
    con.print(t)
    return rows


def pool_summary(rows: list[PoolRow]) -> dict[str, float]:
    """MAPE and worst signed error per split, and the same over the rows whose clusters are larger than the pool."""
    out: dict[str, float] = {}
    for split in ("tuning", "held_out"):
        for part, sel in (("", lambda r: True), ("_small", lambda r: r.blocks < 1.0), ("_blocks", lambda r: r.blocks >= 1.0)):
            rs = [r for r in rows if r.split == split and sel(r)]
            signed = [r.signed_pct for r in rs]
            out[f"{split}{part}_mape_pct"] = float(np.mean(np.abs(signed))) if rs else math.nan
            out[f"{split}{part}_worst_under_pct"] = float(min(signed)) if rs else math.nan
            out[f"{split}{part}_points"] = float(len(rs))
    return out


def main(argv: list[str] | None = None) -> int:
    """`python bench/fidelity_burst.py [--workload W] [--requests N] [--seeds S] [--sizes 5,7]`: the larger pools
    alone (the rest runs from bench/fidelity.py)."""
    import argparse
    import sys
    from pathlib import Path

    from bench_input import fail, fewest_requests, refused_as_input, require
    from planner.io.files import load_model

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import fidelity

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--workload", type=Path, default=fidelity.ROOT / "examples" / "default" / "workload.yaml",
                    help="workload YAML whose classes are compared (default: examples/default/workload.yaml)")
    ap.add_argument("--requests", type=int, default=1500, help="requests per replica per simulated point")
    ap.add_argument("--seeds", type=int, default=5, help="repeats per point (median taken)")
    ap.add_argument("--sizes", default=",".join(map(str, POOL_SIZES)), help="pool sizes, comma-separated")
    ap.add_argument("--tuning-idc", default=",".join(f"{x:g}" for x in POOL_TUNING_IDC), help="tuning IDC levels")
    ap.add_argument("--held-out-idc", default=",".join(f"{x:g}" for x in POOL_HELD_OUT_IDC), help="held-out IDC levels")
    args = ap.parse_args(argv)
    least = fewest_requests(PERCENTILE)
    require(args.requests >= least, "--requests", f"a whole number >= {least} (a p{PERCENTILE:g} of fewer is their "
            "largest)", args.requests)
    require(args.seeds >= 1, "--seeds", "a whole number >= 1", args.seeds)
    con = Console(width=160)
    with refused_as_input():  # checked before any work: exit 2 naming the file
        wl = load_model(Workload, args.workload)
    try:
        sizes = tuple(int(s) for s in args.sizes.split(","))
    except ValueError:
        fail(f"--sizes: expected comma-separated replica counts (e.g. 5,7), got '{args.sizes}'")
    if min(sizes) < 1:
        fail(f"--sizes: expected replica counts >= 1, got '{args.sizes}'")
    levels = {}
    for flag, key, text in (("--tuning-idc", "tuning", args.tuning_idc),
                            ("--held-out-idc", "held_out", args.held_out_idc)):
        try:
            levels[key] = tuple(float(x) for x in text.split(",") if x)
        except ValueError:
            fail(f"{flag}: expected comma-separated IDC levels (e.g. 3,10), got '{text}'")
        if not all(x > 0 for x in levels[key]):  # `not >`: nan is refused too
            fail(f"{flag}: expected IDC levels > 0, got '{text}'")
    rows = pool_sizes(PerfModel.load(), wl, fidelity.GPU, fidelity.model_saturation_rps, args.requests, args.seeds,
                      con, sizes, levels["tuning"], levels["held_out"])
    s = pool_summary(rows)
    t = Table(title="Larger pools: model vs simulator TTFT p90 (signed: < 0 under-predicts)")
    for c in ("split", "rows", "points", "MAPE %", "worst under %"):
        t.add_column(c, justify="left" if c in ("split", "rows") else "right")
    for split in ("tuning", "held_out"):
        for part, name in (("", "all"), ("_blocks", "n/IDC >= 1"), ("_small", "n/IDC < 1")):
            t.add_row(split, name, f"{s[f'{split}{part}_points']:.0f}", f"{s[f'{split}{part}_mape_pct']:.1f}",
                      f"{s[f'{split}{part}_worst_under_pct']:+.1f}")
    con.print(t)
    print(f"RESULT tuning_pool_mape_pct={s['tuning_mape_pct']:.1f} held_out_pool_mape_pct={s['held_out_mape_pct']:.1f} "
          f"tuning_small_pool_mape_pct={s['tuning_small_mape_pct']:.1f} "
          f"held_out_small_pool_mape_pct={s['held_out_small_mape_pct']:.1f} "
          f"held_out_small_pool_worst_under_pct={s['held_out_small_worst_under_pct']:.1f} "
          f"held_out_blocks_pool_mape_pct={s['held_out_blocks_mape_pct']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
