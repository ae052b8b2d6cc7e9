"""Real vLLM serving a P/D prefill instance's load (a replayed trace whose every request asks one output token, plan
r4) against the capacity model's P/D prefill prediction for that mix and the simulator's prefill replica replaying the
same arrivals: rule 60-B's mix batching (capacity.MIX_BATCHING) checked on a real engine, not only on the simulator.

Each replay is a profiler's ``trace_replay.csv`` (``planner profile --rate-trace TRACE``, found and read as
bench/vllm_trace_replay.py does: its meta.yaml beside it, the laws of the bundled profile of its model and GPU or of
PROFILE_DIR, with the replayed server's KV cache) whose every request produced one token (``Replay.prefill_only``;
one that did not is refused: bench/vllm_trace_replay.py reads it). Its classes are its prompt lengths (the profiler
sends each request's own length; more than MAX_CLASSES distinct lengths are cut into MAX_CLASSES quantile buckets,
each at its mean prompt), each at its measured rate (its requests over the replay's span). Per class, vLLM's TTFT p50
and p90 against:

* the capacity model: ``capacity.prefill_latency`` of the class's prompt behind the pool's mix (``PoolMix`` of the
  classes at their measured rates, one replica, Poisson arrivals, ``kv_transfer=False``: a prefill instance's first
  token leaves it, no KV trip), at each ``capacity.MIX_BATCHING`` form (switched as bench/pd_mix_prediction.py does);
* the simulator: the same requests (send times, prompts) on one prefill replica of the laws (planner/simulate/engine.py
  PrefillReplica, FCFS whole prompts under the token budget), TTFT = its queue + its batch + the laws' frontend
  ``ttft_overhead_ms`` (what prefill_latency adds too; the decode pool behind it is not read).

Replays of the same model, GPU and variant (a plan run again) are repeats: the table gives medians over them, with
their count. Nothing is fitted here.

    .venv/bin/python bench/vllm_prefill_mix.py                               # every committed prefill-only replay
    .venv/bin/python bench/vllm_prefill_mix.py --replay REPLAY.csv[=PROFILE_DIR] ... [--model M] [--forms fcfs,own]

Last line: ``RESULT replays=<n> requests=<n> ttft_p90_err_pct_<form>=<mean |error| of the model's TTFT p90 over the
classes, %> ... sim_ttft_p90_err_pct=<the simulator's>`` (``nan`` where no replay is given or committed).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_input import fail, known_model  # noqa: E402
from vllm_trace_replay import REPLAY_FILE, Replay, default_replays, err_pct, read_replay  # noqa: E402

from planner.io.catalog import Catalog  # noqa: E402
from planner.io.schema import Slo  # noqa: E402
from planner.perf.laws import quiet_extrapolation  # noqa: E402
from planner.planning import capacity  # noqa: E402
from planner.simulate.arrivals import Arrivals  # noqa: E402
from planner.simulate.fleet import ClassRoute, FleetSimulator, PoolSpec  # noqa: E402
from planner.simulate.report import build_report  # noqa: E402

FORMS = capacity.MIX_BATCHING_FORMS
QUANTILES = (50, 90)
# Classes of one replay at most: a prefill trace of a few prompt lengths (plan r4: two) keeps one class per length;
# beyond this many, quantile buckets (8 keeps every class of bench/vllm_trace_replay.py's 3 x 2 buckets apart).
MAX_CLASSES = 8
# Decode replicas behind the simulated prefill replica: enough that none is ever its bottleneck (the TTFT read here
# ends at the prefill replica; fidelity.simulate_role over-provisions the other side with the same count).
DECODE_REPLICAS = 64


@dataclass(frozen=True)
class ClassRow:
    """One class of one replay: its prompt, requests, measured rate and TTFT quantiles (ms) of vLLM, of the model per
    form and of the simulator."""

    isl: float
    requests: int
    rate_rps: float
    vllm_ms: dict[int, float]
    model_ms: dict[str, dict[int, float]]
    sim_ms: dict[int, float]


def prefill_replays(arg_replays: list[str] | None, model: str | None) -> list[Replay]:
    """The replays to read: those given (each must be prefill-only), else every committed prefill-only one; of
    `model` only where given."""
    out = []
    for a in arg_replays if arg_replays is not None else default_replays():
        r = read_replay(a)
        if not r.prefill_only:
            if arg_replays is None:
                continue  # a mixed replica's replay: bench/vllm_trace_replay.py's
            fail(f"--replay {r.path}: expected a prefill-only replay (every request one output token); "
                 f"{int((r.outputs > 1).sum())} of {len(r.outputs)} requests produced more "
                 "(bench/vllm_trace_replay.py reads mixed replicas' replays)")
        if model is None or r.model == model:
            out.append(r)
    return out


def classes_of(prompts: np.ndarray) -> np.ndarray:
    """Each request's class index (module doc): one per distinct prompt length, or quantile buckets beyond
    MAX_CLASSES of them; indices in increasing prompt length."""
    distinct = np.unique(prompts)
    if distinct.size <= MAX_CLASSES:
        return np.searchsorted(distinct, prompts)
    edges = np.unique(np.quantile(prompts, np.linspace(0, 1, MAX_CLASSES + 1)[1:-1]))
    return np.searchsorted(edges, prompts, side="right")


def simulated_ttft_ms(r: Replay, cls: np.ndarray, n_classes: int) -> np.ndarray:
    """The simulator's TTFT (ms) of each request of `r` on one prefill replica (module doc), in send order."""
    n = len(r.sent_s)
    ids = tuple(f"c{k}" for k in range(n_classes))
    arr = Arrivals((r.sent_s - r.sent_s[0]).astype(float), cls.astype(np.int64), r.prompts.astype(np.int64),
                   np.ones(n, dtype=np.int64), ids)
    slo = {c: Slo(ttft_ms=1e9, itl_ms=1e9, percentile=90.0) for c in ids}
    route = ClassRoute("m", ((0, 1.0),), ((1, 1.0),))
    sim = FleetSimulator([PoolSpec("m/prefill/g/tp1", "prefill", r.perf, 1),
                          PoolSpec("m/decode/g/tp1", "decode", r.perf, DECODE_REPLICAS)],
                         dict.fromkeys(ids, route), arr, slo)
    with quiet_extrapolation():
        sim.run()
    req = build_report(sim).requests.sort_values("t_arr_s", kind="stable")
    return (req.queue_ms + req.prefill_ms).to_numpy(float) + r.perf.ttft_overhead_ms


