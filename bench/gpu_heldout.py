"""A new run held out: the planner's laws for variants it has no vLLM profile of, against a run that measured them.

    .venv/bin/python bench/gpu_heldout.py --runs profiles/runs/<date>-h1 [--gpu H100-SXM-80GB] [--goal-pct 15] [--card-unseen]
    .venv/bin/python bench/gpu_heldout.py --held-out-set [--card-unseen]   # the held-out models' H100 runs (HELD_OUT_H100)

`--runs` is a folder laid out as profiles/data (``<model>/<gpu>/tp<N>[-fp8][-kvfp8]/vllm/``, what
`profiles.gpu_session` writes): every vLLM profile under it (of `--gpu` where given) is predicted by the laws
`PerfModel.load()` gives that variant from the bundled profiles, less every bundled vLLM profile of a variant the run
measured (the run's own, once bundled: plan h1's since stop 37), so the laws are the prior calibrated without them, as
before the run; and, where profiles/data holds
the variant's torch-reference profile (or the run folder, or HELD_OUT_H100_TORCH with --held-out-set), by that
profile's laws with the planner's TTFT overhead. Nothing is fitted on
the run. Written for plan h1 (the first vLLM run on an H100, a card no law, prior or constant was fitted on with vLLM):
its rules, written before the run (profiles/runs/plan-h1-predictions.txt), are
  H1 (report): the prior's |error| per variant, median and p90, beside the torch reference's; issue 10's goal is a
     median <= 15% (`--goal-pct`);
  H2 (decision): the prior replaces a torch-only variant where, pooled over every variant with both, its median is
     >= planner.perf.heldout.D_MARGIN_PCT points below the torch reference's and its p90 not above
     (planner.perf.heldout.prior_beats_torch, part D of bench/calibrate_prior.py on the H200 pairs).
`--card-unseen` leaves every bundled profile of the runs' GPU types out as well (any model, any source): the card as
if nobody had profiled it. On the six models held out of every calibration and measured on the H100 (llama-3.2-3b bf16
and FP8, mistral-nemo-12b, qwen2.5-14b, qwen3-14b bf16 and FP8; stop 42, the Cauchy loss of rule B2): 5.0 / 4.2%
(prefill / decode median) with the H100's bundled profiles, 7.3 / 9.1% without any (Huber: 6.8 / 4.6%, 8.4 / 13.2%).
Models outside the bundled catalog are read from examples/byo-model/catalog when no PLANNER_CATALOG is set.
Deterministic (no sampling): one run, no repeats.

Last line: RESULT variants=<n> points=<n> prior_prefill_median_pct= prior_decode_median_pct= prior_median_pct=
           prior_p90_pct= (pooled, prefill and decode) within_goal=<variants whose median meets --goal-pct>
           torch_variants=<n> torch_median_pct= torch_p90_pct= prior_on_torch_median_pct= prior_on_torch_p90_pct=
           (pooled over the variants with a torch reference) h2_rule=prior|torch|none
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))
from bench_input import known_gpu, require  # noqa: E402
from planner.io.errors import InputError  # noqa: E402
from planner.io.catalog import Catalog  # noqa: E402
from planner.perf.heldout import (  # noqa: E402
    HELD_OUT_H100,
    HELD_OUT_H100_TORCH,
    RUNS_DIR,
    RunHeldOut,
    held_out_runs,
    perf_leaving_out,
    pooled,
    prior_beats_torch,
    use_byo_catalog_unless_set,
)
from planner.perf.laws import DEFAULT_PROFILES_DIR, TORCH_ONLY_LAWS  # noqa: E402
from planner.perf.floor import physical_profiles  # noqa: E402
from planner.perf.profiledata import iter_profiles, law_source, load_profile  # noqa: E402


def _pct(x: float) -> str:
    return "-" if np.isnan(x) else f"{100 * x:.1f}"


def summary(rows: list[RunHeldOut], goal: float) -> dict[str, float | str]:
    """The RESULT line's figures (fractions; NaN where no row has them)."""
    nan = float("nan")
    pl = pooled([r.planner for r in rows])
    allp = np.concatenate([r.planner.all_rel_err() for r in rows])
    paired = [r for r in rows if r.torch is not None]
    tor = np.concatenate([r.torch.all_rel_err() for r in paired if r.torch is not None]) if paired else np.array([])
    pri = np.concatenate([r.planner.all_rel_err() for r in paired]) if paired else np.array([])
    return {
        "variants": len(rows), "points": int(allp.size),
        "prior_prefill_median": pl["prefill_median"], "prior_decode_median": pl["decode_median"],
        "prior_median": float(np.median(allp)), "prior_p90": float(np.percentile(allp, 90)),
        "within_goal": sum(float(np.median(r.planner.all_rel_err())) <= goal for r in rows),
        "torch_variants": len(paired),
        "torch_median": float(np.median(tor)) if tor.size else nan, "torch_p90": float(np.percentile(tor, 90)) if tor.size else nan,
        "prior_on_torch_median": float(np.median(pri)) if pri.size else nan,
        "prior_on_torch_p90": float(np.percentile(pri, 90)) if pri.size else nan,
        "h2_rule": ("prior" if prior_beats_torch(pri, tor) else "torch") if tor.size else "none",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--runs", type=Path, help="folder of profiles laid out as profiles/data")
    src.add_argument("--held-out-set", action="store_true",
                     help="the committed H100 runs of the held-out models (planner.perf.heldout.HELD_OUT_H100)")
    ap.add_argument("--gpu", default=None, help="only the profiles of this catalog GPU (default: every one)")
    ap.add_argument("--goal-pct", type=float, default=15.0, help="issue 10's goal for a variant's median |error|, %%")
    ap.add_argument("--card-unseen", action="store_true",
                    help="also leave out every bundled profile of the runs' GPU types (any model, any source): the card as "
                         "if nobody had profiled it, the prior from its catalog entry alone")
    a = ap.parse_args(argv)
    use_byo_catalog_unless_set()
    # found in QA: --goal-pct -1 ran to a RESULT with exit 0 (no variant can meet it); --gpu h100-sxm-80gb (the
    # catalog's GPU in another case) and --gpu no-such-gpu were both "no vLLM profile of ... under it"
    require(0 < a.goal_pct < math.inf, "--goal-pct", "a finite share of error > 0, in %", a.goal_pct)
    if a.gpu is not None:
        try:
            a.gpu = known_gpu(Catalog.load(), a.gpu)
        except InputError as exc:
            print(str(exc), file=sys.stderr)
            return 2
    if a.held_out_set:
        a.runs = RUNS_DIR  # the label of the messages and the table
    elif not a.runs.is_dir():
        print(f"--runs {a.runs}: not a folder", file=sys.stderr)
        return 2
    try:
        found = ([load_profile(RUNS_DIR / d) for d in HELD_OUT_H100 + HELD_OUT_H100_TORCH] if a.held_out_set
                 else list(iter_profiles(a.runs)))
        runs = [p for p in found if a.gpu is None or p.meta.gpu == a.gpu]
        cat = Catalog.load()
        bundled = list(iter_profiles(DEFAULT_PROFILES_DIR))
    except InputError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    # torch-reference profiles of the run (or of the held-out set) are scored beside the prior like bundled ones
    twins = [p for p in runs if law_source(p.meta) == "measured-torch"]
    runs = [p for p in runs if law_source(p.meta) == "measured-vllm"]
    if not runs:
        print(f"--runs {a.runs}: no vLLM profile{' of ' + a.gpu if a.gpu else ''} under it "
              "(expected <model>/<gpu>/tp<N>[-fp8][-kvfp8]/vllm/meta.yaml)", file=sys.stderr)
        return 2
    unknown = sorted({p.meta.model for p in runs} - set(cat.models))
    if unknown:
        print(f"--runs {a.runs}: model(s) {', '.join(unknown)} not in the catalog; set PLANNER_CATALOG", file=sys.stderr)
        return 2
    # a run faster than its roofline floor measured something the deployed model never does (rule V1): not scored
    runs, unphysical = physical_profiles(runs, cat)
    for _, why in unphysical:
        print(f"left out: {why}")
    if not runs:
        print(f"--runs {a.runs}: every vLLM profile under it is below its roofline floor (left out above)", file=sys.stderr)
        return 2
    try:
        rows = held_out_runs(perf_leaving_out(runs, cat, card_unseen=a.card_unseen), cat, runs, bundled + twins)
    except ValueError as exc:
        print(f"--runs {a.runs}: {exc}", file=sys.stderr)
        return 2
    goal = a.goal_pct / 100
    tab = Table(title=f"{a.runs}: each vLLM profile predicted by the planner's laws (no fit on the run) and by the bundled "
                      "torch-reference profile where one exists; |rel err| %")
    for c in ("variant", "laws", "prefill pts", "prefill median", "prefill p90", "decode pts", "decode median", "decode p90",
              "median (both)", f"<= {a.goal_pct:g}%", "torch median", "torch p90", "H2 (this variant)"):
        tab.add_column(c, justify="left" if c == "variant" else "right", no_wrap=c == "variant")
    for r in rows:
        s = r.planner.stats()
        med = float(np.median(r.planner.all_rel_err()))
        if r.torch is not None:
            t = r.torch.all_rel_err()
            torch_cells = [_pct(float(np.median(t))), _pct(float(np.percentile(t, 90))),
                           "prior" if prior_beats_torch(r.planner.all_rel_err(), t) else "torch"]
        else:
            torch_cells = ["-", "-", "-"]
        tab.add_row(r.label, r.planner.law_source, f"{s['prefill_n']:.0f}", _pct(s["prefill_median"]), _pct(s["prefill_p90"]),
                    f"{s['decode_n']:.0f}", _pct(s["decode_median"]), _pct(s["decode_p90"]), _pct(med),
                    "yes" if med <= goal else "no", *torch_cells)
    Console(width=200).print(tab)
    sm = summary(rows, goal)
    print(f"H2 over the {sm['torch_variants']} variant(s) with a torch reference: {sm['h2_rule']}"
          + (f" (the loader's, part D's on the bundled pairs: {TORCH_ONLY_LAWS})" if sm["h2_rule"] != "none" else ""))
    fields = " ".join(f"{k}={v}" if isinstance(v, (int, str)) else f"{k}_pct={_pct(v)}" for k, v in sm.items())
    print(f"RESULT {fields}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
