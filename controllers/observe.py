"""Observe the serving fleet: the names callers import.

The seam (Observation, ModelObservation, the Observer Protocol, the registry OBSERVERS) is defined
in controllers/observers/base.py, each observer in its own module of controllers/observers/
(prometheus: PromQL over vLLM's metrics; simulator: planner.simulate's FleetSimulator); this module
gathers their public names under the import path the loop, the bench and the tests have always used.
"""

from __future__ import annotations

from controllers.observers import (
    OBSERVERS,
    ModelObservation,
    Observation,
    Observer,
    ObserverContext,
    build_observer,
)
from controllers.observers.prometheus import ITL_PER_TOKEN, ROLE_VALUES, TPOT_REQUEST, PromError, PrometheusObserver
from controllers.observers.simulator import ARRIVAL_IDC_WINDOWS_S, ARRIVAL_PEAK_WINDOWS_S, SimulatorObserver

__all__ = ["ARRIVAL_IDC_WINDOWS_S", "ARRIVAL_PEAK_WINDOWS_S", "ITL_PER_TOKEN", "OBSERVERS", "ROLE_VALUES", "TPOT_REQUEST", "ModelObservation",
           "Observation", "Observer", "ObserverContext", "PromError", "PrometheusObserver", "SimulatorObserver",
           "build_observer"]
