"""Environment of a launched ``vllm serve`` process.

Tensor parallelism (tp > 1) runs NCCL all-reduces between the GPUs of one host, and the P2P NCCL KV
connector an NCCL link between two servers. On the lent multi-GPU H200 machines NVLink multicast must
stay off in NCCL, PyTorch and NVSHMEM: a program using it can put the host's shared GPUs out of
service (the device tool's KINDS.md, which asks to keep these set also where a program is started
with its own environment). So every launched server gets ``NCCL_NVLS_ENABLE=0``,
``TORCH_SYMM_MEM_DISABLE_MULTICAST=1`` and ``NVSHMEM_DISABLE_NVLS=1``, whatever tp, and they cannot be
overridden (vLLM's symmetric-memory all-reduce then falls back to its custom/NCCL all-reduce).
The vLLM offline bundle needs three more variables to start at all (shared/tools/vllm-offline/README.md):
``VLLM_USE_FLASHINFER_SAMPLER=0`` (flashinfer is not bundled), ``HF_HUB_OFFLINE=1`` and
``VLLM_NO_USAGE_STATS=1``; they are defaults here too, overridable the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

NO_MULTICAST_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
"""Always set, last (module docstring)."""
OFFLINE_ENV_DEFAULTS = {"VLLM_USE_FLASHINFER_SAMPLER": "0", "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}


def server_env(extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The full environment of a launched server (every tensor-parallel size gets the same rules).

    Order of precedence: the no-multicast variables (always) > `extra` (the launch's own variables,
    e.g. CUDA_VISIBLE_DEVICES) > the inherited environment `base` (default os.environ) > the offline
    bundle's defaults."""
    env = dict(OFFLINE_ENV_DEFAULTS)
    env.update(os.environ if base is None else base)
    env.update(extra or {})
    env.update(NO_MULTICAST_ENV)
    return env


MOE_DUMMY_ROUTING_ENV = {"VLLM_MOE_ROUTING_SIMULATION_STRATEGY": "uniform_random"}
"""Given to a launched server of a mixture-of-experts model served with dummy weights (``planner profile
--dummy-weights``) unless the user's environment sets the variable: every token's experts drawn uniformly at random
(vLLM 0.26 envs.py), the balanced routing a trained router's load balancing approaches. Why (rule V1, stop 39): with
FP8 weights quantized online from dummy ones, vLLM's router sent a batch to few experts (qwen3-30b-a3b on the H100:
decode steps below the roofline floor, planner/perf/floor.py); with bf16 dummy weights the router already spread
tokens, and uniform routing measured the same decode within 1-2% (profiles/runs/2026-12-03-s6). Re-measured with it
(stop 40, profiles/runs/2026-12-05-h2v2), the FP8 MoE's decode at batch 8-128 took 1.4-2.1x the dummy router's."""


def moe_dummy_env(is_moe: bool, dummy_weights: bool, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """MOE_DUMMY_ROUTING_ENV for a weightless MoE launch, less what the environment `base` (default os.environ)
    already sets; {} otherwise."""
    if not (is_moe and dummy_weights):
        return {}
    have = os.environ if base is None else base
    return {k: v for k, v in MOE_DUMMY_ROUTING_ENV.items() if k not in have}

