"""GPU and model catalogs: profiles/gpus.yaml and profiles/models.yaml validated into schema records.

Each catalog file is a mapping ``name -> fields``; the name is the key (a ``name`` field inside the
entry, if given, must agree). Derived sizes (weight bytes, KV bytes per token, FLOPs per token) live
on :class:`planner.io.schema.ModelSpec`. Every error names the file, the entry/field and the expectation.

A user's own catalog (models and GPUs the bundled files do not list) is a folder holding any of
``models.yaml``, ``gpus.yaml`` and ``model_configs.yaml`` in the bundled files' formats, named by the
environment variable ``PLANNER_CATALOG`` (the CLI's ``planner --catalog DIR`` sets it; notebooks and the
controller's deployment set it directly). Its entries are added to the bundled ones; an entry of a
bundled name replaces the bundled entry. Its ``profiles/`` subfolder (the profiles/data layout) holds the
user's measured profiles, fitted beside the bundled ones (planner.perf.laws.PerfModel.load). ``planner catalog import-hf`` writes such a folder from a
model's Hugging Face ``config.json`` (planner/io/hfconfig.py).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
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
CATALOG_ENV = "PLANNER_CATALOG"
"""Environment variable naming the user's catalog folder (module doc)."""
USER_FILES = ("models.yaml", "gpus.yaml", "model_configs.yaml")
"""The files a user catalog folder may hold, in the bundled files' formats."""


USER_PROFILES_DIR = "profiles"
"""The user catalog folder's subfolder of measured profiles (profiles/data's layout; planner.perf.laws reads it)."""


def user_catalog_dir() -> Path | None:
    """The user's catalog folder from ``PLANNER_CATALOG``, or None when unset or empty.
    A value that is not a folder holding at least one of USER_FILES or a profiles/ subfolder is an InputError naming
    it. A folder of profiles alone is one: its bundled models measured on bundled GPUs need no YAML (found in QA: such
    a folder, as README's catalog folder describes, was refused)."""
    raw = os.environ.get(CATALOG_ENV, "").strip()
    if not raw:
        return None
    d = Path(raw).expanduser()
    if not d.is_dir() or not (any((d / f).is_file() for f in USER_FILES) or (d / USER_PROFILES_DIR).is_dir()):
        raise InputError(str(d), None, f"expected a catalog folder holding any of {', '.join(USER_FILES)} or a "
                         f"{USER_PROFILES_DIR}/ folder of measured profiles (from --catalog or ${CATALOG_ENV}); write one "
                         "with `planner catalog import-hf`")
    return d


def user_catalog_file(name: str) -> Path | None:
    """`name` (one of USER_FILES) in the user's catalog folder, if it is there."""
    d = user_catalog_dir()
    if d is None or not (d / name).is_file():
        return None
    return d / name

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


# Least difflib similarity ratio for a "did you mean": at 0.8, 'llama3-8b' finds 'llama-3.1-8b' (0.86) and 'B300' does
# not find 'B200' (0.75), another card.
_CLOSE_RATIO = 0.8


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    """' (did you mean 'X'?)' for the known names that `name` begins (any case: 'h100' -> 'H100-SXM-80GB'), else the
    one closest by difflib's ratio at _CLOSE_RATIO or above (an exact match but for case scores 1.0); '' where none."""
    by_lower = {k.lower(): k for k in sorted(known)}
    low = name.lower()
    close = [k for k in by_lower if k.startswith(low)] if low else []
    close = close or difflib.get_close_matches(low, list(by_lower), n=1, cutoff=_CLOSE_RATIO)
    return f" (did you mean {' or '.join(repr(by_lower[c]) for c in close)}?)" if close else ""


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
        """Load both catalogs. A path given is loaded alone; a path left out is the package's
        profiles/gpus.yaml or models.yaml with the user's catalog folder's file over it (module doc)."""
        gp = Path(gpus_path) if gpus_path is not None else DEFAULT_GPUS_PATH
        mp = Path(models_path) if models_path is not None else DEFAULT_MODELS_PATH
        gpus, models = _load_mapping(GpuType, gp), _load_mapping(ModelSpec, mp)
        gps, mps = str(gp), str(mp)
        user_gpus = user_catalog_file("gpus.yaml") if gpus_path is None else None
        user_models = user_catalog_file("models.yaml") if models_path is None else None
        if user_gpus is not None:
            gpus = {**gpus, **_load_mapping(GpuType, user_gpus)}
            gps = f"{user_gpus} (over {gp})"
        if user_models is not None:
            models = {**models, **_load_mapping(ModelSpec, user_models)}
            mps = f"{user_models} (over {mp})"
        return cls(gpus=gpus, models=models, gpus_path=gps, models_path=mps)

    def gpu(self, name: str, flag: str | None = None) -> GpuType:
        """The GPU type called `name`; an unknown name is an InputError listing the known ones, naming the command-line
        option `flag` where the user gave the name there (else the catalog file and the name)."""
        try:
            return self.gpus[name]
        except KeyError:
            raise InputError(None if flag else self.gpus_path, flag or name, self.unknown_gpu_text(name)) from None

    def model(self, name: str, flag: str | None = None) -> ModelSpec:
        """The model called `name`; an unknown name is an InputError listing the known ones, naming the command-line
        option `flag` where the user gave the name there (else the catalog file and the name)."""
        try:
            return self.models[name]
        except KeyError:
            raise InputError(None if flag else self.models_path, flag or name, self.unknown_model_text(name)) from None

    def contexts(self, models: Iterable[str]) -> dict[str, int | None]:
        """Each known model's context length (max_context; None where the catalog does not state it), for a replay's
        check of its requests (planner.io.traces.read_trace); models the catalog does not know are left out."""
        return {m: self.models[m].max_context for m in models if m in self.models}

    def unknown_model_text(self, name: str) -> str:
        """What an unknown model name is told: the name nearest it, the known ones (and where), how to add one."""
        return (f"unknown model '{name}'{_did_you_mean(name, self.models)}; known ({self.models_path}): "
                f"{', '.join(sorted(self.models))}; add one with `planner catalog import-hf CONFIG.json --into DIR` and "
                "`planner --catalog DIR ...`")

    def unknown_gpu_text(self, name: str) -> str:
        """What an unknown GPU type is told: the name nearest it, the known ones (and where), how to add one."""
        return (f"unknown GPU type '{name}'{_did_you_mean(name, self.gpus)}; known ({self.gpus_path}): "
                f"{', '.join(sorted(self.gpus))}; add one in a gpus.yaml of your catalog folder (`planner --catalog DIR ...`)")

    def price(self, gpu: str, fleet: Fleet | None = None) -> float:
        """USD per GPU-hour of `gpu`: the fleet's override where it gives one, else the catalog's default."""
        if fleet is not None:
            inv = fleet.gpus.get(gpu)
            if inv is not None and inv.price_per_hour is not None:
                return inv.price_per_hour
        return self.gpu(gpu).price_per_hour
