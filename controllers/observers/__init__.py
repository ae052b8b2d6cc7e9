"""Observers, one module each, found by name through `OBSERVERS` (controllers/observers/base.py).

Importing this package imports every module beside `base` in it, each of which registers its
observer's builder with `@OBSERVERS.register(name, summary)`. Built in: prometheus, simulator.
"""

from __future__ import annotations

from controllers.observers.base import (
    OBSERVERS,
    ModelObservation,
    Observation,
    Observer,
    ObserverBuilder,
    ObserverContext,
    build_observer,
)
from controllers.registry import discover

discover(__name__, __path__)

__all__ = ["OBSERVERS", "ModelObservation", "Observation", "Observer", "ObserverBuilder", "ObserverContext",
           "build_observer"]
