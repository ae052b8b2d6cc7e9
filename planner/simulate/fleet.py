"""The fleet simulator: pools of replicas, routing by a plan's weights, and a time-varying fleet.

Routing (as the plan says and as a P/D router does): each request draws its prefill-side pool
(prefill or mixed) from its class's weights, and -- when that pool is a prefill pool -- its decode
pool from the decode weights, with one seeded numpy Generator; within a pool it goes, by
``replica_routing`` (the plan's ``replica_routing``, from the fleet's ``limits.routing``):
* ``least_loaded`` (default; llm-d's load-aware scorers): to the least-loaded ready replica (queued
  prompt tokens for prefill, reserved + waiting KV tokens for decode/mixed);
* ``random`` (a plain Kubernetes Service): to a ready replica drawn uniformly at random, whatever its
  load, with a second seeded Generator of its own (so the pool draws, and with them the requests each
  pool receives, are the same in both modes at the same seed).
The KV cache travels prefill -> decode in ``kv_transfer_ms`` with the slower side's link.

The fleet may change while it runs (for the controller's closed loop):
``sim.set_replicas(pool_id, n, ready_at_s)`` adds replicas that start taking traffic at
``ready_at_s`` (default now + ``startup_delay_s``) or drains the newest ones (they stop receiving
requests and finish what they hold); ``sim.run_until(t)`` advances; ``sim.observe()`` returns what
Prometheus would show (counters, samples since the previous observation, running/waiting, KV usage).
Requests routed to a pool with no ready replica wait in the pool's queue until one is ready.

The routing may change too: ``sim.set_routing({class_id: {pool_id: weight}}, at_s=None)`` re-draws,
with the simulator's seeded Generator, the pools of every request that has not arrived yet (after now,
or after ``at_s``); requests already arrived keep theirs. Pools named there must exist in the
simulator (0 replicas is fine); ``sim.add_pool(spec)`` adds one mid-run, so a replay whose plans
bring new pools either declares every candidate pool up front (as bench/autoscale_trace.py does) or
adds them before routing to them.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypedDict, Unpack

import numpy as np

from planner.io.errors import InputError
from planner.io.schema import Plan, ReplicaRouting, Slo, Variant, Workload
from planner.perf.laws import VariantPerf, lookup_variant_perf
from planner.simulate import steptime
from planner.simulate.arrivals import Arrivals
from planner.simulate.engine import BatchReplica, EventQueue, KvPolicy, PrefillReplica, Requests
from planner.simulate.steptime import check_perf, frontend_delay_ms

PerfLookup = Callable[..., VariantPerf | None]
Replica = PrefillReplica | BatchReplica
TimelineRow = tuple[float, str, str, int, int, int, int, float, float, int]
"""t_s, pool_id, role, replicas, starting, running, waiting, kv_usage, utilization (SimReport.timeline)."""


class SimOptions(TypedDict, total=False):
    """FleetSimulator's keyword options, as `from_plan` passes them on."""

    seed: int
    startup_delay_s: float
    sample_interval_s: float
    allow_empty_pools: bool
    frontend_ms_per_running: float
    async_scheduling: bool
    replica_routing: ReplicaRouting
    kv_policy: KvPolicy
    decode_kv_policy: KvPolicy
"""(model, gpu, tp[, weight_dtype, kv_dtype]) -> laws (see planner.perf.laws.lookup_variant_perf)."""

# Default spacing of the pool timelines (queue, KV usage, utilization), seconds: fine enough for a
# 10-minute run, ~360 rows per pool for an hour.
DEFAULT_SAMPLE_INTERVAL_S = 10.0
# After the last arrival, keep simulating until every request is done or this long has passed (s).
DEFAULT_DRAIN_S = 1800.0
# Tolerance on a class's routing weights summing to 1 (per side): planner/planning/assemble.py rounds each
# weight to 4 decimals (_WEIGHT_DIGITS), so a sum over up to ~20 pools is off by at most ~1e-3.
WEIGHT_SUM_TOL = 1e-3
# Second entropy word of the replica-draw Generator under random routing: default_rng([seed, key]) hashes to a
# SeedSequence other than default_rng(seed)'s, so the replica draws are a stream apart from the pool draws.
_REPLICA_DRAW_KEY = 1