def check(r: Replay, forms: list[str]) -> list[ClassRow]:
    """Per class of `r`: vLLM's TTFT quantiles beside the model's (each form) and the simulator's."""
    cls = classes_of(r.prompts)
    k = int(cls.max()) + 1
    span_s = float(r.sent_s[-1] - r.sent_s[0])
    isl = tuple(float(r.prompts[cls == c].mean()) for c in range(k))
    counts = [int((cls == c).sum()) for c in range(k)]
    rates = tuple(n / span_s for n in counts)
    mix = capacity.PoolMix(isl=isl, osl=(1.0,) * k, rate_rps=rates)
    model: dict[int, dict[str, dict[int, float]]] = defaultdict(dict)
    for f in forms:
        with capacity.mix_batching(f), quiet_extrapolation():
            for c in range(k):
                model[c][f] = {q: capacity.prefill_latency(r.perf, isl[c], rates[c], float(q), kv_transfer=False,
                                                           mix=mix).ttft_ms for q in QUANTILES}
    sim = simulated_ttft_ms(r, cls, k)
    return [ClassRow(isl[c], counts[c], rates[c], {q: float(np.percentile(r.ttft_ms[cls == c], q)) for q in QUANTILES},
                     model[c], {q: float(np.percentile(sim[cls == c], q)) for q in QUANTILES}) for c in range(k)]


