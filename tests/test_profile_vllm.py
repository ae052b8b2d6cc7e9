"""The vLLM backend against the EMULATED vLLM server (planner.simulate.emulator: a fake of an external
system, vLLM on a GPU, whose step times follow a known VariantPerf law), over real HTTP.

Checks: the fitted laws recover the emulator's laws within 5% on the measured range; the CLI attaches to
an endpoint; launch mode starts and stops the server process (a FAKE `vllm` executable that serves the
emulator); error paths give clear errors and keep measured points.
"""

from __future__ import annotations

import os
import socket
import stat
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest

from planner.perf.laws import VariantPerf
from planner.perf.fit import fit_decode, fit_prefill
from planner.perf.profiledata import central_points, load_profile
from planner.simulate.emulator import EmulatorFleet
from profiles.iterations import ITERATION_FLAG, ITERATIONS_FILE, read_iterations
from profiles.backends.vllm import (LaunchConfig, MalformedStream, ProfilerError, ServerDied, VllmRunConfig,
                                    read_kv_capacity, run_profile)

from controller_prom import free_port

# A law in the range of an 8B model on one GPU, with fixed costs large enough (30 ms) that the
# emulator's own per-step wall-clock overhead (~1 ms of asyncio scheduling) stays well under 5%.
LAW = VariantPerf(model="llama-3.1-8b", gpu="H100-SXM-80GB", tp=1, source="measured",
                  prefill_a_ms=30.0, prefill_b_ms_per_token=0.06, prefill_c_ms_per_token2=3e-6,
                  decode_alpha_ms=30.0, decode_beta_ms_per_seq=0.3, decode_gamma_ms_per_token=4e-4,
                  kv_capacity_tokens=120_000, kv_bytes_per_token=131072, kv_link_gb_s=50.0)


def small_cfg(out: Path, url: str, **kw) -> VllmRunConfig:
    base = dict(model="llama-3.1-8b", gpu="H100-SXM-80GB", tp=1, out=out, endpoint=url,
                prefill_isl=(128, 512, 2048), prefill_batch=(1, 2, 4), decode_batch=(1, 4, 16),
                decode_context=(256, 1024), decode_tokens=16, repeats=1, progress=False)
    base.update(kw)
    return VllmRunConfig(**base)


def test_fitted_laws_recover_the_emulator_law_within_5_percent(tmp_path):
    # Real time (time_scale 1, ~20 s). Prefill points come from the engine's own clock (the emulator's
    # prefill-time histogram, on its virtual timeline): exact whatever the machine's load. Decode points
    # are client-side token times, so wall-clock noise shows in them divided by time_scale. Measured at
    # time_scale 1 on the 2-core machine, the fitted decode law's worst point against the true law: 0.1%
    # off unloaded, 0.9-1.2% with two busy loops beside the run, 0.3-2.1% with three (time_scale 0.5 with
    # two: 1.8-2.5%). (This test ran at time_scale 4, ~38 s, from when prefill was timed client-side too:
    # 5.1% off on the per-token prefill coefficient at time_scale 2 with two busy loops.)
    # One decode sample per point failed once in CI (2026-12-04, stop 24): the (16 x 1024) point came out
    # ~8% fast, the fit 6.5% off there while the other five points were within 1.6%: a stall at the start
    # of the steady window (every stream's slope starts at the same step, so the median over streams
    # does not help). Each decode point is now the median of 3 samples (decode_repeats), which a single
    # stall cannot move; measured with three busy loops beside it: worst fitted point 0.3-0.7% off,
    # ~18 s instead of ~6.
    # CI of stop 28 (two busy loops and other work beside the suite) failed here with "fewer than 8 steps where
    # all 16 streams were decoding": the loaded client opened the 16 streams over more than 8 steps. The
    # profiler now measures such a point again with more tokens per stream (DECODE_WINDOW_RETRIES; its own
    # test below).
    with EmulatorFleet(LAW, time_scale=1.0) as fleet:
        summary = run_profile(small_cfg(tmp_path, fleet.urls[0], time_scale=1.0, decode_repeats=3))
    assert summary.kv_capacity_tokens == LAW.kv_capacity_tokens  # from vllm:cache_config_info
    prof = load_profile(tmp_path)
    assert prof.meta.backend == "vllm" and prof.meta.kv_capacity_tokens == LAW.kv_capacity_tokens
    pre = central_points(prof.prefill, ["isl", "batch"], "ttft_ms")
    dec = central_points(prof.decode, ["batch", "context_tokens"], "itl_ms")
    assert len(pre) == 9 and len(dec) == 6
    (a, b, c), _ = fit_prefill(pre.isl.to_numpy(), pre.batch.to_numpy(), pre.ttft_ms.to_numpy())
    (al, be, ga), _ = fit_decode(dec.batch.to_numpy(), dec.context_tokens.to_numpy(), dec.itl_ms.to_numpy())
    # The fitted law against the true law, over every measured point.
    fit_p = a + b * pre.batch * pre.isl + c * pre.batch * pre.isl**2
    true_p = np.array([LAW.prefill_ms(i, n) for i, n in zip(pre.isl, pre.batch)])
    fit_d = al + be * dec.batch + ga * dec.batch * dec.context_tokens
    true_d = np.array([LAW.decode_step_ms(n, x) for n, x in zip(dec.batch, dec.context_tokens)])
    assert np.max(np.abs(fit_p / true_p - 1)) < 0.05, (a, b, c)
    assert np.max(np.abs(fit_d / true_d - 1)) < 0.05, (al, be, ga)
    # The dominant coefficients themselves: per-token prefill cost and the decode step's fixed cost.
    # (8%: the coefficients carry the residual noise above; the law itself is held to 5% just above.)
    assert b == pytest.approx(LAW.prefill_b_ms_per_token, rel=0.08)
    assert al == pytest.approx(LAW.decode_alpha_ms, rel=0.08)
    assert summary.gpu_seconds > 0


def test_resume_skips_points_already_measured(tmp_path):
    with EmulatorFleet(LAW, time_scale=0.2) as fleet:
        cfg = small_cfg(tmp_path, fleet.urls[0], prefill_isl=(128, 256), prefill_batch=(1,), decode_batch=(1,),
                        decode_context=(256,), time_scale=0.2)
        first = run_profile(cfg)
        second = run_profile(cfg)
    assert len(first.prefill.measured) == 2 and len(first.decode.measured) == 1
    assert second.prefill.measured == [] and len(second.prefill.resumed) == 2 and second.decode.measured == []


def test_a_resumed_run_keeps_the_engine_account_of_the_decode_points_it_resumes(tmp_path):
    """decode_engine.csv was rewritten from this run's rows only, so a resume lost the finished points' rows; a row
    of a point the interrupted run had not finished (not in decode.csv) goes, as that point is measured again."""
    with EmulatorFleet(LAW, time_scale=0.2) as fleet:
        cfg = small_cfg(tmp_path, fleet.urls[0], prefill_isl=(128,), prefill_batch=(1,), decode_batch=(1,),
                        decode_context=(256,), time_scale=0.2)
        run_profile(cfg)
        first = (tmp_path / "decode_engine.csv").read_text().splitlines()
        (tmp_path / "meta.yaml").unlink()  # as an interrupted run leaves it
        with (tmp_path / "decode_engine.csv").open("a") as fh:
            fh.write(first[1].replace("1,256,", "4,256,", 1) + "\n")  # (4, 256) cut off mid-point
        run_profile(replace(cfg, decode_batch=(1, 2)))
    rows = (tmp_path / "decode_engine.csv").read_text().splitlines()
    keys = [tuple(r.split(",")[:3]) for r in rows[1:]]
    assert keys == [("1", "256", "0"), ("2", "256", "0")]
    assert rows[1] == first[1]  # the resumed point's row as measured


