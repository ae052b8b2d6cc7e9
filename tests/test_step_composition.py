"""vLLM's per-iteration log lines (profiles/iterations.py) and bench/step_composition.py's busy-second method.

The log is a fake of an external system (a real vLLM 0.26 server): lines in vLLM's own format, written by the
test from a step sequence whose durations are known (the laws of a committed profile, times a factor), so the
method must give that factor back.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import step_composition as sc  # noqa: E402

from planner.io.catalog import Catalog  # noqa: E402
from planner.perf.laws import fit_profile  # noqa: E402
from planner.perf.profiledata import load_profile  # noqa: E402
from planner.simulate.steptime import mixed_step_ms  # noqa: E402
from profiles.iterations import parse_iteration_lines, read_iterations  # noqa: E402

PROFILE = REPO / "profiles" / "data" / "llama-3.1-8b" / "H200-141GB" / "tp1" / "vllm"
PREFIX = "(APIServer pid=1352) INFO {sec} [loggers.py:182] Engine 000: "


def line(sec: str, i: int, creq: int, ctok: int, greq: int, elapsed: float = 5.0, kv: float = 10.0, dummy: bool = False) -> str:
    return (PREFIX.format(sec=sec) + f"Iteration({i}): {creq} context requests, {ctok} context tokens, {greq} generation "
            f"requests, {greq} generation tokens, iteration elapsed time: {elapsed:.2f} ms{' (dummy)' if dummy else ''}, "
            f"GPU KV cache usage: {kv:.1f}%")


@pytest.mark.parametrize("text, rows", [
    (line("12-03 15:02:18", 7, 1, 4096, 22, 56.35, 11.2), [("12-03 15:02:18", 7, 1, 4096, 22, 22, 56.35, 11.2)]),
    (line("12-03 15:02:18", 8, 0, 0, 0, dummy=True), []),  # a data-parallel dummy step: no work
    ("(EngineCore pid=1488) INFO 12-03 15:01:04 [core.py:116] Initializing a V1 LLM engine", []),
])
def test_iteration_lines_parse_to_rows_and_other_lines_are_skipped(text: str, rows: list[tuple[object, ...]]) -> None:
    df = parse_iteration_lines([text])
    assert [tuple(r) for r in df.itertuples(index=False)] == rows


def test_a_file_without_iteration_lines_is_refused_naming_it(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("INFO 12-03 15:01:04 [core.py:116] nothing here\n")
    with pytest.raises(ValueError, match="server.log: no vLLM iteration line"):
        read_iterations(log)


def _fake_log(slowdown: float, isl: int = 1024, seconds: int = 40, seed: int = 0, prefill_slowdown: float | None = None) -> pd.DataFrame:
    """Steps of a busy mixed replica (a batch around 60 decodes, a prompt every ~4th step) whose real
    duration is `slowdown` x the laws' (the prompt tokens' part `prefill_slowdown` x, default the same),
    stamped with the second each ends in, as vLLM's logger does."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        perf = fit_profile(load_profile(PROFILE), Catalog.load())[0]
    rng = np.random.default_rng(seed)
    t_ms, i, lines = 0.0, 0, []
    while t_ms < seconds * 1000.0:
        greq = int(rng.integers(50, 70))
        creq = int(rng.random() < 0.25)
        dec = mixed_step_ms(perf, greq, greq * (isl + 64.0), 0, 0.0)
        pre = mixed_step_ms(perf, greq, greq * (isl + 64.0), creq * isl, float(creq * isl * isl)) - dec
        dt = slowdown * dec + (prefill_slowdown or slowdown) * pre
        t_ms += dt
        s = int(t_ms // 1000)
        lines.append(line(f"12-03 15:{s // 60:02d}:{s % 60:02d}", i, creq, creq * isl, greq))
        i += 1
    return parse_iteration_lines(lines)


@pytest.mark.parametrize("slowdown", [1.0, 1.25, 0.8])
def test_busy_seconds_give_back_the_engine_speed_against_the_laws(slowdown: float) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        perf = fit_profile(load_profile(PROFILE), Catalog.load())[0]
    sec = sc.busy_seconds(_fake_log(slowdown), perf, [1024, 4096], 128.0)
    (cell,) = sc.cells("fake", sec)
    assert cell.isl == 1024 and cell.seconds >= 30  # the first and last seconds are not busy on both sides
    assert cell.median == pytest.approx(slowdown, rel=0.03)  # measured / laws
    assert cell.k_decode == pytest.approx(slowdown, rel=0.1) and cell.k_prefill == pytest.approx(slowdown, rel=0.2)


def test_the_split_tells_a_slow_prefill_from_a_slow_decode() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        perf = fit_profile(load_profile(PROFILE), Catalog.load())[0]
    (cell,) = sc.cells("fake", sc.busy_seconds(_fake_log(1.0, prefill_slowdown=1.3, seconds=80), perf, [1024], 128.0))
    assert cell.k_decode == pytest.approx(1.0, abs=0.1) and cell.k_prefill == pytest.approx(1.3, abs=0.15)


def test_steps_before_the_first_sweep_prompt_belong_to_no_phase() -> None:
    it = parse_iteration_lines([line("12-03 15:00:00", 0, 1, 512, 0), line("12-03 15:00:00", 1, 0, 0, 1),
                                line("12-03 15:00:01", 2, 2, 2048, 5), line("12-03 15:00:01", 3, 0, 0, 7),
                                line("12-03 15:00:02", 4, 1, 3000, 7)])
    # 512 is no sweep ISL; 2 x 1,024 starts the 1,024 phase; a 3,000-token chunk continues it
    assert list(sc.phase_isl(it, [1024, 4096])) == [0, 0, 1024, 1024, 1024]


def test_the_bench_refuses_a_run_without_its_sweep_beside_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "server.log"
    log.write_text(line("12-03 15:00:00", 0, 1, 1024, 3) + "\n")
    assert sc.main(["--run", f"{log}={PROFILE}"]) == 2
    assert "no load_sweep.csv beside it" in capsys.readouterr().err


def test_a_parsed_table_round_trips_through_csv_gz_and_a_missing_column_is_named(tmp_path: Path) -> None:
    df = parse_iteration_lines([line("12-03 15:00:00", 0, 1, 1024, 3), line("12-03 15:00:01", 1, 0, 0, 4, elapsed=4.5, kv=12.5)])
    path = tmp_path / "iterations.csv.gz"
    df.to_csv(path, index=False)
    pd.testing.assert_frame_equal(read_iterations(path), df)
    df.drop(columns=["gen_requests"]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="bad.csv: missing columns gen_requests"):
        read_iterations(tmp_path / "bad.csv")


def test_the_emulators_iteration_log_gives_back_its_own_step_law(tmp_path: Path) -> None:
    """End to end on the emulated vLLM (planner.simulate.emulator, a stand-in for a GPU server): a Poisson load
    sweep through the profiler, the engine logging each step in vLLM's format on its emulated clock; the busy
    seconds' steps must sum to the emulator's own law, measured / laws ~1 (edge noise only)."""
    from planner.perf.laws import VariantPerf
    from planner.simulate.emulator import EmulatorFleet
    from profiles.backends.vllm import VllmRunConfig, run_profile

    law = VariantPerf(model="llama-3.1-8b", gpu="H100-SXM-80GB", tp=1, source="measured", prefill_a_ms=30.0,
                      prefill_b_ms_per_token=0.06, prefill_c_ms_per_token2=3e-6, decode_alpha_ms=30.0,
                      decode_beta_ms_per_seq=0.3, decode_gamma_ms_per_token=4e-4, kv_capacity_tokens=120_000,
                      kv_bytes_per_token=131072, kv_link_gb_s=50.0)
    lines: list[str] = []
    with EmulatorFleet(law, time_scale=0.2, iteration_log=lines.append) as fleet:
        run_profile(VllmRunConfig(model="llama-3.1-8b", gpu="H100-SXM-80GB", tp=1, out=tmp_path, endpoint=fleet.urls[0],
                                  prefill_isl=(128,), prefill_batch=(1,), decode_batch=(1,), decode_context=(256,),
                                  decode_tokens=16, repeats=1, progress=False, time_scale=0.2, rate_isls=(512,),
                                  rates_by_isl={512: (8.0,)}, rate_requests=20, rate_duration_s=20.0, rate_osl=16,
                                  rate_warmup_s=0.0))
    it = parse_iteration_lines(lines)
    assert len(it) > 300 and (it.ctx_tokens > 0).any()
    (cell,) = sc.cells("emulator", sc.busy_seconds(it, law, [512], 16.0))
    assert cell.seconds >= 8
    assert cell.median == pytest.approx(1.0, abs=0.05)
