"""profiles/gpu_session.py's plans: what a lent GPU will run, checked before device time is spent on it.

No GPU and no server here: the plans' variants and the profiler commands they build are checked (the session's
run itself is the real vLLM run on the lent machine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.io.catalog import Catalog
from planner.perf.laws import PerfModel, quiet_extrapolation
from profiles import gpu_session as gs

H100 = "H100-SXM-80GB"


def test_every_plan_names_catalog_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bundled catalog, or for the imported models of plans s12-s21 examples/byo-model/catalog (PLANNER_CATALOG)."""
    from planner.io.catalog import CATALOG_ENV
    from planner.perf.heldout import BYO_CATALOG_DIR

    cat = Catalog.load()
    monkeypatch.setenv(CATALOG_ENV, str(BYO_CATALOG_DIR))
    byo = Catalog.load()
    for name, plan in gs.PLANS.items():
        for v in plan:
            assert v.model in cat.models or v.model in byo.models, (name, v.model)


@pytest.mark.parametrize("plan", ["h1", "h2"])
def test_the_h100_plans_fit_one_h100_and_land_under_its_name(plan: str, tmp_path: Path) -> None:
    """Plans h1 and h2 (vLLM on an H100): each variant's weights fit one H100 with KV for its longest request, its
    decode grid stays within the KV the prior expects, and its results and profiler flags name the H100."""
    pm = PerfModel.load()
    with quiet_extrapolation():
        for v in gs.PLANS[plan]:
            vp = pm.get(v.model, H100, 1, "fp8" if v.quantization else "bf16", "fp8" if v.kv_cache_dtype else "bf16")
            assert vp is not None, v.label
            assert vp.kv_capacity_tokens >= v.max_model_len, (v.label, vp.kv_capacity_tokens)
            assert v.max_kv <= vp.kv_capacity_tokens, (v.label, v.max_kv, vp.kv_capacity_tokens)
            cmd = gs.command(v, tmp_path, 0.0, 1.0, "srv", 60.0, 1.0, gpu=H100)
            assert cmd[cmd.index("--gpu") + 1] == H100
            assert Path(cmd[cmd.index("--out") + 1]).parts[-3:-1] == (H100, gs.vdir_of(v))
    assert [v.label for v in gs.PLAN_H1][0] == "llama-3.1-8b" and gs.PLAN_H1[0].rates
    # h2's first variant is rule K4h's: the FP8 llama decode grid to batch 256 with vLLM's per-step log
    k4h = gs.PLAN_H2[0]
    assert k4h.quantization == "fp8" and "--log-iterations" in k4h.extra and k4h.decode_batch.endswith("256")


@pytest.mark.parametrize("argv", [["--plan", "h1"], ["--plan", "h1", "--gpu", H100]])
def test_the_session_cli_takes_the_gpu(argv: list[str], tmp_path: Path) -> None:
    """A deadline already past: every variant is reported as not run, nothing is launched, DONE is written."""
    assert gs.main(["--out", str(tmp_path), "--deadline-unix-s", "0", *argv]) == 0
    log = (tmp_path / "session.log").read_text()
    assert log.count("not run") == len(gs.PLAN_H1) and (tmp_path / "DONE").is_file()


def test_the_session_names_the_lent_card_by_default() -> None:
    """--gpu auto: the catalog entry whose card model nvidia-smi names (the cards the lent machines had), none where the
    card is unknown or not there (the session then keeps its plans' H200 and the profiler's check stops a mismatch)."""
    from profiles.backends.vllm import catalog_gpu_of_device

    names = sorted(Catalog.load().gpus)
    assert catalog_gpu_of_device("NVIDIA H100 80GB HBM3", names) == H100
    assert catalog_gpu_of_device("NVIDIA H200", names) == "H200-141GB"
    assert catalog_gpu_of_device("NVIDIA B300", names) is None and catalog_gpu_of_device(None, names) is None


