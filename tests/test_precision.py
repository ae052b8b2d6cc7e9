"""Precision (FP8 weights / KV cache) in variants, the prior and the plan; vLLM profile preference;
the TTFT-overhead and per-step overhead terms of the laws."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from planner.planning.capacity import latency
from planner.io.catalog import Catalog
from planner.io.errors import InputError
from planner.perf.laws import DEFAULT_TTFT_OVERHEAD_MS, PerfModel, prior_variant, quiet_extrapolation
from planner.planning.assemble import to_plan
from planner.planning.instance import build_instance
from planner.perf.profiledata import ProfileMeta, iter_profiles, profile_dir, write_profile
from planner.perf.prior import (GIB, Efficiency, Observation, calibrate, decode_parts, kv_capacity_tokens, predict_ms,
                              prefill_parts)
from planner.io.schema import Fleet, FleetLimits, GpuInventory, ModelEntry, RequestClass, Slo, Variant, Workload
from solvers.backends import solve
from solvers_check import violations

GPU = "H200-141GB"
M8 = "llama-3.1-8b"


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return Catalog.load()


# --------------------------------------------------------------------------- pool ids
@pytest.mark.parametrize("w", ["bf16", "fp8"])
@pytest.mark.parametrize("kv", ["bf16", "fp8"])
@pytest.mark.parametrize("role", ["prefill", "decode", "mixed"])
def test_pool_id_round_trip(w: str, kv: str, role: str) -> None:
    v = Variant(model="qwen3-30b-a3b", role=role, gpu=GPU, tp=4, weight_dtype=w, kv_dtype=kv)  # type: ignore[arg-type]
    assert Variant.parse(v.id) == v
    assert v.id.endswith("tp4" + ("-fp8" if w == "fp8" else "") + ("-kvfp8" if kv == "fp8" else ""))


def test_bf16_pool_ids_unchanged_and_bad_ids_rejected() -> None:
    assert Variant(model=M8, role="decode", gpu=GPU, tp=2).id == f"{M8}/decode/{GPU}/tp2"
    for bad in (f"{M8}/decode/{GPU}/tp2-fp16", f"{M8}/decode/{GPU}/tp2-kvfp8-fp8", f"{M8}/decode/{GPU}/tp0", f"{M8}/decode/{GPU}"):
        with pytest.raises(ValueError, match="tpN\\[-fp8\\]\\[-kvfp8\\]"):
            Variant.parse(bad)


# --------------------------------------------------------------------------- the prior
def test_fp8_kv_doubles_kv_capacity_in_the_prior(cat: Catalog) -> None:
    m, g = cat.model(M8), cat.gpu(GPU)
    bf16 = kv_capacity_tokens(m, g, 1)
    kv8 = kv_capacity_tokens(m.with_precision("bf16", "fp8"), g, 1)
    assert bf16 and kv8 and abs(kv8 - 2 * bf16) <= 1
    # FP8 weights free memory too: vLLM 0.26 measured 896,912 (bf16) and 1,899,184 tokens (fp8 + fp8 KV)
    # on an H200 (shared/tools/vllm-offline/README.md); ratio 2.12
    both = kv_capacity_tokens(m.with_precision("fp8", "fp8"), g, 1)
    assert both is not None and 2.05 < both / bf16 < 2.2


def test_fp8_weight_bytes_match_vllm(cat: Catalog) -> None:
    """vLLM 0.26 loads 8.54 GiB of FP8 weights for Llama-3.1-8B shapes (README); embeddings stay bf16."""
    m = cat.model(M8)
    assert m.with_precision("fp8").weight_bytes / GIB == pytest.approx(8.54, rel=0.02)
    assert m.with_precision("fp8").weight_bytes < 0.6 * m.weight_bytes
    assert m.with_precision("bf16", "fp8").kv_bytes_per_token * 2 == m.kv_bytes_per_token


def test_fp8_prior_is_faster_where_the_roofline_says(cat: Catalog) -> None:
    bf = prior_variant(M8, GPU, 1, cat)
    w8 = prior_variant(M8, GPU, 1, cat, weight_dtype="fp8")
    kv8 = prior_variant(M8, GPU, 1, cat, kv_dtype="fp8")
    assert bf and w8 and kv8
    bf, w8, kv8 = bf[0], w8[0], kv8[0]
    # large prefill is compute bound: FP8 tensor cores (2x the BF16 peak) make it clearly faster
    assert w8.prefill_ms(8192, 1) < 0.75 * bf.prefill_ms(8192, 1)
    # batch-1 decode reads the weights: about half the bytes
    assert w8.decode_step_ms(1, 512) < 0.8 * bf.decode_step_ms(1, 512)
    # long-context large-batch decode reads KV: the FP8 KV cache halves that part
    assert kv8.decode_gamma_ms_per_token < 0.6 * bf.decode_gamma_ms_per_token
    assert kv8.kv_capacity_tokens > 1.9 * bf.kv_capacity_tokens and kv8.kv_bytes_per_token * 2 == bf.kv_bytes_per_token
    assert (w8.weight_dtype, w8.kv_dtype, kv8.kv_dtype) == ("fp8", "bf16", "fp8")


def test_fp8_on_a_gpu_without_fp8_tensor_cores_keeps_bf16_math(cat: Catalog) -> None:
    m = cat.model(M8)
    g = cat.gpu("A100-80GB")
    assert g.fp8_tflops is None
    big = prefill_parts(m, g, 1, [8192], [1])
    big8 = prefill_parts(m.with_precision("fp8"), g, 1, [8192], [1])
    assert big8.compute_ms[0] == pytest.approx(big.compute_ms[0])
    assert big8.memory_ms[0] < big.memory_ms[0]


# --------------------------------------------------------------------------- overheads
def _synthetic_profile(root: Path, backend: str, *, over_ms: float, fixed_ms: float, b_ms: float, alpha: float, beta: float,
                       gamma: float, model: str = M8, gpu: str = GPU, tp: int = 1, w: str = "bf16", kv: str = "bf16") -> Path:
    """A profile whose prefill rows are client TTFTs = over + max(batch-1 decode step, fixed + b*batch*isl),
    decode rows alpha + beta*b + gamma*b*ctx."""
    isl, pb = (a.ravel() for a in np.meshgrid([128, 512, 2048, 8192], [1, 2]))
    keep = isl * pb <= 8192
    pre = pd.DataFrame({"isl": isl[keep], "batch": pb[keep]})
    floor = alpha + beta + gamma * pre.isl  # a small prompt reads the weights once, like a batch-1 decode step
    pre["ttft_ms"] = over_ms + np.maximum(floor, fixed_ms + b_ms * pre.batch * pre.isl)
    db, ctx = (a.ravel() for a in np.meshgrid([1, 8, 32, 128], [512, 2048]))
    dec = pd.DataFrame({"batch": db, "context_tokens": ctx})
    dec["itl_ms"] = alpha + beta * dec.batch + gamma * dec.batch * dec.context_tokens
    meta = ProfileMeta(model=model, gpu=gpu, tp=tp, engine=backend, kv_capacity_tokens=800_000, date="2026-12-02",
                       backend=backend, weight_dtype=w, kv_dtype=kv)  # type: ignore[arg-type]
    return write_profile(profile_dir(root, model, gpu, tp, w, kv, vllm=backend == "vllm"), meta, pre, dec)


def test_ttft_overhead_is_fitted_from_a_vllm_profile(tmp_path: Path, cat: Catalog) -> None:
    alpha, beta = 4.5, 0.02
    # at 128 tokens the pass is memory bound (1 + 0.02*128 < a decode step): the overhead is identifiable
    _synthetic_profile(tmp_path, "vllm", over_ms=12.0, fixed_ms=1.0, b_ms=0.02, alpha=alpha, beta=beta, gamma=2e-5)
    pm = PerfModel.load(cat, tmp_path)
    vp = pm.get(M8, GPU, 1)
    assert vp is not None and vp.law_source == "measured-vllm"
    assert vp.ttft_overhead_ms == pytest.approx(12.0, abs=0.01)
    assert vp.decode_alpha_ms == pytest.approx(alpha, rel=1e-3)
    # the law is fitted on GPU time: TTFT - overhead; overhead + law reproduces the client TTFT
    assert vp.prefill_ms(8192, 1) == pytest.approx(1.0 + 0.02 * 8192, rel=0.02)
    assert vp.prefill_rel_err < 0.05
    # laws that measured no frontend get the vLLM profiles' overhead; with none, the README default
    prior = pm.get("qwen3-32b", GPU, 1)
    assert prior is not None and prior.ttft_overhead_ms == pytest.approx(12.0, abs=0.05)
    # the overhead is latency, not GPU time: it adds to TTFT at any load and takes no capacity (half the
    # overhead, not none: a law with no measured frontend also drops the load-dependent frontend delay,
    # planner.simulate.steptime.FRONTEND_MS_PER_RUNNING)
    half = dataclasses.replace(vp, ttft_overhead_ms=vp.ttft_overhead_ms / 2)
    for role in ("prefill", "mixed"):
        for rate in (0.5, 5.0):
            with quiet_extrapolation():
                with_o, without = latency(vp, role, 512, 64, rate, 90.0), latency(half, role, 512, 64, rate, 90.0)
            assert with_o.ttft_ms - without.ttft_ms == pytest.approx(vp.ttft_overhead_ms / 2)
            assert with_o.utilization == pytest.approx(without.utilization)


def test_ttft_overhead_is_never_negative(tmp_path: Path, cat: Catalog) -> None:
    # the smallest prefill faster than a batch-1 decode step (no frontend): no overhead, laws untouched
    d = _synthetic_profile(tmp_path, "vllm", over_ms=0.0, fixed_ms=2.0, b_ms=0.025, alpha=4.5, beta=0.02, gamma=2e-5)
    pre = pd.read_csv(d / "prefill.csv")
    pre["ttft_ms"] = 1.0 + 0.02 * pre.batch * pre.isl
    pre.to_csv(d / "prefill.csv", index=False)
    vp = PerfModel.load(cat, tmp_path).get(M8, GPU, 1)
    assert vp is not None and vp.ttft_overhead_ms == 0.0 and vp.prefill_a_ms == pytest.approx(1.0, abs=0.05)


def test_default_ttft_overhead_without_vllm_profiles(cat: Catalog) -> None:
    pm = PerfModel.from_profiles(cat, [])
    vp = pm.get(M8, GPU, 1)
    assert vp is not None and vp.ttft_overhead_ms == DEFAULT_TTFT_OVERHEAD_MS


def test_calibration_recovers_a_per_step_overhead(cat: Catalog) -> None:
    """Per-step and per-layer overheads are told apart across models of different depth."""
    truth = Efficiency(0.5, 0.7, 0.01, 0.015, "truth", prefill_step_overhead_ms=3.0, decode_step_overhead_ms=1.5)
    obs = []
    for name in ("llama-3.1-8b", "qwen3-32b", "llama-3.1-70b"):
        model, gpu = cat.model(name), cat.gpu(GPU)
        tp = 1 if name != "llama-3.1-70b" else 2
        isl, b = (a.ravel() for a in np.meshgrid([128, 1024, 4096, 8192], [1, 4]))
        p = prefill_parts(model, gpu, tp, isl, b)
        obs.append(Observation("prefill", p, predict_ms(p, truth, "prefill")))
        bb, ctx = (a.ravel() for a in np.meshgrid([1, 8, 64, 256], [512, 4096]))
        d = decode_parts(model, gpu, tp, bb, ctx)
        obs.append(Observation("decode", d, predict_ms(d, truth, "decode")))
    got = calibrate(obs)
    assert got.decode_step_overhead_ms == pytest.approx(1.5, abs=0.1)
    assert got.prefill_step_overhead_ms == pytest.approx(3.0, abs=0.3)
    assert got.median_rel_err < 0.01
    one = calibrate([o for o in obs if o.parts.layers == obs[0].parts.layers])
    assert one.decode_step_overhead_ms < 1e-6  # one depth: not identifiable, pinned at 0


# --------------------------------------------------------------------------- loader preference
def test_loader_prefers_the_vllm_profile_and_says_so(tmp_path: Path, cat: Catalog) -> None:
    _synthetic_profile(tmp_path, "torch", over_ms=0.0, fixed_ms=6.0, b_ms=0.03, alpha=5.7, beta=0.02, gamma=5e-5)
    _synthetic_profile(tmp_path, "vllm", over_ms=11.0, fixed_ms=4.9, b_ms=0.025, alpha=4.8, beta=0.02, gamma=2e-5)
    _synthetic_profile(tmp_path, "vllm", over_ms=11.0, fixed_ms=3.0, b_ms=0.013, alpha=3.0, beta=0.01, gamma=1e-5, w="fp8", kv="fp8")
    assert len(list(iter_profiles(tmp_path))) == 3
    pm = PerfModel.load(cat, tmp_path)
    vp = pm.get(M8, GPU, 1)
    assert vp is not None and vp.law_source == "measured-vllm" and vp.decode_alpha_ms == pytest.approx(4.8, rel=1e-3)
    assert pm.alternatives[(M8, GPU, 1, "bf16", "bf16")] == ["measured-vllm", "measured-torch"]
    v8 = pm.get(M8, GPU, 1, "fp8", "fp8")
    assert v8 is not None and v8.law_source == "measured-vllm" and (v8.weight_dtype, v8.kv_dtype) == ("fp8", "fp8")
    assert pm.get(M8, GPU, 1, "fp8", "bf16").law_source == "prior"  # type: ignore[union-attr]
    # `planner profile show` on the variant directory shows the vLLM profile and names the other
    from profiles.show import fit_profile_dir, law_lines

    shown = fit_profile_dir(tmp_path / M8 / GPU / "tp1")  # the vllm/ one, the planner's, naming DIR's own
    assert shown.law_source == "measured-vllm" and shown.used_by_planner
    assert any("measured-torch" in ln and "not used" in ln for ln in law_lines(shown))
    shown = fit_profile_dir(tmp_path / M8 / GPU / "tp1", own=True)  # DIR's own (torch) profile, flagged as not used
    assert shown.law_source == "measured-torch" and not shown.used_by_planner
    lines = law_lines(shown)
    assert any(ln.startswith("NOT the laws the planner uses") for ln in lines)
    assert any(ln.startswith("also for this variant:") and "measured-vllm" in ln and "uses this one" in ln for ln in lines)
    lines = law_lines(fit_profile_dir(tmp_path / M8 / GPU / "tp1" / "vllm"))
    assert any(ln.startswith("laws used by the planner: measured-vllm") for ln in lines)
    assert any("measured-torch" in ln and "not used" in ln for ln in lines)


@pytest.mark.parametrize("verdict", ["prior", "torch"])
def test_a_torch_only_variant_is_planned_as_part_d_decides_once_vllm_profiles_exist(
        tmp_path: Path, cat: Catalog, monkeypatch: pytest.MonkeyPatch, verdict: str) -> None:
    """The loader's rule (planner.perf.laws.PerfModel.from_profiles, TORCH_ONLY_LAWS: bench/calibrate_prior.py part D
    decides; "torch" at stops 41-42, "prior" since stop 43): with any vLLM profile loaded, the prior is calibrated on the serving engines only,
    and a variant measured only by the torch reference decoder is planned from that prior ("prior": the torch profile is
    listed, not used) or from its own torch laws ("torch"); with calibrate_on="all", or with no vLLM profile at all, its
    laws are used either way."""
    monkeypatch.setattr("planner.perf.laws.TORCH_ONLY_LAWS", verdict)
    torch_laws = dict(over_ms=0.0, fixed_ms=6.0, b_ms=0.03, alpha=5.7, beta=0.02, gamma=5e-5)
    _synthetic_profile(tmp_path, "torch", **torch_laws)  # bf16: torch reference only
    _synthetic_profile(tmp_path, "vllm", over_ms=11.0, fixed_ms=3.0, b_ms=0.013, alpha=3.0, beta=0.01, gamma=1e-5, w="fp8", kv="fp8")
    pm = PerfModel.load(cat, tmp_path)
    vp = pm.get(M8, GPU, 1)
    assert pm.get(M8, GPU, 1, "fp8", "fp8").law_source == "measured-vllm"  # type: ignore[union-attr]
    # the prior is calibrated without the torch profile either way: on the one vLLM profile alone
    alone_vllm = tmp_path / "vllm-only"
    shutil.copytree(tmp_path / M8 / GPU / "tp1-fp8-kvfp8", alone_vllm / M8 / GPU / "tp1-fp8-kvfp8")
    assert pm.efficiency == PerfModel.load(cat, alone_vllm).efficiency
    from profiles.show import fit_profile_dir, law_lines

    shown = fit_profile_dir(tmp_path / M8 / GPU / "tp1")  # `planner profile show` says which laws the planner uses
    assert shown.law_source == "measured-torch"
    if verdict == "prior":
        assert vp is not None and vp.source == "prior" and not pm.is_measured(M8, GPU, 1)
        assert vp.decode_alpha_ms != pytest.approx(5.7, rel=0.05)  # not the torch laws
        assert pm.alternatives[(M8, GPU, 1, "bf16", "bf16")] == ["measured-torch"]
        assert not shown.used_by_planner
        assert any("roofline prior" in ln and str(tmp_path) in ln for ln in law_lines(shown))
    else:
        assert vp is not None and vp.law_source == "measured-torch" and pm.is_measured(M8, GPU, 1)
        assert vp.decode_alpha_ms == pytest.approx(5.7, rel=1e-3)
        assert shown.used_by_planner
    every = PerfModel.from_profiles(cat, list(iter_profiles(tmp_path)), calibrate_on="all").get(M8, GPU, 1)
    assert every is not None and every.law_source == "measured-torch" and every.decode_alpha_ms == pytest.approx(5.7, rel=1e-3)
    only = tmp_path / "torch-only"
    _synthetic_profile(only, "torch", **torch_laws)
    alone = PerfModel.load(cat, only).get(M8, GPU, 1)
    assert alone is not None and alone.law_source == "measured-torch"


def test_loader_checks_precision_and_backend_against_the_layout(tmp_path: Path, cat: Catalog) -> None:
    d = _synthetic_profile(tmp_path, "vllm", over_ms=11.0, fixed_ms=4.9, b_ms=0.025, alpha=4.8, beta=0.02, gamma=2e-5, w="fp8")
    meta = (d / "meta.yaml").read_text()
    (d / "meta.yaml").write_text(meta.replace("weight_dtype: fp8", "weight_dtype: bf16"))
    with pytest.raises(InputError, match="weight_dtype"):
        list(iter_profiles(tmp_path))
    (d / "meta.yaml").write_text(meta.replace("backend: vllm", "backend: torch"))
    with pytest.raises(InputError, match="backend"):
        list(iter_profiles(tmp_path))


def test_bundled_profiles_load_with_their_law_sources(cat: Catalog) -> None:
    pm = PerfModel.load(cat)
    srcs = {vp.law_source for vp in pm.measured.values()}
    assert "splitwise" in srcs and "measured-vllm" in srcs
    # the bundled torch-reference profiles (H100, and the H200 ones beside vLLM's) are listed, not used
    assert "measured-torch" not in srcs and any("measured-torch" in a for a in pm.alternatives.values())
    assert all(vp.law_source in ("measured-vllm", "splitwise", "measured") for vp in pm.measured.values())


# --------------------------------------------------------------------------- planning
def _fp8_case(allowed: list[str]) -> tuple[Workload, Fleet]:
    wl = Workload(models={M8: ModelEntry(slo=Slo(ttft_ms=600.0, itl_ms=30.0, percentile=90.0))},
                  classes=[RequestClass(id="chat", model=M8, isl=1024, osl=256, rate_rps=40.0),
                           RequestClass(id="long", model=M8, isl=4096, osl=128, rate_rps=6.0)])
    fl = Fleet(gpus={GPU: GpuInventory(available=32)}, limits=FleetLimits(allowed_tp=[1, 2], allowed_dtypes=allowed))  # type: ignore[arg-type]
    return wl, fl


def test_fp8_variants_appear_only_when_allowed(cat: Catalog) -> None:
    pm = PerfModel.load(cat)
    wl, fl = _fp8_case(["bf16"])
    inst = build_instance(wl, fl, pm, cat)
    assert inst.variants and all(v.weight_dtype == "bf16" and v.kv_dtype == "bf16" for v in inst.variants.values())
    assert FleetLimits().allowed_dtypes == ["bf16"]
    wl, fl = _fp8_case(["bf16", "fp8"])
    inst8 = build_instance(wl, fl, pm, cat)
    precisions = {(v.weight_dtype, v.kv_dtype) for v in inst8.variants.values()}
    assert precisions == {("bf16", "bf16"), ("fp8", "bf16"), ("bf16", "fp8"), ("fp8", "fp8")}
    assert set(inst.variants) < set(inst8.variants)


def test_plan_picks_fp8_where_cheaper_and_the_checker_accepts_it(cat: Catalog) -> None:
    # priors for every precision, so the comparison is of precision alone (the bundled bf16 profiles
    # are torch-reference measurements, slower than vLLM, which would flatter FP8)
    pm = PerfModel.from_profiles(cat, [])
    costs = {}
    for allowed in (["bf16"], ["bf16", "fp8"]):
        wl, fl = _fp8_case(allowed)
        inst = build_instance(wl, fl, pm, cat)
        assert inst.problem is not None
        sol = solve(inst.problem, backend="highs", time_limit_s=30.0)
        assert sol.ok
        assert violations(inst.problem, sol) == []
        plan = to_plan(inst, sol, pm)
        costs[len(allowed)] = plan.cost_per_hour
        pools = [p for mp in plan.models.values() for p in mp.pools]
        if len(allowed) == 1:
            assert all(p.weight_dtype == "bf16" and "-fp8" not in p.id for p in pools)
        else:
            assert any(p.weight_dtype == "fp8" or p.kv_dtype == "fp8" for p in pools)
            assert all(Variant.parse(p.id).weight_dtype == p.weight_dtype for p in pools)
            # KV blocks never cross KV dtypes: every pinned pairing keeps the KV dtype
            for mp in plan.models.values():
                for by_pre in mp.pairing.values():
                    for pre, decs in by_pre.items():
                        assert all(Variant.parse(d).kv_dtype == Variant.parse(pre).kv_dtype for d in decs)
            # the simulator parses the FP8 pool ids, takes their laws and the plan holds its SLOs
            from planner.simulate.attainment import verify

            rep = verify(plan, wl, pm.get, duration_s=60.0, seed=3)
            assert rep.ok, rep.classes
    assert costs[2] < costs[1]


# --------------------------------------------------------------------------- MoE decode term
def test_moe_decode_term_is_fitted_and_used(tmp_path: Path, cat: Catalog) -> None:
    """A MoE step reads the experts its batch touches: 1 - (1 - k/E)^batch of them (Qwen3-30B-A3B: k/E = 8/128)."""
    from planner.planning.capacity import _decode_batch_mean
    from planner.perf.fit import experts_touched, fit_decode_moe

    share = 8 / 128
    db, ctx = (a.ravel() for a in np.meshgrid([1, 2, 4, 8, 16, 32, 64, 128, 256], [512, 2048]))
    itl = 2.0 + 0.01 * db + 1e-5 * db * ctx + 9.0 * experts_touched(db, share)
    (al, be, ga, moe), rep = fit_decode_moe(db, ctx, itl, share)
    assert (al, be, moe) == pytest.approx((2.0, 0.01, 9.0), rel=1e-3) and ga == pytest.approx(1e-5, rel=1e-3)
    assert rep.max_rel_err < 1e-6
    # through the loader: a MoE profile's law has the term, a dense one's not (steps of the H200's order, 4 ms at
    # batch 1 and 18 ms to read every expert: above the roofline floor, which reading them takes 12 ms at peak)
    d = _synthetic_profile(tmp_path, "vllm", over_ms=12.0, fixed_ms=1.0, b_ms=0.02, alpha=4.0, beta=0.01, gamma=1e-5,
                           model="qwen3-30b-a3b")
    dec = pd.read_csv(d / "decode.csv")
    dec["itl_ms"] += 18.0 * experts_touched(dec.batch, share)
    dec.to_csv(d / "decode.csv", index=False)
    vp = PerfModel.load(cat, tmp_path).get("qwen3-30b-a3b", GPU, 1)
    assert vp is not None and vp.decode_moe_ms == pytest.approx(18.0, rel=1e-3) and vp.moe_route_share == share
    assert vp.decode_step_ms(16, 1024) == pytest.approx(4.0 + 0.16 + 16 * 1024e-5 + 18.0 * (1 - (1 - share) ** 16), rel=1e-6)
    # Little's law with a batch-dependent fixed cost: N = rate * osl * t(N) / 1000 at the fixed point
    n = _decode_batch_mean(vp, 20.0, 200, 1100)
    assert n == pytest.approx(20.0 * 200 * vp.decode_step_ms(n, 1100) / 1000.0, rel=1e-6)
    dense = prior_variant(M8, GPU, 1, cat)
    assert dense is not None and dense[0].decode_moe_ms == 0.0
    from profiles.show import fit_profile_dir, law_lines

    fit = fit_profile_dir(d)
    assert fit.decode_coef[3] == pytest.approx(18.0, rel=1e-3) and fit.decode_report.max_rel_err < 1e-3
    assert any("MoE experts touched" in ln for ln in law_lines(fit))


def test_ttft_overhead_measured_beside_the_step_time(tmp_path: Path, cat: Catalog) -> None:
    """The vLLM profiler's layout: ttft_ms is the engine's prefill step, ttft_e2e_ms (some rows) the client's TTFT."""
    d = _synthetic_profile(tmp_path, "vllm", over_ms=0.0, fixed_ms=1.0, b_ms=0.02, alpha=4.5, beta=0.02, gamma=2e-5)
    pre = pd.read_csv(d / "prefill.csv")
    pre["stat"] = "median"
    pre["ttft_e2e_ms"] = np.where(pre.batch == 1, pre.ttft_ms + np.where(pre.isl < 1000, 13.0, 15.0), np.nan)
    pre.to_csv(d / "prefill.csv", index=False)
    vp = PerfModel.load(cat, tmp_path).get(M8, GPU, 1)
    assert vp is not None and vp.ttft_overhead_ms == pytest.approx(14.0)  # median of 13, 13, 15, 15
    assert vp.prefill_ms(8192, 1) == pytest.approx(1.0 + 0.02 * 8192, rel=0.02)  # the step law, untouched
    from profiles.show import fit_profile_dir, law_lines

    fit = fit_profile_dir(d)
    assert fit.ttft_overhead_ms == pytest.approx(14.0) and not fit.client_ttft
    assert any("measured: ttft_e2e_ms - ttft_ms" in ln for ln in law_lines(fit))


