"""Dry plan of the multi-GPU runs of issue 14: the exact commands, the machine kind each needs, and
the expected GPU-minutes. Prints; runs nothing.

    .venv/bin/python profiles/runs/multi_gpu_plan.py            # the plan as a table + the commands
    .venv/bin/python profiles/runs/multi_gpu_plan.py --shell    # only the commands, one run per block

Runs (all on H200-141GB, vLLM 0.26.0 from shared/tools/vllm-offline, weightless ``--load-format dummy``):

1. tensor-parallel profiles: llama-3.1-70b tp2 and tp4, qwen3-32b tp2, with ``planner profile
   --backend vllm`` in launch mode (profiles.vllm_cli: the same command without the solver's
   dependencies), on the thinned grids of the tp1 H200 session (profiles/gpu_session.py: prefill isl
   128..16384 x batch 1,4; decode batch 1..256 x context 512,2048,8192, at most 300k KV tokens per
   point) so they line up with the tp1 profiles, into
   ``profiles/data/<model>/H200-141GB/tp<N>/vllm/``. The launched server gets NVLink multicast off
   (profiles/backends/launch_env.py), the machine's rule.
2. NCCL all-reduce on H200 (profiles/backends/allreduce.py, torchrun, 4 processes -> groups of 2 and 4)
   into ``profiles/data/allreduce/H200-141GB/``.
3. 1P1D pair of llama-3.1-8b (tp1 prefill on GPU 0, tp1 decode on GPU 1, P2pNcclConnector) with the
   hand-off sweep 1k-16k and a load sweep through the pair and through one mixed instance
   (profiles/backends/pd_pair.py) into ``profiles/data/llama-3.1-8b/H200-141GB/pair-tp1-tp1/``; then
   ``bench/pd_check.py`` on it.

Expected time of a profile = server start-up + the sweep's GPU time predicted by the planner's own
laws (roofline prior of the variant, planner/perf/laws.py) for every point of the grid x repeats, times
OVERHEAD for HTTP, scheduling and the blocker requests; GPU-minutes = wall minutes x GPUs held.
The device tool allows 10 minutes per command: every profile command carries an absolute deadline
for its sweeps (``--deadline-unix-s``, start-up included in the 540 s) and is resumable, so a run
that needs longer is the same command again (each repeat pays the start-up once more; the table
counts the calls).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from planner.perf.laws import PerfModel, VariantPerf, quiet_extrapolation  # noqa: E402
from profiles import sweep  # noqa: E402
from profiles.backends.launch_env import NO_MULTICAST_ENV, OFFLINE_ENV_DEFAULTS  # noqa: E402

GPU = "H200-141GB"
SERVER_CMD = "python3 -m vllm.entrypoints.cli.main serve"
"""`vllm serve` where the bundle has no `vllm` script on PATH (vllm/entrypoints/cli/main.py)."""
SITE = "/tmp/site"
"""Where shared/tools/vllm-offline/install.sh unpacks the bundle."""
MAX_MODEL_LEN = 17408  # the 16384-token prefill points + the decode tokens of the largest context
REPEATS = 3
DECODE_REPEATS = 2
PREFILL_ISL = (128, 512, 2048, 4096, 8192, 16384)
PREFILL_BATCH = (1, 4)
DECODE_BATCH = (1, 8, 32, 128, 256)
DECODE_CONTEXT = (512, 2048, 8192)
MAX_POINT_KV = 300_000
"""The thinned grids of profiles/gpu_session.py (the tp1 H200 session), so tp profiles line up with tp1."""
CALL_S = 540.0
"""Seconds of one device call's command (the tool's limit is 600 s; 60 s to stop the server)."""
STARTUP_S = {"llama-3.1-8b": 110.0, "qwen3-32b": 180.0, "llama-3.1-70b": 240.0}
"""Server start to /health with CUDA graphs. 8B: 106 s measured on one H200 (shared/tools/vllm-offline/
README.md); 32B/70B: ASSUMED (dummy-weight init and torch.compile grow with layers; not measured yet)."""
OVERHEAD = 1.5
"""Wall time / predicted GPU time of a sweep: HTTP, engine scheduling, blockers (an assumption; the
emulated profile in bench/profile_cost.py shows the same order)."""
ALLREDUCE_MIN = 3.0
"""torchrun start (~30 s) + 16 sizes x 2 modes x 2 group sizes x 7 repeats x 20 all-reduces (< 1 min)."""


@dataclass(frozen=True)
class Run:
    name: str
    kind: str
    gpus: int
    wall_min: float
    commands: list[str]

    @property
    def gpu_min(self) -> float:
        return self.wall_min * self.gpus


def env_prefix() -> str:
    env = {**OFFLINE_ENV_DEFAULTS, **NO_MULTICAST_ENV, "PYTHONPATH": f"{SITE}:."}
    return " ".join(f"{k}={v}" for k, v in env.items())


def sweep_seconds(vp: VariantPerf, repeats: int = REPEATS, decode_tokens: int = sweep.DEFAULT_DECODE_TOKENS) -> float:
    """Predicted GPU seconds of the thinned grids on one variant (module docstring)."""
    with quiet_extrapolation():
        blocker_ms = vp.prefill_ms(min(2048, vp.max_batched_tokens), 1)
        total_ms = 0.0
        for pp in sweep.prefill_grid(PREFILL_ISL, PREFILL_BATCH, max_isl=MAX_MODEL_LEN):
            total_ms += repeats * (blocker_ms + vp.prefill_ms(pp.isl, pp.batch))
        for dp in sweep.decode_grid(DECODE_BATCH, DECODE_CONTEXT,
                                    kv_capacity_tokens=min(vp.kv_capacity_tokens, MAX_POINT_KV),
                                    decode_tokens=decode_tokens, max_num_seqs=vp.max_num_seqs):
            stagger = -(-dp.batch * dp.context // vp.max_batched_tokens) + 2
            total_ms += DECODE_REPEATS * (vp.prefill_ms(dp.context, dp.batch)
                                          + (decode_tokens + stagger) * vp.decode_step_ms(dp.batch, dp.context))
    return total_ms / 1e3


def tp_profile_run(pm: PerfModel, model: str, tp: int) -> Run:
    vp = pm.get(model, GPU, tp)
    if vp is None:
        raise SystemExit(f"{model}/{GPU}/tp{tp}: the planner says it cannot run "
                         "(weights do not fit or tp does not divide heads)")
    sweep_s = OVERHEAD * sweep_seconds(vp)
    calls = max(1, -(-int(sweep_s) // int(CALL_S - STARTUP_S[model])))
    wall_min = (calls * STARTUP_S[model] + sweep_s) / 60.0

    def j(xs: tuple[int, ...]) -> str:
        return ",".join(map(str, xs))

    out = f"profiles/data/{model}/{GPU}/tp{tp}/vllm"
    cmd = (f"{env_prefix()} python3 -m profiles.vllm_cli profile --backend vllm --dummy-weights --model {model} "
           f"--gpu {GPU} --tp {tp} --out {out} --model-dir /tmp/models/{model} --server-cmd {shlex.quote(SERVER_CMD)} "
           f"--max-model-len {MAX_MODEL_LEN} --prefill-isl {j(PREFILL_ISL)} --prefill-batch {j(PREFILL_BATCH)} "
           f"--decode-batch {j(DECODE_BATCH)} --decode-context {j(DECODE_CONTEXT)} "
           f"--max-point-kv-tokens {MAX_POINT_KV} "
           f"--repeats {REPEATS} --decode-repeats {DECODE_REPEATS} --health-timeout-s 600 "
           f"--deadline-unix-s $(( $(date +%s) + {int(CALL_S)} )) --no-progress")
    kind = "nvidia-h200-x2" if tp <= 2 else "nvidia-h200-x4"
    return Run(f"{model} tp{tp} profile ({calls} call{'s' if calls > 1 else ''})", kind, tp, wall_min, [cmd])


def allreduce_run() -> Run:
    cmd = (f"{env_prefix()} torchrun --nproc-per-node 4 profiles/backends/allreduce.py "
           f"--out profiles/data/allreduce/{GPU}")
    return Run("all-reduce H200 (groups of 2 and 4)", "nvidia-h200-x4", 4, ALLREDUCE_MIN, [cmd])


def pair_run(pm: PerfModel, model: str = "llama-3.1-8b", rates: tuple[float, ...] = (2.0, 4.0, 8.0),
             requests: int = 200, isl: int = 2048, osl: int = 128) -> Run:
    vp = pm.get(model, GPU, 1)
    assert vp is not None
    isls = (1024, 2048, 4096, 8192, 16384)
    with quiet_extrapolation():
        handoff_s = REPEATS * sum(vp.prefill_ms(i) + vp.kv_transfer_ms(i) + 32 * vp.decode_step_ms(1, i)
                                  for i in isls) / 1e3
        step_s = osl * vp.decode_step_ms(8, isl + osl / 2) / 1e3
    load_s = sum(requests / r + step_s for r in rates)  # arrivals span + the last requests' decode
    wall_min = (STARTUP_S[model] + handoff_s + load_s + STARTUP_S[model] + load_s) * OVERHEAD / 60.0
    r = ",".join(f"{x:g}" for x in rates)
    pair = (f"{env_prefix()} python3 -m profiles.backends.pd_pair --model {model} --gpu {GPU} --launch "
            f"--prefill-gpus 0 --decode-gpus 1 --connector p2p-nccl --hf-model /tmp/models/{model} "
            f"--server-cmd {shlex.quote(SERVER_CMD)} "
            f"--repeats {REPEATS} --rates {r} --load-isl {isl} --load-osl {osl} --load-requests {requests}")
    cmds = [
        "python3 -c 'import msgpack' || pip install --no-index --find-links wheels msgpack  # P2pNcclConnector imports "
        "msgpack, not in the bundle: carry its wheel "
        "(here: pip download msgpack --python-version 3.12 --only-binary=:all: -d wheels)",
        f"{env_prefix()} python3 -c \"from planner.io.catalog import Catalog; "
        "from profiles.modeldir import write_model_dir; "
        f"write_model_dir(Catalog.load().model('{model}'), '/tmp/models/{model}')\"",
        pair + " --modes pd      # call 1: the pair (hand-off sweep + load through the proxy)",
        pair + " --modes mixed   # call 2: one mixed instance on GPU 0 at the same rates",
        "# then here, on the CPU, once the files are back: .venv/bin/python bench/pd_check.py "
        f"--pair profiles/data/{model}/{GPU}/pair-tp1-tp1",
    ]
    return Run(f"{model} 1P1D pair tp1->tp1 + mixed (2 calls)", "nvidia-h200-x2", 2, wall_min, cmds)


def plan(pm: PerfModel | None = None) -> list[Run]:
    pm = pm or PerfModel.load()
    return [tp_profile_run(pm, "llama-3.1-70b", 2), tp_profile_run(pm, "qwen3-32b", 2),
            tp_profile_run(pm, "llama-3.1-70b", 4), allreduce_run(), pair_run(pm)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shell", action="store_true", help="print only the commands")
    a = ap.parse_args(argv)
    runs = plan()
    if not a.shell:
        print(f"{'run':50s} {'kind':16s} {'GPUs':>4s} {'wall min':>9s} {'GPU-min':>8s}")
        for r in runs:
            print(f"{r.name:50s} {r.kind:16s} {r.gpus:4d} {r.wall_min:9.1f} {r.gpu_min:8.1f}")
        by_kind: dict[str, float] = {}
        for r in runs:
            by_kind[r.kind] = by_kind.get(r.kind, 0.0) + r.wall_min
        print("wall minutes per machine kind: " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(by_kind.items())))
        print(f"RESULT runs={len(runs)} gpu_minutes={sum(r.gpu_min for r in runs):.0f}\n")
    for r in runs:
        print(f"# {r.name} [{r.kind}, ~{r.wall_min:.0f} min wall, {r.gpu_min:.0f} GPU-min]")
        print("\n".join(r.commands) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
