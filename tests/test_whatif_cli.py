"""`planner whatif` on the command line: tables, CSV, and clear errors for bad options."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from planner.cli.main import app

WORKLOAD = "examples/default/workload.yaml"
FLEET = "examples/default/fleet.yaml"


def _run(repo, *args: str):
    import os

    old = os.getcwd()
    os.chdir(repo)
    try:
        return CliRunner().invoke(app, ["whatif", "-w", WORKLOAD, "-f", FLEET, *args])
    finally:
        os.chdir(old)


def test_traffic_and_fleet_changes_print_tables_and_write_csv(repo, tmp_path) -> None:
    out_csv = tmp_path / "whatif.csv"
    res = _run(repo, "--traffic", "0.5,1", "--price", "H100-SXM-80GB=2.5", "--remove-gpu", "L40S", "--csv", str(out_csv))
    assert res.exit_code == 0, res.output
    assert "What if traffic changes?" in res.output and "x0.5" in res.output and "x1" in res.output
    assert "What if GPU prices or the GPU mix change?" in res.output
    assert "baseline" in res.output and "without L40S" in res.output
    df = pd.read_csv(out_csv)
    assert set(df["question"]) == {"traffic", "fleet"}
    gpu_cols = [c for c in df.columns if c.startswith("gpus_")]
    assert gpu_cols and list(df.columns[-len(gpu_cols):]) == gpu_cols  # GPU counts last, as integers (no '3.0')
    assert all(pd.api.types.is_integer_dtype(df[c]) for c in gpu_cols), df[gpu_cols].dtypes
    traffic = df[df["question"] == "traffic"].sort_values("traffic_factor")
    assert traffic["cost_per_hour"].iloc[1] >= traffic["bound"].iloc[0] - 0.05
    fleet = df[df["question"] == "fleet"].set_index("scenario")
    # a cheaper H100 never raises the bill
    assert fleet.loc["H100-SXM-80GB at $2.5/h", "bound"] <= fleet.loc["baseline", "cost_per_hour"] + 0.05


def test_bad_options_exit_2_naming_the_option(repo) -> None:
    for args, needle in ((["--price", "H100-SXM-80GB"], "--price"),
                         (["--price", "H100-SXM-80GB=-1"], "--price"),
                         (["--add-gpu", "L40S=two"], "--add-gpu"),
                         (["--remove-gpu", "B200"], "B200"),
                         (["--traffic", "1,abc"], "--traffic"),
                         (["--add-gpu", "H300=4"], "H300"),
                         # a pydantic traceback, after the traffic sweep's solves (found in QA)
                         (["--add-gpu", "L40S=99999999999999"], "expected at most 999,984 L40S GPUs to add"),
                         (["--add-gpu", "H200-141GB=1000001"], "expected at most 1,000,000 H200-141GB"),
                         # found in QA at stop 58: 1e20 read 'infeasible' with a false diagnosis, 1e-10 planned 25 GPUs
                         # at $0.00; 0 (owned GPUs) says how to price them
                         (["--price", "L40S=1e20"], "to 1000"),
                         (["--price", "L40S=1e-10"], "from 0.01"),
                         (["--price", "L40S=0"], "owned GPUs: give 0.01")):
        res = _run(repo, *args)
        assert res.exit_code == 2, (args, res.output)
        assert needle in res.output, (args, res.output)


def test_pairing_question_prints_its_table(repo, tmp_path) -> None:
    out_csv = tmp_path / "pairing.csv"
    res = _run(repo, "--pairing", "--csv", str(out_csv))
    assert res.exit_code == 0, res.output
    assert "What if prefill may hand KV only to the same GPU type" in res.output
    assert "What if traffic changes?" not in res.output  # only the question asked
    df = pd.read_csv(out_csv).set_index("pairing")
    assert set(df.index) == {"any", "same_gpu", "same_gpu_tp"}
    assert df.loc["same_gpu_tp", "cost_per_hour"] >= df.loc["any", "bound"] - 0.05


def test_a_what_if_plans_each_case_without_the_controllers_step_limit(repo, tmp_path) -> None:
    """The controller example's fleet (max_step 4 from 1 prefill + 2 decode replicas): 8x the traffic is a fleet to
    price, not 'infeasible' because a pool cannot grow by more than 4 in one re-plan (found by hand at stop 51)."""
    wl = tmp_path / "w.yaml"
    wl.write_text("models:\n  llama-2-70b: {slo: {ttft_ms: 2000, itl_ms: 100, percentile: 99}}\n"
                  "classes:\n  - {id: chat, model: llama-2-70b, isl: 1024, osl: 200, rate_rps: 2}\n")
    fleet = repo / "examples" / "controller" / "fleet.yaml"
    res = CliRunner().invoke(app, ["whatif", "-w", str(wl), "-f", str(fleet), "--traffic", "1,8", "--csv",
                                   str(tmp_path / "o.csv")])
    assert res.exit_code == 0, res.output
    assert "limits.max_step (4) paces the controller" in res.output.replace("\n", " ")
    df = pd.read_csv(tmp_path / "o.csv")
    assert df["feasible"].all(), df[["traffic_factor", "diagnosis"]]


def test_removing_the_fleets_only_gpu_type_exits_2_naming_the_option(repo, tmp_path) -> None:
    """A fleet of one GPU type without it holds no GPU (found in QA: `--remove-gpu H100-SXM-80GB` on such a fleet was
    a pydantic ValidationError traceback, exit 1)."""
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("gpus:\n  H100-SXM-80GB: {available: 64}\n")
    res = CliRunner().invoke(app, ["whatif", "-w", str(repo / WORKLOAD), "-f", str(fleet),
                                   "--remove-gpu", "H100-SXM-80GB"])
    assert res.exit_code == 2, res.output
    assert "--remove-gpu" in res.output and "'H100-SXM-80GB' is the only GPU type" in res.output, res.output
    assert "Traceback" not in res.output and "ValidationError" not in res.output, res.output


def test_removing_a_gpu_type_with_a_pool_floor_prices_the_fleet_without_it(repo, tmp_path) -> None:
    """A floor (limits.pool_min_replicas) on a pool of the removed type goes with the type (found in QA: exit 2,
    "fleet: field 'limits.pool_min_replicas.llama-3.1-8b/prefill/L40S/tp1': GPU type 'L40S' is not in the fleet's
    gpus", on the fleet the what-if had made; the baseline with the floor costs $67.50/h, without L40S $59.19/h)."""
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text((repo / FLEET).read_text() + "  pool_min_replicas: {llama-3.1-8b/prefill/L40S/tp1: 2}\n")
    res = CliRunner().invoke(app, ["whatif", "-w", str(repo / WORKLOAD), "-f", str(fleet), "--remove-gpu", "L40S",
                                   "--csv", str(tmp_path / "o.csv")])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(tmp_path / "o.csv").set_index("scenario")
    assert df["feasible"].all() and df.loc["without L40S", "gpus_L40S"] == 0, df


def test_traffic_is_repeatable_like_the_other_questions(repo, tmp_path) -> None:
    """`--traffic 1 --traffic 0.5,2` is three points, as `--price` twice is two scenarios (found in QA: Click kept the
    last --traffic only, so `--traffic 1 --traffic 2` priced x2 alone, 'vs base' '-', without a word)."""
    out_csv = tmp_path / "t.csv"
    res = _run(repo, "--traffic", "1", "--traffic", "0.5,2", "--csv", str(out_csv))
    assert res.exit_code == 0, res.output
    assert list(pd.read_csv(out_csv)["traffic_factor"]) == [1.0, 0.5, 2.0]


def test_every_point_infeasible_writes_its_table_and_exits_3(repo, tmp_path) -> None:
    """A what-if whose every point is infeasible exits 3, `planner solve`'s exit for an infeasible plan, after its table
    and CSV (found in QA at stop 58: it exited 0); a question with any feasible point exits 0 as before."""
    fleet = tmp_path / "tiny.yaml"
    fleet.write_text("gpus:\n  L40S: {available: 1}\n  L4: {available: 1}\n")
    out_csv = tmp_path / "rows.csv"
    for args, code in ((["--traffic", "1,2"], 3), (["--remove-gpu", "L4", "--price", "L40S=2"], 3),
                       (["--add-gpu", "H100-SXM-80GB=64"], 0)):  # the baseline is infeasible, +64 H100 is not
        import os

        old = os.getcwd()
        os.chdir(repo)
        try:
            res = CliRunner().invoke(app, ["whatif", "-w", WORKLOAD, "-f", str(fleet), *args, "--csv", str(out_csv)])
        finally:
            os.chdir(old)
        assert res.exit_code == code, (args, res.output)
        assert "infeasible" in res.output and out_csv.is_file(), (args, res.output)
        assert ("Every point is infeasible" in res.output) == (code == 3), (args, res.output)
        out_csv.unlink()


def _headroom(repo, tmp_path, fleet_yaml: str):
    """`planner whatif --headroom --csv` of the default workload on a fleet of `fleet_yaml`, run from the repository:
    (the CLI's result, the CSV's path)."""
    import os

    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(fleet_yaml)
    out_csv = tmp_path / "rows.csv"
    old = os.getcwd()
    os.chdir(repo)
    try:
        res = CliRunner().invoke(app, ["whatif", "-w", WORKLOAD, "-f", str(fleet), "--headroom", "--csv", str(out_csv)])
    finally:
        os.chdir(old)
    return res, out_csv


def test_headroom_beyond_the_rate_range_is_a_lower_bound_at_its_edge(repo, tmp_path) -> None:
    """A fleet that takes more traffic than the planner's rate range (every class within MAX_RATE_RPS, where --traffic
    stops: x25,000 of the default workload) reads '>= 25000.00x', the plan at that factor (found in QA at stop 58: 1e6
    H100s read 51961.32x, a factor --traffic refuses)."""
    from planner.io.schema import MAX_RATE_RPS

    res, out_csv = _headroom(repo, tmp_path, "gpus:\n  H100-SXM-80GB: {available: 1000000}\n")
    assert res.exit_code == 0, res.output
    assert ">= 25000.00x" in " ".join(res.output.split()), res.output
    row = pd.read_csv(out_csv).iloc[0]
    assert bool(row["load_capped"]) and row["load_multiplier"] == 25000.0
    assert row["load_multiplier"] * 40.0 <= MAX_RATE_RPS  # the default workload's busiest class: 40 req/s


def test_a_headroom_of_zero_exits_as_infeasible(repo, tmp_path) -> None:
    """Found in QA: `planner whatif --headroom` on a fleet of one L40S printed 'serves no share of today's traffic
    within SLO' and exited 0: its max-load solve is feasible at multiplier 0 (the fleet at no load), which counted as
    a feasible point. A 0x headroom now counts as infeasible: exit 3, after the CSV is written."""
    res, out_csv = _headroom(repo, tmp_path, "gpus:\n  L40S: {available: 1}\n")
    said = " ".join(res.output.split())
    assert res.exit_code == 3, res.output
    assert "serves no share of today's traffic" in said and "Every point is infeasible" in said, said
    row = pd.read_csv(out_csv).iloc[0]
    assert bool(row["feasible"]) and row["load_multiplier"] == 0  # the CSV keeps the solve's own verdict
