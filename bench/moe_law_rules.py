"""Rules 48-M and 48-G (stop 48): two candidate changes to an MoE's prefill laws, each judged on its tuning profiles.

    .venv/bin/python bench/moe_law_rules.py [--profiles DIR ...]

Every vLLM profile of a mixture-of-experts model under `--profiles` (default: profiles/data) is fitted with the law
forms as they stood before stop 48 (`BEFORE`: the default less rule 48-G) and with each candidate on top of them:
- 48-M `LawForms.moe_attention_prior`: the prefill's per-token^2 term c held at the roofline prior's for the variant's
  attention shape, a, b and the floor fitted around it;
- 48-G `LawForms.moe_table_graph_step`: the token table (measured / law by tokens per pass) is not interpolated across
  the engine's CUDA-graph limit (planner.perf.laws.cuda_graph_limit_tokens).
For each: two held-out errors of the laws fitted on part of the profile: part C of bench/profile_cost.py (rule 48-C:
~20% of the points a sparse profile leaves out; p90 over both phases) and the half-profile check of
bench/calibrate_prior.py (a fixed checkerboard half fitted, the other half predicted; prefill p90). Both rules' tuning
set is every MoE profile but qwen3-30b-a3b bf16 on the H200, which is held out and reported. 48-M is adopted iff no
tuning profile gets worse on either figure by more than 1 point; 48-G iff that, and at least one tuning figure
improves by more than 1 point.

Outcome at stop 48 (three profiles): 48-M not adopted (H100 bf16: half-profile prefill p90 16.2 -> 18.5%; H100 FP8:
part C 6.6 -> 8.5%, half 93.3 -> 104.9%; the held-out H200 profile would gain, part C 18.3 -> 5.1%); 48-G adopted, the
default since (H100 bf16 half 16.2 -> 11.8%, H100 FP8 half 93.3 -> 22.5%, part C unchanged on both; the held-out H200
profile reads worse, part C 18.3 -> 26.2%, half 33.1 -> 34.1%: its jump spreads over 512-1,024 tokens instead of
stepping at the 512-token limit). Deterministic: one run.

Last line: RESULT moe_profiles=<n> m_tuning_worse=<n> m_adopted=<0|1> g_tuning_worse=<n> g_tuning_better=<n>
           g_adopted=<0|1> heldout_part_c_p90_pct=<before>/<48-M>/<48-G> heldout_half_prefill_p90_pct=<same>
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
from profile_cost import part_c_masks  # noqa: E402

from planner.io.catalog import Catalog  # noqa: E402
from planner.perf.heldout import _points, checkerboard, subset_fit_errors, use_byo_catalog_unless_set  # noqa: E402
from planner.perf.laws import (  # noqa: E402
    DEFAULT_LAW_FORMS,
    LawForms,
    cuda_graph_limit_tokens,
    fit_profile,
    prior_variant,
    route_share,
)
from planner.perf.profiledata import Profile, load_profile  # noqa: E402

HELD_OUT = ("qwen3-30b-a3b", "H200-141GB", "bf16")
"""Both rules' held-out profile: the one whose miss (part C, rule 48-C) led to them."""
WORSE_BY_PCT = 1.0
"""Rules 48-M / 48-G: a tuning figure counts as worse (better) where it rises (falls) by more than this many points."""
BEFORE = dataclasses.replace(DEFAULT_LAW_FORMS, moe_table_graph_step=False, moe_attention_prior=False)
CANDIDATES = {"48-M": dataclasses.replace(BEFORE, moe_attention_prior=True),
              "48-G": dataclasses.replace(BEFORE, moe_table_graph_step=True)}


