"""The control loop: observe -> forecast -> correct -> propose -> guard -> apply -> record.

Each stage is its own module with one job; this file only wires them and keeps the state that
crosses intervals (rate history, correction factors, guard state, last plan). The proposal is the
ILP of planner.planning with `fleet.current` = the replicas found, so budgets, inventory, step
limits (`limits.max_step`) and churn (`limits.churn_cost_per_replica`) are constraints of the
optimisation, not clamps here.

The forecast covers the work, not only the request count: the prompt- and output-token rates are
forecast too and the class planned for gets lengths such that rate x length = their upper bounds
(config forecast.token_rates); a minute whose prompts are 50% longer otherwise finds one prefill
replica where the plan assumed last minute's lengths.

Queues drive scale-up through the optimiser, not around it (a field failure: TTFT estimated from
profiled service time alone kept one prefill replica while clients saw ~160 s TTFT against a 3 s
SLO):
  * the arrival estimate is completions + growth of the in-flight count, so a backlog that builds
    up counts as load even when completions are flat;
  * requests waiting now are added as backlog classes with rate waiting / queue_drain_s: waiting
    on prefill instances as a class with one output token (it needs prefill capacity, almost no
    decode), waiting elsewhere with the model's mean lengths; the ILP then asks for the capacity
    to drain them;
  * observed TTFT/ITL above the plan's prediction raises the bounded correction factors, which
    slow the performance laws and lower every capacity the ILP sees (learned only while no
    backlog stands, so queueing delay is not counted twice: once as backlog, once as model error);
  * the guard vetoes scale-down of a pool whose queue is growing.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from controllers.actuate import Actuator
from controllers.config import ControllerConfig
from controllers.correct import (ITL_BUCKETS_MS, TTFT_BUCKETS_MS, CorrectedPerf, Corrections, predict_at_load,
                                 update_corrections)
from controllers.forecast import Forecast, forecast_upper
from controllers.guard import GuardDecision, GuardState, guard
from controllers.metrics import ControllerMetrics, DecisionLog
from controllers.observe import Observation
from planner.schema import Fleet, ModelEntry, Plan, RequestClass, Variant, Workload

log = logging.getLogger("pd_planner.controller")

PlanFn = Callable[[Workload, Fleet, Any], Plan]
# Lengths assumed before any request was seen (rate is 0 then, so they only keep the class valid).
_DEFAULT_ISL, _DEFAULT_OSL = 1024, 128


class Observer(Protocol):
    def observe(self) -> Observation: ...


class Elector(Protocol):
    def try_acquire_or_renew(self) -> bool: ...


def default_plan_fn(backend: str = "highs", time_limit_s: float = 10.0, catalog: Any = None) -> PlanFn:
    """planner.planning.plan_workload with the controller's backend and time limit."""

    def plan(workload: Workload, fleet: Fleet, perf: Any) -> Plan:
        from planner.planning import plan_workload

        return plan_workload(workload, fleet, perf, catalog=catalog, backend=backend, time_limit_s=time_limit_s)

    return plan


@dataclass
class Decision:
    """What one interval saw, planned and did (also the JSONL record)."""

    t_s: float
    outcome: str
    current: dict[str, int] = field(default_factory=dict)
    ready: dict[str, int] = field(default_factory=dict)
    proposal: dict[str, int] | None = None
    target: dict[str, int] = field(default_factory=dict)
    changes: dict[str, tuple[int, int]] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    forecast_rps: dict[str, float] = field(default_factory=dict)
    observed: dict[str, dict[str, Any]] = field(default_factory=dict)
    corrections: dict[str, dict[str, float]] = field(default_factory=dict)
    plan_cost_per_hour: float | None = None
    solve_s: float | None = None
    errors: list[str] = field(default_factory=list)

    def diff_text(self) -> str:
        if not self.changes:
            return "no change"
        return "\n".join(f"  {p}: {a} -> {b}" for p, (a, b) in self.changes.items())


