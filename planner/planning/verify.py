"""`planner solve --verify`: simulate a plan, and where SLO attainment falls short of the SLO's
percentile claim, tighten the target utilization of the pools at fault and re-solve.

The capacity model is an approximation (classes sharing a replica, tail formulas); the
discrete-event simulator is the referee. It routes requests within a pool as the plan was sized
for (`Plan.replica_routing`, from the fleet's `limits.routing`: least-loaded or random), and the
re-solves plan on the same fleet, so a plan for a plain Kubernetes Service is checked, and
tightened, under random routing. Each round lowers the utilization target of the pools the
simulation blames (planner.simulate.attainment.tightened_utilization), so the ILP buys headroom
exactly where queues formed, and stops after `rounds` re-solves or when every class holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from rich.console import Console

from planner.io.catalog import Catalog
from planner.io.schema import Fleet, Plan, Workload
from planner.io.traces import measure_burstiness, window_rates
from planner.perf.laws import PerfModel
from planner.planning.assemble import classes_over_slo, plan_workload
from planner.simulate.arrivals import Arrivals
from planner.simulate.attainment import (
    DEFAULT_VERIFY_DURATION_S,
    DEFAULT_VERIFY_ROUNDS,
    VerifyReport,
    merged,
    tightened_utilization,
    undecided_note,
    verify,
)

# A trace's busiest minute at least this many times the rate the workload plans for is called out when the plan stays
# short on it: tightening a static plan's utilization (0.85 -> 0.52 over three rounds, about 1.6x the capacity) cannot
# make up for much more, and a minute of requests is what `planner workload from-trace --rate-quantile` sizes for.
PEAK_MINUTE_RATIO = 1.25
# Within-minute clustering at least this (the 1-s index of dispersion, planner.io.traces.measure_burstiness) is called
# out when the workload's classes of the trace are Poisson: twice Poisson's variance is well past its sampling noise
# on a trace of minutes (a Poisson trace of 20 minutes at 3 req/s measures 1.0 +- 0.03).
CLUSTERED_IDC = 2.0
TRACE_WINDOW_S = 60.0
# Rule 59-V's candidate verdicts of one verification round (Poisson arrivals; a recorded trace is one replay whatever
# the verdict): "point" the class's point attainment against its claim at `seed`; "two_seeds" that at `seed` and
# `seed` + 1, holding only where both hold; "wilson" its 95% Wilson interval at or above the claim; "long" the point
# attainment of a simulation LONG_VERDICT_FACTOR times as long.
Verdict = Literal["point", "two_seeds", "wilson", "long"]
LONG_VERDICT_FACTOR = 3.0
# Rule 60-N's margin of the default verification (`verified_by_default`): 1.0 verifies only a plan predicting a class
# over its SLO; below 1 also one where a class sharing a pool is predicted at or above this share of its SLO. Chosen
# at stop 60 among 1.0 / 0.9 / 0.8 on 144 grid cases of three models (bench/verify_verdicts.py --margins): the
# default's simulated misses 6 / 3 / 3 of 288 classes, the plans verified 61 / 72 / 80, cost +1.0-2.5% at 0.9.
VERIFY_MARGIN = 0.9


def trace_shortfall_hints(arrivals: Arrivals, workload: Workload) -> list[str]:
    """Why a static plan may stay short on a recorded trace, in its own numbers: its within-minute clustering when the
    workload's classes are Poisson (first: measuring it is the cheaper fix where both apply), and its busiest minute
    against the rate planned for (a time-varying load). Pure; [] when neither applies."""
    t = np.asarray(arrivals.t_s, dtype=float)
    classes = [c for c in workload.classes if c.id in set(arrivals.class_ids)]
    planned = sum(c.rate_rps for c in classes)
    if t.size < 2 or planned <= 0:
        return []
    hints = []
    poisson = all(c.burstiness is None for c in classes)
    idc = measure_burstiness(t, arrivals.isl, float(t[-1])).idc_1s
    if poisson and idc >= CLUSTERED_IDC:
        hints.append(f"its arrivals cluster within minutes (index of dispersion of 1-s counts {idc:.1f}; Poisson: 1) "
                     "where this workload's classes are Poisson: planner workload from-trace without --poisson measures "
                     "it, and the plan sizes prefill for it")
    # every minute whole, the trace's last part one as the minute ending at its last request (traces.window_rates, the
    # windows `workload from-trace` sizes --rate-quantile on; this hint left a tail burst out until stop 56)
    per_min = window_rates(t - t[0], float(t[-1] - t[0]), TRACE_WINDOW_S)
    peak = float(per_min.max()) if per_min.size else 0.0
    if peak >= PEAK_MINUTE_RATIO * planned:
        hints.append(f"the trace's busiest minute runs {peak:.2f} req/s, {peak / planned:.1f}x the {planned:.2f} req/s this "
                     f"workload plans for: a static plan holds it only if sized for that minute (planner workload "
                     f"from-trace --rate-quantile 1), or let the controller follow the load (planner control)")
    return hints


def near_slo_classes(plan: Plan, margin: float) -> list[str]:
    """Rule 60-N's candidates: the classes that share a pool with another class (a pool the plan routes more than one
    class to, where the prediction is a mix form that reads the binding class low) whose predicted TTFT or ITL is at
    or above `margin` x its SLO."""
    out: set[str] = set()
    for mp in plan.models.values():
        routed: dict[str, int] = {}
        for weights in mp.routing.values():
            for pool, w in weights.items():
                routed[pool] = routed.get(pool, 0) + (w > 0.0)
        for cid, pr in mp.predicted.items():
            if not any(routed.get(pool, 0) > 1 for pool, w in mp.routing.get(cid, {}).items() if w > 0.0):
                continue
            if any(bound is not None and got is not None and got >= margin * bound
                   for got, bound in ((pr.ttft_ms, pr.slo_ttft_ms), (pr.itl_ms, pr.slo_itl_ms))):
                out.add(cid)
    return sorted(out)


def verified_by_default(plan: Plan, objective: str, margin: float | None = None) -> list[str]:
    """Rule 58-V (stop 58): the classes for which `planner solve` and planner.solve verify `plan` when neither
    --verify nor --no-verify is given: those it predicts over their SLO behind their pools' mix of classes
    (assemble.classes_over_slo), and with a `margin` below 1 (default `VERIFY_MARGIN`, rule 60-N) those sharing a pool
    predicted within it of their SLO (`near_slo_classes`); none for an infeasible plan or a max_load one (whose
    predictions are at the scaled load). Empty: the plan is kept unsimulated."""
    if not plan.feasible or objective == "max_load":
        return []
    m = VERIFY_MARGIN if margin is None else margin
    return sorted(set(classes_over_slo(plan)) | set(near_slo_classes(plan, m) if m < 1.0 else ()))


def verify_and_resolve(workload: Workload, fleet: Fleet, perf: PerfModel, catalog: Catalog, plan: Plan, *,
                       backend: str = "highs", time_limit_s: float = 10.0, rounds: int = DEFAULT_VERIFY_ROUNDS, seed: int = 0,
                       duration_s: float = DEFAULT_VERIFY_DURATION_S, console: Console | None = None,
                       arrivals: Arrivals | None = None, arrivals_source: str | None = None,
                       verdict: Verdict = "point") -> Plan:
    """The first plan whose simulation meets every class's SLO claim, or the last one tried (noted).

    `arrivals` (e.g. a recorded trace's requests mapped to the workload's classes, `planner solve --verify-trace`):
    every round replays them, their own arrival times and lengths, instead of Poisson arrivals of the classes;
    `arrivals_source` names them in the plan's note."""
    util: dict[str, float] = {}
    used: dict[str, float] = {}  # the targets the plan in hand was solved with
    report: VerifyReport | None = None
    for round_no in range(rounds + 1):
        report = judged(plan, workload, perf, verdict, duration_s=duration_s, seed=seed, arrivals=arrivals)
        if console is not None:
            console.print(f"[bold]verify round {round_no}[/]: cost ${plan.cost_per_hour:,.2f}/h")
            for line in report.summary():
                console.print(f"  {line}", highlight=False)
        if report.ok or round_no == rounds:
            break
        base = {p.id: fleet.limits.utilization for m in plan.models.values() for p in m.pools}
        planned = {p.id: p.utilization for m in plan.models.values() for p in m.pools}
        util = tightened_utilization({**base, **util}, report, planned=planned)
        nxt = plan_workload(workload, fleet, perf, catalog, backend=backend, time_limit_s=time_limit_s, utilization=util,
                            refine_diagnosis=False)  # an infeasible re-solve is only noted
        if not nxt.feasible:
            plan.notes.append(f"verify: tightening utilization made the plan infeasible after {round_no + 1} round(s); kept the last feasible plan")
            break
        if _simulated(nxt) == _simulated(plan):  # the same fleet and routing simulate the same: nothing new to learn
            plan.notes.append(f"verify: round {round_no + 1}'s tightened utilization re-solved to the same pools, "
                              "replicas and routing (every pool at fault at its floor or bound elsewhere); stopped")
            break
        plan, used = nxt, util
    assert report is not None
    att = ", ".join(f"{r.class_id} {r.attainment:.1%}" for r in report.classes.itertuples())
    what = (f"{arrivals_source or 'the given arrivals'} ({len(arrivals)} requests over {arrivals.duration_s:.0f} s)"
            if arrivals is not None else f"{duration_s:g} s")
    class_ids = [c.id for c in workload.classes]
    unsure = too_few_requests(report, class_ids)
    # the verdict says on its own line when some of it rests on too few requests (found by hand at stop 51: "all classes
    # meet their SLO" above six notes that none of the six could tell); a class of no replayed request counts among them
    caveat = f" ({len(unsure)} of {len(class_ids)} on too few requests to tell: notes below)" if unsure else ""
    if tight := {p: u for p, u in used.items() if u < fleet.limits.utilization - 1e-9}:
        # what the plan was solved with, which explain's binding constraints do not show
        plan.notes.append("verify: utilization targets tightened (pools the simulation blamed; the fleet's "
                          f"limits.utilization {fleet.limits.utilization:g} elsewhere): "
                          + ", ".join(f"{p} {u:.2f}" for p, u in sorted(tight.items())))
    plan.notes = verified_advice(plan.notes)
    plan.notes.append(f"verified by simulation ({what}, seed {seed}) after {round_no} re-solve(s): "
                      f"{'all classes meet their SLO' if report.ok else 'SHORT: ' + ', '.join(report.failing)}{caveat}; "
                      f"attainment {att}")
    if not report.ok and arrivals is not None:
        plan.notes.extend(f"verify: {h}" for h in trace_shortfall_hints(arrivals, workload))
    plan.notes.extend(f"verify: {u}" for u in unsure)
    return plan


