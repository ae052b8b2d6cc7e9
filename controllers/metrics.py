"""Record: the controller's own Prometheus metrics and its JSONL decision log.

Metrics (own registry, served on `record.metrics_port` at /metrics):
  pd_planner_plans_total{outcome}            applied | held | dry_run | not_leader | error
  pd_planner_holds_total{reason}             metrics | solver | platform
  pd_planner_errors_total{stage}             leader | observe | propose | apply
  pd_planner_decided_replicas{pool}          what the controller decided (the metrics actuator's
                                             pd_planner_desired_replicas{namespace, target_kind, ...}
                                             is the one HPA/KEDA read)
  pd_planner_actual_replicas{pool}           ready replicas as found
  pd_planner_solve_seconds                   histogram of ILP solve time
  pd_planner_forecast_rps{model}             planned (upper-quantile) request rate
  pd_planner_correction_factor{model,metric} bounded perf-model factors
  pd_planner_leader                          1 when this replica leads (always 1 without leader election)
The decision log gets one JSON object per interval (appended and flushed, so a crash loses at most
the line being written): the fields of controllers.loop.Decision; `plan_cost_per_hour` is the cost of the
replicas the decision applies (`target`), `optimiser_cost_per_hour` the optimiser's plan's, before the guard;
`solver_status` / `solver_gap` that plan's (time_limit: the solver's best at its time limit, maybe not the cheapest).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self.plans = Counter("pd_planner_plans", "Controller intervals by outcome", ["outcome"], registry=r)
        self.holds = Counter("pd_planner_holds", "Intervals that held the last good plan", ["reason"], registry=r)
        self.errors = Counter("pd_planner_errors", "Errors by stage", ["stage"], registry=r)
        self.desired = Gauge("pd_planner_decided_replicas", "Replicas decided per pool", ["pool"], registry=r)
        self.actual = Gauge("pd_planner_actual_replicas", "Ready replicas found per pool", ["pool"], registry=r)
        # buckets: HiGHS solves of controller-sized instances take ms to seconds; 10 s is the default time limit
        self.solve = Histogram("pd_planner_solve_seconds", "ILP solve time", registry=r,
                               buckets=(0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30))
        self.forecast = Gauge("pd_planner_forecast_rps", "Planned request rate per model", ["model"], registry=r)
        self.factor = Gauge("pd_planner_correction_factor", "Performance-model correction", ["model", "metric"], registry=r)
        self.leader = Gauge("pd_planner_leader", "1 when this replica holds the lease", registry=r)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        start_http_server(port, addr=addr, registry=self.registry)


class DecisionLog:
    """Append-only JSONL; None path: keep nothing on disk (the records are still returned)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: Mapping[str, object]) -> None:
        if self.path is None:
            return
        with self.path.open("a") as fh:
            fh.write(json.dumps(record, default=str, sort_keys=True) + "\n")
            fh.flush()
