"""Errors a user can act on: each names the file, the field and what was expected."""

from __future__ import annotations


class PlannerError(Exception):
    """Base of the errors the CLI turns into a message and exit code 2."""


class InputError(PlannerError):
    """Bad input: `path` (file), `field` (dotted location inside it) and what was expected."""

    def __init__(self, path: str | None, field: str | None, expected: str):
        self.path = str(path) if path is not None else None
        self.field = field
        self.expected = expected
        where = self.path or "<input>"
        if field:
            where += f": field '{field}'"
        super().__init__(f"{where}: {expected}")
