"""`planner profile show` and the GPU profiles committed under profiles/data (measured with the torch
backend on real H100 and H200 machines): they load, fit, and the planner uses them as measured laws."""

from __future__ import annotations

from pathlib import Path

import pytest

from profiles.show import decode_law_ms, fit_profile_dir, law_lines, prefill_law_ms

DATA = Path(__file__).resolve().parents[1] / "profiles" / "data"
GPU_PROFILES = [DATA / "llama-3.1-8b" / "H100-SXM-80GB" / "tp1", DATA / "llama-3.1-8b" / "H200-141GB" / "tp1",
                DATA / "qwen3-32b" / "H200-141GB" / "tp1"]


@pytest.mark.parametrize("d", GPU_PROFILES, ids=lambda d: "/".join(d.parts[-3:]))
def test_gpu_profiles_load_and_fit(d):
    fit = fit_profile_dir(d, own=True)  # DIR's own (torch) profile, not its vllm/ one
    m = fit.profile.meta
    assert m.backend == "torch" and m.device_name.startswith("NVIDIA H")
    assert ("H200" in m.device_name) == ("H200" in m.gpu)  # the card that measured it is the one it names
    # Full default grids where memory allows, fits within a few percent at the median.
    assert len(fit.prefill_points) >= 31 and len(fit.decode_points) >= 35
    assert fit.prefill_report.median_rel_err < 0.05 and fit.decode_report.median_rel_err < 0.05
    assert all(c >= 0 for c in fit.prefill_coef + fit.decode_coef)
    # residual column = (fit - measured) / measured, recomputed from the laws
    r = fit.prefill_points.iloc[-1]
    assert r.rel_err == pytest.approx((prefill_law_ms(fit.prefill_coef, r.isl, r.batch) - r.ttft_ms) / r.ttft_ms)
    r = fit.decode_points.iloc[0]
    assert r.fit_ms == pytest.approx(decode_law_ms(fit.decode_coef, r.batch, r.context_tokens))


def test_h200_decodes_faster_than_h100_at_batch_one():
    """Decode at small batch is bound by HBM bandwidth: 4.8 vs 3.35 TB/s should show (measured data)."""
    h100 = fit_profile_dir(GPU_PROFILES[0], own=True).decode_points
    h200 = fit_profile_dir(GPU_PROFILES[1], own=True).decode_points
    a = h100[(h100.batch == 1) & (h100.context_tokens == 512)].itl_ms.iloc[0]
    b = h200[(h200.batch == 1) & (h200.context_tokens == 512)].itl_ms.iloc[0]
    assert 1.1 < a / b < 3.35 / 4.8 * 2


def _without_h100_vllm(p) -> bool:
    """Leave out the H100 vLLM profiles (plan h1's, bundled at stop 37): the H100 variants are then torch-only, as
    they were before, the case of a variant only the torch reference decoder measured."""
    return p.meta.gpu == "H100-SXM-80GB" and p.meta.backend == "vllm"


