"""`python -m planner ...`: the `planner` console script (planner.cli.main:app) without installing it."""

from planner.cli.main import app

app(prog_name="planner")