class Controller:
    def __init__(
        self,
        cfg: ControllerConfig,
        fleet: Fleet,
        observer: Observer,
        actuator: Actuator,
        perf: Any,
        plan_fn: PlanFn | None = None,
        metrics: ControllerMetrics | None = None,
        elector: Elector | None = None,
        clock: Callable[[], float] = time.time,
        dry_run: bool | None = None,
    ):
        self.cfg = cfg
        self.fleet = fleet
        self.observer = observer
        self.actuator = actuator
        self.perf = perf
        self.plan_fn = plan_fn or default_plan_fn(cfg.backend, cfg.solver_time_limit_s)
        self.metrics = metrics or ControllerMetrics()
        self.log = DecisionLog(cfg.record.decision_log)
        self.elector = elector
        self.clock = clock
        self.dry_run = cfg.dry_run if dry_run is None else dry_run
        self.history: dict[str, deque[float]] = {m: deque(maxlen=cfg.forecast.history_points) for m in cfg.models}
        self.lengths: dict[str, tuple[float, float]] = {}
        self.token_history: dict[str, deque[tuple[float, float]]] = {}
        self.token_forecast: dict[str, tuple[Forecast, Forecast]] = {}
        self.corrections = Corrections()
        self.guard_state = GuardState()
        self.last_plan: Plan | None = None
        self.last_routing: dict[str, Any] = {}
        self.decisions: list[Decision] = []
        self._quiet: dict[str, bool] = {}

    # ------------------------------------------------------------------ stages
    def _forecast(self, obs: Observation) -> dict[str, Forecast]:
        """Upper-quantile forecast of each model's request rate, and (forecast.token_rates) of its
        prompt- and output-token rates, which `_workload` turns into the lengths planned for."""
        # replicas asked for now serve from start-up until the next decision's are ready
        horizon = self.cfg.startup_s + self.cfg.interval_s
        fcfg = self.cfg.forecast
        out = {}
        self.token_forecast = {}
        for m, mo in obs.models.items():
            self.history.setdefault(m, deque(maxlen=fcfg.history_points)).append(mo.arrival_rps)
            out[m] = forecast_upper(list(self.history[m]), self.cfg.interval_s, horizon, fcfg.quantile,
                                    fcfg.season_s, fcfg.min_points_trend)
            if not fcfg.token_rates:
                continue
            # token rates = arrivals x the interval's mean lengths (lengths of an interval without
            # completions: the last known ones, so the series has no holes)
            isl, osl = (mo.mean_isl, mo.mean_osl) if mo.mean_isl and mo.mean_osl else self.lengths.get(m, (None, None))
            if not isl or not osl:
                continue
            th = self.token_history.setdefault(m, deque(maxlen=fcfg.history_points))
            th.append((mo.arrival_rps * isl, mo.arrival_rps * osl))
            self.token_forecast[m] = tuple(  # type: ignore[assignment]
                forecast_upper([x[i] for x in th], self.cfg.interval_s, horizon, fcfg.quantile, fcfg.season_s,
                               fcfg.min_points_trend) for i in (0, 1))
        return out

    def _update_lengths(self, obs: Observation) -> None:
        """Mean prompt and output lengths per model, from the interval's finished requests."""
        for m, mo in obs.models.items():
            if mo.mean_isl and mo.mean_osl and mo.completion_rps > 0:
                self.lengths[m] = (mo.mean_isl, mo.mean_osl)

    def _workload(self, obs: Observation, fc: dict[str, Forecast]) -> Workload:
        classes: list[RequestClass] = []
        drain = self.cfg.guard.queue_drain_s or (self.cfg.startup_s + self.cfg.interval_s)
        for m, mo in obs.models.items():
            isl, osl = self.lengths.get(m, (_DEFAULT_ISL, _DEFAULT_OSL))
            tf = self.token_forecast.get(m)
            if tf is not None and fc[m].upper > 0:
                # plan for the upper quantile of the work, not only of the request count: lengths
                # such that rate x length = the upper forecast of each token rate
                isl, osl = tf[0].upper / fc[m].upper, tf[1].upper / fc[m].upper
            isl_i, osl_i = max(1, round(isl)), max(1, round(osl))
            classes.append(RequestClass(id=m, model=m, isl=isl_i, osl=osl_i, rate_rps=fc[m].upper))
            w_prefill = sum(v for r, v in mo.waiting.items() if r == "prefill")
            w_other = sum(v for r, v in mo.waiting.items() if r != "prefill")
            if w_prefill > 0:
                classes.append(RequestClass(id=f"{m}/backlog-prefill", model=m, isl=isl_i, osl=1, rate_rps=w_prefill / drain))
            if w_other > 0:
                classes.append(RequestClass(id=f"{m}/backlog", model=m, isl=isl_i, osl=osl_i, rate_rps=w_other / drain))
        return Workload(models={m: ModelEntry(slo=mc.slo) for m, mc in self.cfg.models.items() if m in obs.models},
                        classes=classes)

    def _correct(self, obs: Observation, ready: dict[str, int], settled: bool) -> list[str]:
        """Learn correction factors from observed vs predicted latency AT THE OBSERVED LOAD.

        Only from quiet intervals: the fleet settled (every desired replica ready) and no backlog
        now or at the previous observation (the latency samples of an interval span it, and a
        queue that just drained still shows in them; queueing is fed to the ILP as backlog, so
        learning it as model error would count it twice). The prediction is recomputed for the
        observed arrival rate, lengths and ready replicas (correct.predict_at_load), so the
        forecast's headroom is not mistaken for a model that is too slow or too fast."""
        quiet_now: dict[str, bool] = {}
        for m, mo in obs.models.items():
            quiet_now[m] = settled and sum(mo.waiting.values()) <= max(1.0, sum(mo.running.values()) * 0.1)
        quiet_before, self._quiet = self._quiet, quiet_now
        if self.last_plan is None:
            return []
        observed, predicted = {}, {}
        for m, mo in obs.models.items():
            mp = self.last_plan.models.get(m)
            if mp is None or mo.completion_rps < self.cfg.correct.min_rate_rps:
                continue
            if not (quiet_now[m] and quiet_before.get(m, False)):
                continue
            isl, osl = self.lengths.get(m, (None, None))
            if not isl or not osl:
                continue
            weights = mp.routing.get(m, {})
            pred = predict_at_load(CorrectedPerf(self.perf, self.corrections), ready, weights, mo.arrival_rps, isl, osl,
                                   self.cfg.models[m].slo.percentile)
            if pred is None:
                continue
            observed[m] = {"ttft_ms": mo.ttft_ms, "itl_ms": mo.itl_ms}
            predicted[m] = pred
        c = self.cfg.correct
        hist = any(obs.models[m].from_histograms for m in observed)
        self.corrections, notes = update_corrections(self.corrections, observed, predicted, c.smoothing, c.min_factor, c.max_factor,
                                                     buckets={"ttft": TTFT_BUCKETS_MS, "itl": ITL_BUCKETS_MS} if hist else None)
        for n in notes:
            log.info(n)
        return notes

    def _queue_growing(self, obs: Observation, pools: list[str]) -> set[str]:
        grow = set()
        for p in pools:
            v = Variant.parse(p)
            mo = obs.models.get(v.model)
            if mo and mo.waiting_growth_per_s.get(v.role, 0.0) > 0 and mo.waiting.get(v.role, 0.0) > 0:
                grow.add(p)
        return grow

    # ------------------------------------------------------------------ one interval
    def step(self) -> Decision:
        now = self.clock()
        if self.elector is not None:
            leading = self.elector.try_acquire_or_renew()
            self.metrics.leader.set(1 if leading else 0)
            if not leading:
                return self._record(Decision(t_s=now, outcome="not_leader"))
        try:
            pools = self.actuator.pools()
        except Exception as exc:  # noqa: BLE001 - the platform is unreachable: change nothing
            self.metrics.errors.labels(stage="observe").inc()
            self.metrics.holds.labels(reason="platform").inc()
            return self._record(Decision(t_s=now, outcome="held", errors=[f"read pools: {exc}"], reasons=["hold: platform unreachable"]))
        current = {p: s.desired for p, s in pools.items()}
        ready = {p: s.ready for p, s in pools.items()}
        for p, n in ready.items():
            self.metrics.actual.labels(pool=p).set(n)
        d = Decision(t_s=now, outcome="", current=current, ready=ready)

        obs = self.observer.observe()
        proposal: dict[str, int] | None = None
        solver_ok, solver_reason = True, ""
        if obs.ok:
            fc = self._forecast(obs)
            d.forecast_rps = {m: f.upper for m, f in fc.items()}
            d.observed = {m: {"arrival_rps": mo.arrival_rps, "ttft_ms": mo.ttft_ms, "itl_ms": mo.itl_ms,
                              "waiting": mo.waiting, "mean_isl": mo.mean_isl, "mean_osl": mo.mean_osl}
                          for m, mo in obs.models.items()}
            for m, f in fc.items():
                self.metrics.forecast.labels(model=m).set(f.upper)
            settled = all(ready.get(p, 0) >= n for p, n in current.items())
            self._update_lengths(obs)
            d.reasons.extend(self._correct(obs, ready, settled))
            for metric in ("ttft", "itl"):
                for m, f in getattr(self.corrections, metric).items():
                    self.metrics.factor.labels(model=m, metric=metric).set(f)
            d.corrections = {"ttft": dict(self.corrections.ttft), "itl": dict(self.corrections.itl)}
            try:
                workload = self._workload(obs, fc)
                fleet_now = self.fleet.model_copy(update={"current": {p: n for p, n in current.items() if n > 0}})
                t0 = time.perf_counter()
                plan = self.plan_fn(workload, fleet_now, CorrectedPerf(self.perf, self.corrections))
                d.solve_s = plan.solver.seconds or (time.perf_counter() - t0)
                self.metrics.solve.observe(d.solve_s)
                if plan.feasible and plan.solver.status in ("optimal", "feasible", "time_limit") and plan.models:
                    proposal = plan.replicas()
                    d.plan_cost_per_hour = plan.cost_per_hour
                    self.last_plan = plan
                else:
                    solver_ok = False
                    solver_reason = f"status {plan.solver.status}" + (f": {'; '.join(plan.diagnosis)}" if plan.diagnosis else "")
            except Exception as exc:  # noqa: BLE001 - a failed solve holds the last good plan
                self.metrics.errors.labels(stage="propose").inc()
                solver_ok, solver_reason = False, f"{type(exc).__name__}: {exc}"
                d.errors.append(f"propose: {solver_reason}")
        else:
            self.metrics.errors.labels(stage="observe").inc()
        d.proposal = proposal

        g: GuardDecision = guard(
            self.cfg.guard, self.guard_state, now, current, proposal,
            metrics_ok=obs.ok, metrics_reason=obs.reason, solver_ok=solver_ok, solver_reason=solver_reason,
            queue_growing=self._queue_growing(obs, list(current)) if obs.ok else set(),
        )
        d.target = g.target
        d.reasons.extend(g.reasons)
        d.changes = g.changes(current)
        for p, n in g.target.items():
            self.metrics.desired.labels(pool=p).set(n)
        if g.held:
            self.metrics.holds.labels(reason="metrics" if not obs.ok else "solver").inc()
        routing = self._routing() if not g.held else {}
        pairing = self._pairing() if not g.held else {}

        if self.dry_run:
            d.outcome = "dry_run"
        elif g.held and not d.changes:
            d.outcome = "held"
        else:
            res = self.actuator.apply(g.target, routing, "; ".join(d.reasons) or "re-plan", pairing=pairing)
            if res.errors:
                self.metrics.errors.labels(stage="apply").inc()
                d.errors.extend(res.errors)
            d.changes = res.changed if not self.dry_run else d.changes
            d.outcome = "held" if g.held else ("applied" if not res.errors else "error")
            if not g.held:
                self.last_routing = routing
        return self._record(d)

    def _routing(self) -> dict[str, Any]:
        """Routing weights of the main class per model: {model: {class: {pool: weight}}}."""
        if self.last_plan is None:
            return {}
        return {m: {c: w for c, w in mp.routing.items() if c == m} for m, mp in self.last_plan.models.items()}

    def _pairing(self) -> dict[str, Any]:
        """P->D pairing of the main class per model, where the fleet restricts it: {model: {class: {prefill: {decode: w}}}}."""
        if self.last_plan is None:
            return {}
        return {m: {c: p for c, p in mp.pairing.items() if c == m} for m, mp in self.last_plan.models.items() if mp.pairing}

    def _record(self, d: Decision) -> Decision:
        self.metrics.plans.labels(outcome=d.outcome).inc()
        self.decisions.append(d)
        self.log.write(d.__dict__)
        log.info("t=%.0f %s %s %s", d.t_s, d.outcome, d.changes or "", "; ".join(d.reasons))
        return d

    def run(self, once: bool = False, sleep: Callable[[float], None] = time.sleep) -> None:
        """Step every interval (aligned to the clock) until interrupted; `once`: one step."""
        while True:
            start = self.clock()
            d = self.step()
            if once:
                return
            sleep(max(0.0, self.cfg.interval_s - (self.clock() - start)))
            if math.isnan(d.t_s):  # pragma: no cover - defensive
                return
