"""Emulated vLLM KV connector: what a prefill (producer) or decode (consumer) instance of a
disaggregated pair does with a request, for the emulated server (planner/simulate/emulator.py).

A fake of an EXTERNAL system (vLLM's NixlConnector / P2pNcclConnector moving the KV cache between
two GPUs), so that the 1P1D proxy and the pair measurement (profiles/backends/pd_proxy.py,
pd_pair.py) run end to end on a CPU. What it reproduces of vLLM 0.26:

* NIXL-style hand-off (``kv_transfer_params``, as vLLM's toy proxy and llm-d's routing sidecar send):
  the prefill request carries ``{"do_remote_decode": true, ...}``; the producer answers (non-streamed)
  with ``kv_transfer_params`` = {do_remote_prefill, remote_engine_id, remote_block_ids, remote_host,
  remote_port, ...}; the proxy passes them to the decode instance, whose request then skips the
  prompt's prefill except its last token (vLLM recomputes one token to produce logits), after the
  KV transfer.
* P2P-NCCL-style hand-off: the request id (``X-Request-Id``) names both sides,
  ``___prefill_addr_<ip:port>___decode_addr_<ip:port>_<uuid>``; on a consumer such a request is
  remote-prefilled likewise.
* The transfer takes ``fixed_ms + isl * kv_bytes_per_token / link`` (the planner's law, with the
  emulator's own "true" constants so that a fit can be checked against known values), and the consumer
  records it in ``vllm:nixl_xfer_time_seconds`` (NixlConnector's histogram name and buckets).

Choices written down: a hand-off request with ``n`` > 1 or a list of prompts is refused with vLLM's 400
(BadRequestError, param ``n``): vLLM fans such a request out into several engine requests whose KV the
response's one ``kv_transfer_params`` (its first output's) cannot all name, so a 1P1D proxy sends
``n`` = 1 requests; the emulator says so rather than prefill the decode side's prompts locally (vLLM's own
behaviour there is not a documented contract). The transfer happens before the request enters the decode
engine's queue (in vLLM the blocks are allocated first and the request waits in WAITING_FOR_REMOTE_KVS); under load this
admits a little later than vLLM would, with no effect on an unloaded hand-off.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from prometheus_client import CollectorRegistry, Histogram

if TYPE_CHECKING:
    from planner.perf.laws import VariantPerf
    from planner.simulate.emulator import EmulatorFleet

# NixlConnector's transfer-time histogram buckets, seconds (vllm/distributed/kv_transfer/kv_connector/
# v1/nixl_connector.py, NixlPromMetrics: [0.001 .. 5.0]).
XFER_BUCKETS_S = [0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 5.0]
P2P_REQUEST_ID = re.compile(r"___prefill_addr_(.+?)___decode_addr_(.+?)_[0-9a-f]+$")
"""Request-id format of vLLM's P2pNcclConnector (examples/online_serving/disaggregated_serving_p2p_nccl_xpyd)."""


