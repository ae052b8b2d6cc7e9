"""Held-out checks of laws and prior (planner.perf.heldout, bench/calibrate_prior.py) on synthetic
vLLM-format profiles generated from a known roofline: what is recoverable must be recovered."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from bench_loader import load_bench

from planner.io.catalog import Catalog
from planner.perf.heldout import checkerboard, leave_one_gpu_out, leave_one_model_out, pooled, sparse_fit_errors
from planner.perf.prior import Efficiency, decode_parts, predict_ms, prefill_parts
from planner.perf.profiledata import ProfileMeta, iter_profiles, profile_dir, write_profile

REPO = Path(__file__).resolve().parents[1]
GPU = "H200-141GB"
TRUTH = Efficiency(0.55, 0.8, 0.02, 0.015, "truth", decode_step_overhead_ms=1.0, prefill_step_overhead_ms=2.0)
OVERHEAD_MS = 12.0


def _write_roofline_profile(root: Path, cat: Catalog, model: str, w: str = "bf16", kv: str = "bf16",
                            gpu: str = GPU) -> None:
    """A vLLM-format profile whose points are the TRUTH roofline (+ the per-request TTFT overhead)."""
    m, g = cat.model(model).with_precision(w, kv), cat.gpu(gpu)
    isl, pb = (a.ravel() for a in np.meshgrid([128, 256, 512, 1024, 2048, 4096, 8192], [1, 2, 4]))
    keep = isl * pb <= 8192
    pre = pd.DataFrame({"isl": isl[keep], "batch": pb[keep]})
    pre["ttft_ms"] = OVERHEAD_MS + predict_ms(prefill_parts(m, g, 1, pre.isl, pre.batch), TRUTH, "prefill")
    db, ctx = (a.ravel() for a in np.meshgrid([1, 4, 16, 64, 128], [512, 1024, 2048, 4096]))
    dec = pd.DataFrame({"batch": db, "context_tokens": ctx})
    dec["itl_ms"] = predict_ms(decode_parts(m, g, 1, dec.batch, dec.context_tokens), TRUTH, "decode")
    meta = ProfileMeta(model=model, gpu=gpu, tp=1, engine="vllm", engine_version="0.26.0", kv_capacity_tokens=500_000,
                       date="2026-12-02", backend="vllm", weight_dtype=w, kv_dtype=kv)  # type: ignore[arg-type]
    write_profile(profile_dir(root, model, gpu, 1, w, kv, vllm=True), meta, pre, dec)


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return Catalog.load()


@pytest.fixture(scope="module")
def root(tmp_path_factory, cat: Catalog) -> Path:
    r = tmp_path_factory.mktemp("vllm-profiles")
    # dense models: the linear decode law cannot follow a MoE's experts-touched ramp (1 - (1-k/E)^batch);
    # bench/calibrate_prior.py reports that error on the real MoE profile
    for model in ("llama-3.1-8b", "qwen3-32b"):
        _write_roofline_profile(r, cat, model)
    for w in ("fp8",):  # an FP8 model fits one H200 too (70 GB of FP8 weights)
        _write_roofline_profile(r, cat, "llama-3.1-8b", w=w)
        _write_roofline_profile(r, cat, "llama-3.1-70b", w=w)
    return r


def _subset_root(root: Path, dest: Path, variants: list[tuple[str, str]]) -> Path:
    """A profile root holding only `variants` ((model, tp dir)) of `root`, copied (the benches' inputs)."""
    for model, tp_dir in variants:
        shutil.copytree(root / model / GPU / tp_dir, dest / model / GPU / tp_dir)
    return dest


def _refused(bench: ModuleType, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """What `bench.main(argv)` says on refusing its input, asserting exit code 2 (returned, or raised by
    bench_input.fail, which writes 'error: ...' to stderr)."""
    try:
        code = bench.main(argv)
    except SystemExit as exc:
        code = exc.code
    assert code == 2, code
    out = capsys.readouterr()
    return out.out + out.err


def _bench(name: str) -> ModuleType:
    """bench/<name>.py as a module, to call its main(argv) in-process (what `python bench/<name>.py` runs)."""
    return load_bench(name)


def test_checkerboard_interleaves() -> None:
    df = pd.DataFrame({"x": [1, 1, 2, 2, 4, 4], "y": [1, 2, 1, 2, 1, 2]})
    assert checkerboard(df, "x", "y").tolist() == [True, False, False, True, True, False]


def test_sparse_fit_predicts_the_other_half(root: Path, cat: Catalog) -> None:
    rows = [sparse_fit_errors(p, cat) for p in iter_profiles(root)]
    assert len(rows) == 4 and all(r.law_source == "measured-vllm" for r in rows)
    s = pooled(rows)
    # the linear laws follow a roofline within a few percent between grid points
    assert s["prefill_p90"] < 0.10 and s["decode_p90"] < 0.10
    assert s["prefill_n"] > 20 and s["decode_n"] > 20


def test_leave_one_model_out_recovers_an_unprofiled_model(root: Path, cat: Catalog) -> None:
    rows = leave_one_model_out(list(iter_profiles(root)), cat)
    assert {r.label.split("/")[0] for r in rows} == {"llama-3.1-8b", "qwen3-32b", "llama-3.1-70b"}
    s = pooled(rows)
    assert s["prefill_median"] < 0.05 and s["decode_median"] < 0.05


def test_leave_one_gpu_out_predicts_a_card_from_its_catalog_entry(tmp_path: Path, cat: Catalog) -> None:
    """Two models profiled on two cards from one TRUTH efficiency: each card's profiles are recovered by the prior
    calibrated on the other card alone (and, model_too, on the other model on the other card alone); every row is
    of the card left out, so no row was predicted by a calibration that held its own points."""
    for gpu in (GPU, "H100-SXM-80GB"):
        for model in ("llama-3.1-8b", "qwen3-32b"):
            _write_roofline_profile(tmp_path, cat, model, gpu=gpu)
    profiles = list(iter_profiles(tmp_path))
    for model_too in (False, True):
        out = leave_one_gpu_out(profiles, cat, model_too=model_too)
        assert set(out) == {GPU, "H100-SXM-80GB"}
        for gpu, rows in out.items():
            assert sorted(r.label.split("/")[0] for r in rows) == ["llama-3.1-8b", "qwen3-32b"]
            assert all(r.label.split("/")[1] == gpu for r in rows)
            s = pooled(rows)
            # model_too calibrates on one profile (the other model on the other card): a looser bound
            bound = 0.10 if model_too else 0.05
            assert s["prefill_median"] < bound and s["decode_median"] < bound, (gpu, model_too, s)
    # a single card: nothing to calibrate on once it is left out, so no row (not a prediction from nothing)
    assert leave_one_gpu_out([p for p in profiles if p.meta.gpu == GPU], cat) == {GPU: []}


def test_bench_runs_on_any_profile_root(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """bench/calibrate_prior.py (main, in-process) on a profile root outside profiles/data: two of the fixture's
    profiles, two models (llama-3.1-8b bf16, llama-3.1-70b fp8), so that every part runs, part B's
    leave-one-model-out included (part B0 on two of its candidate losses); a missing root and an unknown loss are
    refused with exit code 2."""
    bench = _bench("calibrate_prior")
    two = _subset_root(root, tmp_path / "two", [("llama-3.1-8b", "tp1"), ("llama-3.1-70b", "tp1-fp8")])
    assert bench.main(["--profiles", str(two), "--losses", "linear,huber:0.05"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("RESULT target=measured-vllm sparse_p90_pct=")
    fields = dict(kv.split("=") for kv in last.split()[1:])
    assert fields["lomo_prefill_median_pct"] != "-" and fields["lomo_decode_median_pct"] != "-"  # part B ran
    assert fields["logo_prefill_median_pct"] == "-"  # part C2: one card, nothing left to calibrate on without it
    assert fields["b0_loss"] in ("linear", "huber:0.05") and fields["calibration"] == "cauchy:0.05+moe:share+fp8:share"
    assert "missing" in _refused(bench, ["--profiles", str(root / "missing")], capsys)
    assert "--losses: unknown huber:0.5" in _refused(bench, ["--profiles", str(two), "--losses", "huber:0.5"], capsys)


def test_cv_never_reads_the_held_out_half(root: Path, cat: Catalog) -> None:
    """The forms are chosen on the sparse halves only: rewriting every held-out point leaves the
    cross-validation errors unchanged, while the held-out errors move."""
    import dataclasses

    from planner.perf.heldout import _points, sparse_cv_errors
    from planner.perf.laws import DEFAULT_LAW_FORMS, LINEAR_LAW_FORMS

    p = next(q for q in iter_profiles(root) if q.meta.model == "qwen3-32b")
    pre, dec = _points(p)
    mp, md = checkerboard(pre, "isl", "batch"), checkerboard(dec, "batch", "context_tokens")
    spoiled_pre = p.prefill.copy()
    out_pre = set(map(tuple, pre[~mp][["isl", "batch"]].astype(float).to_numpy()))
    hit = np.array([tuple(k) in out_pre for k in spoiled_pre[["isl", "batch"]].astype(float).to_numpy()])
    spoiled_pre.loc[hit, "ttft_ms"] *= 3.0
    spoiled_dec = p.decode.copy()
    out_dec = set(map(tuple, dec[~md][["batch", "context_tokens"]].astype(float).to_numpy()))
    hit = np.array([tuple(k) in out_dec for k in spoiled_dec[["batch", "context_tokens"]].astype(float).to_numpy()])
    spoiled_dec.loc[hit, "itl_ms"] *= 3.0
    spoiled = dataclasses.replace(p, prefill=spoiled_pre, decode=spoiled_dec)
    for forms in (LINEAR_LAW_FORMS, DEFAULT_LAW_FORMS):
        a, b = sparse_cv_errors(p, cat, forms), sparse_cv_errors(spoiled, cat, forms)
        np.testing.assert_allclose(a.prefill_rel_err, b.prefill_rel_err)
        np.testing.assert_allclose(a.decode_rel_err, b.decode_rel_err)
        assert a.prefill_rel_err.size == int(mp.sum()) and a.decode_rel_err.size == int(md.sum())
    held, held_spoiled = sparse_fit_errors(p, cat), sparse_fit_errors(spoiled, cat)
    assert held_spoiled.prefill_rel_err.min() > held.prefill_rel_err.max()


def test_choose_forms_reports_every_candidate(root: Path, cat: Catalog) -> None:
    from planner.perf.heldout import FORM_CANDIDATES, choose_forms, form_name

    ps = [p for p in iter_profiles(root) if p.meta.weight_dtype == "bf16"]
    chosen, stats = choose_forms(ps, cat)
    for phase, cands in FORM_CANDIDATES.items():
        assert set(stats[phase]) == set(cands)
        best = min(stats[phase].values(), key=lambda s: (s["p90"], s["median"]))
        assert stats[phase][form_name(chosen, phase)]["p90"] == pytest.approx(best["p90"])


def test_law_forms_bench_scores_every_form_and_refuses_a_missing_root(root: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """bench/law_forms.py (main, in-process) on one of the fixture's four profiles (llama-3.1-70b fp8: 18 prefill
    and 20 decode points; the bench's cost grows with each profile, ~8 s apiece), after refusing a missing root and
    one without vLLM profiles (exit code 2). Every form is scored on any one profile; the decode forms compared
    below score alike on each of the four (0.0% held-out p90: the synthetic decode points are an exact roofline)."""
    bench = _bench("law_forms")
    assert "missing" in _refused(bench, ["--profiles", str(root / "missing")], capsys)
    (tmp_path / "empty").mkdir()
    assert "vLLM-measured profile" in _refused(bench, ["--profiles", str(tmp_path / "empty")], capsys)
    one = _subset_root(root, tmp_path / "one", [("llama-3.1-70b", "tp1-fp8")])
    assert bench.main(["--profiles", str(one)]) == 0
    fields = dict(kv.split("=") for kv in capsys.readouterr().out.strip().splitlines()[-1].split()[1:])
    assert {"decode_knee_ridge_heldout_p90_pct", "prefill_floor_cv_p90_pct",
            "decode_roofline_max_cv_p90_pct"} <= set(fields)
    # the synthetic profiles are a roofline without a knee: the knee form is no worse than the linear one
    assert float(fields["decode_knee_ridge_heldout_p90_pct"]) <= float(fields["decode_linear_heldout_p90_pct"]) + 0.5
