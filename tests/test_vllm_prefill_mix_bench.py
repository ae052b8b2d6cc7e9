"""bench/vllm_prefill_mix.py on a prefill-only replay in the committed layout under a temporary folder
(tests/prefill_replay.py: plan r4's two classes, 60 s, its "measured" TTFTs the simulator's prefill replica on the same
arrivals, a stand-in for vLLM on a GPU, which cannot run here): the bench finds the classes and their rates, its
simulator replays the file's arrivals to the file's own figures, the model's forms read within a band of them, and
the mixed bench leaves the replay out. Deterministic: no clock is read."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import vllm_prefill_mix as vpm  # noqa: E402
import vllm_trace_replay as vtr  # noqa: E402

from tests.prefill_replay import simulated_prefill_replay  # noqa: E402


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulated_prefill_replay(tmp_path_factory.mktemp("runs"))


def test_the_bench_finds_the_classes_and_predicts_within_a_band(replay: Path) -> None:
    """Both classes (800 and 8,000 tokens) at their drawn rates (12 and 1.5 req/s: within 25% over 60 s); the bench's
    simulator replays the file's arrivals to its own TTFTs (the file's are that simulator's: within 0.5%, a change in
    how the bench reads or replays the arrivals fails here); each form of the model within -50% / +35% of it, the
    shipped one within 25% (read when the test was written: the forms' p90s -23% to +24% of it, "fcfs" -18% / -11%
    for the 800- / 8,000-token class; a form that moved a class's p90 by half fails)."""
    r = vtr.read_replay(str(replay))
    assert r.prefill_only
    rows = vpm.check(r, list(vpm.FORMS))
    assert [round(c.isl) for c in rows] == [800, 8000]
    for c, want in zip(rows, (12.0, 1.5), strict=True):
        assert abs(c.rate_rps / want - 1) < 0.25, c
        for q in (50, 90):
            assert abs(vtr.err_pct(c.sim_ms[q], c.vllm_ms[q])) < 0.5, c
        for f in vpm.FORMS:
            assert -50.0 < vtr.err_pct(c.model_ms[f][90], c.vllm_ms[90]) < 35.0, (f, c)
        assert abs(vtr.err_pct(c.model_ms["fcfs"][90], c.sim_ms[90])) < 25.0, c


def test_the_result_line_counts_the_replay(replay: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert vpm.main(["--replay", str(replay), "--forms", "fcfs,own"]) == 0
    out = capsys.readouterr().out
    fields = dict(kv.split("=") for kv in out.strip().splitlines()[-1].split()[1:])
    assert fields["replays"] == "1" and int(fields["requests"]) > 600
    assert set(fields) == {"replays", "requests", "ttft_p90_err_pct_fcfs", "ttft_p90_err_pct_own",
                           "sim_ttft_p90_err_pct"}
    assert float(fields["ttft_p90_err_pct_fcfs"]) < 25.0 and float(fields["sim_ttft_p90_err_pct"]) < 0.5


def test_a_mixed_replay_or_a_bad_form_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    mixed = REPO / "profiles/runs/2026-12-07-r3/llama-3.1-8b/H100-SXM-80GB/tp1-replay-near2/vllm" / vtr.REPLAY_FILE
    with pytest.raises(SystemExit) as e:
        vpm.main(["--replay", str(mixed)])
    assert e.value.code == 2 and str(mixed) in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        vpm.main(["--forms", "nope"])
    assert e.value.code == 2 and "--forms" in capsys.readouterr().err


def test_the_mixed_bench_leaves_a_prefill_only_replay_out(replay: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """When plan r4's replay lands, bench/vllm_trace_replay.py's mixed figures do not move: with r3's replay beside
    it, the RESULT counts r3's alone (1,800 requests) and r4's row says it is left out."""
    r3 = REPO / "profiles/runs/2026-12-07-r3/llama-3.1-8b/H100-SXM-80GB/tp1-replay-near2/vllm" / vtr.REPLAY_FILE
    assert vtr.main(["--replay", str(r3), "--replay", str(replay)]) == 0
    out = capsys.readouterr().out
    fields = dict(kv.split("=") for kv in out.strip().splitlines()[-1].split()[1:])
    assert fields["replays"] == "1" and fields["requests"] == "1800", fields
    assert "left out: prefill-only" in " ".join(out.split())
