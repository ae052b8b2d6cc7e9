"""vLLM's fused-MoE kernel-table lookup (planner.perf.kernel_tables, rule V3 of stop 41): the names it builds are the
ones vLLM 0.26.0 logged on the lent GPUs, its verdicts per variant, every bundled MoE profile's `calibrate` flag agrees
with it, the profiler writes the flag from it in attach mode (no server log), the plan says where the prior prices an
MoE variant vLLM runs on default tiles, and the range that note quotes is what bench/untuned_kernels.py measures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from planner.io.catalog import Catalog
from planner.io.schema import Fleet, FleetLimits, GpuInventory, ModelEntry, PoolPlan, RequestClass, Slo, Workload
from planner.perf.heldout import BYO_CATALOG_DIR, CATALOG_ENV
from planner.perf.kernel_tables import (
    UNTUNED_MEASURED_OVER_PRIOR,
    UNTUNED_PROFILES,
    device_file_name,
    fused_moe_table_name,
    moe_kernel_tuning,
    profile_kernel_tuning,
)
from planner.perf.laws import PerfModel
from planner.perf.profiledata import iter_profiles, law_source
from planner.planning.assemble import _prior_notes
from planner.planning.instance import build_instance
from profiles.backends.vllm import VllmRunConfig, untuned_by_engine_tables

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "profiles" / "data"
RUNS = ROOT / "profiles" / "runs"


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return Catalog.load()


@pytest.mark.parametrize("experts,n,driver,dtype,logged", [
    # stop 40's H100 server log: "Using default MoE config ... Config file not found at
    # .../E=128,N=768,device_name=NVIDIA_H100_80GB_HBM3,dtype=fp8_w8a8.json"
    (128, 768, "NVIDIA H100 80GB HBM3", "fp8", "E=128,N=768,device_name=NVIDIA_H100_80GB_HBM3,dtype=fp8_w8a8"),
    # s5's H200 server log: "Using configuration from .../E=128,N=768,device_name=NVIDIA_H200.json for MoE layer"
    (128, 768, "NVIDIA H200", "bf16", "E=128,N=768,device_name=NVIDIA_H200"),
    # s14's (profiles/runs/2026-12-03-s14/README.md) and s12's H200 logs
    (60, 1408, "NVIDIA H200", "bf16", "E=60,N=1408,device_name=NVIDIA_H200"),
    (8, 14336, "NVIDIA H200", "bf16", "E=8,N=14336,device_name=NVIDIA_H200"),
    # any H200-family card is looked up as NVIDIA_H200 (fused_moe.get_config_file_name)
    (128, 768, "NVIDIA H200 NVL", "bf16", "E=128,N=768,device_name=NVIDIA_H200"),
])
def test_table_names_are_the_ones_vllm_logged(experts: int, n: int, driver: str, dtype: str, logged: str) -> None:
    assert fused_moe_table_name(experts, n, driver, dtype) == logged


def test_the_name_built_for_the_bundled_h200_moe_is_the_one_its_server_log_loaded(cat: Catalog) -> None:
    log = (RUNS / "2026-12-03-s5" / "moe-run1" / "H200-141GB" / "tp1-engine" / "vllm" / "server.log").read_text()
    t = moe_kernel_tuning(cat.model("qwen3-30b-a3b"), cat.gpu("H200-141GB"), 1, "bf16")
    assert t.tuned is True and "Using configuration from " in log and f"configs/{t.table}.json" in log
    assert "Using default MoE config" not in log


@pytest.mark.parametrize("model,gpu,tp,dtype,engine,tuned", [
    ("qwen3-30b-a3b", "H100-SXM-80GB", 1, "bf16", "vllm 0.26.0", False),   # no E=128,N=768 table for the H100
    ("qwen3-30b-a3b", "H100-SXM-80GB", 2, "bf16", "vllm 0.26.0", True),    # E=128,N=384 has one
    ("qwen3-30b-a3b", "H200-141GB", 1, "bf16", "vllm 0.26.0", True),
    ("qwen3-30b-a3b", "H200-141GB", 1, "fp8", "vllm 0.26.0", False),      # only block-quantized FP8 is tuned there
    ("qwen3-30b-a3b", "H200-141GB", 1, "bf16", "vLLM  0.26.0", True),     # the engine string as profiles spell it
    ("qwen3-30b-a3b", "H200-141GB", 1, "bf16", "vllm 0.27.0", None),      # another version: no verdict, no guess
    ("qwen3-30b-a3b", "L4", 1, "bf16", "vllm 0.26.0", False),
    ("llama-3.1-8b", "H100-SXM-80GB", 1, "bf16", "vllm 0.26.0", None),    # dense: no fused-MoE layer
])
def test_verdicts(cat: Catalog, model: str, gpu: str, tp: int, dtype: str, engine: str, tuned: bool | None) -> None:
    t = moe_kernel_tuning(cat.model(model), cat.gpu(gpu), tp, dtype, engine)
    assert t.tuned is tuned
    assert (t.table is None) == (cat.model(model).moe is None)
    assert ("no tuned" in t.note) == (tuned is False)


def test_device_file_name() -> None:
    assert device_file_name("NVIDIA A100-SXM4-80GB") == "NVIDIA_A100-SXM4-80GB"
    assert device_file_name("NVIDIA H200") == "NVIDIA_H200"


def test_every_bundled_vllm_moe_profile_is_calibrated_on_exactly_when_vllm_ran_tuned_kernels(cat: Catalog) -> None:
    """Rule V3: a profile measured on default tiles plans its variant but does not calibrate the prior (calibrate:
    false, with the reason); one on tuned kernels does. The H100's bf16 and FP8 profiles of qwen3-30b-a3b are of the
    first kind, the H200's bf16 one of the second."""
    seen = {}
    for p in iter_profiles(DATA):
        m = p.meta
        if law_source(m) != "measured-vllm" or cat.model(m.model).moe is None:
            continue
        t = profile_kernel_tuning(m, cat)
        assert t is not None and t.tuned is not None, p.path
        assert m.calibrate is t.tuned, (p.path, t.note)
        if not t.tuned:
            assert m.calibrate_note and "tuned" in m.calibrate_note
        seen[(m.gpu, m.weight_dtype)] = t.tuned
    assert seen == {("H100-SXM-80GB", "bf16"): False, ("H100-SXM-80GB", "fp8"): False, ("H200-141GB", "bf16"): True}


