"""The SLO metrics, defined once: their names, units, what their percentile is over, and the law they bound.

An SLO (planner.io.schema.Slo) bounds a percentile over requests of each metric listed here; the
planner predicts each one per class and pool, the controller observes each one and learns one
correction factor per metric and model. Code that handles "every SLO metric" (the SLO cost sweep,
the controller's correction update, its records and Prometheus labels) iterates over `SloMetric`
instead of spelling the pair out, so a new metric is added here first; what is specific to a
metric (its capacity constraint in planner.planning.capacity, its PromQL in controllers/observers/, the
law a correction scales in controllers.correct) is added where that knowledge lives.
Stdlib only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class SloMetric(StrEnum):
    """An SLO metric by its short name (the `metric` label of the controller's correction factors)."""

    TTFT = "ttft"
    ITL = "itl"

    @property
    def spec(self) -> SloMetricSpec:
        return SLO_METRIC_SPECS[self]

    @property
    def key(self) -> str:
        """The field name of the bound, the prediction and the observation: 'ttft_ms', 'itl_ms'."""
        return f"{self.value}_{self.spec.unit}"


@dataclass(frozen=True)
class SloMetricSpec:
    label: str
    """How messages name it (e.g. 'TTFT')."""
    unit: str
    """Unit of the bound, the prediction and the observation (the key's suffix)."""
    percentile_over: str
    """What the SLO's percentile is taken over (the sample one request contributes)."""
    law: str
    """The performance-model law that a correction factor of this metric scales (planner.perf.laws)."""


SLO_METRIC_SPECS: dict[SloMetric, SloMetricSpec] = {
    SloMetric.TTFT: SloMetricSpec(
        label="TTFT", unit="ms", law="prefill",
        percentile_over="requests: arrival to first output token, queueing and (P/D) the KV hand-off included"),
    SloMetric.ITL: SloMetricSpec(
        label="ITL", unit="ms", law="decode",
        percentile_over="requests: each request's mean time per output token after the first "
                        "(vLLM's request_time_per_output_token)"),
}
