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


# How `make test` (pytest -n 2 --dist loadfile) spreads the files: each file goes to one worker as a whole, and a worker
# takes the next file of the queue when it is almost done with its own. xdist orders that queue by the files' number
# of tests (its --loadscope-reorder default), which put the files of one or a few long tests last (the ~38-s
# end-to-end controller run, the notebooks): one worker could still be running one of them long after the other had
# emptied the queue. The longest files go first instead, longest first (worker-seconds measured idle on the 2-core
# machine, stop 55: 53, 45, 38, 38, 27, 27, then 14 to 10 s), the rest after them in collection order; the two
# workers then end within a few seconds of each other. A file's tests keep their order, and still run on one worker.
LONGEST_FILES_FIRST = (
    "test_profile_vllm.py", "test_notebooks.py", "test_cli_inputs.py", "test_controller_e2e.py", "test_cli_fuzz.py",
    "test_priorcheck.py", "test_llmd_observe.py", "test_planning.py", "test_vllm_under_load.py",
    "test_controller_observe.py", "test_pd_pair.py", "test_bench_bad_inputs.py", "test_profile_show.py",
)


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist's option: keep the order of the collection below
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the others keep collection order
