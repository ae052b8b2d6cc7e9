"""Infeasible instances: the diagnosis names the class, resource, rule and amount at fault, and
applying the relaxation it proposes makes the instance feasible."""

from __future__ import annotations

import dataclasses

import pytest
from solvers_check import brute_force

from solvers.backends import BACKENDS, solve
from solvers.diagnose import Relaxation, diagnose
from solvers.problem import ClassSpec, Problem, VariantSpec


def pd_problem(h100: int) -> Problem:
    """10 req/s; prefill cap 3 (1 GPU), decode cap 5 (2 GPUs): 4 prefill + 2 decode = 8 GPUs."""
    classes = [ClassSpec("chat", "llama", 10.0)]
    variants = [VariantSpec("p", "llama", "prefill", "H100", 1, 4.0),
                VariantSpec("d", "llama", "decode", "H100", 2, 8.0)]
    return Problem(classes, variants, {("chat", "p"): 3.0, ("chat", "d"): 5.0}, inventory={"H100": h100})


@pytest.mark.parametrize("backend", BACKENDS)
def test_inventory_short_says_which_resource_and_how_many(backend):
    prob = pd_problem(h100=5)
    assert solve(prob, backend).status == "infeasible"
    assert diagnose(prob, backend) == [Relaxation("inventory", "H100", 3.0, "GPUs")]
    assert solve(pd_problem(h100=8), backend).status == "optimal"


def test_class_without_capable_variant_is_named():
    prob = pd_problem(h100=100)
    prob.classes.append(ClassSpec("huge-context", "llama", 2.0))
    prob.capacity[("huge-context", "p")] = 1.0  # prefill can, no decode variant can hold its KV
    assert solve(prob).status == "infeasible"
    found = diagnose(prob)
    assert found == [Relaxation("no_variant", "huge-context", 2.0, "req/s", "decode")]
    prob.classes.append(ClassSpec("too-slow", "llama", 1.0))
    assert Relaxation("no_variant", "too-slow", 1.0, "req/s", "prefill") in diagnose(prob)


def test_capped_pool_leaves_demand_unserved():
    prob = pd_problem(h100=100)
    prob.variants[1] = dataclasses.replace(prob.variants[1], max_replicas=1)  # decode serves 5 of 10 req/s
    found = diagnose(prob)
    assert len(found) == 1 and found[0].kind == "unserved" and found[0].target == "chat"
    assert found[0].amount == pytest.approx(5.0)


def test_step_limit_relaxation():
    prob = pd_problem(h100=100)
    prob.variants = [dataclasses.replace(v, current=1) for v in prob.variants]
    prob.max_step = 1  # prefill may reach 2 of the 4 it needs
    assert solve(prob).status == "infeasible"
    assert diagnose(prob) == [Relaxation("step", "p", 2.0, "replicas", "up")]


def test_min_replicas_against_inventory():
    """Two replicas per side need 2 + 2x2 = 6 GPUs, 5 exist: the policy bends before GPUs are bought."""
    prob = pd_problem(h100=5)
    prob.classes = [ClassSpec("chat", "llama", 1.0)]
    prob.min_replicas_per_group = {"llama": 2}
    assert brute_force(prob, 4) is None
    assert diagnose(prob) == [Relaxation("min_replicas", "llama", 1.0, "replicas", "decode")]


def test_feasible_instance_needs_no_relaxation():
    assert diagnose(pd_problem(h100=8)) == []
