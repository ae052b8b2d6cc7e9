"""`planner profile rates DIR`: the capacity model's saturation rate of one replica with a profile's laws, and a load
sweep's rates as shares of it (planner/planning/saturation.py). Plan h9 (stop 44) chose its rates by hand from plan
h4's profile of the held-out mistral-nemo-12b on the H100 (20.54 req/s at ISL 1,024, 5.01 at 4,096) and measured
20.71 at ISL 1,024: the command must give those numbers back, and refuse bad input before any fit."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from planner.cli.main import app
from planner.io.catalog import Catalog
from planner.perf.laws import fit_profile, quiet_extrapolation
from planner.perf.profiledata import load_profile
from planner.planning import capacity
from planner.planning.saturation import saturation_rps

REPO = Path(__file__).resolve().parents[1]
H4 = REPO / "profiles/runs/2026-12-06-h4/mistral-nemo-12b/H100-SXM-80GB/tp1"  # its vllm/ profile is found below it
BYO = REPO / "examples/byo-model/catalog"


def test_the_rates_are_shares_of_the_models_own_saturation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANNER_CATALOG", str(BYO))
    res = CliRunner().invoke(app, ["profile", "rates", str(H4), "--shares", "0.5,1.2"])
    assert res.exit_code == 0, res.output
    line = res.output.strip().splitlines()[-1]
    # read as a shell reads it when pasted into `planner profile ...` (found in QA: unquoted, the ';' between the
    # ISLs ended the command there, the second ISL's rates run as a command)
    words = shlex.shlex(line, posix=True, punctuation_chars=True)
    words.whitespace_split = True
    flag, value = list(words)
    assert flag == "--rates-by-isl"
    by_isl = {int(k): [float(x) for x in v.split(",")] for k, v in (p.split("=") for p in value.split(";"))}
    assert set(by_isl) == {1024, 4096}
    assert str(H4 / "vllm") in res.output.replace("\n", "")  # the profile the planner uses, said
    assert by_isl[1024][1] == pytest.approx(1.2 * 20.54, rel=0.005) and by_isl[4096][0] == pytest.approx(0.5 * 5.01, rel=0.005)


def test_just_below_the_saturation_the_model_is_finite_and_just_above_it_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the bisection finds: the closed form's latency is finite and the engine's limits hold a hair below the
    returned rate, and they fail a hair above it."""
    monkeypatch.setenv("PLANNER_CATALOG", str(BYO))
    with quiet_extrapolation():
        perf, _, _ = fit_profile(load_profile(H4 / "vllm"), Catalog.load())
        for isl in (1024.0, 4096.0):
            sat = saturation_rps(perf, "mixed", isl, 128.0, 90.0)
            below = capacity.latency(perf, "mixed", isl, 128.0, 0.999 * sat, 90.0)
            above = capacity.latency(perf, "mixed", isl, 128.0, 1.001 * sat, 90.0)
            kv_above = capacity.kv_batch(above, isl, 128.0, 90.0) * capacity.kv_reserve_tokens(isl, 128.0)
            assert below.ttft_ms < float("inf") and below.itl_ms < float("inf")
            assert (above.ttft_ms == float("inf") or above.itl_ms == float("inf") or above.batch > perf.max_num_seqs
                    or kv_above > perf.kv_capacity_tokens)


