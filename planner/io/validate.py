"""Checks of the user's inputs at the command-line boundary, once, before any work is done.

The schema (planner/io/schema.py) checks what one file says on its own (types, signs, finite numbers,
consistent limits); this module checks what needs a catalog or a second input: a workload's
prompts against the model's own context length, model and GPU names against the catalogs (the
message names the USER's file, not the catalog), an instance small enough to plan in bounded
memory, a profile root that holds profiles, a free port, a controller config that can work.
Every failure is an :class:`~planner.io.errors.InputError` (exit 2) naming file, field and expectation.
"""

from __future__ import annotations

import errno
import math
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from planner.io.errors import InputError
from planner.io.files import load_model, parse_model
from planner.io.schema import Fleet, Slo, Variant, Workload, precision_suffix
from planner.words import plural

if TYPE_CHECKING:  # pragma: no cover - types only
    import pandas as pd

    from controllers.config import ControllerConfig
    from planner.io.catalog import Catalog
    from planner.perf.fit import FitReport

# Largest planning instance accepted: (request class, candidate variant) pairs, each one capacity
# evaluation and one ILP column. 240 classes x 1920 variants is the largest size bench/solve_scaling.py
# measures (1.4 s, README "Benchmarks"); beyond it neither time nor memory has been measured, and a
# 5 MB workload (~50k classes) took minutes and 5.8 GB (issue 11).
MAX_CLASS_VARIANT_PAIRS = 240 * 1920

# A least-squares law needs at least as many distinct points as it has coefficients: both laws of
# planner.perf.fit have three (a, b, c and alpha, beta, gamma).
LAW_COEFFICIENTS = 3

# Valid TCP ports (RFC 6335: 0 is reserved, 16-bit field).
MAX_PORT = 65535


def check_max_model_len(max_model_len: int, model: str, context: int | None) -> None:
    """A --max-model-len vLLM refuses is exit 2 before any work: beyond the model's context, unless
    VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 (vLLM's own check); `planner profile` and `planner emulate` ask it alike."""
    if context is not None and max_model_len > context and os.environ.get("VLLM_ALLOW_LONG_MAX_MODEL_LEN") != "1":
        raise InputError(None, "--max-model-len", f"at most {model}'s context of {context:,} tokens (vLLM refuses a "
                         f"longer one unless VLLM_ALLOW_LONG_MAX_MODEL_LEN=1); got {max_model_len:,}")


def check_workload(wl: Workload, catalog: Catalog, path: str | os.PathLike[str]) -> None:
    """Models known, at least one class with traffic, every prompt + output within the model's context."""
    p = str(path)
    for m in wl.models:
        if m not in catalog.models:
            raise InputError(p, f"models.{m}", catalog.unknown_model_text(m))
    if not wl.classes:
        raise InputError(p, "classes", "expected at least one request class, got an empty list")
    if all(c.rate_rps == 0 for c in wl.classes):
        raise InputError(p, "classes", "every class has rate_rps 0, so there is nothing to plan; expected a rate > 0")
    check_contexts(wl, catalog, p)


_CONTEXT_SOURCE = "the catalog's max_context: profiles/models.yaml or a --catalog folder's"


def check_contexts(wl: Workload, catalog: Catalog, path: str | os.PathLike[str]) -> None:
    """Every class's prompt + output (and its longest prompt, `isl_max`) within its model's context, for the models the
    catalog knows (`planner simulate` runs plans of models a caller's laws time, which the catalog may not hold)."""
    p = str(path)
    for i, c in enumerate(wl.classes):
        spec = catalog.models.get(c.model)
        if spec is None or spec.max_context is None:
            continue
        if c.isl + c.osl > spec.max_context:
            raise InputError(p, f"classes[{i}].isl", f"class {c.id}: isl + osl = {c.isl + c.osl} tokens exceeds {c.model}'s "
                             f"context length of {spec.max_context} tokens ({_CONTEXT_SOURCE}); expected isl + osl <= "
                             "the context length")
        # (the context itself is a bound the what-if helpers clip spreads at: whatif.with_length_spread)
        if c.isl_max is not None and c.isl_max > spec.max_context:
            raise InputError(p, f"classes[{i}].isl_max", f"class {c.id}: its longest prompt, {c.isl_max} tokens, exceeds "
                             f"{c.model}'s context of {spec.max_context} tokens ({_CONTEXT_SOURCE}); expected isl_max <= "
                             "the context length")