def label(r: Replay) -> str:
    """run/variant of a committed replay's path (as bench/vllm_trace_replay.py labels it), else the path."""
    return f"{r.path.parts[-6]}/{r.path.parts[-3]}" if len(r.path.parts) >= 6 else str(r.path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replay", action="append", default=None, metavar="REPLAY.csv[=PROFILE_DIR]",
                    help=f"a profiler's prefill-only {REPLAY_FILE} (repeatable; default: every committed one)")
    ap.add_argument("--model", default=None, help="only the replays of this catalog model, any case")
    ap.add_argument("--forms", default=",".join(FORMS), help=f"comma list of {', '.join(FORMS)}")
    args = ap.parse_args(argv)
    forms = [f.strip() for f in args.forms.split(",") if f.strip()]
    if not forms or any(f not in FORMS for f in forms):
        fail(f"--forms: expected a comma list of {', '.join(FORMS)}, got {args.forms!r}")
    model = known_model(Catalog.load(), args.model) if args.model is not None else None
    replays = prefill_replays(args.replay, model)
    groups: dict[tuple[str, str, str], list[Replay]] = defaultdict(list)
    for r in replays:
        groups[(r.model, r.gpu, r.path.parts[-3] if len(r.path.parts) >= 3 else str(r.path))].append(r)
    con = Console(width=220)
    t = Table(title="a P/D prefill instance on real vLLM (every output one token) vs the capacity model's prefill "
                    "prediction for the pool's mix (one replica, no KV trip) per capacity.MIX_BATCHING form, and the "
                    "simulator's prefill replica on the same arrivals: TTFT p50 / p90 ms, medians over repeats; "
                    "errors against vLLM")
    for c in ("replay", "repeats", "class (prompt)", "requests", "req/s", "vLLM p50 / p90", *forms, "simulator"):
        t.add_column(c, justify="right")
    errs: dict[str, list[float]] = {f: [] for f in [*forms, "sim"]}
    for (_, _, _), rs in groups.items():
        per = [check(r, forms) for r in rs]
        if len({len(p) for p in per}) != 1 or any(
                [round(c.isl) for c in p] != [round(c.isl) for c in per[0]] for p in per):
            fail(f"--replay {rs[0].path}: its repeats ({', '.join(str(r.path) for r in rs)}) do not share their "
                 "classes (expected the same trace design run again)")
        for c in range(len(per[0])):
            rows = [p[c] for p in per]

            def med(get: object, rows: list[ClassRow] = rows) -> float:
                return float(np.median([get(x) for x in rows]))  # type: ignore[operator]

            v = {q: med(lambda x, q=q: x.vllm_ms[q]) for q in QUANTILES}
            cells = []
            for f in [*forms, "sim"]:
                m = {q: med(lambda x, q=q, f=f: (x.sim_ms if f == "sim" else x.model_ms[f])[q]) for q in QUANTILES}
                errs[f].append(err_pct(m[90], v[90]))
                cells.append(f"{m[50]:,.0f} / {m[90]:,.0f} ({err_pct(m[50], v[50]):+.0f}% / "
                             f"{err_pct(m[90], v[90]):+.0f}%)")
            t.add_row(", ".join(label(r) for r in rs), str(len(rs)), f"{rows[0].isl:,.0f}",
                      f"{int(med(lambda x: x.requests)):,}", f"{med(lambda x: x.rate_rps):.2f}",
                      f"{v[50]:,.0f} / {v[90]:,.0f}", *cells)
    if replays:
        con.print(t)
    else:
        con.print("no prefill-only replay given or committed (plan r4 of profiles/gpu_session.py writes one)")

    def mean_abs(xs: list[float]) -> float:
        return float(np.mean(np.abs(xs))) if xs else float("nan")

    print(" ".join([f"RESULT replays={len(replays)} requests={sum(len(r.sent_s) for r in replays)}",
                    *(f"ttft_p90_err_pct_{f}={mean_abs(errs[f]):.1f}" for f in forms),
                    f"sim_ttft_p90_err_pct={mean_abs(errs['sim']):.1f}"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
