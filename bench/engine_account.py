"""Real vLLM under load, as its engine accounts for it: where a request's TTFT goes, and the laws' step time.

    .venv/bin/python bench/engine_account.py [--run RUN_DIR=PROFILE_DIR ...]

A RUN_DIR holds the profiler's ``load_sweep.csv`` (per request, client-side) and ``engine_load.csv`` (per rate,
the engine's account from ``/metrics``: profiles/engine_load.py); PROFILE_DIR the profile whose fitted laws
predict that replica (its own launch's grid, or the model's committed profile). Default: device session s20's
runs (profiles/runs/2026-12-05-s20).

Per rate, from the measurements alone:
- the client's mean TTFT, and the engine's (``vllm:time_to_first_token_seconds``: from the request's arrival at
  the frontend's engine client to its first token), the requests' mean WAITING time in the scheduler (queue) and
  their first-scheduled-to-first-token time (prefill); client - engine TTFT is the HTTP and API-server part;
- the steps the engine ran, those that carried a prompt's chunk (more than 256 tokens), and the mean step time
  span / steps, which is the step's own time when the engine never idles (the running gauge never 0).

The simulator replaying each rate's arrivals (bench/fidelity.py's mixed replica) gives the same parts: its mean TTFT,
its engine queue (admission less arrival and the frontend delay it applied) and its admission-to-first-token.

Against the laws (planner.simulate.steptime.mixed_step_ms, the simulator's step): the mean step the laws give for
the measured composition, the mean running batch decoding in every step and the run's prompt tokens spread
evenly over its chunk-carrying steps. measured / laws > 1 means the real steps under load are slower than the
laws fitted on the idle replica's profile grid.

Where a run has ``decode_engine.csv`` (decode points, profiles/engine_load.py), a second table sets the client's
steady-window ITL beside the engine's mean inter-token gap per batch: the batch-256 question (is the client's jump
over batch 128 the engine's or the API server's?).

Last line: ``RESULT runs=<n> rates=<n> step_ratio_median=<x> step_ratio_worst=<x> frontend_ms_median=<ms>
queue_share_median=<share of the engine's TTFT spent waiting> sim_ttft_mean_err_pct=<median |sim - client| / client
TTFT mean, %>``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fidelity import _mixed_sim  # noqa: E402  (bench/: the mixed replica the other real-vLLM benches replay)

from planner.io.catalog import Catalog  # noqa: E402
from planner.io.errors import PlannerError  # noqa: E402
from planner.perf.heldout import use_byo_catalog_unless_set  # noqa: E402
from planner.perf.laws import VariantPerf, fit_profile  # noqa: E402
from planner.perf.profiledata import load_profile  # noqa: E402
from planner.simulate.steptime import FRONTEND_MS_PER_RUNNING, frontend_delay_ms, mixed_step_ms  # noqa: E402

# Plan s18's runs were measured in s20 (profiles/runs/2026-12-05-s20, stop 32; s18's other variants were not run):
# llama-3.1-8b's engine account at ISL 1,024 and 4,096, and the three other s20 sweeps, which record it too.
S20 = "profiles/runs/2026-12-05-s20/llama-3.1-8b/H200-141GB"
_LLAMA = "profiles/data/llama-3.1-8b/H200-141GB/tp1/vllm"
DEFAULT_RUNS = [(f"{S20}/{v}/vllm", _LLAMA) for v in ("tp1-acct", "tp1-spread", "tp1-kv64k", "tp1-kv64k-oslspread")]


@dataclass(frozen=True)
class RateAccount:
    """One rate run: the client's and the engine's TTFT, its parts, and the measured and laws' mean step."""

    run: str
    isl: int
    rate_rps: float
    client_ttft_ms: float
    client_ttft_p90_ms: float
    engine_ttft_ms: float
    queue_ms: float
    prefill_ms: float
    running_mean: float
    waiting_mean: float
    steps: float
    chunk_steps: float
    step_ms: float
    laws_step_ms: float
    sim_ttft_ms: float
    sim_queue_ms: float
    sim_prefill_ms: float

    @property
    def frontend_ms(self) -> float:
        return self.client_ttft_ms - self.engine_ttft_ms

    @property
    def step_ratio(self) -> float:
        return self.step_ms / self.laws_step_ms


def run_label(run_dir: Path) -> str:
    """The model folder of a MODEL/GPU/VARIANT/vllm run directory (the whole path when shorter)."""
    return run_dir.parts[-4] if len(run_dir.parts) >= 4 else str(run_dir)


