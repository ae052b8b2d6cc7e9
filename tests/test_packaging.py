"""What a user installing the package outside the repository gets: the dependency ranges pyproject.toml
declares resolve to versions the code runs with, and every data file in the packages' folders is package data
(pyproject's [tool.setuptools.package-data] globs), or listed here as kept in the repository only. (The tests run
on one interpreter, whose resolver may never see a release another interpreter gets: PuLP 4 requires
Python >= 3.12, the Docker image's, and not 3.11.)"""

from __future__ import annotations

import subprocess
import tomllib
from importlib.metadata import version as installed_version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]

UNSUPPORTED_RELEASES: tuple[tuple[str, str, str], ...] = (
    # (distribution, first release the code does not run on, why)
    ("pulp", "4.0", "LpVariable(name, lowBound=, upBound=, cat=) is gone (solvers/runners/pulp_backends.py)"),
)


def _dependencies() -> dict[str, Requirement]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    reqs = [Requirement(d) for d in deps]
    return {r.name.lower(): r for r in reqs}


@pytest.mark.parametrize(("dist", "first_unsupported", "why"), UNSUPPORTED_RELEASES)
def test_dependency_range_excludes_releases_the_code_does_not_run_on(dist: str, first_unsupported: str,
                                                                        why: str) -> None:
    req = _dependencies()[dist]
    assert Version(first_unsupported) not in req.specifier, f"{req} admits {dist} {first_unsupported}: {why}"
    # The range still admits what the tests run with.
    assert Version(installed_version(dist)) in req.specifier


PACKAGES = ("planner", "profiles", "solvers", "controllers")
"""The top-level packages [tool.setuptools.packages.find] includes."""
NOT_SHIPPED: tuple[tuple[str, str], ...] = (
    # (path under the repository root, why it stays out of the wheel)
    ("profiles/runs", "the GPU sessions' records and held-out profiles: bench/ reads them, the planner does not"),
    ("profiles/gpu", "shell scripts of a lent GPU session (profiles/gpu_session.py), run from the repository"),
    ("planner/ruff.toml", "lint settings"),
    ("controllers/ruff.toml", "lint settings"),
)


def _package_data() -> set[Path]:
    """The files pyproject's package-data globs select, as setuptools expands them (relative to each package)."""
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    return {f for pkg, patterns in globs.items() for pat in patterns for f in (ROOT / pkg).glob(pat) if f.is_file()}


def _data_files() -> list[Path]:
    """Every file git tracks under the packages' folders but Python source, less NOT_SHIPPED (tracked: caches
    and outputs a run leaves there are no part of the product)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--", *PACKAGES], cwd=ROOT, capture_output=True,
                                check=True).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    skip = [ROOT / p for p, _ in NOT_SHIPPED]
    files = (ROOT / name for name in listed.split("\0") if name)
    return sorted(f for f in files if f.suffix != ".py" and not any(f == s or s in f.parents for s in skip))


def test_every_data_file_in_the_packages_is_package_data() -> None:
    covered = _package_data()
    missing = [str(f.relative_to(ROOT)) for f in _data_files() if f not in covered]
    assert not missing, f"not in the wheel (add to package-data, or to NOT_SHIPPED with why): {missing}"


def test_files_the_code_opens_by_its_own_location_are_package_data() -> None:
    """Module constants computed from __file__ resolve, installed, to the same place in site-packages."""
    from planner.io.catalog import PROFILES_DIR
    from planner.perf.kernel_tables import TABLES_FILE
    from profiles.backends.torch_ref import MODELS_YAML
    from profiles.modeldir import MODEL_CONFIGS_PATH

    opened = [TABLES_FILE, MODELS_YAML, MODEL_CONFIGS_PATH, PROFILES_DIR / "gpus.yaml", PROFILES_DIR / "models.yaml"]
    covered = _package_data()
    assert [str(f) for f in opened if f.resolve() not in covered] == []
    assert any(PROFILES_DIR / "data" in f.parents for f in covered)
