"""Measure a 1P1D disaggregated pair into a pair profile (format: planner/perf/pairprofile.py).

One prefill and one decode vLLM instance (launched here with a KV connector, profiles/backends/
pd_launch.py, or attached to), the 1P1D proxy (profiles/backends/pd_proxy.py) started in-process in
front of them, and two measurements:

* hand-off sweep: for each ISL (default 1k..16k), `repeats` requests one at a time (nothing else
  running), after one warm-up request (the P2P NCCL connector builds its NCCL link on the first one).
  TTFT split into prefill (the proxy's prefill leg, header X-PD-Prefill-Ms), first decode step
  (the median gap of the request's own later tokens: at batch 1 every decode step costs the same,
  and the decode instance's first step computes one token at the prompt's context), and the KV
  hand-off = TTFT - prefill - first decode step (clipped at 0: timer noise on tiny transfers). Where
  the decode instance exports NixlConnector's ``vllm:nixl_xfer_time_seconds``, its per-request delta
  is kept beside it (``xfer_ms_connector``) as a cross-check. -> handoff.csv
* load (``--rates``): Poisson arrivals of (load_isl, load_osl) requests through the pair ("pd") and,
  when a mixed instance is given or launched, through one aggregated instance ("mixed") at the same
  rates: TTFT and per-request mean ITL percentiles -> load.csv (the P:D check, bench/pd_check.py).

Emulated servers (planner/simulate/kvconnector.py) run on a compressed clock: ``time_scale`` = wall s
per emulated s; every duration is divided by it.

    python -m profiles.backends.pd_pair --model llama-3.1-8b --gpu H200-141GB --launch \\
        --prefill-gpus 0 --decode-gpus 1 --rates 2,4,8
    python -m profiles.backends.pd_pair --model llama-3.1-8b --gpu H200-141GB \\
        --prefill http://127.0.0.1:8100 --decode http://127.0.0.1:8200 --mixed http://127.0.0.1:8300
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import math
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from planner.io.errors import PlannerError
from planner.perf.pairprofile import HANDOFF_COLUMNS, LOAD_COLUMNS, PairMeta, pair_dir
from profiles import format as pfmt
from profiles.backends.pd_launch import PairLaunch, pair_launch
from profiles.backends.pd_proxy import PREFILL_MS_HEADER, PdProxy, ProxyConfig
from profiles.backends.vllm import (
    DEFAULT_ATTACH_TIMEOUT_S,
    DEFAULT_HEALTH_TIMEOUT_S,
    LaunchConfig,
    ManagedServer,
    ProfilerError,
    StreamResult,
    VllmClient,
    endpoint_info,
    percentile,
    server_version,
    wait_healthy,
)

DEFAULT_ISLS = (1024, 2048, 4096, 8192, 16384)
"""The issue's ISL range 1k-16k, doubling (the profiler's prefill grid above 1k)."""
DEFAULT_DECODE_TOKENS = 32
"""Tokens per hand-off request: 31 gaps give a stable median decode step at batch 1."""
XFER_METRIC = "vllm:nixl_xfer_time_seconds"


@dataclass
class PairRunConfig:
    model: str
    gpu: str
    out: Path
    prefill_tp: int = 1
    decode_tp: int = 1
    decode_gpu: str | None = None
    prefill_url: str | None = None
    decode_url: str | None = None
    mixed_url: str | None = None
    launch: PairLaunch | None = None
    mixed_launch: LaunchConfig | None = None
    connector: str = "p2p-nccl"
    isls: tuple[int, ...] = DEFAULT_ISLS
    repeats: int = 3
    decode_tokens: int = DEFAULT_DECODE_TOKENS
    rates: tuple[float, ...] = ()
    load_isl: int = 2048
    load_osl: int = 128
    load_requests: int = 200
    time_scale: float = 1.0
    kv_bytes_per_token: int | None = None
    health_timeout_s: float | None = None
    backend: str = "vllm"
    seed: int = 0
    modes: tuple[str, ...] = ("pd", "mixed")
    """What to measure: "pd" (the pair: hand-off + load through it), "mixed" (load through one aggregated
    instance). "mixed" alone adds its rows to the load.csv of an existing pair profile in `out`
    (so the two halves fit separate 10-minute device calls)."""


@dataclass
class PairSummary:
    out: Path
    handoff_rows: list[dict[str, float]] = field(default_factory=list)
    load_rows: list[pfmt.Row] = field(default_factory=list)


# --------------------------------------------------------------------------- measurements
async def connector_xfer_s(http: httpx.AsyncClient, url: str) -> float | None:
    """Sum of the decode instance's ``vllm:nixl_xfer_time_seconds`` histogram, None if not exported."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = (await http.get(f"{url}/metrics")).text
        fams = list(text_string_to_metric_families(text))
    except (httpx.HTTPError, ValueError):
        return None
    total = None
    for fam in fams:
        if fam.name == XFER_METRIC:
            for s in fam.samples:
                if s.name == XFER_METRIC + "_sum":
                    total = (total or 0.0) + s.value
    return total


