"""bench/engine_account.py: every --run checked before any work (exit 2 naming what is wrong, no traceback), and the
default runs (device session s20's, committed) give their RESULT line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import engine_account  # noqa: E402

RUN = "profiles/runs/2026-12-05-s20/llama-3.1-8b/H200-141GB/tp1-acct/vllm"
PROFILE = "profiles/data/llama-3.1-8b/H200-141GB/tp1/vllm"


@pytest.mark.parametrize("runs, says", [
    (["no-equals-sign"], "--run no-equals-sign: expected RUN_DIR=PROFILE_DIR"),
    ([f"{RUN}=profiles/data/no-such-model/H100-SXM-80GB/tp1/vllm"], "the profile of its laws: "),
    ([f"profiles/data={PROFILE}"], "expected load_sweep.csv and engine_load.csv there"),
    # the second pair is bad: the first is not worked on before it is checked (nothing printed to stdout)
    ([f"{RUN}={PROFILE}", f"{RUN}=profiles/data/no-such-model/H100-SXM-80GB/tp1/vllm"], "the profile of its laws: "),
])
def test_a_bad_run_is_exit_2_before_any_work(runs, says, capsys):
    argv = [x for r in runs for x in ("--run", r)]
    assert engine_account.main(argv) == 2
    out = capsys.readouterr()
    assert says in out.err and "Traceback" not in out.err
    assert out.out == ""  # no table: nothing was computed


def test_the_default_runs_give_their_result_line(capsys):
    assert engine_account.main([]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    fields = dict(kv.split("=") for kv in last.split()[1:])
    assert fields["runs"] == "4" and int(fields["rates"]) > 0
    assert 0.8 < float(fields["step_ratio_median"]) < 1.25  # the laws' step against the engine's, as measured