def check_fleet(fl: Fleet, catalog: Catalog, path: str | os.PathLike[str]) -> None:
    """GPU types known; `current` pools on the fleet's GPUs, of known models and allowed roles, TP sizes and precisions,
    at TP sizes that can run, holding no more GPUs of a type than are available."""
    from planner.perf.laws import structural_blocker_reason  # laws import this module

    p = str(path)
    for g in fl.gpus:
        if g not in catalog.gpus:
            raise InputError(p, f"gpus.{g}", catalog.unknown_gpu_text(g))
    for m in fl.limits.min_replicas:  # a misspelt model's floor would be silently ignored
        if m not in catalog.models:
            raise InputError(p, f"limits.min_replicas.{m}", catalog.unknown_model_text(m))
    check_pool_floors(fl.limits.pool_min_replicas, fl, catalog, p, "limits.pool_min_replicas")
    used: dict[str, int] = {}  # GPUs the current pools hold, per type
    for pool in fl.current:
        v = Variant.parse(pool)  # the schema checked the form
        if v.gpu not in fl.gpus:
            raise InputError(p, f"current.{pool}", f"GPU type '{v.gpu}' is not in the fleet's gpus ({', '.join(sorted(fl.gpus))})")
        if v.model not in catalog.models:
            raise InputError(p, f"current.{pool}", catalog.unknown_model_text(v.model))
        if v.role not in fl.limits.roles:
            raise InputError(p, f"current.{pool}", f"role '{v.role}' is not in limits.roles {fl.limits.roles}")
        reason = structural_blocker_reason(catalog, v.model, v.gpu, v.tp, v.weight_dtype, v.kv_dtype)
        if reason is not None:
            raise InputError(p, f"current.{pool}", f"no such pool can run: {reason}")
        # a TP or precision the limits leave out is no candidate: the plan dropped the running pool to 0 replicas
        # without a word, past limits.max_step (found in QA: a tp1-fp8-kvfp8 pool of 3 under allowed_dtypes [bf16])
        if v.tp not in fl.limits.allowed_tp:
            raise InputError(p, f"current.{pool}", f"TP {v.tp} is not in limits.allowed_tp {fl.limits.allowed_tp}")
        for what, dtype in (("weight", v.weight_dtype), ("KV-cache", v.kv_dtype)):
            if dtype not in fl.limits.allowed_dtypes:
                raise InputError(p, f"current.{pool}", f"{what} precision {dtype} is not in limits.allowed_dtypes "
                                 f"{fl.limits.allowed_dtypes}")
        used[v.gpu] = used.get(v.gpu, 0) + fl.current[pool] * v.tp
    for g, n in sorted(used.items()):
        if n > fl.gpus[g].available:
            raise InputError(p, f"gpus.{g}.available", f"the current pools hold {plural(n, f'{g} GPU')} (replicas x TP) and the fleet "
                             f"says {fl.gpus[g].available} are available; expected available >= the GPUs in use")