def _copy_without_h100_vllm(tmp_path: Path) -> Path:
    """A copy of profiles/data less the H100 vLLM profiles (the same case as `_without_h100_vllm`, for the commands
    that take a profile root)."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(DATA, root)
    for d in root.glob("*/H100-SXM-80GB/*/vllm"):
        shutil.rmtree(d)
    return root


@pytest.mark.parametrize("verdict", ["prior", "torch"])
def test_planner_uses_vllm_profiles_and_part_d_decides_where_only_torch_measured(tmp_path, monkeypatch, verdict):
    """The H200 and H100 variants have vLLM profiles beside the torch ones: the planner uses vLLM's. A variant with only
    the torch reference's (the H100 one, its vLLM profile left out) is planned as part D of bench/calibrate_prior.py
    decides (planner.perf.laws.TORCH_ONLY_LAWS; "torch" at stops 41-42, "prior" since stop 43): from the vLLM-calibrated prior, which predicts
    it faster than the torch reference decoder measured it, as vLLM's kernels ran on the H200 (0.65-0.88x) and the
    H100 (0.78-0.93x), or from its torch laws; `planner profile show` says which."""
    from planner.perf.laws import PerfModel

    monkeypatch.setattr("planner.perf.laws.TORCH_ONLY_LAWS", verdict)
    pm = PerfModel.load()
    for model, gpu in (("llama-3.1-8b", "H200-141GB"), ("qwen3-32b", "H200-141GB"), ("llama-3.1-8b", "H100-SXM-80GB")):
        vp = pm.get(model, gpu, 1)
        assert vp.law_source == "measured-vllm" and vp.kv_capacity_tokens > 100_000
    pm = PerfModel.load(leave_out=_without_h100_vllm)
    vp = pm.get("llama-3.1-8b", "H100-SXM-80GB", 1)
    assert pm.alternatives[("llama-3.1-8b", "H100-SXM-80GB", 1, "bf16", "bf16")] == ["measured-torch"]
    torch = fit_profile_dir(GPU_PROFILES[0], own=True)
    assert not torch.used_by_planner and any("(measured-vllm): the planner uses this one instead" in ln for ln in law_lines(torch))
    alone = fit_profile_dir(_copy_without_h100_vllm(tmp_path) / "llama-3.1-8b" / "H100-SXM-80GB" / "tp1")
    if verdict == "prior":
        assert vp.source == "prior"
        assert not alone.used_by_planner and any("roofline prior" in ln for ln in law_lines(alone))
        assert vp.decode_step_ms(128, 2048) < decode_law_ms(torch.decode_coef, 128, 2048)
        assert vp.prefill_ms(4096, 1) < prefill_law_ms(torch.prefill_coef, 4096, 1)
    else:
        assert vp.law_source == "measured-torch"
        assert alone.used_by_planner and not any("roofline prior" in ln for ln in law_lines(alone))
        assert vp.decode_step_ms(128, 2048) == pytest.approx(decode_law_ms(torch.decode_coef, 128, 2048), rel=0.02)


def test_show_and_rates_pick_the_same_profile_of_a_variant_folder(tmp_path):
    """Found in QA: `planner profile show tp1` showed tp1's torch-reference profile where `planner profile rates tp1`
    fitted tp1/vllm (the one the planner uses). Both now take the vllm/ one, show saying so; --own takes tp1's own."""
    from typer.testing import CliRunner

    from planner.cli.main import app

    d = GPU_PROFILES[0]  # llama-3.1-8b H100 tp1: a torch profile and a vllm/ one
    for own in ([], ["--own"]):
        shown = CliRunner().invoke(app, ["profile", "show", str(d), "--no-png", *own])
        rates = CliRunner().invoke(app, ["profile", "rates", str(d), "--isl", "1024", *own])
        assert shown.exit_code == 0 and rates.exit_code == 0, shown.output + rates.output
        picked = d if own else d / "vllm"
        assert f"laws fitted on {picked}\n" in rates.output, rates.output
        flat = " ".join(shown.output.split())
        assert (f"laws used by the planner: measured-vllm ({picked})" if not own else
                f"NOT the laws the planner uses (see below): measured-torch ({picked})") in flat, flat
        assert (f"showing {picked} (measured-vllm), the vllm/ profile of {d}" in flat) == (not own), flat
        assert fit_profile_dir(d, own=bool(own)).profile.path == picked


def test_show_cli_prints_laws_and_saves_png(tmp_path):
    from typer.testing import CliRunner

    from planner.cli.main import app

    png = tmp_path / "h100.png"
    res = CliRunner().invoke(app, ["profile", "show", str(GPU_PROFILES[0]), "--own", "--png", str(png)])
    assert res.exit_code == 0, res.output
    assert "prefill  t =" in res.output and "decode   t =" in res.output and "residuals" in res.output
    assert png.stat().st_size > 20_000
    assert "KV capacity 443,725 tokens" in law_lines(fit_profile_dir(GPU_PROFILES[0], own=True))[2]
    assert "not determined" not in res.output


def test_show_warns_where_the_points_cannot_determine_the_laws(tmp_path):
    """A load-only run's one-point grid (plan h12's) fits every point exactly; show prints the fit, with a warning
    naming the axis that needs more points (planner profile rates refuses the same directory, exit 2)."""
    from typer.testing import CliRunner

    from planner.cli.main import app

    one_point = Path(__file__).resolve().parents[1] / "profiles/runs/2026-12-06-h12/qwen3-14b/H100-SXM-80GB/tp1-steady/vllm"
    res = CliRunner(env={"PLANNER_CATALOG": str(DATA.parents[1] / "examples/byo-model/catalog")}).invoke(
        app, ["profile", "show", str(one_point), "--png", str(tmp_path / "fit.png")])
    assert res.exit_code == 0, res.output
    text = res.output.replace("\n", " ")
    assert "warning: the laws above are not determined by these points" in text and "--prefill-isl" in text


