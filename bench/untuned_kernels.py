"""MoE profiles on tuned or fallback kernels: vLLM's fused-MoE table lookup per profile, and how far the prior misses
the ones measured on fallback tiles (rule V3, stop 41).

    .venv/bin/python bench/untuned_kernels.py [--profiles DIR ...]

Every vLLM profile of a mixture-of-experts model under `--profiles` (default: profiles/data, then profiles/runs; a
variant found twice is taken from the first folder; profiles below their roofline floor, planner/perf/floor.py, are
left out) gets the engine's table verdict (planner.perf.kernel_tables: the name vLLM 0.26.0 looks up, and whether it
ships it), what its server log says where the run kept one (vLLM logs "Using configuration from .../<table>.json" or
"Using default MoE config"), and its meta.yaml `calibrate` flag. For each profile on fallback tiles the roofline
prior the planner uses for that variant when it has no profile of it (calibrated without it:
planner.perf.heldout.perf_leaving_out) is set against the measured points: measured / prior, median per phase (> 1:
the prior is optimistic). The planner's note on MoE variants it prices from the prior where vLLM has no tuned table
quotes that range (planner.perf.kernel_tables.UNTUNED_MEASURED_OVER_PRIOR). Models outside the bundled catalog are read
from examples/byo-model/catalog when no PLANNER_CATALOG is set. Deterministic: one run, no repeats.

With CUDA graphs captured to 4,096 tokens (GRAPHS_RUNS) the held-out small MoE's default-tile runs are 1.15x / 1.06x
(H200) and 1.14x / 1.02x (H100, rule H5) the prior (stop 42, rule B2's Cauchy loss; 1.12 / 1.05x and 1.11 / 0.99x with
Huber): its 2.13x on the H200 at vLLM's default graph sizes is mostly the eager prefill steps past 512 tokens, not the
tiles.

Last line: RESULT moe_profiles=<n> untuned=<n> log_checked=<n> log_agrees=<n> flag_agrees=<n of the bundled>
           prefill_ratio_min= prefill_ratio_max= decode_ratio_min= decode_ratio_max= (measured / prior, untuned only)
           graphs_runs=<n> graphs_{prefill,decode}_ratio_{min,max}= (GRAPHS_RUNS)
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from planner.io.catalog import Catalog  # noqa: E402
from planner.io.errors import InputError  # noqa: E402
from planner.perf.floor import physical_profiles  # noqa: E402
from planner.perf.heldout import RUNS_DIR, _points, perf_leaving_out, predict_points, use_byo_catalog_unless_set  # noqa: E402
from planner.perf.kernel_tables import KernelTuning, profile_kernel_tuning  # noqa: E402
from planner.perf.laws import DEFAULT_PROFILES_DIR, client_ttft_rows, variant_key  # noqa: E402
from planner.perf.profiledata import Profile, iter_profiles, law_source, load_profile  # noqa: E402

LOG_FILES = ("server.log", "server_log_excerpt.txt")
GRAPHS_RUNS: tuple[str, ...] = (
    "2026-12-04-s16/qwen1.5-moe-a2.7b/H200-141GB/tp1-graphs4k/vllm",
    "2026-12-06-h5/qwen1.5-moe-a2.7b/H100-SXM-80GB/tp1-graphs4k/vllm",
)
"""Runs under profiles/runs of a default-tile MoE served with CUDA graphs captured to 4,096 tokens (a folder name
outside the profile layout, so read one by one): vLLM's default graph sizes stop at 512 tokens and a small-expert
MoE's larger prefill steps then run eagerly (planner/perf/graphs.py), which the default-graph run's ratio mixes in.
Reported in their own table (the held-out qwen1.5-moe-a2.7b on both cards; rule H5, stop 42), not in the range the
plan's note quotes."""
TUNED_LINE = "Using configuration from"
LOG_CELL = {True: "tuned", False: "default", None: "-"}  # a log_verdict in the tables
UNTUNED_LINE = "Using default MoE config"


def log_verdict(p: Profile, table: str | None) -> bool | None:
    """What the run's kept server log says of `table`: True (vLLM loaded it), False (it warned of default tiles),
    None (no log kept, or the log names neither)."""
    for name in LOG_FILES:
        f = p.path / name
        if not f.is_file():
            continue
        text = f.read_text(errors="replace")
        if UNTUNED_LINE in text:
            return False
        if table is not None and TUNED_LINE in text and f"{table}.json" in text:
            return True
    return None


def measured_over_prior(p: Profile, catalog: Catalog) -> tuple[float, float]:
    """Median measured / prior per phase (prefill, decode), the prior calibrated without this variant's profiles."""
    pm = perf_leaving_out([p], catalog)
    m = p.meta
    vp = pm.get(m.model, m.gpu, m.tp, m.weight_dtype, m.kv_dtype)
    if vp is None:
        raise ValueError(f"{p.path}: the prior has no laws for this variant")
    pre, dec = _points(p)
    tp, td = predict_points(vp, pre, dec, vp.ttft_overhead_ms if client_ttft_rows(p) else 0.0)
    return (float(np.median(pre.ttft_ms.to_numpy() / tp)), float(np.median(dec.itl_ms.to_numpy() / td)))


@dataclass(frozen=True)
class Row:
    """One variant: its first profile, the table verdict, whether that profile is bundled, and what a kept server log
    of any run of the variant says (log_verdict; None: no run kept one)."""

    profile: Profile
    tuning: KernelTuning
    bundled: bool
    log: bool | None


