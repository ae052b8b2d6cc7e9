"""Measure the all-reduce of tensor parallelism on this host's GPUs (NCCL through torch.distributed).

Tensor-parallel replicas all-reduce the hidden state twice per layer (after attention and after the
FFN); the roofline prior (planner/perf/prior.py) charges each all-reduce a fixed latency plus ring
bytes over a link bandwidth. This measures both on real GPUs, for every power-of-two group size up
to the GPUs present, in two modes:

  eager  one all-reduce per launch (prefill, or a decode step without CUDA graphs);
  graph  all-reduces captured in a CUDA graph and replayed (how vLLM runs decode steps), which
         removes the launch cost from the small-message latency.

Messages are bf16, from 8 KiB (a decode step of a few sequences) to 256 MiB (a 16k-token prefill of
a 8192-wide model). Times are medians over repeats of a loop, per all-reduce.

    torchrun --nproc-per-node 4 profiles/backends/allreduce.py --out DIR

writes DIR/allreduce.csv (gpu, n_gpus, mode, bytes, time_us, time_us_min) and DIR/meta.yaml (device,
driver, torch and NCCL versions, date) on rank 0. Needs torch with CUDA and NCCL (the `profile` extra).
NVLink SHARP (multicast) stays as the environment sets it: this script neither enables nor needs it.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import statistics
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import ModuleType

    from torch import Tensor
    from torch.distributed import ProcessGroup

SIZES_BYTES = [2**k for k in range(13, 29)]
"""8 KiB .. 256 MiB: decode steps of 1-512 sequences to prefills of 16k tokens, hidden 4096-8192, bf16."""
LOOP = 20
"""All-reduces per timed loop (and per captured graph)."""
REPEATS = 7
"""Timed loops per point; the median is kept."""
GRAPH_MAX_BYTES = 64 * 2**20
"""Largest message captured in a CUDA graph (decode steps are small; larger ones run eagerly in vLLM)."""


def main(argv: list[str] | None = None) -> int:
    import torch
    import torch.distributed as dist

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="directory for allreduce.csv and meta.yaml (rank 0)")
    args = ap.parse_args(argv)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    torch.cuda.set_device(local)
    dist.init_process_group("nccl", device_id=torch.device("cuda", local))
    sizes = [n for n in (2, 4, 8) if n <= world]
    groups = {n: dist.new_group(list(range(n))) for n in sizes}
    rows = []
    for n in sizes:
        group = groups[n]
        for nbytes in SIZES_BYTES:
            if rank >= n:
                dist.barrier()
                continue
            x = torch.ones(nbytes // 2, dtype=torch.bfloat16, device="cuda")
            for mode in ("eager", "graph"):
                if mode == "graph" and nbytes > GRAPH_MAX_BYTES:
                    continue
                times = _time(x, group, mode, torch, dist)
                if rank == 0:
                    rows.append({"gpu": torch.cuda.get_device_name(), "n_gpus": n, "mode": mode, "bytes": nbytes,
                                 "time_us": round(statistics.median(times), 3), "time_us_min": round(min(times), 3)})
                    print(f"n={n} {mode:5s} {nbytes:>10d} B  {statistics.median(times):9.1f} us", flush=True)
            # a sum of ones over n ranks is n: the collective really ran across the group
            dist.all_reduce(x[:1].fill_(1.0), group=group)
            assert float(x[0]) == n, f"all-reduce over {n} GPUs gave {float(x[0])}"
            del x
            dist.barrier()
    if rank == 0:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "allreduce.csv.tmp", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        (out / "allreduce.csv.tmp").replace(out / "allreduce.csv")
        meta = {
            "backend": "torch.distributed NCCL all_reduce (sum), one process per GPU",
            "device": torch.cuda.get_device_name(),
            "gpus_on_host": world,
            "torch": torch.__version__,
            "nccl": _version(torch.cuda.nccl.version()),
            "date": dt.date.today().isoformat(),
            "dtype": "bfloat16",
            "loop": LOOP,
            "repeats": REPEATS,
            "env": {k: os.environ[k] for k in sorted(os.environ) if k.startswith(("NCCL_", "TORCH_SYMM"))},
        }
        (out / "meta.yaml").write_text("".join(f"{k}: {v!r}\n" if not isinstance(v, dict) else
                                               f"{k}:\n" + "".join(f"  {a}: {b!r}\n" for a, b in v.items())
                                               for k, v in meta.items()))
    dist.barrier()
    dist.destroy_process_group()
    return 0


def _version(v: int | tuple[int, ...]) -> str:
    return ".".join(map(str, v)) if isinstance(v, tuple) else str(v)


def _time(x: Tensor, group: ProcessGroup, mode: str, torch: ModuleType, dist: ModuleType) -> list[float]:
    """Per-all-reduce times (us) of REPEATS loops of LOOP all-reduces of `x` over `group`."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    if mode == "graph":
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):  # warm NCCL's communicator on the side stream before capture
                dist.all_reduce(x, group=group)
        torch.cuda.current_stream().wait_stream(s)
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(LOOP):
                dist.all_reduce(x, group=group)
        run = graph.replay
    else:
        def run() -> None:
            for _ in range(LOOP):
                dist.all_reduce(x, group=group)
    for _ in range(3):
        run()
    torch.cuda.synchronize()
    out = []
    for _ in range(REPEATS):
        dist.barrier(group=group)
        start.record()
        run()
        end.record()
        end.synchronize()
        out.append(start.elapsed_time(end) * 1e3 / LOOP)
    return out


if __name__ == "__main__":
    sys.exit(main())