VERIFY_ADVICE = "planner solve --verify"
"""How a plan's note advises verification (assemble's notes on pools whose prediction is uncertain)."""


def verified_advice(notes: Sequence[str]) -> list[str]:
    """The notes of a plan just verified, each that advises `planner solve --verify` saying it was done (found in QA:
    "... `planner solve --verify` simulates it so" was still printed after --verify had passed, as if still to do)."""
    done = " (done: the verification note below)"
    return [n + done if VERIFY_ADVICE in n and not n.startswith("verif") and not n.endswith(done) else n
            for n in notes]


def judged(plan: Plan, workload: Workload, perf: PerfModel, verdict: Verdict, *, duration_s: float, seed: int,
           arrivals: Arrivals | None) -> VerifyReport:
    """One verification round's report under `verdict` (see Verdict)."""
    if verdict == "two_seeds" and arrivals is None:
        return merged([verify(plan, workload, perf.get, duration_s=duration_s, seed=s) for s in (seed, seed + 1)])
    if verdict == "long" and arrivals is None:
        duration_s *= LONG_VERDICT_FACTOR
    return verify(plan, workload, perf.get, duration_s=duration_s, seed=seed, arrivals=arrivals,
                  lower_bound=verdict == "wilson")


def _simulated(plan: Plan) -> tuple[dict[str, int], dict[str, dict[str, dict[str, float]]]]:
    """What the simulation of a plan depends on: its pools' replicas and its routing weights."""
    return ({p.id: p.replicas for m in plan.models.values() for p in m.pools},
            {name: m.routing for name, m in plan.models.items()})