def collect(folders: list[Path], catalog: Catalog) -> list[Row]:
    """A row per variant with a physical vLLM MoE profile, its profile from the first folder holding one; the log
    verdict from any folder's run of the variant (a re-measure may have kept the log the bundled run did not)."""
    first: dict[tuple, tuple[Profile, KernelTuning, bool]] = {}
    logs: dict[tuple, bool] = {}
    for folder in folders:
        profs = [p for p in iter_profiles(folder) if law_source(p.meta) == "measured-vllm"
                 and p.meta.model in catalog.models and catalog.model(p.meta.model).moe is not None]
        profs, _ = physical_profiles(profs, catalog)
        for p in profs:
            key = variant_key(p)
            t = profile_kernel_tuning(p.meta, catalog)
            assert t is not None  # the profiles above are of catalog models
            lv = log_verdict(p, t.table)
            if lv is not None:
                logs.setdefault(key, lv)
            first.setdefault(key, (p, t, folder.resolve() == DEFAULT_PROFILES_DIR.resolve()))
    return [Row(p, t, b, logs.get(key)) for key, (p, t, b) in first.items()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", type=Path, nargs="+", default=None,
                    help="folders laid out as profiles/data (default: profiles/data, then each of profiles/runs)")
    a = ap.parse_args(argv)
    use_byo_catalog_unless_set()
    if a.profiles is None:
        a.profiles = [DEFAULT_PROFILES_DIR, *sorted(d for d in (ROOT / "profiles" / "runs").iterdir() if d.is_dir())]
    for f in a.profiles:
        if not f.is_dir():
            print(f"--profiles {f}: not a folder", file=sys.stderr)
            return 2
    try:
        cat = Catalog.load()
        rows = collect(a.profiles, cat)
    except InputError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if not rows:
        print(f"--profiles {' '.join(map(str, a.profiles))}: no vLLM profile of an MoE model", file=sys.stderr)
        return 2
    tab = Table(title="vLLM MoE profiles: the fused-MoE table vLLM looks up, whether it ships it, what a run's log "
                      "says, and (fallback tiles only) measured / prior, median")
    for c in ("profile", "table (.json)", "tuned", "log", "calibrate", "prefill x", "decode x"):
        tab.add_column(c, justify="left" if c in ("profile", "table (.json)") else "right", no_wrap=c == "profile")
    ratios: list[tuple[float, float]] = []
    log_checked = log_agrees = flag_agrees = bundled = 0
    for row in rows:
        p, t, is_bundled, lv = row.profile, row.tuning, row.bundled, row.log
        if lv is not None and t.tuned is not None:
            log_checked += 1
            log_agrees += lv == t.tuned
        if is_bundled and t.tuned is not None:
            bundled += 1
            flag_agrees += p.meta.calibrate == t.tuned
        cells = ["-", "-"]
        if t.tuned is False:
            r = measured_over_prior(p, cat)
            ratios.append(r)
            cells = [f"{r[0]:.2f}", f"{r[1]:.2f}"]
        tab.add_row(str(p.path.relative_to(ROOT) if p.path.is_relative_to(ROOT) else p.path), t.table or "-",
                    {True: "yes", False: "no", None: "?"}[t.tuned], LOG_CELL[lv],
                    "yes" if p.meta.calibrate else "no", *cells)
    Console(width=220).print(tab)
    arr = np.array(ratios) if ratios else np.full((1, 2), np.nan)
    graphs = [load_profile(RUNS_DIR / d) for d in GRAPHS_RUNS if (RUNS_DIR / d / "meta.yaml").is_file()]
    gtab = Table(title="The same with CUDA graphs captured to 4,096 tokens (GRAPHS_RUNS): measured / prior, median")
    for c in ("profile", "table (.json)", "tuned", "log", "prefill x", "decode x"):
        gtab.add_column(c, justify="left" if c in ("profile", "table (.json)") else "right", no_wrap=c == "profile")
    g_ratios: list[tuple[float, float]] = []
    for p in graphs:
        t = profile_kernel_tuning(p.meta, cat)
        if t is None or t.tuned is not False:
            continue
        r = measured_over_prior(p, cat)
        g_ratios.append(r)
        lv = log_verdict(p, t.table)
        gtab.add_row(str(p.path.relative_to(ROOT)), t.table or "-", "no",
                     LOG_CELL[lv], f"{r[0]:.2f}", f"{r[1]:.2f}")
    if g_ratios:
        Console(width=220).print(gtab)
    garr = np.array(g_ratios) if g_ratios else np.full((1, 2), np.nan)
    print(f"RESULT moe_profiles={len(rows)} untuned={len(ratios)} log_checked={log_checked} log_agrees={log_agrees} "
          f"flag_agrees={flag_agrees}/{bundled} prefill_ratio_min={arr[:, 0].min():.2f} "
          f"prefill_ratio_max={arr[:, 0].max():.2f} "
          f"decode_ratio_min={arr[:, 1].min():.2f} decode_ratio_max={arr[:, 1].max():.2f} graphs_runs={len(g_ratios)} "
          f"graphs_prefill_ratio_min={garr[:, 0].min():.2f} graphs_prefill_ratio_max={garr[:, 0].max():.2f} "
          f"graphs_decode_ratio_min={garr[:, 1].min():.2f} graphs_decode_ratio_max={garr[:, 1].max():.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