def test_show_on_a_bad_directory_is_a_clear_error(tmp_path):
    from typer.testing import CliRunner

    from planner.cli.main import app

    res = CliRunner().invoke(app, ["profile", "show", str(tmp_path)])
    assert res.exit_code == 2 and "meta.yaml" in res.output and "not found" in res.output


@pytest.mark.parametrize(("profile", "noted"), [
    (DATA / "qwen3-30b-a3b" / "H200-141GB" / "tp1" / "vllm", True),   # vLLM's default graphs: the plateau
    (DATA / "llama-3.1-8b" / "H200-141GB" / "tp1" / "vllm", False),   # dense: no token table, no note
], ids=["moe-default-graphs", "dense"])
def test_show_says_when_an_moe_profile_carries_the_cuda_graph_limit(profile, noted, tmp_path):
    """`planner profile show` prints planner.perf.graphs' advice where the plan would (real vLLM 0.26 profiles)."""
    from typer.testing import CliRunner

    from planner.cli.main import app

    res = CliRunner().invoke(app, ["profile", "show", str(profile), "--png", str(tmp_path / "fit.png")])
    assert res.exit_code == 0, res.output
    assert ("CUDA-graph" in res.output) == noted


def test_predict_says_what_the_planner_assumes_for_a_variant(tmp_path):
    """`planner profile predict`: the laws' source and the predicted grid, the same numbers the planner uses; a variant
    that cannot run is exit 3 with the reason; a bad dtype or GPU is exit 2 naming it."""
    from typer.testing import CliRunner

    from planner.cli.main import app
    from planner.perf.laws import TORCH_ONLY_LAWS, PerfModel

    run = CliRunner()
    root = _copy_without_h100_vllm(tmp_path)  # a variant only the torch reference measured
    res = run.invoke(app, ["profile", "predict", "--model", "llama-3.1-8b", "--gpu", "H100-SXM-80GB", "--profiles", str(root),
                           "--decode-batch", "128", "--decode-context", "2048", "--prefill-isl", "4096"])
    assert res.exit_code == 0, res.output
    out = res.output.replace("\n", " ")
    vp = PerfModel.load(profiles_dir=root).get("llama-3.1-8b", "H100-SXM-80GB", 1)
    if TORCH_ONLY_LAWS == "prior":  # part D's verdict (planner.perf.laws.TORCH_ONLY_LAWS)
        assert "laws from prior" in out and "measured-torch" in out and "predicted, not measured" in out
        assert vp.source == "prior"
    else:
        assert "laws from measured-torch" in out and vp.law_source == "measured-torch"
    assert f"{vp.decode_step_ms(128.0, 2048.0):.2f}" in out and f"{vp.ttft_overhead_ms + vp.prefill_ms(4096.0, 1.0):.1f}" in out
    # a variant no profile measured: the prior's numbers, said to be predicted
    res = run.invoke(app, ["profile", "predict", "--model", "llama-3.1-8b", "--gpu", "A100-80GB", "--profiles", str(root),
                           "--decode-batch", "128", "--decode-context", "2048", "--prefill-isl", "4096"])
    assert res.exit_code == 0, res.output
    out = res.output.replace("\n", " ")
    assert "laws from prior" in out and "predicted, not measured" in out
    # the A100 has Splitwise's profiles: the held-out models' figure is quoted, not the unseen card's
    from planner.perf.heldout import PRIOR_CARD_AND_MODEL_UNSEEN, PRIOR_HELD_OUT

    assert f"on {PRIOR_HELD_OUT.dense_models} dense models held out" in out and "no profile of any model" not in out
    res_l40s = run.invoke(app, ["profile", "predict", "--model", "llama-3.1-8b", "--gpu", "L40S", "--decode-batch", "1"])
    text = res_l40s.output.replace("\n", " ")
    assert res_l40s.exit_code == 0 and "L40S has no profile of any model" in text
    assert f"prefill by {PRIOR_CARD_AND_MODEL_UNSEEN[0]:.0%} and decode by {PRIOR_CARD_AND_MODEL_UNSEEN[1]:.0%}" in text
    vp = PerfModel.load(profiles_dir=root).get("llama-3.1-8b", "A100-80GB", 1)
    assert vp.source == "prior" and f"{vp.decode_step_ms(128.0, 2048.0):.2f}" in out
    res = run.invoke(app, ["profile", "predict", "--model", "llama-3.1-8b", "--gpu", "H200-141GB", "--decode-batch", "1"])
    assert res.exit_code == 0 and "laws from measured-vllm" in res.output and "predicted, not measured" not in res.output
    res = run.invoke(app, ["profile", "predict", "--model", "qwen3-32b", "--gpu", "L40S"])
    assert res.exit_code == 3 and "cannot run" in res.output
    for args, field in ((["--kv-dtype", "fp4"], "--kv-dtype"), (["--gpu", "B300"], "B300")):
        base = {"--model": "llama-3.1-8b", "--gpu": "H200-141GB"}
        argv = ["profile", "predict", *[x for k, v in base.items() if k not in args for x in (k, v)], *args]
        res = run.invoke(app, argv)
        assert res.exit_code == 2 and field in res.output and "Traceback" not in res.output, res.output