def laws_mean_step_ms(perf: VariantPerf, row: pd.Series) -> float:
    """The laws' mean step over the run: every step decodes the mean running batch at mean context isl + osl/2;
    the run's prompt tokens are spread evenly over its chunk-carrying steps (each chunk a whole prompt's share)."""
    batch = max(0, round(float(row.running_mean)))
    ctx = float(row.isl) + float(row.osl) / 2.0
    steps, chunk_steps = float(row.steps), max(1.0, float(row.steps_over_256_tokens))
    per_chunk = float(row.prompt_tokens) / chunk_steps
    mixed = mixed_step_ms(perf, batch, batch * ctx, round(per_chunk), per_chunk * float(row.isl))
    decode = mixed_step_ms(perf, batch, batch * ctx, 0, 0.0)
    return (chunk_steps * mixed + (steps - chunk_steps) * decode) / steps


def simulated_parts_ms(perf: VariantPerf, isl: int, osl: int, sent_s: np.ndarray) -> tuple[float, float, float]:
    """The simulator replaying the run's arrivals (bench/fidelity.py's mixed replica, its frontend constant): mean
    TTFT, mean engine queue (admission minus arrival, less the frontend delay it applied: the laws' overhead plus
    FRONTEND_MS_PER_RUNNING per request in the system) and mean admission-to-first-token, ms."""
    df, in_system = _mixed_sim(perf, isl, osl, np.sort(sent_s), FRONTEND_MS_PER_RUNNING)
    frontend = frontend_delay_ms(perf, 0.0) + FRONTEND_MS_PER_RUNNING * in_system.astype(float)
    if perf.ttft_overhead_ms <= 0:
        frontend = np.zeros(len(in_system))
    return (float(df.ttft_ms.mean()), float((df.queue_ms.to_numpy() - frontend).mean()), float(df.prefill_ms.mean()))


def accounts(run_dir: Path, perf: VariantPerf) -> list[RateAccount]:
    eng = pd.read_csv(run_dir / "engine_load.csv")
    req = pd.read_csv(run_dir / "load_sweep.csv")
    out = []
    for _, row in eng.iterrows():
        mine = req[(req.isl == row.isl) & ((req.rate_rps - row.rate_rps).abs() < 1e-6)]
        sim_ttft, sim_queue, sim_prefill = simulated_parts_ms(perf, int(row.isl), int(row.osl), mine.sent_s.to_numpy())
        out.append(RateAccount(
            run=run_label(run_dir), isl=int(row.isl),
            rate_rps=float(row.rate_rps), client_ttft_ms=float(mine.ttft_ms.mean()),
            client_ttft_p90_ms=float(mine.ttft_ms.quantile(0.9)), engine_ttft_ms=float(row.engine_ttft_ms_mean),
            queue_ms=float(row.queue_ms_mean), prefill_ms=float(row.prefill_ms_mean),
            running_mean=float(row.running_mean), waiting_mean=float(row.waiting_mean), steps=float(row.steps),
            chunk_steps=float(row.steps_over_256_tokens), step_ms=float(row.span_s) * 1e3 / float(row.steps),
            laws_step_ms=laws_mean_step_ms(perf, row), sim_ttft_ms=sim_ttft, sim_queue_ms=sim_queue,
            sim_prefill_ms=sim_prefill))
    return out


