"""Every command's --help at 80 columns (a pipe's width, many terminals') shows every option's name whole, no line
wider than the terminal, and the command lists give each command's summary whole.

Found by hand at stop 52: Rich's option table cut `planner profile --help` to '--max-num-batche…',
'--rate-deadline-…' (an option a user could not type from the help) and `solve --help`'s trace columns to
'(timestamp,model…'; the command list cut 'Cheapest plan ... that meets the...'.
"""

from __future__ import annotations

import inspect

import pytest
import typer
from typer.testing import CliRunner

from planner.cli.main import app

WIDTH = 80
runner = CliRunner()


def _commands(group: object, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    """(argv path, click command) of every command and group under group, itself included."""
    out: list[tuple[tuple[str, ...], object]] = [(path, group)]
    for name, sub in sorted(getattr(group, "commands", {}).items()):
        out.extend(_commands(sub, (*path, name)))
    return out


ALL = _commands(typer.main.get_command(app))


def _help(path: tuple[str, ...]) -> str:
    result = runner.invoke(app, [*path, "--help"], terminal_width=WIDTH, prog_name="planner")
    assert result.exit_code == 0, result.output
    return result.output


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(p) for p, _ in ALL}
    assert {"solve", "explain", "simulate", "control", "profile", "profile show", "workload synth",
            "catalog import-hf"} <= names


@pytest.mark.parametrize("path,command", ALL, ids=[" ".join(p) or "planner" for p, _ in ALL])
def test_help_names_every_option_whole(path: tuple[str, ...], command: object) -> None:
    text = _help(path)
    assert "…" not in text
    assert "<list[" not in text  # a repeatable option shows what one value looks like ('--price GPU=USD')
    assert max(len(line) for line in text.splitlines()) <= WIDTH, text
    for param in getattr(command, "params", []):
        for opt in [*param.opts, *param.secondary_opts]:
            if opt.startswith("--"):
                assert opt in text, f"{opt} missing from `planner {' '.join(path)} --help`"


@pytest.mark.parametrize("path,group", [(p, c) for p, c in ALL if getattr(c, "commands", None)],
                         ids=[" ".join(p) or "planner" for p, c in ALL if getattr(c, "commands", None)])
def test_command_lists_give_each_summary_whole(path: tuple[str, ...], group: object) -> None:
    listing = " ".join(_help(path).split("Commands:")[1].split())
    for name, sub in getattr(group, "commands", {}).items():
        summary = " ".join(inspect.cleandoc(sub.help or "").split("\n\n")[0].split())
        assert f"{name} {summary}" in listing, f"`{name}`'s summary is cut in `planner {' '.join(path)} --help`"


@pytest.mark.parametrize("path,command", ALL, ids=[" ".join(p) or "planner" for p, _ in ALL])
def test_every_option_says_what_it_is(path: tuple[str, ...], command: object) -> None:
    """Found in QA: `planner profile --help` listed --rate-isl, --rate-osl and --progress/--no-progress with a default
    and no word of what they are (the only three options of the CLI without a help text)."""
    bare = [param.opts[0] for param in getattr(command, "params", [])
            if param.param_type_name == "option" and not (param.help or "").strip()]
    assert not bare, f"`planner {' '.join(path)} --help`: options without a help text: {', '.join(bare)}"


def test_catalog_help_names_everything_the_folder_is_read_for() -> None:
    """Found in QA: `planner --help` said --catalog's folder holds models.yaml, gpus.yaml and model_configs.yaml, not
    the profiles/ subfolder the planner also fits (planner.perf.laws.PerfModel.load, planner.io.catalog)."""
    from planner.io.catalog import USER_FILES, USER_PROFILES_DIR

    text = " ".join(_help(()).split())
    assert all(f in text for f in (*USER_FILES, f"{USER_PROFILES_DIR}/ subfolder of measured profiles")), text