@dataclass(frozen=True)
class PoolSpec:
    """One pool to simulate: its id (model/role/gpu/tpN), laws and initial replicas."""

    id: str
    role: str
    perf: VariantPerf
    replicas: int


@dataclass(frozen=True)
class ClassRoute:
    """Where a class goes: prefill-side pools with weights, decode pools with weights, and -- when
    the fleet restricts P->D pairing -- per prefill pool, the decode pools its KV cache goes to."""

    model: str
    prefill: tuple[tuple[int, float], ...]
    decode: tuple[tuple[int, float], ...]
    pairs: tuple[tuple[int, tuple[tuple[int, float], ...]], ...] = ()
    """(prefill pool, ((decode pool, weight), ...)); a prefill pool not listed draws from `decode`."""


class Pool:
    def __init__(self, idx: int, spec: PoolSpec):
        self.idx = idx
        self.id = spec.id
        self.role = spec.role
        self.perf = spec.perf
        self.ready: list[Replica] = []
        self.starting: list[Replica] = []
        self.draining: list[Replica] = []
        self.pending: deque[int] = deque()
        self.new_done: list[int] = []     # rids finished here since the last observe
        self.new_prefilled: list[int] = []
        self.requests_total = 0
        self.prompt_tokens_total = 0
        self.generation_tokens_total = 0
        self.arrived_total = 0

    @property
    def active(self) -> int:
        return len(self.ready) + len(self.starting)

    def replicas_all(self) -> list[Replica]:
        return self.ready + self.starting + self.draining


@dataclass
class PoolObservation:
    """What a Prometheus scrape of one pool's vLLM replicas would show (summed over replicas)."""

    pool_id: str
    role: str
    replicas_ready: int
    replicas_starting: int
    requests_total: int
    """Requests finished by this pool (prefill pools: prompts prefilled)."""
    prompt_tokens_total: int
    generation_tokens_total: int
    running: int
    waiting: int
    kv_usage: float
    """Mean KV-cache usage over ready replicas, 0..1 (vllm:kv_cache_usage_perc)."""
    ttft_s: np.ndarray
    """TTFT samples (seconds) of requests that got their first token here since the last observe;
    prefill pools: the prefill instance's own TTFT (arrival -> prefill done)."""
    itl_s: np.ndarray
    """Per-request mean ITL samples (s) of requests finished here since the last observe."""
    prefill_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """Prefill pools: per-request prefill service time samples (s), scheduled -> prefill done, no
    queueing (vllm:request_prefill_time_seconds) of the requests prefilled since the last observe."""


@dataclass
class Observation:
    t_s: float
    pools: dict[str, PoolObservation]
    arrivals_total: dict[str, int] = field(default_factory=dict)
    """Requests arrived per class so far (the router's request counter)."""


