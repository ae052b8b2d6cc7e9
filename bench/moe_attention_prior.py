"""Rule 48-M (stop 48): should an MoE's prefill attention term come from the roofline prior instead of its fit?

    .venv/bin/python bench/moe_attention_prior.py [--profiles DIR ...]

Every vLLM profile of a mixture-of-experts model under `--profiles` (default: profiles/data) is fitted twice, with the
planner's default law forms and with the candidate `LawForms.moe_attention_prior` (c, the prefill's per-token^2 term,
held at the prior's value for the variant's attention shape; a, b and the floor fitted around it; the token table as
always). For each: the fitted and the prior's c, and two held-out errors of the laws fitted on part of the profile:
part C of bench/profile_cost.py (rule 48-C: ~20% of the points a sparse profile leaves out; p90 over both phases) and
the half-profile check of bench/calibrate_prior.py (a fixed checkerboard half fitted, the other half predicted; prefill
p90). Rule 48-M's tuning set is every MoE profile but qwen3-30b-a3b bf16 on the H200, which is held out and reported;
the candidate is adopted iff on each tuning profile neither figure gets worse by more than 1 point.

Outcome at stop 48 (three profiles): the tuning profiles get worse (H100 bf16: half-profile prefill p90 16.2 -> 18.5%;
H100 FP8: part C 6.6 -> 8.5%, half 93.3 -> 104.9%), so the candidate stays off (the default keeps the fitted c); the
held-out H200 profile would gain (part C 18.3 -> 5.1%, half 33.1 -> 21.7%). Deterministic: one run.

Last line: RESULT moe_profiles=<n> tuning_worse=<tuning profiles worse by > 1 point on either figure> adopted=<0|1>
           heldout_part_c_p90_pct=<default>/<candidate> heldout_half_prefill_p90_pct=<default>/<candidate>
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_input import fail  # noqa: E402
from profile_cost import sparse_profile_mask  # noqa: E402

from planner.io.catalog import Catalog  # noqa: E402
from planner.perf.heldout import _points, checkerboard, subset_fit_errors, use_byo_catalog_unless_set  # noqa: E402
from planner.perf.laws import DEFAULT_LAW_FORMS, fit_profile, prior_variant, route_share  # noqa: E402
from planner.perf.profiledata import Profile, load_profile  # noqa: E402

HELD_OUT = ("qwen3-30b-a3b", "H200-141GB", "bf16")
"""Rule 48-M's held-out profile: the one whose miss (part C, rule 48-C) led to the candidate."""
WORSE_BY_PCT = 1.0
"""Rule 48-M: a tuning profile counts as worse where a figure rises by more than this many points."""
CANDIDATE = dataclasses.replace(DEFAULT_LAW_FORMS, moe_attention_prior=True)


def figures(p: Profile, catalog: Catalog, forms) -> tuple[float, float, float]:
    """(fitted c, part C p90 %, half-profile prefill p90 %) of the laws `forms` fits on the profile."""
    pre, dec = _points(p)
    part_c = [sparse_profile_mask(pre[["isl", "batch"]], pre.isl * pre.batch, pre.isl),
              sparse_profile_mask(dec[["batch", "context_tokens"]], dec.batch * dec.context_tokens, dec.batch)]
    half = [checkerboard(pre, "isl", "batch"), checkerboard(dec, "batch", "context_tokens")]
    c = fit_profile(p, catalog, forms=forms)[0].prefill_c_ms_per_token2
    e_c = subset_fit_errors(p, catalog, *part_c, forms=forms).all_rel_err()
    e_h = subset_fit_errors(p, catalog, *half, forms=forms).prefill_rel_err
    return c, float(np.percentile(e_c, 90)) * 100, float(np.percentile(e_h, 90)) * 100


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", type=Path, action="append", default=None,
                    help="profile roots (default: profiles/data)")
    a = ap.parse_args(argv)
    roots = a.profiles or [ROOT / "profiles" / "data"]
    for r in roots:
        if not r.is_dir():
            fail(f"--profiles {r}: no such folder (a profile root such as profiles/data was expected)")
    use_byo_catalog_unless_set()
    catalog = Catalog.load()
    con = Console(width=200)
    t = Table(title="Rule 48-M: an MoE's prefill attention term fitted (default) or from the prior (candidate)")
    for c in ("profile", "set", "c fitted", "c prior", "part C p90 %: default / candidate",
              "half prefill p90 %: default / candidate", "worse"):
        t.add_column(c, justify="right")
    n, worse, held = 0, 0, None
    for root in roots:
        for meta in sorted(root.glob("*/*/tp*/vllm/meta.yaml")):
            p = load_profile(meta.parent)
            spec = catalog.model(p.meta.model)
            if route_share(spec) <= 0:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                prior = prior_variant(p.meta.model, p.meta.gpu, p.meta.tp, catalog,
                                      weight_dtype=p.meta.weight_dtype, kv_dtype=p.meta.kv_dtype)
                c0, pc0, h0 = figures(p, catalog, DEFAULT_LAW_FORMS)
                _, pc1, h1 = figures(p, catalog, CANDIDATE)
            is_held = (p.meta.model, p.meta.gpu, p.meta.weight_dtype) == HELD_OUT
            bad = not is_held and (pc1 - pc0 > WORSE_BY_PCT or h1 - h0 > WORSE_BY_PCT)
            n += 1
            worse += int(bad)
            if is_held:
                held = (pc0, pc1, h0, h1)
            t.add_row(f"{p.meta.model}/{p.meta.gpu}/{meta.parent.parent.name}", "held out" if is_held else "tuning",
                      f"{c0:.2e}", f"{prior[0].prefill_c_ms_per_token2:.2e}" if prior else "-",
                      f"{pc0:.1f} / {pc1:.1f}", f"{h0:.1f} / {h1:.1f}", "yes" if bad else "")
    con.print(t)
    if n == 0:
        fail(f"no vLLM profile of a mixture-of-experts model under {', '.join(map(str, roots))}")
    adopted = int(worse == 0)
    con.print(f"rule 48-M: {worse} tuning profile(s) worse by > {WORSE_BY_PCT:g} point -> "
              f"{'adopt' if adopted else 'keep the fitted c (the default)'}")
    hc = f"{held[0]:.1f}/{held[1]:.1f}" if held else "nan/nan"
    hh = f"{held[2]:.1f}/{held[3]:.1f}" if held else "nan/nan"
    print(f"RESULT moe_profiles={n} tuning_worse={worse} adopted={adopted} heldout_part_c_p90_pct={hc} "
          f"heldout_half_prefill_p90_pct={hh}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
