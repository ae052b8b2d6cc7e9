"""bench/vllm_trace_replay.py: the simulator's replay of a replayed trace set against the replay's own rows. Its
consistency check: rows written by the simulator itself (the same laws, the same frontend term) read back at ~0%
error; bad input is exit 2 naming the file before any work."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import vllm_trace_replay as vtr  # noqa: E402
from fidelity import mixed_sim_report  # noqa: E402

PROF = REPO / "profiles" / "data" / "llama-3.1-8b" / "H100-SXM-80GB" / "tp1" / "vllm"


def _replay_dir(tmp_path: Path) -> Path:
    """A replay of clustered arrivals whose rows are the simulator's own (the bundled H100 profile's laws)."""
    from planner.perf.laws import PerfModel
    from planner.simulate.steptime import FRONTEND_MS_PER_RUNNING

    d = tmp_path / "llama-3.1-8b" / "H100-SXM-80GB" / "tp1-replay" / "vllm"
    d.mkdir(parents=True)
    (d / "meta.yaml").write_text((PROF / "meta.yaml").read_text())
    rng = np.random.default_rng(7)
    centres = np.sort(rng.uniform(0, 20.0, 30))
    t = np.sort(np.concatenate([c + rng.uniform(0, 0.2, 8) for c in centres]))
    prompts, outputs = rng.integers(200, 2000, t.size), rng.integers(20, 200, t.size)
    vp = PerfModel.load().get("llama-3.1-8b", "H100-SXM-80GB", 1)
    kv = yaml.safe_load((PROF / "meta.yaml").read_text())["kv_capacity_tokens"]
    import dataclasses

    rep, _ = mixed_sim_report(dataclasses.replace(vp, kv_capacity_tokens=kv), 1000, 100, t - t[0],
                              FRONTEND_MS_PER_RUNNING, prompts, outputs)
    r = rep.requests.sort_values("t_arr_s")
    pd.DataFrame({"sent_s": t - t[0], "ttft_ms": r.ttft_ms.to_numpy(), "itl_ms": r.itl_ms.to_numpy(),
                  "prompt_tokens": prompts, "tokens": outputs}).to_csv(d / vtr.REPLAY_FILE, index=False)
    return d


def test_the_simulators_own_rows_read_back_at_no_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = _replay_dir(tmp_path)
    assert vtr.main(["--replay", str(d / vtr.REPLAY_FILE)]) == 0
    result = capsys.readouterr().out.strip().splitlines()[-1]
    fields = dict(kv.split("=") for kv in result.split()[1:])
    assert fields["replays"] == "1" and fields["requests"] == "240"
    assert float(fields["ttft_p90_err_pct"]) < 1.0 and float(fields["itl_mean_err_pct"]) < 1.0, result


@pytest.mark.parametrize("what", ["missing", "folder", "no meta"])
def test_bad_replays_are_exit_2_naming_the_file(what: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if what == "missing":
        arg = str(tmp_path / "nope.csv")
    elif what == "folder":
        arg = str(tmp_path)
    else:
        (tmp_path / vtr.REPLAY_FILE).write_text("sent_s,ttft_ms,itl_ms,prompt_tokens,tokens\n0,1,1,1,1\n1,1,1,1,1\n")
        arg = str(tmp_path / vtr.REPLAY_FILE)
    with pytest.raises(SystemExit) as e:
        vtr.main(["--replay", arg])
    assert e.value.code == 2 and arg.split("=")[0] in capsys.readouterr().err


def test_plans_r1_r2_r3_replays_the_simulator_reads_below_vllm(capsys: pytest.CaptureFixture[str]) -> None:
    """Plans r1 (stop 56, rule 56-GPU-b), r2 (stop 57, rule 57-GPU-b) and r3 (stop 60, rule 57-GPU-c), reported only:
    real vLLM 0.26 on one H100 replayed a clustered trace (1,943 requests at 13.05 req/s, 1-s IDC 11) and an on/off one
    (1,132 at 9.45 req/s), then clustered traces near one replica's limit (2,247 at 15.07 req/s) and over it (2,856 at
    19.17 req/s), then r2's 'near' design on a fresh draw (1,800 at 12.12 req/s, IDC 13.5, planned at utilization
    0.91). The simulator, replaying the same requests on the bundled H100 profile's laws, reads their TTFT p90 12-17%
    below vLLM's at r1's and r3's loads and 22-29% below at r2's, their mean ITL 2-11% below: optimistic on bursts, by
    more as the load nears the limit; the share within SLO within one point at r1's and r3's loads, 2.7 and 9.3 points
    above vLLM's at r2's. A change to the simulator or the laws that moves this shows here."""
    assert vtr.main([]) == 0
    out = capsys.readouterr().out
    fields = dict(kv.split("=") for kv in out.strip().splitlines()[-1].split()[1:])
    assert fields["replays"] == "5" and fields["requests"] == "9978"
    rows = [line for line in out.splitlines() if "2026-12-07-r" in line and line.count("│") == 10]  # first table
    assert len(rows) == 5
    bands = {"r1": ((-25.0, -5.0), (-12.0, -2.0), (-0.5, 2.0)), "r2": ((-35.0, -15.0), (-15.0, -3.0), (1.0, 12.0)),
             "r3": ((-25.0, -8.0), (-6.0, 0.0), (0.0, 3.0))}
    for row in rows:
        cells = [c.strip() for c in row.split("│")]
        (lo, hi), (ilo, ihi), (alo, ahi) = bands[cells[1].split("/")[0].split("-")[-1]]
        p90 = float(cells[6].split("(")[1].rstrip("%)"))
        itl = float(cells[8].split("(")[1].rstrip("%)"))
        pts = float(cells[9].split("(")[1].split()[0])
        assert lo < p90 < hi and ilo < itl < ihi and alo <= pts < ahi, row


def test_plan_r2_the_burst_aware_sizing_of_one_replica_holds_on_vllm() -> None:
    """Plan r2 (stop 57, rule 57-GPU-b, held out, reported only): the capacity model plans the clustered trace 'near'
    (15.07 req/s, 1-s IDC 9.5) on one H100 mixed replica and 'over' (19.17 req/s, IDC 12.5) on two; on one real vLLM
    replica every class of 'near' keeps its TTFT p90 and ITL p90 within the SLO (1,000 / 50 ms) and every class of
    'over' misses its TTFT p90: the model's one-replica verdict is vLLM's on both sides of the limit."""
    from planner.perf.laws import PerfModel

    pm = PerfModel.load()
    base = REPO / "profiles/runs/2026-12-07-r2/llama-3.1-8b/H100-SXM-80GB"
    for variant, want_replicas, holds in (("tp1-replay-near", 1, True), ("tp1-replay-over", 2, False)):
        r = vtr.read_replay(str(base / variant / "vllm" / vtr.REPLAY_FILE))
        replicas, checks = vtr.closed_form(r, vtr.simulated(r), pm, 1000.0, 50.0)
        assert replicas == want_replicas, (variant, replicas)
        within = [k.vllm_ttft_p90_ms <= 1000.0 and k.vllm_itl_p90_ms <= 50.0 for k in checks]
        assert all(within) if holds else not any(k.vllm_ttft_p90_ms <= 1000.0 for k in checks), (variant, checks)


def test_plan_r1s_clustered_replay_the_closed_form_per_class() -> None:
    """What the capacity model says of plan r1's clustered replay (stop 57, found by this bench's closed-form part;
    reported). `planner solve` plans the replayed requests' six classes on one H100 mixed replica. Its ILP prices
    each class as if it were alone at the pool's utilization (Mélange's fractions), which put the short prompts' TTFT
    p90 53-61% below vLLM's and the longest class's 18-37% above, where vLLM (and the simulator, within 19%) serves
    them from one FCFS queue. Since rule 57-M the plan's predicted TTFT of a mixed pool is the class's behind the
    pool's mix (capacity.PoolMix): one queue, so the six read within 8% of each other (461-496 ms) and 13-32% below
    vLLM's (544-695 ms), about the simulator's distance. Its ITL stays the class alone's: short outputs' ITL p90
    28-32% below vLLM's (the class alone runs a smaller decode batch than the pool's mix)."""
    r = vtr.read_replay(str(REPO / "profiles/runs/2026-12-07-r1/llama-3.1-8b/H100-SXM-80GB/tp1-replay-clustered/vllm"
                            / vtr.REPLAY_FILE))
    from planner.perf.laws import PerfModel

    replicas, checks = vtr.closed_form(r, vtr.simulated(r), PerfModel.load(), 1000.0, 50.0)
    assert replicas == 1 and len(checks) == 6
    for k in checks:  # the simulator tracks vLLM class by class
        assert -25.0 < vtr.err_pct(k.sim_ttft_p90_ms, k.vllm_ttft_p90_ms) < 0.0, k
        assert -15.0 < vtr.err_pct(k.sim_itl_p90_ms, k.vllm_itl_p90_ms) < 0.0, k
        assert k.model_ttft_p90_ms is not None and -35.0 < vtr.err_pct(k.model_ttft_p90_ms, k.vllm_ttft_p90_ms) < -10.0, k
    model_ttft = [k.model_ttft_p90_ms or 0.0 for k in checks]
    assert max(model_ttft) < 1.1 * min(model_ttft)  # one queue: the class-alone form spread them 208-835 ms
    worst_itl = max(checks, key=lambda k: k.vllm_itl_p90_ms)  # the class whose ITL binds on vLLM
    assert worst_itl.model_itl_p90_ms is not None
    assert vtr.err_pct(worst_itl.model_itl_p90_ms, worst_itl.vllm_itl_p90_ms) < -20.0, worst_itl
