"""bench/mixed_grid.py: the mixed closed form against the steady simulator per swept profile, dense and MoE apart
(the bench where stop 34's rule R3 was chosen and reported). One small real run and the bad-input exits."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import mixed_grid  # noqa: E402
import pytest  # noqa: E402

from planner.perf.heldout import CATALOG_ENV  # noqa: E402


@pytest.fixture(autouse=True)
def _restore_catalog_env(monkeypatch) -> None:
    """The bench sets PLANNER_CATALOG to the imported models' catalog where none is set; monkeypatch puts the
    variable back as it was after each test, so no other test sees it."""
    monkeypatch.delenv(CATALOG_ENV, raising=False)


def test_one_model_one_point_prints_its_errors_and_a_result_line(capsys) -> None:
    assert mixed_grid.main(["--models", "llama-3.1-8b", "--isl", "4096", "--loads", "0.7"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    fields = dict(kv.split("=") for kv in last.split()[1:])
    assert last.startswith("RESULT ") and int(fields["points"]) >= 1
    # llama-3.1-8b is dense by the catalog: no MoE rows, and the dense figures are the whole
    assert fields["moe_itl_p90_mape_pct"] == "nan" and fields["dense_itl_p90_mape_pct"] == fields["all_itl_p90_mape_pct"]
    # the closed form after stop 34's life count: within 15% of the steady simulator's ITL p90 at ISL 4,096, 70% load
    assert float(fields["all_itl_p90_mape_pct"]) < 15.0


def test_the_moe_is_told_apart_by_the_catalog() -> None:
    laws = mixed_grid.swept_laws({"qwen3-30b-a3b", "llama-3.1-8b"})
    catalog = mixed_grid.Catalog.load()
    kinds = {vp.model: mixed_grid.is_moe(vp, catalog) for vp in laws}
    assert kinds == {"qwen3-30b-a3b": True, "llama-3.1-8b": False}


def test_bad_input_exits_2(capsys) -> None:
    for argv in (["--isl", "4k"], ["--models", "gpt-9"]):
        try:
            code = mixed_grid.main(argv)
        except SystemExit as e:
            code = e.code
        assert code == 2, argv
    assert "expected comma-separated numbers" in capsys.readouterr().err
