"""pd-planner's public Python API: a notebook cell should read like the analysis.

    from planner import load_workload, load_fleet, solve, whatif
    wl, fl = load_workload("examples/default/workload.yaml"), load_fleet("examples/default/fleet.yaml")
    plan = solve(wl, fl)                      # a Plan with .pools(), .classes() and an HTML repr
    whatif.traffic(wl, fl, [0.5, 1, 2, 4])    # a pandas DataFrame, one row per ILP solve

Names are resolved lazily (PEP 562 module `__getattr__`), so `import planner.io.errors` from the CLI
or a controller does not pay for the solvers, pandas or the simulator.

  records  Workload, Fleet, Slo, RequestClass, ModelEntry, GpuInventory, FleetLimits, Plan, Variant
  inputs   load_workload, load_fleet, workload_from_trace, load_plan, save
  solving  solve, headroom, laws (catalog + performance model, cached), SolvedPlan
  checking simulate_plan(plan, workload, ...) -> SimReport (discrete-event simulation of a plan;
           `planner.simulate` is the simulator's package, planner/simulate/)
  what-if  whatif (module: traffic, gpu_price, prices, gpu_mix, slo_tightening, slo_frontier,
           disaggregation_map, pairing, routing, length_spread, output_spread, headroom, compare and the input
           transformations)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what a type checker sees of the lazy names below (the same objects; `X as X` re-exports)
    from planner.api import headroom as headroom
    from planner.api import laws as laws
    from planner.api import load_fleet as load_fleet
    from planner.api import load_workload as load_workload
    from planner.api import save as save
    from planner.api import simulate as simulate_plan  # noqa: F401  (exported under this name)
    from planner.api import solve as solve
    from planner.api import workload_from_trace as workload_from_trace
    from planner.io.catalog import Catalog as Catalog
    from planner.io.planfile import load_plan as load_plan
    from planner.io.schema import Fleet as Fleet
    from planner.io.schema import FleetLimits as FleetLimits
    from planner.io.schema import GpuInventory as GpuInventory
    from planner.io.schema import ModelEntry as ModelEntry
    from planner.io.schema import Plan as Plan
    from planner.io.schema import RequestClass as RequestClass
    from planner.io.schema import Slo as Slo
    from planner.io.schema import Variant as Variant
    from planner.io.schema import Workload as Workload
    from planner.planning import whatif as whatif
    from planner.solvedplan import SolvedPlan as SolvedPlan

_EXPORTS: dict[str, tuple[str, str | None]] = {
    # records
    "Workload": ("planner.io.schema", "Workload"),
    "Fleet": ("planner.io.schema", "Fleet"),
    "Slo": ("planner.io.schema", "Slo"),
    "RequestClass": ("planner.io.schema", "RequestClass"),
    "ModelEntry": ("planner.io.schema", "ModelEntry"),
    "GpuInventory": ("planner.io.schema", "GpuInventory"),
    "FleetLimits": ("planner.io.schema", "FleetLimits"),
    "Plan": ("planner.io.schema", "Plan"),
    "Variant": ("planner.io.schema", "Variant"),
    "SolvedPlan": ("planner.solvedplan", "SolvedPlan"),
    # inputs and outputs
    "load_workload": ("planner.api", "load_workload"),
    "load_fleet": ("planner.api", "load_fleet"),
    "workload_from_trace": ("planner.api", "workload_from_trace"),
    "load_plan": ("planner.io.planfile", "load_plan"),
    "save": ("planner.api", "save"),
    "Catalog": ("planner.io.catalog", "Catalog"),
    # solving and checking
    "solve": ("planner.api", "solve"),
    "headroom": ("planner.api", "headroom"),
    "laws": ("planner.api", "laws"),
    "simulate_plan": ("planner.api", "simulate"),
    # what-if sweeps (the module itself)
    "whatif": ("planner.planning.whatif", None),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'planner' has no attribute {name!r}") from None
    mod = importlib.import_module(module)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value  # cache: the next access is a plain attribute lookup
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
