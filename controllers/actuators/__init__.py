"""Actuators, one module each, found by name through `ACTUATORS` (controllers/actuators/base.py).

Importing this package imports every module beside `base` in it, each of which registers its
actuator's builder with `@ACTUATORS.register(name, summary)`; `actuator.kind` in the controller
config and `planner control` then accept it. Built in: kubernetes, metrics, simulator, file.
"""

from __future__ import annotations

from controllers.actuators.base import (
    ACTUATORS,
    Actuation,
    Actuator,
    ActuatorBuilder,
    ActuatorContext,
    ApplyRequest,
    ApplyResult,
    Elector,
    Pairing,
    PoolState,
    Routing,
    build_actuator,
)
from controllers.registry import discover

discover(__name__, __path__)

__all__ = ["ACTUATORS", "Actuation", "Actuator", "ActuatorBuilder", "ActuatorContext", "ApplyRequest", "ApplyResult",
           "Elector", "Pairing", "PoolState", "Routing", "build_actuator"]
