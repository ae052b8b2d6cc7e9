"""Prompt-length dispersion: the TTFT model with and without it against the simulator, and what it does to plans.

    .venv/bin/python bench/fidelity_lengths.py [--requests 6000] [--seeds 3] [--model NAME --gpu GPU --tp N]
        [--trace FILE] [--no-fidelity] [--no-plans] [--no-classes]

Why: the capacity model's prefill was M/D/1, every prompt of its class's mean length. Real prompt lengths
spread (the Azure conversation trace's have a coefficient of variation near 1), and a replica that serves
them waits as M/G/1 (Pollaczek-Khinchine: the mean wait grows by 1 + cs²) and a request's TTFT carries its
own prompt's prefill, whose p99 is several times the mean one. This bench sets the model at the mean
length (`isl_scv` 0) and with the class's measured dispersion (`ArrivalShape.isl_scv`, planner/planning/
capacity.py, Prompt-length dispersion) against the simulator replaying requests of those very lengths.

Rows: a length law (log-normal draws clipped to the model's context as planner.io.synth clips them), a
variant, a pool (one replica; four behind least-loaded routing; four behind random routing) and a load
(0.3, 0.5, 0.7 of the replica's batch-1 throughput at the lengths' mean prefill time), at p90 and p99.
The model gets the draws' mean and squared CV, what `planner workload from-trace` measures. Nothing is
fitted.

The split and the rule were written before any row was run: TUNING rows are llama-2-70b on H100 tp2
(the controller bench's model) with the Azure law and the heavy-tail law of sigma 1.4 (the tuning
heavy-tail-5rps family's); HELD-OUT rows are llama-3.1-8b and qwen3-32b on H200 (measured vLLM profiles)
and the heavy-tail law of sigma 1.2 (the held-out heavy-tail family's) on all three. The dispersion term
is adopted if, on the tuning rows, its TTFT MAPE (p90 and p99 together) is lower than the mean-length
model's and its worst under-prediction is smaller; the held-out rows are reported only.

Mixed rows (stop 30, second pass): one colocated (chunked-prefill) replica, loads 0.3-0.7 of its mean-length
capacity, outputs of OSL_MIXED tokens; the same split. Rule, written before they were run: the mixed TTFT term
(capacity.py, Prompt-length dispersion, mixed) is adopted if on the tuning mixed rows its MAPE is lower than the
mean-length model's and its worst under-prediction smaller. The first pass's rows are as they were.

Part 2, plans from traces (`--plans`): what the spread does to a plan. Each scenario trace of
bench/autoscale_trace.py (its TUNING / HELD-OUT split) goes through `planner workload from-trace`'s
bucketing (3 x 2 classes, burstiness measured, sized for the busiest minute: rate quantile 1.0, so a
static plan is meant to hold everywhere) with and without `length_spread`, is planned for llama-2-70b on
H100 tp2 (prefill / decode, the controller bench's SLO: TTFT 2 s and ITL 100 ms at p99) behind
least-loaded and behind random routing, and is replayed on its own trace. Reported: attainment (share of
requests within both SLO terms), prefill replicas, and the smallest prefill pool k* reaching 0.99 (the plan's
decode pool kept; bisection). Rule for `planner workload from-trace`'s default, written before the run: the
spread is written by default if, on the TUNING traces and both routings, its plans reach 0.99 on at least as
many traces as the mean-length plans, and every passing spread plan has at most 1.25 x k* prefill replicas
(the issue's right-sizing goal).

Part 3, classes sharing a pool (`--classes`; stop 30, third pass): `planner workload from-trace --length-spread`'s
3 x 2 classes of each scenario trace (sized for the median minute), planned for llama-2-70b on H100 tp2 (prefill /
decode, TTFT 2 s p90) behind least-loaded and random routing, then simulated with the workload's own classes (each
drawing its prompts from its law): each class's predicted TTFT p90 against the simulated one. FCFS makes every
class of a pool wait behind the whole mix of prompts: a short class waits behind the long ones. Rows: each class
waiting behind its own law (the first passes) vs behind the pool's mixture (`capacity.pool_length_mixture`). Rule,
written before the held-out traces ran: the mixture is adopted if on the tuning traces the per-class MAPE falls and
the worst under-prediction shrinks. Tuning 32.6 -> 17.0% (worst -79.3 -> -30.4%), adopted; held out 33.4 -> 15.8%
(worst -77.3 -> -30.4%). Its cost: over-predictions on least-loaded pools larger than the smallest carrying one
(the plan's predictions keep that pool's per-replica wait), up to +170%. Fourth pass (stop 31; rule written before
the run: adopted if the tuning per-class MAPE falls and the worst under-prediction does not grow): the plan predicts
a least-loaded prefill pool's classes at the pool's PLANNED replicas (planner/planning/assemble.py,
_class_prediction), not at the smallest carrying pool's: tuning 17.0 -> 9.0% (worst over +170.5 -> +9.9%, worst
under -30.4% unchanged), adopted; held out 15.8 -> 9.8% (worst over +112.2 -> +26.6%).

Part 4, output-length dispersion in the decode KV check (`--outputs`; stop 31): one KV-bound decode replica fed Poisson
arrivals of fixed prompts and log-normal outputs (TUNING_OUTPUT_ROWS / HELD_OUT_OUTPUT_ROWS, the split written before
the rows ran). The simulator's capacity is the rate (bisection) at which its p99 admission wait reaches what equal
outputs give at the mean-length model's capacity; each model's capacity is set against it (model / simulator - 1).
Rule, written before the run: adopted (`osl_scv` in the KV check, written by from-trace --length-spread, drawn by the
simulator's Poisson classes) if the tuning rows' mean |error| falls and their worst over-estimate shrinks. Tuning
(llama-2-70b H100 tp2, 1300 / 300, scv 0.5 / 1 / 2): 38.1% (worst +71.7%) -> 3.4% (worst +7.7%), adopted; held out
(llama-2-70b A100 tp2 600 / 500 and qwen3-32b H200 tp1 3000 / 200, scv 0.7 / 1.5): 44.9% (worst +129.2%) -> 2.6%.
With it, parts 2-3 (from-trace --length-spread's classes now state their outputs' spread): part 3 per-class MAPE 9.0
-> 8.7% tuning, 9.8 -> 5.4% held out; part 2's spread plans cost +4.9% over the mean-length ones and their largest
prefill / k* stays 1.50 (rule 1.25): from-trace's default stays off.
Stop 58: part 3's ablation had read the first form's memoised pool capacities for both forms since the memo came (stop 53;
both rows 30.1%): it now clears the memo. Then (before rules 58-P / 58-B): tuning 30.1 -> 8.6%, held out 31.4 -> 5.0%;
after them 12.2 -> 8.5%, 7.7 -> 4.6% (the "own law" rows now price a prefill pool's classes behind their exact mix,
rule 58-P, where no spread is stated).
Since stop 35 the simulator's decode replicas allocate KV on demand, as vLLM does (rule D1, planner/simulate/engine.py);
part 4 runs both admissions. On demand the dispersed check sits below the simulator (8.1% tuning, 11.8% held out on
average; worst over-estimate -2.5% / +2.3%: on the safe side) and the mean-length one above it (21.7% / 22.3%, worst
+40.6% / +69.2%); reserving, the figures above (3.4% / 2.6%; RESULT fields `..._reserve`).

Part 5, decode pools behind least-loaded routing (`--pools`; stop 36, rule Q1 written before its run): part 4's
generator on decode pools of 2, 4 and 8 replicas (KV on demand), the simulated capacity being the rate at which the
pool's p99 admission wait reaches part 4's pain (one replica, equal outputs, at the mean-length model's capacity);
each form's m x per-replica capacity is set against it. Rule: among the pooled forms whose tuning worst over-estimate
is <= +5%, the lowest tuning mean |error|, if below the per-replica check's. Tuning (llama-2-70b H100 tp2, 1,300 / 300,
scv 0 and 1): per replica 27.8% (worst -39.1%, every row below), pool + one reservation per replica 12.9% (worst
over -8.8%), pool 8.6% (worst over -4.6%): the pool without headroom adopted (capacity.KV_POOL_HEADROOM_SEQS 0). Held
out (llama-2-70b A100 tp2 600 / 500 and qwen3-32b H200 3,000 / 200, scv 0 and 1.5): 16.8% (worst over -0.3%) ->
8.5% (worst over +10.7%: the A100 rows with equal outputs at 4 and 8 replicas, whose 500-token lives the least-loaded
router balances less evenly than the model's even split); with headroom 8.9% (worst +8.0%).

Results (stop 30, `.venv/bin/python bench/fidelity_lengths.py`, ~2 min): part 1, prefill rows, tuning TTFT MAPE 41.0%
(mean length) -> 15.6% (the law unclipped) -> 8.9% (clipped at the longest prompt; worst -18.2%), so both passes of
the rule adopt the term; held out 42.3 -> 8.1% (worst -22.9%). Mixed rows (second pass): tuning 37.0 -> 10.8% (worst
-66.7 -> -49.3%: llama-2-70b's p99 at 0.7 load, where long prompts fill its 35,610-token KV cache and wait for
admission, which no term models), adopted; held out 31.5 -> 5.0%. All rows: tuning 40.0 -> 9.4%, held out 39.6 -> 7.3%. Part 2: every plan reaches 0.99 with or without the spread (12/12
tuning, 14/14 held out: sized for the busiest minute), and the spread plans' largest prefill / k* is 2.00 against
the mean-length plans' 1.60 (+5.7% cost on the tuning traces; +6.6% once decode KV is checked for the spread): the
rule fails, so `planner workload from-trace` writes the spread only with `--length-spread`. With part 3's mixture
(classes waiting behind their pool's mix) the spread plans' largest is 1.50 at +1.6% cost, still above 1.25: off.

Last line: RESULT tuning_mape_pct_mean_len=... tuning_mape_pct_dispersed=... held_out_mape_pct_mean_len=...
held_out_mape_pct_dispersed=... (and the worst signed errors; the mixed rows'; part 2's plans meeting 0.99, largest
prefill / k* and cost; part 3's per-class MAPEs, own law and mixture; part 4's decode capacity errors,
`*_outputs_cap_err_pct_mean_len` / `_dispersed`; part 5's `*_pool_kv_err_pct_<form>` and `*_pool_kv_worst_pct_<form>`).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import track
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_input import (  # noqa: E402
    fail, fewest_requests, known_gpu, known_model, not_found, read_model_trace, refused_as_input, require, trace_model,
    with_a_span)
from planner.io.catalog import Catalog  # noqa: E402
from planner.io.schema import Slo  # noqa: E402
from planner.planning.lengths import draw_prompt_lengths  # noqa: E402
from planner.io.synth import AZURE_PROMPT_MEAN, AZURE_PROMPT_SD, DEFAULT_MAX_CONTEXT  # noqa: E402
from planner.perf.laws import PerfModel, VariantPerf, quiet_extrapolation  # noqa: E402
from planner.planning import capacity  # noqa: E402
from planner.simulate.arrivals import Arrivals  # noqa: E402
from planner.simulate.engine import KvPolicy  # noqa: E402
from planner.simulate.fleet import ClassRoute, FleetSimulator, PoolSpec  # noqa: E402
from planner.simulate.report import build_report  # noqa: E402
from planner.simulate.steptime import FRONTEND_MS_PER_RUNNING  # noqa: E402
from burst_sizing import prefill_replicas, with_prefill  # noqa: E402
from burst_sizing import simulate as simulate_plan_on  # noqa: E402
from fidelity import _mixed_sim  # noqa: E402  (bench/: the mixed replica the real-vLLM benches replay)

# Part 1's GPU where --model names no --gpu; part 2's fleet (the tuning rows' variant: the controller bench's model)
PART1_GPU = "H100-SXM-80GB"
PART2_MODEL, PART2_GPU, PART2_TP = "llama-2-70b", "H100-SXM-80GB", 2
LOADS = (0.3, 0.5, 0.7)
PERCENTILES = (90.0, 99.0)
# (name, replicas, routing): one replica; a pool of four behind least-loaded routing and behind random routing
POOLS = (("one", 1, "least_loaded"), ("ll-4", 4, "least_loaded"), ("random-4", 4, "random"))
# Output lengths are irrelevant to a prefill pool's TTFT; a short fixed one keeps the decode side idle.
OSL = 16
# A mixed replica's prompts chunk into steps that carry its decodes: the Azure conversation trace's mean output
# (planner.io.synth's AZURE_OUTPUT_MEAN, 211) rounded.
OSL_MIXED = 200


@dataclass(frozen=True)
class LengthLaw:
    name: str
    sigma: float | None  # log-normal log-sd; None: the Azure fit (mean/sd of planner.io.synth)


AZURE = LengthLaw("azure", None)
HEAVY_14 = LengthLaw("heavy-1.4", 1.4)
HEAVY_12 = LengthLaw("heavy-1.2", 1.2)
TUNING_VARIANTS = (("llama-2-70b", "H100-SXM-80GB", 2),)
HELD_OUT_VARIANTS = (("llama-3.1-8b", "H200-141GB", 1), ("qwen3-32b", "H200-141GB", 1))


def draw_lengths(law: LengthLaw, n: int, rng: np.random.Generator, max_context: int) -> np.ndarray:
    """Prompt lengths as planner.io.synth draws them (its families' laws), clipped to the context."""
    base_s2 = math.log1p((AZURE_PROMPT_SD / AZURE_PROMPT_MEAN) ** 2)
    sigma = math.sqrt(base_s2) if law.sigma is None else law.sigma
    mu = math.log(AZURE_PROMPT_MEAN) - base_s2 / 2  # the Azure median for every law, as synth's heavytail
    isl = rng.lognormal(mu, sigma, n)
    return np.clip(np.rint(isl), 1, max_context - OSL).astype(np.int64)


def simulate_mixed(perf: VariantPerf, isl: np.ndarray, rate_rps: float, seed: int) -> np.ndarray:
    """TTFT samples (ms) of one colocated (mixed, chunked-prefill) replica fed Poisson arrivals of these prompts
    (bench/fidelity.py's replica, `_mixed_sim`), the warm-up tenth dropped."""
    t = np.cumsum(np.random.default_rng(seed).exponential(1.0 / rate_rps, isl.size))
    df, _ = _mixed_sim(perf, int(round(isl.mean())), OSL_MIXED, t, FRONTEND_MS_PER_RUNNING, isl)
    return df.ttft_ms.to_numpy()[isl.size // 10:]


def pd_requests(perf: VariantPerf, t_s: np.ndarray, isl: np.ndarray, osl: np.ndarray, prefill_replicas: int,
                decode_replicas: int, seed: int, routing: str = "least_loaded",
                decode_kv_policy: KvPolicy = "on_demand") -> pd.DataFrame:
    """The request rows of one class on a prefill pool and a decode pool of `perf` (no SLO bound), arrivals `t_s`;
    the decode replicas hold KV by `decode_kv_policy` (planner/simulate/engine.py)."""
    arr = Arrivals(t_s, np.zeros(t_s.size, dtype=np.int64), isl, osl, ("c",))
    pools = [PoolSpec("m/prefill/g/tp1", "prefill", perf, prefill_replicas),
             PoolSpec("m/decode/g/tp1", "decode", perf, decode_replicas)]
    sim = FleetSimulator(pools, {"c": ClassRoute("m", ((0, 1.0),), ((1, 1.0),))}, arr,
                         {"c": Slo(ttft_ms=1e9, itl_ms=1e9, percentile=99.0)}, seed=seed, replica_routing=routing,  # type: ignore[arg-type]
                         decode_kv_policy=decode_kv_policy)
    sim.run()
    return build_report(sim).requests


def simulate(perf: VariantPerf, isl: np.ndarray, rate_rps: float, replicas: int, routing: str, seed: int) -> np.ndarray:
    """TTFT samples (ms) of a prefill pool of `replicas` fed Poisson arrivals of these prompts at `rate_rps`."""
    rng = np.random.default_rng(seed)
    n = isl.size
    t = np.cumsum(rng.exponential(1.0 / rate_rps, n))
    df = pd_requests(perf, t, isl, np.full(n, OSL), replicas, 64, seed, routing)
    return df.ttft_ms.to_numpy()[n // 10:]  # the warm-up tenth dropped (the pool starts empty)


@dataclass
class Row:
    split: str
    variant: str
    law: str
    pool: str
    load: float
    percentile: float
    sim_ms: float
    mean_len_ms: float
    unclipped_ms: float
    dispersed_ms: float

    def err(self, model_ms: float) -> float:
        return (model_ms - self.sim_ms) / self.sim_ms * 100.0


def rows_for(split: str, perf: VariantPerf, law: LengthLaw, n: int, seeds: int) -> list[Row]:
    max_context = DEFAULT_MAX_CONTEXT
    isl = draw_lengths(law, n, np.random.default_rng(12345), max_context)
    mean, scv, longest = float(isl.mean()), float(isl.var() / isl.mean() ** 2), float(isl.max())
    s_bar = float(np.mean([perf.prefill_ms(float(x), 1.0) for x in isl]))
    out = []
    for pool, reps, routing in POOLS:
        for load in LOADS:
            rate = load * 1000.0 / s_bar  # per replica
            samples = [simulate(perf, isl, rate * reps, reps, routing, seed) for seed in range(seeds)]
            pooled = reps if routing == "least_loaded" else 1
            for p in PERCENTILES:
                sim_ms = float(np.median([np.percentile(s, p) for s in samples]))
                with quiet_extrapolation():
                    flat = capacity.latency(perf, "prefill", mean, OSL, rate, p,
                                            capacity.ArrivalShape(replicas=pooled, routing=routing)).ttft_ms  # type: ignore[arg-type]
                    unclipped = capacity.latency(perf, "prefill", mean, OSL, rate, p,
                                                 capacity.ArrivalShape(replicas=pooled, routing=routing, isl_scv=scv)).ttft_ms  # type: ignore[arg-type]
                    disp = capacity.latency(perf, "prefill", mean, OSL, rate, p,
                                            capacity.ArrivalShape(replicas=pooled, routing=routing, isl_scv=scv,  # type: ignore[arg-type]
                                                                  isl_max=longest)).ttft_ms
                out.append(Row(split, f"{perf.model}/{perf.gpu}/tp{perf.tp}", f"{law.name} (cv² {scv:.2f})", pool, load, p,
                               sim_ms, flat, unclipped, disp))
    # one colocated replica: loads are shares of its mean-length capacity with no SLO (throughput or KV binds)
    with quiet_extrapolation():
        top = capacity.capacity(perf, "mixed", mean, OSL_MIXED, 99.0).rate_rps
    for load in LOADS:
        rate = load * top
        samples = [simulate_mixed(perf, isl, rate, seed) for seed in range(seeds)]
        for p in PERCENTILES:
            sim_ms = float(np.median([np.percentile(s, p) for s in samples]))
            with quiet_extrapolation():
                flat = capacity.latency(perf, "mixed", mean, OSL_MIXED, rate, p).ttft_ms
                unclipped = capacity.latency(perf, "mixed", mean, OSL_MIXED, rate, p, capacity.ArrivalShape(isl_scv=scv)).ttft_ms
                disp = capacity.latency(perf, "mixed", mean, OSL_MIXED, rate, p,
                                        capacity.ArrivalShape(isl_scv=scv, isl_max=longest)).ttft_ms
            out.append(Row(split, f"{perf.model}/{perf.gpu}/tp{perf.tp}", f"{law.name} (cv² {scv:.2f})", "mixed", load, p,
                           sim_ms, flat, unclipped, disp))
    return out


def summary(rows: list[Row]) -> dict[str, float]:
    if not rows:
        return {}
    e_flat = np.array([r.err(r.mean_len_ms) for r in rows])
    e_disp = np.array([r.err(r.dispersed_ms) for r in rows])
    e_unc = np.array([r.err(r.unclipped_ms) for r in rows])
    return {"mape_mean_len": float(np.mean(np.abs(e_flat))), "mape_dispersed": float(np.mean(np.abs(e_disp))),
            "mape_unclipped": float(np.mean(np.abs(e_unc))), "worst_under_unclipped": float(e_unc.min()),
            "worst_over_unclipped": float(e_unc.max()),
            "worst_under_mean_len": float(e_flat.min()), "worst_under_dispersed": float(e_disp.min()),
            "worst_over_dispersed": float(e_disp.max())}


@dataclass
class PlanRow:
    split: str
    trace: str
    routing: str
    spread: bool
    attainment: float
    prefill: int
    smallest: int
    cost_per_hour: float


def plans_from_traces(pm: PerfModel, con: Console, target: float = 0.99,
                      trace: tuple[Path, pd.DataFrame] | None = None) -> list[PlanRow]:
    """Part 2 (module doc); `trace`: that trace alone (its path, and its requests as `given_trace` read them), counted
    as held out."""
    from autoscale_trace import SCENARIO_S, SCENARIOS, Scenario, read_trace_frame

    from planner.io.catalog import Catalog
    from planner.io.schema import Fleet, FleetLimits, GpuInventory
    from planner.io.synth import synth
    from planner.io.traces import bucket_trace
    from planner.planning.assemble import plan_workload
    from planner.simulate.arrivals import trace_arrivals

    catalog = Catalog.load()
    slo = Slo(ttft_ms=2000.0, itl_ms=100.0, percentile=99.0)
    rows: list[PlanRow] = []
    scenarios = SCENARIOS if trace is None else (Scenario(trace[0].name, "held-out", "file", path=trace[0]),)
    cases = [(sc, routing) for sc in scenarios for routing in ("least_loaded", "random")]
    for sc, routing in track(cases, description="plans from traces", console=con):
        tr = (trace[1] if trace is not None
              else read_trace_frame(synth(sc.family, SCENARIO_S, sc.seed, "llama-2-70b", **dict(sc.params))))
        fleet = Fleet(gpus={PART2_GPU: GpuInventory(available=1024)},
                      limits=FleetLimits(allowed_tp=[PART2_TP], roles=["prefill", "decode"], default_min_replicas=1, routing=routing))  # type: ignore[arg-type]
        for spread in (False, True):
            wl = bucket_trace(tr, slo, rate_quantile=1.0, burstiness=True, length_spread=spread)
            with quiet_extrapolation():
                plan = plan_workload(wl, fleet, pm, catalog)
            arr = trace_arrivals(tr, wl)
            k_plan = prefill_replicas(plan)
            att = simulate_plan_on(plan, pm, arr, wl, 0)[1]
            lo, hi = 0, max(1, k_plan)  # lo fails (or 0), hi passes
            while simulate_plan_on(with_prefill(plan, hi), pm, arr, wl, 0)[1] < target and hi < 8 * max(1, k_plan):
                lo, hi = hi, 2 * hi
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if simulate_plan_on(with_prefill(plan, mid), pm, arr, wl, 0)[1] >= target:
                    hi = mid
                else:
                    lo = mid
            rows.append(PlanRow(sc.split, sc.name, routing, spread, att, k_plan, hi, plan.cost_per_hour))
    return rows


def classes_sharing_a_pool(pm: PerfModel, con: Console, split: str, mixture: bool) -> list[float]:
    """Part 3 (module doc): signed % errors of each class's predicted TTFT p90 against the simulated one."""
    from autoscale_trace import SCENARIO_S, SCENARIOS, read_trace_frame

    from planner.api import simulate as simulate_plan
    from planner.api import solve
    from planner.io.schema import Fleet, FleetLimits, GpuInventory
    from planner.io.synth import synth
    from planner.io.traces import bucket_trace

    slo = Slo(ttft_ms=2000.0, itl_ms=100.0, percentile=90.0)
    real_mixture = capacity.pool_length_mixture
    if not mixture:  # the ablation: each class waits behind its own law, as before the third pass
        capacity.pool_length_mixture = lambda classes: None  # type: ignore[assignment]
    # the pools' capacities are memoised on their arguments, not on the function swapped above: without the clear the
    # second form read the first one's (found at stop 58: both forms printed 30.1% since the memo came, stop 53)
    capacity._pool_class_capacities_memo.cache_clear()
    errs: list[float] = []
    try:
        for sc in (x for x in SCENARIOS if x.split == split and x.path is None):
            tr = read_trace_frame(synth(sc.family, SCENARIO_S, sc.seed, "llama-2-70b", **dict(sc.params)))
            wl = bucket_trace(tr, slo, rate_quantile=0.5, length_spread=True)
            for routing in ("least_loaded", "random"):
                fl = Fleet(gpus={"H100-SXM-80GB": GpuInventory(available=1024)},
                           limits=FleetLimits(allowed_tp=[2], roles=["prefill", "decode"], routing=routing))  # type: ignore[arg-type]
                with quiet_extrapolation():
                    plan = solve(wl, fl)
                    rep = simulate_plan(plan, wl, duration_s=1800.0, perf=pm)
                pred = {c: v.ttft_ms for mp in plan.models.values() for c, v in mp.predicted.items()}
                errs += [(pred[r.class_id] - r.ttft_p90_ms) / r.ttft_p90_ms * 100.0 for _, r in rep.classes.iterrows()]
    finally:
        capacity.pool_length_mixture = real_mixture  # type: ignore[assignment]
        capacity._pool_class_capacities_memo.cache_clear()
    return errs


def part3(pm: PerfModel, con: Console) -> list[str]:
    t = Table(title="Classes sharing a pool: each class's predicted TTFT p90 vs the simulator's (signed %)")
    for c in ("set", "wait behind", "classes", "MAPE %", "worst under %", "worst over %"):
        t.add_column(c, justify="left" if c in ("set", "wait behind") else "right")
    fields = []
    for split, key in (("tuning", "tuning"), ("held-out", "held_out")):
        for mixture in (False, True):
            e = np.array(classes_sharing_a_pool(pm, con, split, mixture))
            name = "the pool's mixture" if mixture else "its own law"
            t.add_row(split, name, str(e.size), f"{np.mean(np.abs(e)):.1f}", f"{e.min():+.1f}", f"{e.max():+.1f}")
            fields.append(f"{key}_classes_mape_pct_{'mixture' if mixture else 'own'}={np.mean(np.abs(e)):.1f}")
    con.print(t)
    return fields


# Part 4, output-length dispersion in the decode KV check (stop 31): KV-bound decode variants at one length pair each,
# log-normal outputs of these squared CVs. The split was written before the rows ran (RULES in the module doc).
TUNING_OUTPUT_ROWS: tuple[tuple[str, str, int, int, int, tuple[float, ...]], ...] = (
    ("llama-2-70b", "H100-SXM-80GB", 2, 1300, 300, (0.5, 1.0, 2.0)),
)
HELD_OUT_OUTPUT_ROWS: tuple[tuple[str, str, int, int, int, tuple[float, ...]], ...] = (
    ("llama-2-70b", "A100-80GB", 2, 600, 500, (0.7, 1.5)),
    ("qwen3-32b", "H200-141GB", 1, 3000, 200, (0.7, 1.5)),
)
# Bisection steps on the simulated decode capacity (2^-7 of the bracket: < 1% of the rate) and its bracket, x the
# mean-length capacity.
OUTPUT_BISECTION_STEPS = 7
OUTPUT_BRACKET = (0.2, 1.3)


def admission_wait_p99_ms(perf: VariantPerf, isl: int, osl: int, osl_scv: float, rate_rps: float, n: int,
                          seeds: int, decode_kv_policy: KvPolicy = "on_demand", replicas: int = 1) -> float:
    """The p99 decode admission wait (first token after the KV arrives, ms) of a decode pool of `replicas` (ONE by
    default; least-loaded routing) fed Poisson arrivals of `isl`-token prompts and log-normal outputs of mean `osl`
    and squared CV `osl_scv` (the simulator's Poisson classes' law), the prefill side over-provisioned; the median
    over `seeds` seeds, the first fifth dropped."""
    vals = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        t = np.cumsum(rng.exponential(1.0 / rate_rps, n))
        outs = np.minimum(draw_prompt_lengths(osl, osl_scv, None, n, rng), perf.kv_capacity_tokens - isl - 1)
        with quiet_extrapolation():
            df = pd_requests(perf, t, np.full(n, isl), outs, 64, replicas, seed,
                             decode_kv_policy=decode_kv_policy).iloc[n // 5:]
        vals.append(float(np.percentile(df.kv_wait_ms.to_numpy(dtype=float), 99)))
    return float(np.median(vals))


def simulated_decode_capacity(perf: VariantPerf, isl: int, osl: int, osl_scv: float, pain_ms: float, cap0: float,
                              n: int, seeds: int, decode_kv_policy: KvPolicy = "on_demand", replicas: int = 1,
                              bracket: tuple[float, float] = OUTPUT_BRACKET) -> float:
    """The rate at which the simulated p99 admission wait of a pool of `replicas` reaches `pain_ms` (bisection over
    `bracket` x cap0)."""
    lo, hi = bracket[0] * cap0, bracket[1] * cap0
    for _ in range(OUTPUT_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        wait = admission_wait_p99_ms(perf, isl, osl, osl_scv, mid, n, seeds, decode_kv_policy, replicas)
        lo, hi = (mid, hi) if wait <= pain_ms else (lo, mid)
    return 0.5 * (lo + hi)


def part4(pm: PerfModel, args: argparse.Namespace, con: Console) -> list[str]:
    """Part 4 (module doc): each row's simulated decode capacity against the mean-length and the dispersed model's,
    with the simulator's decode replicas allocating on demand (its default since stop 35, as vLLM does) and reserving
    isl + osl (the admission the check was written against, stop 31): RESULT fields `..._reserve` for the latter."""
    return part4_policy(pm, args, con, "on_demand", "") + part4_policy(pm, args, con, "reserve", "_reserve")


def part4_policy(pm: PerfModel, args: argparse.Namespace, con: Console, policy: KvPolicy, suffix: str) -> list[str]:
    """Part 4 with the simulator's decode replicas holding KV by `policy`; RESULT field names end in `suffix`."""
    t = Table(title=f"Output-length dispersion: one KV-bound decode replica's capacity, model vs simulator (decode KV "
                    f"{policy}; error = model / simulator - 1; + = the model would under-size)")
    for c in ("set", "variant", "isl/osl", "osl scv", "sim rps", "mean-length rps", "err %", "dispersed rps", "err %"):
        t.add_column(c, justify="left" if c in ("set", "variant") else "right")
    errs: dict[tuple[str, str], list[float]] = {}
    rows = [("tuning", r) for r in TUNING_OUTPUT_ROWS] + [("held-out", r) for r in HELD_OUT_OUTPUT_ROWS]
    n, seeds = args.output_requests, 2
    for split, (model, gpu, tp, isl, osl, scvs) in track(rows, description=f"part 4: decode capacity ({policy})", console=con):
        perf = pm.get(model, gpu, tp)
        if perf is None:
            continue
        with quiet_extrapolation():
            cap0 = capacity.capacity(perf, "decode", isl, osl, 99.0, None, 100.0).rate_rps
            # the pain the mean-length model accepts at its capacity, with every output of the mean length
            pain = admission_wait_p99_ms(perf, isl, osl, 0.0, cap0, n, seeds, policy)
            for scv in scvs:
                cap_d = capacity.capacity(perf, "decode", isl, osl, 99.0, None, 100.0,
                                          capacity.ArrivalShape(osl_scv=scv)).rate_rps
                sim = simulated_decode_capacity(perf, isl, osl, scv, pain, cap0, n, seeds, policy)
                e0, ed = (cap0 / sim - 1.0) * 100.0, (cap_d / sim - 1.0) * 100.0
                errs.setdefault((split, "mean"), []).append(e0)
                errs.setdefault((split, "disp"), []).append(ed)
                t.add_row(split, f"{model}/{gpu}/tp{tp}", f"{isl}/{osl}", f"{scv:g}", f"{sim:.3f}", f"{cap0:.3f}",
                          f"{e0:+.1f}", f"{cap_d:.3f}", f"{ed:+.1f}")
    con.print(t)
    fields = []
    for split, key in (("tuning", "tuning"), ("held-out", "held_out")):
        for kind, name in (("mean", "mean_len"), ("disp", "dispersed")):
            e = np.array(errs.get((split, kind), [math.nan]))
            con.print(f"{split}, decode capacity with dispersed outputs ({policy}), {name}: mean |error| {np.mean(np.abs(e)):.1f}%, "
                      f"worst over-estimate {e.max():+.1f}%")
            fields.append(f"{key}_outputs_cap_err_pct_{name}{suffix}={np.mean(np.abs(e)):.1f}")
    return fields


# Part 5, decode pools behind least-loaded routing (stop 36, rule Q1 in the module doc): part 4's generator and pain on
# pools of POOL_SIZES replicas; rows (isl, osl, output scvs) per variant, the split written before the rows ran.
POOL_SIZES = (2, 4, 8)
TUNING_POOL_ROWS: tuple[tuple[str, str, int, int, int, tuple[float, ...]], ...] = (
    ("llama-2-70b", "H100-SXM-80GB", 2, 1300, 300, (0.0, 1.0)),
)
HELD_OUT_POOL_ROWS: tuple[tuple[str, str, int, int, int, tuple[float, ...]], ...] = (
    ("llama-2-70b", "A100-80GB", 2, 600, 500, (0.0, 1.5)),
    ("qwen3-32b", "H200-141GB", 1, 3000, 200, (0.0, 1.5)),
)
# The pooled capacity may pass m x one replica's (the pool shares its cache): the bisection's bracket, x that.
POOL_BRACKET = (0.5, 2.0)
# The forms set against the simulator: the per-replica check (each replica its 1/m share), the pool's check with one
# reservation of headroom per replica (capacity.KV_POOL_HEADROOM_SEQS) and with none (perfect balance).
POOL_FORMS: tuple[tuple[str, int, float], ...] = (("per-replica", 1, 0.0), ("pool + 1", 0, 1.0), ("pool", 0, 0.0))


def pool_model_rps(perf: VariantPerf, isl: int, osl: int, scv: float, m: int, pooled: bool, headroom: float) -> float:
    """The planner's decode capacity of a pool of `m` (m x one replica's): pooled or per replica, with `headroom`
    reservations per replica (capacity.KV_POOL_HEADROOM_SEQS, set for the call)."""
    saved = capacity.KV_POOL_HEADROOM_SEQS
    capacity.KV_POOL_HEADROOM_SEQS = headroom
    try:
        shape = capacity.ArrivalShape(osl_scv=scv, kv_pool=m if pooled else 1)
        return m * capacity.capacity(perf, "decode", isl, osl, 99.0, None, 100.0, shape).rate_rps
    finally:
        capacity.KV_POOL_HEADROOM_SEQS = saved


def part5(pm: PerfModel, args: argparse.Namespace, con: Console) -> list[str]:
    """Part 5 (module doc): each row's simulated decode pool capacity (least-loaded, KV on demand) against the
    planner's per-replica check and the pooled forms. Error = model / simulator - 1 (+: the model would load the pool
    past what the simulator holds at part 4's pain)."""
    t = Table(title="Decode pools behind least-loaded routing: KV-bound capacity, model vs simulator (req/s; error = "
                    "model / simulator - 1; + = the model would overload the pool)")
    for c in ("set", "variant", "isl/osl", "osl scv", "replicas", "sim rps", *(f"{f} err %" for f, _, _ in POOL_FORMS)):
        t.add_column(c, justify="left" if c in ("set", "variant") else "right")
    errs: dict[tuple[str, str], list[float]] = {}
    rows = [("tuning", r) for r in TUNING_POOL_ROWS] + [("held-out", r) for r in HELD_OUT_POOL_ROWS]
    seeds = 2
    cases = [(split, row, scv, m) for split, row in rows for scv in row[5] for m in POOL_SIZES]
    pains: dict[tuple[str, str, int], tuple[float, float]] = {}
    for split, (model, gpu, tp, isl, osl, _), scv, m in track(cases, description="part 5: decode pools", console=con):
        perf = pm.get(model, gpu, tp)
        if perf is None:
            continue
        with quiet_extrapolation():
            if (model, gpu, tp) not in pains:
                cap0 = capacity.capacity(perf, "decode", isl, osl, 99.0, None, 100.0).rate_rps
                pain = admission_wait_p99_ms(perf, isl, osl, 0.0, cap0, args.output_requests, seeds)
                pains[(model, gpu, tp)] = (cap0, pain)
            cap0, pain = pains[(model, gpu, tp)]
            sim = simulated_decode_capacity(perf, isl, osl, scv, pain, m * cap0, args.output_requests * m, seeds,
                                            replicas=m, bracket=POOL_BRACKET)
            cells = []
            for form, per_replica, headroom in POOL_FORMS:
                e = (pool_model_rps(perf, isl, osl, scv, m, not per_replica, headroom) / sim - 1.0) * 100.0
                errs.setdefault((split, form), []).append(e)
                cells.append(f"{e:+.1f}")
        t.add_row(split, f"{model}/{gpu}/tp{tp}", f"{isl}/{osl}", f"{scv:g}", str(m), f"{sim:.3f}", *cells)
    con.print(t)
    fields = []
    for split, key in (("tuning", "tuning"), ("held-out", "held_out")):
        for form, _, _ in POOL_FORMS:
            e = np.array(errs.get((split, form), [math.nan]))
            name = form.replace(" + 1", "_headroom").replace("-", "_").replace(" ", "_")
            con.print(f"{split}, decode pools, {form}: mean |error| {np.mean(np.abs(e)):.1f}%, "
                      f"worst over-estimate {e.max():+.1f}%")
            fields += [f"{key}_pool_kv_err_pct_{name}={np.mean(np.abs(e)):.1f}",
                       f"{key}_pool_kv_worst_pct_{name}={e.max():+.1f}"]
    return fields


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=6000, help="requests per simulated point")
    ap.add_argument("--seeds", type=int, default=3, help="repeats per point (median of their percentiles)")
    ap.add_argument("--model", default=None, help="run one variant alone (with --gpu, --tp): its rows count as held out")
    ap.add_argument("--gpu", default=None, help=f"--model's catalog GPU type (case-insensitive; default: {PART1_GPU})")
    ap.add_argument("--tp", type=int, default=1, help="--model's tensor-parallel size")
    ap.add_argument("--plans", action=argparse.BooleanOptionalAction, default=True, help="part 2: plans from traces")
    ap.add_argument("--trace", type=Path, default=None,
                    help="part 2 on this trace alone (timestamp,model,input_tokens,output_tokens; or an Azure, BurstGPT or "
                         f"Mooncake trace): its requests of --model, else of its own model, else of {PART2_MODEL}, "
                         f"planned on {PART2_GPU} tp{PART2_TP}")
    ap.add_argument("--fidelity", action=argparse.BooleanOptionalAction, default=True, help="part 1: the model's rows")
    ap.add_argument("--classes", action=argparse.BooleanOptionalAction, default=True, help="part 3: classes sharing a pool")
    ap.add_argument("--outputs", action=argparse.BooleanOptionalAction, default=True,
                    help="part 4: output-length dispersion in the decode KV check")
    ap.add_argument("--output-requests", type=int, default=6000,
                    help="parts 4-5: requests per simulated point (x replicas)")
    ap.add_argument("--pools", action=argparse.BooleanOptionalAction, default=True,
                    help="part 5: decode pools behind least-loaded routing")
    args = ap.parse_args(argv)
    least = fewest_requests(max(PERCENTILES))
    for flag, n in (("--requests", args.requests), ("--output-requests", args.output_requests)):
        require(n >= least, flag, f"a whole number >= {least} (a p{max(PERCENTILES):g} of fewer is their largest)", n)
    require(args.seeds >= 1, "--seeds", "a whole number >= 1", args.seeds)
    # found in QA: --tp 0 (or --gpu, --tp alone) ran every part with exit 0, ignored: they choose --model's variant
    require(args.tp >= 1, "--tp", "a whole number >= 1", args.tp)
    if not args.model and (args.gpu or args.tp != 1):
        fail("--gpu/--tp: choose the variant of --model's held-out run, which only --model starts; give --model")
    con = Console(width=160)
    pm = PerfModel.load()
    if args.trace is not None and not args.trace.is_file():
        print(f"--trace {args.trace}: {not_found(args.trace)} (expected a request trace CSV)", file=sys.stderr)
        sys.exit(2)
    if args.trace is not None and not args.plans:  # --trace runs part 2 alone (parts 3-5 skipped): nothing would use it
        fail("--trace: runs part 2 on that trace, which --no-plans skips; leave one out")
    if args.model or args.gpu:  # an unknown model or GPU: exit 2 naming the known ones, before any work
        cat = Catalog.load()
        args.model = known_model(cat, args.model) if args.model else None
        args.gpu = known_gpu(cat, args.gpu) if args.gpu else None
    if args.model and args.fidelity and pm.get(args.model, args.gpu or PART1_GPU, args.tp) is None:
        fail(f"--model/--gpu/--tp: {args.model} has no performance law on {args.gpu or PART1_GPU} at tp{args.tp}")
    given = None if args.trace is None else (args.trace, given_trace(pm, args.trace, args.model))  # before any work
    fields: list[str] = []
    if args.fidelity:
        fields += part1(pm, args, con)
    if args.plans:
        fields += part2(pm, con, given)
    if args.classes and args.trace is None:
        fields += part3(pm, con)
    if args.outputs and args.trace is None:
        fields += part4(pm, args, con)
    if args.pools and args.trace is None:
        fields += part5(pm, args, con)
    print("RESULT " + " ".join(fields))


def given_trace(pm: PerfModel, path: Path, model: str | None) -> pd.DataFrame:
    """Part 2's --trace, read and checked before any work: the requests of `model` (--model), else of the trace's own
    model where its model column names one (any case), else of llama-2-70b (the tuning rows' model, for a trace with no
    model column); at more than one instant, and of a model with a law on part 2's fleet. Found by a helper's QA: the
    trace was read after part 1's minutes of work, and any model's but llama-2-70b's was refused there, "no request of
    model 'llama-2-70b' in the trace"."""
    cat = Catalog.load()
    name = known_model(cat, model or trace_model(path) or PART2_MODEL)
    with refused_as_input("--trace: "):
        tr = with_a_span(read_model_trace(path, name), path)
    if pm.get(name, PART2_GPU, PART2_TP) is None:
        fail(f"--trace: {name} has no performance law on {PART2_GPU} at tp{PART2_TP} (part 2's fleet)")
    return tr


def part1(pm: PerfModel, args: argparse.Namespace, con: Console) -> list[str]:
    cases: list[tuple[str, tuple[str, str, int], LengthLaw]] = []
    if args.model:
        cases = [("held-out", (args.model, args.gpu or PART1_GPU, args.tp), law) for law in (AZURE, HEAVY_14, HEAVY_12)]
    else:
        cases += [("tuning", v, law) for v in TUNING_VARIANTS for law in (AZURE, HEAVY_14)]
        cases += [("held-out", v, HEAVY_12) for v in TUNING_VARIANTS]
        cases += [("held-out", v, law) for v in HELD_OUT_VARIANTS for law in (AZURE, HEAVY_14, HEAVY_12)]
    rows: list[Row] = []
    for split, (model, gpu, tp), law in track(cases, description="length laws x variants", console=con):
        perf = pm.get(model, gpu, tp)
        if perf is None:
            con.print(f"[red]no profile for {model} on {gpu} tp{tp}[/red]")
            sys.exit(2)
        rows += rows_for(split, perf, law, args.requests, args.seeds)
    t = Table(title=f"Prefill TTFT, model vs simulator ({args.requests} requests, median of {args.seeds} seeds; error % signed)")
    for c in ("set", "variant", "prompt lengths", "pool", "load", "p", "sim ms", "mean-length ms", "err %", "unclipped ms", "err %",
              "dispersed ms", "err %"):
        t.add_column(c, justify="left" if c in ("set", "variant", "prompt lengths", "pool") else "right")
    for r in rows:
        t.add_row(r.split, r.variant, r.law, r.pool, f"{r.load:.1f}", f"{r.percentile:.0f}", f"{r.sim_ms:.0f}",
                  f"{r.mean_len_ms:.0f}", f"{r.err(r.mean_len_ms):+.1f}", f"{r.unclipped_ms:.0f}",
                  f"{r.err(r.unclipped_ms):+.1f}", f"{r.dispersed_ms:.0f}", f"{r.err(r.dispersed_ms):+.1f}")
    con.print(t)
    fields = []
    for name, key in (("tuning", "tuning"), ("held-out", "held_out")):
        sm = summary([r for r in rows if r.split == name and r.pool == "mixed"])
        if sm:
            con.print(f"{name}, mixed rows: MAPE mean-length {sm['mape_mean_len']:.1f}% -> dispersed {sm['mape_dispersed']:.1f}%; "
                      f"worst under-prediction {sm['worst_under_mean_len']:+.1f}% -> {sm['worst_under_dispersed']:+.1f}%")
            fields += [f"{key}_mixed_mape_pct_mean_len={sm['mape_mean_len']:.1f}",
                       f"{key}_mixed_mape_pct_dispersed={sm['mape_dispersed']:.1f}"]
    for name, key in (("tuning", "tuning"), ("held-out", "held_out")):
        sm = summary([r for r in rows if r.split == name])
        if not sm:
            continue
        con.print(f"{name}: unclipped law: MAPE {sm['mape_unclipped']:.1f}%, worst {sm['worst_under_unclipped']:+.1f} / "
                  f"{sm['worst_over_unclipped']:+.1f}%")
        con.print(f"{name}: MAPE mean-length {sm['mape_mean_len']:.1f}% -> dispersed {sm['mape_dispersed']:.1f}%; "
                  f"worst under-prediction {sm['worst_under_mean_len']:+.1f}% -> {sm['worst_under_dispersed']:+.1f}%; "
                  f"worst over {sm['worst_over_dispersed']:+.1f}%")
        fields += [f"{key}_mape_pct_mean_len={sm['mape_mean_len']:.1f}", f"{key}_mape_pct_dispersed={sm['mape_dispersed']:.1f}",
                   f"{key}_worst_under_pct_mean_len={sm['worst_under_mean_len']:.1f}",
                   f"{key}_worst_under_pct_dispersed={sm['worst_under_dispersed']:.1f}"]
    return fields + [f"rows={len(rows)}"]


def part2(pm: PerfModel, con: Console, trace: tuple[Path, pd.DataFrame] | None = None) -> list[str]:
    rows = plans_from_traces(pm, con, trace=trace)
    t = Table(title="Static plans from traces (busiest minute), replayed on the trace: mean-length vs spread")
    for c in ("set", "trace", "routing", "plan", "attainment", "prefill", "k* (0.99)", "prefill / k*", "$/h"):
        t.add_column(c, justify="left" if c in ("set", "trace", "routing", "plan") else "right")
    for r in rows:
        t.add_row(r.split, r.trace, r.routing, "spread" if r.spread else "mean-length", f"{r.attainment:.4f}", str(r.prefill),
                  str(r.smallest), f"{r.prefill / r.smallest:.2f}", f"{r.cost_per_hour:.2f}")
    con.print(t)
    fields = []
    for split, key in (("tuning", "tuning"), ("held-out", "held_out")):
        for spread in (False, True):
            sel = [r for r in rows if r.split == split and r.spread == spread]
            if not sel:
                continue
            name = "spread" if spread else "mean_len"
            passing = [r for r in sel if r.attainment >= 0.99]
            fields += [f"{key}_plans_meeting_{name}={len(passing)}/{len(sel)}",
                       f"{key}_plans_max_over_kstar_{name}={max((r.prefill / r.smallest for r in passing), default=math.nan):.2f}",
                       f"{key}_plans_cost_{name}={sum(r.cost_per_hour for r in sel):.1f}"]
    return fields


if __name__ == "__main__":
    main()
