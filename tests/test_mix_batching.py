"""Rule 60-B (stop 60): how a P/D prefill pool's mix of classes batches at saturation (capacity.MIX_BATCHING, "fcfs":
prompts packed first-come-first-served up to the token budget, as the simulator's prefill replica packs them), set
against the form before it ("mean": every prompt batching as the mix's mean prompt does). Pure maths on the bundled
vLLM profiles' laws, and the rule's bench on a short run."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from planner.perf.laws import PerfModel, quiet_extrapolation
from planner.planning import capacity
from planner.planning.capacity import PoolMix, prefill_latency

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pm() -> PerfModel:
    return PerfModel.load()


@pytest.fixture()
def form():
    """Sets capacity.MIX_BATCHING for one test and puts the shipped one back."""
    kept = capacity.MIX_BATCHING
    yield lambda f: setattr(capacity, "MIX_BATCHING", f)
    capacity.MIX_BATCHING = kept


def test_the_shipped_form_is_rule_60bs() -> None:
    assert capacity.MIX_BATCHING == "fcfs"


@pytest.mark.parametrize("isl", [500.0, 1000.0, 3000.0])
def test_one_length_packs_into_full_batches_of_its_own(pm: PerfModel, form, isl: float) -> None:
    """A mix of one length (in two classes) packs floor(budget / isl) prompts a batch, whatever the draw: FCFS
    packing and "own" full batches are the same batches."""
    perf = pm.get("llama-3.1-8b", "H100-SXM-80GB", 1)
    assert perf is not None
    mix = PoolMix((isl, isl), (200.0, 200.0), (2.0, 3.0))
    with quiet_extrapolation():
        form("fcfs")
        service, per_batch = capacity._mix_full_batches(perf, mix) or (0.0, 0.0)
        form("own")
        own = capacity._mix_full_batches(perf, mix)
        full = float(np.floor(perf.max_batched_tokens / isl))
        assert per_batch == pytest.approx(full, abs=1e-6)
        assert own is not None and service == pytest.approx(own[0], rel=1e-3)
        assert service == pytest.approx(perf.prefill_ms(isl, full) / full, rel=1e-3)


def test_prompts_over_half_the_budget_never_share_a_pass(pm: PerfModel, form) -> None:
    """Two prompts of over half the token budget each never fit one pass: FCFS packing's service is the mix's mean
    batch-1 pass (within the fixed draw's sampling error), where the mean-prompt form read a batching gain."""
    perf = pm.get("qwen3-30b-a3b", "H100-SXM-80GB", 1)
    assert perf is not None
    a, b = 0.55 * perf.max_batched_tokens, 0.9 * perf.max_batched_tokens
    mix = PoolMix((a, b), (200.0, 200.0), (3.0, 1.0))
    form("fcfs")
    with quiet_extrapolation():
        service, per_batch = capacity._mix_full_batches(perf, mix) or (0.0, 0.0)
    mean_pass = 0.75 * perf.prefill_pass_ms(a, a * a) + 0.25 * perf.prefill_pass_ms(b, b * b)
    assert per_batch == 1.0
    assert service == pytest.approx(mean_pass, rel=0.02)


def test_a_long_prompt_mix_reads_busier_than_at_its_mean_prompt(pm: PerfModel, form) -> None:
    """The case that found rule 60-B (qwen3-30b-a3b on an H100, 800- and 8,000-token prompts at 12 + 3 req/s on one
    prefill replica): the long prompts, most of the work, run alone under FCFS packing, so the replica is busier and
    the short class waits longer than the mean-prompt form read (its simulator: utilization 0.79, chat p90 ~470 ms)."""
    perf = pm.get("qwen3-30b-a3b", "H100-SXM-80GB", 1)
    assert perf is not None
    mix = PoolMix((800.0, 8000.0), (200.0, 300.0), (12.0, 3.0))
    got = {}
    with quiet_extrapolation():
        for f in ("mean", "fcfs"):
            form(f)
            got[f] = prefill_latency(perf, 800, 0.0, 90.0, mix=mix)
    assert got["fcfs"].utilization > got["mean"].utilization + 0.05
    assert got["fcfs"].ttft_ms > 1.15 * got["mean"].ttft_ms


def test_rule_61b_candidate_takes_the_larger_wait_of_the_load_capped_form(pm: PerfModel, form) -> None:
    """Rule 61-B's candidate (stop 61, not adopted): "fcfs_mg1" prices the mix's saturated wait at rule 60-B3's
    load-capped service, as "fcfs_load" does, but takes the larger of it and the gated residual where "fcfs_load" adds
    part of the smaller: never above it, and below it where both waits are positive (rule 60-B's qwen3-30b-a3b case)."""
    perf = pm.get("qwen3-30b-a3b", "H100-SXM-80GB", 1)
    assert perf is not None
    mix = PoolMix((800.0, 8000.0), (200.0, 300.0), (12.0, 1.0))
    got = {}
    with quiet_extrapolation():
        for f in ("fcfs_load", "fcfs_mg1"):
            form(f)
            got[f] = prefill_latency(perf, 800, 0.0, 90.0, kv_transfer=False, mix=mix)
    assert got["fcfs_mg1"].utilization == pytest.approx(got["fcfs_load"].utilization)
    assert got["fcfs_mg1"].ttft_ms < got["fcfs_load"].ttft_ms - 1.0


def test_rule_60b_bench_fcfs_reads_closer_than_the_mean_prompt(capsys: pytest.CaptureFixture[str]) -> None:
    """bench/pd_mix_prediction.py on qwen3-30b-a3b's 32 P/D grid cases (one seed of 300 s, shorter than the rule's
    run): FCFS packing's per-class TTFT p90 MAPE below the mean prompt's, and its binding class no further under."""
    sys.path.insert(0, str(ROOT / "bench"))
    import pd_mix_prediction

    assert pd_mix_prediction.main(["--models", "qwen3-30b-a3b", "--seeds", "1", "--duration", "300",
                                   "--forms", "mean,fcfs"]) == 0
    fields = dict(kv.split("=") for kv in capsys.readouterr().out.strip().splitlines()[-1].split()[1:])
    assert fields["cases"] == "32"
    assert float(fields["mape_fcfs"]) < float(fields["mape_mean"]) - 1.0
    assert float(fields["bind_worst_fcfs"]) >= float(fields["bind_worst_mean"])
    assert capacity.MIX_BATCHING == "fcfs"  # the bench puts the shipped form back


@pytest.mark.parametrize("argv", [["--forms", "median"], ["--seeds", "x"], ["--duration", "10"],
                                  ["--models", "no-such-model"]])
def test_the_bench_refuses_bad_flags_with_exit_2(argv: list[str]) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    import pd_mix_prediction

    with pytest.raises(SystemExit) as e:
        pd_mix_prediction.main(argv)
    assert e.value.code == 2
