"""How well the planner predicts a model it has no profile of: the roofline prior against real vLLM points.

    .venv/bin/python bench/heldout_model.py \
        [--model qwen3-14b] [--gpu H200-141GB] [--tp 1] [--dir profiles/runs/2026-12-02-s2/qwen3-14b-partial]
        [--decode-dir DIR] [--skip-prefill]
    .venv/bin/python bench/heldout_model.py --set     # every committed held-out model, one row each, pooled
    .venv/bin/python bench/heldout_model.py --set --card-unseen  # the same, the prior without any profile of --gpu

`--dir` holds a vLLM profiler's prefill.csv / decode.csv (the profile format's columns) of a model that
has NO profile under profiles/data/, so `PerfModel.get` answers from the prior calibrated on the other
models' profiles (bench/calibrate_prior.py). The default is qwen3-14b on the H200 at tp1, measured by
`planner profile --backend vllm --dummy-weights` on 2026-12-02 (profiles/gpu_session.py plan s2; the
session's device time ended mid-sweep: 12 prefill and 9 decode points), with decode from the full sweep of
2026-12-03 (plan s3: 11 points, batch 1-128; its prefill was timed by a method since dropped). Nothing here
is fitted: every prediction is the prior's. Prefill compares the step time (`ttft_ms`, blocker method)
with `prefill_ms`; decode the time per token with `decode_step_ms`.
`--card-unseen` (with --set): the prior calibrated without any bundled profile of --gpu too, a new model on a card
nobody profiled (stop 42, the H200, rule B2's Cauchy loss: 9.7 / 5.5% prefill / decode median, dense 7.6 / 3.9%, against
7.9 / 3.3% and 6.1 / 3.1% with the H200's profiles; with Huber 15.4 / 7.1% against 10.2 / 3.5%).
`--set` runs the committed held-out set (planner.perf.heldout.HELD_OUT_SET: every real vLLM profile of a model that no
calibration, law form or constant was ever chosen on; the models of examples/byo-model need its catalog, which
the bench sets as PLANNER_CATALOG when none is set) and prints one row per model and the pooled errors.
Last line: RESULT model=... prefill_median_pct= prefill_p90_pct= decode_median_pct= decode_p90_pct= points=
      (--set: RESULT models=<n> and the same statistics pooled over every point of every model, then the held-out
      MoE served with CUDA graphs to 4,096 tokens, planner.perf.heldout.HELD_OUT_MOE_GRAPHS, not pooled)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_input import fail, known_gpu, known_model, not_found, read_rows, require  # noqa: E402

from planner.io.catalog import CATALOG_ENV, Catalog  # noqa: E402
from planner.perf.heldout import (  # noqa: E402
    BYO_CATALOG_DIR,
    HELD_OUT_SET,
    HELD_OUT_SET_CARD,
    PRIOR_HELD_OUT,
    PRIOR_HELD_OUT_MOE_GRAPHS,
    HeldOut,
    held_out_moe_graphs_errors,
    held_out_set_errors,
    pooled,
    predict_points,
    prior_accuracy,
    use_byo_catalog_unless_set,
)
from planner.perf.laws import PerfModel, VariantPerf  # noqa: E402


def errors(v: VariantPerf, pre: pd.DataFrame, dec: pd.DataFrame, tab: Table) -> HeldOut:
    """The prior's |relative errors| on the measured rows (planner.perf.heldout.predict_points), a row of `tab` each."""
    tp, td = predict_points(v, pre, dec)
    e_pre, e_dec = np.abs(tp - pre.ttft_ms.to_numpy()) / pre.ttft_ms.to_numpy(), np.abs(td - dec.itl_ms.to_numpy()) / dec.itl_ms.to_numpy()
    for r, pred, e in zip(pre.itertuples(), tp, e_pre, strict=True):
        tab.add_row("prefill", f"isl {r.isl}", str(r.batch), f"{r.ttft_ms:.1f}", f"{pred:.1f}", f"{100 * e:.1f}")
    for r, pred, e in zip(dec.itertuples(), td, e_dec, strict=True):
        tab.add_row("decode", f"ctx {r.context_tokens}", str(r.batch), f"{r.itl_ms:.2f}", f"{pred:.2f}", f"{100 * e:.1f}")
    return HeldOut(v.model, "prior", e_pre, e_dec)


