"""Fidelity of the queueing model (planner.capacity) against the simulator, and of the simulator
against measured batch latencies (Splitwise Llama2-70B, ../shared/data/splitwise-perf).

Part 1, model vs simulation: for each class of the workload (default: examples/default) and each
load in a grid (share of one replica's saturation rate), simulate ONE replica of the role under
Poisson arrivals and compare:
  prefill role: TTFT p90 (queue + batch + KV transfer)   vs capacity.prefill_latency
  decode role:  per-request mean ITL p90                 vs capacity.decode_latency
  mixed role:   TTFT p90 and ITL p90                     vs capacity.mixed_latency (reported apart)
Saturation: the largest rate at which the queueing model's prediction is finite (bisection), so
the grid is a share of the model's own saturation point (decode/mixed: also within
max_num_seqs and the KV cache, past which the engine queues instead of batching).

Part 2, simulation vs measurement: b prompts of the measured size arrive together at an idle
prefill replica (the simulator batches them into one pass) and at a decode replica; the
simulated batch time and mean step time are compared with Splitwise's prompt_time and token_time
(medians of the 5 repeats) through the fitted laws of the bundled profiles.

Part 3, bursty arrivals (bench/fidelity_burst.py): the same comparison with clustered arrivals
at several IDC levels (tuning and held-out levels reported apart), the Poisson model's error on
the same cases, and the SLO a prefill replica sized by each model keeps in simulation.

Part 4, real vLLM under load: the committed Poisson rate sweep of a real vLLM 0.26.0 mixed replica
(``--load-sweep``, default profiles/data/llama-3.1-8b/H200-141GB/tp1/vllm/load_sweep.csv: open loop,
seeded, per-request rows, ISL 1k and 4k, several rates) against the capacity model
(capacity.mixed_latency) and the simulator at the same rates, both with the laws fitted on the vLLM
profile in the same folder: TTFT and ITL p50/p90/p99 and the saturation rate (see
:func:`part_vllm_load`).

Usage: .venv/bin/python bench/fidelity.py [--workload W.yaml] [--requests N] [--seeds K] [--no-bursty] [--load-sweep CSV]
Last line: RESULT ttft_p90_mape_pct=... itl_p90_mape_pct=... (prefill TTFT and decode ITL, part 1),
then burst_* (part 3, held-out IDC levels), poisson_on_burst_* (the Poisson model on them) and the
real-vLLM-under-load errors of part 4.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from planner import capacity  # noqa: E402
from planner.fileio import load_model  # noqa: E402
from planner.perf import PerfModel, VariantPerf  # noqa: E402
from planner.schema import Slo, Workload  # noqa: E402
from planner.simulate.arrivals import Arrivals  # noqa: E402
from planner.simulate.fleet import ClassRoute, FleetSimulator, PoolSpec  # noqa: E402
from planner.simulate.report import build_report  # noqa: E402

# GPU the default example's classes are checked on (the planner's default example runs on H100).
GPU = "H100-SXM-80GB"
LOADS = (0.2, 0.35, 0.5, 0.65, 0.8, 0.9)
PERCENTILE = 90.0
# Splitwise hardware names -> catalog GPU names.
SPLITWISE_GPUS = {"a100-80gb": "A100-80GB", "h100-80gb": "H100-SXM-80GB"}


def prefill_saturation_rps(perf: VariantPerf, isl: int) -> float:
    b = max(1, perf.max_batched_tokens // isl) if isl <= perf.max_batched_tokens else 1
    return b * 1000.0 / perf.prefill_ms(isl, b)


def decode_saturation_rps(perf: VariantPerf, isl: int, osl: int) -> float:
    ctx = isl + osl / 2
    slope = perf.decode_beta_ms_per_seq + perf.decode_gamma_ms_per_token * ctx
    n_max = min(perf.max_num_seqs, perf.kv_capacity_tokens / (isl + osl))
    # Little: N = λ·osl·t(N)/1000  ->  λ at N = n_max, and the divergence rate 1000/(osl·slope)
    lam_n = n_max * 1000.0 / (osl * perf.decode_step_ms(n_max, ctx))
    return min(lam_n, 1000.0 / (osl * slope))


def model_saturation_rps(perf: VariantPerf, role: str, isl: int, osl: int) -> float:
    """Largest rate at which the queueing model still predicts finite latency (bisection), so the
    load grid is a share of the model's own saturation and every prediction is finite."""
    hi = 2.0 * max(prefill_saturation_rps(perf, isl), decode_saturation_rps(perf, isl, osl))
    lo = 0.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lat = capacity.latency(perf, role, isl, osl, mid, PERCENTILE)
        ok = math.isfinite(lat.ttft_ms) and math.isfinite(lat.itl_ms)
        if role != "prefill":  # engine limits: the batch must fit max_num_seqs and the KV cache
            ok = ok and lat.batch <= perf.max_num_seqs and lat.batch * (isl + osl) <= perf.kv_capacity_tokens
        lo, hi = (mid, hi) if ok else (lo, mid)
    return lo