class FleetSimulator:
    """Discrete-event simulation of pools serving arrivals routed by per-class weights."""

    def __init__(self, pools: list[PoolSpec], routes: dict[str, ClassRoute], arrivals: Arrivals, slos: dict[str, Slo],
                 *, seed: int = 0, startup_delay_s: float = 0.0, sample_interval_s: float = DEFAULT_SAMPLE_INTERVAL_S,
                 allow_empty_pools: bool = False, frontend_ms_per_running: float | None = None,
                 async_scheduling: bool | None = None, replica_routing: ReplicaRouting = "least_loaded",
                 kv_policy: KvPolicy = "on_demand", decode_kv_policy: KvPolicy = "on_demand"):
        if len(arrivals) == 0:
            raise InputError(None, "arrivals", "no requests to simulate")
        self.pool_list = [Pool(i, s) for i, s in enumerate(pools)]
        self.pools = {p.id: p for p in self.pool_list}
        self.arrivals = arrivals
        self.slos = slos
        self.startup_delay_s = startup_delay_s
        # None: the shipped constants, read when the simulator is built (bench/admission_ablation.py swaps them)
        self.frontend_ms_per_running: float
        """Frontend delay per request running on a mixed replica (steptime.FRONTEND_MS_PER_RUNNING)."""
        self.async_scheduling: bool
        """True: a mixed replica admits a request seen during step k into step k+2, else at step k+1
        (steptime.ASYNC_SCHEDULING)."""
        self.frontend_ms_per_running, self.async_scheduling = steptime.mixed_admission(frontend_ms_per_running,
                                                                                      async_scheduling)
        self.kv_policy: KvPolicy = kv_policy
        """How mixed replicas hold KV (engine module doc): ``on_demand`` as vLLM 0.26 allocates, preempting the most
        recently admitted request when the cache is full (the default: bench/vllm_kv_outputs.py), or ``reserve`` a
        request's whole isl + osl at admission (the default before stop 32)."""
        self.decode_kv_policy: KvPolicy = decode_kv_policy
        """How decode replicas (P/D) hold KV: ``on_demand`` (the default since stop 35, rule D1: vLLM 0.26 admits a
        request whose prompt KV comes from a prefill instance by the same allocation as any other, and recomputes a
        preempted one on the decode instance) or ``reserve`` (isl + osl at admission, the default before)."""
        self.sample_interval_s = sample_interval_s
        self.events = EventQueue()
        self.now = 0.0
        self.events_processed = 0
        for s in pools:
            check_perf(s.perf, f"pool {s.id}")
        req = Requests(arrivals.t_s.tolist(), arrivals.isl.tolist(), arrivals.osl.tolist(), arrivals.cls.tolist())
        self.req = req
        # one Generator for every routing draw: construction first, then each set_routing in turn
        self.rng = np.random.default_rng(seed)
        self.replica_routing: ReplicaRouting = replica_routing
        """How a request picks a ready replica of its pool (module doc): least_loaded or random."""
        self.replica_rng = np.random.default_rng([seed, _REPLICA_DRAW_KEY])
        """The replica draws of random routing (one per dispatch, in event order: deterministic for a seed)."""
        self.routes: dict[str, ClassRoute] = dict(routes)
        """Current routing per class (pool indices into pool_list); set_routing replaces entries."""
        self.class_model: dict[str, str] = {cid: r.model for cid, r in routes.items()}
        """Class id -> model, for callers that route per model (the controller's actuator)."""
        self._route(routes, arrivals, self.rng, allow_empty_pools, {s.id: s.replicas for s in pools})
        for p, s in zip(self.pool_list, pools, strict=True):
            for _ in range(s.replicas):
                p.ready.append(self._make_replica(p))
        self.next_arrival = 0
        self.arrived_by_class = np.zeros(len(arrivals.class_ids), dtype=np.int64)
        # bound on events: every request causes a handful; mixed prefill steps ~ prompt tokens / budget.
        self.max_events = 200 * len(arrivals) + int(arrivals.isl.sum()) // 64 + 1_000_000
        self.timeline: list[TimelineRow] = []
        self._last_busy = {p.id: 0.0 for p in self.pool_list}
        self.events.push(0.0, self._sample, None)

    # ----------------------------------------------------------------- construction
    def _make_replica(self, pool: Pool) -> Replica:
        if pool.role == "prefill":
            return PrefillReplica(self, pool, pool.perf)
        return BatchReplica(self, pool, pool.perf, mixed=pool.role == "mixed")

    def _route(self, routes: dict[str, ClassRoute], arr: Arrivals, rng: np.random.Generator, allow_empty: bool,
               replicas: dict[str, int]) -> None:
        n = len(arr)
        pf = np.full(n, -1, dtype=np.int64)
        dc = np.full(n, -1, dtype=np.int64)
        for k, cid in enumerate(arr.class_ids):
            idx = np.flatnonzero(arr.cls == k)
            if idx.size == 0:
                continue
            r = routes.get(cid)
            if r is None or not r.prefill:
                raise InputError(None, f"routing.{cid}", "the class has arrivals but the plan routes it to no prefill or mixed pool")
            self._draw(cid, r, idx, pf, dc, rng)
            used = set(pf[idx].tolist()) | set(dc[idx].tolist()) - {-1}
            for p in used:
                pool = self.pool_list[p]
                if replicas[pool.id] <= 0 and not allow_empty:
                    raise InputError(None, f"pools.{pool.id}.replicas",
                                     f"class {cid} is routed to this pool but it has 0 replicas (zero-capacity pool)")
        # requests that can never fit the KV cache of their decode/mixed pool are rejected up front
        self.req.pf_pool = pf.tolist()
        self.req.dc_pool = dc.tolist()
        self.req.rejected = self._rejected(pf, dc, arr.isl, arr.osl).tolist()

    def _draw(self, cid: str, r: ClassRoute, idx: np.ndarray, pf: np.ndarray, dc: np.ndarray,
              rng: np.random.Generator) -> None:
        """Draw the prefill-side pool of requests `idx` from r.prefill, and the decode pool of those
        that landed on a prefill pool from r.decode (the others get -1: a mixed pool decodes)."""
        pools = np.array([p for p, _ in r.prefill])
        w = np.array([x for _, x in r.prefill], dtype=float)
        pf[idx] = pools[rng.choice(len(pools), size=idx.size, p=w / w.sum())]
        dc[idx] = -1
        needs_dc = np.array([self.pool_list[p].role == "prefill" for p in pf[idx]], dtype=bool)
        if needs_dc.any():
            if not r.decode:
                raise InputError(None, f"routing.{cid}", "the class is routed to a prefill pool but to no decode pool")
            sel = idx[needs_dc]
            if not r.pairs:  # any prefill pool may hand off to any decode pool: one draw for all
                dpools = np.array([d for d, _ in r.decode])
                dw = np.array([x for _, x in r.decode], dtype=float)
                dc[sel] = dpools[rng.choice(len(dpools), size=sel.size, p=dw / dw.sum())]
                return
            paired = dict(r.pairs)
            for p in np.unique(pf[sel]):
                # the KV of a prefill pool goes where the plan pairs it, else by the class's decode weights
                choices = paired.get(int(p), r.decode)
                at = sel[pf[sel] == p]
                dpools = np.array([d for d, _ in choices])
                dw = np.array([x for _, x in choices], dtype=float)
                dc[at] = dpools[rng.choice(len(dpools), size=at.size, p=dw / dw.sum())]

    def _rejected(self, pf: np.ndarray, dc: np.ndarray, isl: np.ndarray, osl: np.ndarray) -> np.ndarray:
        """Requests that can never fit the KV cache of their decode (or mixed) pool."""
        kv_pool = np.where(dc >= 0, dc, pf)
        cap = np.array([p.perf.kv_capacity_tokens for p in self.pool_list])[kv_pool]
        rejected: np.ndarray = (np.asarray(isl) + np.asarray(osl)) > cap
        return rejected

    @classmethod
    def from_plan(cls, plan: Plan, perf_lookup: PerfLookup, arrivals: Arrivals, workload: Workload | None = None,
                  **kw: Unpack[SimOptions]) -> FleetSimulator:
        """Pools and routing of a plan; SLOs from the workload (else the plan's predictions). Replicas are
        picked as the plan was sized for (`Plan.replica_routing`) unless `replica_routing` is given."""
        specs: list[PoolSpec] = []
        index: dict[str, int] = {}
        for model, mp in plan.models.items():
            for p in mp.pools:
                v = Variant.parse(p.id) if p.id.count("/") >= 3 else None  # the pool id carries the precision
                perf = lookup_variant_perf(perf_lookup, model, p.gpu, p.tp, v.weight_dtype if v else "bf16", v.kv_dtype if v else "bf16")
                if perf is None:
                    raise InputError(None, f"models.{model}.pools.{p.id}", f"no performance model for {model} on {p.gpu} tp{p.tp}")
                index[p.id] = len(specs)
                specs.append(PoolSpec(p.id, p.role, perf, p.replicas))
        routes: dict[str, ClassRoute] = {}
        slos: dict[str, Slo] = {}
        class_model = {c.id: c.model for c in workload.classes} if workload else {}
        for cid in arrivals.class_ids:
            found = class_model.get(cid) or next((m for m, mp in plan.models.items() if cid in mp.routing), None)
            if found is None or found not in plan.models:
                raise InputError(None, f"models.{found or cid}",
                                 f"class '{cid}' (model {found}) is not in the plan (plan models: {sorted(plan.models)})")
            model = found
            mp = plan.models[model]
            weights = mp.routing.get(cid)
            if weights is None:
                raise InputError(None, f"models.{model}.routing", f"no routing weights for class '{cid}'")
            pre: list[tuple[int, float]] = []
            dec: list[tuple[int, float]] = []
            for pid, w in weights.items():
                if w <= 0:
                    continue
                if pid not in index:
                    raise InputError(None, f"models.{model}.routing.{cid}", f"routes to pool '{pid}', which is not among the plan's pools")
                (dec if specs[index[pid]].role == "decode" else pre).append((index[pid], float(w)))
            routes[cid] = ClassRoute(model, tuple(pre), tuple(dec), _pairs(mp.pairing.get(cid, {}), index,
                                                                           [s.role for s in specs], f"models.{model}.pairing.{cid}"))
            if workload is not None and cid in class_model:
                slos[cid] = workload.slo_of(next(c for c in workload.classes if c.id == cid))
            elif cid in mp.predicted:
                pr = mp.predicted[cid]
                if pr.slo_ttft_ms is not None or pr.slo_itl_ms is not None:
                    slos[cid] = Slo(ttft_ms=pr.slo_ttft_ms, itl_ms=pr.slo_itl_ms, percentile=pr.percentile)
        kw.setdefault("replica_routing", plan.replica_routing)
        return cls(specs, routes, arrivals, slos, **kw)

    # ----------------------------------------------------------------- fleet changes
    def add_pool(self, spec: PoolSpec, ready_at_s: float | None = None) -> None:
        """Add a pool mid-run (a plan may bring a variant the replay did not start with). Its
        `spec.replicas` start like set_replicas' new ones: ready at `ready_at_s` (default now +
        start-up delay). It takes traffic once set_routing routes a class to it."""
        if spec.id in self.pools:
            raise InputError(None, "pool", f"pool '{spec.id}' already exists")
        if spec.role not in ("prefill", "decode", "mixed"):
            raise InputError(None, f"pools.{spec.id}.role", f"expected prefill, decode or mixed, got '{spec.role}'")
        check_perf(spec.perf, f"pool {spec.id}")
        pool = Pool(len(self.pool_list), spec)
        self.pool_list.append(pool)
        self.pools[pool.id] = pool
        self._last_busy[pool.id] = 0.0
        self.set_replicas(pool.id, spec.replicas, ready_at_s)

    def set_routing(self, routing: dict[str, dict[str, float]], at_s: float | None = None,
                    pairing: dict[str, dict[str, dict[str, float]]] | None = None) -> None:
        """Route classes by new weights from now (or from `at_s` on, if later).

        `routing` has the plan file's shape (ModelPlan.routing): class id -> {pool id: weight},
        the weights of a class summing to 1 over its prefill-side pools (prefill + mixed) and
        again over its decode pools (for the share that lands on a prefill pool). Every request of
        those classes arriving after max(now, at_s) gets its pools re-drawn with the simulator's
        seeded Generator; requests already arrived (queued, in service, in KV transfer) keep
        theirs, and so do classes not named. Pools may have 0 replicas (requests wait in the pool's
        queue until one is ready) but must exist: see add_pool. `pairing` (ModelPlan.pairing's
        shape: class -> prefill pool -> {decode pool: weight}) pins where each prefill pool's KV
        goes, for fleets that restrict P->D pairing. Everything is validated before anything changes."""
        new: dict[str, ClassRoute] = {}
        known = set(self.arrivals.class_ids)
        index = {p.id: p.idx for p in self.pool_list}
        roles = [p.role for p in self.pool_list]
        for cid, weights in routing.items():
            where = f"routing.{cid}"
            if cid not in known:
                raise InputError(None, where, f"unknown class '{cid}' (classes: {sorted(known)})")
            pre: list[tuple[int, float]] = []
            dec: list[tuple[int, float]] = []
            for pid, w in weights.items():
                if pid not in self.pools:
                    raise InputError(None, f"{where}.{pid}", f"class '{cid}' is routed to unknown pool '{pid}' (pools: {sorted(self.pools)})")
                if not np.isfinite(w) or w < 0:
                    raise InputError(None, f"{where}.{pid}", f"expected a weight >= 0, got {w}")
                if w > 0:
                    pool = self.pools[pid]
                    (dec if pool.role == "decode" else pre).append((pool.idx, float(w)))
            if not pre:
                raise InputError(None, where, f"class '{cid}' is routed to no prefill or mixed pool")
            needs_dc = any(self.pool_list[p].role == "prefill" for p, _ in pre)
            if needs_dc and not dec:
                raise InputError(None, where, f"class '{cid}' is routed to a prefill pool but to no decode pool")
            for side, items in (("prefill-side (prefill + mixed)", pre), ("decode", dec)):
                total = sum(x for _, x in items)
                if items and abs(total - 1.0) > WEIGHT_SUM_TOL:
                    raise InputError(None, where, f"class '{cid}': {side} weights sum to {total:.6g}, expected 1")
            pairs = _pairs((pairing or {}).get(cid, {}), index, roles, f"pairing.{cid}")
            new[cid] = ClassRoute(self.class_model.get(cid, ""), tuple(pre), tuple(dec), pairs)
        first = self.next_arrival  # arrivals before this index have happened (run_until is inclusive)
        if at_s is not None:
            first = max(first, bisect.bisect_right(self.req.t_arr, at_s))
        req = self.req
        pf = np.asarray(req.pf_pool, dtype=np.int64)
        dc = np.asarray(req.dc_pool, dtype=np.int64)
        cls = np.asarray(req.cls[first:], dtype=np.int64)
        changed = np.zeros(len(pf), dtype=bool)
        for k, cid in enumerate(self.arrivals.class_ids):
            if cid not in new:
                continue
            idx = first + np.flatnonzero(cls == k)
            if idx.size:
                self._draw(cid, new[cid], idx, pf, dc, self.rng)
                changed[idx] = True
            self.routes[cid] = new[cid]
        sel = np.flatnonzero(changed)
        if sel.size == 0:
            return
        rej = self._rejected(pf[sel], dc[sel], self.arrivals.isl[sel], self.arrivals.osl[sel])
        # write in place: the lists are shared with the engine
        for i, p, d, r in zip(sel.tolist(), pf[sel].tolist(), dc[sel].tolist(), rej.tolist(), strict=True):
            req.pf_pool[i], req.dc_pool[i], req.rejected[i] = p, d, r

    def set_replicas(self, pool_id: str, n: int, ready_at_s: float | None = None) -> None:
        """Scale a pool to n replicas: new ones are ready at `ready_at_s` (default now + start-up
        delay); surplus ones (the not-yet-ready first, then the newest) drain."""
        if pool_id not in self.pools:
            raise InputError(None, "pool", f"unknown pool '{pool_id}' (pools: {sorted(self.pools)})")
        if n < 0:
            raise InputError(None, "replicas", f"expected >= 0 replicas, got {n}")
        pool = self.pools[pool_id]
        while pool.active < n:
            rep = self._make_replica(pool)
            at = self.now + self.startup_delay_s if ready_at_s is None else max(ready_at_s, self.now)
            if hasattr(rep, "t0"):
                rep.t0 = at
            if at <= self.now:
                self._make_ready(self.now, (pool, rep))
            else:
                pool.starting.append(rep)
                self.events.push(at, self._make_ready, (pool, rep))
        while pool.active > n:
            rep = pool.starting.pop() if pool.starting else pool.ready.pop()
            rep.draining = True
            pool.draining.append(rep)

    def _make_ready(self, t: float, arg: tuple[Pool, Replica]) -> None:
        pool, rep = arg
        if rep.draining:
            return
        if rep in pool.starting:
            pool.starting.remove(rep)
        pool.ready.append(rep)
        while pool.pending:
            self._dispatch(pool, t, pool.pending.popleft())

    # ----------------------------------------------------------------- request path
    def _dispatch(self, pool: Pool, t: float, rid: int) -> None:
        ready = pool.ready
        if not ready:
            pool.pending.append(rid)
            return
        if len(ready) == 1:
            rep = ready[0]
        elif self.replica_routing == "random":
            rep = ready[int(self.replica_rng.integers(len(ready)))]
        else:
            rep = min(ready, key=_load)
        rep.arrive(t, rid)

    def _arrive(self, t: float, rid: int) -> None:
        req = self.req
        self.arrived_by_class[req.cls[rid]] += 1
        if req.rejected[rid]:
            return
        pool = self.pool_list[req.pf_pool[rid]]
        pool.arrived_total += 1
        # the frontend's per-request latency before the engine sees it; on a mixed replica it grows
        # with the streams it is serving (laws.frontend_delay_ms), the mean over the pool's replicas
        running = 0.0
        if pool.role == "mixed" and pool.ready and self.frontend_ms_per_running > 0:
            running = sum(r.running for r in pool.ready) / len(pool.ready)
        over_ms = frontend_delay_ms(pool.perf, running, self.frontend_ms_per_running)
        if over_ms > 0:
            self.events.push(t + over_ms / 1e3, self._reach_engine, (pool, rid))
        else:
            self._dispatch(pool, t, rid)

    def _reach_engine(self, t: float, arg: tuple[Pool, int]) -> None:
        pool, rid = arg
        self._dispatch(pool, t, rid)

    def prefill_finished(self, t: float, rid: int, rep: PrefillReplica) -> None:
        req = self.req
        req.t_pf_end[rid] = t
        pool = rep.pool
        pool.new_prefilled.append(rid)
        pool.requests_total += 1
        pool.prompt_tokens_total += req.isl[rid]
        dpool = self.pool_list[req.dc_pool[rid]]
        kv_ms = rep.perf.kv_transfer_ms(req.isl[rid], dpool.perf.kv_link_gb_s)
        self.events.push(t + kv_ms / 1e3, self._kv_arrived, rid)

    def _kv_arrived(self, t: float, rid: int) -> None:
        self.req.t_kv[rid] = t
        self._dispatch(self.pool_list[self.req.dc_pool[rid]], t, rid)

    def request_done(self, t: float, rid: int, rep: BatchReplica) -> None:
        pool = rep.pool
        pool.new_done.append(rid)
        pool.requests_total += 1
        pool.generation_tokens_total += self.req.osl[rid]
        if pool.role == "mixed":
            pool.prompt_tokens_total += self.req.isl[rid]

    # ----------------------------------------------------------------- running
    def run_until(self, t_end: float) -> None:
        """Process every event and arrival up to time t_end (inclusive)."""
        heap = self.events.heap
        pop = __import__("heapq").heappop
        t_arr = self.req.t_arr
        n_arr = len(t_arr)
        i = self.next_arrival
        count = self.events_processed
        limit = self.max_events
        arrive = self._arrive
        while True:
            ta = t_arr[i] if i < n_arr else float("inf")
            te = heap[0][0] if heap else float("inf")
            if ta <= te:
                if ta > t_end:
                    break
                self.now = ta
                arrive(ta, i)
                i += 1
            else:
                if te > t_end:
                    break
                t, _, fn, arg = pop(heap)
                self.now = t
                fn(t, arg)
            count += 1
            if count > limit:
                raise RuntimeError(f"simulation exceeded {limit} events at t={self.now:.1f}s; aborting instead of hanging")
        self.next_arrival = i
        self.events_processed = count
        self.now = max(self.now, t_end)

    def run(self, drain_s: float = DEFAULT_DRAIN_S) -> None:
        """All arrivals, then until every request is done (or `drain_s` past the last arrival). `end_s`: when the last
        request finished (or was rejected, at its arrival), or the drain limit where one is still in the fleet."""
        end = self.arrivals.duration_s
        self.run_until(end)
        step = max(self.sample_interval_s, 1.0)
        t = end
        while t < end + drain_s and not self.all_done():
            t = min(t + step * 10, end + drain_s)
            self.run_until(t)
        # the clock stops at a drain step's end, up to 10 sample intervals (100 s) past the last request (found in QA:
        # a run whose last request finished at 39.1 s read 130 s); past it only the timeline's last sample ran
        done = np.asarray(self.req.t_done, dtype=float)
        settled = float(np.nanmax(done, initial=end))
        self.end_s = settled if self.all_done() else self.now

    def all_done(self) -> bool:
        if self.next_arrival < len(self.req.t_arr):
            return False
        return all(not r.queue and not r.busy if isinstance(r, PrefillReplica)
                   else (r.b == 0 and not r.waiting_q and not r.deferred and not r.prefilling)
                   for p in self.pool_list for r in p.replicas_all()) and not any(p.pending for p in self.pool_list) \
            and not any(fn == self._kv_arrived or fn == self._reach_engine for _, _, fn, _ in self.events.heap)

    # ----------------------------------------------------------------- observation
    def _sample(self, t: float, _: object) -> None:
        dt = self.sample_interval_s
        for p in self.pool_list:
            reps = p.ready
            busy = sum(r.busy_ms for r in p.replicas_all())
            util = (busy - self._last_busy[p.id]) / 1e3 / (dt * max(len(reps), 1)) if t > 0 else 0.0
            self._last_busy[p.id] = busy
            self.timeline.append((t, p.id, p.role, len(reps), len(p.starting),
                                  sum(r.running for r in reps),
                                  sum(r.waiting() for r in reps) + len(p.pending),
                                  float(np.mean([r.kv_usage() for r in reps])) if reps else 0.0,
                                  min(util, 1.0), sum(r.preemptions for r in p.replicas_all())))
        if self.next_arrival < len(self.req.t_arr) or len(self.events.heap) > 0:
            self.events.push(t + dt, self._sample, None)

    def observe(self) -> Observation:
        """Counters, gauges and the latency samples since the previous call, per pool."""
        req = self.req
        out: dict[str, PoolObservation] = {}
        for p in self.pool_list:
            if p.role == "prefill":
                ttft = [req.t_pf_end[r] - req.t_arr[r] for r in p.new_prefilled]
                pf = [req.t_pf_end[r] - req.t_pf_start[r] for r in p.new_prefilled]
                itl: list[float] = []
            else:
                pf = []
                ttft = [req.t_first[r] - req.t_arr[r] for r in p.new_done]
                itl = [(req.t_done[r] - req.t_first[r]) / (req.osl[r] - 1) for r in p.new_done if req.osl[r] > 1]
            p.new_done, p.new_prefilled = [], []
            reps = p.ready
            out[p.id] = PoolObservation(
                pool_id=p.id, role=p.role, replicas_ready=len(reps), replicas_starting=len(p.starting),
                requests_total=p.requests_total, prompt_tokens_total=p.prompt_tokens_total,
                generation_tokens_total=p.generation_tokens_total,
                running=sum(r.running for r in p.replicas_all()),
                waiting=sum(r.waiting() for r in p.replicas_all()) + len(p.pending),
                kv_usage=float(np.mean([r.kv_usage() for r in reps])) if reps else 0.0,
                ttft_s=np.asarray(ttft, dtype=float), itl_s=np.asarray(itl, dtype=float),
                prefill_s=np.asarray(pf, dtype=float))
        return Observation(self.now, out, {c: int(n) for c, n in zip(self.arrivals.class_ids, self.arrived_by_class, strict=True)})


