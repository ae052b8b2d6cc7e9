"""P->D pairing rules: a fleet that forbids some prefill->decode hand-offs gets a plan that honours them.

DESIGN.md: "P and D of one request may sit on different GPU types and TP sizes unless the fleet file
forbids a pairing". Checked at every layer that carries the rule: the ILP (pair flows), the planner
(plan.pairing per prefill pool), the plan file loader, the infeasibility diagnosis, the simulator
(which decode pool a prefill pool's requests reach) and the controller's actuators.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from controllers.actuate import PAIRING_KEY, ROUTING_KEY, ApplyRequest, KubernetesActuator, MetricsActuator
from controller_k8s_fake import FakeK8sServer
from planner.io.errors import InputError
from planner.io.files import dump_yaml, load_model, write_atomic
from planner.io.planfile import load_plan
from planner.planning.explain import explain
from planner.planning.assemble import plan_workload
from planner.io.schema import Fleet, Plan, Variant, Workload
from planner.simulate.arrivals import poisson_arrivals
from planner.simulate.fleet import FleetSimulator
from solvers.backends import BACKENDS, solve
from solvers.diagnose import diagnose
from solvers.problem import ClassSpec, Problem, VariantSpec

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "default"


# --------------------------------------------------------------------------- the ILP alone
def _two_type_problem(forbidden: frozenset = frozenset(), rate: float = 15.0) -> Problem:
    """Type A prefills cheaply, type B decodes cheaply: unrestricted, the optimum pairs A -> B."""
    vs = [VariantSpec("pA", "g", "prefill", "A", 1, 1.0), VariantSpec("pB", "g", "prefill", "B", 1, 3.0),
          VariantSpec("dA", "g", "decode", "A", 1, 3.0), VariantSpec("dB", "g", "decode", "B", 1, 1.0)]
    return Problem(classes=[ClassSpec("c", "g", rate)], variants=vs,
                   capacity={("c", v.id): 10.0 for v in vs}, forbidden_pairs=forbidden)


@pytest.mark.parametrize("backend", BACKENDS)
def test_forbidding_the_cheap_pairing_costs_what_enumeration_says(backend: str) -> None:
    free = solve(_two_type_problem(), backend=backend)
    assert free.status == "optimal" and free.objective == pytest.approx(4.0)  # 2 pA + 2 dB
    assert free.pair_flow == {}  # no rule: no pair flows in the model
    ruled = solve(_two_type_problem(frozenset({("A", "B")})), backend=backend)
    # By hand: A->A costs 1+3 per 10 req/s, B->B 3+1, B->A 3+3; 15 req/s need 2 prefill + 2 decode
    # replicas whichever allowed pairs mix, so 8.
    assert ruled.status == "optimal" and ruled.objective == pytest.approx(8.0)
    assert all((a, b) != ("A", "B") for (_, a, b) in ruled.pair_flow)
    # pair flows carry exactly each side's routed rate
    for key, side in (("A", "pA"), ("B", "pB")):
        out = sum(y for (_, a, _), y in ruled.pair_flow.items() if a == key)
        assert out == pytest.approx(ruled.flow.get(("c", side), 0.0), abs=1e-6)
    for key, side in (("A", "dA"), ("B", "dB")):
        into = sum(y for (_, _, b), y in ruled.pair_flow.items() if b == key)
        assert into == pytest.approx(ruled.flow.get(("c", side), 0.0), abs=1e-6)


def test_no_allowed_pairing_is_a_structural_diagnosis() -> None:
    every = frozenset((a, b) for a in "AB" for b in "AB")
    p = _two_type_problem(every)
    assert solve(p).status == "infeasible"
    rel = diagnose(p)
    assert [(r.kind, r.target, r.detail) for r in rel] == [("no_pairing", "c", "A,B>A,B")]


# --------------------------------------------------------------------------- the planner
@pytest.fixture(scope="module")
def workload() -> Workload:
    return load_model(Workload, EXAMPLE / "workload.yaml")


def _fleet(**limits) -> Fleet:
    doc = load_model(Fleet, EXAMPLE / "fleet.yaml").model_dump()
    return Fleet.model_validate({**doc, "limits": {**doc["limits"], **limits}})


def _pinned_pairs(plan: Plan) -> list[tuple[Variant, Variant]]:
    """Every (prefill pool, decode pool) the plan's pairing sends KV along; each pool's weights sum to 1."""
    out = []
    for mp in plan.models.values():
        for by_prefill in mp.pairing.values():
            for pre, weights in by_prefill.items():
                assert sum(weights.values()) == pytest.approx(1.0, abs=1e-3), pre
                out += [(Variant.parse(pre), Variant.parse(dec)) for dec in weights]
    return out


def _check_consistent(plan: Plan) -> None:
    """Each decode pool receives, through the pairing, exactly the share the routing gives it."""
    for mp in plan.models.values():
        role = {p.id: p.role for p in mp.pools}
        for cid, by_prefill in mp.pairing.items():
            w = mp.routing[cid]
            pre_share = sum(x for p, x in w.items() if role[p] == "prefill")
            for d in (p for p in w if role[p] == "decode"):
                via = sum(w[p] * ws.get(d, 0.0) for p, ws in by_prefill.items())
                assert via == pytest.approx(pre_share * w[d], abs=2e-3), (cid, d)


@pytest.fixture(scope="module")
def free_plan(workload, perf, catalog) -> Plan:
    return plan_workload(workload, _fleet(), perf, catalog)


@pytest.mark.parametrize("policy", ["same_gpu", "same_gpu_tp"])
def test_pairing_policy_is_honoured_and_priced(policy, workload, perf, catalog, free_plan) -> None:
    plan = plan_workload(workload, _fleet(pairing=policy), perf, catalog)
    assert plan.feasible and plan.cost_per_hour >= free_plan.cost_per_hour - 1e-6
    assert free_plan.models and all(not mp.pairing for mp in free_plan.models.values())
    pinned = _pinned_pairs(plan)
    assert pinned  # the example disaggregates llama-2-70b, so there is something to pin
    for p, d in pinned:
        assert d.gpu == p.gpu and (policy == "same_gpu" or d.tp == p.tp), (p.id, d.id)
    _check_consistent(plan)
    assert any("KV from" in line for line in explain(plan))


def test_a_forbid_rule_removes_exactly_that_pairing(workload, perf, catalog, free_plan) -> None:
    # Forbid every pairing the unrestricted plan uses across GPU types or TP sizes, one rule each.
    used = {(Variant.parse(p), Variant.parse(d))
            for mp in free_plan.models.values() for cid, w in mp.routing.items()
            for p in w if Variant.parse(p).role == "prefill" for d in w if Variant.parse(d).role == "decode"}
    assert used, "the example plan should disaggregate something"
    rules = [{"prefill": f"{p.gpu}/tp{p.tp}", "decode": f"{d.gpu}/tp{d.tp}", "reason": "test"} for p, d in used]
    fleet = _fleet(forbid_pairs=rules)
    plan = plan_workload(workload, fleet, perf, catalog)
    assert plan.feasible
    for p, d in _pinned_pairs(plan):
        assert not fleet.limits.pair_forbidden(p.gpu, p.tp, d.gpu, d.tp), (p.id, d.id)
    _check_consistent(plan)


def test_every_pairing_forbidden_without_mixed_is_explained(workload, perf, catalog) -> None:
    fleet = _fleet(roles=["prefill", "decode"], forbid_pairs=[{"prefill": "*", "decode": "*"}])
    plan = plan_workload(workload, fleet, perf, catalog)
    assert not plan.feasible
    text = " ".join(plan.diagnosis)
    assert "forbids every such pairing" in text and "llama-2-70b/chat" in text and "allow mixed pools" in text


def test_bad_rules_name_the_field(workload, perf, catalog) -> None:
    with pytest.raises(InputError) as e:
        plan_workload(workload, _fleet(forbid_pairs=[{"prefill": "V100", "decode": "*"}]), perf, catalog)
    assert "limits.forbid_pairs[0].prefill" in str(e.value) and "V100" in str(e.value)
    with pytest.raises(ValidationError) as e2:
        Fleet.model_validate({"gpus": {"A100-80GB": {"available": 8}},
                              "limits": {"forbid_pairs": [{"prefill": "A100-80GB/x4", "decode": "*"}]}})
    assert "GPU/tpN" in str(e2.value)
    with pytest.raises(ValidationError):
        Fleet.model_validate({"gpus": {}, "limits": {"pairing": "same_rack"}})


def test_plan_file_pairing_is_checked_on_load(tmp_path, workload, perf, catalog) -> None:
    plan = plan_workload(workload, _fleet(pairing="same_gpu"), perf, catalog)
    path = tmp_path / "plan.yaml"
    write_atomic(path, dump_yaml(plan.model_dump(mode="json")))
    assert load_plan(path).models["llama-2-70b"].pairing == plan.models["llama-2-70b"].pairing
    doc = plan.model_dump(mode="json")
    cid, by_prefill = next(iter(doc["models"]["llama-2-70b"]["pairing"].items()))
    pre = next(iter(by_prefill))
    by_prefill[pre] = {pre: 1.0}  # KV "sent" to a prefill pool
    write_atomic(path, dump_yaml(doc))
    with pytest.raises(InputError) as e:
        load_plan(path)
    assert f"models.llama-2-70b.pairing.{cid}.{pre}" in str(e.value) and "decode pools" in str(e.value)


# A class's pairing names each of its prefill pools (found in QA: one prefill pool's line dropped from a class's pairing;
# explain said nothing of where its KV goes and the simulator drew its decode pools from the class's decode weights,
# across a pair the fleet forbade). Two prefill and two decode pools, each prefill pool paired with the decode pool of
# its GPU type; each row: the prefill pools whose pairing line is kept, then the field refused (None: the plan loads).
@pytest.mark.parametrize("kept,refused", [
    (("m/prefill/A/tp1", "m/prefill/B/tp1"), None),     # as the planner writes it
    ((), None),                                         # no pairing for the class: any prefill pool to any decode pool
    (("m/prefill/A/tp1",), "m/prefill/B/tp1"),          # B's KV: nowhere said
])
def test_a_class_pairing_names_each_of_its_prefill_pools(tmp_path, kept, refused) -> None:
    pools = [{"id": f"m/{role}/{g}/tp1", "role": role, "gpu": g, "tp": 1, "replicas": 1, "gpus": 1, "cost_per_hour": 1.0,
              "utilization": 0.5} for role in ("prefill", "decode") for g in "AB"]
    pairing = {pid: {pid.replace("prefill", "decode"): 1.0} for pid in kept}
    doc = {"solver": {"backend": "test", "status": "optimal"}, "models": {"m": {
        "pools": pools, "routing": {"c": {p["id"]: 0.5 for p in pools}}, "predicted": {}, "pairing": {"c": pairing} if pairing else {}}}}
    path = tmp_path / "plan.yaml"
    write_atomic(path, dump_yaml(doc))
    if refused is None:
        assert load_plan(path).models["m"].pairing == ({"c": pairing} if pairing else {})
        return
    with pytest.raises(InputError) as e:
        load_plan(path)
    assert str(path) in str(e.value) and "models.m.pairing.c" in str(e.value) and f"not of {refused}" in str(e.value)


# --------------------------------------------------------------------------- the simulator
def test_simulator_sends_kv_only_along_planned_pairs(workload, perf, catalog) -> None:
    plan = plan_workload(workload, _fleet(pairing="same_gpu_tp"), perf, catalog)
    arr = poisson_arrivals(workload, 60, np.random.default_rng(0))
    sim = FleetSimulator.from_plan(plan, perf.get, arr, workload, seed=3)
    ids = [p.id for p in sim.pool_list]
    pairs = {(ids[p], ids[d]) for p, d in zip(sim.req.pf_pool, sim.req.dc_pool) if d >= 0}
    assert pairs, "some requests should be disaggregated"
    for pre, dec in pairs:
        p, d = Variant.parse(pre), Variant.parse(dec)
        assert (p.gpu, p.tp) == (d.gpu, d.tp)
    # set_routing carries a pairing too, checked before anything changes
    mp = plan.models["llama-2-70b"]
    cid = next(iter(mp.pairing))
    pre = next(iter(mp.pairing[cid]))
    with pytest.raises(InputError) as e:
        sim.set_routing({cid: mp.routing[cid]}, pairing={cid: {pre: {"llama-2-70b/decode/L40S/tp8": 1.0}}})
    assert "not a decode pool" in str(e.value)


# --------------------------------------------------------------------------- the controller's actuators
def test_actuators_publish_the_pairing() -> None:
    """KubernetesActuator against the FAKE Kubernetes API of tests/controller_k8s_fake.py (no
    kube-apiserver binary can run here); MetricsActuator through its prometheus registry."""
    pre, dec = "m/prefill/A100-80GB/tp4", "m/decode/A100-80GB/tp4"
    routing = {"m": {"m": {pre: 1.0, dec: 1.0}}}
    pairing = {"m": {"m": {pre: {dec: 1.0}}}}
    with FakeK8sServer() as srv:
        a = KubernetesActuator(srv.api_client(), "llm", sleep=lambda s: None)
        assert a.apply(ApplyRequest({}, routing, "t", pairing=pairing)).routing_changed
        data = srv.state.objects[("configmap", "llm", "pd-planner-routing")]["data"]
        assert json.loads(data[ROUTING_KEY]) == routing and json.loads(data[PAIRING_KEY]) == pairing
        assert not a.apply(ApplyRequest({}, routing, "t", pairing=pairing)).routing_changed  # idempotent
        assert a.apply(ApplyRequest({}, routing, "t")).routing_changed  # pairing no longer planned: key removed
        assert PAIRING_KEY not in srv.state.objects[("configmap", "llm", "pd-planner-routing")]["data"]
    m = MetricsActuator()
    m.apply(ApplyRequest({}, routing, "t", pairing=pairing))
    assert m.registry.get_sample_value("pairing_weight", {"model": "m", "class_id": "m", "prefill_pool": pre,
                                                           "decode_pool": dec}) == 1.0


def test_example_pairing_fleet(workload, perf, catalog) -> None:
    """examples/default/fleet-pairing.yaml: same GPU type, and no tp2 prefill handing KV to tp8 decode."""
    fleet = load_model(Fleet, EXAMPLE / "fleet-pairing.yaml")
    plan = plan_workload(workload, fleet, perf, catalog)
    assert plan.feasible
    for p, d in _pinned_pairs(plan):
        assert p.gpu == d.gpu and not (p.tp == 2 and d.tp == 8), (p.id, d.id)
    _check_consistent(plan)