@pytest.mark.parametrize("model,gpu,dtype,engine,expected", [
    ("qwen3-30b-a3b", "H100-SXM-80GB", "bf16", "vllm 0.26.0", ["E=128,N=768,device_name=NVIDIA_H100_80GB_HBM3.json"]),
    ("qwen3-30b-a3b", "H200-141GB", "bf16", "vllm 0.26.0", []),
    ("qwen3-30b-a3b", "H100-SXM-80GB", "bf16", "vllm 0.27.0", []),     # no verdict: the flag stays on
    ("llama-3.1-8b", "H100-SXM-80GB", "bf16", "vllm 0.26.0", []),
    ("not-in-catalog", "H100-SXM-80GB", "bf16", "vllm 0.26.0", []),
])
def test_attach_mode_reads_the_tables_for_want_of_a_server_log(tmp_path: Path, model: str, gpu: str, dtype: str,
                                                               engine: str, expected: list[str]) -> None:
    cfg = VllmRunConfig(model=model, gpu=gpu, tp=1, out=tmp_path, endpoint="http://127.0.0.1:1", engine_version=engine,
                        weight_dtype=dtype)
    assert untuned_by_engine_tables(cfg) == expected


def _moe_workload() -> Workload:
    return Workload(models={"qwen3-30b-a3b": ModelEntry(slo=Slo(ttft_ms=1000.0, itl_ms=50.0, percentile=90.0))},
                    classes=[RequestClass(id="chat", model="qwen3-30b-a3b", isl=1024, osl=128, rate_rps=10.0)])