def split_ttft(r: StreamResult, prefill_wall_ms: float, time_scale: float) -> dict[str, float]:
    """TTFT of one unloaded pair request split into prefill, KV hand-off and first decode step (ms)."""
    ttft = (r.first - r.sent) / time_scale * 1e3
    gaps = [b - a for a, b in zip(r.token_times, r.token_times[1:], strict=False)]
    if not gaps:
        raise ProfilerError("a hand-off request streamed a single token: raise --decode-tokens")
    step = statistics.median(gaps) / time_scale * 1e3
    prefill = prefill_wall_ms / time_scale
    itl = (r.token_times[-1] - r.first) / len(gaps) / time_scale * 1e3
    return {"ttft_ms": ttft, "prefill_ms": prefill, "kv_transfer_ms": max(0.0, ttft - prefill - step),
            "first_decode_ms": step, "itl_ms": itl}


async def handoff_sweep(proxy_url: str, decode_url: str, served: str, cfg: PairRunConfig) -> list[dict[str, float]]:
    """Unloaded requests through the proxy at each ISL; one row per request (module docstring)."""
    client = VllmClient(proxy_url, served, time_scale=cfg.time_scale, seed=cfg.seed)
    seen: list[float] = []

    async def on_response(resp: httpx.Response) -> None:
        v = resp.headers.get(PREFILL_MS_HEADER)
        if v is not None:
            seen.append(float(v))

    client.http.event_hooks["response"].append(on_response)
    rows: list[dict[str, float]] = []
    try:
        await client.stream(min(cfg.isls), 2)  # warm-up: connector handshake, CUDA graphs of small batches
        for isl in cfg.isls:
            for rep in range(cfg.repeats):
                before = await connector_xfer_s(client.http, decode_url)
                seen.clear()
                r = await client.stream(isl, cfg.decode_tokens)
                after = await connector_xfer_s(client.http, decode_url)
                if not seen:
                    raise ProfilerError(f"{proxy_url}: the answer lacks the {PREFILL_MS_HEADER} header "
                                        "(is it the pd proxy?)")
                row = {"isl": isl, "repeat": rep, **split_ttft(r, seen[-1], cfg.time_scale)}
                row["xfer_ms_connector"] = ((after - before) * 1e3 if before is not None and after is not None
                                            else math.nan)
                rows.append(row)
    finally:
        await client.aclose()
    return rows


def load_row(mode: str, results: list[StreamResult], rate: float, isl: int, osl: int, time_scale: float) -> pfmt.Row:
    """TTFT and per-request mean ITL percentiles of one rate run (emulated ms)."""
    ttft = [(r.first - r.sent) / time_scale * 1e3 for r in results]
    itl = [(r.token_times[-1] - r.first) / (len(r.token_times) - 1) / time_scale * 1e3
           for r in results if len(r.token_times) > 1]
    row: pfmt.Row = {"mode": mode, "rate_rps": rate, "isl": isl, "osl": osl, "requests": len(results)}
    for q in (50, 90, 99):
        row[f"ttft_ms_p{q}"] = percentile(ttft, q)
    for q in (50, 90, 99):
        row[f"itl_ms_p{q}"] = percentile(itl, q) if itl else math.nan
    return row


