"""The roofline floor of measured profiles (planner.perf.floor, rule V1 of stop 39): which committed profiles
breach it (none bundled since stop 40's re-measure; plan h2's dummy-router profile, kept in its runs folder, does),
that a breach can be made and is caught, that the planner then plans the variant from the prior and says why, and
the profiler's routing default for weightless MoE launches."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from planner.io.catalog import Catalog
from planner.io.schema import Fleet, FleetLimits, GpuInventory, ModelEntry, PoolPlan, RequestClass, Slo, Workload
from planner.perf.floor import floor_breaches, floor_reason
from planner.perf.laws import PerfModel
from planner.perf.profiledata import iter_profiles
from planner.planning.assemble import _prior_notes, to_plan
from planner.planning.instance import build_instance
from profiles.backends.launch_env import MOE_DUMMY_ROUTING_ENV, moe_dummy_env
from solvers.backends import solve

DATA = Path(__file__).resolve().parents[1] / "profiles" / "data"
MOE_FP8_H100 = ("qwen3-30b-a3b", "H100-SXM-80GB", 1, "fp8", "bf16")
# Plan h2's profile of that variant (stop 38), measured with vLLM's dummy router, which sent each batch to few experts;
# bundled until stop 40 re-measured it with uniform routing (profiles/runs/2026-12-05-h2v2).
H2_RUN = DATA.parent / "runs" / "2026-12-05-h2"
H2_MOE_FP8 = Path("qwen3-30b-a3b") / "H100-SXM-80GB" / "tp1-fp8" / "vllm"


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return Catalog.load()


def _key(p) -> tuple[str, str, int, str, str]:  # type: ignore[no-untyped-def]
    return (p.meta.model, p.meta.gpu, p.meta.tp, p.meta.weight_dtype, p.meta.kv_dtype)


def test_no_bundled_profile_breaches_and_the_dummy_router_profile_does(cat: Catalog) -> None:
    """No bundled profile is faster than its roofline floor; plan h2's FP8 MoE profile on the H100 (dummy router, kept
    in its runs folder) decodes batch 32 x 512 at 0.72x the time reading its routed experts takes, and only it."""
    assert [_key(p) for p in iter_profiles(DATA) if floor_breaches(p, cat)] == []
    flagged = {}
    for p in iter_profiles(H2_RUN):
        b = floor_breaches(p, cat)
        if b:
            flagged[_key(p)] = b
    assert set(flagged) == {MOE_FP8_H100}
    worst = flagged[MOE_FP8_H100][0]
    assert worst.phase == "decode" and worst.point == "batch 32 x context 512"
    assert worst.ratio == pytest.approx(0.72, abs=0.01)
    assert all(b.ratio < 1.0 for b in flagged[MOE_FP8_H100])


def test_a_profile_made_too_fast_is_caught_with_its_point(cat: Catalog) -> None:
    """A legitimate profile (llama-3.1-8b bf16 on the H200, >= 1.19x its floor) with its decode steps halved breaches
    at the large batches, where the step is the bytes it reads; the reason names the profile and the worst point."""
    p = next(p for p in iter_profiles(DATA) if _key(p) == ("llama-3.1-8b", "H200-141GB", 1, "bf16", "bf16")
             and p.meta.backend == "vllm")
    assert floor_breaches(p, cat) == []
    fast = dataclasses.replace(p, decode=p.decode.assign(itl_ms=p.decode.itl_ms * 0.5))
    b = floor_breaches(fast, cat)
    assert b and all(x.phase == "decode" for x in b)
    assert b[0].ratio < 0.65
    why = floor_reason(fast, b)
    assert str(p.path) in why and b[0].point in why and "not used" in why


def test_the_planner_plans_the_breaching_variant_from_the_prior_and_says_why(cat: Catalog, tmp_path: Path) -> None:
    """The bundled profiles with plan h2's dummy-router FP8 MoE profile in place of the re-measured one (as they were
    at stop 39): that variant is planned from the prior and the plan says why."""
    root = tmp_path / "data"
    shutil.copytree(DATA, root)
    shutil.rmtree(root / H2_MOE_FP8)
    shutil.copytree(H2_RUN / H2_MOE_FP8, root / H2_MOE_FP8)
    pm = PerfModel.load(cat, profiles_dir=root)
    assert MOE_FP8_H100 in pm.unphysical and "roofline" in pm.unphysical[MOE_FP8_H100]
    vp = pm.get(*MOE_FP8_H100)
    assert vp is not None and vp.source == "prior"
    # the same model in bf16 on the same card keeps its measured laws
    bf = pm.get("qwen3-30b-a3b", "H100-SXM-80GB", 1)
    assert bf is not None and bf.law_source == "measured-vllm"
    wl = Workload(models={"qwen3-30b-a3b": ModelEntry(slo=Slo(ttft_ms=1000.0, itl_ms=50.0, percentile=90.0))},
                  classes=[RequestClass(id="chat", model="qwen3-30b-a3b", isl=1024, osl=256, rate_rps=10.0)])
    fl = Fleet(gpus={"H100-SXM-80GB": GpuInventory(available=16)},
               limits=FleetLimits(allowed_tp=[1], allowed_dtypes=["bf16", "fp8"]))  # type: ignore[list-item]
    inst = build_instance(wl, fl, pm, cat)
    ids = {vid for vid, v in inst.variants.items() if (v.weight_dtype, v.kv_dtype) == ("fp8", "bf16")}
    assert ids and set(inst.unphysical) == ids
    # a plan holding such a pool says why it is planned from the prior (the ILP may prefer another precision here,
    # so the notes are asked of a pool of it)
    vid = sorted(ids)[0]
    v = inst.variants[vid]
    pool = PoolPlan(id=vid, role=v.role, gpu=v.gpu, tp=v.tp, replicas=2, gpus=2, cost_per_hour=1.0, utilization=0.8,
                    source="prior", weight_dtype="fp8")
    notes = " ".join(_prior_notes(inst, {vid: pool}))
    assert f"{vid}: its profile" in notes and "faster than the roofline allows" in notes and "0.72x" in notes
    # and a plan the ILP makes with every precision allowed solves as before
    assert inst.problem is not None
    sol = solve(inst.problem, backend="highs", time_limit_s=30.0)
    assert sol.ok and to_plan(inst, sol, pm).models


@pytest.mark.parametrize("moe,dummy,env,expected", [
    (True, True, {}, MOE_DUMMY_ROUTING_ENV),                                                     # weightless MoE
    (True, True, {"VLLM_MOE_ROUTING_SIMULATION_STRATEGY": "disabled"}, {}),                     # the user's wins
    (False, True, {}, {}),                                                                       # dense
    (True, False, {}, {}),                                                                       # real weights
])
def test_weightless_moe_launches_route_uniformly_unless_told(moe, dummy, env, expected) -> None:
    assert moe_dummy_env(moe, dummy, base=env) == expected


def test_the_bench_lists_the_breach_and_the_legitimate_range(capsys, tmp_path) -> None:
    """bench/roofline_floor.py: none of the bundled profiles breaches; with plan h2's runs folder beside them one
    does, the rest at >= 1.0x; a missing folder is exit 2 naming it."""
    from bench_loader import load_bench

    bench = load_bench("roofline_floor")

    def result() -> dict[str, str]:
        return dict(kv.split("=") for kv in capsys.readouterr().out.strip().splitlines()[-1].split()[1:])

    assert bench.main(["--profiles", str(DATA)]) == 0
    res = result()
    assert res["breaching"] == "0" and float(res["lowest_decode_ratio"]) >= 1.0 and float(res["lowest_prefill_ratio"]) >= 1.0
    assert bench.main(["--profiles", str(DATA), str(H2_RUN)]) == 0
    res = result()
    assert res["breaching"] == "1" and float(res["lowest_decode_ratio"]) < 1.0
    assert float(res["lowest_legit_decode_ratio"]) >= 1.0 and float(res["lowest_legit_prefill_ratio"]) >= 1.0
    missing = tmp_path / "nothing"
    assert bench.main(["--profiles", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