def check_pool_floors(floors: dict[str, int], fleet: Fleet, catalog: Catalog, path: str, field: str,
                      models: list[str] | None = None, fleet_path: str | None = None) -> None:
    """Floors per pool id (`field`: the fleet's limits.pool_min_replicas, the controller's guard.min_replicas): each on
    a pool the plan can hold (a model of `models`, else of the catalog; a GPU type of the fleet; a role, TP and
    precision its limits allow; a TP that runs), at most max_replicas_per_pool, and all of them within the inventory.
    A floor on a pool nothing plans would be silently ignored, one beyond the inventory makes every plan infeasible
    (found by hand: a floor of -1 passed; one on a role the fleet does not plan created that pool; floors holding
    more GPUs than available asked for them, 1 -> 20 replicas on 8 H100s)."""
    from planner.perf.laws import structural_blocker_reason  # laws import this module

    lim = fleet.limits
    floor_gpus: dict[str, int] = {}  # GPUs the floors alone hold, per type
    for pool, n in floors.items():
        at = f"{field}.{pool}"
        try:
            v = Variant.parse(pool)
        except ValueError as exc:
            raise InputError(path, at, f"expected a pool id model/role/gpu/tpN ({exc})") from None
        if models is not None and v.model not in models:
            raise InputError(path, at, f"model '{v.model}' is not one of the controller's models ({', '.join(models)})")
        if models is None and v.model not in catalog.models:
            raise InputError(path, at, catalog.unknown_model_text(v.model))
        if v.gpu not in fleet.gpus:
            raise InputError(path, at, f"GPU type '{v.gpu}' is not in the fleet's gpus ({', '.join(sorted(fleet.gpus))})")
        if n < 0:
            raise InputError(path, at, f"expected a replica count >= 0, got {n}")
        if v.role not in lim.roles:
            raise InputError(path, at, f"role '{v.role}' is not in the fleet's limits.roles {lim.roles}")
        if v.tp not in lim.allowed_tp:
            raise InputError(path, at, f"TP {v.tp} is not in the fleet's limits.allowed_tp {lim.allowed_tp}")
        for what, dtype in (("weight", v.weight_dtype), ("KV-cache", v.kv_dtype)):
            if dtype not in lim.allowed_dtypes:
                raise InputError(path, at, f"{what} precision {dtype} is not in the fleet's limits.allowed_dtypes "
                                 f"{lim.allowed_dtypes}")
        if v.model in catalog.models and v.gpu in catalog.gpus:
            reason = structural_blocker_reason(catalog, v.model, v.gpu, v.tp, v.weight_dtype, v.kv_dtype)
            if reason is not None:
                raise InputError(path, at, f"no such pool can run: {reason}")
        if lim.max_replicas_per_pool is not None and n > lim.max_replicas_per_pool:
            raise InputError(path, at, f"expected at most the fleet's limits.max_replicas_per_pool "
                             f"({lim.max_replicas_per_pool}), got {n}")
        floor_gpus[v.gpu] = floor_gpus.get(v.gpu, 0) + n * v.tp
    for g, n in sorted(floor_gpus.items()):
        if n > fleet.gpus[g].available:
            where = f"the fleet ({fleet_path})" if fleet_path else "the fleet"
            raise InputError(path, field, f"the floors hold {plural(n, f'{g} GPU')} (replicas x TP) and {where} says "
                             f"{fleet.gpus[g].available} are available; expected floors within the inventory")


