"""GPU and model catalogs: profiles/gpus.yaml and profiles/models.yaml validated into schema records.

Each catalog file is a mapping ``name -> fields``; the name is the key (a ``name`` field inside the
entry, if given, must agree). Derived sizes (weight bytes, KV bytes per token, FLOPs per token) live
on :class:`planner.io.schema.ModelSpec`. Every error names the file, the entry/field and the expectation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

import profiles
from planner.io.errors import InputError
from planner.io.files import parse_model, read_yaml
from planner.io.schema import Fleet, GpuType, ModelSpec

PROFILES_DIR = Path(profiles.__file__).resolve().parent
"""The package's bundled profile folder (catalogs and profiles/data)."""
DEFAULT_GPUS_PATH = PROFILES_DIR / "gpus.yaml"
DEFAULT_MODELS_PATH = PROFILES_DIR / "models.yaml"

M = TypeVar("M", bound=BaseModel)


def _load_mapping(model: type[M], path: Path) -> dict[str, M]:
    """Read a YAML mapping of name -> entry, validating each entry into `model`."""
    data = read_yaml(path)
    if not isinstance(data, dict) or not data:
        raise InputError(str(path), None, f"expected a non-empty mapping of name -> {model.__name__} fields")
    out: dict[str, M] = {}
    for key, entry in data.items():
        name = str(key)
        if not isinstance(entry, dict):
            raise InputError(str(path), name, f"expected a mapping of {model.__name__} fields, got {type(entry).__name__}")
        inner = entry.get("name")
        if inner is not None and str(inner) != name:
            raise InputError(str(path), f"{name}.name", f"must equal its key '{name}', got '{inner}'")
        out[name] = parse_model(model, {**entry, "name": name}, str(path), prefix=name)
    return out


@dataclass(frozen=True)
class Catalog:
    """The GPU types and models the planner knows, with the files they came from (for messages)."""

    gpus: dict[str, GpuType]
    models: dict[str, ModelSpec]
    gpus_path: str = str(DEFAULT_GPUS_PATH)
    models_path: str = str(DEFAULT_MODELS_PATH)

    @classmethod
    def load(
        cls,
        gpus_path: str | os.PathLike[str] | None = None,
        models_path: str | os.PathLike[str] | None = None,
    ) -> Catalog:
        """Load both catalogs; paths default to the package's profiles/gpus.yaml and models.yaml."""
        gp = Path(gpus_path) if gpus_path is not None else DEFAULT_GPUS_PATH
        mp = Path(models_path) if models_path is not None else DEFAULT_MODELS_PATH
        return cls(gpus=_load_mapping(GpuType, gp), models=_load_mapping(ModelSpec, mp), gpus_path=str(gp), models_path=str(mp))

    def gpu(self, name: str) -> GpuType:
        """The GPU type called `name`; an unknown name is an InputError listing the known ones."""
        try:
            return self.gpus[name]
        except KeyError:
            raise InputError(self.gpus_path, name, f"unknown GPU type '{name}'; known: {', '.join(sorted(self.gpus))}") from None

    def model(self, name: str) -> ModelSpec:
        """The model called `name`; an unknown name is an InputError listing the known ones."""
        try:
            return self.models[name]
        except KeyError:
            raise InputError(self.models_path, name, f"unknown model '{name}'; known: {', '.join(sorted(self.models))}") from None

    def price(self, gpu: str, fleet: Fleet | None = None) -> float:
        """USD per GPU-hour of `gpu`: the fleet's override where it gives one, else the catalog's default."""
        if fleet is not None:
            inv = fleet.gpus.get(gpu)
            if inv is not None and inv.price_per_hour is not None:
                return inv.price_per_hour
        return self.gpu(gpu).price_per_hour
