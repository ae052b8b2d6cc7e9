"""Closed-loop autoscaling over a real trace, in simulated time: the controller vs three baselines.

    .venv/bin/python bench/autoscale_trace.py [--trace PATH] [--model NAME] [--gpu GPU] [--tp N]
        [--slo ttft_ms=2000,itl_ms=100,percentile=99] [--startup-s 180] [--interval-s 60] [--out DIR]

The trace (default: the one-hour Azure LLM conversation trace, columns TIMESTAMP, ContextTokens,
GeneratedTokens; any trace with those columns, or timestamp/input_tokens/output_tokens, works) is
replayed through planner.simulate's FleetSimulator, one prefill pool and one decode pool of
`model` on `gpu` at tensor parallelism `tp`. Every `interval` seconds of simulated time a policy sets
the pools' replicas; new replicas take `startup` seconds to become ready (except for the oracle).
Policies:
  controller  controllers.loop.Controller with the shipped defaults of controllers.config:
              simulator observation (arrivals from the router's counter) -> ETS forecast of the
              request and token rates (upper prediction bound at --quantile, horizon = start-up +
              interval) -> correction -> ILP (planner.planning) -> guard (scale-down stabilization
              --ctl-stabilization-s) -> SimulatorActuator. Shown twice: taking over the static fleet
              (--initial peak, the headline) and from a cold start sized for the first minute;
  static      the plan for the peak one-interval rate of the whole trace, all the time;
  reactive    HPA-style threshold autoscaler, n' = ceil(n_ready * utilization / 0.6) with the
              HPA's scale-down stabilization: prefill pools on engine busy time, decode pools on
              KV-cache usage (vllm:kv_cache_usage_perc; a continuously batching decode engine is
              busy ~100% of the time at any load, so busy time would scale it without bound);
  oracle      hindsight: each interval, the cheapest plan for that interval's actual rate and mean
              lengths, ready instantly (the lower bound on GPU-hours).
GPU-hours count replicas from the moment they are requested (starting pods hold their GPUs).
SLO attainment: share of requests that met every bound of the SLO (planner.simulate.report).
Sizes: the whole trace (19,366 requests over ~1 h by default); one run per policy (the simulation
is deterministic given the seed, so repeats give identical numbers: the table shows single runs).
`--sweep "0.55,0.6;0,60"`: the controller over a grid of quantiles x stabilization windows on the
trace's first half, second half (held out) and whole: how the shipped defaults were chosen.
Last line: RESULT gpu_hours_vs_oracle=... saving_vs_static_pct=... slo_attainment=...
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from controllers.actuate import SimulatorActuator  # noqa: E402
from controllers.config import ControllerConfig, ForecastConfig, GuardConfig, ModelConfig, RecordConfig  # noqa: E402
from controllers.loop import Controller  # noqa: E402
from controllers.metrics import ControllerMetrics  # noqa: E402
from controllers.observe import SimulatorObserver  # noqa: E402
from planner.catalog import Catalog  # noqa: E402
from planner.perf import PerfModel  # noqa: E402
from planner.planning import plan_workload  # noqa: E402
from planner.schema import Fleet, FleetLimits, GpuInventory, ModelEntry, RequestClass, Slo, Workload  # noqa: E402
from planner.simulate.arrivals import trace_arrivals  # noqa: E402
from planner.simulate.fleet import ClassRoute, FleetSimulator, PoolSpec  # noqa: E402
from planner.simulate.report import build_report  # noqa: E402
from planner.workload import bucket_trace, read_trace  # noqa: E402

DEFAULT_TRACE = REPO.parent / "shared" / "data" / "azure-llm-2023" / "AzureLLMInferenceTrace_conv.csv"
# Reactive baseline: 60% busy is a common HPA target for GPU utilization (DCGM_FI_DEV_GPU_UTIL);
# 300 s is the HPA's default scale-down stabilization window.
REACTIVE_TARGET_UTIL = 0.6
# The controller runs with the shipped defaults of controllers.config (forecast quantile, scale-down
# stabilization); `--sweep` shows the grid they were chosen from (see ForecastConfig.quantile).


def parse_slo(text: str) -> Slo:
    kv = dict(part.split("=", 1) for part in text.split(",") if part)
    try:
        return Slo(**{k.strip(): float(v) for k, v in kv.items()})
    except Exception as exc:  # noqa: BLE001
        raise SystemExit(f"--slo: expected ttft_ms=…,itl_ms=…,percentile=… ({exc})") from exc


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.catalog = Catalog.load()
        self.perf = PerfModel.load(catalog=self.catalog)
        self.model, self.gpu, self.tp = args.model, args.gpu, args.tp
        self.slo = parse_slo(args.slo)
        self.trace = read_trace(args.trace, model=self.model)
        start_s = getattr(args, "start_s", 0.0) or 0.0
        if start_s or args.duration_s:
            t = self.trace["t_s"]
            keep = (t >= start_s) & ((t < start_s + args.duration_s) if args.duration_s else True)
            self.trace = self.trace[keep].reset_index(drop=True)
            if self.trace.empty:
                raise SystemExit(f"--start-s/--duration-s: no request of {args.trace} in that window")
            self.trace["t_s"] = self.trace["t_s"] - float(self.trace["t_s"].min())  # as trace_arrivals re-zeroes
        self.workload = bucket_trace(self.trace, self.slo, isl_buckets=1, osl_buckets=1)
        self.cid = self.workload.classes[0].id
        self.arrivals = trace_arrivals(self.trace, self.workload)
        self.P = f"{self.model}/prefill/{self.gpu}/tp{self.tp}"
        self.D = f"{self.model}/decode/{self.gpu}/tp{self.tp}"
        self.vp = self.perf.get(self.model, self.gpu, self.tp)
        if self.vp is None:
            raise SystemExit(f"--model/--gpu/--tp: {self.model} does not fit on {self.gpu} at tp{self.tp}")
        self.fleet = Fleet(
            gpus={self.gpu: GpuInventory(available=args.gpus_available)},
            limits=FleetLimits(allowed_tp=[self.tp], roles=["prefill", "decode"], default_min_replicas=1),
        )
        self.iv = args.interval_s
        self.n_iv = int(math.ceil(self.arrivals.duration_s / self.iv)) + 1
        t = self.trace["t_s"].to_numpy()
        idx = (t // self.iv).astype(int)
        self.rate_rps = np.bincount(idx, minlength=self.n_iv) / self.iv
        self.isl = self._mean_by(idx, self.trace["input_tokens"].to_numpy())
        self.osl = self._mean_by(idx, self.trace["output_tokens"].to_numpy())

    def _mean_by(self, idx: np.ndarray, v: np.ndarray) -> np.ndarray:
        s = np.bincount(idx, weights=v, minlength=self.n_iv)
        c = np.bincount(idx, minlength=self.n_iv)
        overall = float(v.mean())
        return np.where(c > 0, s / np.maximum(c, 1), overall)

    def plan_for(self, rate: float, isl: float, osl: float, current: dict[str, int] | None = None) -> dict[str, int]:
        w = Workload(models={self.model: ModelEntry(slo=self.slo)},
                     classes=[RequestClass(id=self.model, model=self.model, isl=max(1, round(isl)), osl=max(1, round(osl)),
                                           rate_rps=rate)])
        plan = plan_workload(w, self.fleet, self.perf, catalog=self.catalog, backend="highs")
        if not plan.feasible:
            raise SystemExit(f"no feasible plan at {rate:.2f} req/s: {plan.diagnosis}")
        r = plan.replicas()
        return {self.P: r.get(self.P, 0), self.D: r.get(self.D, 0)}

    def new_sim(self, initial: dict[str, int], startup_s: float) -> FleetSimulator:
        pools = [PoolSpec(self.P, "prefill", self.vp, initial[self.P]), PoolSpec(self.D, "decode", self.vp, initial[self.D])]
        routes = {self.cid: ClassRoute(self.model, ((0, 1.0),), ((1, 1.0),))}
        return FleetSimulator(pools, routes, self.arrivals, {self.cid: self.slo}, seed=0, startup_delay_s=startup_s,
                              allow_empty_pools=True)

    # ------------------------------------------------------------------ one policy
    def run(self, name: str, decide, initial: dict[str, int], instant: bool = False) -> dict:
        startup = 0.0 if instant else self.args.startup_s
        sim = self.new_sim(initial, startup)
        active = dict(initial)
        series = []
        gpu_s = 0.0
        t0 = time.perf_counter()
        for k in range(self.n_iv):
            t = k * self.iv
            sim.run_until(t)
            target = decide(k, t, sim, dict(active))
            for p, n in target.items():
                if n != active.get(p):
                    sim.set_replicas(p, n, ready_at_s=t + startup)
                    active[p] = n
            gpu_s += sum(active.values()) * self.tp * self.iv
            series.append((t, active[self.P], active[self.D]))
        sim.run()
        rep = build_report(sim)
        att = float(rep.requests["met_slo"].mean())
        return {"name": name, "gpu_hours": gpu_s / 3600, "slo_attainment": att, "series": series,
                "wall_s": time.perf_counter() - t0}

    # ------------------------------------------------------------------ policies
    def static(self) -> dict:
        k = int(np.argmax(self.rate_rps))
        peak = self.plan_for(float(self.rate_rps[k]), float(self.isl[k]), float(self.osl[k]))
        return self.run("static-peak", lambda k, t, sim, cur: peak, peak)

    def oracle(self) -> dict:
        plans = [self.plan_for(float(self.rate_rps[k]), float(self.isl[k]), float(self.osl[k])) for k in range(self.n_iv)]
        return self.run("oracle", lambda k, t, sim, cur: plans[k], plans[0], instant=True)

    def initial(self, start: str) -> dict[str, int]:
        """The fleet an adaptive policy starts from: 'peak' = the static peak plan (the controller
        taking over a fleet provisioned for peak), 'first' = the plan for the first interval's load
        (a cold start: the trace opens with a ramp the pods cannot start in time for)."""
        if start == "peak":
            k = int(np.argmax(self.rate_rps))
            return self.plan_for(float(self.rate_rps[k]), float(self.isl[k]), float(self.osl[k]))
        return self.plan_for(float(self.rate_rps[0]), float(self.isl[0]), float(self.osl[0]))

    def reactive(self) -> dict:
        init = self.initial(self.args.initial)
        last_busy: dict[str, float] = {}
        hist: dict[str, deque] = {p: deque() for p in (self.P, self.D)}

        def decide(k, t, sim, cur):
            out = {}
            for pid in (self.P, self.D):
                pool = sim.pools[pid]
                ready = max(len(pool.ready), 1)
                if pool.role == "prefill":
                    # prefill engine busy share (prefill batches are short and serial: busy time is
                    # a real utilization there); starting pods count as idle, as the HPA does
                    busy = sum(r.busy_ms for r in pool.replicas_all()) / 1e3
                    used = busy - last_busy.get(pid, 0.0)
                    last_busy[pid] = busy
                    util = used / self.iv / ready if k > 0 else REACTIVE_TARGET_UTIL
                else:
                    # decode: a continuously batching engine is busy ~100% of the time at any load, so
                    # the signal is KV-cache usage (vllm:kv_cache_usage_perc), mean over the interval
                    kv = [row[7] for row in sim.timeline if row[1] == pid and t - self.iv < row[0] <= t]
                    util = float(np.mean(kv)) if kv and k > 0 else REACTIVE_TARGET_UTIL
                # HPA: desired = ceil(ready pods x mean utilization / target)
                rec = max(1, math.ceil(ready * util / REACTIVE_TARGET_UTIL - 1e-9))
                h = hist[pid]
                h.append((t, rec))
                while h and h[0][0] < t - self.args.stabilization_s:
                    h.popleft()
                out[pid] = rec if rec >= cur[pid] else min(cur[pid], max(n for _, n in h))
            return out

        return self.run("reactive-hpa", decide, init)

    def controller(self, start: str | None = None) -> dict:
        init = self.initial(start or self.args.initial)
        cfg = ControllerConfig(
            interval_s=self.iv, startup_s=self.args.startup_s, fleet="<in memory>",
            models={self.model: ModelConfig(slo=self.slo)},
            forecast=ForecastConfig(quantile=self.args.quantile),
            guard=GuardConfig(scale_down_stabilization_s=self.args.ctl_stabilization_s, scale_down_cooldown_s=0.0),
            record=RecordConfig(metrics_port=None, decision_log=self.args.decision_log),
        )
        holder: dict = {}

        def decide(k, t, sim, cur):
            if "ctl" not in holder:
                obs = SimulatorObserver(sim, {self.P: self.model, self.D: self.model}, {self.model: self.slo.percentile},
                                        model_of_class={self.cid: self.model})
                act = SimulatorActuator(sim, self.args.startup_s, clock=lambda: sim.now, initial=cur)
                holder["ctl"] = Controller(cfg, self.fleet, obs, act, self.perf, metrics=ControllerMetrics(),
                                           clock=lambda: sim.now,
                                           plan_fn=lambda w, f, p: plan_workload(w, f, p, catalog=self.catalog))
                holder["act"] = act
            ctl = holder["ctl"]
            d = ctl.step()
            holder.setdefault("decisions", []).append(d)
            return dict(holder["act"]._desired)

        res = self.run("controller", decide, init)
        res["holds"] = sum(1 for d in holder.get("decisions", []) if d.outcome == "held")
        return res


def plot(bench: Bench, results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 5))
    t_min = np.arange(bench.n_iv) * bench.iv / 60
    ax2 = ax.twinx()
    ax2.bar(t_min, bench.rate_rps * 60, width=bench.iv / 60, color="0.85", label="load (req/min)", align="edge")
    ax2.set_ylabel("requests per minute")
    for r in results:
        s = np.array(r["series"])
        ax.step(s[:, 0] / 60, (s[:, 1] + s[:, 2]) * bench.tp, where="post", label=f"{r['name']} GPUs")
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.set_xlabel("time (min)")
    ax.set_ylabel(f"GPUs ({bench.gpu}, prefill + decode)")
    ax.set_title(f"{bench.model} on {bench.gpu} tp{bench.tp}: replicas vs load (start-up {bench.args.startup_s:g} s)")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)


def sweep(args: argparse.Namespace) -> None:
    """The controller over a grid of (forecast quantile, scale-down stabilization), on the first half
    of the trace (where a knob is chosen), the second half (held out: does the choice carry over?)
    and the whole; each window starts from its own static peak fleet. One run per cell (deterministic)."""
    qs_text, st_text = (args.sweep.split(";") + [""])[:2]
    qs = [float(x) for x in qs_text.split(",") if x] or [args.quantile]
    sts = [float(x) for x in st_text.split(",") if x] or [args.ctl_stabilization_s]
    full = Bench(argparse.Namespace(**{**vars(args), "start_s": 0.0, "duration_s": None}))
    half = full.arrivals.duration_s / 2
    windows = [("first half", 0.0, half), ("second half", half, None), ("whole", 0.0, None)]
    print(f"sweep: controller on {args.trace.name}, quantile x stabilization; GPU-hours vs the oracle of the same window, "
          f"SLO attainment (goal: <= 1.15 at >= 0.99)")
    print(f"{'quantile':>9}{'stab. s':>9}" + "".join(f"{w:>26}" for w, _, _ in windows))
    benches = [Bench(argparse.Namespace(**{**vars(args), "start_s": a, "duration_s": d})) for _, a, d in windows]
    oracles = [b.oracle()["gpu_hours"] for b in benches]
    for q in qs:
        for st in sts:
            cells = []
            for b, o in zip(benches, oracles):
                b.args.quantile, b.args.ctl_stabilization_s = q, st
                r = b.controller()
                cells.append(f"{r['gpu_hours'] / o:>12.3f} {r['slo_attainment']:>12.4f}")
            print(f"{q:>9g}{st:>9g}" + "".join(f"{c:>26}" for c in cells), flush=True)
    print(f"RESULT sweep_cells={len(qs) * len(sts)} windows={len(windows)}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    ap.add_argument("--model", default="llama-2-70b", help="a model with bundled profiles (Splitwise Llama2-70B on H100)")
    ap.add_argument("--gpu", default="H100-SXM-80GB")
    ap.add_argument("--tp", type=int, default=2)
    ap.add_argument("--gpus-available", type=int, default=256)
    ap.add_argument("--slo", default="ttft_ms=2000,itl_ms=100,percentile=99")
    ap.add_argument("--startup-s", type=float, default=180.0, help="pod start-up (image + weights load), s")
    ap.add_argument("--interval-s", type=float, default=60.0, help="control interval, s")
    ap.add_argument("--quantile", type=float, default=ForecastConfig().quantile,
                    help="controller: forecast quantile planned for (default: the shipped ForecastConfig default)")
    ap.add_argument("--ctl-stabilization-s", type=float, default=GuardConfig().scale_down_stabilization_s,
                    help="controller: scale-down stabilization window, s (default: the shipped GuardConfig default)")
    ap.add_argument("--start-s", type=float, default=0.0, help="replay the trace from this many seconds in")
    ap.add_argument("--sweep", default=None, metavar="Q1,Q2;S1,S2",
                    help="instead of the comparison: the controller over the grid of forecast quantiles x "
                         "stabilization windows (s), on the trace's first half, second half and whole")
    ap.add_argument("--stabilization-s", type=float, default=None,
                    help="reactive baseline: HPA scale-down stabilization window, s; default: the start-up time")
    ap.add_argument("--initial", choices=("peak", "first"), default="peak",
                    help="fleet the adaptive policies start from: the static peak plan, or the first interval's plan (cold start)")
    ap.add_argument("--duration-s", type=float, default=None, help="replay only the first S seconds")
    ap.add_argument("--decision-log", default=None)
    ap.add_argument("--out", type=Path, default=REPO / "out" / "bench")
    args = ap.parse_args(argv)
    if args.stabilization_s is None:
        args.stabilization_s = args.startup_s
    if not args.trace.is_file():
        raise SystemExit(f"--trace: file not found: {args.trace}")

    if args.sweep:
        sweep(args)
        return
    b = Bench(args)
    print(f"trace {args.trace.name}: {len(b.trace)} requests over {b.arrivals.duration_s / 60:.1f} min; "
          f"per-interval load {b.rate_rps.min() * 60:.0f}-{b.rate_rps.max() * 60:.0f} req/min; "
          f"pools {b.P} + {b.D}; SLO {b.slo.describe()}; start-up {args.startup_s:g} s; interval {args.interval_s:g} s; "
          f"controller quantile {args.quantile:g}, scale-down stabilization {args.ctl_stabilization_s:g} s "
          f"(reactive {args.stabilization_s:g} s); "
          f"adaptive policies start from the {'static peak' if args.initial == 'peak' else 'first-interval'} fleet")
    cold = b.controller("first")
    cold["name"] = "ctl-cold-start"
    results = [b.static(), b.reactive(), b.oracle(), cold, b.controller()]
    oracle = next(r for r in results if r["name"] == "oracle")
    static = next(r for r in results if r["name"] == "static-peak")
    print(f"\n{'policy':<15}{'GPU-hours':>11}{'vs oracle':>11}{'vs static':>11}{'SLO attain.':>13}{'sim wall s':>12}")
    for r in results:
        print(f"{r['name']:<15}{r['gpu_hours']:>11.2f}{r['gpu_hours'] / oracle['gpu_hours']:>11.3f}"
              f"{r['gpu_hours'] / static['gpu_hours']:>11.3f}{r['slo_attainment']:>13.4f}{r['wall_s']:>12.1f}")
    png = args.out / "autoscale_trace.png"
    plot(b, results, png)
    ctl = results[-1]
    print(f"\nplot: {png}; controller holds: {ctl.get('holds', 0)}")
    print(f"RESULT gpu_hours_vs_oracle={ctl['gpu_hours'] / oracle['gpu_hours']:.3f} "
          f"saving_vs_static_pct={100 * (1 - ctl['gpu_hours'] / static['gpu_hours']):.1f} "
          f"slo_attainment={ctl['slo_attainment']:.4f}")


if __name__ == "__main__":
    main()
