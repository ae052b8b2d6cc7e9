"""Seeded synthetic instances shaped like real fleet-sizing problems, for benches and tests.

Not data: a generator whose numbers move the way measured ones do, so the solver can be timed at
sizes no profile set reaches yet. Shapes it keeps:
- prefill capacity falls with input length (tokens/s over isl, with a quadratic attention term),
  decode capacity falls with output length (and a little with context);
- faster GPU types cost more per hour (price grows a little less than linearly with speed);
- tensor parallelism speeds a replica up sub-linearly (tp^0.85) while costing tp GPUs;
- a model that does not fit a replica's memory, or a class whose SLO a slow variant cannot meet,
  has capacity 0 for that pair;
- some GPU types have a limited inventory, the rest are on-demand (unlimited), so every instance
  is feasible.
"""

from __future__ import annotations

import numpy as np

from solvers.objectives import Objective
from solvers.problem import ClassSpec, Problem, VariantSpec

# (name, relative throughput vs A100, memory GiB, price $/GPU-hour). Throughput ratios are rough
# public MLPerf-inference-style ratios; prices rough public on-demand list prices. Illustrative only.
GPU_TYPES = [
    ("L4", 0.25, 24, 0.8), ("A10G", 0.3, 24, 1.0), ("L40S", 0.6, 48, 1.9), ("A100-40GB", 0.9, 40, 3.0),
    ("A100-80GB", 1.0, 80, 3.7), ("MI300X", 2.0, 192, 6.0), ("H100", 2.2, 80, 6.9), ("H200", 2.6, 141, 8.0),
]
TP_SIZES = [1, 2, 4, 8]
MODEL_PARAMS_B = [8, 14, 32, 70, 110]
"""Model sizes (billions of parameters) drawn from; 2 bytes per parameter (bf16)."""
PREFILL_TOKENS_PER_S_8B_A100 = 9000.0
"""Prefill throughput of an 8B model on one A100 under a TTFT SLO (order of vLLM measurements)."""
DECODE_TOKENS_PER_S_8B_A100 = 1500.0
"""Decode throughput of an 8B model on one A100 under an ITL SLO (order of vLLM measurements)."""
LINK_BYTES_PER_S_PER_GPU = 25e9
"""KV-transfer bandwidth per GPU (a 200 Gb/s NIC)."""


def synthetic_problem(n_models: int, n_gpus: int, n_tps: int, n_classes: int = 12, seed: int = 0,
                      objective: Objective | str = "cost") -> Problem:
    """An instance with n_models x n_gpus x n_tps x 3 roles variants and n_models x n_classes classes."""
    rng = np.random.default_rng(seed)
    gpus = GPU_TYPES[:n_gpus] if n_gpus <= len(GPU_TYPES) else GPU_TYPES
    tps = TP_SIZES[:n_tps]
    classes, variants, capacity = [], [], {}
    # The last two types are on-demand (unlimited); the larger-memory of them anchors feasibility.
    anchor_gpu = max(gpus[-2:], key=lambda gpu: gpu[2])
    for m in range(n_models):
        group = f"model{m}"
        biggest = anchor_gpu[2] * max(tps)  # GiB of the largest replica
        params_b = float(rng.choice([p for p in MODEL_PARAMS_B if p * 2.0 < 0.8 * biggest] or [1.0]))
        size = params_b / 8.0
        kv_per_token = 131072.0 * size ** 0.5  # bytes; 128 KiB for an 8B GQA model
        mine = []
        for k in range(n_classes):
            isl = float(np.exp(rng.uniform(np.log(128), np.log(16384))))
            osl = float(np.exp(rng.uniform(np.log(32), np.log(2048))))
            rate = float(np.exp(rng.uniform(np.log(0.2), np.log(20.0))))
            cls = ClassSpec(f"{group}/c{k}", group, rate, kv_bytes=isl * kv_per_token)
            classes.append(cls)
            mine.append((cls, isl, osl))
        for g, speed, mem_gib, price in gpus:
            for tp in tps:
                fits = params_b * 2.0 < 0.8 * mem_gib * tp  # weights leave room for KV
                speedup = speed * tp ** 0.85
                for side in ("prefill", "decode", "mixed"):
                    vid = f"{group}/{side}/{g}/tp{tp}"
                    variants.append(VariantSpec(vid, group, side, g, tp, round(price * tp, 4), utilization=0.8,
                                                link_bytes_per_s=LINK_BYTES_PER_S_PER_GPU * tp
                                                if side != "mixed" else None))
                    if not fits:
                        continue
                    for cls, isl, osl in mine:
                        pre = PREFILL_TOKENS_PER_S_8B_A100 * speedup / size / (isl * (1 + isl / 32768))
                        dec = DECODE_TOKENS_PER_S_8B_A100 * speedup / size ** 0.7 / (osl * (1 + isl / 65536))
                        cap = {"prefill": pre, "decode": dec, "mixed": 0.7 / (1 / pre + 1 / dec)}[side]
                        # A slow replica misses the TTFT SLO on long prompts: capacity 0, as measured.
                        # The largest replica of the anchor type always serves (keeps instances feasible).
                        anchor = g == anchor_gpu[0] and tp == tps[-1]
                        slow = isl / (PREFILL_TOKENS_PER_S_8B_A100 * speedup / size) > 2.0
                        if not anchor and (slow or rng.random() < 0.1):
                            continue
                        capacity[(cls.id, vid)] = round(cap, 6)
    limited = [g for g, *_ in gpus][: max(len(gpus) - 2, 1)]
    total_rate = sum(c.rate for c in classes)
    inventory = {g: int(rng.integers(8, 8 + 4 * total_rate)) for g in limited}
    return Problem(classes, variants, capacity, inventory=inventory,
                   min_replicas_per_group={f"model{m}": 1 for m in range(n_models)}, objective=objective)