def figures(p: Profile, catalog: Catalog, forms: LawForms) -> tuple[float, float]:
    """(part C p90 %, half-profile prefill p90 %) of the laws `forms` fits on part of the profile."""
    pre, dec = _points(p)
    part_c = part_c_masks(pre, dec)
    half = [checkerboard(pre, "isl", "batch"), checkerboard(dec, "batch", "context_tokens")]
    e_c = subset_fit_errors(p, catalog, *part_c, forms=forms).all_rel_err()
    e_h = subset_fit_errors(p, catalog, *half, forms=forms).prefill_rel_err
    return float(np.percentile(e_c, 90)) * 100, float(np.percentile(e_h, 90)) * 100


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
    con = Console(width=220)
    t = Table(title="MoE prefill law candidates: held-out p90 % before stop 48 / with 48-M (c from the prior) / with "
                    "48-G (the token table steps at the CUDA-graph limit)")
    for c in ("profile", "set", "c fitted / prior", "graph limit", "part C p90 %", "half prefill p90 %", "worse",
              "better"):
        t.add_column(c, justify="right")
    n = 0
    worse = {k: 0 for k in CANDIDATES}
    better = {k: 0 for k in CANDIDATES}
    held: dict[str, tuple[float, float]] = {}
    for root in roots:
        for meta in sorted(root.glob("*/*/tp*/vllm/meta.yaml")):
            p = load_profile(meta.parent)
            if route_share(catalog.model(p.meta.model)) <= 0:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                prior = prior_variant(p.meta.model, p.meta.gpu, p.meta.tp, catalog,
                                      weight_dtype=p.meta.weight_dtype, kv_dtype=p.meta.kv_dtype)
                c0 = fit_profile(p, catalog, forms=BEFORE)[0].prefill_c_ms_per_token2
                fig = {"before": figures(p, catalog, BEFORE)}
                fig |= {k: figures(p, catalog, f) for k, f in CANDIDATES.items()}
            is_held = (p.meta.model, p.meta.gpu, p.meta.weight_dtype) == HELD_OUT
            marks_w, marks_b = [], []
            if not is_held:
                for k in CANDIDATES:
                    d = [fig[k][i] - fig["before"][i] for i in (0, 1)]
                    if max(d) > WORSE_BY_PCT:
                        worse[k] += 1
                        marks_w.append(k)
                    if min(d) < -WORSE_BY_PCT:
                        better[k] += 1
                        marks_b.append(k)
            else:
                held = fig
            n += 1
            prior_c = f"{prior[0].prefill_c_ms_per_token2:.2e}" if prior else "-"
            t.add_row(f"{p.meta.model}/{p.meta.gpu}/{meta.parent.parent.name}", "held out" if is_held else "tuning",
                      f"{c0:.2e} / {prior_c}", f"{cuda_graph_limit_tokens(p.meta.engine_flags, p.meta.max_num_seqs):g}",
                      " / ".join(f"{fig[k][0]:.1f}" for k in fig), " / ".join(f"{fig[k][1]:.1f}" for k in fig),
                      " ".join(marks_w), " ".join(marks_b))
    con.print(t)
    if n == 0:
        fail(f"no vLLM profile of a mixture-of-experts model under {', '.join(map(str, roots))}")
    m_adopted = int(worse["48-M"] == 0)
    g_adopted = int(worse["48-G"] == 0 and better["48-G"] > 0)
    con.print(f"rule 48-M: {worse['48-M']} tuning profile(s) worse by > {WORSE_BY_PCT:g} point -> "
              f"{'adopt' if m_adopted else 'not adopted'}; rule 48-G: {worse['48-G']} worse, {better['48-G']} better "
              f"-> {'adopt' if g_adopted else 'not adopted'} (the default law forms: moe_attention_prior="
              f"{DEFAULT_LAW_FORMS.moe_attention_prior}, "
              f"moe_table_graph_step={DEFAULT_LAW_FORMS.moe_table_graph_step})")
    hc = "/".join(f"{held[k][0]:.1f}" for k in held) if held else "nan"
    hh = "/".join(f"{held[k][1]:.1f}" for k in held) if held else "nan"
    print(f"RESULT moe_profiles={n} m_tuning_worse={worse['48-M']} m_adopted={m_adopted} "
          f"g_tuning_worse={worse['48-G']} "
          f"g_tuning_better={better['48-G']} g_adopted={g_adopted} heldout_part_c_p90_pct={hc} "
          f"heldout_half_prefill_p90_pct={hh}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