def test_cli_profile_attaches_to_an_endpoint(tmp_path):
    from typer.testing import CliRunner

    from planner.cli.main import app

    with EmulatorFleet(LAW, time_scale=0.2) as fleet:
        res = CliRunner().invoke(app, ["profile", "--backend", "vllm", "--endpoint", fleet.urls[0], "--model", "llama-3.1-8b",
                                       "--gpu", "H100-SXM-80GB", "--tp", "1", "--out", str(tmp_path), "--prefill-isl", "128,512",
                                       "--prefill-batch", "1,2", "--decode-batch", "1,2", "--decode-context", "256",
                                       "--decode-tokens", "16", "--repeats", "1", "--time-scale", "0.2", "--no-progress",
                                       "--rates", "2", "--rate-requests", "10", "--rate-isl", "128", "--rate-osl", "16",
                                       "--slo-ttft-ms", "1000", "--slo-itl-ms", "100"])
    assert res.exit_code == 0, res.output
    assert "profile written" in res.output
    prof = load_profile(tmp_path)
    assert len(prof.prefill) == 4 and len(prof.decode) == 2
    assert not (tmp_path / "identity.yaml").exists()  # a complete folder is as before: its meta.yaml says whose it is
    good = (tmp_path / "goodput.csv").read_text().splitlines()
    assert good[0].startswith("rate_rps,isl,osl,requests") and len(good) == 2
    show = CliRunner().invoke(app, ["profile", "show", str(tmp_path), "--png", str(tmp_path / "fit.png")])
    assert show.exit_code == 0, show.output
    assert (tmp_path / "fit.png").stat().st_size > 10_000


@pytest.mark.parametrize("served_name, refused", [
    ("llama-3.1-8b", "llama-3.1-8b"),                     # another catalog model, by its catalog name
    ("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b"),  # by its hf_id, as vLLM serves it by default
    ("qwen3-32b", None),                                   # --model's own name
    ("my-finetune", None),                                 # a name the catalog does not know (--served-model-name)
])
def test_an_endpoint_serving_another_catalog_model_is_refused_before_any_point(tmp_path, served_name, refused):
    """Found in QA: `planner profile --model qwen3-32b --endpoint URL` on an emulator serving llama-3.1-8b measured
    it and wrote a qwen3-32b profile, exit 0. Now exit 2 naming --endpoint, the served model and the catalog model it
    is, with nothing written; a served name that is --model's or unknown to the catalog is profiled as before."""
    from typer.testing import CliRunner

    from planner.cli.main import app

    with EmulatorFleet(LAW, time_scale=0.2, model_name=served_name) as fleet:
        res = CliRunner().invoke(app, ["profile", "--backend", "vllm", "--endpoint", fleet.urls[0], "--model", "qwen3-32b",
                                       "--gpu", "H100-SXM-80GB", "--out", str(tmp_path / "p"), "--prefill-isl", "128,512",
                                       "--prefill-batch", "1", "--decode-batch", "1,2", "--decode-context", "256",
                                       "--decode-tokens", "16", "--repeats", "1", "--time-scale", "0.2", "--no-progress"])
    out = " ".join(res.output.split())
    if refused is None:
        assert "serves" not in out and "Traceback" not in out, res.output
        return
    assert res.exit_code == 2 and f"serves '{served_name}' ({refused} in the catalog), not --model qwen3-32b" in out, \
        res.output
    assert not (tmp_path / "p" / "prefill.csv").exists()


def test_a_time_scale_other_than_the_emulators_is_refused_before_any_point(tmp_path):
    """Found in QA: `planner profile --endpoint URL --time-scale 1` against `planner emulate --time-scale 0.1` divided
    every wall-clock latency by 1 instead of 0.1 and wrote a profile 10x too fast, exit 0. The emulator now states its
    time scale in GET /version (beside vLLM's "version"), and the profiler refuses another one: exit 2 naming
    --time-scale and the scale to give, nothing written."""
    from typer.testing import CliRunner

    from planner.cli.main import app

    with EmulatorFleet(LAW, time_scale=0.1) as fleet:
        version = httpx.get(fleet.urls[0] + "/version").json()
        res = CliRunner().invoke(app, ["profile", "--backend", "vllm", "--endpoint", fleet.urls[0], "--model", "llama-3.1-8b",
                                       "--gpu", "H100-SXM-80GB", "--out", str(tmp_path / "p"), "--prefill-isl", "128",
                                       "--prefill-batch", "1", "--decode-batch", "1", "--decode-context", "256",
                                       "--decode-tokens", "16", "--repeats", "1", "--time-scale", "1", "--no-progress"])
    assert version == {"version": "0.26.0", "pd_planner_emulator": {"time_scale": 0.1}}
    out = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert (f"--time-scale 1: the endpoint {fleet.urls[0]} is pd-planner's emulator running at time scale 0.1; "
            "give --time-scale 0.1") in out, res.output
    assert "Traceback" not in out and not (tmp_path / "p" / "prefill.csv").exists()


@pytest.mark.parametrize("body, time_scale, refused", [
    ({"version": "0.26.0", "pd_planner_emulator": {"time_scale": 0.1}}, 0.1, False),  # the emulator's own scale
    ({"version": "0.26.0", "pd_planner_emulator": {"time_scale": 0.1}}, 1.0, True),
    ({"version": "0.26.0", "pd_planner_emulator": {"time_scale": 1}}, 0.2, True),
    ({"version": "0.26.0"}, 1.0, False),  # a real vLLM server states none: --time-scale is the user's word
    ({"version": "0.26.0"}, 0.1, False),
    ({}, 0.1, False),
])
def test_the_time_scale_check_refuses_only_an_emulators_other_scale(monkeypatch, body, time_scale, refused):
    from profiles.backends import vllm

    monkeypatch.setattr(vllm.httpx, "get", lambda url, **kw: httpx.Response(200, json=body))
    if refused:
        with pytest.raises(ProfilerError, match=r"--time-scale .*: the endpoint http://x is pd-planner's emulator"):
            vllm.check_time_scale("http://x", time_scale)
    else:
        vllm.check_time_scale("http://x", time_scale)


def test_server_dying_mid_sweep_is_a_clear_error_and_points_are_kept(tmp_path):
    with EmulatorFleet(LAW, time_scale=0.2) as fleet:
        # With the blocker method prefill points cost 2 tokens each (blocker + prompt), a count this
        # test can place (the step method's blocker decodes a variable number); die inside the decode sweep.
        fleet.servers[0].faults.kill_after_tokens = 40
        cfg = small_cfg(tmp_path, fleet.urls[0], prefill_isl=(128, 256), prefill_batch=(1, 2), decode_batch=(4,),
                        decode_context=(256, 512), time_scale=0.2, prefill_method="blocker")
        with pytest.raises(ServerDied) as err:
            run_profile(cfg)
    msg = str(err.value)
    assert "decode sweep" in msg and "4 measured points are kept" in msg and str(tmp_path) in msg
    assert len((tmp_path / "prefill.csv").read_text().splitlines()) == 1 + 4  # header + 4 points on disk
    assert not (tmp_path / "meta.yaml").exists()  # incomplete: no meta (the loader would not take it)


def test_malformed_stream_is_a_clear_error(tmp_path):
    with EmulatorFleet(LAW, time_scale=0.2) as fleet:
        fleet.servers[0].faults.malformed_stream_after_tokens = 0
        with pytest.raises(MalformedStream, match="not JSON"):
            run_profile(small_cfg(tmp_path, fleet.urls[0], time_scale=0.2))


def test_health_timeout_names_the_last_answer(tmp_path):
    with EmulatorFleet(LAW) as fleet:
        fleet.servers[0].faults.health_status = 503
        with pytest.raises(ProfilerError, match=r"not healthy after 1 s; last answer: HTTP 503"):
            run_profile(small_cfg(tmp_path, fleet.urls[0], health_timeout_s=1.0))


