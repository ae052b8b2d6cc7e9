"""`planner workload synth`: write a synthetic trace of one traffic family (planner.io.synth)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from planner.cli.console import friendly_errors, stdout_console
from planner.io.errors import InputError
from planner.words import plural


def register(workload_app: typer.Typer) -> None:
    """Add the `synth` command to the `planner workload` group."""

    @workload_app.command("synth")
    @friendly_errors
    def workload_synth(
        family: str = typer.Argument(..., help="traffic family: mmpp, sine, step, flash, diurnal, clustered, heavytail"),
        duration_s: float = typer.Option(2400.0, "--duration-s", help="trace length, s"),
        seed: int = typer.Option(0, "--seed", min=0, help="random seed (the trace is deterministic given it)"),
        model: str = typer.Option("llama-2-70b", "--model", help="model name written in the model column"),
        param: list[str] = typer.Option([], "--param", metavar="NAME=VALUE", help="family parameter override NAME=VALUE (repeatable)"),
        azure_columns: bool = typer.Option(False, "--azure-columns",
                                           help="write TIMESTAMP,ContextTokens,GeneratedTokens (the Azure trace's columns)"),
        output: Path | None = typer.Option(None, "--output", "-o", help="write the CSV here (default: stdout)"),
    ) -> None:
        """A synthetic request trace (CSV) of one traffic family, for autoscaler scenarios."""
        import pandas as pd

        from planner.io.files import write_atomic
        from planner.io.synth import DEFAULT_MAX_CONTEXT, FAMILIES, SynthParamError, synth

        if family not in FAMILIES:
            raise InputError(None, "family", f"one of {', '.join(FAMILIES)}; got '{family}'")
        if not model.strip() or model != model.strip():
            raise InputError(None, "--model", f"a model name without blanks around it (the trace's model column); got {model!r}")
        overrides: dict[str, float] = {}
        for item in param:
            name, sep, value = item.partition("=")
            if not sep or name not in FAMILIES[family].params:
                raise InputError(None, "--param", f"NAME=VALUE with NAME one of {', '.join(FAMILIES[family].params)}; got '{item}'")
            try:
                overrides[name] = float(value)
            except ValueError:
                raise InputError(None, f"--param {name}", f"a number; got '{value}'") from None
        try:  # synth checks every value (check_params) before drawing: nothing is written for a trace it cannot draw
            df = synth(family, duration_s, seed, model, DEFAULT_MAX_CONTEXT, **overrides)
        except SynthParamError as exc:
            raise InputError(None, "--duration-s" if exc.field == "duration_s" else f"--param {exc.field}",
                             f"{exc.expected}; got {exc.got}") from None
        if df.empty:  # every consumer of a trace refuses one without requests: say so here, write nothing
            raise InputError(None, "--param", f"rates that draw at least one request in {duration_s:g} s; "
                             f"{', '.join(f'{k}={v:g}' for k, v in overrides.items()) or 'these'} draw none")
        if azure_columns:
            base = pd.Timestamp("2024-01-01")
            df = pd.DataFrame({"TIMESTAMP": (base + pd.to_timedelta(df["timestamp"], unit="s")).dt.strftime("%Y-%m-%d %H:%M:%S.%f"),
                               "ContextTokens": df["input_tokens"], "GeneratedTokens": df["output_tokens"]})
        text = df.to_csv(index=False)
        if output is not None:
            write_atomic(output, text)
            stdout_console().print(f"{plural(len(df), 'request')} of '{family}' over {duration_s:g} s written to {output}")
        else:
            sys.stdout.write(text)