async def load_sweep(mode: str, url: str, served: str, cfg: PairRunConfig) -> list[pfmt.Row]:
    client = VllmClient(url, served, time_scale=cfg.time_scale, seed=cfg.seed)
    rows = []
    try:
        for i, rate in enumerate(cfg.rates):
            res = await client.rate_run(rate, cfg.load_isl, cfg.load_osl, cfg.load_requests, seed=cfg.seed + i)
            rows.append(load_row(mode, res, rate, cfg.load_isl, cfg.load_osl, cfg.time_scale))
    finally:
        await client.aclose()
    return rows


async def _pair_async(cfg: PairRunConfig, prefill_url: str, decode_url: str,
                      served: str) -> tuple[list[dict[str, float]], list[pfmt.Row]]:
    proxy = PdProxy(ProxyConfig(prefill_url, decode_url, "nixl" if cfg.connector == "nixl" else "p2p-nccl",
                                cfg.launch.prefill_kv_addr if cfg.launch else _default_kv(cfg, "prefill"),
                                cfg.launch.decode_kv_addr if cfg.launch else _default_kv(cfg, "decode")))
    await proxy.astart()
    try:
        hand = await handoff_sweep(proxy.url, decode_url, served, cfg)
        load = await load_sweep("pd", proxy.url, served, cfg) if cfg.rates else []
    finally:
        await proxy.astop()
    return hand, load


def _default_kv(cfg: PairRunConfig, side: str) -> str | None:
    from profiles.backends.pd_launch import DECODE_KV_PORT, KV_HOST, PREFILL_KV_PORT

    if cfg.connector != "p2p-nccl":
        return None
    return f"{KV_HOST}:{PREFILL_KV_PORT if side == 'prefill' else DECODE_KV_PORT}"


# --------------------------------------------------------------------------- the run
def _write(cfg: PairRunConfig, summary: PairSummary, engine_version: str | None) -> None:
    from planner.io.catalog import Catalog
    from planner.perf.prior import kv_bytes_per_token_replica

    kvb = cfg.kv_bytes_per_token or kv_bytes_per_token_replica(Catalog.load().model(cfg.model), cfg.prefill_tp)
    meta = PairMeta(
        model=cfg.model, gpu=cfg.gpu, decode_gpu=cfg.decode_gpu or cfg.gpu, prefill_tp=cfg.prefill_tp,
        decode_tp=cfg.decode_tp,
        connector={"p2p-nccl": "P2pNcclConnector", "nixl": "NixlConnector"}.get(cfg.connector, cfg.connector),
        engine_version=engine_version, kv_bytes_per_token=kvb, backend=cfg.backend, time_scale=cfg.time_scale,
        prefill_command=cfg.launch.prefill.argv() if cfg.launch else [],
        decode_command=cfg.launch.decode.argv() if cfg.launch else [],
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        notes=(f"hand-off: {cfg.repeats} unloaded requests per ISL through profiles/backends/pd_proxy.py, "
               f"{cfg.decode_tokens} tokens each; load: {cfg.load_requests} Poisson requests per rate of isl "
               f"{cfg.load_isl}, osl {cfg.load_osl}"),
    )
    cfg.out.mkdir(parents=True, exist_ok=True)
    pfmt.write_atomic(cfg.out / "handoff.csv", _csv(summary.handoff_rows, HANDOFF_COLUMNS))
    if summary.load_rows:
        pfmt.write_atomic(cfg.out / "load.csv", _csv(summary.load_rows, LOAD_COLUMNS))
    else:  # a load.csv left by an earlier run would not belong to these hand-off rows
        (cfg.out / "load.csv").unlink(missing_ok=True)
    pfmt.write_atomic(cfg.out / "meta.yaml",
                      yaml.safe_dump(meta.model_dump(mode="json", exclude_none=True), sort_keys=False))


def _csv(rows: Sequence[Mapping[str, pfmt.Cell]], cols: tuple[str, ...]) -> str:
    def fmt(v: object) -> str:
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.4f}"
        return str(v)

    return "\n".join([",".join(cols)] + [",".join(fmt(r[c]) for c in cols) for r in rows]) + "\n"


