"""Real vLLM's engine steps under load against the laws' step time: does a mixed step cost what the laws say?

    .venv/bin/python bench/step_composition.py                      # the committed s10 runs
    .venv/bin/python bench/step_composition.py --run ITER=PROFILE_DIR [--run ...]

ITER is the ``iterations.csv.gz`` that ``planner profile --backend vllm --log-iterations --rates-by-isl ...``
writes beside its load sweep, or any vLLM server log of a load sweep served with
``--enable-logging-iteration-details``; the ``load_sweep.csv`` beside it gives the sweep's ISLs and OSL;
PROFILE_DIR is the profile the laws are fitted on (never the run itself: the load sweep is held out of it).

Method (profiles/iterations.py says why the logged ``elapsed_ms`` cannot be used): vLLM logs each step's
composition (prompt tokens, decoding requests) with a one-second timestamp. A second in which every logged
step carried a decode, as did the steps of the seconds before and after, had the engine busy throughout, so
its steps took 1,000 ms together. For each such second the laws' time of its steps is summed
(planner.simulate.steptime.mixed_step_ms, the simulator's step: the decode law at the step's batch and a
context of ISL + OSL/2 per decode, plus the prefill marginal of its prompt tokens with each prompt's
attention term ISL x tokens) and set against 1,000 ms. Per (run, ISL): the median of measured / laws over
the busy seconds, and a least-squares split 1,000 = k_d x (decode part) + k_p x (prefill part) that says
which part is off. A second's edges cut a step (one step of 5-100 ms per second): the medians over ~40-90
seconds carry it as noise, not bias. For an MoE with a measured prefill token table the table's variant
(the simulator's) and the law alone are both reported.

Last line: ``RESULT runs=<n> seconds=<busy seconds> dense_step_err_pct=<median |measured/laws - 1| over the
dense runs' seconds> moe_step_err_pct=<the same, MoE runs, with the table at its mixed-step share>
moe_heldout_step_err_pct=<the same, MoE runs other than the share's tuning run> moe_law_step_err_pct=<MoE, law
alone> dense_prefill_k=<median k_p over the dense (run, ISL) cells> moe_prefill_k=<MoE, with the table>``.
"""

from __future__ import annotations

import argparse
import dataclasses
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

from planner.io.catalog import Catalog  # noqa: E402
from planner.perf.laws import VariantPerf, fit_profile  # noqa: E402
from planner.perf.profiledata import load_profile  # noqa: E402
from planner.simulate.steptime import mixed_step_ms  # noqa: E402
from profiles.iterations import read_iterations  # noqa: E402

S10 = ROOT / "profiles" / "runs" / "2026-12-03-s10"
DEFAULT_RUNS: tuple[tuple[str, str], ...] = tuple(
    (f"{S10}/{m}/H200-141GB/tp1-iter/vllm/iterations.csv.gz", f"{ROOT}/profiles/data/{m}/H200-141GB/tp1/vllm")
    for m in ("llama-3.1-8b", "qwen3-32b", "qwen3-30b-a3b")) + (
    # the MoE again in a second server launch (s11), held out of planner.perf.laws.MOE_TABLE_MIXED_SHARE
    (f"{S10}/launch2/qwen3-30b-a3b/H200-141GB/tp1-iter/vllm/iterations.csv.gz",
     f"{ROOT}/profiles/data/qwen3-30b-a3b/H200-141GB/tp1/vllm"),)
# Runs whose steps chose a default (MOE_TABLE_MIXED_SHARE: s10's MoE launch); every other run is held out of it.
TUNING_RUNS = (f"{S10}/qwen3-30b-a3b/H200-141GB/tp1-iter/vllm/iterations.csv.gz",)
# A prompt's size is recognised when its tokens (a step's context tokens over its context requests) lie
# within this share of one of the sweep's ISLs; the steps after it inherit it (chunks, decode-only steps).
ISL_MATCH_SHARE = 0.1
BUSY_MS = 1000.0  # one busy second


