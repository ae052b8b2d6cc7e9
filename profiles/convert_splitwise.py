"""Convert the Splitwise Llama2-70B measurements into planner profile directories.

Usage: ``python -m profiles.convert_splitwise SRC_CSV OUT_ROOT``
(e.g. ``python -m profiles.convert_splitwise ../shared/data/splitwise-perf/perf_model.csv profiles/data``)

Source: repository Mutinifni/splitwise-sim, ``data/perf_model.csv``, commit
8f99e7dc9b407f4ce2488d03dd44c0b8b946dab0, MIT licence. Llama2-70B on DGX-A100 (A100-80GB SXM) and
DGX-H100 (H100-80GB SXM) at tensor parallelism 2, 4, 8; five repeats per point. Splitwise's
power-capped H100 (``h100-80gb-pcap``) is skipped: it is not a GPU type of our catalog.

Mapping (one output row per input row, so the five repeats stay as samples):
- ``prompt_time`` (ms, prefill of the whole batch) -> prefill.csv ``ttft_ms`` at (isl=prompt_size, batch=batch_size).
- ``token_time`` (ms per decode step, averaged over the generation of ``token_size`` tokens) ->
  decode.csv ``itl_ms`` at (batch=batch_size, context_tokens = prompt_size + token_size/2). During the
  generation the context grows linearly from prompt_size to prompt_size + token_size; since the
  step time is linear in context (KV read per step), the MEAN step time equals the step time at
  the MEAN context, prompt_size + token_size/2.
- Points dropped: batch 64 at tp 2. Its KV need, 64 x (512 + 128) = 40,960 tokens, exceeds the tp-2
  replica's KV capacity (~36-38k tokens, derived below), and its times fall far below batch 32
  (prompt_time 794 ms vs 6,633 ms on A100; token_time 42 ms vs 52 ms on H100): the run did not
  process a full batch (e.g. preemption), so the numbers don't measure the point they are labelled with.
- KV capacity (not in the source): derived as vLLM sizes it, (memory x tp x 0.9 - weights -
  runtime/activation reserve) / KV bytes per token (planner.perf.prior.kv_capacity_tokens).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from planner.io.catalog import Catalog
from planner.io.files import read_csv
from planner.perf.prior import GPU_MEMORY_UTILIZATION, kv_capacity_tokens
from planner.perf.profiledata import ProfileMeta, profile_dir, write_profile

MODEL = "llama-2-70b"
HARDWARE = {"a100-80gb": "A100-80GB", "h100-80gb": "H100-SXM-80GB"}
SOURCE = ("Mutinifni/splitwise-sim, data/perf_model.csv, commit 8f99e7dc9b407f4ce2488d03dd44c0b8b946dab0 "
          "(MIT licence); Patel et al., 'Splitwise: Efficient Generative LLM Inference Using Phase Splitting', "
          "ISCA 2024")
BACKEND = "splitwise-measured (vLLM-like, see paper)"
# The measurement date is not in the CSV; the data predate the paper's arXiv v1 (arXiv:2311.18677,
# November 2023), so the month of that preprint is recorded.
DATE = "2023-11"
COLUMNS = {c: "numeric"
           for c in ("prompt_size", "batch_size", "token_size", "prompt_time", "token_time", "tensor_parallel")}
COLUMNS["hardware"] = "any"
COLUMNS["model"] = "any"


def _drop_bad(df: pd.DataFrame) -> pd.DataFrame:
    """Remove the batch-64, tp-2 points (see module docstring)."""
    return df[~((df.tensor_parallel == 2) & (df.batch_size == 64))]


def convert(src_csv: str | Path, out_root: str | Path, catalog: Catalog | None = None) -> list[Path]:
    """Write one profile directory per (hardware, tp) of the source; returns the directories."""
    cat = catalog or Catalog.load()
    model = cat.model(MODEL)
    df = read_csv(src_csv, COLUMNS)
    df = _drop_bad(df[df.model.astype(str).str.lower() == "llama2-70b"])
    out: list[Path] = []
    for hw, gpu_name in HARDWARE.items():
        gpu = cat.gpu(gpu_name)
        for tp, part in df[df.hardware == hw].groupby("tensor_parallel"):
            tp = int(tp)
            prefill = pd.DataFrame({
                "isl": part.prompt_size.astype(int),
                "batch": part.batch_size.astype(int),
                "ttft_ms": part.prompt_time.round(4),
            }).sort_values(["batch", "isl"], kind="stable")
            decode = pd.DataFrame({
                "batch": part.batch_size.astype(int),
                "context_tokens": (part.prompt_size + part.token_size // 2).astype(int),
                "itl_ms": part.token_time.round(4),
            }).sort_values(["batch", "context_tokens"], kind="stable")
            kv = kv_capacity_tokens(model, gpu, tp)
            if kv is None:
                raise SystemExit(f"{MODEL} does not fit {gpu_name} x{tp}: cannot derive a KV capacity")
            meta = ProfileMeta(
                model=MODEL, gpu=gpu_name, tp=tp, engine="splitwise", engine_version=None,
                engine_flags=[f"--tensor-parallel-size {tp}"],
                kv_capacity_tokens=kv,
                kv_capacity_note=(f"derived, not measured: (memory_gib*tp*{GPU_MEMORY_UTILIZATION} - weights - "
                                  "runtime and activation reserve) / kv_bytes_per_token "
                                  "(planner.perf.prior.kv_capacity_tokens)"),
                date=DATE, backend=BACKEND, source=SOURCE,
                device_name=f"{hw} (Splitwise hardware label)",
                notes=("prefill ttft_ms = prompt_time (whole batch, one pass); decode itl_ms = token_time at "
                       "context_tokens = prompt_size + token_size/2 (mean context over the generation); five "
                       "repeats per point kept as samples; batch-64 points at tp 2 dropped (see "
                       "profiles/convert_splitwise.py)."),
            )
            out.append(write_profile(profile_dir(out_root, MODEL, gpu_name, tp), meta, prefill, decode))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src_csv", help="splitwise-sim data/perf_model.csv")
    ap.add_argument("out_root", help="profile root, e.g. profiles/data")
    args = ap.parse_args(argv)
    for d in convert(args.src_csv, args.out_root):
        print(d)


if __name__ == "__main__":
    main()
