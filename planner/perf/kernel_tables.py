"""Whether a serving engine runs an MoE variant on tuned kernels: the lookup vLLM performs, on the tables it ships.

vLLM's fused-MoE layer (Triton experts, what vLLM 0.26 runs for BF16 and per-tensor FP8 MoE models on Hopper) picks its
tile configuration from a JSON table named by the layer's shape, dtype and device (vLLM 0.26.0,
``model_executor/layers/fused_moe/fused_moe.py: get_config_file_name``)::

    E={experts},N={expert intermediate per GPU},device_name={driver name, spaces as _}[,dtype={fp8_w8a8|...}]

(any H200-family device is looked up as ``NVIDIA_H200``; BF16 and FP16 have no dtype part). Where the table is missing
it runs default tiles and logs "Using default MoE config". Measured on the lent GPUs: qwen3-30b-a3b with FP8 weights on
the H100 (no table) decoded at 1.47x its roofline floor where tuned dense profiles sit at 1.2-1.4x (stop 40).

Why the planner cares (rule V3, stop 41): the roofline prior's efficiencies describe tuned kernels. A profile measured on
fallback tiles plans its own variant but does not calibrate the prior (meta.yaml ``calibrate: false``, rule V2b), and a
variant the prior prices where the engine will run fallback tiles is flagged, since the prior is then likely optimistic.

The tables are listed per engine version in ``profiles/engine_kernel_tables.yaml`` (a copy of vLLM 0.26.0's file names);
for any other engine version, a dense model, or a GPU without a known driver name the verdict is "unknown" (None), never
a guess.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from planner.io.catalog import Catalog
from planner.io.errors import InputError
from planner.io.files import read_yaml_mapping
from planner.io.schema import GpuType, ModelSpec
from planner.perf.profiledata import ProfileMeta

TABLES_FILE = Path(__file__).resolve().parents[2] / "profiles" / "engine_kernel_tables.yaml"
KNOWN_ENGINE = "vllm 0.26.0"
# The dtype part of the table name per weight dtype (vLLM 0.26.0 fused_moe/config.py _get_config_dtype_str:
# per-tensor FP8 weights and activations -> "fp8_w8a8"; BF16/FP16 -> no part).
_DTYPE_PART: dict[str, str | None] = {"bf16": None, "fp16": None, "fp8": "fp8_w8a8"}
# Measured / prior, median per phase, (lowest, highest) over the vLLM MoE profiles measured on fallback tiles, the prior
# calibrated without each (bench/untuned_kernels.py, stop 41: qwen3-30b-a3b bf16 and FP8 on the H100, qwen1.5-moe-a2.7b
# on the H200, whose prefill also runs without CUDA graphs): the prior was optimistic on every one. Stop 41 (Huber loss):
# 1.10-2.10x / 1.03-1.17x; stop 42 (rule B2's Cauchy loss) below.
UNTUNED_MEASURED_OVER_PRIOR = {"prefill": (1.12, 2.13), "decode": (1.04, 1.22)}
UNTUNED_PROFILES = 3


@dataclass(frozen=True)
class KernelTuning:
    """The engine's fused-MoE table lookup for one variant: the table's name and whether the engine ships it
    (True: tuned, False: fallback tiles, None: unknown — not an MoE, another engine version, no driver name)."""

    table: str | None
    tuned: bool | None
    engine: str

    @property
    def note(self) -> str:
        engine = self.engine.replace("vllm", "vLLM", 1)  # as the project writes it elsewhere
        if self.tuned is None:
            return f"no verdict on {engine}'s fused-MoE tables"
        if self.tuned:
            return f"{engine} ships a tuned fused-MoE table ({self.table}.json)"
        return (f"{engine} ships no tuned fused-MoE table for this shape ({self.table}.json not found): it runs "
                "default tiles")


@functools.cache
def _tables(path: Path = TABLES_FILE) -> dict[str, frozenset[str]]:
    """{engine version: the fused-MoE table names it ships} from TABLES_FILE."""
    out: dict[str, frozenset[str]] = {}
    for engine, kinds in read_yaml_mapping(path).items():
        names = kinds.get("fused_moe") if isinstance(kinds, dict) else None
        if not isinstance(names, list):
            raise InputError(str(path), f"{engine}.fused_moe", "expected a list of table names")
        out[" ".join(engine.lower().split())] = frozenset(str(n) for n in names)
    return out


def device_file_name(driver_name: str) -> str:
    """The device part of vLLM's table name (fused_moe.get_config_file_name)."""
    name = driver_name.replace(" ", "_")
    return "NVIDIA_H200" if "H200" in name.split("_") else name


