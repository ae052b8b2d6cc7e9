"""A plan that reads well in a notebook or a REPL: `SolvedPlan` = `Plan` + tables + repr.

`SolvedPlan` subclasses :class:`planner.io.schema.Plan` and adds only presentation: the pools and the
per-class predictions as pandas DataFrames, a short text `repr` (totals, then one line per pool)
and `_repr_html_` (totals, the pools table, the class predictions), so a notebook cell that ends in
`plan` shows what to run and what it costs. It is still a `Plan`: `save_plan`, `diff`, `explain`
and the controller take it as they are. Kept out of schema.py so the file contract stays data-only.
"""

from __future__ import annotations

import html

import pandas as pd

from planner.io.schema import ModelPlan, Plan, precision_suffix
from planner.words import plural

POOL_COLUMNS = ["model", "pool", "role", "gpu", "tp", "weight_dtype", "kv_dtype", "replicas", "gpus", "cost_per_hour",
                "utilization", "ttft_ms", "itl_ms", "source", "law_source"]
CLASS_COLUMNS = ["model", "class", "percentile", "ttft_ms", "slo_ttft_ms", "itl_ms", "slo_itl_ms",
                 "meets_slo", "disaggregated_share"]


def pools_frame(plan: Plan) -> pd.DataFrame:
    """One row per pool: model, pool id, role, GPU type, tp, weight and KV precisions, replicas, GPUs, USD/h,
    utilization (share of its SLO capacity), the worst predicted TTFT and ITL of its classes (ms, at their SLO
    percentile), and its laws (source: measured or prior; law_source: which measurement), as `planner solve`'s table."""
    rows = [{"model": model, "pool": p.id, "role": p.role, "gpu": p.gpu, "tp": p.tp, "weight_dtype": p.weight_dtype,
             "kv_dtype": p.kv_dtype, "replicas": p.replicas, "gpus": p.gpus, "cost_per_hour": p.cost_per_hour,
             "utilization": p.utilization, "ttft_ms": p.ttft_ms, "itl_ms": p.itl_ms, "source": p.source,
             "law_source": p.law_source}
            for model, mp in plan.models.items() for p in mp.pools]
    return pd.DataFrame(rows, columns=POOL_COLUMNS)


def _meets(pred_ms: float | None, bound_ms: float | None) -> bool:
    return bound_ms is None or (pred_ms is not None and pred_ms <= bound_ms)


def classes_frame(plan: Plan) -> pd.DataFrame:
    """One row per request class: predicted TTFT/ITL at the SLO percentile against the bounds."""
    rows = []
    for model, mp in plan.models.items():
        for cid, pr in mp.predicted.items():
            rows.append({"model": model, "class": cid, "percentile": pr.percentile,
                         "ttft_ms": pr.ttft_ms, "slo_ttft_ms": pr.slo_ttft_ms,
                         "itl_ms": pr.itl_ms, "slo_itl_ms": pr.slo_itl_ms,
                         "meets_slo": _meets(pr.ttft_ms, pr.slo_ttft_ms) and _meets(pr.itl_ms, pr.slo_itl_ms),
                         "disaggregated_share": pr.disaggregated_share})
    return pd.DataFrame(rows, columns=CLASS_COLUMNS)


def pd_summary(mp: ModelPlan) -> str:
    """A model's P:D ratio in words; without pools, whether the workload gives it no traffic (no class routed) or none
    of its classes is served (a max-load plan of factor 0: the fleet runs no pool of it within SLO)."""
    if mp.pd_ratio:
        return f"P:D {mp.pd_ratio:.2f}"
    if mp.pools:
        return "aggregated (mixed) only"
    return "no pools: none of its classes is served" if mp.routing else "no pools (the workload gives it no traffic)"


def timed_out(plan: Plan) -> bool:
    """Whether the solver stopped at its time limit before any plan: the instance is not shown infeasible, so it is
    not called so (`planner solve`: "No plan within the solver's time limit")."""
    return not plan.feasible and plan.solver.status == "time_limit"


