"""The `planner` command line (Typer + Rich): every command, and the console it prints to."""