def decode_table(pairs: list[tuple[str, str]]) -> None:
    """Decode points with the engine's mean inter-token gap beside the client's ITL (decode_engine.csv), where a run
    has them: a client ITL well above the engine's is the API server's streaming, not the engine's step."""
    frames = []
    for run, _prof in pairs:
        f = (ROOT / run) / "decode_engine.csv"
        if f.is_file():
            d = pd.read_csv(f)
            d["run"] = run_label(Path(run))
            frames.append(d)
    if not frames:
        return
    d = pd.concat(frames).groupby(["run", "batch", "context_tokens"], as_index=False)[
        ["client_itl_ms", "client_mean_gap_ms", "engine_itl_ms_mean"]].median()
    t = Table(title="Decode points: the client's steady-window ITL (the profile's), its mean gap over every token, and "
                    "the engine's mean inter-token gap over the same tokens (median of repeats, ms)")
    for c in ("run", "batch", "context", "client ITL (steady)", "client mean gap", "engine mean gap",
              "client / engine"):
        t.add_column(c, justify="right")
    for r in d.itertuples():
        t.add_row(str(r.run), str(r.batch), str(r.context_tokens), f"{r.client_itl_ms:.2f}",
                  f"{r.client_mean_gap_ms:.2f}", f"{r.engine_itl_ms_mean:.2f}",
                  f"{r.client_mean_gap_ms / r.engine_itl_ms_mean:.2f}")
    Console(width=200).print(t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", default=None, metavar="RUN_DIR=PROFILE_DIR",
                    help="a run folder (load_sweep.csv + engine_load.csv) and the profile of its laws; repeatable")
    a = ap.parse_args(argv)
    if a.run and any("=" not in r for r in a.run):
        bad = next(r for r in a.run if "=" not in r)
        print(f"--run {bad}: expected RUN_DIR=PROFILE_DIR (a run folder and the profile of its laws)", file=sys.stderr)
        return 2
    pairs = [tuple(r.split("=", 1)) for r in a.run] if a.run else DEFAULT_RUNS
    use_byo_catalog_unless_set()
    cat = Catalog.load()
    # every pair checked before any work (exit 2 naming the folder): the run's files, then its profile's laws
    fits: list[tuple[Path, VariantPerf]] = []
    for run, prof in pairs:
        run_dir, prof_dir = (ROOT / run) if not Path(run).is_absolute() else Path(run), ROOT / prof
        if not (run_dir / "engine_load.csv").is_file() and (run_dir / "decode_engine.csv").is_file():
            continue  # a decode-only run (decode_table below)
        if not (run_dir / "engine_load.csv").is_file() or not (run_dir / "load_sweep.csv").is_file():
            hint = ("; the default runs are device session s20's (profiles/runs/2026-12-05-s20): is the checkout "
                    "whole? Or pass --run RUN_DIR=PROFILE_DIR" if not a.run else "")
            print(f"{run_dir}: expected load_sweep.csv and engine_load.csv there (planner profile --rates-by-isl)"
                  f"{hint}", file=sys.stderr)
            return 2
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the laws' extrapolation warnings: a large batch is the point here
                fits.append((run_dir, fit_profile(load_profile(prof_dir), cat)[0]))
        except PlannerError as e:
            print(f"--run {run}={prof}: the profile of its laws: {e}", file=sys.stderr)
            return 2
    rows: list[RateAccount] = []
    for run_dir, perf in fits:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows += accounts(run_dir, perf)
    t = Table(title="Real vLLM under load, the engine's account (means over each rate's requests; ms)")
    for c in ("run", "ISL", "rate rps", "client TTFT (p90)", "sim TTFT", "engine TTFT", "queue (sim)", "prefill (sim)",
              "HTTP+frontend", "running", "waiting", "steps (chunk)", "step measured", "step laws", "ratio"):
        t.add_column(c, justify="right")
    for r in rows:
        t.add_row(r.run, str(r.isl), f"{r.rate_rps:g}", f"{r.client_ttft_ms:.0f} ({r.client_ttft_p90_ms:.0f})",
                  f"{r.sim_ttft_ms:.0f}", f"{r.engine_ttft_ms:.0f}", f"{r.queue_ms:.0f} ({r.sim_queue_ms:.0f})",
                  f"{r.prefill_ms:.0f} ({r.sim_prefill_ms:.0f})", f"{r.frontend_ms:.0f}",
                  f"{r.running_mean:.0f}", f"{r.waiting_mean:.1f}", f"{r.steps:.0f} ({r.chunk_steps:.0f})",
                  f"{r.step_ms:.1f}", f"{r.laws_step_ms:.1f}", f"{r.step_ratio:.3f}")
    Console(width=200).print(t)
    decode_table(pairs)
    if not rows:
        print(f"RESULT runs={len(pairs)} rates=0")
        return 0
    ratios = [r.step_ratio for r in rows]
    sim_err = [abs(r.sim_ttft_ms / r.client_ttft_ms - 1) * 100 for r in rows]
    print(f"RESULT runs={len(pairs)} rates={len(rows)} step_ratio_median={statistics.median(ratios):.3f} "
          f"step_ratio_worst={max(ratios, key=lambda x: abs(x - 1)):.3f} "
          f"frontend_ms_median={statistics.median(r.frontend_ms for r in rows):.1f} "
          f"queue_share_median={statistics.median(r.queue_ms / r.engine_ttft_ms for r in rows):.2f} "
          f"sim_ttft_mean_err_pct={statistics.median(sim_err):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