def test_controller_reads_fp8_pool_ids_from_labels() -> None:
    from controllers.actuate import LABEL_GPU, LABEL_MODEL, LABEL_ROLE, LABEL_TP, pool_id_from_labels

    base = {LABEL_MODEL: M8, LABEL_ROLE: "decode", LABEL_GPU: GPU}
    assert pool_id_from_labels({**base, LABEL_TP: "2"}) == f"{M8}/decode/{GPU}/tp2"
    assert pool_id_from_labels({**base, LABEL_TP: "tp1-fp8-kvfp8"}) == f"{M8}/decode/{GPU}/tp1-fp8-kvfp8"
    assert pool_id_from_labels({**base, LABEL_TP: "tp1-int4"}) is None


def test_plan_file_round_trip_keeps_precision_and_checks_ids(tmp_path: Path, cat: Catalog) -> None:
    from planner.io.planfile import load_plan, save_plan

    wl, fl = _fp8_case(["bf16", "fp8"])
    pm = PerfModel.from_profiles(cat, [])
    from planner.planning.assemble import plan_workload

    plan = plan_workload(wl, fl, pm, cat)
    path = tmp_path / "plan.yaml"
    save_plan(path, plan)
    back = load_plan(path)
    pools = [p for mp in back.models.values() for p in mp.pools]
    assert any(p.weight_dtype == "fp8" for p in pools)
    assert {(p.id, p.weight_dtype, p.kv_dtype, p.law_source) for p in pools} == \
        {(p.id, p.weight_dtype, p.kv_dtype, p.law_source) for mp in plan.models.values() for p in mp.pools}
    text = path.read_text()
    bad = text.replace("weight_dtype: fp8", "weight_dtype: bf16", 1)
    assert bad != text
    path.write_text(bad)
    with pytest.raises(InputError, match="disagrees"):
        load_plan(path)


