"""`planner simulate` times a plan's pools with the laws the plan was solved with (found by hand at stop 56: a plan of
`planner solve --profiles DIR` predicted ITL p90 16.2 ms and `planner simulate` replayed it on the bundled laws, 9.8 ms,
without a word). The plan records its profile root (`profiles_root`); simulate uses it unless --profiles says
otherwise (and then says so); a root that is gone is exit 2 naming the plan's field."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import yaml
from typer.testing import CliRunner

from planner.cli.main import app

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "profiles" / "data"
WORKLOAD = {"models": {"llama-3.1-8b": {"slo": {"ttft_ms": 2000, "itl_ms": 100, "percentile": 90}}},
            "classes": [{"id": "chat", "model": "llama-3.1-8b", "isl": 1000, "osl": 200, "rate_rps": 4.0}]}
FLEET = {"gpus": {"H100-SXM-80GB": {"available": 8}}, "limits": {"allowed_tp": [1], "roles": ["mixed"]}}


def _itl_p50_ms(output: str) -> float:
    row = next(line for line in output.splitlines() if "│ chat" in line)
    return float(re.split(r"\s*│\s*", row)[4].split("/")[0])


def test_simulate_replays_a_plan_on_the_profiles_it_was_solved_with(tmp_path: Path) -> None:
    src = BUNDLED / "llama-3.1-8b" / "H100-SXM-80GB" / "tp1" / "vllm"
    slow = tmp_path / "prof" / "llama-3.1-8b" / "H100-SXM-80GB" / "tp1" / "vllm"
    shutil.copytree(src, slow)
    dec = pd.read_csv(slow / "decode.csv")
    dec["itl_ms"] *= 2.0  # a GPU whose decode steps take twice the bundled profile's
    dec.to_csv(slow / "decode.csv", index=False)
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(WORKLOAD))
    (tmp_path / "f.yaml").write_text(yaml.safe_dump(FLEET))
    runner = CliRunner()
    plan = tmp_path / "plan.yaml"
    r = runner.invoke(app, ["solve", "-w", str(tmp_path / "w.yaml"), "-f", str(tmp_path / "f.yaml"), "--profiles",
                            str(tmp_path / "prof"), "-o", str(plan)])
    assert r.exit_code == 0, r.output
    assert yaml.safe_load(plan.read_text())["profiles_root"] == str((tmp_path / "prof").resolve())
    sim = ["simulate", "--plan", str(plan), "--workload", str(tmp_path / "w.yaml"), "--duration", "60", "--png",
           str(tmp_path / "s.png")]
    own = runner.invoke(app, sim)
    assert own.exit_code == 0, own.output
    bundled = runner.invoke(app, [*sim, "--profiles", str(BUNDLED)])
    assert bundled.exit_code == 0, bundled.output
    assert "the plan was solved with the profiles under" in " ".join(bundled.output.split())
    # the plan's own laws decode at twice the bundled ones' step
    assert _itl_p50_ms(own.output) > 1.6 * _itl_p50_ms(bundled.output), (own.output, bundled.output)
    shutil.rmtree(tmp_path / "prof")
    gone = runner.invoke(app, sim)
    assert gone.exit_code == 2 and "field 'profiles_root'" in " ".join(gone.output.split()), gone.output
