"""Solver backends, one module per MILP library, found by name through a registry.

Importing this package imports every module beside `base` in it, each of which registers its
backend class(es) with `@register`; `backend_names()` then lists them. The libraries themselves
are imported only when a backend is loaded, so reading the registry (for the CLI's help) is cheap.
"""

from __future__ import annotations

import importlib
import pkgutil

from solvers.runners.base import (
    DEFAULT_BACKEND,
    BackendEntry,
    SolverBackend,
    StageResult,
    backend_entry,
    backend_help,
    backend_names,
    register,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["DEFAULT_BACKEND", "BackendEntry", "SolverBackend", "StageResult", "backend_entry", "backend_help",
           "backend_names", "register"]