def test_the_vllm_profilers_format_loads(cat: Catalog) -> None:
    """A profile written by the vLLM profiler (against the emulated server: a fake of vLLM, which needs a GPU)."""
    root = Path(__file__).parent / "fixtures" / "vllm-emulated"
    pm = PerfModel.load(cat, root)
    vp = pm.get(M8, GPU, 1)
    assert vp is not None and vp.law_source == "measured-vllm"
    pre = pd.read_csv(root / M8 / GPU / "tp1" / "vllm" / "prefill.csv")
    e2e = pre.dropna(subset=["ttft_e2e_ms"])
    assert vp.ttft_overhead_ms == pytest.approx(float(np.median(e2e.ttft_e2e_ms - e2e.ttft_ms)))
    # the emulator's laws (prefill 20 ms + 0.03 ms/token, decode 20 ms + 0.1 ms/seq) come back
    assert vp.prefill_ms(2048, 1) == pytest.approx(20.0 + 0.03 * 2048 + 1e-6 * 2048**2, rel=0.1)
    assert vp.decode_step_ms(1, 256) == pytest.approx(20.1, rel=0.05)


def test_simulator_adds_the_ttft_overhead_to_every_request() -> None:
    """The frontend's per-request latency delays each request before the engine sees it: TTFT grows
    by it, the engines' work (and so ITL) does not change."""
    from planner.perf.laws import VariantPerf
    from planner.io.schema import ModelPlan, Plan, PoolPlan, SolverInfo
    from planner.simulate.arrivals import poisson_arrivals
    from planner.simulate.fleet import FleetSimulator
    from planner.simulate.report import build_report

    base = VariantPerf(model="m", gpu="H100", tp=1, source="prior", prefill_a_ms=15.0, prefill_b_ms_per_token=0.06,
                       prefill_c_ms_per_token2=2e-6, decode_alpha_ms=7.0, decode_beta_ms_per_seq=0.05,
                       decode_gamma_ms_per_token=5e-5, kv_capacity_tokens=300_000, kv_bytes_per_token=131072, kv_link_gb_s=50.0)
    wl = Workload.model_validate({"models": {"m": {"slo": {"ttft_ms": 400, "itl_ms": 20}}},
                                  "classes": [{"id": "c", "model": "m", "isl": 1000, "osl": 50, "rate_rps": 2}]})
    pools = [PoolPlan(id=f"m/{r}/H100/tp1", role=r, gpu="H100", tp=1, replicas=1, gpus=1, cost_per_hour=1.0, utilization=0.5)
             for r in ("prefill", "decode")]
    plan = Plan(solver=SolverInfo(backend="test", status="optimal"),
                models={"m": ModelPlan(pools=pools, routing={"c": {p.id: 1.0 for p in pools}}, predicted={})})
    out = {}
    for over in (0.0, 12.0):
        vp = dataclasses.replace(base, ttft_overhead_ms=over)
        arr = poisson_arrivals(wl, 60, np.random.default_rng(5))
        sim = FleetSimulator.from_plan(plan, lambda model, gpu, tp: vp, arr, wl, seed=1)
        sim.run()
        out[over] = build_report(sim).requests
    done = (out[12.0].finished & out[0.0].finished).to_numpy()  # the last one may still run at the end
    assert done.sum() > 100
    assert (out[12.0].ttft_ms - out[0.0].ttft_ms).to_numpy()[done] == pytest.approx(12.0, abs=1e-6)
    assert out[12.0].itl_ms.to_numpy()[done] == pytest.approx(out[0.0].itl_ms.to_numpy()[done])


