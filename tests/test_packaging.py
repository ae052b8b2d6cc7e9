"""What a user installing the package outside the repository gets: the dependency ranges pyproject.toml
declares resolve to versions the code runs with. (The tests run on one interpreter, whose resolver may never
see a release another interpreter gets: PuLP 4 requires Python >= 3.12, the Docker image's, and not 3.11.)"""

from __future__ import annotations

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