def _load(rep: Replica) -> int:
    return rep.load


def _pairs(pairing: dict[str, dict[str, float]], index: dict[str, int], roles: list[str],
           where: str) -> tuple[tuple[int, tuple[tuple[int, float], ...]], ...]:
    """A plan's pairing of one class (prefill pool -> {decode pool: weight}) as pool indices, checked."""
    out = []
    for pid, weights in pairing.items():
        if pid not in index or roles[index[pid]] != "prefill":
            raise InputError(None, f"{where}.{pid}", f"'{pid}' is not a prefill pool of the fleet")
        dec = []
        for did, w in weights.items():
            if did not in index or roles[index[did]] != "decode":
                raise InputError(None, f"{where}.{pid}.{did}", f"'{did}' is not a decode pool of the fleet")
            if not np.isfinite(w) or w < 0:
                raise InputError(None, f"{where}.{pid}.{did}", f"expected a weight >= 0, got {w}")
            if w > 0:
                dec.append((index[did], float(w)))
        if not dec or abs(sum(w for _, w in dec) - 1.0) > WEIGHT_SUM_TOL:
            raise InputError(None, f"{where}.{pid}", f"decode weights must sum to 1, got {sum(w for _, w in dec):.6g}")
        out.append((index[pid], tuple(dec)))
    return tuple(out)
