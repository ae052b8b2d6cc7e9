"""bench/vllm_under_load.py: its inputs are checked before any work, and its comparison is exact where it must be.

A load sweep written by the simulator itself (the laws of a committed vLLM profile, Poisson arrivals from an
empty replica, the shipped frontend constant) stands in for a real one: replaying its arrivals must give back its
own latencies (0% error), and the closed-form model against the simulator in steady state must stay within the
15% the bench's goal names, at loads well below saturation.
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

import vllm_under_load as vul  # noqa: E402
from fidelity import _mixed_sim, model_saturation_rps  # noqa: E402
from planner.io.catalog import Catalog  # noqa: E402
from planner.perf.laws import fit_profile  # noqa: E402
from planner.perf.profiledata import load_profile  # noqa: E402
from planner.simulate.steptime import FRONTEND_MS_PER_RUNNING  # noqa: E402

PROFILE = REPO / "profiles" / "data" / "llama-3.1-8b" / "H200-141GB" / "tp1" / "vllm"


@pytest.mark.parametrize("arg, says", [
    ("{tmp}/missing.csv", "file not found"),
    ("{tmp}/sweep.csv={tmp}", "holds no profile"),
])
def test_bad_sweep_is_exit_2_naming_the_file(tmp_path, capsys, arg, says):
    (tmp_path / "sweep.csv").write_text("isl,osl,rate_rps,sent_s,ttft_ms,itl_ms\n1024,128,1,0,10,5\n")
    with pytest.raises(SystemExit) as exc:
        vul.main(["--sweep", arg.format(tmp=tmp_path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and says in err and str(tmp_path) in err


def test_missing_columns_are_exit_2(tmp_path, capsys):
    (tmp_path / "sweep.csv").write_text("isl,osl,rate_rps\n1024,128,1\n")
    with pytest.raises(SystemExit) as exc:
        vul.main(["--sweep", f"{tmp_path / 'sweep.csv'}={PROFILE}"])
    assert exc.value.code == 2 and "missing columns" in capsys.readouterr().err


def test_a_sweep_the_simulator_wrote_is_replayed_exactly_and_the_model_tracks_its_steady_state(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(vul, "STEADY_REQUESTS", 600)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        perf = fit_profile(load_profile(PROFILE), Catalog.load())[0]
        rows = []
        for isl in (1024, 4096):
            sat = model_saturation_rps(perf, "mixed", isl, 128)
            for share in (0.3, 0.5):
                rng = np.random.default_rng(int(isl * share))
                t = np.concatenate([[0.0], np.cumsum(rng.exponential(1.0 / (share * sat), 59))])
                df, _ = _mixed_sim(perf, isl, 128, t, FRONTEND_MS_PER_RUNNING)
                rows += [{"isl": isl, "osl": 128, "rate_rps": round(share * sat, 3), "sent_s": s, "ttft_ms": a, "itl_ms": b}
                         for s, a, b in zip(t, df.ttft_ms, df.itl_ms, strict=True)]
    sweep = tmp_path / "load_sweep.csv"
    pd.DataFrame(rows).to_csv(sweep, index=False)
    assert vul.main(["--sweep", f"{sweep}={PROFILE}"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    result = dict(kv.split("=") for kv in last.split()[1:])
    assert result["sweeps"] == "1" and result["points"] == "4"
    assert float(result["ttft_p90_sim_mape_pct"]) < 0.5 and float(result["itl_p90_sim_mape_pct"]) < 0.5
    assert float(result["steady_ttft_p90_model_vs_sim_mape_pct"]) < 15.0
    assert float(result["steady_itl_p90_model_vs_sim_mape_pct"]) < 15.0
    # off the measured points (other lengths, up to 85% of saturation) the closed form tracks the simulator too
    assert float(result["grid_ttft_p90_model_vs_sim_mape_pct"]) < 15.0
    assert float(result["grid_itl_p90_model_vs_sim_mape_pct"]) < 15.0


@pytest.mark.parametrize("rate, sat, expected_s", [
    (0.0, 10.0, 0.1),                      # an idle queue relaxes in one service time
    (2.5, 10.0, 0.1 / (1 - 0.5) ** 2),     # rho 0.25: sqrt 0.5
    (9.0, 10.0, 0.1 / (1 - 0.9 ** 0.5) ** 2),
    (10.0, 10.0, float("inf")),            # saturated: never
])
def test_relaxation_time_is_the_mm1_one(rate, sat, expected_s):
    assert vul.relaxation_s(rate, sat) == pytest.approx(expected_s)


def _sample(pause_at_s: float | None, pause_s: float, rate_rps: float = 8.0, seed: int = 3):
    """Poisson arrivals with a 50-ms TTFT each; with a pause, every request arriving during it gets its first
    token when the pause ends (a server-wide stall, as the MoE's in profiles/runs/2026-12-03-s8)."""
    from fidelity import LoadPoint

    rng = np.random.default_rng(seed)
    sent = np.cumsum(rng.exponential(1.0 / rate_rps, int(rate_rps * 14)))
    first = sent + 0.05
    if pause_at_s is not None:
        stalled = (first >= pause_at_s) & (sent < pause_at_s + pause_s)
        first[stalled] = pause_at_s + pause_s + 0.01 * np.arange(int(stalled.sum()))
    arrived = int(np.sum((sent > pause_at_s) & (sent < pause_at_s + pause_s))) if pause_at_s is not None else 0
    point = LoadPoint(isl=1024, osl=128, rate_rps=rate_rps, sent_s=sent, ttft_ms=(first - sent) * 1e3,
                      itl_ms=np.full(sent.size, 20.0))
    return point, arrived


@pytest.mark.parametrize("pause_at_s, pause_s, stall", [
    (None, 0.0, False),   # steady Poisson service: no stall
    (5.0, 0.4, False),    # a short hiccup, within a few median gaps
    (5.0, 2.0, True),     # the MoE's 2-s pause
    (0.5, 1.7, True),     # at the start of the sample
])
def test_longest_stall_flags_a_server_wide_pause_and_counts_its_arrivals(pause_at_s, pause_s, stall):
    point, arrived = _sample(pause_at_s, pause_s)
    st = vul.longest_stall(point)
    assert (st is not None) == stall
    if stall:
        assert st.gap_s == pytest.approx(pause_s, abs=0.3) and st.arrivals == arrived and arrived >= 5


def test_a_sweep_of_an_unknown_model_is_exit_2_and_an_imported_one_is_found(tmp_path, capsys, monkeypatch):
    """The swept profile's model must be in the catalog (the imported models' one unless PLANNER_CATALOG is set):
    an unknown one is exit 2 naming it, checked before any work; an imported one (mistral-nemo-12b, s17) parses
    without PLANNER_CATALOG being set by hand."""
    import shutil

    from planner.perf.heldout import CATALOG_ENV

    monkeypatch.delenv(CATALOG_ENV, raising=False)
    prof = tmp_path / "prof"
    shutil.copytree(PROFILE, prof)
    meta = prof / "meta.yaml"
    meta.write_text(meta.read_text().replace("model: llama-3.1-8b", "model: no-such-model"))
    with pytest.raises(SystemExit) as exc:
        vul.main(["--sweep", f"{PROFILE / 'load_sweep.csv'}={prof}"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "no-such-model" in err
    monkeypatch.delenv(CATALOG_ENV, raising=False)
    vul.use_byo_catalog_unless_set()
    sweep = REPO / "profiles/runs/2026-12-04-s17/mistral-nemo-12b/H200-141GB/tp1-steady/vllm/load_sweep.csv"
    nemo = REPO / "profiles/runs/2026-12-03-s12/mistral-nemo-12b/H200-141GB/tp1/vllm"
    assert vul.parse_sweep(f"{sweep}={nemo}") == (sweep, nemo)


@pytest.mark.parametrize(("share", "duration_s", "keeps_up"), [
    (0.5, 20.0, True),    # half the laws' saturation: the replay serves what is offered
    (1.08, 20.0, True),   # 8% over it for 20 s from empty: the backlog is too short to show (the h6 case)
    (1.6, 60.0, False),   # far over it for a minute: the queue grows for the whole sample
])
def test_replay_tells_whether_a_short_sample_can_show_saturation(share, duration_s, keeps_up):
    """fidelity.replay_served_rps: the simulator replaying a sample's own arrivals with the swept replica's laws,
    measured as LoadPoint.served_rps measures vLLM; the bench calls a busiest sample that kept up above the model's
    saturation rate evidence against the model only where this replay could have saturated."""
    from fidelity import SERVED_SHARE_SATURATED, LoadPoint, replay_served_rps

    perf, _, _ = fit_profile(load_profile(PROFILE), Catalog.load())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rate = share * model_saturation_rps(perf, "mixed", 4096, 128)
    rng = np.random.default_rng(7)
    t = np.cumsum(rng.exponential(1.0 / rate, int(rate * duration_s)))
    n = len(t)
    p = LoadPoint(4096, 128, rate, t - t[0], np.zeros(n), np.zeros(n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        served = replay_served_rps(perf, p, FRONTEND_MS_PER_RUNNING)
    assert (served >= SERVED_SHARE_SATURATED * p.realised_rps) == keeps_up, (share, served, p.realised_rps)


_V3 = "profiles/runs/2026-12-06-v3/qwen2.5-14b/H100-SXM-80GB/tp1/vllm"


@pytest.mark.parametrize(("sweep", "steady_isls"), [
    (f"{_V3}/load_sweep.csv", 0),  # 20-s samples: both ISLs saturated, neither a steady-state reading
    ("profiles/runs/2026-12-06-h10/qwen2.5-14b/H100-SXM-80GB/tp1-steady4k/vllm/load_sweep.csv", 1),  # 60-s samples
])
def test_a_saturation_read_on_a_steady_state_sample_is_counted_apart(sweep, steady_isls, monkeypatch):
    """fidelity.part_vllm_load keeps the saturation errors whose first saturated sample spans >= STEADY_SAMPLE_S
    apart (the RESULT's saturation_steady_*): plan v3's 20-s samples read the held-out qwen2.5-14b's capacity at ISL
    4,096 12% above the model, plan h10's minute-long ones 2%, on the same variant (committed sweeps)."""
    from rich.console import Console

    from fidelity import part_vllm_load

    monkeypatch.setenv("PLANNER_CATALOG", str(REPO / "examples" / "byo-model" / "catalog"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e = part_vllm_load(REPO / sweep, 0, 0, Console(quiet=True), REPO / _V3)
    steady = e.get("vllm_load_saturation_err_steady", [])
    assert len(steady) == steady_isls
    if steady_isls:
        assert steady == e["vllm_load_saturation_err"] and max(steady) < 10.0
    else:
        assert max(e["vllm_load_saturation_err"]) > 10.0  # the short sample's reading at ISL 4,096


def _settled_sweep(path: Path, frontend_ms: float, settle_n: int = 40, n: int = 100) -> None:
    """A sweep the simulator wrote with a settle window: `settle_n` requests (settle = 1) ahead of the sample's `n`,
    ISL 1,024 at 0.6 of the laws' saturation (the shipped simulator unless the caller switched its admission)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        perf = fit_profile(load_profile(PROFILE), Catalog.load())[0]
        rate = 0.6 * model_saturation_rps(perf, "mixed", 1024, 128)
        rng = np.random.default_rng(7)
        t = np.concatenate([[0.0], np.cumsum(rng.exponential(1.0 / rate, settle_n + n - 1))])
        df, _ = _mixed_sim(perf, 1024, 128, t, frontend_ms)
    pd.DataFrame({"isl": 1024, "osl": 128, "rate_rps": round(rate, 3), "sent_s": t, "ttft_ms": df.ttft_ms,
                  "itl_ms": df.itl_ms, "settle": [1] * settle_n + [0] * n}).to_csv(path, index=False)


def test_a_settled_sample_is_scored_on_its_own_requests_and_replayed_with_its_settle_arrivals(tmp_path, capsys):
    """The settle window's requests feed the replay (the replica was loaded when the sample began) but stay out of
    the measured percentiles: a simulator-written settled sweep replays exactly, and it counts in settled_*."""
    sweep = tmp_path / "load_sweep.csv"
    _settled_sweep(sweep, FRONTEND_MS_PER_RUNNING)
    assert vul.main(["--sweep", f"{sweep}={PROFILE}", "--no-grid"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    result = dict(kv.split("=") for kv in last.split()[1:])
    assert result["settled_points"] == "1" and float(result["settled_ttft_p90_sim_mape_pct"]) < 0.5
    assert float(result["settled_itl_p90_sim_mape_pct"]) < 0.5
    # scored on the sample alone: with the settle rows' inter-token gaps made huge, the ITL errors do not move
    df = pd.read_csv(sweep)
    df.loc[df.settle == 1, "itl_ms"] = 1e3
    df.to_csv(sweep, index=False)
    assert vul.main(["--sweep", f"{sweep}={PROFILE}", "--no-grid"]) == 0
    again = dict(kv.split("=") for kv in capsys.readouterr().out.strip().splitlines()[-1].split()[1:])
    assert again["settled_itl_p90_sim_mape_pct"] == result["settled_itl_p90_sim_mape_pct"]
    assert again["settled_itl_p90_model_mape_pct"] == result["settled_itl_p90_model_mape_pct"]
    assert result["grid_ttft_p90_model_vs_sim_mape_pct"] == "nan"  # --no-grid: the grids off the points skipped


def test_the_admission_ablation_switches_the_simulator_and_refits_the_frontend(tmp_path):
    """bench/admission_ablation.py (rules A45, A46): a sweep that the simulator with the admission not shipped wrote,
    with the frontend constant the ablation refits for it, replays exactly under the ablation (whose default is that
    admission) and not under the shipped one. Subprocesses: the ablation replaces module defaults for the life of
    its process."""
    import subprocess

    sweep = tmp_path / "load_sweep.csv"
    write = ("import sys; sys.path[:0] = ['tests', 'bench']; import admission_ablation as a; "
             "fitted = a.use_admission(not a.steptime.ASYNC_SCHEDULING); import test_vllm_under_load as t; from pathlib import Path; "
             f"t._settled_sweep(Path({str(sweep)!r}), fitted)")
    subprocess.run([sys.executable, "-c", write], cwd=REPO, check=True, capture_output=True)

    def result(script: str) -> dict[str, str]:
        out = subprocess.run([sys.executable, f"bench/{script}", "--sweep", f"{sweep}={PROFILE}", "--no-grid"], cwd=REPO,
                             check=True, capture_output=True, text=True).stdout
        return dict(kv.split("=") for kv in out.strip().splitlines()[-1].split()[1:])

    assert float(result("admission_ablation.py")["settled_ttft_p90_sim_mape_pct"]) < 0.5
    assert float(result("vllm_under_load.py")["settled_ttft_p90_sim_mape_pct"]) > 2.0


def test_the_admission_ablation_refuses_an_unknown_admission(capsys):
    """`--admission` names one of the two admissions; anything else is exit 2 before any module is switched."""
    sys.path.insert(0, str(REPO / "bench"))
    import admission_ablation

    import planner.simulate.steptime as steptime

    before = steptime.ASYNC_SCHEDULING, steptime.FRONTEND_MS_PER_RUNNING
    assert admission_ablation.main(["--admission", "k+3"]) == 2
    assert "--admission: invalid choice: 'k+3' (choose from" in capsys.readouterr().err
    assert (steptime.ASYNC_SCHEDULING, steptime.FRONTEND_MS_PER_RUNNING) == before


def test_the_bias_table_groups_signed_errors_by_isl_with_settled_samples_apart():
    """The by-ISL bias table from the samples' typed records (fidelity.P90Bias): mean signed errors per ISL over all
    its samples, then a row of its settled samples alone, the share the simulator reads above the measured p90, and
    a dash where a metric has no sample at that ISL."""
    from fidelity import P90Bias
    from rich.console import Console

    biases = [P90Bias(1024, False, "ttft", -20.0, -5.0), P90Bias(1024, False, "ttft", 10.0, -15.0),
              P90Bias(1024, False, "itl", 4.0, -2.0), P90Bias(4096, False, "ttft", 2.0, 2.0),
              P90Bias(4096, True, "ttft", 30.0, 10.0), P90Bias(4096, True, "ttft", 20.0, 20.0),
              P90Bias(4096, True, "ttft", -10.0, 0.0)]
    con = Console(width=200, record=True)
    con.print(vul.bias_table(biases))
    rows = [line for line in con.export_text().splitlines() if line.startswith("│")]
    cells = [[c.strip() for c in r.strip("│").split("│")] for r in rows]
    assert [c[0] for c in cells] == ["1024", "4096", "4096 settled"]
    one, four, settled = cells
    assert one[1:] == ["2", "-5.0", "50", "-10.0", "+4.0", "100", "-2.0"]
    assert four[1:] == ["4", "+10.5", "75", "+8.0", "-", "-", "-"]  # every 4,096 sample, the settled ones too
    assert settled[1:] == ["3", "+13.3", "67", "+10.0", "-", "-", "-"]