def test_the_session_hands_its_gpu_to_every_profiler_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The session's card reaches each profiler command (stop 37: `--gpu H100-SXM-80GB` was logged by the session but
    the commands still named the plans' H200, and the profiler refused the H100). The profiler itself is replaced by a
    process that exits at once (it needs vLLM and a GPU); the commands are recorded as the session built them."""
    import sys
    import time

    built: list[list[str]] = []
    real_command = gs.command

    def recording(*args: object, **kwargs: object) -> list[str]:
        built.append(real_command(*args, **kwargs))  # type: ignore[arg-type]
        return [sys.executable, "-c", "pass"]

    monkeypatch.setattr(gs, "command", recording)
    argv = ["--out", str(tmp_path), "--deadline-unix-s", str(time.time() + 10_000), "--plan", "h1", "--gpu", H100,
            "--no-check-tokenizer"]
    assert gs.main(argv) == 0
    assert len(built) == len(gs.PLAN_H1)
    for cmd in built:
        assert cmd[cmd.index("--gpu") + 1] == H100
        assert H100 in Path(cmd[cmd.index("--out") + 1]).parts


@pytest.mark.parametrize(("left_s", "later_min_s", "later_full_s", "want_rates_s"), [
    (295.0, 0.0, 0.0, 20.0),      # plan k3h's call (stop 43): 295 s after the install; the arrivals shrink, none overruns
    (2000.0, 0.0, 0.0, 200.0),    # room to spare: the plan's rate_s
    (2000.0, 400.0, 1850.0, None),  # the later variants' full plans leave no spare: no load sweep
    (900.0, 300.0, 300.0, 200.0),   # a later variant's minimum is kept beyond this one's hard end
])
def test_every_profiler_is_stopped_before_the_session_deadline(left_s, later_min_s, later_full_s, want_rates_s) -> None:
    """The session's promise (--deadline-unix-s: every server stopped by then) holds even when a profiler must be
    stopped at its hard end: SIGTERM's grace and the leftover server's stop fit before the deadline, less the later
    variants' minimum plans. Plan k3h's call ran 20 s past its device-call limit (the hard end was the rate deadline +
    60 s, the rate deadline near the session's deadline) and lost its files."""
    now = 1_000.0
    deadline = now + left_s
    w = gs.variant_window(now, deadline, startup_s=120.0, sweep_s=25.0, rate_s=200.0, has_rates=True,
                          later_min_s=later_min_s, later_full_s=later_full_s)
    assert w.hard_end + gs.TERM_GRACE_S + gs.LEFTOVER_STOP_S + later_min_s <= deadline + 1e-9
    assert w.sweep_end <= w.hard_end
    if want_rates_s is None:
        assert w.rate_end is None
    else:
        assert w.rate_end is not None and w.rate_end - w.sweep_end == pytest.approx(want_rates_s)
        assert w.hard_end - w.rate_end <= gs.DRAIN_S + 1e-9


@pytest.mark.parametrize(("saturation_ttft_ms", "flag"), [(None, "2000"), (15_000.0, "15000")])
def test_a_steady_state_plan_can_let_its_rates_run_past_the_profilers_ttft_stop(
        saturation_ttft_ms: float | None, flag: str, tmp_path: Path) -> None:
    """The profiler ends an ISL's rates after the first whose median TTFT passes --saturation-ttft-ms (plans h10 and
    h11 lost their top rate to the 2 s at stop 44); a variant states its own, 2 s by default."""
    from dataclasses import replace

    v = gs.PLAN_H10[0] if saturation_ttft_ms is None else replace(gs.PLAN_H10[0], saturation_ttft_ms=saturation_ttft_ms)
    cmd = gs.command(v, tmp_path, 0.0, 1.0, "srv", 60.0, 1.0, gpu=H100)
    assert cmd[cmd.index("--saturation-ttft-ms") + 1] == flag


def test_a_plan_can_draw_fresh_arrivals_and_settle_each_rate_first(tmp_path: Path) -> None:
    """Plan h12 (rule H12) draws seeds no earlier sweep drew and sends each rate's first 20 s as a settle window kept
    out of the sample; a plan that names neither passes neither flag (the profiler's defaults: seed 0, no window)."""
    cmd = gs.command(gs.PLAN_H12[0], tmp_path, 0.0, 1.0, "srv", 60.0, 1.0, gpu=H100)
    assert cmd[cmd.index("--rate-seed") + 1] == "4500" and cmd[cmd.index("--rate-settle-s") + 1] == "20"
    assert gs.PLAN_H12[1].rate_seed != gs.PLAN_H12[0].rate_seed
    plain = gs.command(gs.PLAN_H10[0], tmp_path, 0.0, 1.0, "srv", 60.0, 1.0, gpu=H100)
    assert "--rate-seed" not in plain and "--rate-settle-s" not in plain