def test_predict_gives_no_number_where_the_replica_cannot_serve():
    """A prompt beyond the model's context, or a decode batch whose KV (batch x context tokens) exceeds the replica's
    cache, gets '-' and a footnote, not a number the laws extrapolated (found by hand at stop 51: llama-2-70b, 4,096
    tokens of context, was shown a 16,384-token TTFT and batches of 256 at 8,192 tokens)."""
    from typer.testing import CliRunner

    from planner.cli.main import app
    from planner.io.catalog import Catalog
    from planner.perf.laws import PerfModel

    vp = PerfModel.load().get("llama-2-70b", "H100-SXM-80GB", 2)
    assert Catalog.load().model("llama-2-70b").max_context == 4096
    kv = vp.kv_capacity_tokens
    fits, over = 8, kv // 2048 + 1  # batches of 2,048-token sequences within and beyond the cache
    res = CliRunner().invoke(app, ["profile", "predict", "--model", "llama-2-70b", "--gpu", "H100-SXM-80GB", "--tp", "2",
                                   "--prefill-isl", "4096,8192", "--decode-batch", f"{fits},{over}",
                                   "--decode-context", "2048"])
    assert res.exit_code == 0, res.output
    out = res.output
    assert f"{vp.ttft_overhead_ms + vp.prefill_ms(4096.0, 1.0):.1f}" in out
    assert f"{vp.ttft_overhead_ms + vp.prefill_ms(8192.0, 1.0):.1f}" not in out
    assert f"{vp.decode_step_ms(float(fits), 2048.0):.2f}" in out
    assert f"{vp.decode_step_ms(float(over), 2048.0):.2f}" not in out
    assert "4,096-token context" in out.replace("\n", " ") and f"{kv:,} tokens of its KV cache" in out.replace("\n", " ")
    # within both limits: no footnote
    res = CliRunner().invoke(app, ["profile", "predict", "--model", "llama-2-70b", "--gpu", "H100-SXM-80GB", "--tp", "2",
                                   "--prefill-isl", "1024", "--decode-batch", "1", "--decode-context", "1024"])
    assert res.exit_code == 0 and "cannot serve" not in res.output


def _labels(lo: float, hi: float) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from planner.io.plot_axes import label_log_axis

    fig, ax = plt.subplots()
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    label_log_axis(ax.yaxis, lo, hi)
    fig.canvas.draw()
    shown = [t.get_text() for t in ax.yaxis.get_ticklabels() if t.get_text() and lo <= t.get_position()[1] <= hi]
    plt.close(fig)
    return shown


def test_a_log_axis_within_one_decade_is_labelled_between_its_decades() -> None:
    """The profile plot's decode panel (steps of 9-20 ms) showed one y label, "10^1" (found by hand at stop 54 on
    mistral-nemo-12b's H100 profile): within a decade the axis is labelled at 10, 12, 15, 20; across decades the
    decades alone, as plain numbers."""
    assert _labels(9.0, 20.5) == ["10", "12", "15", "20"]
    assert _labels(60.0, 2200.0) == ["100", "200", "300", "500", "1000", "2000"]
    assert _labels(8.0, 3000.0) == ["10", "100", "1000"]


