"""Real vLLM replaying a recorded trace (arrivals that are not Poisson) against the simulator replaying the same
requests: the check of issue 9's referee on bursty arrivals (rule 56-GPU-b, plan r1; issue 10 part 7 beyond Poisson).

Each replay is a ``trace_replay.csv`` of the profiler (``planner profile --rate-trace TRACE``: every request of the
trace sent open loop at its own time with its own prompt and output lengths, per-request rows) taken on one real vLLM
0.26.0 mixed replica. The simulator replays the same requests (send times, prompts, outputs) on one mixed replica
with the laws of the profile named with it (default: the bundled profile of the replay's model and GPU) and the
replayed server's KV cache, its KV held on demand as vLLM 0.26 does (planner/simulate/engine.py), the frontend's delay
per running request as everywhere (planner.simulate.steptime.FRONTEND_MS_PER_RUNNING). Nothing is fitted here.

    .venv/bin/python bench/vllm_trace_replay.py                                   # every committed replay
    .venv/bin/python bench/vllm_trace_replay.py --replay REPLAY.csv[=PROFILE_DIR] ... [--ttft-ms 1000 --itl-ms 50]

Per replay: requests, their mean rate and the 1-s index of dispersion of their arrivals (1: Poisson), vLLM's and the
replay's TTFT p50 / p90 / p99 and mean ITL, and the share of requests within the SLO (TTFT and mean ITL both; the
bench's SLO, --ttft-ms / --itl-ms), with the replay's errors. Last line: ``RESULT replays=<n> requests=<n>
ttft_p50_err_pct=<mean |error| over the replays> ttft_p90_err_pct=... ttft_p99_err_pct=... itl_mean_err_pct=...
attainment_err_pts=<mean |difference| of the shares within SLO, percentage points> worst_ttft_p90_err_pct=...``
(``nan`` where no replay is given or committed).

A replay whose every request produced one token (max_tokens 1, run to it: the profiler's requests ignore EOS) is a
P/D prefill instance's load, not a mixed replica's (plan r4): it is left out of every figure here, its row in the
first table says so, and bench/vllm_prefill_mix.py reads it. The RESULT counts the mixed replays only.

The capacity model too (issue 9 part 1's burst-aware closed form against real vLLM, not only against the simulator):
the replayed requests are bucketed into classes as ``planner workload from-trace`` does (its defaults: 3 x 2 length
buckets, burstiness measured: each class carries the stream's index of dispersion), and ``planner solve`` plans them
on the replay's GPU type, mixed role, tp 1, at utilization 1 (no headroom: the SLO alone decides), with the same laws
and KV cache as the simulator. Where that plan is one replica, its predicted TTFT p90 and ITL p90 per class (the
plan's ``predicted``: since rule 57-M at stop 57 its TTFT is the class's behind the pool's mix of classes, its ITL
the class alone's, capacity module doc, Mixed, classes sharing a replica) are set against vLLM's p90s of the same
class's requests; where the model needs more than one
replica for the replayed load, the row says so (a sizing verdict to set against vLLM's share within SLO on one).
The RESULT line adds ``cf_ttft_p90_err_pct`` / ``cf_itl_p90_err_pct`` (mean |error| over the classes the model
predicts on one replica; ``nan`` where none) and ``cf_ttft_p90_bias_pct`` (their signed mean: > 0 conservative).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_input import fail, not_found, read_rows  # noqa: E402
from fidelity import mixed_sim_report  # noqa: E402

from planner.io.catalog import Catalog  # noqa: E402
from planner.io.errors import PlannerError  # noqa: E402
from planner.io.schema import Fleet, Plan, Slo, Workload  # noqa: E402
from planner.io.traces import assign_classes, bucket_trace, measure_burstiness  # noqa: E402
from planner.perf.laws import PerfModel, VariantKey, VariantPerf, fit_profile, quiet_extrapolation  # noqa: E402
from planner.perf.profiledata import load_profile, profile_dir, read_meta  # noqa: E402
from planner.planning.assemble import plan_workload  # noqa: E402
from planner.simulate.steptime import FRONTEND_MS_PER_RUNNING  # noqa: E402

# The SLO a request is judged within: the project's default for llama-3.1-8b-class chat (`planner workload
# from-trace`'s --ttft-ms / --itl-ms defaults), rule 56-GPU-b's.
TTFT_MS = 1000.0
ITL_MS = 50.0
REPLAY_FILE = "trace_replay.csv"
COLUMNS = ("sent_s", "ttft_ms", "itl_ms", "prompt_tokens", "tokens")


@dataclass(frozen=True)
class Replay:
    """One replayed trace: the requests as vLLM served them (in send order) and the laws to replay them with."""

    path: Path
    model: str
    gpu: str
    sent_s: np.ndarray
    prompts: np.ndarray
    outputs: np.ndarray
    ttft_ms: np.ndarray
    itl_ms: np.ndarray
    perf: VariantPerf
    key: VariantKey

    @property
    def prefill_only(self) -> bool:
        """Every request produced one token or none (a prefill-only load, plan r4's: module doc)."""
        return bool((self.outputs <= 1).all())


def default_replays() -> list[str]:
    """Every committed replay (profiles/runs/*/<model>/<gpu>/<variant>/vllm/trace_replay.csv)."""
    return [str(p) for p in sorted((ROOT / "profiles" / "runs").glob(f"*/*/*/*/vllm/{REPLAY_FILE}"))]


def read_replay(arg: str) -> Replay:
    """`REPLAY.csv[=PROFILE_DIR]`, checked before any work (exit 2 naming the file): the replay's rows, its server's
    meta.yaml beside it (model, GPU, KV cache), and the laws of PROFILE_DIR (default: the bundled profile of that
    model and GPU) with that server's KV cache."""
    path_s, _, prof_s = arg.partition("=")
    path = Path(path_s)
    if not path.is_file():
        fail(f"--replay {path}: {not_found(path)} (expected the profiler's {REPLAY_FILE})")
    df = read_rows(path, "--replay", f"the profiler's {REPLAY_FILE}", COLUMNS, counts=("prompt_tokens", "tokens"),
                   may_be_empty=("itl_ms",))
    if len(df) < 2:
        fail(f"--replay {path}: expected the profiler's {REPLAY_FILE} (columns {', '.join(COLUMNS)}, two requests or "
             f"more); {len(df)} rows")
    meta_path = path.parent / "meta.yaml"
    if not meta_path.is_file():
        fail(f"--replay {path}: no meta.yaml beside it (the replayed server's model, GPU and KV cache)")
    try:
        meta = read_meta(meta_path)
        prof_dir = Path(prof_s) if prof_s else profile_dir(ROOT / "profiles" / "data", meta.model, meta.gpu, meta.tp,
                                                           meta.weight_dtype, meta.kv_dtype, vllm=True)
        perf, _, _ = fit_profile(load_profile(prof_dir), Catalog.load())
    except PlannerError as exc:
        fail(f"--replay {arg}: {exc}")
    perf = dataclasses.replace(perf, kv_capacity_tokens=meta.kv_capacity_tokens)  # the replayed server's cache
    df = df.sort_values("sent_s", kind="stable")
    return Replay(path, meta.model, meta.gpu, df.sent_s.to_numpy(float), df.prompt_tokens.to_numpy(np.int64),
                  df.tokens.to_numpy(np.int64), df.ttft_ms.to_numpy(float), df.itl_ms.to_numpy(float), perf,
                  (meta.model, meta.gpu, meta.tp, meta.weight_dtype, meta.kv_dtype))


def simulated(r: Replay) -> tuple[np.ndarray, np.ndarray]:
    """The simulator's TTFT and mean ITL (ms) of each request of `r`, in send order."""
    with quiet_extrapolation():
        rep, _ = mixed_sim_report(r.perf, int(r.prompts.mean()), int(r.outputs.mean()), r.sent_s,
                                  FRONTEND_MS_PER_RUNNING, r.prompts, r.outputs)
    req = rep.requests.sort_values("t_arr_s", kind="stable")  # the requests in send order, as the replay's rows
    return req.ttft_ms.to_numpy(float), req.itl_ms.to_numpy(float)


@dataclass(frozen=True)
class ClassCheck:
    """One class of a replay: vLLM's p90s over its requests and the capacity model's (None: the model needs more than
    one replica for the replayed load, so it predicts no single-replica latency)."""

    cid: str
    requests: int
    vllm_ttft_p90_ms: float
    vllm_itl_p90_ms: float
    sim_ttft_p90_ms: float
    sim_itl_p90_ms: float
    model_ttft_p90_ms: float | None
    model_itl_p90_ms: float | None


def mixed_plan(trace: pd.DataFrame, slo: Slo, gpu: str, tp: int, dtypes: set[str],
               laws: PerfModel, roles: tuple[str, ...] = ("mixed",)) -> tuple[Workload, Fleet, Plan]:
    """`trace` (columns t_s, model, input_tokens, output_tokens) bucketed as `planner workload from-trace` does
    (burstiness measured) and planned by `planner solve` on mixed pools of `gpu` at `tp` (64 available, utilization 1:
    the SLO alone decides) with `laws`: the workload, the fleet and the plan (bench/mixed_classes.py plans so too, and
    with `roles` prefill + decode its P/D plans)."""
    wl = bucket_trace(trace, slo, burstiness=True)
    fleet = Fleet.model_validate({"gpus": {gpu: {"available": 64}},
                                  "limits": {"allowed_tp": [tp], "roles": list(roles), "utilization": 1.0,
                                             "allowed_dtypes": sorted(dtypes)}})
    with quiet_extrapolation():
        plan = plan_workload(wl, fleet, laws, laws.catalog, refine_diagnosis=False)
    return wl, fleet, plan


def closed_form(r: Replay, sim: tuple[np.ndarray, np.ndarray], pm: PerfModel, ttft_ms: float,
                itl_ms: float) -> tuple[int | None, list[ClassCheck]]:
    """The capacity model on the replayed requests (module doc): the replicas its plan needs on the replay's GPU type
    (None: no plan within 64) and, per class, vLLM's p90s beside the simulator's (`sim`: its TTFT and mean ITL per
    request, `simulated`) and the model's where the plan is one replica."""
    trace = pd.DataFrame({"t_s": r.sent_s - r.sent_s[0], "model": r.model, "input_tokens": r.prompts,
                          "output_tokens": r.outputs})
    laws = dataclasses.replace(pm, measured={**pm.measured, r.key: r.perf}, _cache={})  # the replay's laws and cache
    wl, _, plan = mixed_plan(trace, Slo(ttft_ms=ttft_ms, itl_ms=itl_ms, percentile=90.0), r.gpu, r.key[2],
                             {r.key[3], r.key[4]}, laws)
    mp = plan.models.get(r.model)
    replicas = sum(p.replicas for p in mp.pools) if plan.feasible and mp is not None else None
    ids = assign_classes(trace, wl)
    out = []
    for c in wl.classes:
        sel = ids == c.id
        pred = mp.predicted.get(c.id) if replicas == 1 and mp is not None else None
        out.append(ClassCheck(c.id, int(sel.sum()), float(np.percentile(r.ttft_ms[sel], 90)),
                              float(np.nanpercentile(r.itl_ms[sel], 90)), float(np.percentile(sim[0][sel], 90)),
                              float(np.nanpercentile(sim[1][sel], 90)),
                              None if pred is None else pred.ttft_ms, None if pred is None else pred.itl_ms))
    return replicas, out


def within(ttft: np.ndarray, itl: np.ndarray, ttft_ms: float, itl_ms: float) -> float:
    """Share of requests within the SLO: TTFT and mean ITL both (a request with no decode gap counts on TTFT)."""
    ok = (ttft <= ttft_ms) & (np.nan_to_num(itl, nan=0.0) <= itl_ms)
    return float(ok.mean())


def err_pct(model: float, measured: float) -> float:
    return 100.0 * (model - measured) / measured if measured > 0 else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replay", action="append", default=None, metavar="REPLAY.csv[=PROFILE_DIR]",
                    help=f"a profiler's {REPLAY_FILE} (repeatable; default: every committed one)")
    ap.add_argument("--ttft-ms", type=float, default=TTFT_MS, help="the SLO's TTFT bound, ms")
    ap.add_argument("--itl-ms", type=float, default=ITL_MS, help="the SLO's mean-ITL bound, ms")
    args = ap.parse_args(argv)
    for flag, v in (("--ttft-ms", args.ttft_ms), ("--itl-ms", args.itl_ms)):
        if not (v > 0 and math.isfinite(v)):
            fail(f"{flag}: expected a positive number of ms, got {v}")
    read = [read_replay(a) for a in (args.replay if args.replay is not None else default_replays())]
    replays = [r for r in read if not r.prefill_only]
    left_out = [r for r in read if r.prefill_only]
    con = Console(width=200)
    t = Table(title=f"real vLLM replaying a trace vs the simulator replaying the same requests (SLO TTFT <= "
                    f"{args.ttft_ms:g} ms and mean ITL <= {args.itl_ms:g} ms); errors: simulator against vLLM")
    for c in ("replay", "requests", "req/s", "1-s IDC", "TTFT p50 ms vLLM / sim", "TTFT p90", "TTFT p99",
              "mean ITL ms", "within SLO vLLM / sim"):
        t.add_column(c, justify="right")
    errs: dict[str, list[float]] = {k: [] for k in ("ttft_p50", "ttft_p90", "ttft_p99", "itl_mean", "attainment")}
    n_req = 0
    sims = []
    for r in replays:
        s_ttft, s_itl = simulated(r)
        sims.append((s_ttft, s_itl))
        span = float(r.sent_s[-1] - r.sent_s[0])
        idc = measure_burstiness(r.sent_s - r.sent_s[0], r.prompts, span).idc_1s
        cells = []
        for q in (50, 90, 99):
            m, s = float(np.percentile(r.ttft_ms, q)), float(np.percentile(s_ttft, q))
            errs[f"ttft_p{q}"].append(err_pct(s, m))
            cells.append(f"{m:,.0f} / {s:,.0f} ({err_pct(s, m):+.0f}%)")
        m_itl, s_itl_mean = float(np.nanmean(r.itl_ms)), float(np.nanmean(s_itl))
        errs["itl_mean"].append(err_pct(s_itl_mean, m_itl))
        a_m = within(r.ttft_ms, r.itl_ms, args.ttft_ms, args.itl_ms)
        a_s = within(s_ttft, s_itl, args.ttft_ms, args.itl_ms)
        errs["attainment"].append(100.0 * (a_s - a_m))
        n_req += len(r.sent_s)
        label = f"{r.path.parts[-6]}/{r.path.parts[-3]}" if len(r.path.parts) >= 6 else str(r.path)  # run/variant
        t.add_row(label, f"{len(r.sent_s):,}", f"{len(r.sent_s) / max(span, 1e-9):.2f}", f"{idc:.1f}", *cells,
                  f"{m_itl:.1f} / {s_itl_mean:.1f} ({err_pct(s_itl_mean, m_itl):+.1f}%)",
                  f"{a_m:.1%} / {a_s:.1%} ({100 * (a_s - a_m):+.1f} pts)")
    for r in left_out:
        label = f"{r.path.parts[-6]}/{r.path.parts[-3]}" if len(r.path.parts) >= 6 else str(r.path)
        t.add_row(label, f"{len(r.sent_s):,}", "-", "-", "left out: prefill-only (every output one token; "
                  "bench/vllm_prefill_mix.py)", "-", "-", "-", "-")
    con.print(t)
    cf = Table(title="the capacity model (planner solve's closed form, burst-aware, on the replayed requests' classes) "
                     "vs vLLM, per class (one replica): p90s ms vLLM / simulator / model; errors against vLLM")
    for c in ("replay", "class", "requests", "TTFT p90 vLLM / sim / model", "ITL p90 vLLM / sim / model"):
        cf.add_column(c, justify="right")
    pm = PerfModel.load() if replays else None
    cf_err: dict[str, list[float]] = {"ttft": [], "itl": []}
    for r, sim in zip(replays, sims, strict=True):
        assert pm is not None
        replicas, checks = closed_form(r, sim, pm, args.ttft_ms, args.itl_ms)
        label = f"{r.path.parts[-6]}/{r.path.parts[-3]}" if len(r.path.parts) >= 6 else str(r.path)
        for k in checks:
            e_st, e_si = err_pct(k.sim_ttft_p90_ms, k.vllm_ttft_p90_ms), err_pct(k.sim_itl_p90_ms, k.vllm_itl_p90_ms)
            st = f"{k.vllm_ttft_p90_ms:,.0f} / {k.sim_ttft_p90_ms:,.0f} ({e_st:+.0f}%)"
            si = f"{k.vllm_itl_p90_ms:.1f} / {k.sim_itl_p90_ms:.1f} ({e_si:+.0f}%)"
            if k.model_ttft_p90_ms is None or k.model_itl_p90_ms is None:
                verdict = ("no plan within 64 replicas" if replicas is None else
                           f"the model needs {replicas} replicas for this load")
                cells = [f"{st} / ({verdict})", f"{si} / -"]
            else:
                et = err_pct(k.model_ttft_p90_ms, k.vllm_ttft_p90_ms)
                ei = err_pct(k.model_itl_p90_ms, k.vllm_itl_p90_ms)
                cf_err["ttft"].append(et)
                cf_err["itl"].append(ei)
                cells = [f"{st} / {k.model_ttft_p90_ms:,.0f} ({et:+.0f}%)",
                         f"{si} / {k.model_itl_p90_ms:.1f} ({ei:+.0f}%)"]
            cf.add_row(label, k.cid.split("/")[-1], f"{k.requests:,}", *cells)
    if replays:
        con.print(cf)
    if not replays:
        con.print("no mixed replay given or committed (planner profile --rate-trace writes one; plan r1 of "
                  "profiles/gpu_session.py is ready for an H100)")

    def mean_abs(xs: list[float]) -> float:
        return float(np.mean(np.abs(xs))) if xs else float("nan")

    worst = max((abs(x) for x in errs["ttft_p90"]), default=float("nan"))
    print(f"RESULT replays={len(replays)} requests={n_req} ttft_p50_err_pct={mean_abs(errs['ttft_p50']):.1f} "
          f"ttft_p90_err_pct={mean_abs(errs['ttft_p90']):.1f} ttft_p99_err_pct={mean_abs(errs['ttft_p99']):.1f} "
          f"itl_mean_err_pct={mean_abs(errs['itl_mean']):.1f} attainment_err_pts={mean_abs(errs['attainment']):.1f} "
          f"worst_ttft_p90_err_pct={worst:.1f} cf_ttft_p90_err_pct={mean_abs(cf_err['ttft']):.1f} "
          f"cf_itl_p90_err_pct={mean_abs(cf_err['itl']):.1f} "
          f"cf_ttft_p90_bias_pct={float(np.mean(cf_err['ttft'])) if cf_err['ttft'] else float('nan'):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
