"""The two commands that save a figure, `planner simulate` and `planner profile show`, skip it with --no-png (found in
QA: each always wrote a PNG, out/simulation.png or out/<variant>-fit.png, with no way to say none); --png beside
--no-png is exit 2 naming both, before any work; without either, the figure goes where it always went."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from planner.cli.main import app

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "data" / "llama-3.1-8b" / "H100-SXM-80GB" / "tp1"
WORKLOAD = {"models": {"llama-3.1-8b": {"slo": {"ttft_ms": 2000, "itl_ms": 100, "percentile": 90}}},
            "classes": [{"id": "chat", "model": "llama-3.1-8b", "isl": 1000, "osl": 200, "rate_rps": 2.0}]}
FLEET = {"gpus": {"H100-SXM-80GB": {"available": 8}}, "limits": {"allowed_tp": [1], "roles": ["mixed"]}}

# (figure flags, exit code, the PNGs written under the working folder)
CASES = [
    ([], 0, "default"),
    (["--png", "fig/x.png"], 0, ["fig/x.png"]),
    (["--no-png"], 0, []),
    (["--png", "fig/x.png", "--no-png"], 2, []),
]


def _command(name: str, tmp_path: Path) -> tuple[list[str], list[str]]:
    """The command line of `name` without its figure flags, and the PNG it writes by default."""
    if name == "profile show":
        return ["profile", "show", str(PROFILE)], ["out/llama-3.1-8b-H100-SXM-80GB-tp1-vllm-fit.png"]  # its vllm/ one
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(WORKLOAD))
    (tmp_path / "f.yaml").write_text(yaml.safe_dump(FLEET))
    r = CliRunner().invoke(app, ["solve", "-w", "w.yaml", "-f", "f.yaml", "-o", "plan.yaml"])
    assert r.exit_code == 0, r.output
    return ["simulate", "plan.yaml", "--workload", "w.yaml", "--duration", "20"], ["out/simulation.png"]


@pytest.mark.parametrize("name", ["simulate", "profile show"])
@pytest.mark.parametrize("flags, code, written", CASES, ids=[" ".join(c[0]) or "default" for c in CASES])
def test_figure_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, flags: list[str], code: int,
                      written: list[str] | str) -> None:
    monkeypatch.chdir(tmp_path)
    cmd, default = _command(name, tmp_path)
    r = CliRunner().invoke(app, [*cmd, *flags])
    assert r.exit_code == code, r.output
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.png")) == (default if written == "default" else written)
    if code == 2:
        assert "--png/--no-png" in r.output and "Traceback" not in r.output, r.output