def test_show_gives_the_planners_own_laws_and_residuals(tmp_path):
    """Found by hand: `profile show` refitted a plain 3-term law, not the planner's (prefill floor, decode knee): on
    the bundled H200 vLLM profile of llama-3.1-8b it printed decode residuals up to 26.5% where the law `planner solve`
    uses misses by 0.9%, under the line 'laws used by the planner'. Its fitted column is now the planner's law at
    every point, its medians the planner's; a meta.yaml naming a GPU the catalog lacks is exit 2 naming that file."""
    import shutil

    import yaml
    from typer.testing import CliRunner

    from planner.cli.main import app
    from planner.io.catalog import Catalog
    from planner.perf.laws import fit_profile
    from planner.perf.profiledata import load_profile

    d = DATA / "llama-3.1-8b" / "H200-141GB" / "tp1" / "vllm"
    fit = fit_profile_dir(d)
    vp, prep, drep = fit_profile(load_profile(d), Catalog.load())
    for r in fit.decode_points.itertuples():
        assert r.fit_ms == pytest.approx(vp.decode_step_ms(r.batch, r.context_tokens))
    for r in fit.prefill_points.itertuples():
        assert r.fit_ms == pytest.approx(vp.prefill_ms(r.isl, r.batch))  # engine-timed rows: the pass, no overhead
    assert fit.decode_report.max_rel_err == pytest.approx(drep.max_rel_err) and drep.max_rel_err < 0.02
    assert fit.prefill_report.median_rel_err == pytest.approx(prep.median_rel_err)
    assert "max(0, batch - 128)" in law_lines(fit)[1] and "max(" in law_lines(fit)[0]
    bad = tmp_path / "vllm"
    shutil.copytree(d, bad)
    meta = yaml.safe_load((bad / "meta.yaml").read_text())
    (bad / "meta.yaml").write_text(yaml.safe_dump({**meta, "gpu": "H200-141"}))
    res = CliRunner().invoke(app, ["profile", "show", str(bad), "--png", str(tmp_path / "f.png")])
    assert res.exit_code == 2 and f"{bad / 'meta.yaml'}: field 'gpu'" in " ".join(res.output.split()), res.output
    assert not (tmp_path / "f.png").exists()


def test_show_prices_a_moe_prefill_with_its_token_table():
    """The planner prices a MoE's prefill pass as its law x the measured token table's ratio (planner.perf.laws,
    prefill_pass_ms); `profile show` gave the law alone (found in review at stop 56: on the bundled H200 qwen3-30b-a3b
    profile it printed 19.6% median prefill error, the table-priced pass misses by under 1%)."""
    from planner.io.catalog import Catalog
    from planner.perf.laws import fit_profile
    from planner.perf.profiledata import load_profile

    d = DATA / "qwen3-30b-a3b" / "H200-141GB" / "tp1" / "vllm"
    fit = fit_profile_dir(d)
    vp, _, _ = fit_profile(load_profile(d), Catalog.load())
    assert vp.prefill_table_tokens
    over = fit.ttft_overhead_ms * fit.client_ttft
    for r in fit.prefill_points.itertuples():
        assert r.fit_ms == pytest.approx(over + vp.prefill_pass_ms(r.batch * r.isl, r.batch * r.isl**2))
    line = " ".join(law_lines(fit)[0].split())
    assert "x the measured token table's ratio at sum(isl)" in line and "the law alone 19.6%" in line, line
    assert float(fit.prefill_points["rel_err"].abs().median()) < 0.01


def test_show_names_its_default_png_for_the_whole_variant(tmp_path, monkeypatch):
    """Found by hand: `planner profile show` on tp1 (torch), tp1/vllm and tp1-kvfp8 of llama-3.1-8b on the H100 all
    wrote out/llama-3.1-8b-H100-SXM-80GB-tp1-fit.png, each plot over the one before; the default name carries the
    precision suffix of the variant's folder and the vLLM engine, so each variant keeps its own plot."""
    from typer.testing import CliRunner

    from planner.cli.main import app

    monkeypatch.chdir(tmp_path)
    h100 = DATA / "llama-3.1-8b" / "H100-SXM-80GB"
    written = []
    for args in ([str(h100 / "tp1"), "--own"], [str(h100 / "tp1" / "vllm")], [str(h100 / "tp1-kvfp8" / "vllm")]):
        res = CliRunner().invoke(app, ["profile", "show", *args])
        assert res.exit_code == 0, res.output
        written.append(" ".join(res.output.split()).split("plot saved to ")[1].split()[0])
    assert written == ["out/llama-3.1-8b-H100-SXM-80GB-tp1-fit.png", "out/llama-3.1-8b-H100-SXM-80GB-tp1-vllm-fit.png",
                       "out/llama-3.1-8b-H100-SXM-80GB-tp1-kvfp8-vllm-fit.png"], written
    assert all((tmp_path / w).is_file() for w in written)