def check_size(wl: Workload, fl: Fleet, path: str | os.PathLike[str]) -> None:
    """Refuse an instance larger than the largest measured one (bounded time and memory)."""
    variants_per_model = len(fl.gpus) * len(fl.limits.allowed_tp) * len(fl.limits.roles)
    pairs = len(wl.classes) * variants_per_model
    if pairs > MAX_CLASS_VARIANT_PAIRS:
        most = max(1, MAX_CLASS_VARIANT_PAIRS // max(variants_per_model, 1))
        raise InputError(str(path), "classes", f"{len(wl.classes)} classes x {variants_per_model} candidate variants per model = "
                         f"{pairs:,} (class, variant) pairs exceeds the limit of {MAX_CLASS_VARIANT_PAIRS:,} (the largest instance "
                         f"bench/solve_scaling.py measures); expected at most {most:,} classes on this fleet: merge classes "
                         "(`planner workload from-trace` with fewer buckets) or narrow limits.allowed_tp / limits.roles")


def load_workload_fleet(workload: str | os.PathLike[str], fleet: str | os.PathLike[str],
                        catalog: Catalog) -> tuple[Workload, Fleet]:
    """Read and check a workload and a fleet together (the inputs of solve and whatif)."""
    wl = load_model(Workload, workload)
    fl = load_model(Fleet, fleet)
    check_workload(wl, catalog, workload)
    check_fleet(fl, catalog, fleet)
    check_size(wl, fl, workload)
    return wl, fl


def check_profiles_found(measured: int, profiles_dir: str | os.PathLike[str] | None, option: str = "--profiles") -> None:
    """A --profiles root that yields no profile is an error, not a silent fall-back to the prior. A folder that is
    itself one profile (what `planner profile --out DIR` writes) is told where it belongs under a root. `option`: how
    the caller names the root (the CLI's flag, or the Python API's `profiles_dir`)."""
    if profiles_dir is not None and measured == 0:
        interrupted = _interrupted_run(Path(profiles_dir))
        if interrupted:
            raise InputError(str(profiles_dir), option, f"no profile found: {interrupted}")
        raise InputError(str(profiles_dir), option, "no profile found; expected <model>/<gpu>/tp<N>/ folders holding "
                         f"meta.yaml, prefill.csv and decode.csv (see profiles/data); leave {option} out for the bundled "
                         "ones" + _one_profile_hint(Path(profiles_dir), option))


def _interrupted_run(folder: Path) -> str:
    """'' unless `folder` is, or holds where a profile belongs (<model>/<gpu>/tp<N>[...]/[vllm/]), an interrupted profile
    run's folder (points, no meta.yaml yet): then which, with its points and how to resume it (found in QA: such a
    folder said only "no profile found")."""
    from profiles.format import VLLM_SUBDIR, interrupted_points, interrupted_run_text

    candidates = [folder, folder / VLLM_SUBDIR, *sorted(folder.glob("*/*/tp*")),
                  *sorted(folder.glob(f"*/*/tp*/{VLLM_SUBDIR}"))] if folder.is_dir() else []
    for d in candidates:
        counts = interrupted_points(d)
        if counts is not None:
            return f"{d} {interrupted_run_text(counts)}"
    return ""


def _one_profile_hint(folder: Path, option: str = "--profiles") -> str:
    """'' unless `folder` (or its vllm/) holds a profile's meta.yaml: then the path under a root it belongs at (found
    by hand at stop 52: README's `planner profile ... --out out/profile` wrote one that `--profiles out/profile` refused
    without saying why)."""
    from planner.perf.profiledata import law_source, read_meta

    meta_path = next((p for p in (folder / "meta.yaml", folder / "vllm" / "meta.yaml") if p.is_file()), None)
    if meta_path is None:
        return ""
    try:
        m = read_meta(meta_path)  # the meta.yaml iter_profiles reads, with its checks
    except (InputError, OSError):
        return ""
    tail = precision_suffix(m.weight_dtype, m.kv_dtype)
    sub = "vllm/" if law_source(m) == "measured-vllm" else ""  # iter_profiles: vllm/ holds backend vllm
    where = f"ROOT/{m.model}/{m.gpu}/tp{m.tp}{tail}/{sub}"
    return (f". This folder is itself one profile ({meta_path}: {m.model} on {m.gpu}, tp {m.tp}): {option} takes a "
            f"root that holds it as {where} (planner profile --out {where} writes it there)")


def check_fit_support(profile_path: str | os.PathLike[str], prefill: FitReport, decode: FitReport) -> None:
    """Refuse a profile whose points cannot determine its laws (a one-row prefill.csv fits 0 ms/token)."""
    for name, rep in (("prefill.csv", prefill), ("decode.csv", decode)):
        if rep.n_points < LAW_COEFFICIENTS:
            raise InputError(str(Path(profile_path) / name), None,
                             f"{rep.n_points} distinct measured point(s) cannot support the {LAW_COEFFICIENTS}-coefficient law "
                             f"{rep.law}; expected at least {LAW_COEFFICIENTS} distinct sizes (the fit would be degenerate)")


def check_laws_identifiable(profile_path: str | os.PathLike[str], prefill: pd.DataFrame, decode: pd.DataFrame) -> None:
    """A profile planned from directly (`planner profile rates DIR`, the under-load benches' --sweep) needs points that
    tell its laws' terms apart: the prefill law a + b·tokens (+ c·tokens²) two prompt-token totals (ISL x batch) or
    more, the decode law alpha + beta·batch + gamma·context two batch sizes and two contexts or more. A load-only run's
    one-point grid fits a prompt cost of 0 ms per token, and the capacity model then divides by it (a traceback at
    stop 45): an InputError naming the file, the axis and the profiler flag that adds points, instead.
    (PerfModel.load's profiles pass check_fit_support; this is the stricter check for a directory named by hand.)"""
    need = (("prefill.csv", "isl", prefill.isl * prefill.batch, "prompt-token totals (ISL x batch)", "--prefill-isl"),
            ("decode.csv", "batch", decode.batch, "decode batch sizes", "--decode-batch"),
            ("decode.csv", "context_tokens", decode.context_tokens, "decode contexts", "--decode-context"))
    for name, column, values, what, flag in need:
        found = sorted({int(v) for v in values})
        if len(found) < 2:
            raise InputError(str(Path(profile_path) / name), column,
                             f"expected points at two or more {what} to fit the laws, found {found or 'none'}: "
                             f"profile more ({flag})")


def slo_from_options(ttft_ms: float | None, itl_ms: float | None, percentile: float) -> Slo:
    """An SLO from command-line options; a bad value names the option (--ttft-ms, --itl-ms, --percentile)."""
    for opt, v in (("--ttft-ms", ttft_ms), ("--itl-ms", itl_ms)):
        if v is not None and not (math.isfinite(v) and v > 0):
            raise InputError(None, opt, f"expected a finite number of milliseconds > 0, got {v:g}")
    if not (0 < percentile < 100):
        raise InputError(None, "--percentile", f"expected 0 < percentile < 100, got {percentile:g}")
    return parse_model(Slo, {"ttft_ms": ttft_ms, "itl_ms": itl_ms, "percentile": percentile}, None, "slo")


def check_port_free(host: str, port: int, count: int = 1, option: str = "--port") -> None:
    """Ports port..port+count-1 can be bound on `host` (else a server would die after start-up);
    port 0 asks the OS for free ones, and is bound once to check the host (found in QA: `planner emulate --host
    999.1.1.1 --port 0` skipped the check and died in start-up with 'gaierror: [Errno -2] Name or service not known',
    exit 1)."""
    if port != 0 and not (1 <= port and port + count - 1 <= MAX_PORT):
        raise InputError(None, option, f"expected ports within 1..{MAX_PORT}, got {port}..{port + count - 1}")
    for p in range(port, port + count) if port != 0 else (0,):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, p))
            except socket.gaierror as exc:  # the host, not the port: a name that does not resolve
                raise InputError(None, "--host", f"cannot resolve {host!r} ({exc.strerror}); expected a local address "
                                 "or name (e.g. 127.0.0.1, 0.0.0.0)") from None
            except OSError as exc:
                if exc.errno == errno.EADDRNOTAVAIL:  # an address that is not this machine's
                    raise InputError(None, "--host", f"cannot listen on {host} ({exc.strerror}); expected an address "
                                     "of this machine (e.g. 127.0.0.1, 0.0.0.0)") from None
                raise InputError(None, option, f"cannot listen on {host}:{p} ({exc.strerror}); "
                                 "expected a free port (is another server running there?)") from None