def fused_moe_table_name(experts: int, intermediate_per_gpu: int, driver_name: str, weight_dtype: str) -> str:
    """vLLM 0.26.0's table name (without ".json") for an MoE layer of `experts` experts whose expert FFN holds
    `intermediate_per_gpu` columns on each GPU (the model's expert intermediate size divided by the TP size)."""
    part = _DTYPE_PART.get(weight_dtype)
    return (f"E={experts},N={intermediate_per_gpu},device_name={device_file_name(driver_name)}"
            + (f",dtype={part}" if part else ""))


def moe_kernel_tuning(model: ModelSpec, gpu: GpuType, tp: int, weight_dtype: str,
                      engine: str = KNOWN_ENGINE, driver_name: str | None = None) -> KernelTuning:
    """Whether `engine` runs `model`'s fused-MoE layers on `gpu` at `tp` with tuned tiles. `driver_name` (a profile's
    meta.yaml device_name) wins over the catalog's; the engine string is compared as profiles write it ("vllm 0.26.0")."""
    engine = " ".join(engine.lower().split())
    name = driver_name or gpu.driver_name
    if model.moe is None or name is None or weight_dtype not in _DTYPE_PART or tp < 1 \
            or model.moe.expert_intermediate % tp:
        return KernelTuning(None, None, engine)
    table = fused_moe_table_name(model.moe.experts, model.moe.expert_intermediate // tp, name, weight_dtype)
    shipped = _tables().get(engine)
    return KernelTuning(table, None if shipped is None else table in shipped, engine)


def profile_kernel_tuning(meta: ProfileMeta, catalog: Catalog) -> KernelTuning | None:
    """The lookup for a measured profile, with the engine version and driver name its meta.yaml records; None where the
    catalog does not know the profile's model or GPU."""
    if meta.model not in catalog.models or meta.gpu not in catalog.gpus:
        return None
    return moe_kernel_tuning(catalog.models[meta.model], catalog.gpus[meta.gpu], meta.tp, meta.weight_dtype,
                             meta.engine_version or "", meta.device_name)


def default_tiles_advice(tables: list[str], subject: str = "it") -> str:
    """What the planner says where the prior prices an MoE variant (`subject`) that vLLM 0.26.0 runs on default
    fused-MoE tiles (`tables`: the missing table names): the prior describes tuned kernels and was optimistic on every
    profile measured on default tiles (UNTUNED_MEASURED_OVER_PRIOR), and how to do better."""
    pre, dec = UNTUNED_MEASURED_OVER_PRIOR["prefill"], UNTUNED_MEASURED_OVER_PRIOR["decode"]
    return (f"vLLM 0.26.0 ships no tuned fused-MoE table for {subject} ({', '.join(f'{t}.json' for t in sorted(tables))}) "
            f"and runs default tiles, slower than the tuned kernels the prior describes (on the {UNTUNED_PROFILES} MoE "
            f"profiles measured on default tiles the runs took {pre[0]:.2f}-{pre[1]:.2f}x the prior's prefill and "
            f"{dec[0]:.2f}-{dec[1]:.2f}x its decode at the median: bench/untuned_kernels.py); tune vLLM's kernel for the "
            "shape (benchmarks/kernels/benchmark_moe.py --tune, VLLM_TUNED_CONFIG_FOLDER) or profile the variant as it "
            "will run")