def run_pair(cfg: PairRunConfig) -> PairSummary:
    """Launch or attach, measure, write cfg.out; launched servers are stopped however this ends."""
    attach = cfg.prefill_url is not None and cfg.decode_url is not None
    if "pd" in cfg.modes and attach == (cfg.launch is not None):
        raise ProfilerError("give either --prefill and --decode URLs to attach to, or --launch, not both or neither")
    if "pd" not in cfg.modes:
        return _mixed_only(cfg)
    summary = PairSummary(out=cfg.out)
    servers: list[ManagedServer] = []
    timeout = cfg.health_timeout_s or (DEFAULT_ATTACH_TIMEOUT_S if attach else DEFAULT_HEALTH_TIMEOUT_S)
    try:
        if cfg.launch is not None:
            servers = [ManagedServer(c, cfg.out / f"{name}.log").start()
                       for name, c in (("prefill", cfg.launch.prefill), ("decode", cfg.launch.decode))]
            p_url, d_url = servers[0].url, servers[1].url
        else:
            p_url, d_url = cfg.prefill_url.rstrip("/"), cfg.decode_url.rstrip("/")  # type: ignore[union-attr]
        for url, srv in zip((p_url, d_url), servers or (None, None), strict=True):
            wait_healthy(url, timeout, srv)
        served = endpoint_info(d_url).model
        version = server_version(d_url)
        summary.handoff_rows, summary.load_rows = asyncio.run(_pair_async(cfg, p_url, d_url, served))
        for s in servers:
            s.stop()
        if "mixed" in cfg.modes:
            summary.load_rows += _measure_mixed(cfg, served, servers)
        _write(cfg, summary, version)
        return summary
    finally:
        for s in servers:
            s.stop()


def _measure_mixed(cfg: PairRunConfig, served: str | None, servers: list[ManagedServer]) -> list[pfmt.Row]:
    """Load rows of one aggregated instance (launched into `servers`, which the caller stops)."""
    mixed_url = cfg.mixed_url
    if not cfg.rates or (mixed_url is None and cfg.mixed_launch is None):
        return []
    timeout = cfg.health_timeout_s or (DEFAULT_ATTACH_TIMEOUT_S if mixed_url else DEFAULT_HEALTH_TIMEOUT_S)
    if cfg.mixed_launch is not None:
        servers.append(ManagedServer(cfg.mixed_launch, cfg.out / "mixed.log").start())
        mixed_url = servers[-1].url
        wait_healthy(mixed_url, timeout, servers[-1])
    else:
        wait_healthy(mixed_url.rstrip("/"), timeout)  # type: ignore[union-attr]
    url = mixed_url.rstrip("/")  # type: ignore[union-attr]
    return asyncio.run(load_sweep("mixed", url, served or endpoint_info(url).model, cfg))


def _mixed_only(cfg: PairRunConfig) -> PairSummary:
    """Add mixed load rows to the existing pair profile in cfg.out (its pd rows and hand-off stay)."""
    from planner.perf.pairprofile import load_pair_profile

    prof = load_pair_profile(cfg.out)
    summary = PairSummary(out=cfg.out)
    servers: list[ManagedServer] = []
    try:
        rows = _measure_mixed(cfg, None, servers)
    finally:
        for s in servers:
            s.stop()
    if not rows:
        raise ProfilerError("the mixed measurement needs --rates and --mixed URL or --launch")
    kept = [] if prof.load is None else prof.load[prof.load["mode"] == "pd"].to_dict("records")
    summary.load_rows = kept + rows
    pfmt.write_atomic(cfg.out / "load.csv", _csv(summary.load_rows, LOAD_COLUMNS))
    return summary