def check_url(url: str, path: str | os.PathLike[str] | None, field: str, example: str = "http://prometheus:9090") -> None:
    """An http(s) URL with a host (a typo such as 'htp:/x' must not pass for a server); `path` None: a CLI option."""
    u = urlparse(url)
    try:
        port_ok = u.port is None or 1 <= u.port <= MAX_PORT
    except ValueError:
        port_ok = False
    if u.scheme not in ("http", "https") or not u.hostname or not port_ok:
        raise InputError(None if path is None else str(path), field,
                         f"expected an http(s) URL with a host, e.g. {example}, got {url!r}")


def check_controller_config(cfg: ControllerConfig, fleet: Fleet, catalog: Catalog, path: str | os.PathLike[str],
                            probe: bool) -> None:
    """What `planner control` needs to work: a well-formed (and, with `probe`, reachable) Prometheus
    URL, models the catalog knows, a metrics port that exists, GPU types the catalog knows.

    `probe` (dry-run + once: the validate-a-config mode) also connects to Prometheus once."""
    p = str(path)
    check_url(cfg.prometheus.url, p, "prometheus.url")
    if cfg.prometheus.url.rstrip("/").endswith("/api/v1"):  # the observer adds /api/v1/query itself
        raise InputError(p, "prometheus.url", f"the server's root URL (or its route prefix), e.g. "
                         f"{cfg.prometheus.url.rstrip('/')[:-7]}, not its API base; got {cfg.prometheus.url!r}")
    for m in cfg.models:
        if m not in catalog.models:
            raise InputError(p, f"models.{m}", catalog.unknown_model_text(m))
    label_of: dict[str, str] = {}
    for m, mc in cfg.models.items():  # two models on one label would read each other's metrics (found by hand, stop 52)
        label = mc.served_name or m
        if label in label_of:
            raise InputError(p, f"models.{m}.served_name", f"the label vLLM exports this model under (its "
                             f"--served-model-name), one per model; {label!r} is already models.{label_of[label]}'s")
        label_of[label] = m
    check_pool_floors(cfg.guard.min_replicas, fleet, catalog, p, "guard.min_replicas", models=list(cfg.models),
                      fleet_path=cfg.fleet)
    port = cfg.record.metrics_port
    if port is not None and not (1 <= port <= MAX_PORT):
        raise InputError(p, "record.metrics_port", f"expected a TCP port in 1..{MAX_PORT} (or null: off), got {port}")
    log = cfg.record.decision_log
    if log:  # a log that cannot be written was a traceback at start-up (found by hand at stop 52)
        from planner.io.files import check_writable

        try:
            check_writable(log, "record.decision_log")
        except InputError as exc:
            raise InputError(p, "record.decision_log", f"{log}: {exc.expected}") from None
    check_fleet(fleet, catalog, cfg.fleet)
    if probe:
        check_prometheus_query(cfg.prometheus.url, cfg.prometheus.selector, p, timeout_s=min(cfg.prometheus.timeout_s, 5.0))


