"""The terminal the CLI prints to: Rich, wide enough for its tables when output is not a terminal."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
import typer.core
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from planner.io.errors import InputError, PlannerError

EXIT_BAD_INPUT = 2
"""Exit code of every command on bad input (the message names file, field and expectation)."""
EXIT_INFEASIBLE = 3
"""Exit code of `planner solve` when the instance is infeasible (the plan file still says why), and of `planner control
--once` when its interval holds the fleet because no plan meets the SLOs (the hold reason says why)."""
EXIT_SOLVER_ERROR = 1
"""Exit code of `planner control --once` when its interval holds the fleet because the solver itself failed (an
exception, or the backend's status 'error'), not because no plan meets the SLOs (EXIT_INFEASIBLE)."""

F = TypeVar("F", bound=Callable[..., object])

# Pools tables carry ids like "llama-3.1-8b/prefill/H100-SXM-80GB/tp1": at Rich's 80-column default
# for pipes and CI logs they would be cut; 160 columns keep a row on one line.
PIPE_WIDTH = 160


def whole_summaries(app: typer.Typer) -> None:
    """Give every command of app and its groups a short help: its help's first paragraph, which the command list
    wraps whole. Without one, Click's list cuts the help to the width left of the name ('Cheapest plan (pools,
    replicas, routing) that meets the...'). Call it once every command is registered."""
    for command in app.registered_commands:
        text = command.help or inspect.getdoc(command.callback) or ""
        if command.short_help is None and text:
            command.short_help = " ".join(text.split("\n\n")[0].split())
    for group in app.registered_groups:
        if group.typer_instance is not None:
            whole_summaries(group.typer_instance)
            group_help = group.typer_instance.info.help
            if isinstance(group_help, str):
                group.short_help = " ".join(group_help.split("\n\n")[0].split())


def bad_parameter_text(exc: typer.BadParameter) -> str:
    """One line naming the option (or argument) and what was expected, for a value Click/Typer refused while parsing:
    a range (`typer.Option(min=..., max=...)`) as "expected a number from 50 to 99.99, got 100", anything else (a word
    where a number goes) with Typer's own words. Found in QA: these printed Click's three-line usage block (Usage:,
    Try '... --help', Error: Invalid value for '--tp': ...) where every other bad input prints one line."""
    param = exc.param
    name = (param.opts[0] if param.opts else str(param.name)) if param is not None else None
    cause = exc.__cause__
    errors = cause.errors() if isinstance(cause, ValidationError) else []  # how Typer checks a value's type and range
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if errors and errors[0].get("type") in RANGE_ERRORS and (low is not None or high is not None):
        kind = "a whole number" if isinstance(low if low is not None else high, int) else "a number"
        span = (f"from {low:g} to {high:g}" if low is not None and high is not None
                else f">= {low:g}" if low is not None else f"<= {high:g}")
        text = f"expected {kind} {span}, got {errors[0].get('input')}"
    else:
        text = exc.message
    return str(InputError(None, name, text)) if name and not text.startswith(name) else text


RANGE_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")
"""pydantic's error types for a value outside an option's min/max (how Typer checks them)."""


class OneLineErrors(typer.core.TyperGroup):
    """The CLI's root group: a value refused while parsing a command's options (typer.BadParameter: out of an
    option's range, not a number) is one red line on stderr and EXIT_BAD_INPUT, as friendly_errors prints an
    InputError, not Click's usage block. A mistyped option name (NoSuchOption) keeps Click's usage, its hint."""

    def invoke(self, ctx: Any) -> object:  # Any: Typer vendors click, its Context is not importable by a public name
        try:
            return super().invoke(ctx)
        except typer.BadParameter as exc:
            Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(bad_parameter_text(exc))}")
            raise typer.Exit(EXIT_BAD_INPUT) from None


def command_group(help_text: str, *, no_args_is_help: bool = True) -> typer.Typer:
    """A Typer app (the CLI or one of its groups) with the CLI's help layout: Click's plain one, not Rich's option
    table. At 80 columns (a pipe's width, many terminals') Rich's table cut option names ('--max-num-batche…') and
    quoted values ('(timestamp,model…') with an ellipsis and left 18 columns for the help; Click's keeps every name
    whole and wraps the help at the terminal's width. Rich still prints the tables, progress bars and errors."""
    return typer.Typer(rich_markup_mode=None, add_completion=False, cls=OneLineErrors,
                       no_args_is_help=no_args_is_help, help=help_text)


def stdout_console() -> Console:
    """A Console on stdout: the terminal's width, or PIPE_WIDTH when stdout is not a terminal."""
    return Console(width=None if sys.stdout.isatty() else PIPE_WIDTH)


def friendly_errors(fn: F) -> F:
    """Turn a PlannerError into one red line on stderr and EXIT_BAD_INPUT (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return fn(*args, **kwargs)
        except PlannerError as exc:
            # soft_wrap: one logical line however long the path in it, so logs and greps see it whole;
            # escape: messages quote user input, which may hold Rich markup such as "[red]".
            Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(str(exc))}")
            raise typer.Exit(EXIT_BAD_INPUT) from None

    return wrapper  # type: ignore[return-value]


def figure_path(png: Path | None, no_png: bool, default: Path | None) -> Path | None:
    """Where a command saves its figure: None with --no-png (the commands that write one, `planner simulate` and
    `planner profile show`, always did; found in QA), else --png or `default` (None: the command names it later).
    --png beside --no-png is an InputError naming both, before any work."""
    if no_png and png is not None:
        raise InputError(None, "--png/--no-png", f"one of them: --png {png} saves the figure there, --no-png saves none")
    return None if no_png else png or default
