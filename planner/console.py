"""The terminal the CLI prints to: Rich, wide enough for its tables when output is not a terminal."""

from __future__ import annotations

import sys

from rich.console import Console

# Pools tables carry ids like "llama-3.1-8b/prefill/H100-SXM-80GB/tp1": at Rich's 80-column default
# for pipes and CI logs they would be cut; 160 columns keep a row on one line.
PIPE_WIDTH = 160


def stdout_console() -> Console:
    """A Console on stdout: the terminal's width, or PIPE_WIDTH when stdout is not a terminal."""
    return Console(width=None if sys.stdout.isatty() else PIPE_WIDTH)
