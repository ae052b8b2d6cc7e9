"""`planner profile --rate-trace`: a recorded trace replayed open loop against a vLLM server (rule 56-GPU-b: the
check of the simulator on arrivals that are not Poisson). The server is the EMULATED vLLM (planner.simulate.emulator:
a fake of an external system, vLLM on a GPU, which cannot run here). Asserted: what is sent and recorded (one row per
request, in order, with its own prompt and output lengths; the rows' file apart from load_sweep.csv), and the bad
inputs refused before any work; never a latency against a bound (the emulator runs 10x faster than real time)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from planner.cli.main import app
from planner.simulate.emulator import EmulatorFleet
from profiles import gpu_session as gs
from profiles.backends.vllm import TRACE_REPLAY_FILE, run_profile
from tests.test_profile_vllm import LAW, small_cfg

REPO = Path(__file__).resolve().parents[1]
TS = 0.1
ROWS = [(0.0, 300, 5), (0.05, 900, 12), (0.06, 120, 3), (0.9, 2000, 7), (1.5, 640, 9)]


def test_a_trace_is_replayed_request_by_request(tmp_path: Path) -> None:
    arrivals = tuple((t, k, o) for t, k, o in ROWS)
    with EmulatorFleet(LAW, time_scale=TS) as fleet:
        cfg = small_cfg(tmp_path, fleet.urls[0], prefill_isl=(128,), prefill_batch=(1,), decode_batch=(1,),
                        decode_context=(256,), time_scale=TS, rate_trace=arrivals, rate_warmup_s=0.5, rate_seed=9)
        summary = run_profile(cfg)
    rows = pd.read_csv(tmp_path / TRACE_REPLAY_FILE)
    assert not (tmp_path / "load_sweep.csv").exists()  # Poisson rates' file: the benches read it as such
    assert rows.prompt_tokens.tolist() == [k for _, k, _ in ROWS] and rows.tokens.tolist() == [o for _, _, o in ROWS]
    assert (rows.isl == round(sum(k for _, k, _ in ROWS) / 5)).all() and (rows.seed == 9).all()
    assert len(summary.goodput_rows) == 1 and summary.goodput_rows[0]["requests"] == 5
    assert summary.goodput_rows[0]["rate_rps"] == pytest.approx(5 / 1.5, rel=1e-3)


def _trace(tmp_path: Path, rows: str) -> str:
    f = tmp_path / "t.csv"
    f.write_text("timestamp,model,input_tokens,output_tokens\n" + rows)
    return str(f)


@pytest.mark.parametrize(("rows", "extra", "says"), [
    ("0,llama-3.1-8b,100,10\n1,llama-3.1-8b,100,10\n", ["--rates", "2"], "give the load one way: --rate-trace or --rates"),
    ("0,llama-3.2-3b,100,10\n1,llama-3.2-3b,100,10\n", [], "no request of model 'llama-3.1-8b' in the trace"),
    ("0,llama-3.1-8b,100,10\n1,llama-3.1-8b,200000,10\n", [], "row 3"),
])
def test_a_trace_that_cannot_be_replayed_is_exit_2_before_any_work(rows: str, extra: list[str], says: str,
                                                                   tmp_path: Path) -> None:
    """No server answers on the endpoint: the refusal comes before the profiler waits on it."""
    res = CliRunner().invoke(app, ["profile", "--backend", "vllm", "--endpoint", "http://127.0.0.1:9", "--model",
                                   "llama-3.1-8b", "--gpu", "H100-SXM-80GB", "--out", str(tmp_path / "p"),
                                   "--rate-trace", _trace(tmp_path, rows), *extra])
    assert res.exit_code == 2 and says in " ".join(res.output.split()), res.output


def test_plans_r1_r2_replay_their_committed_traces_in_a_window_that_holds_them(tmp_path: Path) -> None:
    for v in gs.PLAN_R1 + gs.PLAN_R2 + gs.PLAN_R3:
        assert v.rate_trace is not None and (REPO / v.rate_trace).is_file()
        cmd = gs.command(v, tmp_path, 0.0, 1.0, "srv", 60.0, 1.0, gpu="H100-SXM-80GB")
        assert cmd[cmd.index("--rate-trace") + 1] == v.rate_trace and "--rates-by-isl" not in cmd
        span = float(pd.read_csv(REPO / v.rate_trace).timestamp.max())
        assert v.rate_s >= span + 5.0, (v.label, v.rate_s, span)  # the trace and the 5-s warm-up before it
        win = gs.variant_window(0.0, 585.0 - 45.0, v.startup_s, v.sweep_s, v.rate_s, True, gs.STOP_S, 0.0)
        assert win.rate_end is not None and win.rate_end - win.sweep_end >= span, win
