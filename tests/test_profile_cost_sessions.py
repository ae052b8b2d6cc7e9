"""bench/profile_cost.py, Part C: the GPU time each real vLLM profile took, read from the device sessions' logs
(profiles/data/vllm-<gpu>-session-<date>.log, what profiles/gpu_session.py writes)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import profile_cost  # noqa: E402


def _start(label: str, model: str, gpu: str, vdir: str) -> str:
    return (f"15:06:14 {label}: start, sweeps until +220 s: profiles.vllm_cli profile --backend vllm --model {model} "
            f"--gpu {gpu} --tp 1 --out /tmp/res/{model}/{gpu}/{vdir}/vllm --model-dir /tmp/res/_models/{model}")


def test_each_profile_gets_its_own_cards_run_and_failed_launches_count_nothing(tmp_path: Path) -> None:
    """Two cards' logs holding the same model and variant folder: each profile gets the time of its own card's run. A
    launch that died at once (exit 2 after 2 s, stop 37's H100 session, whose first commands named the wrong card) is
    neither counted nor allowed to hide the successful run of the same label after it."""
    (tmp_path / "vllm-h100-session-2026-12-05.log").write_text("\n".join([
        _start("llama-3.1-8b", "llama-3.1-8b", "H200-141GB", "tp1"),
        "15:05:17 llama-3.1-8b: exit 2 after 2 s",
        _start("llama-3.1-8b", "llama-3.1-8b", "H100-SXM-80GB", "tp1"),
        "15:14:33 llama-3.1-8b: exit 0 after 483 s",
        _start("qwen3-32b", "qwen3-32b", "H100-SXM-80GB", "tp1"),
        "15:23:01 qwen3-32b: exit 0 after 253 s",
    ]) + "\n")
    (tmp_path / "vllm-h200-session-2026-12-02.log").write_text("\n".join([
        _start("llama-3.1-8b", "llama-3.1-8b", "H200-141GB", "tp1"),
        "10:00:00 llama-3.1-8b: exit 0 after 326 s",
    ]) + "\n")
    walls = profile_cost._session_walls(tmp_path)
    assert walls == {"llama-3.1-8b/H100-SXM-80GB/tp1": 483.0, "qwen3-32b/H100-SXM-80GB/tp1": 253.0,
                     "llama-3.1-8b/H200-141GB/tp1": 326.0}


def test_every_bundled_vllm_profile_has_its_session_time() -> None:
    """Every vLLM profile in profiles/data has its GPU time in a bundled session log (issue 10: GPU minutes per
    variant), under its own card."""
    walls = profile_cost._session_walls(REPO / "profiles" / "data")
    for meta in sorted((REPO / "profiles" / "data").glob("*/*/tp*/vllm/meta.yaml")):
        model, gpu, vdir = meta.parts[-5], meta.parts[-4], meta.parts[-3]
        assert f"{model}/{gpu}/{vdir}" in walls, (model, gpu, vdir, sorted(walls))


def test_the_runs_sessions_are_read_per_run_folder(tmp_path: Path) -> None:
    """Part D: every variant run of the device sessions kept under profiles/runs, by session folder; a failed launch
    counts nothing (as in Part C)."""
    for run, lines in (("2026-12-06-h8", [_start("q-steady", "qwen3-14b", "H100-SXM-80GB", "tp1-steady4k"),
                                          "06:31:07 q-steady: exit 0 after 403 s"]),
                       ("2026-12-05-s21", [_start("m", "mistral-nemo-12b", "H200-141GB", "tp1-kv96k"),
                                           "18:00:00 m: exit 1 after 30 s",
                                           _start("m2", "mistral-nemo-12b", "H200-141GB", "tp1-kv96k-oslspread"),
                                           "18:09:00 m2: exit 0 after 415 s"])):
        (tmp_path / run).mkdir()
        (tmp_path / run / "session-x.log").write_text("\n".join(lines) + "\n")
    rows = profile_cost.runs_walls(tmp_path)
    assert [(r.session, r.variant, r.seconds) for r in rows] == [
        ("2026-12-05-s21", "mistral-nemo-12b/H200-141GB/tp1-kv96k-oslspread", 415.0),
        ("2026-12-06-h8", "qwen3-14b/H100-SXM-80GB/tp1-steady4k", 403.0)]


def test_every_committed_session_log_yields_its_runs() -> None:
    """Each session log under profiles/runs names at least one variant run that wrote its profile, unless every
    variant it launched exited non-zero (plan h14, stop 45: the server came up after the run's deadlines), which
    counts nothing."""
    import re

    rows = profile_cost.runs_walls(profile_cost.RUNS)
    logs = sorted(profile_cost.RUNS.glob("*/session*.log"))
    assert len(logs) >= 20
    with_runs = {r.session for r in rows}
    assert with_runs <= {log.parent.name for log in logs}
    for log in logs:
        if log.parent.name not in with_runs:
            text = log.read_text()
            assert re.search(r": exit [1-9]\d* after", text) and not re.search(r": exit 0 after", text), log


def test_part_c_holds_out_every_fifth_point_by_size_and_scores_the_planners_laws() -> None:
    """Part C's any-point split (its only one until stop 48; `fitted_mask`): sorted by size, every 5th point from the
    third on is held out (never the two smallest), in the
    frame's own order; its errors are the planner's laws' (planner.perf.heldout.subset_fit_errors, the fit `planner
    solve` uses), which with the checkerboard split gives exactly the sparse-profile check's errors."""
    import numpy as np
    import pandas as pd

    from planner.io.catalog import Catalog
    from planner.perf.heldout import _points, checkerboard, sparse_fit_errors, subset_fit_errors
    from planner.perf.profiledata import load_profile

    size = pd.Series([70, 10, 60, 20, 50, 30, 40, 80, 90, 100, 110, 5])
    fitted = profile_cost.fitted_mask(size, pd.Series(range(12)))
    held = sorted(size[~fitted])
    assert held == [20, 70]  # sorted 5, 10, 20, ..., 110: the 3rd and the 8th smallest (indices 2 and 7)
    prof = load_profile(REPO / "profiles/data/qwen3-32b/H200-141GB/tp1/vllm")
    pre, dec = _points(prof)
    cat = Catalog.load()
    a = subset_fit_errors(prof, cat, checkerboard(pre, "isl", "batch"), checkerboard(dec, "batch", "context_tokens"))
    b = sparse_fit_errors(prof, cat)
    assert np.array_equal(a.all_rel_err(), b.all_rel_err())
    # every point fitted but one: that point's error alone comes back
    one = np.ones(len(pre), dtype=bool)
    one[len(pre) // 2] = False
    e = subset_fit_errors(prof, cat, one, np.ones(len(dec), dtype=bool))
    assert e.prefill_rel_err.size == 1 and e.decode_rel_err.size == 0 and np.isfinite(e.prefill_rel_err).all()


def test_part_c_never_holds_out_the_points_a_sparse_profile_measures_first() -> None:
    """Rule 48-C's split (profile_cost.sparse_profile_mask): the grid's corners and midpoints (profiles.sweep.
    seed_subset, the first points an adaptive profile measures) are always fitted, ~20% of the grid is held out from
    the rest, and on the H200 MoE profile the 16,384-token prompt that the every-5th split held out is now fitted."""
    import pandas as pd

    from planner.perf.profiledata import central_points, load_profile
    from profiles.sweep import seed_subset

    # a 5 x 4 grid: seed_subset takes 3 x 3 = 9 points; 4 of the 20 are held out, none of the 9
    keys = pd.DataFrame([(x, y) for x in (128, 256, 512, 1024, 2048) for y in (1, 2, 4, 8)], columns=["isl", "batch"])
    fitted = profile_cost.sparse_profile_mask(keys, keys.isl * keys.batch, keys.isl)
    held = {tuple(map(int, r)) for r in keys[~fitted].itertuples(index=False, name=None)}
    assert len(held) == 4 and not held & set(seed_subset([tuple(map(int, r)) for r in keys.itertuples(index=False, name=None)]))
    prof = load_profile(REPO / "profiles/data/qwen3-30b-a3b/H200-141GB/tp1/vllm")
    pre = central_points(prof.prefill, ["isl", "batch"], "ttft_ms")
    new = profile_cost.sparse_profile_mask(pre[["isl", "batch"]], pre.isl * pre.batch, pre.isl)
    old = profile_cost.fitted_mask(pre.isl * pre.batch, pre.isl)
    largest = int((pre.isl * pre.batch).to_numpy().argmax())
    assert not old[largest] and new[largest]
    assert (~new).sum() == round(0.2 * len(pre))


def test_part_c_reports_the_worst_profile_and_the_h200_points_together() -> None:
    """Part C's figures (profile_cost.PartC): the H200's held-out points pooled read at most the worst profile's p90
    (the bundled H200 MoE is the worst H200 profile, its 5 points among 21)."""
    from rich.console import Console

    c = profile_cost.part_c(Console(quiet=True))
    assert c.gpu_minutes > 0 and c.worst_p90_pct >= c.h200_pooled_p90_pct > 0
    assert c.worst_any_point_p90_pct > 0
