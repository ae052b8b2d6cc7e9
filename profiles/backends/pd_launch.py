"""Launch commands of a 1P1D vLLM pair: one prefill and one decode ``vllm serve`` on separate GPUs of
one host, joined by a KV connector of vLLM 0.26.0.

Connectors, and what the offline bundle (shared/tools/vllm-offline/requirements-bundle.txt) has for them:

* ``P2pNcclConnector`` (default): NCCL point-to-point between the two engines (torch's NCCL), control
  messages over ZeroMQ. Needs ``pyzmq`` (bundled, 27.3.0) and ``msgpack`` (imported by
  vllm/distributed/kv_transfer/kv_connector/v1/p2p/p2p_nccl_engine.py; NOT in the bundle's list:
  add ``msgpack`` there, or carry its wheel, before the run). Roles kv_producer / kv_consumer; the
  request id names both engines' KV addresses (profiles/backends/pd_proxy.py), so no discovery
  service is needed when ``VLLM_HOST_IP`` fixes the address each engine binds (here 127.0.0.1).
  Settings as in vLLM's examples/online_serving/disaggregated_serving_p2p_nccl_xpyd:
  send_type PUT_ASYNC, 16 NCCL channels, kv_buffer_size 1e1 on the producer and 8e9 on the consumer.
* ``NixlConnector``: needs the ``nixl`` package (UCX inside); NOT in the bundle. kv_role kv_both,
  one ``VLLM_NIXL_SIDE_CHANNEL_PORT`` per engine; the proxy passes ``kv_transfer_params``.

Flags shared with `planner profile` (profiles/backends/vllm.py LaunchConfig): dummy weights, no
prefix caching, the same token budget and max_num_seqs; environment from launch_env.server_env
(NVLink multicast off, offline-bundle variables) plus CUDA_VISIBLE_DEVICES per instance.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Literal

from profiles.backends.launch_env import NO_MULTICAST_ENV, OFFLINE_ENV_DEFAULTS
from profiles.backends.vllm import LaunchConfig

ConnectorName = Literal["p2p-nccl", "nixl"]
KV_HOST = "127.0.0.1"
PREFILL_KV_PORT, DECODE_KV_PORT = 21001, 22001  # vLLM's xpyd example numbering
NIXL_SIDE_CHANNEL_PORTS = (5600, 5601)


@dataclass(frozen=True)
class PairLaunch:
    """The prefill and decode launch configurations, and the proxy's connector facts."""

    prefill: LaunchConfig
    decode: LaunchConfig
    connector: ConnectorName
    prefill_kv_addr: str | None
    decode_kv_addr: str | None

    def shell(self) -> list[str]:
        """The two launch commands as shell lines (environment first), for a run plan or a README."""
        out = []
        for cfg in (self.prefill, self.decode):
            env = {**OFFLINE_ENV_DEFAULTS, **cfg.env, **NO_MULTICAST_ENV}
            out.append(" ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " " + shlex.join(cfg.argv()))
        return out


def kv_transfer_config(connector: ConnectorName, role: Literal["prefill", "decode"]) -> dict[str, object]:
    """vLLM's --kv-transfer-config for one side of the pair (a JSON blob, passed to vLLM as JSON)."""
    if connector == "nixl":
        return {"kv_connector": "NixlConnector", "kv_role": "kv_both"}
    producer = role == "prefill"
    return {"kv_connector": "P2pNcclConnector", "kv_role": "kv_producer" if producer else "kv_consumer",
            "kv_buffer_size": "1e1" if producer else "8e9",
            "kv_port": str(PREFILL_KV_PORT if producer else DECODE_KV_PORT),
            "kv_connector_extra_config": {"send_type": "PUT_ASYNC", "nccl_num_channels": "16"}}


def pair_launch(hf_model: str, served_name: str, *, prefill_gpus: list[int], decode_gpus: list[int],
                connector: ConnectorName = "p2p-nccl", prefill_port: int = 8100, decode_port: int = 8200,
                max_num_batched_tokens: int = 8192, max_num_seqs: int = 256, gpu_memory_utilization: float = 0.9,
                decode_gpu_memory_utilization: float = 0.85,
                max_model_len: int = 20480, dummy_weights: bool = True,
                server_cmd: tuple[str, ...] = ("vllm", "serve")) -> PairLaunch:
    """Launch configurations of a 1P1D pair; tp of each side = its number of GPUs.

    `max_model_len` 20480 holds the 16k-token prompts of the hand-off sweep plus their decode tokens.
    The decode side leaves more memory outside vLLM's pool: with P2pNcclConnector it buffers up to
    kv_buffer_size = 8e9 bytes of received KV on the GPU (vLLM's xpyd example runs its decode instances
    at 0.7 of an 80 GB card for that; 0.85 of an H200's 141 GB leaves the same ~20 GB)."""
    if not prefill_gpus or not decode_gpus or set(prefill_gpus) & set(decode_gpus):
        raise ValueError(f"prefill and decode need their own GPUs, got {prefill_gpus} and {decode_gpus}")
    if connector not in ("p2p-nccl", "nixl"):
        raise ValueError(f"connector must be 'p2p-nccl' or 'nixl', got {connector!r}")
    cfgs = []
    sides: tuple[tuple[Literal["prefill", "decode"], list[int], int], ...] = (
        ("prefill", prefill_gpus, prefill_port), ("decode", decode_gpus, decode_port))
    for i, (role, gpus, port) in enumerate(sides):
        env = {"CUDA_VISIBLE_DEVICES": ",".join(map(str, gpus)), "VLLM_HOST_IP": KV_HOST}
        if connector == "nixl":
            env["VLLM_NIXL_SIDE_CHANNEL_PORT"] = str(NIXL_SIDE_CHANNEL_PORTS[i])
        cfgs.append(LaunchConfig(
            model=hf_model, served_model_name=served_name, tp=len(gpus), max_num_batched_tokens=max_num_batched_tokens,
            max_num_seqs=max_num_seqs, load_format_dummy=dummy_weights,
            gpu_memory_utilization=gpu_memory_utilization if role == "prefill" else decode_gpu_memory_utilization,
            port=port, server_cmd=list(server_cmd), env=env,
            extra_args=["--max-model-len", str(max_model_len),
                        "--kv-transfer-config",
                        json.dumps(kv_transfer_config(connector, role), separators=(",", ":"))]))
    p2p = connector == "p2p-nccl"
    return PairLaunch(prefill=cfgs[0], decode=cfgs[1], connector=connector,
                      prefill_kv_addr=f"{KV_HOST}:{PREFILL_KV_PORT}" if p2p else None,
                      decode_kv_addr=f"{KV_HOST}:{DECODE_KV_PORT}" if p2p else None)