@dataclass
class KvConnectorEmulation:
    """The KV connector of one emulated instance: its role and the true transfer law it emulates."""

    role: Literal["producer", "consumer"]
    kv_bytes_per_token: int
    link_gb_s: float
    """Effective KV-transfer bandwidth, GB/s (1e9 bytes/s)."""
    fixed_ms: float
    """Fixed latency of one hand-off (handshake, notification), ms."""
    engine_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    transfers: int = 0
    xfer_hist: Histogram | None = None

    def __post_init__(self) -> None:
        if self.role not in ("producer", "consumer"):
            raise ValueError(f"role must be 'producer' or 'consumer', got {self.role!r}")
        if self.link_gb_s <= 0 or self.fixed_ms < 0 or self.kv_bytes_per_token <= 0:
            raise ValueError("link_gb_s and kv_bytes_per_token must be > 0 and fixed_ms >= 0")

    def register(self, registry: CollectorRegistry, model_name: str) -> None:
        """Add the connector's transfer-time histogram to the server's /metrics (consumer side)."""
        if self.role == "consumer":
            h = Histogram("vllm:nixl_xfer_time_seconds", "Histogram of transfer duration for NIXL KV Cache transfers.",
                          ["model_name", "engine"], buckets=XFER_BUCKETS_S, registry=registry)
            self.xfer_hist = h.labels(model_name, "0")

    def transfer_ms(self, isl: int) -> float:
        """Emulated time to move `isl` tokens of KV cache."""
        return self.fixed_ms + isl * self.kv_bytes_per_token / (self.link_gb_s * 1e9) * 1e3

    def is_remote_prefill(self, body: dict[str, Any], request_id: str | None) -> bool:
        """Whether a request on this instance gets its prompt's KV from a prefill instance."""
        if self.role != "consumer":
            return False
        params = body.get("kv_transfer_params")
        if isinstance(params, dict) and params.get("do_remote_prefill"):
            return True
        return bool(request_id and P2P_REQUEST_ID.search(request_id))

    def hands_off(self, body: dict[str, Any], request_id: str | None) -> bool:
        """Whether a request takes part in a KV hand-off on this instance: a consumer's remote prefill, or a producer's
        ``do_remote_decode``."""
        params = body.get("kv_transfer_params")
        producing = self.role == "producer" and isinstance(params, dict) and bool(params.get("do_remote_decode"))
        return producing or self.is_remote_prefill(body, request_id)

    def producer_params(self, body: dict[str, Any], host: str, port: int | None, n_prompt: int) -> dict[str, Any] | None:
        """kv_transfer_params a producer returns for a ``do_remote_decode`` request (None otherwise)."""
        params = body.get("kv_transfer_params")
        if self.role != "producer" or not (isinstance(params, dict) and params.get("do_remote_decode")):
            return None
        blocks = -(-n_prompt // 16)  # vLLM's default block size, 16 tokens
        return {"do_remote_prefill": True, "do_remote_decode": False, "remote_engine_id": self.engine_id,
                "remote_block_ids": list(range(blocks)), "remote_host": host, "remote_port": port,
                "tp_size": 1}

    async def receive(self, n_prompt: int, time_scale: float) -> float:
        """Wait for the prompt's KV cache to arrive (wall: emulated x time_scale); returns emulated ms."""
        ms = self.transfer_ms(n_prompt)
        await asyncio.sleep(ms / 1e3 * time_scale)
        self.transfers += 1
        if self.xfer_hist is not None:
            self.xfer_hist.observe(ms / 1e3)
        return ms


def pair_fleet(prefill_perf: VariantPerf, decode_perf: VariantPerf, *, link_gb_s: float, fixed_ms: float, time_scale: float = 1.0,
               mixed_perf: VariantPerf | None = None, model_name: str | None = None) -> EmulatorFleet:
    """An :class:`~planner.simulate.emulator.EmulatorFleet` of a 1P1D pair: servers[0] the prefill
    (producer), servers[1] the decode (consumer) instance, and servers[2] a plain mixed instance when
    `mixed_perf` is given (the aggregated replica the P:D check compares with). Not started."""
    from planner.simulate.emulator import EmulatedServer, EmulatorFleet

    fleet = EmulatorFleet(prefill_perf, 1, model_name=model_name, time_scale=time_scale)
    kvb = decode_perf.kv_bytes_per_token
    fleet.servers = [
        EmulatedServer(prefill_perf, model_name, time_scale=time_scale,
                       kv_connector=KvConnectorEmulation("producer", kvb, link_gb_s, fixed_ms)),
        EmulatedServer(decode_perf, model_name, time_scale=time_scale,
                       kv_connector=KvConnectorEmulation("consumer", kvb, link_gb_s, fixed_ms)),
    ]
    if mixed_perf is not None:
        fleet.servers.append(EmulatedServer(mixed_perf, model_name, time_scale=time_scale))
    return fleet
