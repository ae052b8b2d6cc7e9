"""What-if sweeps behave like the questions they answer (planner.planning.whatif, planner.api).

Every comparison between two solves is made against the solver's proven bound, not just its
incumbent: if B's feasible set is contained in A's, then cost(B) >= optimum(A) >= bound(A). That holds
whether or not a solve hit its time limit, so these tests cannot flake on a slow machine.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from planner import whatif
from planner.api import headroom, solve
from planner.solvedplan import SolvedPlan
from planner.io.schema import Fleet, FleetLimits, GpuInventory, ModelEntry, Plan, RequestClass, Slo, Workload

# A small instance (one model, two GPU types, tp 1-2) so that each solve takes a fraction of a second.
MODEL = "llama-3.1-8b"
SLO = Slo(ttft_ms=500, itl_ms=40, percentile=90)
WL = Workload(
    models={MODEL: ModelEntry(slo=SLO)},
    classes=[
        RequestClass(id="chat", model=MODEL, isl=1024, osl=128, rate_rps=20.0),
        RequestClass(id="summarise", model=MODEL, isl=4000, osl=256, rate_rps=3.0),
    ],
)
FLEET = Fleet(gpus={"H100-SXM-80GB": GpuInventory(available=24), "A100-80GB": GpuInventory(available=24)},
              limits=FleetLimits(allowed_tp=[1, 2]))
# Absolute slack on USD/h comparisons: the solver's relative gap (1e-4) on costs of ~$10-200/h.
EPS = 0.05


def _no_cheaper(tighter: pd.Series, looser: pd.Series) -> None:
    """The tighter point (a subset of the looser one's plans) is infeasible or costs >= the looser bound."""
    if not tighter["feasible"]:
        return
    assert looser["feasible"], "a looser instance must be feasible when a tighter one is"
    assert tighter["cost_per_hour"] >= looser["bound"] - EPS, (tighter.to_dict(), looser.to_dict())


@pytest.fixture(scope="module")
def traffic_df() -> pd.DataFrame:
    return whatif.traffic(WL, FLEET, [0.5, 1.0, 2.0, 4.0, 40.0])


def test_cost_is_non_decreasing_in_traffic(traffic_df: pd.DataFrame) -> None:
    df = traffic_df
    assert list(df["traffic_factor"]) == [0.5, 1.0, 2.0, 4.0, 40.0]
    assert np.allclose(df["rate_rps"], 23.0 * df["traffic_factor"])
    assert df["feasible"].iloc[:4].all()
    for i in range(len(df) - 1):
        _no_cheaper(df.iloc[i + 1], df.iloc[i])
    # more traffic really costs more somewhere along the sweep (the sweep is not flat)
    assert df["cost_per_hour"].iloc[3] > df["cost_per_hour"].iloc[0] + 1.0
    assert (df["gpus"].iloc[:4].diff().dropna() >= 0).all() or df["cost_per_hour"].iloc[:4].is_monotonic_increasing


def test_traffic_beyond_inventory_is_infeasible_with_a_reason(traffic_df: pd.DataFrame) -> None:
    last = traffic_df.iloc[-1]  # 920 req/s on 48 GPUs
    assert not last["feasible"]
    assert math.isnan(last["cost_per_hour"]) and math.isnan(last["gpus"])
    assert last["diagnosis"], "an infeasible point says why"


def test_a_factor_past_the_planners_rate_range_is_refused_before_any_solve() -> None:
    """20 req/s x 5e4 = 1e6 req/s is the schema's bound (MAX_RATE_RPS, the ILP's reliable range); one more factor
    past it used to be solved into a confident diagnosis of billions of GPUs (stop 49)."""
    from planner.io.schema import MAX_RATE_RPS

    assert whatif.max_traffic_factor(WL) == pytest.approx(MAX_RATE_RPS / 20.0)
    with pytest.raises(ValueError, match="at most 5e\\+04"):
        whatif.traffic(WL, FLEET, [1.0, 6e4])


@pytest.mark.parametrize("factors, message", [([math.nan], "finite number > 0"), ([-1.0], "finite number > 0"),
                                              ([0.0], "finite number > 0"), ([], "no factor")])
def test_traffic_refuses_factors_no_traffic_can_have(factors: list[float], message: str) -> None:
    """A negative factor used to be solved (model_copy does not validate: negative rates reached the ILP), NaN was a
    PuLP error, an empty list a pandas KeyError (stop 49)."""
    with pytest.raises(ValueError, match=message):
        whatif.traffic(WL, FLEET, factors)
    if factors and not factors[0] == 0.0:
        with pytest.raises(ValueError, match="finite number >= 0"):
            WL.scaled(factors[0])


def test_what_if_copies_are_validated_like_input_files() -> None:
    """The helpers copied models with pydantic's model_copy(update=...), which does not validate: a price of -1
    solved into a plan of -64 USD/h (found by hand on the Python API, stop 49). Now each copy is validated again (the
    sweeps check their points before that: test_a_sweep_refuses_a_point_outside_its_range_before_any_solve)."""
    from pydantic import ValidationError

    for bad in (lambda: whatif.with_price(FLEET, "H100-SXM-80GB", -1.0),
                lambda: whatif.with_price(FLEET, "H100-SXM-80GB", math.nan),
                lambda: whatif.with_length_spread(WL, -1.0),
                lambda: whatif.with_output_spread(WL, math.nan)):
        with pytest.raises(ValidationError):
            bad()


def test_gpu_columns_add_up_to_total(traffic_df: pd.DataFrame) -> None:
    gpu_cols = [c for c in traffic_df.columns if c.startswith("gpus_")]
    assert gpu_cols and set(gpu_cols) <= {"gpus_H100-SXM-80GB", "gpus_A100-80GB"}
    ok = traffic_df[traffic_df["feasible"]]
    assert np.allclose(ok[gpu_cols].sum(axis=1), ok["gpus"])


def test_tighter_slo_is_never_cheaper() -> None:
    df = whatif.slo_tightening(WL, FLEET, [1.0, 0.8, 0.6, 0.4])
    assert df["feasible"].iloc[0]
    for i in range(len(df) - 1):
        _no_cheaper(df.iloc[i + 1], df.iloc[i])
    assert df["cost_per_hour"].max() > df["cost_per_hour"].iloc[0] or not df["feasible"].all()


def test_removing_a_gpu_type_is_never_cheaper_and_adding_never_dearer() -> None:
    df = whatif.gpu_mix(WL, FLEET, add={"H200-141GB": 8}, remove=["H100-SXM-80GB", "A100-80GB"]).set_index("scenario")
    base = df.loc["baseline"]
    assert base["feasible"]
    for g in ("H100-SXM-80GB", "A100-80GB"):
        row = df.loc[f"without {g}"]
        _no_cheaper(row, base)
        if row["feasible"]:
            assert row.get(f"gpus_{g}", 0) in (0, 0.0)
    added = df.loc["+8 H200-141GB"]
    assert added["feasible"] and added["bound"] <= base["cost_per_hour"] + EPS


def test_a_dearer_gpu_is_used_less_and_never_lowers_the_bill() -> None:
    df = whatif.gpu_price(WL, FLEET, "H100-SXM-80GB", [1.0, 3.0, 1000.0])
    for i in range(len(df) - 1):
        _no_cheaper(df.iloc[i + 1], df.iloc[i])
    # at $1000/GPU-hour the A100s (feasible alone, see above) are far cheaper: no H100 is bought
    assert df.iloc[-1]["feasible"] and df.iloc[-1]["gpus_H100-SXM-80GB"] == 0
    assert df.iloc[0]["gpus_H100-SXM-80GB"] > 0  # ... while at $1/h the H100 is the better buy


def test_prices_compares_each_change_and_all_together() -> None:
    df = whatif.prices(WL, FLEET, {"H100-SXM-80GB": 5.0, "A100-80GB": 0.5})
    assert list(df["scenario"]) == ["baseline", "H100-SXM-80GB at $5/h", "A100-80GB at $0.5/h", "all price changes"]
    assert df["feasible"].all()
    # a cheaper A100 cannot raise the optimum; a dearer H100 cannot lower it
    base = df.iloc[0]
    assert df.iloc[2]["bound"] <= base["cost_per_hour"] + EPS
    _no_cheaper(df.iloc[1], base)


def test_headroom_of_a_roomy_fleet_is_above_one_and_feasible_at_that_load() -> None:
    df = whatif.headroom(WL, FLEET, [1.0, 2.0])
    assert list(df["inventory_gpus"]) == [48, 96]
    mu = df["load_multiplier"].to_numpy()
    assert mu[0] > 1.0, "48 GPUs for 23 req/s of an 8B model leave room"
    assert mu[1] >= mu[0] - 1e-6, "twice the inventory never serves less"
    # the cheapest plan at (almost) that multiplier fits the same fleet...
    at = solve(WL.scaled(mu[0] * 0.99), FLEET)
    assert at.feasible and all(at.gpus.get(g, 0) <= inv.available for g, inv in FLEET.gpus.items())
    # ...and, when the max-load solve is proven optimal, clearly more does not
    plan = headroom(WL, FLEET)
    # the solver line states the factor relative to the user's workload, as the plan's multiplier does (found by hand
    # at stop 51: 'objective 1.00393 x load' beside 'load multiplier 5.057x', the last re-plan's own factor)
    assert plan.solver.objective == pytest.approx(plan.load_multiplier, rel=1e-9)
    assert plan.solver.bound is not None and plan.solver.bound >= plan.solver.objective * (1 - 1e-9)
    if plan.solver.status == "optimal":
        assert not solve(WL.scaled(plan.load_multiplier * 1.05), FLEET).feasible


def test_slo_frontier_grid_and_pareto_flags() -> None:
    df = whatif.slo_frontier(WL, FLEET, ttft_ms=[300, 1000], itl_ms=[25, 60])
    assert len(df) == 4 and set(df.columns[:3]) == {"ttft_ms", "itl_ms", "frontier"}
    by = df.set_index(["ttft_ms", "itl_ms"])
    # loosening either bound never costs more
    _no_cheaper(by.loc[(300.0, 25.0)], by.loc[(1000.0, 25.0)])
    _no_cheaper(by.loc[(300.0, 25.0)], by.loc[(300.0, 60.0)])
    _no_cheaper(by.loc[(1000.0, 25.0)], by.loc[(1000.0, 60.0)])
    # every other point is at least as tight as the loosest one, so the loosest is on the frontier
    # exactly when it is feasible and strictly cheaper than every other feasible point
    loose = by.loc[(1000.0, 60.0)]
    others = by.drop(index=[(1000.0, 60.0)])
    others = others[others["feasible"]]
    assert bool(loose["frontier"]) == bool(loose["feasible"] and (others["cost_per_hour"] > loose["cost_per_hour"]).all())
    assert not (df["frontier"] & ~df["feasible"]).any()


def test_pareto_marks_points_that_buy_something() -> None:
    df = pd.DataFrame({"ttft_ms": [100, 100, 200, 200], "itl_ms": [20, 40, 20, 40],
                       "cost_per_hour": [10.0, 8.0, 10.0, 8.0], "feasible": [True, True, True, True]})
    # (200, 20) costs the same as the tighter (100, 20); (200, 40) the same as (100, 40): both dominated
    assert list(whatif._pareto(df)) == [True, True, False, False]
    df.loc[0, "feasible"] = False
    assert list(whatif._pareto(df)) == [False, True, True, False]


def test_disaggregation_map_solves_each_style_with_its_roles_only() -> None:
    fleet = Fleet(gpus={"H100-SXM-80GB": GpuInventory(available=64)}, limits=FleetLimits(allowed_tp=[1, 2]))
    df = whatif.disaggregation_map(fleet, MODEL, SLO, isl=[512, 4096], osl=[64, 512], rate_rps=20.0)
    assert list(zip(df["isl"], df["osl"])) == [(512, 64), (512, 512), (4096, 64), (4096, 512)]
    ok = df.dropna(subset=["cost_ratio"])
    assert len(ok) > 0
    assert np.allclose(ok["cost_ratio"], ok["cost_aggregated"] / ok["cost_disaggregated"])
    for _, r in ok.iterrows():
        want = "disaggregated" if r["cost_ratio"] > 1 else "aggregated" if r["cost_ratio"] < 1 else "tie"
        assert r["winner"] == want
    # each side really was restricted to its roles
    wl = whatif.single_class(MODEL, 4096, 512, 20.0, SLO)
    agg = solve(wl, whatif.with_roles(fleet, whatif.AGGREGATED_ROLES))
    dis = solve(wl, whatif.with_roles(fleet, whatif.DISAGGREGATED_ROLES))
    assert {p.role for p in agg.models[MODEL].pools} == {"mixed"}
    assert {p.role for p in dis.models[MODEL].pools} == {"prefill", "decode"}
    assert dis.models[MODEL].pd_ratio is not None


@pytest.mark.parametrize("kw, says", [
    ({"isl": [512.7], "osl": [64]}, "isl: expected whole numbers of tokens >= 1"),
    ({"isl": [512], "osl": [math.nan]}, "osl: expected whole numbers of tokens >= 1"),
    ({"isl": [512, -5], "osl": [64]}, "isl: expected whole numbers of tokens >= 1"),
    ({"isl": [512], "osl": [0]}, "osl: expected whole numbers of tokens >= 1"),
    ({"isl": [512], "osl": [64], "rate_rps": math.nan}, "rate_rps: expected a finite number"),
    ({"isl": [512], "osl": [64], "rate_rps": -1.0}, "rate_rps: expected a finite number"),
])
def test_the_map_refuses_lengths_and_rates_before_any_solve(kw: dict, says: str, monkeypatch) -> None:
    """Found in QA: isl=[512.7] priced a row 'isl 512', osl=[nan] was "cannot convert float NaN to integer" naming no
    argument, isl=[512, -5] a pydantic error on a RequestClass after the first point's solves."""
    def no_solve(*a, **k):
        raise AssertionError("solved before the inputs were checked")

    monkeypatch.setattr(whatif, "solve", no_solve)
    with pytest.raises(ValueError, match=says):
        whatif.disaggregation_map(FLEET, MODEL, SLO, **kw)


def test_the_map_prices_no_point_beyond_the_models_context() -> None:
    """llama-2-70b takes 4,096 tokens: a point past it is 'beyond context' with no cost, not a plan no replica serves
    (found by hand at stop 51: notebook 04 priced llama-2-70b at 8,192-token prompts)."""
    fleet = Fleet(gpus={"H100-SXM-80GB": GpuInventory(available=64)}, limits=FleetLimits(allowed_tp=[2, 4]))
    slo = Slo(ttft_ms=3000, itl_ms=100)
    df = whatif.disaggregation_map(fleet, "llama-2-70b", slo, isl=[1024, 4000], osl=[64, 128], rate_rps=5.0)
    beyond = df[df["isl"] + df["osl"] > 4096]
    assert list(zip(beyond["isl"], beyond["osl"])) == [(4000, 128)]
    assert (beyond["winner"] == "beyond context").all() and beyond["cost_aggregated"].isna().all()
    assert (df.loc[df["isl"] + df["osl"] <= 4096, "winner"] != "beyond context").all()


@pytest.mark.parametrize("kw, says", [({"time_limit_s": 0}, "time_limit_s"), ({"time_limit_s": -1.0}, "time_limit_s"),
                                      ({"time_limit_s": math.nan}, "time_limit_s"), ({"mip_gap": 2.0}, "mip_gap"),
                                      ({"mip_gap": -0.1}, "mip_gap")])
def test_solve_refuses_solver_options_that_mean_nothing(kw: dict, says: str) -> None:
    """A time limit <= 0 ran HiGHS with no time and a gap of 2 called a 19%-gap plan optimal (found by hand at stop 51);
    the CLI's --time-limit had its range, the API none."""
    with pytest.raises(ValueError, match=says):
        solve(WL, FLEET, **kw)


@pytest.mark.parametrize("kw, says", [({"duration_s": 0}, "duration_s"), ({"duration_s": math.nan}, "duration_s"),
                                      ({"seed": -1}, "seed")])
def test_simulate_names_the_argument_it_refuses(kw: dict, says: str) -> None:
    """Found by hand at stop 52: simulate_plan(duration_s=0) said "field 'duration'" and seed=-1 NumPy's "expected
    non-negative integer"; the message names the keyword the caller wrote."""
    from planner import simulate_plan

    with pytest.raises(ValueError, match=says):
        simulate_plan(solve(WL, FLEET), WL, **kw)


@pytest.mark.parametrize("what, workload, fleet, words", [
    ("a prompt past the context", whatif.single_class("llama-2-70b", 8000, 10, 1.0, Slo(ttft_ms=9000, itl_ms=100)), FLEET,
     ("workload", "classes[0].isl", "4096")),
    ("an unknown model", whatif.single_class("llama-9", 100, 10, 1.0, SLO), FLEET, ("workload", "models.llama-9")),
    ("an unknown GPU type", WL, Fleet(gpus={"B300": GpuInventory(available=8)}), ("fleet", "gpus.B300")),
    ("no traffic", WL.scaled(0.0), FLEET, ("workload", "rate_rps 0")),
])
def test_solve_checks_its_inputs_as_the_cli_checks_files(what: str, workload: Workload, fleet: Fleet,
                                                         words: tuple[str, ...]) -> None:
    """The Python API refuses what `planner solve` refuses (found by hand at stop 51: `solve` planned 8,000-token
    prompts for a 4,096-token model at $15.54/h)."""
    from planner.io.errors import InputError

    with pytest.raises(InputError) as exc:
        solve(workload, fleet)
    assert all(w in str(exc.value) for w in words), (what, str(exc.value))


# --------------------------------------------------------------------------- transformations
def test_input_transformations_are_pure_and_do_what_they_say() -> None:
    fl = FLEET.model_copy(update={"current": {f"{MODEL}/mixed/A100-80GB/tp1": 2, f"{MODEL}/mixed/H100-SXM-80GB/tp1": 1}})
    no_a100 = whatif.without_gpu(fl, "A100-80GB")
    assert set(no_a100.gpus) == {"H100-SXM-80GB"} and list(no_a100.current) == [f"{MODEL}/mixed/H100-SXM-80GB/tp1"]
    assert set(fl.gpus) == {"H100-SXM-80GB", "A100-80GB"}  # the input is untouched
    more = whatif.with_gpu(fl, "A100-80GB", 8)
    assert more.gpus["A100-80GB"].available == 32
    new = whatif.with_gpu(fl, "L40S", 4, price_per_hour=1.1)
    assert new.gpus["L40S"].available == 4 and new.gpus["L40S"].price_per_hour == 1.1
    assert whatif.with_price(fl, "A100-80GB", 0.9).gpus["A100-80GB"].price_per_hour == 0.9
    assert whatif.with_inventory_factor(fl, 0.5).gpus["H100-SXM-80GB"].available == 12
    with pytest.raises(KeyError, match="not in the fleet"):
        whatif.with_price(fl, "B200", 5.0)
    with pytest.raises(KeyError, match="not in the fleet"):
        whatif.without_gpu(fl, "B200")

    wl = WL.model_copy(update={"classes": [WL.classes[0].model_copy(update={"slo": Slo(ttft_ms=2000)}), WL.classes[1]]})
    tight = whatif.scale_slo(wl, 0.5)
    assert tight.models[MODEL].slo.ttft_ms == 250 and tight.models[MODEL].slo.itl_ms == 20
    assert tight.classes[0].slo is not None and tight.classes[0].slo.ttft_ms == 1000
    only_itl = whatif.scale_slo(wl, 0.5, ttft=False)
    assert only_itl.models[MODEL].slo.ttft_ms == 500 and only_itl.models[MODEL].slo.itl_ms == 20
    set_ = whatif.with_slo(wl, ttft_ms=800)
    assert set_.models[MODEL].slo.ttft_ms == 800 and set_.models[MODEL].slo.itl_ms == 40
    assert all(c.slo is None for c in set_.classes), "class overrides give way to the new bounds"
    with pytest.raises(KeyError):
        whatif.with_slo(wl, ttft_ms=1, models=["nope"])


# --------------------------------------------------------------------------- API and repr
def test_solved_plan_is_a_plan_with_tables_and_readable_reprs(tmp_path) -> None:
    from planner.io.planfile import load_plan, save_plan

    plan = solve(WL, FLEET)
    assert isinstance(plan, SolvedPlan) and isinstance(plan, Plan) and plan.feasible
    pools = plan.pools()
    assert list(pools["pool"]) == [p.id for p in plan.models[MODEL].pools]
    assert pools["gpus"].sum() == plan.total_gpus == sum(plan.gpus.values())
    assert pools["cost_per_hour"].sum() == pytest.approx(plan.cost_per_hour, abs=0.01)
    classes = plan.classes()
    assert set(classes["class"]) == {"chat", "summarise"}
    assert classes["meets_slo"].all(), "the planner's own predictions meet the SLO it planned for"
    text = repr(plan)
    assert f"${plan.cost_per_hour:,.2f}/h" in text and all(p.id.split("/")[1] in text for p in plan.models[MODEL].pools)
    html = plan._repr_html_()
    assert "<table" in html and plan.models[MODEL].pools[0].id in html and f"{plan.cost_per_hour:,.2f}" in html
    save_plan(tmp_path / "p.yaml", plan)
    assert load_plan(tmp_path / "p.yaml").model_dump() == Plan.model_validate(plan.model_dump()).model_dump()


def test_infeasible_plan_repr_shows_the_diagnosis() -> None:
    plan = solve(WL.scaled(100.0), FLEET)
    assert not plan.feasible and plan.diagnosis
    assert "INFEASIBLE" in repr(plan) and plan.diagnosis[0] in repr(plan)
    assert "<li>" in plan._repr_html_()


def test_public_api_names_resolve_lazily() -> None:
    import planner
    import planner.api

    assert planner.solve is planner.api.solve and planner.whatif is whatif
    assert {"Workload", "Fleet", "Slo", "load_workload", "load_fleet", "solve", "simulate_plan", "whatif"} <= set(planner.__all__)
    with pytest.raises(AttributeError):
        planner.no_such_name  # noqa: B018
    code = "import sys, planner.io.schema; print(sorted(m for m in ('solvers', 'planner.planning.whatif', 'planner.api') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", "importing a submodule must not load the solvers or the sweeps"


def test_simulate_reports_every_class() -> None:
    from planner import simulate_plan

    plan = solve(WL, FLEET)
    rep = simulate_plan(plan, WL, duration_s=60.0, seed=3)
    assert set(rep.classes["class_id"]) == {"chat", "summarise"}
    assert ((rep.classes["attainment"] >= 0) & (rep.classes["attainment"] <= 1)).all()
    assert rep.classes["requests"].sum() == len(rep.requests) > 0
    with pytest.raises(ValueError, match="infeasible"):
        simulate_plan(solve(WL.scaled(100.0), FLEET), WL)
    for bad in (0.0, -1.0, math.nan, math.inf):  # NaN was a numpy error (stop 49); the keyword is named (stop 52)
        with pytest.raises(ValueError, match="duration_s must be a finite number of seconds > 0"):
            simulate_plan(plan, WL, duration_s=bad)


def test_restricting_pairing_is_never_cheaper() -> None:
    """same_gpu_tp plans are same_gpu plans are 'any' plans: each restriction can only cost more."""
    df = whatif.pairing(WL, FLEET).set_index("pairing")
    assert list(df.index) == ["any", "same_gpu", "same_gpu_tp"]
    _no_cheaper(df.loc["same_gpu"], df.loc["any"])
    _no_cheaper(df.loc["same_gpu_tp"], df.loc["same_gpu"])
    fl = whatif.with_pairing(FLEET, "same_gpu")
    assert fl.limits.pairing == "same_gpu" and FLEET.limits.pairing == "any"  # pure


def test_random_routing_and_prompt_spread_are_never_cheaper() -> None:
    """Behind a plain Service each replica queues alone, and spread prompts wait longer and carry their own long
    prompts (planner/planning/capacity.py): neither makes the plan cheaper, and a larger spread never costs less."""
    routing = whatif.routing(WL, FLEET)
    assert list(routing.routing) == ["least_loaded", "random"] and routing.feasible.all()
    _no_cheaper(routing.iloc[1], routing.iloc[0])
    spread = whatif.length_spread(WL, FLEET, [0.0, 0.5, 1.5], isl_max=8192)
    assert spread.feasible.all()
    for k in (1, 2):
        _no_cheaper(spread.iloc[k], spread.iloc[k - 1])
    wl = whatif.with_length_spread(WL, 0.5, {MODEL: 8192})
    assert all(c.isl_scv == 0.5 and c.isl_max == 8192 for c in wl.classes)
    assert all(c.isl_max is None for c in whatif.with_length_spread(WL, 0.5, {"other-model": 8192}).classes)
    assert all(c.isl_scv is None for c in whatif.with_length_spread(WL, 0.0).classes)
    assert WL.classes[0].isl_scv is None  # pure: the input is untouched


def test_output_spread_costs_decode_kv_where_it_binds() -> None:
    """Outputs that spread hold the KV-bound decode pool's reservations longer (planner/planning/capacity.py,
    Output-length dispersion): on llama-2-70b H100 tp2 (35,610 KV tokens) a larger spread never costs less, and scv 2
    needs more decode replicas than outputs of one length; `with_output_spread` is pure."""
    wl = Workload(models={"llama-2-70b": ModelEntry(slo=Slo(ttft_ms=2000, itl_ms=100, percentile=99))},
                  classes=[RequestClass(id="chat", model="llama-2-70b", isl=1300, osl=300, rate_rps=4.0)])
    fl = Fleet(gpus={"H100-SXM-80GB": GpuInventory(available=256)},
               limits=FleetLimits(allowed_tp=[2], roles=["prefill", "decode"]))
    df = whatif.output_spread(wl, fl, [0.0, 1.0, 2.0])
    assert list(df.osl_scv) == [0.0, 1.0, 2.0] and df.feasible.all()
    for k in (1, 2):
        _no_cheaper(df.iloc[k], df.iloc[k - 1])
    assert df.iloc[2].cost_per_hour > df.iloc[0].cost_per_hour
    assert all(c.osl_scv == 1.5 for c in whatif.with_output_spread(wl, 1.5).classes)
    assert all(c.osl_scv is None for c in whatif.with_output_spread(wl, 0.0).classes)
    assert wl.classes[0].osl_scv is None


def test_a_kv_bound_plan_notes_what_an_output_spread_would_cost() -> None:
    """A class bound by a decode pool's KV cache with no osl_scv gets a note saying how much fewer of its requests a
    replica takes at output scv 1 (planner/planning/assemble.py, _output_spread_notes); stating the spread, or a
    pool the KV cache does not bind, gives none."""
    wl = Workload(models={"llama-2-70b": ModelEntry(slo=Slo(ttft_ms=2000, itl_ms=100, percentile=99))},
                  classes=[RequestClass(id="chat", model="llama-2-70b", isl=1300, osl=300, rate_rps=4.0)])
    fl = Fleet(gpus={"H100-SXM-80GB": GpuInventory(available=256)},
               limits=FleetLimits(allowed_tp=[2], roles=["prefill", "decode"]))
    notes = [n for n in solve(wl, fl).notes if "bound by the KV cache" in n]
    assert len(notes) == 1 and "llama-2-70b/decode/H100-SXM-80GB/tp2" in notes[0] and "fewer of its requests" in notes[0]
    stated = solve(whatif.with_output_spread(wl, 1.0), fl).notes
    assert not any("bound by the KV cache" in n for n in stated)
    roomy = solve(wl, fl.model_copy(update={"limits": fl.limits.model_copy(update={"allowed_tp": [4]})})).notes
    assert not any("bound by the KV cache" in n for n in roomy)  # tp4: 495,079 KV tokens, ITL binds


def test_a_bursty_class_keeps_its_output_spread_through_the_realised_split() -> None:
    """A bursty class (its pool's capacities re-solved with the realised split, assemble._burstier_splits) keeps its
    osl_scv in the decode KV check: scv 2 never costs less than equal outputs, and buys decode replicas."""
    wl = Workload(models={"llama-2-70b": ModelEntry(slo=Slo(ttft_ms=2000, itl_ms=100, percentile=99))},
                  classes=[RequestClass(id="chat", model="llama-2-70b", isl=1300, osl=300, rate_rps=4.0,
                                        burstiness={"idc_1s": 3.0, "idc_10s": 2.0})])
    fl = Fleet(gpus={"H100-SXM-80GB": GpuInventory(available=256)},
               limits=FleetLimits(allowed_tp=[2], roles=["prefill", "decode"]))
    plain, spread = solve(wl, fl), solve(whatif.with_output_spread(wl, 2.0), fl)
    assert plain.feasible and spread.feasible
    decode = {k: sum(p.replicas for mp in pl.models.values() for p in mp.pools if p.role == "decode")
              for k, pl in (("plain", plain), ("spread", spread))}
    assert spread.cost_per_hour >= plain.cost_per_hour and decode["spread"] > decode["plain"]


@pytest.mark.parametrize("sweep, keys", [
    (lambda: whatif.gpu_price(WL, FLEET, "H100-SXM-80GB", []), ["gpu", "price_per_hour"]),
    (lambda: whatif.slo_tightening(WL, FLEET, []), ["slo_factor"]),
    (lambda: whatif.slo_frontier(WL, FLEET, [], []), ["ttft_ms", "itl_ms"]),
    (lambda: whatif.pairing(WL, FLEET, []), ["pairing"]),
    (lambda: whatif.routing(WL, FLEET, []), ["routing"]),
    (lambda: whatif.length_spread(WL, FLEET, []), ["isl_scv"]),
    (lambda: whatif.output_spread(WL, FLEET, []), ["osl_scv"]),
    (lambda: whatif.headroom(WL, FLEET, []), ["inventory_factor", "inventory_gpus"]),
    (lambda: whatif.compare({}), ["scenario"]),
    (lambda: whatif.disaggregation_map(FLEET, MODEL, SLO, [], []), list(whatif.DISAGGREGATION_COLUMNS)),
])
def test_an_empty_sweep_is_an_empty_frame_with_its_columns(sweep, keys) -> None:
    """Found by hand at stop 50: an empty list of points was a pandas KeyError in eight sweeps (a (0, 0) frame in
    disaggregation_map); a notebook filtering its points down to none gets no rows and the columns it indexes."""
    df = sweep()
    assert len(df) == 0 and list(df.columns[:len(keys)]) == keys
    assert "feasible" in df.columns or "winner" in df.columns


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_gpu_mix_refuses_additions_that_are_not_a_positive_count(n) -> None:
    """gpu_mix(add={"L40S": -3}) ran a scenario named '+-3 L40S' (found by hand at stop 52); the CLI's --add-gpu refused
    it already."""
    with pytest.raises(ValueError, match="GPUs to add of L40S: expected an integer > 0"):
        whatif.gpu_mix(WL, FLEET, add={"L40S": n})


def test_a_pools_notes_name_its_classes_once() -> None:
    """What several classes of one pool leave to say is said once for the pool (found by hand at stop 53: a decode
    pool of a 12-class model got 8 'planned decode batch N exceeds the measured 128' notes): the measured H200 MoE's
    decode pool, planned beyond its measured batch for several classes, gets one batch note naming the largest and how
    many classes; two KV-bound classes of one pool get one note naming both."""
    from planner.planning.assemble import _PoolClassFacts, _pool_facts_notes

    wl = Workload(models={"qwen3-30b-a3b": ModelEntry(slo=Slo(ttft_ms=2000, itl_ms=100, percentile=90))},
                  classes=[RequestClass(id=f"c{i}", model="qwen3-30b-a3b", isl=512 + 100 * i, osl=256, rate_rps=20.0)
                           for i in range(4)])
    fl = Fleet(gpus={"H200-141GB": GpuInventory(available=64)},
               limits=FleetLimits(allowed_tp=[1], roles=["prefill", "decode"]))
    notes = solve(wl, fl).notes
    batch = [n for n in notes if "planned decode batch" in n]
    assert len(batch) == 1 and "up to" in batch[0] and "classes) exceeds the measured" in batch[0], notes
    merged = _pool_facts_notes({"m/decode/G/tp1": _PoolClassFacts(kv_bound={"a": (256, 0.10), "b": (512, 0.15)})})
    assert len(merged) == 1 and "classes a (256 tokens), b (512 tokens) are bound" in merged[0]
    assert "their mean length" in merged[0] and "10-15% fewer of their requests" in merged[0]


def _result_row(**kw: object) -> dict[str, object]:
    return {c: kw.get(c) for c in whatif.RESULT_COLUMNS} | {k: v for k, v in kw.items() if k.startswith("gpus_")}


def test_stacked_sweeps_count_every_gpu_type_and_keep_the_gpu_columns_last() -> None:
    """Two sweeps that bought different GPU types: in one table each feasible row counts 0 of the type it did not use,
    an infeasible row none, and gpus_<type> come after the key and result columns (found by hand
    at stop 54: `planner whatif --csv` left the traffic rows' L40S cell empty and put gpus_L40S after the headroom's
    key columns; files.CSV_FLOAT_FORMAT writes the counts as whole numbers, not '3.0')."""
    traffic = pd.DataFrame([{"traffic_factor": 1.0, **_result_row(feasible=True, gpus=3, **{"gpus_H100": 3.0})},
                            {"traffic_factor": 9.0, **_result_row(feasible=False, gpus=math.nan)}])
    traffic = traffic[["traffic_factor", *whatif.RESULT_COLUMNS, "gpus_H100"]]
    head = pd.DataFrame([{"inventory_factor": 1.0, **_result_row(feasible=True, gpus=5, gpus_L40S=4, gpus_H100=1)}])
    df = whatif.stack({"traffic": traffic, "headroom": head})
    assert list(df.columns) == ["question", "traffic_factor", "inventory_factor", *whatif.RESULT_COLUMNS,
                                "gpus_H100", "gpus_L40S"]
    assert list(df["question"]) == ["traffic", "traffic", "headroom"]
    assert df.loc[0, "gpus_L40S"] == 0 and df.loc[2, "gpus_L40S"] == 4
    assert df["gpus_L40S"].isna().tolist() == [False, True, False]  # the infeasible point bought nothing
    assert whatif.stack({}).columns[0] == "question"


def test_a_point_counts_the_gpus_it_planned_from_the_roofline_prior() -> None:
    """`prior_gpus`: the GPUs of pools whose laws are the roofline prior (found by hand at stop 54: 16 B200s, a card
    with no profile of any model, priced the fleet at -49% without a word). The added B200s are all prior; the
    baseline's H100 pools of its measured models are not."""
    from pathlib import Path

    from planner import load_fleet, load_workload

    example = Path(__file__).resolve().parents[1] / "examples" / "default"
    df = whatif.gpu_mix(load_workload(example / "workload.yaml"), load_fleet(example / "fleet.yaml"),
                        add={"B200": 16}).set_index("scenario")
    base, b200 = df.loc["baseline"], df.loc["+16 B200"]
    assert base["feasible"] and b200["feasible"]
    assert 0 <= base["prior_gpus"] < base["gpus"]
    assert b200.get("gpus_B200", 0) > 0 and b200["prior_gpus"] >= b200["gpus_B200"]


@pytest.mark.parametrize("sweep, says", [
    (lambda: whatif.traffic(WL, FLEET, "22"), "traffic factors: expected a list"),
    (lambda: whatif.traffic(WL, FLEET, 2), "traffic factors: expected a list"),
    (lambda: whatif.traffic(WL, FLEET, ["2"]), "traffic factors: expected numbers"),
    (lambda: whatif.traffic(WL, FLEET, [True]), "traffic factors: expected numbers"),
    (lambda: whatif.gpu_price(WL, FLEET, "A100-80GB", "3"), "prices: expected a list"),
    (lambda: whatif.gpu_mix(WL, FLEET, remove="A100-80GB"), "remove: expected a list"),
    (lambda: whatif.slo_tightening(WL, FLEET, "0.5"), "SLO factors: expected a list"),
    (lambda: whatif.slo_frontier(WL, FLEET, "400", [40]), "ttft_ms: expected a list"),
    (lambda: whatif.slo_frontier(WL, FLEET, [400], [40], models=MODEL), "models: expected a list"),
    (lambda: whatif.with_slo(WL, 400, models=MODEL), "models: expected a list"),
    (lambda: whatif.disaggregation_map(FLEET, MODEL, SLO, "1024", [128]), "isl: expected a list"),
    (lambda: whatif.pairing(WL, FLEET, "any"), "policies: expected a list"),
    (lambda: whatif.routing(WL, FLEET, "random"), "policies: expected a list"),
    (lambda: whatif.length_spread(WL, FLEET, "0.5"), "scvs: expected a list"),
    (lambda: whatif.output_spread(WL, FLEET, "1"), "scvs: expected a list"),
    (lambda: whatif.headroom(WL, FLEET, "1"), "inventory factors: expected a list"),
])
def test_a_sweep_refuses_a_string_for_its_list_of_points(sweep, says: str) -> None:
    """A string is iterable: traffic(wl, fl, "22") solved two points at factor 2.0, slo_tightening(wl, fl, "0.5")
    failed on a 0 ms SLO, gpu_mix(remove="L40S") on GPU type 'L' (found in QA); now a TypeError naming the argument."""
    with pytest.raises(TypeError, match=says):
        sweep()


@pytest.mark.parametrize("factor", [math.nan, -1.0, math.inf])
def test_headroom_refuses_an_inventory_factor_before_any_solve(factor: float) -> None:
    """NaN was "cannot convert float NaN to integer", -1 a pydantic error on available = -24 GPUs (found in QA); each
    factor is checked before the first solve (a ValueError, as traffic's are)."""
    with pytest.raises(ValueError, match="inventory factor .*: expected a finite number >= 0"):
        whatif.headroom(WL, FLEET, [1.0, factor])


def test_without_gpu_drops_the_floors_of_that_types_pools() -> None:
    """limits.pool_min_replicas on a pool of the removed type go with it, as its current replicas do (found in QA:
    `planner whatif --remove-gpu L40S` of a fleet with a floor on an L40S pool was exit 2, "GPU type 'L40S' is not in
    the fleet's gpus", on the fleet the what-if itself had made)."""
    floors = {f"{MODEL}/prefill/A100-80GB/tp1": 2, f"{MODEL}/decode/H100-SXM-80GB/tp1": 1}
    fl = FLEET.model_copy(update={"limits": FLEET.limits.model_copy(update={"pool_min_replicas": floors})})
    no_a100 = whatif.without_gpu(fl, "A100-80GB")
    assert no_a100.limits.pool_min_replicas == {f"{MODEL}/decode/H100-SXM-80GB/tp1": 1}
    assert fl.limits.pool_min_replicas == floors  # the input is untouched
    assert solve(WL, no_a100).feasible


def test_without_gpu_drops_the_pairing_rules_that_name_that_type() -> None:
    """A forbid_pairs rule naming the removed type on either side forbids nothing without it (found in QA: the default
    fleet with {prefill: L40S, decode: '*'} and `planner whatif --remove-gpu L40S` was exit 2, "GPU type 'L40S' is
    not in the fleet's gpus"); the other rules stay."""
    from planner.io.schema import PairRule

    rules = [PairRule(prefill="A100-80GB", decode="*"), PairRule(prefill="*", decode="A100-80GB/tp2"),
             PairRule(prefill="H100-SXM-80GB/tp1", decode="H100-SXM-80GB/tp2")]
    fl = FLEET.model_copy(update={"limits": FLEET.limits.model_copy(update={"forbid_pairs": rules})})
    no_a100 = whatif.without_gpu(fl, "A100-80GB")
    assert no_a100.limits.forbid_pairs == rules[2:] and fl.limits.forbid_pairs == rules
    assert solve(WL, no_a100).feasible



def test_a_sweep_point_whose_plan_predicts_a_class_over_its_slo_says_which():
    """Found by a helper at stop 58: what-if points are the closed form's plans (not simulated), and notebook 02's
    prompt-spread point at scv 0.66 read $59.19/h with no sign that its plan predicts llama-3.1-8b/summarise over its
    400-ms TTFT SLO behind its pool's mix, where `solve`'s default verifies and re-sizes it. The `over_slo` column names
    such classes ('' where none is)."""
    from pathlib import Path

    from planner.api import laws, load_fleet, load_workload
    from planner.planning import whatif

    catalog, _ = laws()
    root = Path(__file__).resolve().parents[1] / "examples" / "default"
    wl, fl = load_workload(root / "workload.yaml"), load_fleet(root / "fleet.yaml")
    context = {m: catalog.model(m).max_context for m in wl.models}
    df = whatif.length_spread(wl, fl, [0.0, 0.66], isl_max=context).set_index("isl_scv")
    assert "over_slo" in whatif.RESULT_COLUMNS
    assert df.loc[0.0, "over_slo"] == ""
    assert "llama-3.1-8b/summarise" in df.loc[0.66, "over_slo"].split(", ")


@pytest.mark.parametrize("sweep, says", [
    (lambda: whatif.gpu_price(WL, FLEET, "A100-80GB", [3.0, math.nan]), r"prices: expected finite USD/h .*, got nan in"),
    (lambda: whatif.gpu_price(WL, FLEET, "A100-80GB", [3.0, 0]), r"prices: expected finite USD/h .*, got 0.0 in"),
    (lambda: whatif.gpu_price(WL, FLEET, "A100-80GB", [3.0, -1.5]), r"prices: expected .*, got -1.5 in"),
    (lambda: whatif.slo_tightening(WL, FLEET, [1.0, math.nan]), r"SLO factors: expected finite numbers > 0, got nan"),
    (lambda: whatif.slo_tightening(WL, FLEET, [1.0, 0]), r"SLO factors: expected finite numbers > 0, got 0.0"),
    (lambda: whatif.slo_tightening(WL, FLEET, [1.0, -0.5]), r"SLO factors: expected finite numbers > 0, got -0.5"),
    (lambda: whatif.slo_frontier(WL, FLEET, [400, math.nan], [40]), r"ttft_ms: expected finite milliseconds > 0"),
    (lambda: whatif.slo_frontier(WL, FLEET, [400], [40, 0]), r"itl_ms: expected finite milliseconds > 0, got 0.0"),
    (lambda: whatif.slo_frontier(WL, FLEET, [400], [-40]), r"itl_ms: expected finite milliseconds > 0, got -40.0"),
    (lambda: whatif.length_spread(WL, FLEET, [0.5, math.nan]), r"scvs: expected finite squared CVs from 0"),
    (lambda: whatif.length_spread(WL, FLEET, [0.5, -1]), r"scvs: expected finite squared CVs from 0 .*, got -1.0"),
    (lambda: whatif.output_spread(WL, FLEET, [0.5, math.inf]), r"scvs: expected finite squared CVs from 0 .*, got inf"),
    (lambda: whatif.output_spread(WL, FLEET, [0.5, -0.1]), r"scvs: expected finite squared CVs from 0 .*, got -0.1"),
    (lambda: whatif.pairing(WL, FLEET, ["any", "same"]), r"policies: expected 'any' or 'same_gpu' or 'same_gpu_tp', got"),
    (lambda: whatif.routing(WL, FLEET, ["random", "rr"]), r"policies: expected 'least_loaded' or 'random', got 'rr'"),
])
def test_a_sweep_refuses_a_point_outside_its_range_before_any_solve(sweep, says: str, monkeypatch) -> None:
    """Found in QA: gpu_price(prices=[3.0, nan]) solved the first point, then stopped on a pydantic ValidationError
    naming price_per_hour (an internal field), as NaN, negative or zero points did in every sweep but traffic, headroom
    and disaggregation_map; now a ValueError naming the argument, before the first solve."""
    def no_solve(*a, **k):
        raise AssertionError("solved before the points were checked")

    monkeypatch.setattr(whatif, "solve", no_solve)
    with pytest.raises(ValueError, match=says):
        sweep()


@pytest.mark.parametrize("factor", [math.nan, -0.5, math.inf])
def test_with_inventory_factor_names_a_factor_it_cannot_apply(factor: float) -> None:
    """with_inventory_factor(fleet, nan) was "cannot convert float NaN to integer" (found in QA)."""
    with pytest.raises(ValueError, match="inventory factor .*: expected a finite number >= 0"):
        whatif.with_inventory_factor(FLEET, factor)