@pytest.mark.parametrize("sources,noted", [
    (["measured-torch"], ["llama-3.1-8b/decode/H100-SXM-80GB/tp1"]),
    (["measured-vllm"], []),
    ([None], []),                                   # the prior: its own note (assemble._prior_notes)
    (["measured-torch", "measured-vllm"], ["llama-3.1-8b/decode/H100-SXM-80GB/tp1"]),
])
def test_a_plan_notes_pools_planned_from_the_torch_reference(sources: list, noted: list[str]) -> None:
    """Where a variant's only profile is the torch reference decoder's (laws.TORCH_ONLY_LAWS "torch"), the plan says
    its pool is likely larger than vLLM needs (vLLM ran 0.65-0.93x that decoder's times where both were measured)."""
    from planner.io.schema import PoolPlan
    from planner.planning.assemble import _torch_laws_notes

    roles = ["decode", "prefill"]
    pools = {f"llama-3.1-8b/{r}/H100-SXM-80GB/tp1": PoolPlan(
        id=f"llama-3.1-8b/{r}/H100-SXM-80GB/tp1", role=r, gpu="H100-SXM-80GB", tp=1, replicas=1, gpus=1,  # type: ignore[arg-type]
        cost_per_hour=2.99, utilization=0.5, source="prior" if s is None else "measured", law_source=s)
        for r, s in zip(roles, sources, strict=False)}
    notes = _torch_laws_notes(pools)
    assert len(notes) == (1 if noted else 0)
    if noted:
        assert notes[0].startswith(", ".join(noted) + ":") and "larger than vLLM needs" in notes[0]
