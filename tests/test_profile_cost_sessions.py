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
