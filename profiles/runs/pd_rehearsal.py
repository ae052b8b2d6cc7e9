"""Rehearse the 1P1D pair measurement on emulated servers: the real proxy, driver, fit and P:D check,
with a fake pair whose KV link is known (planner/simulate/kvconnector.py). No GPU.

    .venv/bin/python profiles/runs/pd_rehearsal.py [--model llama-3.1-8b --gpu H100-SXM-80GB]
        [--link-gb-s 2 --fixed-ms 5] [--time-scale 0.5] [--out DIR]

The emulated engines are timed by the planner's laws of (model, gpu, tp1), so the check compares the
planner with itself except for the hand-off (the emulated link vs the catalog's) and the emulator's
own step overhead (asyncio timers, ~1 ms wall per step, divided by the time scale). Writes the pair
profile into DIR (default a temporary folder: emulated data never goes under profiles/data) and
prints bench/pd_check.py's tables; last line its RESULT plus ``fit_link_gb_s`` and ``true_link_gb_s``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
for p in (str(REPO), str(REPO / "bench")):
    if p not in sys.path:
        sys.path.insert(0, p)

import pd_check  # type: ignore[import-not-found]  # noqa: E402  # bench/pd_check.py, on sys.path only at run time

from planner.perf.handoff import fit_pair  # noqa: E402
from planner.perf.laws import PerfModel  # noqa: E402
from planner.perf.pairprofile import load_pair_profile  # noqa: E402
from planner.simulate.kvconnector import pair_fleet  # noqa: E402
from profiles.backends.pd_pair import PairRunConfig, run_pair  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="llama-3.1-8b")
    ap.add_argument("--gpu", default="H100-SXM-80GB")
    ap.add_argument("--link-gb-s", type=float, default=2.0, help="the emulated connector's bandwidth")
    ap.add_argument("--fixed-ms", type=float, default=5.0, help="the emulated connector's fixed latency")
    ap.add_argument("--time-scale", type=float, default=0.5)
    ap.add_argument("--isl", default="1024,2048,4096,8192,16384")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rates", default="1,4")
    ap.add_argument("--requests", type=int, default=60)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    vp = PerfModel.load().get(a.model, a.gpu, 1)
    if vp is None:
        print(f"error: no laws for {a.model}/{a.gpu}/tp1", file=sys.stderr)
        return 2
    tmp = None
    if a.out is None:
        tmp = tempfile.TemporaryDirectory(prefix="pd-rehearsal-")
    out = a.out or Path(tmp.name) / a.model / a.gpu / "pair-tp1-tp1"  # type: ignore[union-attr]
    try:
        with pair_fleet(vp, vp, link_gb_s=a.link_gb_s, fixed_ms=a.fixed_ms, time_scale=a.time_scale,
                        mixed_perf=vp) as f:
            p, d, m = f.urls
            run_pair(PairRunConfig(model=a.model, gpu=a.gpu, out=out, prefill_url=p, decode_url=d, mixed_url=m,
                                   connector="nixl",
                                   isls=tuple(int(x) for x in a.isl.split(",")), repeats=a.repeats,
                                   rates=tuple(float(x) for x in a.rates.split(",")), load_requests=a.requests,
                                   load_isl=1024, load_osl=64, time_scale=a.time_scale, backend="emulator"))
        fit = fit_pair(load_pair_profile(out))
        code: int = pd_check.main(["--pair", str(out)])  # bench/pd_check.main returns its exit code
        print(f"RESULT fit_link_gb_s={fit.link_gb_s:.3f} true_link_gb_s={a.link_gb_s:g} "
              f"fit_fixed_ms={fit.fixed_ms:.2f} true_fixed_ms={a.fixed_ms:g}")
        return code
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
