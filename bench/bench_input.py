"""How a bench refuses its input: one line on stderr, exit code 2 (3: infeasible), no traceback, before any work.

Shared by the benches so that each states its checks and none repeats the print-and-exit (the project's standard for
user input: the message names the argument or the file and what was expected)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from planner.io.errors import PlannerError


def fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr and the exit code (2: bad input, 3: infeasible); no traceback."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


@contextmanager
def refused_as_input(prefix: str = "") -> Iterator[None]:
    """Reading and checking inputs inside this block: a PlannerError (a missing file, a field out of its schema, an
    unknown model or GPU: its message names them) becomes `fail(prefix + message)`."""
    try:
        yield
    except PlannerError as exc:
        fail(f"{prefix}{exc}")
