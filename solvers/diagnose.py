"""Why is an instance infeasible? The smallest relaxation that makes it feasible, as records.

Two steps:
1. Structural impossibilities, found without a solver: a class with demand and no variant of
   positive capacity on its prefill side (prefill or mixed), or, when no mixed variant can take
   it, none on its decode side, or no allowed pairing between those that can. No amount of GPUs
   fixes these; the planner says which SLO, class or pairing rule is out of reach.
2. The elastic model (`formulation.build(problem, elastic=True)`): slack on each class's served
   rate, each resource's inventory, each min-replica, P:D-ratio and step row, minimised
   lexicographically: unserved req/s first (demand is dropped only where no fleet can serve it),
   then extra GPUs (bought only where bending a policy rule cannot avoid it), then policy slack.
   Non-zero slacks are the answer.

Records are domain-free (kind, target, amount, unit, detail) with a `Family` as kind; the planner
turns them into words, dispatching on the family.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from solvers.backends import solve_model
from solvers.constraints import UNITS, Family
from solvers.formulation import build
from solvers.problem import Problem
from solvers.runners import DEFAULT_BACKEND

TOL = 1e-6
"""Slacks below this (req/s, GPUs, replicas) are solver noise, not a relaxation."""


@dataclass(frozen=True)
class Relaxation:
    """One change that (together with the others returned) makes the instance feasible.

    kind: NO_VARIANT (target class, detail the side with no capable variant, amount its rate),
          NO_PAIRING (target class whose capable prefill and decode keys are all forbidden to pair,
          detail 'prefill keys>decode keys' comma-separated, the keys also in `prefill_keys` and
          `decode_keys`, amount its rate),
          UNSERVED (target class, amount req/s that no allowed fleet can serve),
          INVENTORY (target resource, amount more GPUs), MIN_REPLICAS (target group,
          detail side, amount fewer replicas), PD_RATIO (target group, detail min|max, amount GPUs
          of imbalance), STEP (target variant, detail up|down, amount replicas beyond the step),
          SOLVER (target backend, detail its message: the elastic model found no answer).
    A kind given as a name ('inventory') is converted to its `Family`.
    """

    kind: Family
    target: str
    amount: float
    unit: str
    detail: str = ""
    prefill_keys: tuple[str, ...] = field(default=(), compare=False)
    decode_keys: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", Family(self.kind))


def structural(problem: Problem) -> list[Relaxation]:
    """Classes with demand that no variant of their group can serve on one side, whatever the fleet."""
    out: list[Relaxation] = []
    for c in problem.classes:
        if c.rate <= 0:
            continue
        sides = {v.side for v in problem.variants
                 if v.group == c.group and problem.capacity.get((c.id, v.id), 0.0) > 0.0}
        if not sides & {"prefill", "mixed"}:
            out.append(Relaxation(Family.NO_VARIANT, c.id, c.rate, UNITS[Family.NO_VARIANT], "prefill"))
        elif "mixed" not in sides and "decode" not in sides:
            out.append(Relaxation(Family.NO_VARIANT, c.id, c.rate, UNITS[Family.NO_VARIANT], "decode"))
        elif "mixed" not in sides and problem.forbidden_pairs:
            able = [v for v in problem.variants
                    if v.group == c.group and problem.capacity.get((c.id, v.id), 0.0) > 0.0]
            pre = sorted({v.key for v in able if v.side == "prefill"})
            dec = sorted({v.key for v in able if v.side == "decode"})
            if not any(problem.pair_allowed(a, b) for a in pre for b in dec):
                out.append(Relaxation(Family.NO_PAIRING, c.id, c.rate, UNITS[Family.NO_PAIRING],
                                      f"{','.join(pre)}>{','.join(dec)}", tuple(pre), tuple(dec)))
    return out


def diagnose(problem: Problem, backend: str = DEFAULT_BACKEND, time_limit_s: float = 30.0) -> list[Relaxation]:
    """The smallest relaxation making `problem` feasible; an empty list when it already is."""
    found = structural(problem)
    explained = {r.target for r in found}
    model = build(problem, elastic=True)
    sol = solve_model(model, backend, time_limit_s, mip_gap=1e-6)
    if sol.values is None:  # the elastic model is always feasible; say so if the solver disagrees
        found.append(Relaxation(Family.SOLVER, backend, 0.0, "", sol.message or sol.status))
        return found
    for key, i in model.slack.items():
        amount = sol.values[i]
        if amount <= TOL or (key.family == Family.UNSERVED and key.target in explained):
            continue
        if key.family in (Family.INVENTORY, Family.MIN_REPLICAS, Family.STEP):
            amount = float(round(amount))
        found.append(Relaxation(key.family, key.target, amount, UNITS[key.family], key.detail))
    return found