def result_fields(st: dict[str, float]) -> str:
    """The RESULT line's statistics, in %, from HeldOut.stats / pooled."""
    return " ".join(f"{ph}_{k}_pct={100 * st[f'{ph}_{k}']:.1f}" for ph in ("prefill", "decode") for k in ("median", "p90"))


def run_set(card_unseen: bool = False) -> int:
    """Every model of planner.perf.heldout.HELD_OUT_SET against the prior, on the card it was measured on
    (HELD_OUT_SET_CARD): a row each and the pooled errors. `card_unseen`: the prior calibrated without any bundled
    profile of that card too (a new model on a card nobody profiled; the constants' check is skipped, they describe
    the planner's own prior)."""
    gpu, tp = HELD_OUT_SET_CARD
    use_byo_catalog_unless_set()
    cat = Catalog.load()
    missing = [m for m, _, _ in HELD_OUT_SET if m not in cat.models]
    if missing:
        print(f"{', '.join(missing)}: not in the catalog (set {CATALOG_ENV}={BYO_CATALOG_DIR} or unset it)", file=sys.stderr)
        return 2
    pm = PerfModel.load(cat, leave_out=(lambda p: p.meta.gpu == gpu) if card_unseen else None)
    try:
        rows = held_out_set_errors(pm, cat)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    tab = Table(title=f"Held-out models ({gpu} tp{tp}, real vLLM 0.26.0) against the prior ({pm.efficiency.source}): |rel err| %")
    for c in ("model", "prefill n", "prefill median", "prefill p90", "decode n", "decode median", "decode p90"):
        tab.add_column(c, justify="left" if c == "model" else "right")
    groups = [(r.label, [r]) for r in rows] + [
        ("dense points", [r for r in rows if not r.moe]), ("MoE points", [r for r in rows if r.moe]), ("all points", rows)]
    for name, rs in groups:
        st = pooled(rs)
        tab.add_row(name, f"{st['prefill_n']:.0f}", f"{100 * st['prefill_median']:.1f}", f"{100 * st['prefill_p90']:.1f}",
                    f"{st['decode_n']:.0f}", f"{100 * st['decode_median']:.1f}", f"{100 * st['decode_p90']:.1f}")
    graphs = held_out_moe_graphs_errors(pm, cat)  # the same MoE served with CUDA graphs to 4,096 tokens
    gs = graphs.stats()
    tab.add_row(f"{graphs.label} (not pooled)", f"{gs['prefill_n']:.0f}", f"{100 * gs['prefill_median']:.1f}",
                f"{100 * gs['prefill_p90']:.1f}", f"{gs['decode_n']:.0f}", f"{100 * gs['decode_median']:.1f}",
                f"{100 * gs['decode_p90']:.1f}")
    Console(width=120).print(tab)
    got = (round(gs["prefill_median"], 3), round(gs["decode_median"], 3))
    if not card_unseen and got != PRIOR_HELD_OUT_MOE_GRAPHS:
        print(f"note: planner.perf.heldout.PRIOR_HELD_OUT_MOE_GRAPHS is {PRIOR_HELD_OUT_MOE_GRAPHS}; this run gives {got}: update it")
    acc = prior_accuracy(rows)
    if not card_unseen and acc != PRIOR_HELD_OUT:
        print(f"note: planner.perf.heldout.PRIOR_HELD_OUT (quoted by the planner's notes) is {PRIOR_HELD_OUT}; "
              f"this run gives {acc}: update it")
    st = pooled(rows)
    print(f"RESULT models={len(rows)} {result_fields(st)} points={st['prefill_n'] + st['decode_n']:.0f} "
          f"moe_graphs4k_prefill_median_pct={100 * gs['prefill_median']:.1f} moe_graphs4k_decode_median_pct={100 * gs['decode_median']:.1f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen3-14b", help="catalog model of --dir's profile (case-insensitive)")
    ap.add_argument("--gpu", default="H200-141GB", help="catalog GPU type --dir was measured on (case-insensitive)")
    ap.add_argument("--tp", type=int, default=1, help="tensor-parallel size --dir was measured at")
    ap.add_argument("--dir", type=Path, default=ROOT / "profiles" / "runs" / "2026-12-02-s2" / "qwen3-14b-partial",
                    help="folder of prefill.csv (and decode.csv unless --decode-dir)")
    ap.add_argument("--decode-dir", type=Path, default=None,
                    help="decode.csv from here instead (default for qwen3-14b: the full 2026-12-03 sweep)")
    ap.add_argument("--skip-prefill", action="store_true", help="decode only (a run whose prefill is not trusted)")
    ap.add_argument("--set", action="store_true", help="the committed held-out set (HELD_OUT), pooled")
    ap.add_argument("--card-unseen", action="store_true",
                    help="with --set: the prior calibrated without any bundled profile of --gpu too (a card nobody profiled)")
    a = ap.parse_args(argv)
    require(a.tp >= 1, "--tp", "a whole number >= 1", a.tp)  # found in QA: --tp 0 was a ZeroDivisionError traceback
    if a.set:
        if (a.gpu, a.tp) != HELD_OUT_SET_CARD:
            # the set's profiles were measured on one card: another --gpu would score that card's prior against them
            print(f"--gpu {a.gpu} --tp {a.tp}: the held-out set (HELD_OUT_SET) was measured on {HELD_OUT_SET_CARD[0]} tp"
                  f"{HELD_OUT_SET_CARD[1]}; the held-out models' H100 runs are scored by bench/gpu_heldout.py "
                  "--held-out-set", file=sys.stderr)
            return 2
        return run_set(a.card_unseen)
    if a.decode_dir is None:
        full = ROOT / "profiles" / "runs" / "2026-12-03-s3" / "qwen3-14b"
        a.decode_dir = full if a.model.lower() == "qwen3-14b" and a.dir.name == "qwen3-14b-partial" else a.dir
    cat = Catalog.load()
    model = known_model(cat, a.model)
    a.gpu = known_gpu(cat, a.gpu)
    # each file named with its flag and read as the profile format's numbers (found in QA: an empty prefill.csv was an
    # EmptyDataError traceback, one of other columns a KeyError after the prior's calibration)
    read: dict[str, pd.DataFrame] = {}
    for flag, path, what, cols in (("--dir", a.dir / "prefill.csv", "a profile's prefill.csv", ("isl", "batch", "ttft_ms")),
                                   ("--decode-dir" if a.decode_dir != a.dir else "--dir", a.decode_dir / "decode.csv",
                                    "a profile's decode.csv", ("batch", "context_tokens", "itl_ms"))):
        if path.name == "prefill.csv" and a.skip_prefill:
            read["prefill"] = pd.DataFrame({c: pd.Series(dtype=float) for c in cols})
            continue
        if not path.is_file():
            fail(f"{flag} {path.parent}: expected {what} in it; {path}: {not_found(path)}")
        df = read_rows(path, flag, what, cols, counts=cols[:2])
        read[path.stem] = df.astype({c: int for c in cols[:2]})  # counts as the table shows them
    pre, dec = read["prefill"], read["decode"]
    pm = PerfModel.load(cat)
    if pm.is_measured(model, a.gpu, a.tp):
        print(f"{model} on {a.gpu} tp{a.tp} has a profile under profiles/data: not a held-out model", file=sys.stderr)
        return 2
    v = pm.get(model, a.gpu, a.tp)
    if v is None:
        print(f"no prior for {model} on {a.gpu} tp{a.tp} (GPU unknown or the model does not fit)", file=sys.stderr)
        return 3
    tab = Table(title=f"{model} {a.gpu} tp{a.tp}: prior ({v.source}) vs measured vLLM, ms")
    for c in ("phase", "x", "batch", "measured", "prior", "err %"):
        tab.add_column(c, justify="right")
    st = errors(v, pre, dec, tab).stats()
    Console().print(tab)
    print(f"RESULT model={model} {result_fields(st)} points={st['prefill_n'] + st['decode_n']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
