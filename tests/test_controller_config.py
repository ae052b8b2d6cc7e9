"""Bad controller configs (controllers/config.py): each is refused when read, naming the field and what was expected,
before any work (`planner control` exits 2 on it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controllers.config import load_config
from planner.io.errors import InputError

EXAMPLE_FLEET = Path(__file__).resolve().parents[1] / "examples" / "controller" / "fleet.yaml"
BASE: dict[str, object] = {"fleet": str(EXAMPLE_FLEET),
                           "models": {"llama-2-70b": {"slo": {"ttft_ms": 2000, "itl_ms": 100, "percentile": 99}}}}


def _merge(base: dict[str, object], extra: dict[str, object]) -> dict[str, object]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v  # type: ignore[arg-type]
    return out


def _refused(tmp_path: Path, extra: dict[str, object]) -> InputError:
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(_merge(BASE, extra)))
    with pytest.raises(InputError) as exc:
        load_config(p)
    assert exc.value.path == str(p)
    return exc.value


@pytest.mark.parametrize(("extra", "field"), [
    ({"interval_s": float("inf")}, "interval_s"),  # the loop slept for ever; the derived lease raised OverflowError
    ({"interval_s": float("nan")}, "interval_s"),
    ({"startup_s": float("inf")}, "startup_s"),
    ({"solver_time_limit_s": float("inf")}, "solver_time_limit_s"),
    ({"prometheus": {"rate_window_s": float("inf")}}, "prometheus.rate_window_s"),
    ({"guard": {"scale_down_cooldown_s": float("inf")}}, "guard.scale_down_cooldown_s"),
])
def test_non_finite_numbers_refused(tmp_path: Path, extra: dict[str, object], field: str) -> None:
    """.inf passed every gt=0 bound (found in QA: `interval_s: .inf` reached the Prometheus probe, rc 0 with one)."""
    err = _refused(tmp_path, extra)
    assert err.field == field and "finite" in err.expected


@pytest.mark.parametrize(("extra", "field", "expected"), [
    ({"forecast": {"margin_min": 2.0, "margin_max": 1.2}}, "forecast.margin_max", "at least margin_min (2)"),
    ({"forecast": {"headroom_low": 0.9, "headroom_high": 0.8}}, "forecast.headroom_high",
     "more than headroom_low (0.9)"),
    ({"forecast": {"headroom_low": 0.8, "headroom_high": 0.8}}, "forecast.headroom_high",
     "more than headroom_low (0.8)"),
    ({"correct": {"min_factor": 3.0, "max_factor": 2.0}}, "correct.max_factor", "at least min_factor (3)"),
    ({"correct": {"service_min_factor": 2.5}}, "correct.service_min_factor", "at most max_factor (2)"),
])
def test_bound_pairs_in_order(tmp_path: Path, extra: dict[str, object], field: str, expected: str) -> None:
    """A lower bound above its upper one was taken and one of the two silently won (found in QA: margin_min 2 with
    margin_max 1.2 planned every model at a margin of 1.2, min(max, max(min, q)))."""
    err = _refused(tmp_path, extra)
    assert err.field == field and expected in err.expected


def test_equal_bounds_accepted(tmp_path: Path) -> None:
    """A pinned margin or factor (min = max) is a valid setting."""
    p = tmp_path / "c.yaml"
    pinned = {"forecast": {"margin_min": 1.2, "margin_max": 1.2},
              "correct": {"min_factor": 1.0, "max_factor": 1.0, "service_min_factor": 1.0}}
    p.write_text(yaml.safe_dump(_merge(BASE, pinned)))
    cfg, _ = load_config(p)
    assert cfg.forecast.margin_max == 1.2 and cfg.correct.max_factor == 1.0


@pytest.mark.parametrize(("extra", "expected"), [
    ({"interval_s": 5, "solver_time_limit_s": 5, "leader": {"lease_duration_s": 12}},
     "at least 1.5 x actuator.request_timeout_s = 15 s"),
    ({"interval_s": 5, "solver_time_limit_s": 5, "leader": {"lease_duration_s": 20},
      "actuator": {"request_timeout_s": 14}}, "= 21 s"),
])
def test_lease_renew_deadline_holds_a_request(tmp_path: Path, extra: dict[str, object], expected: str) -> None:
    """A Lease whose renew deadline (2/3 of it) is shorter than one request's timeout was taken (found in QA: 12 s
    against interval_s 5 + solver 5 and request_timeout_s 10: a renewal may take longer than the 8-s deadline, after
    which the holder writes nothing, and a write attempt begun inside it ends past the Lease)."""
    err = _refused(tmp_path, extra)
    assert err.expected.startswith("leader.lease_duration_s: ") and expected in err.expected


@pytest.mark.parametrize(("timeout_s", "lease_s"), [(10.0, 15), (20.0, 30), (3.0, 15)])
def test_default_lease_holds_a_request(tmp_path: Path, timeout_s: float, lease_s: int) -> None:
    """The derived Lease (no leader.lease_duration_s) is at least 1.5x actuator.request_timeout_s."""
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(_merge(BASE, {"interval_s": 5, "solver_time_limit_s": 3,
                                              "actuator": {"request_timeout_s": timeout_s}})))
    cfg, _ = load_config(p)
    assert cfg.lease_duration_s == lease_s


@pytest.mark.parametrize(("text", "expected"), [
    ("- a\n- b\n", "expected a mapping of controller fields (interval_s, fleet, models, ...: controllers/config.py), "
                    "got a list"),
    ("hello\n", "got a str"),
    ("3\n", "got a int"),
])
def test_not_a_mapping(tmp_path: Path, text: str, expected: str) -> None:
    """A YAML list or scalar said 'Input should be a valid dictionary or instance of ControllerConfig' (found in QA)."""
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(InputError) as exc:
        load_config(p)
    assert exc.value.path == str(p) and expected in exc.value.expected
