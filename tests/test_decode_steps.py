"""bench/decode_steps.py: vLLM's own decode step time from its per-step log (rule K4 of plan s22).

The iteration tables here are written by the test (vLLM and a GPU cannot run here): a decode sweep's log as
profiles/iterations.py reads it, batch 128 then batch 256, with prefill seconds and an idle gap between."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from bench_loader import load_bench

ROOT = Path(__file__).resolve().parents[1]
H200 = ROOT / "profiles" / "data" / "llama-3.1-8b" / "H200-141GB" / "tp1" / "vllm"


def _bench():
    return load_bench("decode_steps")


def _log(tmp_path: Path) -> Path:
    """Seconds 00-01 prefill batch 128's prompts; 02-06 decode 128 at 100 steps a second (10 ms); 07 idle (no line);
    08 prefill; 09-14 decode 256 at 50 steps a second (20 ms). The first and last decode second of each batch have a
    non-decode or missing neighbour: only 03-05 and 10-13 are whole seconds of one batch's steps."""
    rows, it = [], 0

    def add(sec: int, n: int, ctx: int, gen: int) -> None:
        nonlocal it
        for _ in range(n):
            rows.append((f"12-05 16:00:{sec:02d}", it, 1 if ctx else 0, ctx, gen, gen, 5.0, 10.0))
            it += 1

    for s in (0, 1):
        add(s, 8, 8192, 0)
    for s in range(2, 7):
        add(s, 100, 0, 128)
    add(8, 16, 8192, 0)
    for s in range(9, 15):
        add(s, 50, 0, 256)
    run = tmp_path / "run"
    run.mkdir()
    cols = ["second", "iteration", "ctx_requests", "ctx_tokens", "gen_requests", "gen_tokens", "elapsed_ms",
            "kv_usage_pct"]
    pd.DataFrame(rows, columns=cols).to_csv(run / "iterations.csv.gz", index=False, compression="gzip")
    pd.DataFrame({"batch": [128, 256], "context_tokens": [512, 512], "itl_ms": [10.3, 24.0], "stat": ["median"] * 2,
                  "itl_ms_min": [10.2, 22.0], "itl_ms_max": [10.4, 26.0], "repeats": [2, 2]}).to_csv(run / "decode.csv",
                                                                                                    index=False)
    return run / "iterations.csv.gz"


def test_only_whole_seconds_of_one_batch_count(tmp_path):
    from profiles.iterations import read_iterations

    sec = _bench().pure_decode_seconds(read_iterations(_log(tmp_path)))
    assert list(sec.second.dt.second) == [3, 4, 5, 10, 11, 12, 13]
    assert set(zip(sec.batch, sec.step_ms, strict=True)) == {(128, 10.0), (256, 20.0)}


@pytest.mark.parametrize(("engine_ms", "laws_ms", "want"), [
    (20.0, 18.0, "frontend"),  # 11% above the laws: within K4's 15%
    (20.0, 17.0, "engine"),    # 18% above
    (14.0, 17.0, "engine"),    # 18% below
    (None, 17.0, "none"),
])
def test_k4_verdict(engine_ms, laws_ms, want):
    assert _bench().k4_verdict(engine_ms, laws_ms) == want


def test_bench_reports_engine_client_and_laws(tmp_path, capsys):
    """The client's 24.0 ms at batch 256 is 20% above the engine's 20.0; the verdict is K4's on the engine's step
    against the bundled H200 laws fitted without batch 256."""
    b = _bench()
    it = _log(tmp_path)
    assert b.main(["--run", f"{it}={H200}", "--without-batch", "256"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    res = dict(kv.split("=") for kv in line.split()[1:])
    assert (res["runs"], res["batches"], res["seconds"]) == ("1", "2", "7")
    assert res["client_vs_engine_pct_b256"] == "+20.0" and res["client_vs_engine_pct_b128"] == "+3.0"
    laws_256 = 20.0 / (1 + float(res["engine_vs_laws_pct_b256"]) / 100)
    assert res["k4"] == b.k4_verdict(20.0, laws_256)


@pytest.mark.parametrize("spec", ["nothing", "missing.csv.gz=profiles/data", "{it}=no/such/profile"])
def test_bad_run_exits_2_before_any_work(tmp_path, capsys, spec):
    it = _log(tmp_path)
    assert _bench().main(["--run", spec.format(it=it)]) == 2
    err = capsys.readouterr().err
    assert "--run" in err and "Traceback" not in err