def test_unreachable_endpoint_is_a_clear_error(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(ProfilerError, match=r"not healthy after 0.5 s; last answer: connection refused"):
        run_profile(small_cfg(tmp_path, url, health_timeout_s=0.5))


def test_cli_error_exit_code_2_on_unreachable_endpoint(tmp_path):
    from typer.testing import CliRunner

    from planner.cli.main import app

    res = CliRunner().invoke(app, ["profile", "--endpoint", f"http://127.0.0.1:{free_port()}", "--model", "llama-3.1-8b",
                                   "--gpu", "H100-SXM-80GB", "--out", str(tmp_path), "--health-timeout-s", "0.3"])
    assert res.exit_code == 2 and "not healthy" in res.output
    res = CliRunner().invoke(app, ["profile", "--model", "no-such-model", "--gpu", "H100-SXM-80GB", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "unknown model" in res.output and "no-such-model" in res.output


def test_an_out_folder_holding_another_variants_profile_is_refused_before_any_work(tmp_path):
    """Found by hand: `planner profile --gpu H200-141GB --out DIR` on a DIR holding an H100 profile "resumed" all its
    points (0 measured) and rewrote meta.yaml as an H200 profile. Now exit 2 naming meta.yaml and the field, before
    the health wait (nothing listens at the endpoint: no server is needed) and with the folder untouched; the same
    variant still resumes (it reaches the health wait)."""
    from typer.testing import CliRunner

    from planner.cli.main import app
    from profiles.format import write_profile_dir

    meta = {"model": "llama-3.1-8b", "gpu": "H100-SXM-80GB", "tp": 1, "engine": "vllm", "backend": "vllm",
            "kv_capacity_tokens": 100_000, "weight_dtype": "bf16", "kv_dtype": "bf16", "max_batched_tokens": 8192,
            "max_num_seqs": 256}
    write_profile_dir(tmp_path, meta, [{"isl": 128, "batch": 1, "ttft_ms": 10.0}],
                      [{"batch": 1, "context_tokens": 256, "itl_ms": 5.0}])
    before = (tmp_path / "meta.yaml").read_text()
    base = ["profile", "--backend", "vllm", "--endpoint", f"http://127.0.0.1:{free_port()}", "--model", "llama-3.1-8b",
            "--out", str(tmp_path), "--health-timeout-s", "0.3", "--no-progress"]
    for extra, field in ((["--gpu", "H200-141GB"], "gpu"), (["--gpu", "H100-SXM-80GB", "--tp", "2"], "tp"),
                         (["--gpu", "H100-SXM-80GB", "--quantization", "fp8"], "weight_dtype"),
                         # QA: a profile measured at 8,192 batched tokens was resumed and relabelled 2048
                         (["--gpu", "H100-SXM-80GB", "--max-num-batched-tokens", "2048"], "max_batched_tokens"),
                         (["--gpu", "H100-SXM-80GB", "--max-num-seqs", "64"], "max_num_seqs")):
        r = CliRunner().invoke(app, base + extra)
        out = " ".join(r.output.split())
        assert r.exit_code == 2 and str(tmp_path / "meta.yaml") in out and f"field '{field}'" in out, r.output
        assert "not healthy" not in out and "Traceback" not in out
    assert (tmp_path / "meta.yaml").read_text() == before
    r = CliRunner().invoke(app, base + ["--gpu", "H100-SXM-80GB"])
    assert r.exit_code == 2 and "not healthy" in r.output  # the same variant passes the check



def _interrupted_cli_run(out: Path, args: list[str]) -> None:
    """A `planner profile` run that measures 3 + 3 points into `out` and is interrupted (Ctrl-C, exit 130) before its
    meta.yaml, as a real one is; its run_profile is a fake that first checks that identity.yaml is already there."""
    from typer.testing import CliRunner

    from planner.cli.main import app
    from profiles.backends import vllm as vllm_backend
    from profiles.format import ProfileStore

    def interrupted(cfg: VllmRunConfig):
        assert (cfg.out / "identity.yaml").is_file(), "identity.yaml is written before the first point"
        store = ProfileStore(cfg.out)
        for isl in (128, 512, 2048):
            store.add_prefill(isl, 1, [10.0 + isl / 100])
        for batch in (1, 4, 16):
            store.add_decode(batch, 256, [5.0 + batch])
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(vllm_backend, "run_profile", interrupted)
        r = CliRunner().invoke(app, args)
    assert r.exit_code == 130 and "rerun the same command to resume" in r.output, r.output
    assert not (out / "meta.yaml").exists()


@pytest.mark.parametrize("extra, field, recorded, asked", [
    (["--gpu", "H200-141GB"], "gpu", "'H100-SXM-80GB'", "'H200-141GB'"),
    (["--gpu", "H100-SXM-80GB", "--tp", "2"], "tp", "1", "2"),
    (["--gpu", "H100-SXM-80GB", "--kv-cache-dtype", "fp8"], "kv_dtype", "'bf16'", "'fp8'"),
    (["--gpu", "H100-SXM-80GB", "--max-num-seqs", "64"], "max_num_seqs", "256", "64"),
    (["--gpu", "H100-SXM-80GB"], None, None, None),  # the same identity: resumed (it reaches the health wait)
])
def test_an_interrupted_run_resumes_only_as_the_variant_it_was_started_as(tmp_path, extra, field, recorded, asked):
    """Found in QA: the README's walkthrough on H100, interrupted after its first points (prefill.csv and decode.csv
    written, meta.yaml not yet), then rerun into the same folder with --gpu H200-141GB reported 'prefill 0 measured, 3
    resumed; decode 1 measured, 2 resumed' and wrote meta.yaml with gpu H200-141GB: five of six points were H100's.
    A run now records its identity (identity.yaml) before its first point, and a resume of another identity is exit 2
    naming that file, the field, the recorded and the asked value, before the health wait (nothing listens at the
    endpoint) and with the points untouched."""
    from typer.testing import CliRunner

    from planner.cli.main import app

    base = ["profile", "--backend", "vllm", "--endpoint", f"http://127.0.0.1:{free_port()}", "--model", "llama-3.1-8b",
            "--out", str(tmp_path), "--health-timeout-s", "0.3", "--no-progress"]
    _interrupted_cli_run(tmp_path, base + ["--gpu", "H100-SXM-80GB"])
    points = (tmp_path / "prefill.csv").read_text(), (tmp_path / "decode.csv").read_text()
    r = CliRunner().invoke(app, base + extra)
    out = " ".join(r.output.split())
    assert r.exit_code == 2 and "Traceback" not in out, r.output
    if field is None:
        assert "not healthy" in out and "interrupted profile run" not in out
    else:
        assert f"{tmp_path / 'identity.yaml'}: field '{field}'" in out, out
        assert f"this run's {asked}" in out and f"({field} {recorded})" in out and "3 prefill and 3 decode points" in out
        assert "not healthy" not in out
    assert ((tmp_path / "prefill.csv").read_text(), (tmp_path / "decode.csv").read_text()) == points
    assert "gpu: H100-SXM-80GB" in (tmp_path / "identity.yaml").read_text()


def test_an_interrupted_folder_without_identity_resumes_with_a_note(tmp_path):
    """A folder of an interrupted run written before runs recorded their identity (points, no identity.yaml, no
    meta.yaml) resumes as before, with a note that its identity could not be checked; the run then records its own."""
    from typer.testing import CliRunner

    from planner.cli.main import app
    from profiles.format import ProfileStore

    store = ProfileStore(tmp_path)
    store.add_prefill(128, 1, [10.0])
    store.add_decode(1, 256, [5.0])
    r = CliRunner().invoke(app, ["profile", "--backend", "vllm", "--endpoint", f"http://127.0.0.1:{free_port()}",
                                 "--model", "llama-3.1-8b", "--gpu", "H200-141GB", "--out", str(tmp_path),
                                 "--health-timeout-s", "0.3", "--no-progress"])
    out = " ".join(r.output.split())
    assert r.exit_code == 2 and "not healthy" in out, r.output  # resumed: it went on to the endpoint
    assert "interrupted profile run (1 prefill and 1 decode points)" in out and "could not be checked" in out
    assert "gpu: H200-141GB" in (tmp_path / "identity.yaml").read_text()


FAKE_VLLM = textwrap.dedent('''\
    #!{python}
    """FAKE `vllm serve` for tests: parses the flags the profiler passes and serves the emulator."""
    import argparse, os, sys
    from planner.perf.laws import VariantPerf
    from planner.simulate.emulator import serve_forever
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd"); ap.add_argument("model")
    ap.add_argument("--served-model-name"); ap.add_argument("--port", type=int); ap.add_argument("--host")
    ap.add_argument("--max-num-seqs", type=int); ap.add_argument("--max-num-batched-tokens", type=int)
    a, _ = ap.parse_known_args()
    open("{argv_file}", "w").write(" ".join(sys.argv[1:]) + " ROUTING=" + os.environ.get("VLLM_MOE_ROUTING_SIMULATION_STRATEGY", ""))
    if "--enable-logging-iteration-details" in sys.argv:  # vLLM 0.26 logs each engine step (loggers.py's format)
        for i in range(3):
            print(f"(APIServer pid=1) INFO 12-03 15:02:1{{i}} [loggers.py:182] Engine 000: Iteration({{i}}): 1 context requests, "
                  f"128 context tokens, {{i}} generation requests, {{i}} generation tokens, iteration elapsed time: 5.00 ms, "
                  "GPU KV cache usage: 1.0%", flush=True)
    perf = VariantPerf(model=a.served_model_name, gpu="H100-SXM-80GB", tp=1, source="measured", prefill_a_ms=5.0,
        prefill_b_ms_per_token=0.01, prefill_c_ms_per_token2=0.0, decode_alpha_ms=5.0, decode_beta_ms_per_seq=0.1,
        decode_gamma_ms_per_token=1e-4, kv_capacity_tokens=50000, kv_bytes_per_token=131072, kv_link_gb_s=50.0,
        max_num_seqs=a.max_num_seqs, max_batched_tokens=a.max_num_batched_tokens)
    serve_forever(perf, port=a.port, host=a.host, time_scale=0.2, model_name=a.served_model_name)
''')


def test_launch_mode_starts_and_stops_the_server(tmp_path):
    fake = tmp_path / "vllm"
    argv_file = tmp_path / "argv.txt"
    fake.write_text(FAKE_VLLM.format(python=sys.executable, argv_file=argv_file))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    launch = LaunchConfig(model="meta-llama/Llama-3.1-8B-Instruct", served_model_name="llama-3.1-8b", port=free_port(),
                          max_num_seqs=64, server_cmd=[str(fake), "serve"],
                          env={"VLLM_MOE_ROUTING_SIMULATION_STRATEGY": "uniform_random"})
    out = tmp_path / "prof"
    cfg = small_cfg(out, None, endpoint=None, launch=launch, prefill_isl=(128,), prefill_batch=(1, 2), decode_batch=(1, 2),
                    decode_context=(256,), time_scale=0.2, health_timeout_s=60)
    summary = run_profile(cfg)
    assert summary.kv_capacity_tokens == 50000
    argv = argv_file.read_text()
    for flag in ("--tensor-parallel-size 1", "--max-num-seqs 64", "--load-format dummy", "--gpu-memory-utilization 0.9",
                 "--max-num-batched-tokens 8192", "--served-model-name llama-3.1-8b"):
        assert flag in argv
    meta = load_profile(out).meta
    assert "--load-format" in meta.engine_flags and meta.engine == "vllm"
    # The launch's own VLLM_* setting reached the server and is recorded with the flags.
    assert "ROUTING=uniform_random" in argv
    assert meta.engine_env.get("VLLM_MOE_ROUTING_SIMULATION_STRATEGY") == "uniform_random"
    assert meta.calibrate  # no untuned-kernel warning in this server's log: calibrated on (rule V2b)
    # The server we started is gone: its port refuses connections.
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", launch.port)) != 0


@pytest.mark.parametrize("log_iterations", [True, False])
def test_launch_with_the_iteration_log_writes_its_table_beside_the_profile(tmp_path, log_iterations):
    fake = tmp_path / "vllm"
    fake.write_text(FAKE_VLLM.format(python=sys.executable, argv_file=tmp_path / "argv.txt"))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    launch = LaunchConfig(model="m", served_model_name="llama-3.1-8b", port=free_port(), server_cmd=[str(fake), "serve"],
                          extra_args=[ITERATION_FLAG] if log_iterations else [])
    out = tmp_path / "prof"
    run_profile(small_cfg(out, None, endpoint=None, launch=launch, prefill_isl=(128,), prefill_batch=(1,), decode_batch=(1,),
                          decode_context=(256,), time_scale=0.2, health_timeout_s=60))
    table = out / ITERATIONS_FILE
    assert table.is_file() == log_iterations
    if log_iterations:
        assert list(read_iterations(table).gen_requests) == [0, 1, 2]


def test_log_iterations_with_an_endpoint_is_bad_input(tmp_path):
    from typer.testing import CliRunner

    from planner.cli.main import app

    r = CliRunner().invoke(app, ["profile", "--backend", "vllm", "--model", "llama-3.1-8b", "--gpu", "H200-141GB",
                                 "--endpoint", "http://127.0.0.1:9", "--log-iterations", "--out", str(tmp_path / "p")])
    assert r.exit_code == 2 and "--log-iterations needs launch mode" in r.output
    assert not (tmp_path / "p").exists()


def test_launch_of_a_missing_executable_is_a_clear_error(tmp_path):
    launch = LaunchConfig(model="m", served_model_name="llama-3.1-8b", server_cmd=[str(tmp_path / "no-vllm"), "serve"])
    with pytest.raises(ProfilerError, match="cannot launch the server"):
        run_profile(small_cfg(tmp_path, None, endpoint=None, launch=launch))


@pytest.mark.parametrize("pid_file, named", [
    (None, "already listens on 127.0.0.1"),
    ("alive", "says pid {pid}, which is running"),  # a live process (this one): named as the likely orphan
    ("999999999", r"listens on 127.0.0.1:[0-9]+; launch mode"),  # no such process: not named
])
def test_a_launch_on_a_port_another_server_holds_is_refused_before_it_starts(tmp_path, pid_file, named):
    """A server left on --port (a killed run's orphan) answered /health before the launched one failed to bind, and
    was profiled under the launch's flags: now the launch stops first, naming the port (and the orphan's pid)."""
    fake = tmp_path / "vllm"
    argv_file = tmp_path / "argv.txt"
    fake.write_text(FAKE_VLLM.format(python=sys.executable, argv_file=argv_file))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    out = tmp_path / "prof"
    if pid_file is not None:
        out.mkdir()
        (out / "server.pid").write_text(f"{os.getpid() if pid_file == 'alive' else pid_file}\n")
    named = named.format(pid=os.getpid())
    with EmulatorFleet(LAW, time_scale=0.2) as fleet:
        port = int(fleet.urls[0].rsplit(":", 1)[1])
        launch = LaunchConfig(model="m", served_model_name="llama-3.1-8b", port=port, server_cmd=[str(fake), "serve"])
        cfg = small_cfg(out, None, endpoint=None, launch=launch, prefill_isl=(128,), prefill_batch=(1,),
                        decode_batch=(1,), decode_context=(256,), time_scale=0.2, health_timeout_s=60,
                        device_name="NVIDIA H100 80GB HBM3")
        with pytest.raises(ProfilerError, match=f"--port {port}: .*{named}"):
            run_profile(cfg)
    assert not argv_file.exists()  # the server was not launched
    assert not (out / "prefill.csv").exists() and not (out / "meta.yaml").exists()


def test_a_launch_on_another_card_than_gpu_names_is_refused_before_the_server_starts(tmp_path):
    """The profile would be filed (and planned) under --gpu: on a machine whose driver names another card the profiler
    stops before launching (the missing executable here would otherwise be the error), and writes nothing."""
    from profiles.backends.vllm import check_device_is_gpu

    launch = LaunchConfig(model="m", served_model_name="llama-3.1-8b", server_cmd=[str(tmp_path / "no-vllm"), "serve"])
    with pytest.raises(ProfilerError, match="--gpu H100-SXM-80GB: this machine's GPU is 'NVIDIA H200'"):
        run_profile(small_cfg(tmp_path / "p", None, endpoint=None, launch=launch, device_name="NVIDIA H200"))
    assert not (tmp_path / "p").exists()
    for gpu, name in (("H100-SXM-80GB", "NVIDIA H100 80GB HBM3"), ("H200-141GB", "NVIDIA H200"),
                      ("A100-80GB", "NVIDIA A100-SXM4-80GB"), ("L40S", "NVIDIA L40S"), ("H200-141GB", None)):
        check_device_is_gpu(gpu, name)  # the cards the catalog names, as their drivers name them; no GPU: no check
    with pytest.raises(ProfilerError, match="not the A100 that --gpu names"):
        check_device_is_gpu("A100-80GB", "NVIDIA H100 80GB HBM3")


def test_kv_capacity_parsing_errors():
    text = '# TYPE vllm:cache_config_info gauge\nvllm:cache_config_info{block_size="16",num_gpu_blocks="100"} 1.0\n'
    assert read_kv_capacity(text) == (100, 16)
    with pytest.raises(ProfilerError, match="no vllm:cache_config_info"):
        read_kv_capacity("# TYPE x gauge\nx 1.0\n", "http://h")


def test_kv_cache_full_stops_the_decode_dimension(tmp_path):
    """A point whose streams cannot all hold KV at once is skipped, and so is everything larger."""
    small_kv = replace(LAW, kv_capacity_tokens=3000, decode_alpha_ms=5.0, prefill_a_ms=5.0)
    with EmulatorFleet(small_kv, time_scale=0.2) as fleet:
        # Claim a large KV capacity so the grid keeps points the server cannot hold.
        cfg = small_cfg(tmp_path, fleet.urls[0], prefill_isl=(128,), prefill_batch=(1,), decode_batch=(1, 8, 16),
                        decode_context=(256, 512), kv_capacity_override=10**6, time_scale=0.2)
        summary = run_profile(cfg)
    d = summary.decode
    assert (1, 256) in d.measured and (1, 512) in d.measured
    assert any("never decoded together" in why for why in d.stop_reasons.values())
    assert (16, 512) in d.dominated and (16, 512) not in d.measured
    # both causes are named, the clock's too (found by hand at stop 52: at --time-scale 0.05 the message blamed a
    # full KV cache that held 28x the point's tokens; the client's delays were 20x longer on the emulated clock)
    why = next(w for w in d.stop_reasons.values() if "never decoded together" in w)
    assert "KV cache or max_num_seqs" in why and "client opened them too far apart" in why and "--time-scale 0.2" in why


def test_streams_that_never_overlap_are_told_apart_from_a_short_window():
    """decode_itl_s: no step shared by all streams is StreamsNeverTogether (the axis stops, not retried: an emulator
    run faster than its host measured steps 1.2-3.3x too long once retries made its streams overlap)."""
    from profiles.backends.vllm import ShortDecodeWindow, StreamsNeverTogether, decode_itl_s

    apart = [_stream(1.0, 0.010, 20, 1), _stream(2.0, 0.010, 20, 1)]  # the first ends at ~1.2 s, the second starts at 2 s
    with pytest.raises(StreamsNeverTogether, match="the 2 streams never decoded together"):
        decode_itl_s(apart, 2, 512, 16)
    barely = [_stream(1.0, 0.010, 20, 1), _stream(1.17, 0.010, 20, 1)]  # two shared steps: a short window, retried
    with pytest.raises(ShortDecodeWindow) as short:
        decode_itl_s(barely, 2, 512, 16)
    assert not isinstance(short.value, StreamsNeverTogether)


# --------------------------------------------------------------------------- issue 10/11 additions
def test_profile_of_a_jittery_server_always_loads(tmp_path):
    """A busy machine makes timings non-monotone (issue 11: the loader refused such a profile). The
    emulator's steps jitter by +-45% here (seeded, a fake of a loaded host); with one repeat per point
    the profiler must still write a profile its loader accepts: it re-measures a point that falls below
    the monotone floor and raises it to the floor if it stays below, keeping the spread in min/max."""
    from profiles import sweep

    with EmulatorFleet(LAW, time_scale=0.2) as fleet:
        fleet.servers[0].faults.step_jitter = 0.45
        fleet.servers[0].faults.jitter_seed = 7
        # 128 tokens a stream (small_cfg's 16 end in ~30 ms of wall time at this time scale): a batch's streams opened
        # up to ~0.2 s apart on a busy machine still decode together (at stop 56 a CI-like run with a third process
        # beside the two workers lost batches 4 and 8 to StreamsNeverTogether, the axis stopped there)
        run_profile(small_cfg(tmp_path, fleet.urls[0], time_scale=0.2, prefill_isl=(128, 256, 512, 1024), prefill_batch=(1, 2),
                              decode_batch=(1, 2, 4, 8), decode_context=(256, 512), decode_tokens=128))
    prof = load_profile(tmp_path)  # raises InputError if any point fell more than the loader's tolerance
    assert len(prof.prefill) == 8 and len(prof.decode) == 8
    for df, value, axes in ((prof.prefill, "ttft_ms", ("isl", "batch")), (prof.decode, "itl_ms", ("batch", "context_tokens"))):
        pts = {(int(r[axes[0]]), int(r[axes[1]])): float(r[value]) for _, r in df.iterrows()}
        for k, v in pts.items():
            assert v >= sweep.monotone_floor(k, pts) - 1e-3  # the CSV keeps 4 decimals
        assert (df[f"{value}_min"] <= df[f"{value}_max"]).all()


def test_monotone_floor_and_raise():
    from profiles import sweep

    done = {(128, 1): 10.0, (256, 1): 20.0, (128, 2): 12.0}
    assert sweep.monotone_floor((256, 2), done) == pytest.approx(0.9 * 20.0)  # max over both axes' predecessors
    assert sweep.monotone_floor((128, 4), done) == pytest.approx(0.9 * 12.0)
    assert sweep.monotone_floor((64, 1), done) == 0.0
    assert sweep.central_with_floor([5.0, 30.0, 6.0], 18.0) == (18.0, True)
    assert sweep.central_with_floor([19.0, 30.0, 25.0], 18.0) == (25.0, False)


def _stream(first: float, step: float, tokens: int, per_chunk: int, usage: int | None = None):
    from profiles.backends.vllm import StreamResult

    times, counts, n = [], [], 0
    while n < tokens:
        k = min(per_chunk, tokens - n) if n else 1
        n += k
        times.append(first + (n - 1) * step)
        counts.append(n)
    return StreamResult(sent=first - 0.05, token_times=times, completion_tokens=tokens if usage is None else usage, token_counts=counts)


def test_decode_time_counts_tokens_not_chunks():
    """Chunks of 4 tokens (a lagging frontend) must not make a 10 ms step look like 40 ms."""
    from profiles.backends.vllm import decode_itl_s

    rs = [_stream(1.0 + 0.001 * i, 0.010, 80, per_chunk=4) for i in range(8)]
    assert decode_itl_s(rs, 8, 512, 64) == pytest.approx(0.010, rel=1e-6)


def test_decode_time_falls_back_to_usage_when_chunks_do_not_list_their_tokens():
    """A server that merges tokens without listing them: (t_last - t_first) / (usage tokens - 1)."""
    from profiles.backends.vllm import StreamResult, decode_itl_s

    rs = []
    for i in range(4):
        times = [1.0 + i * 0.001 + 0.040 * j for j in range(20)]  # 20 chunks of 4 tokens, 10 ms a token
        rs.append(StreamResult(sent=0.9, token_times=times, completion_tokens=77))
    assert not rs[0].counts_exact
    assert decode_itl_s(rs, 4, 512, 64) == pytest.approx((0.040 * 19) / 76, rel=1e-6)


# The rate-sweep tests below assert what is sent and recorded (rows, counts, seeds, drawn lengths), never a latency
# against a bound: their emulated server runs 10x faster than real time (its other tests 5x), the emulated Poisson
# arrivals being most of their wall time. Their profile points are single-stream (batch 1), where the client's
# delays under load cannot cost a point (streams that never decoded together need a batch of two or more).
RATE_TS = 0.1


def test_rate_sweep_writes_per_request_rows_per_isl(tmp_path):
    with EmulatorFleet(LAW, time_scale=RATE_TS) as fleet:
        cfg = small_cfg(tmp_path, fleet.urls[0], prefill_isl=(128,), prefill_batch=(1,), decode_batch=(1,), decode_context=(256,),
                        time_scale=RATE_TS, rate_isls=(128, 256), rates_by_isl={128: (2.0, 4.0), 256: (1.0,)}, rate_requests=6,
                        rate_osl=8, rate_seed=3)
        summary = run_profile(cfg)
    import pandas as pd

    rows = pd.read_csv(tmp_path / "load_sweep.csv")
    assert sorted(rows.groupby(["isl", "rate_rps"]).size().to_dict().items()) == [((128, 2.0), 6), ((128, 4.0), 6), ((256, 1.0), 6)]
    assert (rows.tokens == 8).all() and (rows.ttft_ms > 0).all() and (rows.itl_ms > 0).all()
    assert {r["rate_rps"] for r in summary.goodput_rows} == {1.0, 2.0, 4.0} and "ttft_ms_p99" in summary.goodput_rows[0]
    # the i-th ISL's k-th rate draws seed rate_seed + 1000 i + k: the ISLs of one sweep do not share arrival patterns
    assert rows.groupby(["isl", "rate_rps"]).seed.first().to_dict() == {(128, 2.0): 3, (128, 4.0): 4, (256, 1.0): 1003}
    assert (rows.settle == 0).all()


def test_rate_sweep_settle_window_is_sent_first_and_kept_out_of_the_sample(tmp_path):
    """--rate-settle-s: each rate first sends ceil(rate x settle) requests of the same seeded Poisson stream, recorded
    with settle = 1 ahead of the sample's rows; goodput.csv's percentiles count the sample alone, and the bench's read
    (bench/fidelity.py) keeps the settle requests' arrivals for the replay but out of the measured percentiles."""
    import sys

    import pandas as pd

    with EmulatorFleet(LAW, time_scale=RATE_TS) as fleet:
        cfg = small_cfg(tmp_path, fleet.urls[0], prefill_isl=(128,), prefill_batch=(1,), decode_batch=(1,), decode_context=(256,),
                        time_scale=RATE_TS, rate_isls=(128,), rates_by_isl={128: (4.0,)}, rate_requests=10, rate_osl=8,
                        rate_seed=3, rate_settle_s=1.5, rate_warmup_s=0.0)
        summary = run_profile(cfg)
    rows = pd.read_csv(tmp_path / "load_sweep.csv").sort_values("sent_s")
    assert len(rows) == 16 and rows.settle.tolist() == [1] * 6 + [0] * 10  # ceil(4 x 1.5) = 6 settle requests first
    (g,) = summary.goodput_rows
    assert g["requests"] == 10
    sample = rows[rows.settle == 0]
    assert g["ttft_ms_p90"] == pytest.approx(float(sample.ttft_ms.quantile(0.9)), rel=1e-6)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from fidelity import read_load_sweep

    (p,) = read_load_sweep(tmp_path / "load_sweep.csv")
    assert p.n == 16 and p.in_sample is not None and p.in_sample.tolist() == [False] * 6 + [True] * 10
    assert list(p.sample_ttft_ms) == pytest.approx(sample.ttft_ms.tolist())


def _spread_sweep(tmp_path: Path, rate_osl: int, **spread: float):
    """A 40-request rate run at ISL 256 and 4 rps on one emulated replica with the given spread (rate_isl_scv /
    rate_osl_scv): load_sweep.csv's rows and the bench's read of it (bench/fidelity.py's read_load_sweep)."""
    import sys

    import pandas as pd

    with EmulatorFleet(LAW, time_scale=RATE_TS) as fleet:
        cfg = small_cfg(tmp_path, fleet.urls[0], prefill_isl=(128,), prefill_batch=(1,), decode_batch=(1,), decode_context=(256,),
                        time_scale=RATE_TS, rate_isls=(256,), rates_by_isl={256: (4.0,)}, rate_requests=40, rate_osl=rate_osl,
                        rate_seed=3, **spread)
        run_profile(cfg)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from fidelity import read_load_sweep

    (p,) = read_load_sweep(tmp_path / "load_sweep.csv")
    return pd.read_csv(tmp_path / "load_sweep.csv"), p


def test_rate_sweep_with_a_length_spread_draws_each_prompt_and_records_it(tmp_path):
    """--rate-isl-scv: each request's prompt is drawn (seeded) from the clipped log-normal of mean ISL
    (planner/planning/lengths.py), sent with that many tokens, and recorded (prompt_tokens, isl_scv) so that the
    under-load benches replay it; bench/fidelity.py reads the sample's spread back."""
    rows, p = _spread_sweep(tmp_path, 8, rate_isl_scv=0.6)
    assert len(rows) == 40 and (rows.isl == 256).all() and (rows.isl_scv == 0.6).all()
    x = rows.prompt_tokens.to_numpy(float)
    assert x.std() > 0.3 * x.mean() and 150 < x.mean() < 400 and x.min() >= 1
    assert p.prompts is not None and p.mean_isl == pytest.approx(x.mean()) and p.shape.isl_scv > 0.1


def test_rate_sweep_with_an_output_spread_draws_each_output_and_records_it(tmp_path):
    """--rate-osl-scv: each request's max_tokens (its output: the requests ignore EOS) is drawn (seeded, a generator
    of its own) from the log-normal of mean --rate-osl, the emulated server generates that many, and the rows say
    so (tokens, osl_scv); the prompts stay those of the ISL. The benches replay each request's own output."""
    rows, p = _spread_sweep(tmp_path, 16, rate_osl_scv=1.0)
    assert len(rows) == 40 and (rows.osl == 16).all() and (rows.osl_scv == 1.0).all() and (rows.prompt_tokens == 256).all()
    y = rows.tokens.to_numpy(float)
    assert y.std() > 0.4 * y.mean() and 8 < y.mean() < 32 and y.min() >= 1
    assert p.prompts is None and p.outputs is not None and (p.outputs == rows.sort_values("sent_s").tokens.to_numpy()).all()
    assert p.shape.osl_scv == pytest.approx(y.var() / y.mean() ** 2) and p.shape.isl_scv == 0


def test_rate_sweep_warms_up_at_each_isls_highest_and_lowest_rate_without_recording_it(tmp_path):
    """The warm-up requests (VllmRunConfig.rate_warmup_s) reach the server but not load_sweep.csv; run.yaml
    says how many were sent: at the highest rate ceil(4 rps x 1.5 s) = 6 at ISL 128, max(2, ceil(1 x 1.5)) = 2
    at 256 (its only rate); with rate_warmup_ends also at ISL 128's lowest rate, ceil(2 x 1.5) = 3."""
    import pandas as pd
    import yaml

    served = {}
    for warmup_s, ends, expected in ((0.0, True, 0), (1.5, False, 8), (1.5, True, 11)):
        out = tmp_path / f"w{warmup_s}-{ends}"
        with EmulatorFleet(LAW, time_scale=RATE_TS) as fleet:
            cfg = small_cfg(out, fleet.urls[0], prefill_isl=(128,), prefill_batch=(1,), decode_batch=(1,), decode_context=(256,),
                            time_scale=RATE_TS, rate_isls=(128, 256), rates_by_isl={128: (2.0, 4.0), 256: (1.0,)}, rate_requests=6,
                            rate_osl=8, rate_seed=3, rate_warmup_s=warmup_s, rate_warmup_ends=ends)
            summary = run_profile(cfg)
            served[(warmup_s, ends)] = _requests_served(fleet.urls[0])
        rows = pd.read_csv(out / "load_sweep.csv")
        assert len(rows) == 18 and summary.rate_warmup_requests == expected
        run = yaml.safe_load((out / "run.yaml").read_text())
        assert run["rate_warmup_requests"] == expected and run["rate_warmup_ends"] is ends
    # the same profile points and measured rates; the warm-up's requests on top
    assert served[(1.5, False)] - served[(0.0, True)] == 8 and served[(1.5, True)] - served[(0.0, True)] == 11


def test_each_prefill_point_is_sent_once_untimed_before_its_timed_repeats(tmp_path, monkeypatch):
    """VllmRunConfig.prefill_warmup: one untimed batch per prefill point, before its timed repeats (kernels
    compiled on a token count's first use would stall the first timed repeat); off, none. The warm-up is counted
    at VllmClient.warm_up (a spy around the real call), because timed repeats vary with re-measurement."""
    from profiles.backends.vllm import VllmClient

    real = VllmClient.warm_up
    for warm in (False, True):
        calls: list[tuple[int, int]] = []

        async def spy(self, isl, batch, calls=calls):
            calls.append((isl, batch))
            await real(self, isl, batch)

        monkeypatch.setattr(VllmClient, "warm_up", spy)
        out = tmp_path / f"w{warm}"
        with EmulatorFleet(LAW, time_scale=0.2) as fleet:
            cfg = small_cfg(out, fleet.urls[0], prefill_isl=(128, 256), prefill_batch=(1, 2), decode_batch=(1,),
                            decode_context=(256,), time_scale=0.2, prefill_warmup=warm)
            run_profile(cfg)
        assert len((out / "prefill.csv").read_text().splitlines()) == 5  # header + the 4 timed points
        assert sorted(calls) == ([(128, 1), (128, 2), (256, 1), (256, 2)] if warm else [])


def _requests_served(url: str) -> int:
    """Finished requests the (emulated) server counted, from its /metrics."""
    import urllib.request

    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("vllm:request_success_total")))


FAKE_API_SERVER = textwrap.dedent('''\
    #!{python}
    """FAKE `python -m vllm.entrypoints.openai.api_server` for tests: records its argv and the model
    folder it was given, then serves the emulator."""
    import argparse, json, shutil, sys
    from planner.perf.laws import VariantPerf
    from planner.simulate.emulator import serve_forever
    ap = argparse.ArgumentParser()
    ap.add_argument("--model"); ap.add_argument("--served-model-name"); ap.add_argument("--port", type=int); ap.add_argument("--host")
    ap.add_argument("--max-num-seqs", type=int); ap.add_argument("--max-num-batched-tokens", type=int)
    ap.add_argument("--max-model-len", type=int)
    a, _ = ap.parse_known_args()
    open("{argv_file}", "w").write(" ".join(sys.argv[1:]))
    shutil.copytree(a.model, "{copy_dir}")
    # vLLM 0.26's warning for a fused-MoE shape it has no tuned kernels for (verbatim but for the path)
    print("(EngineCore pid=935) WARNING 12-05 23:38:15 [fused_moe.py:1107] Using default MoE config. Performance might "
          "be sub-optimal! Config file not found at /site/vllm/model_executor/layers/fused_moe/configs/"
          "E=128,N=768,device_name=NVIDIA_H200,dtype=fp8_w8a8.json", file=sys.stderr, flush=True)
    perf = VariantPerf(model=a.served_model_name, gpu="H200-141GB", tp=1, source="measured", prefill_a_ms=5.0,
        prefill_b_ms_per_token=0.01, prefill_c_ms_per_token2=0.0, decode_alpha_ms=5.0, decode_beta_ms_per_seq=0.1,
        decode_gamma_ms_per_token=1e-4, kv_capacity_tokens=50000, kv_bytes_per_token=65536, kv_link_gb_s=50.0,
        max_num_seqs=a.max_num_seqs, max_batched_tokens=a.max_num_batched_tokens)
    serve_forever(perf, port=a.port, host=a.host, time_scale=0.2, model_name=a.served_model_name)
''')


def test_cli_dummy_weights_writes_the_model_folder_and_maps_fp8_flags(tmp_path):
    """`planner profile --backend vllm --dummy-weights --quantization fp8 --kv-cache-dtype fp8` (launch
    mode, a FAKE api_server that serves the emulator): the server gets a weightless MoE model folder
    written from the catalog, the fp8 flags, uniformly random MoE routing, and the profile lands in tp1-fp8-kvfp8/vllm
    with the dtypes of the precision contract in meta.yaml."""
    import json

    from typer.testing import CliRunner

    from planner.cli.main import app

    fake = tmp_path / "api_server"
    argv_file, copy_dir = tmp_path / "argv.txt", tmp_path / "model_copy"
    fake.write_text(FAKE_API_SERVER.format(python=sys.executable, argv_file=argv_file, copy_dir=copy_dir))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    root = tmp_path / "data"
    out = root / "qwen3-30b-a3b" / "H200-141GB" / "tp1-fp8-kvfp8" / "vllm"
    res = CliRunner().invoke(app, ["profile", "--backend", "vllm", "--dummy-weights", "--model", "qwen3-30b-a3b", "--gpu", "H200-141GB",
                                   "--out", str(out), "--server-cmd", str(fake), "--port", str(free_port()),
                                   "--quantization", "fp8", "--kv-cache-dtype", "fp8", "--max-model-len", "4096",
                                   "--prefill-isl", "128", "--prefill-batch", "1", "--decode-batch", "1", "--decode-context", "256",
                                   "--decode-tokens", "16", "--repeats", "1", "--time-scale", "0.2", "--no-progress",
                                   "--health-timeout-s", "60"])
    assert res.exit_code == 0, res.output
    argv = argv_file.read_text()
    for flag in ("--quantization fp8", "--kv-cache-dtype fp8", "--load-format dummy", "--max-model-len 4096"):
        assert flag in argv
    cfg = json.loads((copy_dir / "config.json").read_text())
    assert cfg["architectures"] == ["Qwen3MoeForCausalLM"] and cfg["num_experts"] == 128 and cfg["num_experts_per_tok"] == 8
    assert cfg["moe_intermediate_size"] == 768 and cfg["head_dim"] == 128 and cfg["vocab_size"] == 151936
    tok = json.loads((copy_dir / "tokenizer.json").read_text())
    assert len(tok["model"]["vocab"]) == 151936 and {t["id"] for t in tok["added_tokens"]} == {151643, 151645}
    meta = load_profile(out).meta
    assert (meta.weight_dtype, meta.kv_dtype, meta.backend, meta.engine_version) == ("fp8", "fp8", "vllm", "vllm 0.26.0")
    # a weightless MoE is served with uniformly random routing unless the environment says otherwise (rule V1), and
    # the profile records it with the flags
    assert meta.engine_env.get("VLLM_MOE_ROUTING_SIMULATION_STRATEGY") == "uniform_random"
    # the server said it ran untuned fused-MoE kernels: the profile plans its variant but is not calibrated on (V2b)
    assert meta.calibrate is False and "E=128,N=768,device_name=NVIDIA_H200,dtype=fp8_w8a8.json" in (meta.calibrate_note or "")


@pytest.mark.parametrize("log,expected", [
    ("", []),
    ("INFO Avg prompt throughput: 0.0 tokens/s\n", []),
    ("WARNING [fused_moe.py:1107] Using default MoE config. Performance might be sub-optimal! Config file not found at "
     "/s/configs/E=60,N=1408,device_name=NVIDIA_H200.json\n" * 2, ["E=60,N=1408,device_name=NVIDIA_H200.json"]),
    ("WARNING Using default MoE config.\n", ["Using default MoE config"]),
])
def test_untuned_kernel_configs_are_read_from_the_server_log(log, expected):
    """profiles.backends.vllm.untuned_kernel_configs: each missing tuned configuration once, by file name."""
    from profiles.backends.vllm import untuned_kernel_configs

    assert untuned_kernel_configs(log) == expected


def test_profile_dirs_follow_the_precision_contract():
    from planner.cli.profile import dtype_of, vllm_profile_dir

    assert dtype_of("fp8") == "fp8" and dtype_of("fp8_e4m3") == "fp8" and dtype_of(None) == "bf16" and dtype_of("auto") == "bf16"
    assert vllm_profile_dir(Path("d"), "m", "g", 2, "fp8", "bf16") == Path("d/m/g/tp2-fp8/vllm")
    assert vllm_profile_dir(Path("d"), "m", "g", 1, "bf16", "fp8") == Path("d/m/g/tp1-kvfp8/vllm")
    assert vllm_profile_dir(Path("d"), "m", "g", 1) == Path("d/m/g/tp1/vllm")


def test_a_decode_point_whose_streams_started_apart_is_measured_again_with_more_tokens():
    """A fake client (no server: it makes up the token times) whose second stream starts so late that the
    two decode together for only 3 steps (a loaded client opening its streams late): the point is measured
    again with decode_tokens more per stream and gives the step time of the attempt that had the window;
    when every attempt is short, it fails past DECODE_WINDOW_RETRIES with the advice to raise --decode-tokens."""
    import asyncio

    from profiles.backends import vllm as backend

    step_s = 0.01

    class StaggeredClient(backend.VllmClient):
        def __init__(self, late_below_tokens: int):
            super().__init__("http://fake", "m")
            self.late_below_tokens, self.calls = late_below_tokens, []

        async def stream(self, prompt_tokens: int, max_tokens: int) -> backend.StreamResult:
            self.calls.append(max_tokens)
            late = len(self.calls) % 2 == 0 and max_tokens < self.late_below_tokens
            lag = max_tokens - 4 if late else 0  # the two share 3 steps
            times = [(lag + i) * step_s for i in range(max_tokens)]
            return backend.StreamResult(sent=0.0, token_times=times, completion_tokens=max_tokens)

    stagger = 3  # ceil(2 x 248 / 8192) + 2 prefill steps, added by decode_ms
    ok = StaggeredClient(late_below_tokens=30)
    itl_ms, n = asyncio.run(ok.decode_ms(batch=2, context=256, decode_tokens=16, max_batched_tokens=8192))
    assert n == 2 and itl_ms == pytest.approx(step_s * 1e3)
    assert ok.calls == [16 + stagger] * 2 + [32 + stagger] * 2  # one retry, 16 more tokens per stream

    never = StaggeredClient(late_below_tokens=10**6)
    with pytest.raises(backend.ShortDecodeWindow, match="raise --decode-tokens"):
        asyncio.run(never.decode_ms(batch=2, context=256, decode_tokens=16, max_batched_tokens=8192))
    assert len(never.calls) == 2 * (backend.DECODE_WINDOW_RETRIES + 1)


def test_cli_profile_that_measures_nothing_is_exit_3_with_the_reason(tmp_path):
    """Plan h14 (stop 45): the launched MoE server came up after both of the run's deadlines, no point was measured,
    and the command ended on the loader's "meta.yaml: file not found" after printing "profile written". Now: exit 3
    (the run could not measure), saying that nothing was written and why, and where run.yaml records it."""
    import time

    from typer.testing import CliRunner

    from planner.cli.main import app

    with EmulatorFleet(LAW, time_scale=0.2) as fleet:
        res = CliRunner().invoke(app, ["profile", "--backend", "vllm", "--endpoint", fleet.urls[0], "--model", "llama-3.1-8b",
                                       "--gpu", "H100-SXM-80GB", "--tp", "1", "--out", str(tmp_path), "--prefill-isl", "128,512",
                                       "--decode-batch", "1,2", "--decode-context", "256,512", "--repeats", "1",
                                       "--time-scale", "0.2", "--no-progress",
                                       "--deadline-unix-s", f"{time.time() - 1:.0f}"])
    assert res.exit_code == 3, res.output
    text = res.output.replace("\n", " ")
    assert "no profile written" in text and "time budget spent (" in text and "KV capacity" not in text
    assert "file not found" not in text and (tmp_path / "run.yaml").is_file() and not (tmp_path / "meta.yaml").exists()


@pytest.mark.parametrize("extra, variant", [
    ([], "tp1/vllm"),
    (["--quantization", "fp8"], "tp1-fp8/vllm"),
    (["--kv-cache-dtype", "fp8"], "tp1-kvfp8/vllm"),
])
def test_profile_without_out_writes_under_the_bundled_profile_root(tmp_path, monkeypatch, extra, variant):
    """Found in QA: with no --out, `planner profile --backend vllm` wrote to planner/cli/data/<model>/<gpu>/tp<N>/vllm
    (a root taken relative to planner/cli/profile.py after it moved out of profiles/), where the planner reads no
    profile. Now the default is the bundled root, planner.perf.laws.DEFAULT_PROFILES_DIR: with that root pointed at a
    folder holding this variant's profile measured at other engine limits, the run resumes there and so is refused,
    exit 2 naming that meta.yaml, before the health wait (nothing listens at the endpoint)."""
    from typer.testing import CliRunner

    from planner.cli.main import app
    from planner.perf import laws
    from profiles.format import write_profile_dir

    monkeypatch.setattr(laws, "DEFAULT_PROFILES_DIR", tmp_path)
    d = tmp_path / "llama-3.1-8b" / "H100-SXM-80GB" / variant
    weight = "fp8" if "--quantization" in extra else "bf16"
    kv = "fp8" if "--kv-cache-dtype" in extra else "bf16"
    meta = {"model": "llama-3.1-8b", "gpu": "H100-SXM-80GB", "tp": 1, "engine": "vllm", "backend": "vllm",
            "kv_capacity_tokens": 100_000, "weight_dtype": weight, "kv_dtype": kv, "max_batched_tokens": 8192,
            "max_num_seqs": 256}
    write_profile_dir(d, meta, [{"isl": 128, "batch": 1, "ttft_ms": 10.0}],
                      [{"batch": 1, "context_tokens": 256, "itl_ms": 5.0}])
    r = CliRunner().invoke(app, ["profile", "--backend", "vllm", "--endpoint", f"http://127.0.0.1:{free_port()}",
                                 "--model", "llama-3.1-8b", "--gpu", "H100-SXM-80GB", "--max-num-seqs", "64",
                                 "--health-timeout-s", "0.3", "--no-progress", *extra])
    out = " ".join(r.output.split())
    assert r.exit_code == 2 and str(d / "meta.yaml") in out and "field 'max_num_seqs'" in out, r.output
