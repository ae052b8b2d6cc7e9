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
        # Without a file the error is about a command-line option or a value passed in code: name
        # the field (e.g. "--ttft-ms") alone rather than a placeholder such as "<input>".
        if self.path and field:
            where = f"{self.path}: field '{field}'"
        elif field:
            where = f"{field}" if field.startswith("-") else f"field '{field}'"
        else:
            where = self.path or "input"
        super().__init__(f"{where}: {expected}")

    def in_file(self, path: str) -> InputError:
        """This error told as one of the file `path`, where it named no file (a check of a value read from it)."""
        return self if self.path else InputError(path, self.field, self.expected)


def shown(value: object) -> str:
    """A cell of the user's file as a message quotes it: a NumPy scalar as the Python number it holds (NumPy 2 writes
    `np.float64(-5.0)` for repr, found by hand at stop 51), anything else by repr."""
    item = getattr(value, "item", None)
    return repr(item() if callable(item) and type(value).__module__ == "numpy" else value)