@dataclass(frozen=True)
class Cell:
    """One (run, ISL): its busy seconds' measured / laws ratios and the least-squares split."""

    run: str
    isl: int
    seconds: int
    mean_batch: float
    steps_per_s: float
    mixed_steps_per_s: float
    ratios: np.ndarray
    k_decode: float
    k_prefill: float
    prefill_share: float

    @property
    def median(self) -> float:
        return float(np.median(self.ratios))


def phase_isl(it: pd.DataFrame, isls: list[int]) -> np.ndarray:
    """Per step, the ISL of the sweep phase it belongs to: a step whose prompts are of a sweep ISL starts or
    continues that phase, the steps after it (chunks of other sizes, decode-only steps) inherit it; 0 before
    the first (the profile grid's points, which run before the sweep)."""
    per_prompt = np.where(it.ctx_requests > 0, it.ctx_tokens / it.ctx_requests.clip(lower=1), np.nan)
    label = np.full(len(it), np.nan)
    for isl in isls:
        label[np.abs(per_prompt - isl) <= ISL_MATCH_SHARE * isl] = isl
    return pd.Series(label).ffill().fillna(0).to_numpy(dtype=int)


def step_parts_ms(perf: VariantPerf, it: pd.DataFrame, isl: np.ndarray, osl: float) -> tuple[np.ndarray, np.ndarray]:
    """(decode part, prefill part) of each step's laws time: the decode-only step at its batch, and what
    its prompt tokens add (mixed_step_ms minus that)."""
    dec = np.zeros(len(it))
    full = np.zeros(len(it))
    for i, (g, t, s) in enumerate(zip(it.gen_requests.to_numpy(), it.ctx_tokens.to_numpy(), isl, strict=True)):
        ctx = float(g) * (float(s) + osl / 2.0)
        dec[i] = mixed_step_ms(perf, int(g), ctx, 0, 0.0) if g > 0 else 0.0
        full[i] = mixed_step_ms(perf, int(g), ctx, int(t), float(t) * float(s)) if t > 0 else dec[i]
    return dec, full - dec


def busy_seconds(it: pd.DataFrame, perf: VariantPerf, isls: list[int], osl: float) -> pd.DataFrame:
    """Per logged second: its phase ISL, steps, mixed steps, mean batch, laws decode / prefill ms; only the
    busy ones (a decode in every step of it and of both neighbours) of a sweep phase."""
    isl = phase_isl(it, isls)
    dec, pre = step_parts_ms(perf, it, isl, osl)
    df = it.assign(isl=isl, dec=dec, pre=pre, mixed=(it.ctx_tokens > 0).astype(int))
    g = df.groupby("second", sort=False).agg(isl=("isl", "min"), isl_max=("isl", "max"), steps=("iteration", "size"),
                                            mixed=("mixed", "sum"), batch=("gen_requests", "mean"),
                                            gmin=("gen_requests", "min"), dec=("dec", "sum"), pre=("pre", "sum"))
    busy = (g.gmin >= 1) & (g.gmin.shift(1) >= 1) & (g.gmin.shift(-1) >= 1) & (g.isl == g.isl_max) & (g.isl > 0)
    return g[busy]


def cells(run: str, sec: pd.DataFrame) -> list[Cell]:
    out = []
    for isl, sub in sec.groupby("isl"):
        laws = (sub.dec + sub.pre).to_numpy()
        x = sub[["dec", "pre"]].to_numpy()
        k = np.linalg.lstsq(x, np.full(len(sub), BUSY_MS), rcond=None)[0] if len(sub) >= 2 else np.array([np.nan, np.nan])
        out.append(Cell(run, int(isl), len(sub), float(sub.batch.mean()), float(sub.steps.mean()), float(sub.mixed.mean()),
                        BUSY_MS / laws, float(k[0]), float(k[1]), float(sub.pre.sum() / laws.sum())))
    return out


def sweep_shape(iter_path: Path) -> tuple[list[int], float]:
    """The sweep's ISLs and OSL, from the load_sweep.csv beside the iterations."""
    sweep = iter_path.parent / "load_sweep.csv"
    if not sweep.is_file():
        raise ValueError(f"{iter_path}: no load_sweep.csv beside it (its ISLs and OSL name the sweep's phases)")
    df = pd.read_csv(sweep)
    return sorted(int(v) for v in df.isl.unique()), float(df.osl.median())


def fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", default=None, metavar="ITER=PROFILE_DIR",
                    help="a server log (or iterations table) of a load sweep and the profile the laws come from")
    a = ap.parse_args(argv)
    pairs = [tuple(r.split("=", 1)) for r in a.run] if a.run else list(DEFAULT_RUNS)
    runs = []
    for pair in pairs:  # every input checked before any work
        if len(pair) != 2:
            return fail(f"--run: expected ITER=PROFILE_DIR, got '{pair[0]}'")
        it_path, prof = Path(pair[0]), Path(pair[1])
        if not it_path.is_file():
            return fail(f"--run: file not found: {it_path}")
        if not (prof / "meta.yaml").is_file():
            return fail(f"--run: {prof} is not a profile folder (no meta.yaml)")
        try:
            runs.append((it_path, prof, read_iterations(it_path), *sweep_shape(it_path)))
        except ValueError as exc:
            return fail(str(exc))
    con = Console(width=220)
    table = Table(title="Real vLLM's busy seconds under load against the laws' step time (1,000 ms of steps each)")
    for col in ("run", "ISL", "laws", "busy s", "mean batch", "steps/s", "mixed steps/s", "prefill share",
                "measured/laws median", "p10", "p90", "k_decode", "k_prefill"):
        table.add_column(col, justify="right" if col not in ("run", "laws") else "left")
    pooled: dict[str, list[float]] = {"dense": [], "moe": [], "moe_law": [], "moe_heldout": []}
    k_p: dict[str, list[float]] = {"dense": [], "moe": []}
    n_sec = 0
    for it_path, prof, it, isls, osl in runs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # extrapolation warnings: the batches are the run's
            perf = fit_profile(load_profile(prof), Catalog.load())[0]
            variants = [("laws", perf)]
            if perf.prefill_table_tokens:
                variants = [("laws + MoE table", perf),
                            ("law alone", dataclasses.replace(perf, prefill_table_tokens=(), prefill_table_ratio=()))]
            launch = next((p for p in it_path.parts if p.startswith("launch")), "")
            name = perf.model + (f" ({launch})" if launch else "")
            held_out = str(it_path.resolve()) not in {str(Path(t).resolve()) for t in TUNING_RUNS}
            for label, vp in variants:
                sec = busy_seconds(it, vp, isls, osl)
                if label != "law alone":
                    n_sec += len(sec)
                for c in cells(name, sec):
                    table.add_row(name, str(c.isl), label, str(c.seconds), f"{c.mean_batch:.1f}", f"{c.steps_per_s:.1f}",
                                  f"{c.mixed_steps_per_s:.1f}", f"{c.prefill_share:.2f}", f"{c.median:.3f}",
                                  f"{np.quantile(c.ratios, 0.1):.3f}", f"{np.quantile(c.ratios, 0.9):.3f}",
                                  f"{c.k_decode:.3f}", f"{c.k_prefill:.3f}")
                    key = "dense" if not perf.prefill_table_tokens else ("moe" if label != "law alone" else "moe_law")
                    pooled[key].extend(np.abs(c.ratios - 1.0) * 100.0)
                    if key == "moe" and held_out:
                        pooled["moe_heldout"].extend(np.abs(c.ratios - 1.0) * 100.0)
                    if key in k_p:
                        k_p[key].append(c.k_prefill)
    con.print(table)

    def med(v: list[float]) -> str:
        return f"{float(np.median(v)):.1f}" if v else "nan"

    print(f"RESULT runs={len(runs)} seconds={n_sec} dense_step_err_pct={med(pooled['dense'])} moe_step_err_pct={med(pooled['moe'])} "
          f"moe_heldout_step_err_pct={med(pooled['moe_heldout'])} "
          f"moe_law_step_err_pct={med(pooled['moe_law'])} dense_prefill_k={float(np.median(k_p['dense'])) if k_p['dense'] else float('nan'):.3f} "
          f"moe_prefill_k={float(np.median(k_p['moe'])) if k_p['moe'] else float('nan'):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