def too_few_requests(report: VerifyReport, class_ids: Sequence[str] = ()) -> list[str]:
    """Classes whose verdict the simulated requests cannot support: their attainment's 95% Wilson interval holds the
    SLO's percentile claim (three requests within SLO say as little about a p90 as three outside it); and classes of
    `class_ids` (the workload's) that no simulated request belongs to, which the report has no row of (found in QA: a
    `--verify-trace` of one model's requests noted "all classes meet their SLO" with the other model's never run)."""
    out: list[str] = []
    seen = {str(c) for c in report.classes["class_id"]} if "class_id" in report.classes else set()
    out.extend(f"{cid}: no request of it in the arrivals replayed: its SLO is not checked (a trace holding its "
               "requests, or --verify)" for cid in class_ids if cid not in seen)
    for r in report.classes.itertuples():
        if int(r.requests) == 0:
            out.append(f"{r.class_id}: no simulated request: its SLO is not checked (a longer trace, or --verify "
                       "--verify-duration-s)")
            continue
        note = undecided_note(str(r.class_id), int(r.requests), float(r.attainment), float(r.slo_percentile),
                              "the verdict above is not supported; verify on a longer trace, or on more seconds of "
                              "Poisson arrivals (--verify --verify-duration-s)")
        if note is not None:
            out.append(note)
    return out