# --------------------------------------------------------------------------- command line
def _ints(text: str, name: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ProfilerError(f"--{name}: expected a comma list of integers, got {text!r}") from None
    if not vals or min(vals) < 0:
        raise ProfilerError(f"--{name}: expected non-negative integers, got {text!r}")
    return vals


def _modes(text: str) -> tuple[str, ...]:
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    if not modes or set(modes) - {"pd", "mixed"}:
        raise ProfilerError(f"--modes: expected pd, mixed or pd,mixed, got {text!r}")
    return modes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="model name in profiles/models.yaml (served name)")
    ap.add_argument("--gpu", required=True, help="GPU type of the prefill instance (profiles/gpus.yaml)")
    ap.add_argument("--decode-gpu", help="GPU type of the decode instance (default: --gpu)")
    ap.add_argument("--prefill", help="attach: URL of the prefill instance")
    ap.add_argument("--decode", help="attach: URL of the decode instance")
    ap.add_argument("--mixed", help="URL of one aggregated instance for the load comparison")
    ap.add_argument("--prefill-tp", type=int, default=None)
    ap.add_argument("--decode-tp", type=int, default=None)
    ap.add_argument("--launch", action="store_true", help="launch both instances (and a mixed one with --rates)")
    ap.add_argument("--prefill-gpus", default="0", help="launch: CUDA device ids of the prefill instance (tp = count)")
    ap.add_argument("--decode-gpus", default="1", help="launch: CUDA device ids of the decode instance")
    ap.add_argument("--hf-model", help="launch: what vllm serve loads (default: the catalog's hf_id)")
    ap.add_argument("--server-cmd", default="vllm serve")
    ap.add_argument("--connector", choices=["p2p-nccl", "nixl"], default="p2p-nccl")
    ap.add_argument("--print-launch", action="store_true", help="print the launch commands and exit")
    ap.add_argument("--isl", default=",".join(map(str, DEFAULT_ISLS)), help="hand-off sweep ISLs")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--decode-tokens", type=int, default=DEFAULT_DECODE_TOKENS)
    ap.add_argument("--rates", default="", help="load sweep rates, req/s (comma list; none: no load sweep)")
    ap.add_argument("--load-isl", type=int, default=2048)
    ap.add_argument("--load-osl", type=int, default=128)
    ap.add_argument("--load-requests", type=int, default=200)
    ap.add_argument("--time-scale", type=float, default=1.0, help="emulated servers only: wall s per emulated s")
    ap.add_argument("--out", type=Path, help="pair directory (default profiles/data/<model>/<gpu>/pair-tp<P>-tp<D>)")
    ap.add_argument("--modes", default="pd,mixed", help="pd (the pair), mixed (one aggregated instance; alone: added "
                                                       "to an existing pair profile's load.csv), or both")
    a = ap.parse_args(argv)
    import shlex

    try:
        from planner.io.catalog import Catalog

        cat = Catalog.load()
        spec = cat.model(a.model)
        cat.gpu(a.gpu)
        if a.decode_gpu:
            cat.gpu(a.decode_gpu)
        launch = mixed = None
        if a.launch or a.print_launch:
            pg, dg = list(_ints(a.prefill_gpus, "prefill-gpus")), list(_ints(a.decode_gpus, "decode-gpus"))
            launch = pair_launch(a.hf_model or spec.hf_id or a.model, a.model, prefill_gpus=pg, decode_gpus=dg,
                                 connector=a.connector, server_cmd=tuple(shlex.split(a.server_cmd)))
            mixed = LaunchConfig(model=launch.prefill.model, served_model_name=a.model, tp=len(pg), port=8300,
                                 server_cmd=list(launch.prefill.server_cmd),
                                 env={"CUDA_VISIBLE_DEVICES": a.prefill_gpus},
                                 extra_args=["--max-model-len", "20480"])
            if a.print_launch:
                print("\n".join(launch.shell()))
                return 0
        ptp = a.prefill_tp or (launch.prefill.tp if launch else 1)
        dtp = a.decode_tp or (launch.decode.tp if launch else 1)
        rates = tuple(float(x) for x in a.rates.split(",") if x.strip())
        if any(r <= 0 for r in rates):
            raise ProfilerError(f"--rates: expected positive rates, got {a.rates!r}")
        root = Path(__file__).resolve().parents[1] / "data"
        cfg = PairRunConfig(model=a.model, gpu=a.gpu, decode_gpu=a.decode_gpu, prefill_tp=ptp, decode_tp=dtp,
                            out=a.out or pair_dir(root, a.model, a.gpu, ptp, dtp), prefill_url=a.prefill,
                            decode_url=a.decode, mixed_url=a.mixed, launch=launch if a.launch else None,
                            mixed_launch=mixed if a.launch else None, connector=a.connector,
                            isls=_ints(a.isl, "isl"), repeats=a.repeats, decode_tokens=a.decode_tokens,
                            rates=rates, load_isl=a.load_isl, load_osl=a.load_osl, load_requests=a.load_requests,
                            time_scale=a.time_scale, modes=_modes(a.modes))
        s = run_pair(cfg)
    except (PlannerError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"pair profile written to {s.out}: {len(s.handoff_rows)} hand-off requests, {len(s.load_rows)} load rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
