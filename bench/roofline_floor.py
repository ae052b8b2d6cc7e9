"""Every profile against its roofline floor (planner.perf.floor, rule V1 of stop 39): per profile, the lowest ratio of a
measured step to its ideal roofline time (the bytes it must read at the GPU's peak HBM bandwidth, a MoE's experts
as a uniform router touches them, or its FLOPs at the peak tensor rate), prefill and decode apart. Below 1 is
physically impossible for the deployed model: the planner does not use such a profile.

    .venv/bin/python bench/roofline_floor.py                       # profiles/data and every run folder
    .venv/bin/python bench/roofline_floor.py --profiles DIR [DIR ...] # any roots of the profile layout

Last line: ``RESULT profiles=<n> breaching=<n> lowest_decode_ratio=... lowest_prefill_ratio=...
lowest_legit_decode_ratio=... lowest_legit_prefill_ratio=...`` (``legit``: over the profiles that do not breach).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from planner.io.catalog import Catalog  # noqa: E402
from planner.io.errors import PlannerError  # noqa: E402
from planner.perf.floor import FLOOR_RATIO, point_times  # noqa: E402
from planner.perf.heldout import use_byo_catalog_unless_set  # noqa: E402
from planner.perf.profiledata import Profile, iter_profiles, law_source  # noqa: E402


def default_roots() -> list[Path]:
    """profiles/data, then every folder under profiles/runs that holds the profile layout (<model>/<gpu>/tp*/)."""
    roots = [ROOT / "profiles" / "data"]
    for meta in sorted((ROOT / "profiles" / "runs").glob("**/tp*/**/meta.yaml")):
        variant = meta.parent.parent if meta.parent.name == "vllm" else meta.parent
        root = variant.parent.parent.parent
        if root not in roots:
            roots.append(root)
    return roots


def lowest_ratios(p: Profile, cat: Catalog) -> tuple[float, float]:
    """(lowest prefill ratio, lowest decode ratio) of measured / ideal over the profile's central points (nan: none)."""
    pts = point_times(p, cat)

    def lowest(phase: str) -> float:
        return min((x.ratio for x in pts if x.phase == phase), default=float("nan"))
    return lowest("prefill"), lowest("decode")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profiles", type=Path, nargs="+", default=None, help="profile roots (default: data and runs)")
    a = ap.parse_args(argv)
    console = Console(width=160)
    use_byo_catalog_unless_set()  # models of the run folders from examples/byo-model
    cat = Catalog.load()
    rows: list[tuple[str, str, float, float]] = []
    seen: set[Path] = set()
    try:
        for root in a.profiles or default_roots():
            for p in iter_profiles(root):
                if p.path.resolve() in seen or p.meta.model not in cat.models or p.meta.gpu not in cat.gpus:
                    continue
                seen.add(p.path.resolve())
                pre, dec = lowest_ratios(p, cat)
                rows.append((str(p.path.relative_to(ROOT) if p.path.is_relative_to(ROOT) else p.path), law_source(p.meta), pre, dec))
    except PlannerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not rows:
        print("error: no profile found under the given roots", file=sys.stderr)
        return 2
    t = Table(title=f"measured / ideal roofline time, lowest over each profile's points (below {FLOOR_RATIO:g}: impossible)")
    for c in ("profile", "law source", "prefill", "decode", "breaches"):
        t.add_column(c, justify="left" if c in ("profile", "law source") else "right")
    for path, src, pre, dec in sorted(rows, key=lambda r: np.nanmin([r[2], r[3]])):
        bad = any(x < FLOOR_RATIO for x in (pre, dec) if np.isfinite(x))
        t.add_row(path, src, f"{pre:.2f}", f"{dec:.2f}", "yes" if bad else "")
    console.print(t)
    breach = [r for r in rows if any(x < FLOOR_RATIO for x in r[2:] if np.isfinite(x))]
    legit = [r for r in rows if r not in breach]
    print(f"RESULT profiles={len(rows)} breaching={len(breach)} lowest_decode_ratio={np.nanmin([r[3] for r in rows]):.2f} "
          f"lowest_prefill_ratio={np.nanmin([r[2] for r in rows]):.2f} "
          f"lowest_legit_decode_ratio={np.nanmin([r[3] for r in legit]):.2f} "
          f"lowest_legit_prefill_ratio={np.nanmin([r[2] for r in legit]):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
