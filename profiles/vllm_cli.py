"""``planner profile`` alone, for a GPU machine that has vLLM but not the planner's other dependencies.

    python3 -m profiles.vllm_cli profile --backend vllm --model llama-3.1-8b --gpu H200-141GB ...

Same options and code as ``planner profile`` (planner.cli.profile); it only skips importing the
solver, simulator and controller commands that ``planner.cli.main`` registers beside it.
"""

from __future__ import annotations

import typer

from planner.cli.profile import register

app = typer.Typer(add_completion=False, no_args_is_help=True)
register(app)


@app.callback()
def _root() -> None:
    """pd-planner profiler."""


if __name__ == "__main__":  # pragma: no cover
    app()
