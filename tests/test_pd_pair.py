"""1P1D pair: the proxy and the measurement driver against two emulated vLLM servers, the pair-profile
format, the KV hand-off fit and its hook in the performance model, the P:D check, the launch commands.

The emulated servers (planner/simulate/emulator.py + kvconnector.py) are fakes of the EXTERNAL vLLM
engines and their KV connector (no GPU here); the proxy, the driver, the fit and the check are the
real code. Durations run on a compressed clock and are compared to the emulated truth with tolerances
that do not depend on machine speed: the hand-off's slope (bandwidth) is compared, not its intercept,
which also holds the HTTP hop's wall time divided by the time scale.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from planner.io.errors import InputError
from planner.perf.handoff import fit_handoff, fit_pair, handoff_laws
from planner.perf.pairprofile import iter_pair_profiles, load_pair_profile
from planner.perf.laws import KV_TRANSFER_FIXED_MS, PerfModel, VariantPerf
from planner.simulate.emulator import EmulatorFleet
from planner.simulate.kvconnector import pair_fleet
from profiles.backends.launch_env import NO_MULTICAST_ENV, server_env
from profiles.backends.pd_launch import pair_launch
from profiles.backends.pd_pair import PairRunConfig, run_pair
from profiles.backends.pd_proxy import PdProxy, ProxyConfig

pytestmark = pytest.mark.timeout(240)

REPO = Path(__file__).resolve().parents[1]
MODEL, GPU = "llama-3.1-8b", "H100-SXM-80GB"
LINK_GB_S, FIXED_MS = 2.0, 5.0  # the emulated connector's true law (slow link: transfer >> HTTP noise)
SCALE = 0.2
LOAD_REQUESTS = 12  # Poisson requests per rate and mode: at 1 req/s they span ~12 emulated s (~2.4 s wall)


@pytest.fixture(scope="module")
def perf() -> VariantPerf:
    vp = PerfModel.load().get(MODEL, GPU, 1)
    assert vp is not None
    return vp


@pytest.fixture(scope="module")
def pair_profile(perf, tmp_path_factory):
    """One driver run (NIXL-style hand-off) through the proxy against an emulated pair + a mixed instance: 2 requests
    at each of 3 ISLs for the hand-off, then LOAD_REQUESTS (12) at 1 and at 4 req/s through the pair and the mixed
    instance (~8 s). The load rows feed the P:D check: the pair's TTFT is ~3x the mixed instance's at both rates
    (~160 vs ~55 ms p50), plain in 12 requests."""
    out = tmp_path_factory.mktemp("pair") / MODEL / GPU / "pair-tp1-tp1"
    with pair_fleet(perf, perf, link_gb_s=LINK_GB_S, fixed_ms=FIXED_MS, time_scale=SCALE, mixed_perf=perf) as f:
        p, d, m = f.urls
        cfg = PairRunConfig(model=MODEL, gpu=GPU, out=out, prefill_url=p, decode_url=d, mixed_url=m, connector="nixl",
                            isls=(1024, 4096, 16384), repeats=2, rates=(1.0, 4.0), load_requests=LOAD_REQUESTS,
                            load_isl=1024, load_osl=32, time_scale=SCALE, backend="emulator")
        summary = run_pair(cfg)
        transfers = f.servers[1].kv_connector.transfers
    return out, summary, transfers


# --------------------------------------------------------------------------- the fit
def test_fit_recovers_known_bandwidth_and_latency_from_noisy_samples():
    rng = np.random.default_rng(7)
    isl = np.repeat([1024, 2048, 4096, 8192, 16384], 5)
    kvb = 131072
    true = 3.0 + isl * kvb / (25e9) * 1e3
    fit = fit_handoff(isl, true * (1 + 0.03 * rng.standard_normal(isl.size)), kvb)
    assert fit.link_gb_s == pytest.approx(25.0, rel=0.05)
    assert fit.fixed_ms == pytest.approx(3.0, abs=0.5)
    assert list(fit.table.isl) == [1024, 2048, 4096, 8192, 16384] and set(fit.table.n) == {5}
    assert fit.max_abs_rel_err < 0.05
    assert fit.predict_ms(8192) == pytest.approx(3.0 + 8192 * kvb / 25e9 * 1e3, rel=0.05)


def test_fit_is_non_negative():
    # time falling with isl: no negative bandwidth, the law is latency-bound (link = inf, slope 0)
    fit = fit_handoff([1000, 2000, 4000], [9.0, 8.0, 7.0], 1000)
    assert math.isinf(fit.link_gb_s) and fit.fixed_ms > 0
    # proportional data with a "negative" intercept in ordinary least squares: fixed clipped at 0
    fit = fit_handoff([1000, 2000, 4000], [0.5, 1.9, 4.2], 1000)
    assert fit.fixed_ms == 0.0 and 0 < fit.link_gb_s < math.inf
    with pytest.raises(ValueError):
        fit_handoff([], [], 1000)


# --------------------------------------------------------------------------- proxy + driver on emulators
def test_driver_writes_a_valid_pair_profile(pair_profile):
    out, summary, transfers = pair_profile
    prof = load_pair_profile(out)
    assert prof.meta.backend == "emulator" and prof.meta.connector == "NixlConnector"
    assert prof.meta.kv_bytes_per_token == 131072  # llama-3.1-8b: 32 layers x 8 KV heads x 128 x 2 (K,V) x 2 B
    h = prof.handoff
    assert len(h) == 6 and sorted(set(h.isl)) == [1024, 4096, 16384]
    # one transfer per measured request plus the warm-up, plus one per load request through the pair
    assert transfers == 6 + 1 + 2 * LOAD_REQUESTS
    # the split adds up, and each part is positive
    assert np.allclose(h.prefill_ms + h.kv_transfer_ms + h.first_decode_ms, h.ttft_ms, rtol=1e-3)
    assert (h.prefill_ms > 0).all() and (h.first_decode_ms > 0).all()
    # the connector's own histogram holds exactly the emulated law
    assert np.allclose(h.xfer_ms_connector, FIXED_MS + h.isl * 131072 / (LINK_GB_S * 1e9) * 1e3, rtol=1e-3)
    # the hand-off grows with the prompt (16x the tokens: >> the timer noise at this link)
    med = h.groupby("isl").kv_transfer_ms.median()
    assert med[16384] > 5 * med[1024]
    # load rows for both modes at both rates
    assert prof.load is not None and set(zip(prof.load["mode"], prof.load.rate_rps)) == {
        ("pd", 1.0), ("pd", 4.0), ("mixed", 1.0), ("mixed", 4.0)}
    assert (prof.load.ttft_ms_p90 >= prof.load.ttft_ms_p50).all()


def test_fit_on_measured_handoff_recovers_the_emulated_link(pair_profile):
    out, _, _ = pair_profile
    fit = fit_pair(load_pair_profile(out))
    assert fit.link_gb_s == pytest.approx(LINK_GB_S, rel=0.15)
    # the intercept holds the true fixed latency plus the second HTTP hop (wall / time scale): never less
    assert fit.fixed_ms >= FIXED_MS * 0.5
    assert fit.max_abs_rel_err < 0.15  # the goal: the hand-off model within 15% across ISL


def test_p2p_nccl_mode_routes_by_request_id(perf, tmp_path):
    """P2pNcclConnector style: no kv_transfer_params, the request id names both KV addresses."""
    with pair_fleet(perf, perf, link_gb_s=LINK_GB_S, fixed_ms=FIXED_MS, time_scale=SCALE) as f:
        p, d = f.urls
        cfg = PairRunConfig(model=MODEL, gpu=GPU, out=tmp_path / "p2p", prefill_url=p, decode_url=d, connector="p2p-nccl",
                            isls=(1024, 8192), repeats=1, time_scale=SCALE, backend="emulator")
        run_pair(cfg)
        assert f.servers[1].kv_connector.transfers == 3  # warm-up + 2
    prof = load_pair_profile(tmp_path / "p2p")
    assert prof.meta.connector == "P2pNcclConnector" and prof.load is None
    assert prof.handoff.set_index("isl").kv_transfer_ms[8192] > prof.handoff.set_index("isl").kv_transfer_ms[1024]


def test_proxy_reports_a_prefill_instance_without_kv_connector(perf):
    """A prefill instance started without --kv-transfer-config answers without kv_transfer_params: 502 naming the fix."""
    import asyncio

    with EmulatorFleet(perf, replicas=2, time_scale=SCALE) as f:
        p, d = f.urls

        async def go():
            proxy = PdProxy(ProxyConfig(p, d, "nixl"))
            await proxy.astart()
            try:
                async with httpx.AsyncClient() as c:
                    r = await c.post(proxy.url + "/v1/completions", json={"model": MODEL, "prompt": [1, 2, 3], "max_tokens": 4})
                    bad = await c.post(proxy.url + "/v1/completions", content=b"{not json")
                    health = await c.get(proxy.url + "/health")
                return r, bad, health
            finally:
                await proxy.astop()

        r, bad, health = asyncio.run(go())
    err = r.json()["error"]  # vLLM's ErrorResponse shape, as the instances answer
    assert r.status_code == 502 and err["code"] == 502 and "kv_transfer_params" in err["message"] and "kv-transfer-config" in err["message"]
    assert bad.status_code == 400 and bad.json()["error"]["code"] == 400
    assert health.status_code == 200


def test_proxy_config_needs_kv_addresses_for_p2p():
    with pytest.raises(ValueError, match="kv_addr"):
        ProxyConfig("http://a", "http://b", "p2p-nccl")


# --------------------------------------------------------------------------- pair-profile format
def test_pair_profile_bad_input_names_file_and_field(pair_profile, tmp_path):
    out, _, _ = pair_profile
    bad = tmp_path / MODEL / GPU / "pair-tp1-tp1"
    shutil.copytree(out, bad)
    h = pd.read_csv(bad / "handoff.csv")
    h.loc[2, "kv_transfer_ms"] = -1.0
    h.to_csv(bad / "handoff.csv", index=False)
    with pytest.raises(InputError) as e:
        load_pair_profile(bad)
    assert "handoff.csv" in str(e.value) and "kv_transfer_ms (line 4)" in str(e.value)
    shutil.copy(out / "handoff.csv", bad / "handoff.csv")
    meta = yaml.safe_load((bad / "meta.yaml").read_text())
    meta["prefill_tp"] = 2  # does not match the directory name
    (bad / "meta.yaml").write_text(yaml.safe_dump(meta))
    with pytest.raises(InputError, match="prefill_tp"):
        list(iter_pair_profiles(tmp_path))
    meta["prefill_tp"] = 0
    (bad / "meta.yaml").write_text(yaml.safe_dump(meta))
    with pytest.raises(InputError, match="prefill_tp"):
        load_pair_profile(bad)


# --------------------------------------------------------------------------- the perf-model hook
def test_perf_model_uses_the_fitted_handoff_where_a_pair_profile_exists(pair_profile, tmp_path):
    out, _, _ = pair_profile
    root = tmp_path / "profiles"
    shutil.copytree(REPO / "profiles" / "data" / MODEL / GPU / "tp1", root / MODEL / GPU / "tp1")
    base = PerfModel.load(profiles_dir=root)
    before = base.get(MODEL, GPU, 1)
    assert before.kv_fixed_ms == KV_TRANSFER_FIXED_MS and handoff_laws(root) == {}
    shutil.copytree(out, root / MODEL / GPU / "pair-tp1-tp1")
    pm = PerfModel.load(profiles_dir=root)
    fit = fit_pair(load_pair_profile(out))
    assert set(handoff_laws(root)) == {(MODEL, GPU, 1)}
    vp = pm.get(MODEL, GPU, 1)
    assert vp.kv_link_gb_s == pytest.approx(fit.link_gb_s) and vp.kv_fixed_ms == pytest.approx(fit.fixed_ms)
    for isl in (1024, 16384):
        assert vp.kv_transfer_ms(isl) == pytest.approx(float(fit.predict_ms(isl)), rel=1e-9)
    # the laws of the engine itself are untouched; other variants keep the formula
    assert vp.prefill_ms(2048) == before.prefill_ms(2048) and vp.decode_step_ms(8, 2048) == before.decode_step_ms(8, 2048)
    assert pm.get(MODEL, "H200-141GB", 1).kv_fixed_ms == KV_TRANSFER_FIXED_MS
    # a profile that counted twice the bytes per token fits twice the link; the model, which charges its
    # own bytes per token, keeps the measured times
    meta_path = root / MODEL / GPU / "pair-tp1-tp1" / "meta.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    meta["kv_bytes_per_token"] *= 2
    meta_path.write_text(yaml.safe_dump(meta))
    assert fit_pair(load_pair_profile(meta_path.parent)).link_gb_s == pytest.approx(2 * fit.link_gb_s)
    vp2 = PerfModel.load(profiles_dir=root).get(MODEL, GPU, 1)
    assert vp2.kv_transfer_ms(4096) == pytest.approx(vp.kv_transfer_ms(4096), rel=1e-9)


# --------------------------------------------------------------------------- the P:D check
def test_pd_check_compares_planner_with_the_measured_pair(pair_profile):
    out, _, _ = pair_profile
    sys.path.insert(0, str(REPO / "bench"))
    import pd_check

    res = pd_check.run(out, None)
    ho = res["handoff"]
    assert list(ho.isl) == [1024, 4096, 16384]
    # the catalog's 50 GB/s is 25x the emulated link: the prior misses badly, the fit does not
    assert res["handoff_prior_max_err"] > 0.8 and res["handoff_fit_max_err"] < 0.15
    lt = res["load"]
    assert len(lt) == 2 * 2 * 3 and np.isfinite(lt.ttft_pred_ms).all() and np.isfinite(lt.itl_pred_ms).all()
    # the pair's predicted TTFT carries the fitted hand-off: above the mixed replica's at the same load
    pd_rows, mx_rows = lt[lt["mode"] == "pd"], lt[lt["mode"] == "mixed"]
    assert (pd_rows.ttft_pred_ms.to_numpy() > mx_rows.ttft_pred_ms.to_numpy()).all()
    dc = res["decisions"]
    assert len(dc) == 2 * 3 * 2 and res["decision_agree"].endswith("/12")
    assert set(dc.predicted_lower) <= {"pd", "mixed", "tie"}
    # TTFT: the pair pays the hand-off (hundreds of ms on this link), so the planner says mixed is lower at every
    # rate and percentile, and the measured medians agree (a tie allowed: on a busy machine one wall-clock point came
    # within the 5% tie band). The measured p90 / p99 of 12 requests per rate are their second-largest and largest
    # wall-clock latencies: one CPU stall of a busy machine decides them (a CI run under two busy loops measured
    # the pair below mixed at 4 req/s there), so they are only required to be measured.
    ttft = dc[dc.metric == "ttft"]
    assert set(ttft.predicted_lower) == {"mixed"}
    median = ttft[ttft.q == 50]
    assert len(median) == 2 and "mixed" in set(median.measured_lower) and "pd" not in set(median.measured_lower)
    assert set(ttft.measured_lower) <= {"pd", "mixed", "tie"} and len(ttft) == 2 * 3


def test_pd_check_cli_prints_result_line(pair_profile, capsys):
    out, _, _ = pair_profile
    sys.path.insert(0, str(REPO / "bench"))
    import pd_check

    assert pd_check.main(["--pair", str(out)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("RESULT handoff_fit_max_err=") and "decision_agree=" in last
    assert pd_check.main(["--pair", str(out.parent / "nope")]) == 2


# --------------------------------------------------------------------------- launch commands and environment
def test_server_env_keeps_nvlink_multicast_off_whatever_the_caller_sets():
    env = server_env({"CUDA_VISIBLE_DEVICES": "2,3", "NCCL_NVLS_ENABLE": "1"},
                     base={"PATH": "/bin", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "0", "HF_HUB_OFFLINE": "0"})
    assert {k: env[k] for k in NO_MULTICAST_ENV} == NO_MULTICAST_ENV
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3" and env["PATH"] == "/bin"
    assert env["HF_HUB_OFFLINE"] == "0"  # an offline-bundle default the caller overrode stays overridden
    assert env["VLLM_USE_FLASHINFER_SAMPLER"] == "0"


def test_managed_server_launches_with_tp_flag_and_that_environment(tmp_path):
    """The launched process (a stand-in script, not vLLM) sees --tensor-parallel-size and the env."""
    from profiles.backends.vllm import LaunchConfig, ManagedServer

    dump = tmp_path / "seen.json"
    script = ("import json, os, sys; json.dump({'argv': sys.argv[1:], 'env': {k: os.environ.get(k) for k in "
              f"['NCCL_NVLS_ENABLE', 'NVSHMEM_DISABLE_NVLS', 'CUDA_VISIBLE_DEVICES']}}}}, open({str(dump)!r}, 'w'))")
    cfg = LaunchConfig(model="m", served_model_name="m", tp=4, server_cmd=[sys.executable, "-c", script],
                       env={"CUDA_VISIBLE_DEVICES": "0,1,2,3"})
    srv = ManagedServer(cfg, tmp_path / "server.log").start()
    srv.proc.wait(60)
    srv.stop()
    seen = json.loads(dump.read_text())
    i = seen["argv"].index("--tensor-parallel-size")
    assert seen["argv"][i + 1] == "4"
    assert seen["env"] == {"NCCL_NVLS_ENABLE": "0", "NVSHMEM_DISABLE_NVLS": "1", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}


def test_pair_launch_commands():
    pl = pair_launch("/tmp/models/x", "x", prefill_gpus=[0, 1], decode_gpus=[2])
    assert pl.prefill.tp == 2 and pl.decode.tp == 1
    assert pl.prefill.env["CUDA_VISIBLE_DEVICES"] == "0,1" and pl.decode.env["CUDA_VISIBLE_DEVICES"] == "2"
    kv = [json.loads(c.extra_args[c.extra_args.index("--kv-transfer-config") + 1]) for c in (pl.prefill, pl.decode)]
    assert [k["kv_role"] for k in kv] == ["kv_producer", "kv_consumer"]
    assert {k["kv_connector"] for k in kv} == {"P2pNcclConnector"}
    assert pl.prefill_kv_addr == "127.0.0.1:" + kv[0]["kv_port"] and pl.decode_kv_addr == "127.0.0.1:" + kv[1]["kv_port"]
    lines = pl.shell()
    assert all("NCCL_NVLS_ENABLE=0" in line and "--load-format dummy" in line for line in lines)
    nixl = pair_launch("m", "m", prefill_gpus=[0], decode_gpus=[1], connector="nixl")
    assert nixl.prefill_kv_addr is None and "NixlConnector" in " ".join(nixl.decode.extra_args)
    assert nixl.prefill.env["VLLM_NIXL_SIDE_CHANNEL_PORT"] != nixl.decode.env["VLLM_NIXL_SIDE_CHANNEL_PORT"]
    with pytest.raises(ValueError, match="own GPUs"):
        pair_launch("m", "m", prefill_gpus=[0], decode_gpus=[0])


def test_multi_gpu_plan_lists_every_remaining_run(capsys):
    sys.path.insert(0, str(REPO / "profiles" / "runs"))
    import multi_gpu_plan

    runs = multi_gpu_plan.plan()
    names = " ".join(r.name for r in runs)
    for want in ("llama-3.1-70b tp2", "llama-3.1-70b tp4", "qwen3-32b tp2", "all-reduce", "1P1D pair"):
        assert want in names
    assert {r.kind for r in runs} == {"nvidia-h200-x2", "nvidia-h200-x4"}
    assert all(r.wall_min > 0 and r.gpu_min == pytest.approx(r.wall_min * r.gpus) for r in runs)
    # a bigger model on the same tp takes longer (the planner's own laws drive the estimate)
    by = {r.name.split(" (")[0]: r for r in runs}
    assert by["llama-3.1-70b tp2 profile"].wall_min > by["qwen3-32b tp2 profile"].wall_min
    cmds = "\n".join(c for r in runs for c in r.commands)
    assert "--tp 4" in cmds and "--tp 2" in cmds and "torchrun --nproc-per-node 4" in cmds and "NCCL_NVLS_ENABLE=0" in cmds
    assert multi_gpu_plan.main([]) == 0
    assert capsys.readouterr().out.count("RESULT runs=5") == 1


# a KV hand-off of n > 1 or a list of prompts is refused with vLLM's 400 (kvconnector.py's module doc). Found in QA: the
# producer answered n = 2 without kv_transfer_params (the proxy then failed) and the consumer prefilled the prompt
# itself with no transfer. (server: 0 producer, 1 consumer; body; X-Request-Id; status)
P2P_ID = "___prefill_addr_127.0.0.1:1___decode_addr_127.0.0.1:2_0123abcd"
HANDOFF_N = [
    (0, {"n": 2, "kv_transfer_params": {"do_remote_decode": True}}, None, 400),
    (1, {"n": 2, "kv_transfer_params": {"do_remote_prefill": True}}, None, 400),
    (1, {"n": 3}, P2P_ID, 400),
    (1, {"prompt": [[1] * 8, [2] * 8], "kv_transfer_params": {"do_remote_prefill": True}}, None, 400),
    (0, {"n": 2}, None, 200),  # no hand-off: served on either instance
    (1, {"n": 2, "kv_transfer_params": {"do_remote_prefill": True}, "stream": True}, None, 400),
    (1, {"kv_transfer_params": {"do_remote_prefill": True}}, None, 200),  # n = 1: the hand-off as before
]


@pytest.mark.parametrize("server, body, request_id, status", HANDOFF_N, ids=[str(c[:3])[:70] for c in HANDOFF_N])
def test_a_kv_handoff_of_several_sequences_is_a_400(perf, server, body, request_id, status):
    with pair_fleet(perf, perf, link_gb_s=LINK_GB_S, fixed_ms=FIXED_MS, time_scale=SCALE) as f:
        headers = {"X-Request-Id": request_id} if request_id else {}
        r = httpx.post(f.urls[server] + "/v1/completions", json={"prompt": [1] * 64, "max_tokens": 2, **body},
                       headers=headers, timeout=30)
        assert r.status_code == status, r.text
        if status == 400:
            assert r.json()["error"]["param"] == "n" and "n = 1" in r.json()["error"]["message"], r.text
            assert f.servers[1].kv_connector.transfers == 0