@pytest.mark.parametrize("gpu,tp,noted", [
    ("A100-80GB", 1, True),       # prior, no E=128,N=768 A100 table
    ("H200-141GB", 2, False),     # prior, tuned E=128,N=384 H200 table
])
def test_the_plan_says_where_the_prior_prices_an_moe_on_default_tiles(cat: Catalog, gpu: str, tp: int,
                                                                     noted: bool) -> None:
    pm = PerfModel.load(cat)
    fl = Fleet(gpus={gpu: GpuInventory(available=16)}, limits=FleetLimits(allowed_tp=[tp]))
    inst = build_instance(_moe_workload(), fl, pm, cat)
    ids = sorted(inst.variants)
    assert ids and all(inst.perf[vid].source == "prior" for vid in ids)
    assert bool(inst.untuned_moe) is noted and (not noted or set(inst.untuned_moe) == set(ids))
    v = inst.variants[ids[0]]
    pool = PoolPlan(id=ids[0], role=v.role, gpu=v.gpu, tp=v.tp, replicas=1, gpus=tp, cost_per_hour=1.0, utilization=0.8,
                    source="prior")
    notes = " ".join(_prior_notes(inst, {ids[0]: pool}))
    assert ("ships no tuned fused-MoE table" in notes) is noted
    if noted:
        assert f"E=128,N={768 // tp},device_name=NVIDIA_A100-SXM4-80GB.json" in notes


def test_measured_variants_on_default_tiles_need_no_note(cat: Catalog) -> None:
    """The H100 bf16 MoE runs on default tiles but its own profile plans it: nothing to warn about."""
    pm = PerfModel.load(cat)
    fl = Fleet(gpus={"H100-SXM-80GB": GpuInventory(available=16)}, limits=FleetLimits(allowed_tp=[1]))
    inst = build_instance(_moe_workload(), fl, pm, cat)
    assert inst.variants and all(inst.perf[v].source == "measured" for v in inst.variants)
    assert inst.untuned_moe == {}


def test_the_noted_range_is_what_the_bench_measures(monkeypatch: pytest.MonkeyPatch) -> None:
    """UNTUNED_MEASURED_OVER_PRIOR is bench/untuned_kernels.py's figures on the committed profiles (the prior
    calibrated without each profile on default tiles; > 1: the prior is optimistic)."""
    monkeypatch.setenv(CATALOG_ENV, str(BYO_CATALOG_DIR))  # the bench's catalog: the imported models' too
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import untuned_kernels as bench
    finally:
        sys.path.remove(str(ROOT / "bench"))
    cat = Catalog.load()
    rows = bench.collect([DATA, *sorted(d for d in RUNS.iterdir() if d.is_dir())], cat)
    ratios = [bench.measured_over_prior(r.profile, cat) for r in rows if r.tuning.tuned is False]
    # wherever a run kept its server log, vLLM's own line agrees with the lookup (stop 41's re-measure on the H100,
    # s5's on the H200 is in a folder of another layout: test_the_name_built_for_the_bundled_h200_moe_...)
    checked = [r for r in rows if r.log is not None]
    assert checked and all(r.log is r.tuning.tuned for r in checked)
    assert len(ratios) == UNTUNED_PROFILES
    for i, phase in enumerate(("prefill", "decode")):
        lo, hi = UNTUNED_MEASURED_OVER_PRIOR[phase]
        got = sorted(r[i] for r in ratios)
        assert got[0] == pytest.approx(lo, abs=0.006) and got[-1] == pytest.approx(hi, abs=0.006)
        assert got[0] > 1.0  # the prior was optimistic on every one


@pytest.mark.parametrize("gpu,tuned", [("H100-SXM-80GB", False), ("H200-141GB", True)])
def test_profile_show_says_which_tiles_an_moe_profile_ran(gpu: str, tuned: bool) -> None:
    from profiles.show import fit_profile_dir, law_lines

    lines = [ln for ln in law_lines(fit_profile_dir(DATA / "qwen3-30b-a3b" / gpu / "tp1" / "vllm"))
             if ln.startswith("fused-MoE kernels:")]
    assert len(lines) == 1 and ("ships a tuned" in lines[0]) is tuned and ("default tiles" in lines[0]) is not tuned


@pytest.mark.parametrize("gpu,expect", [
    ("A100-80GB", "tune vLLM's kernel"),           # priced by the prior, default tiles: the advice
    ("H100-SXM-80GB", "the measured laws include it"),  # measured on default tiles: said, nothing to add
    ("H200-141GB", None),                          # tuned: no note
])
def test_profile_predict_notes_default_tiles(gpu: str, expect: str | None) -> None:
    from typer.testing import CliRunner

    from planner.cli.main import app

    args = ["profile", "predict", "--model", "qwen3-30b-a3b", "--gpu", gpu, "--decode-batch", "8"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())  # the console wraps long lines
    if expect is None:
        assert "fused-MoE table" not in out
    else:
        assert expect in out and "E=128,N=768" in out