@pytest.mark.parametrize(("args", "says"), [
    (["/nonexistent"], "/nonexistent/meta.yaml"),
    ([str(H4), "--isl", "abc"], "isl"),
    ([str(H4), "--isl", "0"], "isl"),
    ([str(H4), "--shares", "0,1"], "--shares"),
    ([str(H4), "--shares", "x"], "--shares"),
])
def test_bad_input_is_exit_2_naming_what(args: list[str], says: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANNER_CATALOG", str(BYO))
    res = CliRunner().invoke(app, ["profile", "rates", *args])
    assert res.exit_code == 2 and says in res.output, res.output
    assert "Traceback" not in res.output


def test_a_model_missing_from_the_catalog_is_exit_2_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLANNER_CATALOG", raising=False)
    res = CliRunner().invoke(app, ["profile", "rates", str(H4)])
    assert res.exit_code == 2 and "mistral-nemo-12b" in res.output, res.output


def test_a_profile_of_a_gpu_or_model_missing_from_the_catalog_names_its_meta_yaml(tmp_path: Path) -> None:
    """Found by hand: a meta.yaml of gpu H100-SXM-8GB (a typo) was blamed on profiles/gpus.yaml, field 'H100-SXM-8GB';
    the user's file and field are its meta.yaml's 'gpu' (or 'model'), as `planner solve --profiles` says."""
    import shutil

    import yaml

    for field, typo in (("gpu", "H100-SXM-8GB"), ("model", "llama-3.1-8bx")):
        d = tmp_path / field
        shutil.copytree(REPO / "profiles/data/llama-3.1-8b/H100-SXM-80GB/tp1/vllm", d)
        meta = yaml.safe_load((d / "meta.yaml").read_text())
        (d / "meta.yaml").write_text(yaml.safe_dump({**meta, field: typo}))
        res = CliRunner().invoke(app, ["profile", "rates", str(d)])
        out = " ".join(res.output.split())
        assert res.exit_code == 2 and f"{d / 'meta.yaml'}: field '{field}'" in out and typo in out, res.output


def test_a_variant_by_name_gets_the_laws_the_planner_uses() -> None:
    """--model / --gpu instead of a directory: the planner's laws for the variant. A bundled vLLM profile gives the same
    rates as its directory; an unprofiled variant is planned from the roofline prior and says so; one that cannot run is
    exit 3."""
    run = CliRunner()
    by_dir = run.invoke(app, ["profile", "rates", str(REPO / "profiles/data/llama-3.1-8b/H100-SXM-80GB/tp1")])
    by_name = run.invoke(app, ["profile", "rates", "--model", "llama-3.1-8b", "--gpu", "H100-SXM-80GB"])
    assert by_dir.exit_code == 0 and by_name.exit_code == 0, by_dir.output + by_name.output
    assert by_dir.output.strip().splitlines()[-1] == by_name.output.strip().splitlines()[-1]
    assert "measured-vllm" in by_name.output
    prior = run.invoke(app, ["profile", "rates", "--model", "qwen3-32b", "--gpu", "A100-80GB", "--tp", "2"])
    assert prior.exit_code == 0 and "laws from prior" in prior.output, prior.output
    too_big = run.invoke(app, ["profile", "rates", "--model", "llama-3.1-70b", "--gpu", "L40S"])
    assert too_big.exit_code == 3 and "cannot run" in too_big.output, too_big.output


@pytest.mark.parametrize("args", [[], [str(H4), "--model", "llama-3.1-8b", "--gpu", "H100-SXM-80GB"],
                                  ["--model", "llama-3.1-8b"], ["--model", "llama-3.1-8b", "--gpu", "H100-SXM-80GB",
                                                                "--weight-dtype", "int4"]])
def test_neither_or_both_sources_or_a_bad_dtype_is_exit_2(args: list[str]) -> None:
    res = CliRunner().invoke(app, ["profile", "rates", *args])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output


@pytest.mark.parametrize(("args", "says"), [
    (["--tp", "2"], ("--tp", "is tp 1", "got 2")),
    (["--weight-dtype", "fp8"], ("--weight-dtype", "is weight-dtype bf16", "got fp8")),
    (["--kv-dtype", "fp8"], ("--kv-dtype", "is kv-dtype bf16", "got fp8")),
])
def test_a_directory_with_another_variants_tp_or_dtype_is_exit_2(args: list[str], says: tuple[str, ...],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by hand: `planner profile rates DIR --tp 2` on a tp1 profile printed tp1's rates, exit 0 (--tp, like the
    dtypes, picks a variant with --model; a directory is its own variant). The directory's own values still pass."""
    monkeypatch.setenv("PLANNER_CATALOG", str(BYO))
    res = CliRunner().invoke(app, ["profile", "rates", str(H4), *args])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    out = " ".join(res.output.split())
    assert all(s in out for s in says), out
    own = CliRunner().invoke(app, ["profile", "rates", str(H4), "--tp", "1", "--kv-dtype", "bf16", "--shares", "1"])
    assert own.exit_code == 0, own.output


def test_the_profiler_sends_the_shares_of_the_planners_saturation_rate(tmp_path: Path) -> None:
    """`planner profile --rate-shares`: the rate sweep's rates are the shares of the saturation rate the planner's
    laws predict for the variant, computed before the run (the same as `planner profile rates --model`). Against the
    emulated vLLM server (planner.simulate.emulator: a real GPU is an external system here)."""
    import pandas as pd

    from planner.cli.profile import rates_from_shares, saturation_by_isl
    from planner.perf.laws import PerfModel
    from planner.simulate.emulator import EmulatorFleet

    law = PerfModel.load().get("llama-3.1-8b", "H100-SXM-80GB", 1)
    assert law is not None
    with quiet_extrapolation():
        want = rates_from_shares(saturation_by_isl(law, (128,), 16), (0.03, 0.06))[128]
    with EmulatorFleet(law, time_scale=0.2) as fleet:
        res = CliRunner().invoke(app, ["profile", "--backend", "vllm", "--endpoint", fleet.urls[0], "--model", "llama-3.1-8b",
                                       "--gpu", "H100-SXM-80GB", "--out", str(tmp_path), "--prefill-isl", "128",
                                       "--prefill-batch", "1", "--decode-batch", "1", "--decode-context", "256",
                                       "--decode-tokens", "16", "--repeats", "1", "--time-scale", "0.2", "--no-progress",
                                       "--rate-shares", "0.03,0.06", "--rate-isl", "128", "--rate-osl", "16",
                                       "--rate-requests", "8", "--rate-warmup-s", "0"])
    assert res.exit_code == 0, res.output
    assert f"--rates-by-isl 128={want[0]:g},{want[1]:g}" in res.output.replace("\n", "")
    rows = pd.read_csv(tmp_path / "load_sweep.csv")
    assert sorted(rows.rate_rps.unique()) == pytest.approx(sorted(want))


@pytest.mark.parametrize(("extra", "says"), [
    (["--rate-shares", "0.5", "--rates", "2"], "one way"),
    (["--rate-shares", "0,1"], "shares"),
])
def test_rate_shares_with_other_rates_or_bad_shares_is_exit_2_before_any_work(extra: list[str], says: str, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["profile", "--backend", "vllm", "--endpoint", "http://127.0.0.1:9", "--model",
                                   "llama-3.1-8b", "--gpu", "H100-SXM-80GB", "--out", str(tmp_path), *extra])
    assert res.exit_code == 2 and says in res.output, res.output
    assert not any(tmp_path.iterdir())  # nothing written, no server contacted


@pytest.mark.parametrize(("keep_prefill", "keep_decode", "file", "field"), [
    ("isl == 512 and batch == 1", None, "prefill.csv", "isl"),                     # one prompt-token total
    (None, "batch == 8", "decode.csv", "batch"),                                   # one decode batch size
    (None, "context_tokens == 512", "decode.csv", "context_tokens"),               # one decode context
])
def test_a_profile_whose_points_cannot_tell_the_laws_terms_apart_is_exit_2(
        keep_prefill: str | None, keep_decode: str | None, file: str, field: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A load-only run's one-point grid (plans h6-h13 write one beside their load_sweep.csv) fitted a prompt cost of
    0 ms per token and the capacity model divided by it (a ZeroDivisionError traceback at stop 45): the command now
    refuses such a profile before fitting (planner.io.validate.check_laws_identifiable), naming the file, the axis and
    the flag that adds points."""
    import shutil

    import pandas as pd

    monkeypatch.setenv("PLANNER_CATALOG", str(BYO))
    prof = tmp_path / "prof"
    shutil.copytree(H4 / "vllm", prof)
    for name, query in (("prefill.csv", keep_prefill), ("decode.csv", keep_decode)):
        if query is not None:
            df = pd.read_csv(prof / name)
            df.query(query).to_csv(prof / name, index=False)
    res = CliRunner().invoke(app, ["profile", "rates", str(prof)])
    assert res.exit_code == 2, res.output
    assert f"{prof / file}" in res.output.replace("\n", "") and f"field '{field}'" in res.output
    assert "Traceback" not in res.output


def test_the_default_isls_beyond_the_context_are_left_out_with_a_note() -> None:
    """llama-2-70b takes 4,096 tokens: the default --isl 1024,4096 keeps 1,024 and says why 4,096 went (found by hand at
    stop 51: a rate for 4,096-token prompts plus 128 outputs was printed)."""
    from typer.testing import CliRunner

    from planner.cli.main import app

    r = CliRunner().invoke(app, ["profile", "rates", "--model", "llama-2-70b", "--gpu", "H100-SXM-80GB", "--tp", "2"])
    assert r.exit_code == 0, r.output
    assert "ISL 4,096 left out" in r.output and "--rates-by-isl 1024=" in r.output and "4096=" not in r.output


def test_isls_beyond_the_profiles_measured_range_are_said() -> None:
    """Found by hand at stop 56 (a helper): `profile rates DIR` gave a saturation rate at ISL 4,096 for a profile
    measured to ISL 2,048 with no word, where `planner solve` notes an extrapolated law. The laws' search stays quiet;
    the ISLs past the measured prompts (or whose context passes the measured contexts) are said by name."""
    d = Path(__file__).resolve().parents[1] / "profiles" / "data" / "llama-3.1-8b" / "H100-SXM-80GB" / "tp1"
    res = CliRunner().invoke(app, ["profile", "rates", str(d), "--isl", "1024,8192,32768"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "note: ISL 32,768 beyond the measured range (prompts to 16,384 tokens" in text, text
    res = CliRunner().invoke(app, ["profile", "rates", str(d), "--isl", "1024,8192"])
    assert res.exit_code == 0 and "beyond the measured range" not in " ".join(res.output.split()), res.output
