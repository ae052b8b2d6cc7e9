"""Property tests: on random small instances every backend's answer is a valid plan (checked by the
independent checker in solvers_check.py) and as cheap as the brute-force optimum."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from solvers_check import brute_force, violations

from solvers.backends import BACKENDS, solve
from solvers.diagnose import diagnose
from solvers.problem import ClassSpec, Problem, VariantSpec

N_MAX = 3
"""Replica cap per variant in the random instances, so brute force over {0..N_MAX}^V is exact."""


@st.composite
def instances(draw) -> Problem:
    n_var = draw(st.integers(2, 4))
    n_cls = draw(st.integers(1, 3))
    groups = ["g0", "g1"] if draw(st.booleans()) and n_var >= 3 else ["g0"]
    classes = [ClassSpec(f"c{i}", groups[i % len(groups)], draw(st.floats(0.1, 6.0)),
                         kv_bytes=draw(st.sampled_from([0.0, 1e8, 1e9]))) for i in range(n_cls)]
    variants = []
    for j in range(n_var):
        variants.append(VariantSpec(
            f"v{j}", groups[j % len(groups)], draw(st.sampled_from(["prefill", "decode", "mixed"])),
            draw(st.sampled_from(["A", "B"])), draw(st.sampled_from([1, 2])), draw(st.floats(1.0, 10.0)),
            utilization=draw(st.sampled_from([0.7, 1.0])), max_replicas=N_MAX,
            current=draw(st.integers(0, N_MAX)),
            link_bytes_per_s=draw(st.sampled_from([None, 2e9])),
            power_w=draw(st.sampled_from([300.0, 700.0]))))
    cap = {}
    for c in classes:
        for v in variants:
            if v.group == c.group and draw(st.integers(0, 4)) > 0:
                cap[(c.id, v.id)] = draw(st.floats(0.5, 8.0))
    inventory = {"A": draw(st.integers(0, 8))} if draw(st.booleans()) else {}
    prob = Problem(classes, variants, cap, inventory=inventory,
                   min_replicas_per_group={"g0": draw(st.integers(0, 1))},
                   pd_ratio_bounds={"g0": (0.25, 4.0)} if draw(st.booleans()) else {},
                   max_step=draw(st.sampled_from([None, 2])),
                   churn_cost=draw(st.sampled_from([0.0, 0.5])),
                   objective=draw(st.sampled_from(["cost", "gpus", "power"])),
                   forbidden_pairs=draw(st.sampled_from([frozenset(), frozenset({("A", "B")}),
                                                          frozenset({("A", "B"), ("B", "A")})])))
    return prob


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prob=instances(), backend=st.sampled_from(BACKENDS))
def test_random_instances_optimal_and_valid(prob, backend):
    best = brute_force(prob, N_MAX)
    sol = solve(prob, backend, mip_gap=1e-9)
    if best is None:
        assert sol.status == "infeasible", sol
        # the diagnosis proposes at least one change, each with a positive amount
        found = diagnose(prob)
        assert found and all(r.amount > 0 for r in found)
        return
    assert sol.status == "optimal", (sol.status, sol.message)
    assert violations(prob, sol, tol=1e-5) == []
    assert sol.objective == pytest.approx(best[0], rel=1e-6, abs=1e-6)
