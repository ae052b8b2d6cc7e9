"""Shared fixtures: paths to the repo and to the public data in ../shared/data (CI has it there)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.pop("PLANNER_CATALOG", None)  # session fixtures too see the bundled catalogs (see _bundled_catalog_only)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _bundled_catalog_only(monkeypatch):
    """Every test sees the bundled catalogs: a PLANNER_CATALOG of the developer's shell is masked, and one a
    test sets (or `planner --catalog` sets in-process under CliRunner) is undone after it."""
    monkeypatch.setenv("PLANNER_CATALOG", "")


@pytest.fixture(autouse=True)
def _fresh_solve_memos():
    """Every test starts with empty solve memos (planner.planning.capacity's pools, solvers.backends' per-model
    answers): a test that fakes a solver or a law sees its fake run, not an answer an earlier test left."""
    from planner.planning.capacity import _pool_class_capacities_memo
    from solvers.backends import _GROUP_MEMO

    _pool_class_capacities_memo.cache_clear()
    _GROUP_MEMO.clear()


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"public data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def catalog():
    """The bundled catalogs (profiles/gpus.yaml, profiles/models.yaml)."""
    from planner.io.catalog import Catalog

    return Catalog.load()


@pytest.fixture(scope="session")
def perf(catalog):
    """Laws of the bundled profiles and the prior calibrated on them (read-only in tests)."""
    from planner.perf.laws import PerfModel

    return PerfModel.load(catalog=catalog)


@pytest.fixture(scope="session")
def h100_torch_laws(catalog, perf):
    """llama-3.1-8b on the H100, fitted from its bundled torch-reference profile with the TTFT overhead the planner
    gives non-vLLM laws: a fixed, measured law set for the capacity formulas' checks against the simulator (set on
    these laws when the planner still planned with them; it plans that variant from the prior since stop 33, and a
    formula check should not move with the loader's choice)."""
    from dataclasses import replace

    from planner.perf.laws import fit_profile
    from planner.perf.profiledata import load_profile

    d = Path(__file__).resolve().parents[1] / "profiles" / "data" / "llama-3.1-8b" / "H100-SXM-80GB" / "tp1"
    return replace(fit_profile(load_profile(d), catalog)[0], ttft_overhead_ms=perf.ttft_overhead_ms)
