"""The ILP, written once: variables, constraints and objective of the fleet-sizing problem.

This is the one file where a reader finds the model. `build(problem)` returns a small,
backend-neutral `LinearModel` (variables with bounds and integrality, named linear rows,
lexicographic objectives to minimise); `solvers.backends` translates it for PuLP (HiGHS, CBC) and
OR-Tools without restating any constraint.

Notation: classes c (group g(c), rate lambda_c, KV bytes per request k_c), variants v (group g(v),
side P/D/M for prefill/decode/mixed, resource r(v), units (GPUs) t_v, cost p_v, target
utilisation u_v), cap[c,v] > 0 the rate one replica of v takes of c alone.

Variables
  n[v]    integer >= 0   replicas of variant v
  x[c,v]  continuous >= 0 rate of class c routed to v (only where cap[c,v] > 0 and g(c) = g(v))
  mu      continuous >= 0 common load multiplier (objective "max_load" only)
  d[v]    continuous >= 0 |n[v] - current[v]| (only when churn_cost > 0)
  y[c,a>b] continuous >= 0 rate of class c prefilled on pair key a and decoded on pair key b (only
          when the problem forbids some pairs; keys are GPU types, or GPU type and TP)
  u[v]    binary         pool v is used (only for a pool whose capacities assume k_v > 1 replicas:
          a bursty class's clusters spread over them, VariantSpec.min_when_used)

Constraints (one comment each where they are built, in this order): coverage[c], pairing[c] (or,
with forbidden pairs, pair_out[c,a] / pair_in[c,b]),
capacity[v], kv_out[v] / kv_in[v], open[c,v] (a valid inequality that tightens the LP bound),
pool_min[v] / pool_open[v] (n[v] = 0 or n[v] >= k_v), pool_floor[v] (n[v] >= the pool's floor), inventory[r],
min_prefill[g] / min_decode[g], pd_ratio_min[g] / pd_ratio_max[g], step_up[v] / step_down[v], churn_up[v] /
churn_down[v].
Objective at the end of `build`, with the objective's tie-break ("gpus": the cheapest of as many).

`build(problem, elastic=True)` adds non-negative slack variables to the rows that can be relaxed
(demand, inventory, min replicas, P:D ratio, step limits) and minimises them lexicographically;
`solvers.diagnose` uses it to explain an infeasible instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, NamedTuple

from solvers.constraints import Binding, Family
from solvers.objectives import spec
from solvers.problem import Problem, VariantSpec

Sense = Literal["<=", ">=", "=="]


class RowKind(StrEnum):
    """The row families of the model, in the order `build` adds them (see the module docstring)."""

    COVERAGE = "coverage"
    PAIRING = "pairing"
    PAIR_OUT = "pair_out"
    PAIR_IN = "pair_in"
    CAPACITY = "capacity"
    KV_OUT = "kv_out"
    KV_IN = "kv_in"
    OPEN = "open"
    POOL_MIN = "pool_min"
    POOL_OPEN = "pool_open"
    POOL_FLOOR = "pool_floor"
    INVENTORY = "inventory"
    MIN_PREFILL = "min_prefill"
    MIN_DECODE = "min_decode"
    PD_RATIO_MIN = "pd_ratio_min"
    PD_RATIO_MAX = "pd_ratio_max"
    STEP_UP = "step_up"
    STEP_DOWN = "step_down"
    CHURN_UP = "churn_up"
    CHURN_DOWN = "churn_down"


REPORTED: dict[RowKind, Family] = {
    RowKind.INVENTORY: Family.INVENTORY, RowKind.CAPACITY: Family.CAPACITY, RowKind.KV_OUT: Family.KV_LINK,
    RowKind.KV_IN: Family.KV_LINK, RowKind.PD_RATIO_MIN: Family.PD_RATIO, RowKind.PD_RATIO_MAX: Family.PD_RATIO,
    RowKind.MIN_PREFILL: Family.MIN_REPLICAS, RowKind.MIN_DECODE: Family.MIN_REPLICAS, RowKind.STEP_UP: Family.STEP,
    RowKind.STEP_DOWN: Family.STEP, RowKind.POOL_MIN: Family.POOL_SIZE, RowKind.POOL_FLOOR: Family.POOL_FLOOR,
}
"""The row families a solution reports as binding, and the family each is reported under."""


class Slack(NamedTuple):
    """Key of a slack variable of the elastic model: which family it relaxes, for what, and how."""

    family: Family
    target: str
    detail: str = ""
    """min_replicas: the side (prefill|decode); pd_ratio: the bound (min|max); step: up|down."""

_POOL_BIG_M = 10_000
"""Replicas a pool whose n[v] has no upper bound (no max_replicas, no inventory of its GPU type) may take in the
pool_open row."""

MU_CAP = 1e4
"""Upper bound on the load multiplier: a finite cap so that an unlimited fleet reports 'hit the cap'
rather than an unbounded model (no real fleet is 10,000x its demand)."""


@dataclass
class Var:
    name: str
    lb: float = 0.0
    ub: float | None = None
    """None: no upper bound."""
    integer: bool = False


@dataclass
class Row:
    """One linear constraint: sum_i terms[i] * var_i  <sense>  rhs."""

    kind: RowKind
    target: str
    """What the row is about: a class, variant, GPU type or group id ('class,variant' for open rows)."""
    terms: dict[int, float]
    sense: Sense
    rhs: float
    cut: bool = False
    """A valid inequality (implied for integer solutions): it tightens the LP relaxation; a backend
    may leave it out of the branch-and-bound, whose solver makes cuts of its own."""

    @property
    def name(self) -> str:
        """Display name, e.g. 'capacity[llama/prefill/H100/tp1]'."""
        return f"{self.kind.value}[{self.target}]"


@dataclass
class LinearModel:
    """A linear model any MILP backend can read; `objectives` are minimised lexicographically."""

    vars: list[Var] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    objectives: list[dict[int, float]] = field(default_factory=list)
    n: dict[str, int] = field(default_factory=dict)
    x: dict[tuple[str, str], int] = field(default_factory=dict)
    y: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """(class, prefill key, decode key) -> index of the pair flow (only with forbidden pairs)."""
    mu: int | None = None
    tie_break: dict[int, float] = field(default_factory=dict)
    """Minimised after `objectives`, the last of them held at the plan found (solvers.backends.solve); {} for none."""
    slack: dict[Slack, int] = field(default_factory=dict)
    """Slack key -> index of its variable (elastic models only)."""

    def var(self, name: str, lb: float = 0.0, ub: float | None = None, integer: bool = False) -> int:
        self.vars.append(Var(name, lb, ub, integer))
        return len(self.vars) - 1

    def row(self, kind: RowKind, target: str, terms: dict[int, float], sense: Sense, rhs: float,
            cut: bool = False) -> None:
        self.rows.append(Row(kind, target, {i: a for i, a in terms.items() if a != 0.0}, sense, rhs, cut))

    def relax(self, key: Slack, terms: dict[int, float], sign: float, integer: bool = False) -> None:
        """Elastic mode: add a slack s >= 0 with coefficient `sign` to `terms`, under `key`."""
        label = f"{key.target}:{key.detail}" if key.detail else key.target
        s = self.var(f"slack_{key.family.value}[{label}]", integer=integer)
        self.slack[key] = s
        terms[s] = sign

    @property
    def num_integer(self) -> int:
        return sum(v.integer for v in self.vars)


def build(problem: Problem, elastic: bool = False, strengthen: bool = True) -> LinearModel:
    """The MILP of `problem`; with `elastic`, the relaxable version used to diagnose infeasibility."""
    m = LinearModel()
    max_load = spec(problem.objective).maximise_load
    variants = {v.id: v for v in problem.variants}
    rates = {c.id: c.rate for c in problem.classes}
    demand: dict[str, float] = {}  # group -> total rate (only groups with demand get min-replica rows)
    for c in problem.classes:
        demand[c.group] = demand.get(c.group, 0.0) + c.rate

    # n[v]: integer replicas. Bounds carry the simple limits so presolve starts tight; the same
    # limits also appear as named rows below (for binding reports and for the elastic model).
    for v in problem.variants:
        ub = v.max_replicas
        lb = v.min_replicas
        if not elastic:
            if v.resource in problem.inventory:  # cannot use more GPUs than exist
                ub = _min(ub, problem.inventory[v.resource] // max(v.units, 1))
            if problem.max_step is not None:  # step limit around current (up to the floor at least: step_up below)
                ub = _min(ub, max(v.current + problem.max_step, v.min_replicas))
                lb = max(lb, v.current - problem.max_step)
        m.n[v.id] = m.var(f"n[{v.id}]", lb=lb, ub=None if ub is None else max(ub, lb), integer=True)

    # x[c,v]: routed rate, only for pairs that can serve (cap > 0, same group).
    for c in problem.classes:
        for v in problem.variants:
            if v.group == c.group and problem.capacity.get((c.id, v.id), 0.0) > 0.0:
                m.x[(c.id, v.id)] = m.var(f"x[{c.id},{v.id}]")
    mu: int | None = None
    if max_load:
        mu = m.mu = m.var("mu", ub=MU_CAP)

    by_class: dict[str, list[str]] = {c.id: [] for c in problem.classes}
    by_variant: dict[str, list[str]] = {v.id: [] for v in problem.variants}
    for c_id, v_id in m.x:
        by_class[c_id].append(v_id)
        by_variant[v_id].append(c_id)

    for c in problem.classes:
        xs = by_class[c.id]
        # coverage[c]: all of the class's prefill work is served, by prefill or mixed replicas.
        cover = {m.x[(c.id, v)]: 1.0 for v in xs if variants[v].side in ("prefill", "mixed")}
        if mu is not None:
            cover[mu] = -c.rate
        elif elastic:
            m.relax(Slack(Family.UNSERVED, c.id), cover, 1.0)
        m.row(RowKind.COVERAGE, c.id, cover, "==", 0.0 if max_load else c.rate)
        if not problem.forbidden_pairs:
            # pairing[c]: every request prefilled on a prefill-only replica is decoded on a decode replica.
            pair = {m.x[(c.id, v)]: 1.0 for v in xs if variants[v].side == "decode"}
            pair.update({m.x[(c.id, v)]: -1.0 for v in xs if variants[v].side == "prefill"})
            m.row(RowKind.PAIRING, c.id, pair, "==", 0.0)
        else:
            _pair_flows(m, problem, c.id, [variants[v] for v in xs])

    kv_bytes = {c.id: c.kv_bytes for c in problem.classes}
    for v in problem.variants:
        cs = by_variant[v.id]
        # capacity[v]: the classes routed to v use at most u_v of its n_v replicas (fractional sharing).
        cap = {m.x[(cid, v.id)]: 1.0 / problem.capacity[(cid, v.id)] for cid in cs}
        cap[m.n[v.id]] = -v.utilization
        m.row(RowKind.CAPACITY, v.id, cap, "<=", 0.0)
        # kv_out[v] / kv_in[v]: KV bytes/s shipped out of prefill (into decode) replicas fit their links;
        # each side has its own row, so a P->D pair is held to the slower side's bandwidth.
        if v.link_bytes_per_s is not None and v.side in ("prefill", "decode") and any(kv_bytes[cid] > 0 for cid in cs):
            link = max(v.link_bytes_per_s, 1e-30)  # scaled by the link so coefficients stay O(1)
            kv = {m.x[(cid, v.id)]: kv_bytes[cid] / link for cid in cs}
            kv[m.n[v.id]] = -1.0
            m.row(RowKind.KV_OUT if v.side == "prefill" else RowKind.KV_IN, v.id, kv, "<=", 0.0)

        if strengthen and not max_load:
            for cid in cs:
                if rates[cid] < v.utilization * problem.capacity[(cid, v.id)]:
                    # open[c,v] (valid inequality): x[c,v] <= lambda_c * n_v. Implied for integer n (x <= lambda_c
                    # always; n_v >= 1 once used) but cuts off LP points that route a small class to a
                    # sliver of a replica: the facility-location strengthening, it tightens the LP bound.
                    m.row(RowKind.OPEN, f"{cid},{v.id}", {m.x[(cid, v.id)]: 1.0, m.n[v.id]: -rates[cid]}, "<=", 0.0,
                          cut=True)

        k = v.min_when_used
        if k > 1:
            # pool_min[v] / pool_open[v]: a pool whose capacities assume k replicas (a bursty class's clusters
            # spread over k) has 0 or >= k: n_v >= k * u_v and n_v <= U * u_v, u_v binary (used). Kept in the
            # elastic model (a structural fact of the capacities, not a policy to bend): without it the diagnosis
            # found a step-limited fleet of one-replica pools feasible that the real model is not.
            u = m.var(f"u[{v.id}]", ub=1.0, integer=True)
            ub_n = m.vars[m.n[v.id]].ub  # max_replicas, inventory and step limit, as set above
            big = float(_POOL_BIG_M if ub_n is None else ub_n)
            m.row(RowKind.POOL_MIN, v.id, {m.n[v.id]: 1.0, u: -float(k)}, ">=", 0.0)
            m.row(RowKind.POOL_OPEN, v.id, {m.n[v.id]: 1.0, u: -max(float(big), float(k))}, "<=", 0.0)

    for v in problem.variants:
        if v.min_replicas > 0:
            # pool_floor[v]: n_v >= the pool's floor (VariantSpec.min_replicas: the fleet's limits.pool_min_replicas,
            # the controller's guard.min_replicas), inside the inventory row below rather than added to the plan after
            # it. Kept in the elastic model: only more GPUs (its inventory slack) make room for a floor.
            m.row(RowKind.POOL_FLOOR, v.id, {m.n[v.id]: 1.0}, ">=", float(v.min_replicas))

    for res, available in problem.inventory.items():
        # inventory[r]: the GPUs of resource r in use do not exceed those available.
        inv = {m.n[v.id]: float(v.units) for v in problem.variants if v.resource == res}
        if elastic:
            m.relax(Slack(Family.INVENTORY, res), inv, -1.0, integer=True)
        m.row(RowKind.INVENTORY, res, inv, "<=", float(available))

    groups = sorted({v.group for v in problem.variants})
    for g in groups:
        in_g = [v for v in problem.variants if v.group == g]
        low = problem.min_replicas_per_group.get(g, 0)
        if low > 0 and demand.get(g, 0.0) > 0.0:
            # min_prefill[g] / min_decode[g]: each side of a group with demand has >= `low` replicas
            # (mixed replicas count on both sides).
            for kind, side, sides in ((RowKind.MIN_PREFILL, "prefill", ("prefill", "mixed")),
                                      (RowKind.MIN_DECODE, "decode", ("decode", "mixed"))):
                terms = {m.n[v.id]: 1.0 for v in in_g if v.side in sides}
                if elastic:
                    m.relax(Slack(Family.MIN_REPLICAS, g, side), terms, 1.0, integer=True)
                m.row(kind, g, terms, ">=", float(low))
        lo, hi = problem.pd_ratio_bounds.get(g, (None, None))
        bounds: tuple[tuple[RowKind, str, float | None, Sense, float], ...] = (
            (RowKind.PD_RATIO_MIN, "min", lo, ">=", 1.0), (RowKind.PD_RATIO_MAX, "max", hi, "<=", -1.0))
        for kind, which, ratio, sense, sign in bounds:
            if ratio is None:
                continue
            # pd_ratio_min[g] / pd_ratio_max[g]: prefill GPUs >= (<=) ratio x decode GPUs.
            terms = {m.n[v.id]: float(v.units) for v in in_g if v.side == "prefill"}
            terms.update({m.n[v.id]: -ratio * v.units for v in in_g if v.side == "decode"})
            if elastic:
                m.relax(Slack(Family.PD_RATIO, g, which), terms, sign)
            m.row(kind, g, terms, sense, 0.0)

    churn: dict[int, float] = {}
    for v in problem.variants:
        n = m.n[v.id]
        if problem.max_step is not None:
            # step_up[v] / step_down[v]: |n_v - current_v| <= max_step (controller step limit); a pool below its
            # floor goes up to it at once (the step yields to pool_floor[v], as the controller's guard applied its
            # floors whatever the step).
            for kind, direction, sign in ((RowKind.STEP_UP, "up", 1.0), (RowKind.STEP_DOWN, "down", -1.0)):
                terms = {n: sign}
                if elastic:
                    m.relax(Slack(Family.STEP, v.id, direction), terms, -1.0, integer=True)
                rhs = problem.max_step + sign * v.current
                m.row(kind, v.id, terms, "<=", max(rhs, float(v.min_replicas)) if direction == "up" else rhs)
        if problem.churn_cost > 0.0:
            # churn_up[v] / churn_down[v]: d_v >= |n_v - current_v|, so d_v is the change at the optimum.
            d = m.var(f"d[{v.id}]")
            m.row(RowKind.CHURN_UP, v.id, {d: 1.0, n: -1.0}, ">=", -float(v.current))
            m.row(RowKind.CHURN_DOWN, v.id, {d: 1.0, n: 1.0}, ">=", float(v.current))
            churn[d] = problem.churn_cost

    # Objective: the fleet term, sum over replicas of the objective's weight (solvers.objectives: USD/h for
    # "cost", GPUs for "gpus", W for "power"), plus churn; "max_load" maximises mu first, then
    # (lexicographic tie-break) the cheapest fleet reaching it.
    price = {m.n[v.id]: unit_weight(problem, v) for v in problem.variants}
    fleet = _add(price, churn)
    goals = [{mu: -1.0}, fleet] if mu is not None else [fleet]
    # Tie-break (the objective's, solvers.objectives; "gpus": USD/h): of the plans with the least fleet term, the
    # least by it, so that of two plans of as many GPUs the cheaper is chosen (it was either: the default example got
    # 21 GPUs at $62.79/h, where 21 serve it at $59.19/h). Minimised lexicographically, in a second solve with the
    # fleet term held at the plan found, model by model, on the time the first leaves (solvers.backends.solve): so
    # it never costs a GPU, not even through the time it takes. Not one weighted sum GPUs + eps x USD/h: an eps
    # small enough never to trade a GPU for dollars (under 1 / the dearest plan's USD/h) has no bound where a GPU
    # type is on demand (no inventory), and shrinks with the fleet until a tie weighs less than the MIP gap
    # (1e-4 x the GPUs; 100 GPUs at ~$3/GPU-h: eps ~ 1/300, a $3/h tie weighs 0.01, the gap at 100 GPUs), where
    # the solver may stop without deciding it. Not in the elastic model: its diagnosis reads the slacks only.
    if (tie := spec(problem.objective).tie_break) is not None and not elastic:
        m.tie_break = {m.n[v.id]: w for v in problem.variants if (w := tie(v)) != 0.0}
    if elastic:
        # Smallest relaxation, minimised in this order: unserved req/s (demand is dropped only where
        # no fleet can serve it), then extra GPUs (bought only where bending policy cannot avoid it),
        # then policy slack (min replicas, P:D ratio, step limits); the fleet's own objective last.
        def by_family(families: set[Family]) -> dict[int, float]:
            return {i: 1.0 for key, i in m.slack.items() if key.family in families}

        goals = [g for g in (by_family({Family.UNSERVED}), by_family({Family.INVENTORY}),
                             by_family({Family.MIN_REPLICAS, Family.PD_RATIO, Family.STEP})) if g] + goals
    m.objectives = goals
    return m


def _pair_flows(m: LinearModel, problem: Problem, c: str, served_by: list[VariantSpec]) -> None:
    """Pairing of class c through pair flows y[c,a>b], for fleets that forbid some P->D pairs.

    Flows are aggregated by pair key (GPU type, or GPU type and TP), not by variant: as many
    variables as allowed key pairs, and the pool-level hand-off follows by proportion.
    """
    out_keys: dict[str, list[int]] = {}
    in_keys: dict[str, list[int]] = {}
    for v in served_by:
        if v.side == "prefill":
            out_keys.setdefault(v.key, []).append(m.x[(c, v.id)])
        elif v.side == "decode":
            in_keys.setdefault(v.key, []).append(m.x[(c, v.id)])
    ys: dict[tuple[str, str], int] = {}
    for a in out_keys:
        for b in in_keys:
            if problem.pair_allowed(a, b):
                ys[(a, b)] = m.y[(c, a, b)] = m.var(f"y[{c},{a}>{b}]")
    for a, xs in out_keys.items():
        # pair_out[c,a]: the class's prefills on key a hand their KV only to decode keys allowed to take it.
        terms = {i: 1.0 for i in xs}
        terms.update({i: -1.0 for (aa, _), i in ys.items() if aa == a})
        m.row(RowKind.PAIR_OUT, f"{c},{a}", terms, "==", 0.0)
    for b, xs in in_keys.items():
        # pair_in[c,b]: the class's decodes on key b take KV only from prefill keys allowed to send it.
        terms = {i: 1.0 for i in xs}
        terms.update({i: -1.0 for (_, bb), i in ys.items() if bb == b})
        m.row(RowKind.PAIR_IN, f"{c},{b}", terms, "==", 0.0)


def unit_weight(problem: Problem, v: VariantSpec) -> float:
    """What one replica of `v` adds to the objective: USD/h, GPUs or W (`solvers.objectives`)."""
    return spec(problem.objective).weight(v)


def binding(model: LinearModel, values: list[float], tol: float = 1e-5) -> list[Binding]:
    """The constraints of interest that are tight at `values` and actually carry load.

    Families reported: inventory[r], capacity[v] (pool at its target utilisation), kv_link[v],
    pd_ratio[g], min_replicas[g], step[v], pool_size[v] (a pool at the replicas its capacities assume),
    pool_floor[v] (a pool held at its floor). A row whose
    terms are all zero at the solution (an unused pool, say) is not reported: it constrains nothing; nor is a
    min-replicas row of one replica on a side that carries load (`_implied_side_floor`).
    """
    out: list[Binding] = []
    for row in model.rows:
        family = REPORTED.get(row.kind)
        if family is None:
            continue
        activity = [a * values[i] for i, a in row.terms.items()]
        if not any(abs(t) > tol for t in activity) or _implied_side_floor(model, row, values, tol):
            continue
        if abs(sum(activity) - row.rhs) <= tol * max(1.0, abs(row.rhs), *(abs(t) for t in activity)):
            found = Binding(family, row.target)
            if found not in out:
                out.append(found)
    return out


def _implied_side_floor(model: LinearModel, row: Row, values: list[float], tol: float) -> bool:
    """Whether `row` is a min_prefill / min_decode row of at most one replica on a side whose pools carry flow: a pool
    serving any flow holds a replica by its capacity row, so the floor is implied there, and tight is not binding
    (found in QA: `planner explain` listed 'minimum replicas of model llama-2-70b' among the binding constraints of a
    plan whose one prefill and one decode replica ran at 78% and 30% of their SLO capacity, as if lowering the floor
    would save a GPU). A floor above one replica stays reported when tight: whether the load alone would need as many
    replicas depends on how the pools could be merged, which this row cannot tell."""
    if row.kind not in (RowKind.MIN_PREFILL, RowKind.MIN_DECODE) or row.rhs > 1.0:
        return False
    pools = {vid for vid, i in model.n.items() if i in row.terms}
    return any(values[i] > tol for (_, vid), i in model.x.items() if vid in pools)


def _min(a: int | None, b: int) -> int:
    return b if a is None else min(a, b)


def _add(a: dict[int, float], b: dict[int, float]) -> dict[int, float]:
    out = dict(a)
    for i, w in b.items():
        out[i] = out.get(i, 0.0) + w
    return out


__all__ = ["MU_CAP", "REPORTED", "LinearModel", "Row", "RowKind", "Slack", "Var", "binding", "build", "unit_weight"]