def poisson(rate: float, n: int, isl: int, osl: int, rng: np.random.Generator) -> Arrivals:
    t = np.cumsum(rng.exponential(1.0 / rate, n))
    return Arrivals(t, np.zeros(n, dtype=np.int64), np.full(n, isl), np.full(n, osl), ("c",))


def simulate_role(perf: VariantPerf, role: str, isl: int, osl: int, rate: float, n: int, seed: int) -> tuple[float, float]:
    """(TTFT p90, ITL p90) in ms of one replica of `role`; the other side is over-provisioned."""
    arr = poisson(rate, n, isl, osl, np.random.default_rng(seed))
    slo = {"c": Slo(ttft_ms=1e9, itl_ms=1e9, percentile=PERCENTILE)}
    if role == "mixed":
        pools = [PoolSpec("m/mixed/g/tp1", "mixed", perf, 1)]
        route = ClassRoute("m", ((0, 1.0),), ())
    else:
        n_pre = 1 if role == "prefill" else 64
        n_dec = 64 if role == "prefill" else 1
        pools = [PoolSpec("m/prefill/g/tp1", "prefill", perf, n_pre), PoolSpec("m/decode/g/tp1", "decode", perf, n_dec)]
        route = ClassRoute("m", ((0, 1.0),), ((1, 1.0),))
    sim = FleetSimulator(pools, {"c": route}, arr, slo, seed=seed)
    sim.run()
    df = build_report(sim).requests
    df = df.iloc[n // 10:]  # drop the warm-up tenth (the replica starts empty)
    return float(np.nanpercentile(df.ttft_ms, PERCENTILE)), float(np.nanpercentile(df.itl_ms, PERCENTILE))


def ape(sim: float, model: float) -> float:
    return abs(model - sim) / sim * 100.0


def part1(pm: PerfModel, wl: Workload, n: int, seeds: int, con: Console) -> dict[str, list[float]]:
    t = Table(title=f"Queueing model vs simulation, one replica, p{PERCENTILE:g}, {n} requests x {seeds} seeds (median)")
    for c in ("class", "role", "load", "rate rps", "sim TTFT", "model TTFT", "sim ITL", "model ITL", "err %"):
        t.add_column(c, justify="left" if c in ("class", "role") else "right")
    errs: dict[str, list[float]] = {"prefill_ttft": [], "decode_itl": [], "mixed_ttft": [], "mixed_itl": []}
    for c in wl.classes:
        perf = pm.get(c.model, GPU, 1) or pm.get(c.model, GPU, 4)
        if perf is None:
            continue
        for role in ("prefill", "decode", "mixed"):
            sat = model_saturation_rps(perf, role, c.isl, c.osl)
            for load in LOADS:
                rate = load * sat
                runs = [simulate_role(perf, role, c.isl, c.osl, rate, n, s) for s in range(seeds)]
                s_ttft = float(np.median([r[0] for r in runs]))
                s_itl = float(np.median([r[1] for r in runs]))
                lat = capacity.latency(perf, role, c.isl, c.osl, rate, PERCENTILE)
                if role == "prefill":
                    e = ape(s_ttft, lat.ttft_ms)
                    errs["prefill_ttft"].append(e)
                    err = f"{e:.1f}"
                elif role == "decode":
                    e = ape(s_itl, lat.itl_ms)
                    errs["decode_itl"].append(e)
                    err = f"{e:.1f}"
                else:
                    e1, e2 = ape(s_ttft, lat.ttft_ms), ape(s_itl, lat.itl_ms)
                    errs["mixed_ttft"].append(e1)
                    errs["mixed_itl"].append(e2)
                    err = f"{e1:.1f} / {e2:.1f}"
                show_t = role != "decode"
                show_i = role != "prefill"
                t.add_row(c.id, f"{role} {perf.source[:4]}", f"{load:.2f}", f"{rate:.2f}",
                          f"{s_ttft:.0f}" if show_t else "-", f"{lat.ttft_ms:.0f}" if show_t else "-",
                          f"{s_itl:.1f}" if show_i else "-", f"{lat.itl_ms:.1f}" if show_i else "-", err)
    con.print(t)
    return errs


def part2(pm: PerfModel, data: Path, con: Console) -> dict[str, list[float]]:
    path = data / "splitwise-perf" / "perf_model.csv"
    errs: dict[str, list[float]] = {"prefill": [], "decode": []}
    if not path.is_file():
        con.print(f"[yellow]skipping measured comparison: {path} not found[/]")
        return errs
    raw = pd.read_csv(path)
    med = raw.groupby(["hardware", "tensor_parallel", "prompt_size", "batch_size", "token_size"], as_index=False)[["prompt_time", "token_time"]].median()
    t = Table(title="Simulator vs measured Splitwise Llama2-70B batches (median of repeats)")
    for c in ("GPU", "tp", "isl", "batch", "meas prefill", "sim prefill", "err %", "meas step", "sim step", "err %"):
        t.add_column(c, justify="right")
    slo = {"c": Slo(ttft_ms=1e9, itl_ms=1e9)}
    for r in med.itertuples():
        gpu = SPLITWISE_GPUS.get(r.hardware)
        perf = pm.get("llama-2-70b", gpu, int(r.tensor_parallel)) if gpu else None
        if perf is None:
            continue
        b, isl, osl = int(r.batch_size), int(r.prompt_size), int(r.token_size)
        # one pass for the whole batch, as measured (vLLM profiling runs with a budget >= b*isl)
        perf = dataclasses.replace(perf, max_batched_tokens=max(perf.max_batched_tokens, b * isl),
                                   max_num_seqs=max(perf.max_num_seqs, b),
                                   kv_capacity_tokens=max(perf.kv_capacity_tokens, b * (isl + osl)))
        arr = Arrivals(np.zeros(b), np.zeros(b, dtype=np.int64), np.full(b, isl), np.full(b, osl), ("c",))
        sim = FleetSimulator([PoolSpec("p", "prefill", perf, 1), PoolSpec("d", "decode", perf, 1)],
                             {"c": ClassRoute("llama-2-70b", ((0, 1.0),), ((1, 1.0),))}, arr, slo)
        sim.run()
        req = sim.req
        s_pre = (req.t_pf_end[0] - req.t_pf_start[0]) * 1e3
        s_step = float(np.mean([(req.t_done[i] - req.t_first[i]) / (osl - 1) for i in range(b)])) * 1e3
        e1, e2 = ape(r.prompt_time, s_pre), ape(r.token_time, s_step)
        errs["prefill"].append(e1)
        errs["decode"].append(e2)
        t.add_row(gpu, str(r.tensor_parallel), str(isl), str(b), f"{r.prompt_time:.0f}", f"{s_pre:.0f}", f"{e1:.1f}",
                  f"{r.token_time:.1f}", f"{s_step:.1f}", f"{e2:.1f}")
    con.print(t)
    return errs


VLLM_LOAD_SWEEP = ROOT / "profiles" / "data" / "llama-3.1-8b" / "H200-141GB" / "tp1" / "vllm" / "load_sweep.csv"
LOAD_PCTS = (50.0, 90.0, 99.0)


def _sim_mixed_percentiles(perf: VariantPerf, isl: int, osl: int, rate: float, n: int, seed: int) -> dict[str, float]:
    """TTFT and per-request ITL percentiles (ms) of one simulated mixed replica under Poisson arrivals."""
    arr = poisson(rate, n, isl, osl, np.random.default_rng(seed))
    slo = {"c": Slo(ttft_ms=1e9, itl_ms=1e9, percentile=PERCENTILE)}
    sim = FleetSimulator([PoolSpec("m/mixed/g/tp1", "mixed", perf, 1)], {"c": ClassRoute("m", ((0, 1.0),), ())}, arr, slo, seed=seed)
    sim.run()
    df = build_report(sim).requests.iloc[n // 10:]
    return {f"{k}_p{q:g}": float(np.nanpercentile(df[f"{k}_ms"], q)) for k in ("ttft", "itl") for q in LOAD_PCTS}


def part_vllm_load(sweep_csv: Path, n_sim: int, seeds: int, con: Console) -> dict[str, list[float]]:
    """Measured TTFT/ITL p50/p90/p99 of a real vLLM replica under Poisson load vs the capacity model and
    the simulator (laws fitted on the vLLM profile next to the sweep file). Errors are kept for rates
    below the model's saturation; the saturation rate is compared with the highest rate the replica
    sustained (median TTFT under 1 s; if every measured rate was sustained, only a lower bound)."""
    from planner.catalog import Catalog
    from planner.perf import fit_profile
    from planner.profiledata import load_profile

    out: dict[str, list[float]] = {"vllm_load_ttft_p90_model": [], "vllm_load_itl_p90_model": [],
                                   "vllm_load_ttft_p90_sim": [], "vllm_load_itl_p90_sim": []}
    if not sweep_csv.is_file():
        con.print(f"[yellow]part 4 skipped: {sweep_csv} not found[/]")
        return out
    df = pd.read_csv(sweep_csv)
    missing = [c for c in ("isl", "osl", "rate_rps", "ttft_ms", "itl_ms") if c not in df.columns]
    if missing:
        raise SystemExit(f"{sweep_csv}: missing columns {missing} (expected the profiler's load_sweep.csv)")
    perf, _, _ = fit_profile(load_profile(sweep_csv.parent), Catalog.load())
    t = Table(title=f"Real vLLM under Poisson load ({sweep_csv.relative_to(ROOT) if sweep_csv.is_relative_to(ROOT) else sweep_csv}): "
                    f"measured / capacity model / simulator, ms")
    for c in ("ISL", "rate rps", "n", "TTFT p50", "TTFT p90", "TTFT p99", "ITL p50", "ITL p90", "ITL p99", "p90 err % (model, sim)"):
        t.add_column(c, justify="right")
    sat_rows = []
    for (isl, osl), g in df.groupby(["isl", "osl"]):
        sat_model = model_saturation_rps(perf, "mixed", int(isl), int(osl))
        sustained = [r for r, gg in g.groupby("rate_rps") if np.nanpercentile(gg.ttft_ms, 50) < 1000.0]
        sat_rows.append((int(isl), max(sustained) if sustained else float("nan"), len(sustained) == g.rate_rps.nunique(), sat_model))
        for rate, gg in g.groupby("rate_rps"):
            meas = {f"{k}_p{q:g}": float(np.nanpercentile(gg[f"{k}_ms"], q)) for k in ("ttft", "itl") for q in LOAD_PCTS}
            model = {}
            for q in LOAD_PCTS:
                lat = capacity.mixed_latency(perf, float(isl), float(osl), float(rate), q)
                model[f"ttft_p{q:g}"], model[f"itl_p{q:g}"] = lat.ttft_ms, lat.itl_ms
            sims = [_sim_mixed_percentiles(perf, int(isl), int(osl), float(rate), n_sim, s) for s in range(seeds)]
            sim = {k: float(np.median([x[k] for x in sims])) for k in sims[0]}
            below = rate < sat_model
            errs = []
            for k in ("ttft", "itl"):
                em, es = ape(meas[f"{k}_p90"], model[f"{k}_p90"]), ape(meas[f"{k}_p90"], sim[f"{k}_p90"])
                if below and math.isfinite(em):
                    out[f"vllm_load_{k}_p90_model"].append(em)
                    out[f"vllm_load_{k}_p90_sim"].append(es)
                errs.append(f"{k} {em:.0f}, {es:.0f}")

            def cell(k: str) -> str:
                return f"{meas[k]:.1f} / {model[k]:.1f} / {sim[k]:.1f}"

            t.add_row(str(isl), f"{rate:g}", str(len(gg)), *(cell(f"{k}_p{q:g}") for k in ("ttft", "itl") for q in LOAD_PCTS),
                      "; ".join(errs) + ("" if below else " (past model saturation)"))
    con.print(t)
    for isl, sustained, all_ok, sat_model in sat_rows:
        if all_ok and sat_model >= sustained:
            verdict = "consistent: the sweep did not reach saturation, so the rate itself is not checked"
        elif all_ok:
            verdict = f"too pessimistic by at least {(1 - sat_model / sustained) * 100:.0f}%"
        else:
            verdict = f"{(sat_model / sustained - 1) * 100:+.0f}% against the highest sustained rate"
        con.print(f"ISL {isl}: replica sustained {'every rate up to' if all_ok else 'up to'} {sustained:g} rps (median TTFT < 1 s); "
                  f"capacity model saturates at {sat_model:.1f} rps: {verdict}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", type=Path, default=ROOT / "examples" / "default" / "workload.yaml")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="public data directory")
    ap.add_argument("--requests", type=int, default=4000, help="requests per simulated point")
    ap.add_argument("--seeds", type=int, default=3, help="repeats per point (median taken)")
    ap.add_argument("--bursty", action=argparse.BooleanOptionalAction, default=True, help="part 3: clustered arrivals")
    ap.add_argument("--load-sweep", type=Path, default=VLLM_LOAD_SWEEP, help="a real vLLM replica's load_sweep.csv (part 4)")
    args = ap.parse_args()
    con = Console(width=160)
    pm = PerfModel.load()
    wl = load_model(Workload, args.workload)
    e1 = part1(pm, wl, args.requests, args.seeds, con)
    e2 = part2(pm, args.data, con)
    e3 = part_vllm_load(args.load_sweep, max(1000, args.requests // 2), args.seeds, con)
    m = {k: (float(np.mean(v)) if v else math.nan) for k, v in {**e1, **{f"measured_{k}": v for k, v in e2.items()}}.items()}
    summary = Table(title="MAPE %")
    summary.add_column("comparison")
    summary.add_column("points", justify="right")
    summary.add_column("MAPE %", justify="right")
    for k, v in {**e1, **{f"measured_{k}": v for k, v in e2.items()}}.items():
        summary.add_row(k, str(len(v)), f"{m[k]:.1f}")
    con.print(summary)
    burst = part3(pm, wl, args.requests, args.seeds, con) if args.bursty else ""
    print(f"RESULT ttft_p90_mape_pct={m['prefill_ttft']:.1f} itl_p90_mape_pct={m['decode_itl']:.1f} "
          f"mixed_ttft_p90_mape_pct={m['mixed_ttft']:.1f} mixed_itl_p90_mape_pct={m['mixed_itl']:.1f} "
          f"measured_prefill_mape_pct={m['measured_prefill']:.1f} measured_decode_mape_pct={m['measured_decode']:.1f} "
          + " ".join(f"{k}_mape_pct={np.mean(v) if v else math.nan:.1f}" for k, v in e3.items())
          + burst)


def part3(pm: PerfModel, wl: Workload, n: int, seeds: int, con: Console) -> str:
    """Bursty cases (bench/fidelity_burst.py); returns the RESULT fields (held-out IDC levels)."""
    import fidelity_burst as fb

    errs = fb.run(pm, wl, GPU, model_saturation_rps, n, seeds, con)
    check = fb.capacity_check(pm, wl, GPU, n, seeds, con)
    mean = {k: (float(np.mean(v)) if v else math.nan) for k, v in errs.burst.items()}
    mean_p = {k: (float(np.mean(v)) if v else math.nan) for k, v in errs.poisson.items()}
    signed_p = {k: (float(np.mean(v)) if v else math.nan) for k, v in errs.poisson_signed.items()}
    t = Table(title="Bursty MAPE % (model vs simulation): burst-aware | Poisson (signed mean: < 0 under-predicts)")
    for c in ("comparison", "points", "burst-aware", "Poisson", "Poisson signed"):
        t.add_column(c, justify="left" if c == "comparison" else "right")
    for k, v in errs.burst.items():
        t.add_row(k, str(len(v)), f"{mean[k]:.1f}", f"{mean_p[k]:.1f}", f"{signed_p[k]:+.1f}")
    con.print(t)
    med = {k: (float(np.median(v)) if v else math.nan) for k, v in check.items()}
    return (f" burst_ttft_p90_mape_pct={mean['held_out_prefill_ttft']:.1f} burst_itl_p90_mape_pct={mean['held_out_decode_itl']:.1f}"
            f" burst_mixed_ttft_p90_mape_pct={mean['held_out_mixed_ttft']:.1f} burst_mixed_itl_p90_mape_pct={mean['held_out_mixed_itl']:.1f}"
            f" burst_pool_ttft_p90_mape_pct={mean['held_out_pool_prefill_ttft']:.1f}"
            f" burst_tuning_ttft_p90_mape_pct={mean['tuning_prefill_ttft']:.1f} burst_tuning_itl_p90_mape_pct={mean['tuning_decode_itl']:.1f}"
            f" poisson_on_burst_ttft_p90_mape_pct={mean_p['held_out_prefill_ttft']:.1f}"
            f" poisson_on_burst_itl_p90_mape_pct={mean_p['held_out_decode_itl']:.1f}"
            f" poisson_cap_sim_p90_over_slo={med['poisson_ratio']:.2f} burst_cap_sim_p90_over_slo={med['burst_ratio']:.2f}"
            f" poisson_over_burst_capacity={med['cap_ratio']:.2f}")


if __name__ == "__main__":
    main()