def headline(plan: Plan) -> str:
    """One line: feasibility, cost, GPUs by type, load multiplier, solver status."""
    if not plan.feasible and timed_out(plan):
        return f"NO PLAN within the solver's time limit ({plan.solver.backend} {plan.solver.status}; not shown infeasible)"
    if not plan.feasible:
        return f"INFEASIBLE plan ({plan.solver.backend} {plan.solver.status})"
    gpus = ", ".join(f"{n} x {g}" for g, n in sorted(plan.gpus.items())) or "no GPUs"
    total = sum(plan.gpus.values())
    out = f"${plan.cost_per_hour:,.2f}/h on {total} GPU{'' if total == 1 else 's'} ({gpus})"
    if plan.load_multiplier is not None:
        out += f"; serves {plan.load_multiplier:.2f}x the workload"
    s = plan.solver
    gap = f", gap {s.gap:.2%}" if s.gap is not None else ""
    return out + f"; {s.backend} {s.status}{gap} in {s.seconds:.2f}s"


class SolvedPlan(Plan):
    """A `Plan` with DataFrame views and a readable repr (text and HTML); nothing else changes."""

    @classmethod
    def of(cls, plan: Plan) -> SolvedPlan:
        """Wrap an existing plan (a copy of its fields; the original is not touched)."""
        if isinstance(plan, cls):
            return plan
        return cls.model_validate(plan.model_dump())

    # --- tables
    def pools(self) -> pd.DataFrame:
        """The pools as a DataFrame (see :func:`pools_frame`)."""
        return pools_frame(self)

    def classes(self) -> pd.DataFrame:
        """The per-class predictions as a DataFrame (see :func:`classes_frame`)."""
        return classes_frame(self)

    def explain(self) -> str:
        """The plan in sentences (planner.io.planfile.explain), as one string."""
        from planner.planning.explain import explain

        return "\n".join(explain(self))

    @property
    def total_gpus(self) -> int:
        return sum(self.gpus.values())

    # --- display
    def __repr__(self) -> str:
        lines = [f"Plan: {headline(self)}"]
        if not self.feasible:
            lines += [f"  - {d}" for d in self.diagnosis]
            return "\n".join(lines)
        for model, mp in self.models.items():
            lines.append(f"  {model}: {pd_summary(mp)}")
            for p in mp.pools:
                lines.append(f"    {p.role:<7} {p.gpu} tp{p.tp}{precision_suffix(p.weight_dtype, p.kv_dtype)} x{p.replicas} = "
                             f"{plural(p.gpus, 'GPU')}  ${p.cost_per_hour:,.2f}/h  util {p.utilization:.0%}  ({p.law_source or p.source})")
        return "\n".join(lines)

    __str__ = __repr__

    def _repr_pretty_(self, p: object, cycle: bool) -> None:  # IPython's text display
        p.text(repr(self))  # type: ignore[attr-defined]

    def _repr_html_(self) -> str:
        head = f"<p><b>Plan</b>: {html.escape(headline(self))}</p>"
        if not self.feasible:
            items = "".join(f"<li>{html.escape(d)}</li>" for d in self.diagnosis)
            why = "Why the solver has none:" if timed_out(self) else "What binds and what would make it feasible:"
            return head + f"<p>{why}</p><ul>{items}</ul>"
        pools = self.pools()
        pools_html: str = pools.to_html(index=False, float_format=lambda x: f"{x:,.2f}", border=0)
        classes_html: str = self.classes().to_html(index=False, float_format=lambda x: f"{x:,.1f}", border=0)
        binding = ""
        if self.binding:
            binding = "<p>Binding: " + "; ".join(html.escape(b) for b in self.binding) + "</p>"
        return head + "<p>Pools</p>" + pools_html + "<p>Predicted latency per class</p>" + classes_html + binding