def check_prometheus_query(url: str, selector: str, path: str, timeout_s: float = 5.0) -> None:
    """The server at `url` accepts a connection, answers the Prometheus HTTP API, and takes the config's label
    selector as the controller's queries put it (found by hand at stop 52: `selector: 'namespace="llm'` passed the
    validate-a-config run, rc 0, and every interval then held on 'PromQL failed (HTTP 400)'). One request: the
    connection check (a TCP connect of its own before stop 52) is its first step."""
    import httpx

    promql = "vllm:num_requests_running" + ("{" + selector + "}" if selector else "")
    try:
        r = httpx.get(url.rstrip("/") + "/api/v1/query", params={"query": promql}, timeout=timeout_s)
        body = r.json()
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        u = urlparse(url)
        raise InputError(path, "prometheus.url", f"cannot connect to {u.hostname}:{u.port or (443 if u.scheme == 'https' else 80)} "
                         f"({exc}); expected a reachable Prometheus") from None
    except httpx.HTTPError as exc:
        raise InputError(path, "prometheus.url", f"no answer to /api/v1/query ({exc}); expected a Prometheus") from None
    except ValueError:
        raise InputError(path, "prometheus.url", f"answered HTTP {r.status_code} to /api/v1/query without JSON: not a "
                         "Prometheus HTTP API (is a route prefix missing from the URL?)") from None
    if r.status_code == 400 and selector:
        raise InputError(path, "prometheus.selector", f"Prometheus refused {promql!r}: {body.get('error', body)}; "
                         "expected PromQL label matchers such as 'namespace=\"llm\"'")
    if r.status_code != 200 or not isinstance(body, dict) or body.get("status") != "success":
        raise InputError(path, "prometheus.url", f"answered HTTP {r.status_code} to /api/v1/query ({str(body)[:200]}); "
                         "expected a Prometheus HTTP API")
