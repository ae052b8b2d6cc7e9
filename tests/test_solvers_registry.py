"""The solver seam's registries and typed records: backends, objectives, binding constraints, relaxations."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from solvers_check import brute_force, violations
from typer.testing import CliRunner

from solvers.backends import BACKENDS, solve
from solvers.constraints import Binding, Family, TargetKind
from solvers.diagnose import Relaxation, diagnose
from solvers.formulation import build, unit_weight
from solvers.objectives import OBJECTIVES, Objective, objective_help, objective_names
from solvers.problem import ClassSpec, Problem, VariantSpec
from solvers.runners import backend_entry, backend_help, backend_names, register
from solvers.runners import base as runners_base
from solvers.runners.pulp_backends import PulpCbc


def small_pd(objective: str = "cost") -> Problem:
    classes = [ClassSpec("a", "m", 3.0), ClassSpec("b", "m", 1.5)]
    variants = [VariantSpec("p1", "m", "prefill", "G1", 1, 2.0, power_w=700.0),
                VariantSpec("p2", "m", "prefill", "G2", 2, 3.5, power_w=800.0),
                VariantSpec("d1", "m", "decode", "G1", 1, 2.0, power_w=700.0),
                VariantSpec("mx", "m", "mixed", "G2", 2, 3.5, power_w=800.0)]
    cap = {("a", "p1"): 2.0, ("a", "p2"): 5.0, ("a", "d1"): 1.5, ("a", "mx"): 1.2,
           ("b", "p1"): 4.0, ("b", "d1"): 0.8, ("b", "mx"): 0.9}
    return Problem(classes, variants, cap, inventory={"G1": 6}, objective=objective)


# --------------------------------------------------------------------------- backends
def test_backend_names_come_from_the_registry_default_first() -> None:
    assert backend_names()[0] == "highs"
    assert set(backend_names()) == {"highs", "cbc", "ortools"}
    assert BACKENDS == tuple(backend_names())
    assert backend_help() == " | ".join(backend_names())
    with pytest.raises(ValueError, match="backend must be one of"):
        backend_entry("gurobi")


@pytest.fixture
def extra_backend() -> Iterator[str]:
    """A backend added the way a new one is: one class with `@register`; removed again afterwards."""

    @register("cbc-again", "CBC (test)", "CBC registered a second time, under another name")
    class CbcAgain(PulpCbc):
        name = "test-cbc-again"

    try:
        yield "cbc-again"
    finally:
        del runners_base._REGISTRY["cbc-again"]


def test_a_newly_registered_backend_solves_by_name(extra_backend: str) -> None:
    assert extra_backend in backend_names()
    prob = small_pd()
    sol = solve(prob, extra_backend)
    assert sol.status == "optimal" and sol.backend == "test-cbc-again"
    best, _ = brute_force(prob, n_max=6)
    assert sol.objective == pytest.approx(best, rel=1e-6)
    assert violations(prob, sol) == []


def test_registering_a_name_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register("highs", "x", "x")(PulpCbc)


# --------------------------------------------------------------------------- objectives
def test_every_objective_is_registered_with_its_unit() -> None:
    assert set(OBJECTIVES) == set(Objective)
    assert {o.value: s.unit for o, s in OBJECTIVES.items()} == {
        "cost": "USD/h", "gpus": "GPUs", "power": "W", "max_load": "x load"}
    assert objective_names() == ["cost", "gpus", "power", "max_load"]
    assert all(name in objective_help() for name in objective_names())


@pytest.mark.parametrize("objective,expected", [("cost", [2.0, 3.5, 2.0, 3.5]), ("gpus", [1.0, 2.0, 1.0, 2.0]),
                                                ("power", [700.0, 800.0, 700.0, 800.0])])
def test_objective_weight_per_replica(objective: str, expected: list[float]) -> None:
    prob = small_pd(objective)
    assert prob.objective is Objective(objective)
    assert [unit_weight(prob, v) for v in prob.variants] == expected


@pytest.mark.parametrize("objective", ["gpus", "power"])
def test_each_objective_is_minimised(objective: str) -> None:
    prob = small_pd(objective)
    sol = solve(prob)
    best, _ = brute_force(prob, n_max=6)
    assert sol.objective == pytest.approx(best, rel=1e-6)


def test_unknown_objective_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="objective must be cost, gpus, power or max_load, got 'speed'"):
        small_pd("speed")


# --------------------------------------------------------------------------- typed constraint records
def test_binding_renders_as_the_old_constraint_name() -> None:
    assert str(Binding(Family.INVENTORY, "H100")) == "inventory[H100]"
    assert str(Binding(Family.KV_LINK, "m/prefill/H100/tp1")) == "kv_link[m/prefill/H100/tp1]"
    assert Family.INVENTORY.target_kind is TargetKind.RESOURCE
    assert all(isinstance(f.target_kind, TargetKind) for f in Family)


def test_bindings_are_typed_records() -> None:
    prob = small_pd()
    prob.inventory = {"G1": 6, "G2": 2}
    sol = solve(prob)
    assert sol.ok
    assert all(isinstance(b, Binding) and isinstance(b.family, Family) for b in sol.binding)
    assert Binding(Family.INVENTORY, "G1") in sol.binding  # 2 prefill + 4 decode replicas on all 6 G1 GPUs


def test_relaxation_kinds_are_families() -> None:
    assert Relaxation("inventory", "H100", 3.0, "GPUs").kind is Family.INVENTORY
    prob = small_pd()
    prob.inventory = {"G1": 1, "G2": 0}
    found = diagnose(prob)
    assert found and all(isinstance(r.kind, Family) for r in found)
    assert Family.INVENTORY in {r.kind for r in found}


def test_no_pairing_carries_its_keys_typed() -> None:
    classes = [ClassSpec("c", "m", 1.0)]
    variants = [VariantSpec("pA", "m", "prefill", "A", 1, 1.0), VariantSpec("dB", "m", "decode", "B", 1, 1.0)]
    prob = Problem(classes, variants, {("c", "pA"): 2.0, ("c", "dB"): 2.0}, forbidden_pairs=frozenset({("A", "B")}))
    (rel,) = diagnose(prob)
    assert rel.kind is Family.NO_PAIRING and rel.prefill_keys == ("A",) and rel.decode_keys == ("B",)
    assert rel.detail == "A>B"


def test_row_kinds_are_an_enum_with_their_names() -> None:
    model = build(small_pd())
    assert {r.name for r in model.rows if r.kind == "inventory"} == {"inventory[G1]"}


# --------------------------------------------------------------------------- the CLI reads the registries
def test_cli_choices_and_help_come_from_the_registries(extra_backend: str) -> None:
    from planner.cli.main import app

    runner = CliRunner()
    res = runner.invoke(app, ["solve", "--workload", "w.yaml", "--fleet", "f.yaml", "--backend", "nope"])
    assert res.exit_code != 0
    assert "cbc-again" in res.output  # registered after the CLI was imported: the check reads the registry
