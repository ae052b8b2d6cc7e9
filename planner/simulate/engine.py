"""Discrete-event core: the event queue, per-request records and the two replica models.

The simulation advances by batch changes, not by token (DESIGN.md, Verification by simulation):

* :class:`PrefillReplica` (role ``prefill``) runs one forward pass per batch of queued prompts,
  FCFS up to ``max_batched_tokens`` (a prompt longer than the budget runs alone; its chunks would
  take the same total time), timed by ``a + b*sum(isl) + c*sum(isl^2)``. One event per batch.
* :class:`BatchReplica` (roles ``decode`` and ``mixed``) does continuous batching. Between events
  the batch is constant, so a whole stretch of decode steps is advanced in closed form
  (:func:`laws.decode_stretch_ms`); events are only: a request finishes, a request joins (it waits
  for the step boundary in flight), and -- for ``mixed`` -- each step that carries prefill chunks
  (chunked prefill sharing the step's token budget with the decodes, :func:`laws.mixed_step_ms`),
  which is how prefill interference inflates the ITL of the running decodes.
* ``mixed`` replicas admit a request that reaches a busy engine during step k at the next boundary, step k+1
  (rule A46, stop 46: closer to vLLM on settled samples), or, with ``steptime.ASYNC_SCHEDULING`` /
  ``FleetSimulator(async_scheduling=True)``, as vLLM 0.26's async scheduling suggests (its log: "Asynchronous
  scheduling is enabled": the engine schedules step k+1 while step k runs), at step k+2. An idle engine
  schedules an arrival at once.
* KV admission under ``reserve`` (mixed replicas with ``kv_policy="reserve"``, decode replicas with
  ``decode_kv_policy="reserve"``; the decode replicas' default until stop 35): a request reserves
  isl + osl tokens (a sequence's cache grows to that; no preemption) and requests wait FCFS when the
  cache or ``max_num_seqs`` is full. Replaying real vLLM with its cache binding (bench/vllm_kv_outputs.py,
  plan s20) this admission waits too long just below saturation with outputs that spread (TTFT p90
  993 ms against 296 measured at 15.5 req/s) and too little at saturation (1,015 ms against 3,177).
* ``kv_policy="on_demand"``, the default for mixed replicas since stop 32 (the rule in
  bench/vllm_kv_outputs.py's notes): a mixed replica allocates as vLLM 0.26 does. On the six s20 samples
  its replay's TTFT p90 MAPE against vLLM is 11.9% (56.3% reserving; 24% at worst) and its served rate
  at saturation within 0.9%. A request is admitted when its prompt fits beside what the running requests
  hold now (their prompts and the tokens generated so far; a prefilling prompt counted whole), each decode
  step adds a token per sequence, and when the next step does not fit the most recently admitted running
  request is preempted (vLLM's FCFS policy pops the last of its running list): its cache is freed, it goes
  back to the head of the queue, and when admitted again it recomputes its prompt and the tokens it had
  generated as one prompt, then goes on from there (its first token is the one the client already had).
* ``decode_kv_policy="on_demand"``, the default for decode replicas since stop 35 (rule D1, its notes): vLLM 0.26's
  scheduler admits a request whose prompt KV arrives from a prefill instance (NixlConnector: the prompt's tokens
  counted as externally computed) by the same block allocation as any waiting request, grows it per token and, when
  a running request's next block does not fit, preempts the last admitted; that one is recomputed on the decode
  instance. Here a decode replica admits a shipped prompt as above (its first token is released at admission) and
  recomputes a preempted request with chunk steps on itself (``mixed_step_ms`` of its laws). Unmeasured on P/D vLLM
  (one GPU lent): it rests on the engine's code and on the mixed replicas' measurement.

Timing conventions (documented choices):
* TTFT = arrival -> first token at the client. Disaggregated: prefill queue + prefill batch + KV
  transfer + wait for admission into a decode batch (the first token is released when the decode
  replica holds the KV). Mixed: queue + admission + chunked prefill steps.
* ITL of a request = (last token - first token) / (osl - 1): its mean inter-token latency
  (vLLM's TPOT); requests with osl = 1 have none and meet any ITL bound.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from planner.perf.laws import VariantPerf
from planner.simulate.steptime import chunk_cost_isl2, decode_steps_within, decode_stretch_ms, mixed_step_ms, prefill_batch_ms

if TYPE_CHECKING:  # the fleet owns the replicas; imported for its types only, so imports stay one-way
    from planner.simulate.fleet import FleetSimulator, Pool

NAN = float("nan")
KvPolicy = Literal["reserve", "on_demand"]
"""How a mixed replica holds KV (module doc): reserved whole at admission, or allocated on demand with preemption."""
KV_POLICIES: tuple[KvPolicy, ...] = ("on_demand", "reserve")


class EventQueue:
    """A heap of (time, seq, handler, arg); `seq` keeps order among equal times deterministic."""

    __slots__ = ("heap", "seq")

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, Callable[[float, Any], None], Any]] = []
        self.seq = 0

    def push(self, t: float, fn: Callable[[float, Any], None], arg: Any = None) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, fn, arg))


class Requests:
    """Per-request records as parallel Python lists (fast scalar writes); NaN = not reached."""

    def __init__(self, t_arr: list[float], isl: list[int], osl: list[int], cls: list[int]):
        n = len(t_arr)
        self.n = n
        self.t_arr = t_arr
        self.isl = isl
        self.osl = osl
        self.cls = cls
        self.pf_pool = [-1] * n   # prefill-side pool index
        self.dc_pool = [-1] * n   # decode pool index (-1 for mixed)
        self.t_pf_start = [NAN] * n  # prefill batch start (mixed: admission)
        self.t_pf_end = [NAN] * n    # prefill done (disaggregated) / first token (mixed)
        self.t_kv = [NAN] * n        # KV arrived at the decode replica
        self.t_first = [NAN] * n     # first token at the client
        self.t_done = [NAN] * n      # last token
        self.rejected = [False] * n  # never fits a replica's KV cache


class PrefillReplica:
    """A prefill-only engine: FCFS batches of whole prompts under the token budget."""

    __slots__ = ("sim", "pool", "perf", "queue", "busy", "load", "busy_ms", "batch_tokens", "done_requests",
                 "prompt_tokens", "draining")
    preemptions = 0  # a prefill replica holds no KV between batches: it never preempts

    def __init__(self, sim: FleetSimulator, pool: Pool, perf: VariantPerf):
        self.sim = sim
        self.pool = pool
        self.perf = perf
        self.queue: deque[int] = deque()
        self.busy = False
        self.load = 0          # prompt tokens queued or in service (least-loaded routing key)
        self.busy_ms = 0.0
        self.done_requests = 0
        self.prompt_tokens = 0
        self.draining = False

    @property
    def running(self) -> int:
        return 0 if not self.busy else 1

    def kv_usage(self) -> float:
        return 0.0

    def waiting(self) -> int:
        return len(self.queue)

    def arrive(self, t: float, rid: int) -> None:
        self.queue.append(rid)
        self.load += self.sim.req.isl[rid]
        if not self.busy:
            # start on the next scheduler pass at this same instant, so that prompts arriving
            # together (arrivals are processed before events of equal time) share one batch
            self.busy = True
            self.sim.events.push(t, self._kick, None)

    def _kick(self, t: float, _: object) -> None:
        self._start(t)

    def _start(self, t: float) -> None:
        req = self.sim.req
        isl = req.isl
        budget = self.perf.max_batched_tokens
        max_seqs = self.perf.max_num_seqs
        q = self.queue
        batch: list[int] = []
        s1 = 0
        s2 = 0
        while q and len(batch) < max_seqs:
            n = isl[q[0]]
            if batch and s1 + n > budget:
                break
            rid = q.popleft()
            batch.append(rid)
            s1 += n
            s2 += n * n
            req.t_pf_start[rid] = t
        dt = prefill_batch_ms(self.perf, s1, s2) / 1e3
        self.busy = True
        self.busy_ms += dt * 1e3
        self.sim.events.push(t + dt, self._done, (batch, s1))

    def _done(self, t: float, arg: tuple[list[int], int]) -> None:
        batch, s1 = arg
        self.load -= s1
        self.done_requests += len(batch)
        self.prompt_tokens += s1
        sim = self.sim
        for rid in batch:
            sim.prefill_finished(t, rid, self)
        if self.queue:
            self._start(t)
        else:
            self.busy = False


class BatchReplica:
    """A continuous-batching engine (role decode or mixed), advanced stretch by stretch.

    State at a step boundary: time `t0`, step counter `n`, batch size `b`, and `ctx0` such that the
    batch's context sum at step n is ``ctx0 + b*n`` (each request stores isl - n_join).
    """

    __slots__ = ("sim", "pool", "perf", "mixed", "t0", "n", "b", "ctx0", "fin", "waiting_q", "prefilling", "kv_res",
                 "ver", "stepping", "load", "busy_ms", "done_requests", "gen_tokens", "prompt_tokens", "draining",
                 "my_ctx0", "cap", "max_seqs", "deferred", "step_start", "step_cutoff", "step_dt", "on_demand",
                 "resume", "admitted", "adm_seq", "preemptions")

    def __init__(self, sim: FleetSimulator, pool: Pool, perf: VariantPerf, mixed: bool):
        self.sim = sim
        self.pool = pool
        self.perf = perf
        self.mixed = mixed
        self.t0 = 0.0
        self.n = 0
        self.b = 0
        self.ctx0 = 0
        self.fin: list[tuple[int, int]] = []       # heap of (finish step, rid)
        self.my_ctx0: dict[int, int] = {}          # rid -> its ctx0 share
        self.waiting_q: deque[int] = deque()       # waiting for KV / a batch slot
        self.prefilling: list[list[int]] = []      # mixed: [rid, tokens done]
        self.kv_res = 0
        self.ver = 0
        self.stepping = False
        self.load = 0          # KV tokens reserved or waiting (least-loaded routing key)
        self.busy_ms = 0.0
        self.done_requests = 0
        self.gen_tokens = 0
        self.prompt_tokens = 0
        self.draining = False
        self.cap = perf.kv_capacity_tokens
        self.max_seqs = perf.max_num_seqs
        self.deferred: list[int] = []              # mixed, async: arrived during the step in flight, miss the next one
        self.step_start = 0.0                      # the chunk step in flight: its start, s
        self.step_cutoff = -1.0                    # ... the time its schedule was made (arrivals up to it belong in it), s
        self.step_dt = 0.0                         # ... its duration, ms
        # on-demand KV (module doc): mixed replicas of a FleetSimulator(kv_policy="on_demand"), decode replicas of one
        # with decode_kv_policy="on_demand"
        self.on_demand = (sim.kv_policy if mixed else sim.decode_kv_policy) == "on_demand"
        self.resume: dict[int, tuple[int, int]] = {}  # preempted rid -> (tokens to recompute, tokens generated)
        self.admitted: dict[int, int] = {}         # running rid -> admission order (the preemption victim: the last)
        self.adm_seq = 0
        self.preemptions = 0

    # ----------------------------------------------------------------- observation
    @property
    def running(self) -> int:
        return self.b + len(self.prefilling)

    def waiting(self) -> int:
        return len(self.waiting_q) + len(self.deferred)

    def kv_usage(self) -> float:
        """Tokens in the cache (contexts of the batch + prefilled parts) over capacity."""
        used = self.ctx0 + self.b * self.n + sum(d for _, d in self.prefilling)
        return min(1.0, used / self.cap)

    # ----------------------------------------------------------------- events
    def arrive(self, t: float, rid: int) -> None:
        req = self.sim.req
        self.load += req.isl[rid] + req.osl[rid]
        if self.mixed and self.sim.async_scheduling and (self.stepping or self.b > 0):
            # The step after the one in flight is already scheduled (module doc): the request joins the one after.
            if self.stepping:
                if t <= self.step_cutoff < self.step_start:
                    # The state ran ahead to a step scheduled at step_cutoff, after this arrival: it belongs in it.
                    self.busy_ms -= self.step_dt
                    self.stepping = False
                    self.waiting_q.append(rid)
                    self._admit()
                    self._schedule(self.step_cutoff)  # a new version: the step's event is dropped
                    return
                self.deferred.append(rid)  # queued at the end of the step in flight, admitted at the next boundary
                return
            self._sync(t)  # to the end of the decode step in flight
            cutoff = self.t0  # the step after next is scheduled when the one in flight ends
            if self.b > 0:
                self._advance(self.n + 1)  # the step already scheduled runs without it
            self.waiting_q.append(rid)
            self._admit()
            self._schedule(cutoff)
            return
        self.waiting_q.append(rid)
        if self.stepping:
            return  # picked up at the end of the step in flight
        self._sync(t)
        self._admit()
        self._schedule()

    def _sync(self, t: float) -> None:
        """Bring the state to the first step boundary at or after t (completing finishes on the way)."""
        if self.b == 0:
            if t > self.t0:
                self.t0 = t
            return
        dt_ms = (t - self.t0) * 1e3
        if dt_ms <= 0:
            return
        k = decode_steps_within(self.perf, self.b, self.ctx0 + self.b * self.n, dt_ms)
        if decode_stretch_ms(self.perf, self.b, self.ctx0 + self.b * self.n, k) < dt_ms:
            k += 1  # the step in flight ends after t: join at its end
        self._advance(self.n + k)
        if self.b == 0 and t > self.t0:
            self.t0 = t

    def _advance(self, target: int) -> None:
        """Run decode steps up to step `target`, finishing requests at their exact boundaries (on-demand KV:
        preempting where the next step would not fit, `_make_room`)."""
        if self.on_demand:
            while self.b > 0 and target > self.n:
                stop = min(target, self.fin[0][0], self.n + self._steps_that_fit())
                if stop > self.n:
                    self._advance_plain(stop)
                elif not self._make_room():
                    self._advance_plain(target)  # a lone request larger than the cache: it runs on (never in vLLM)
                    return
            return
        self._advance_plain(target)

    def _advance_plain(self, target: int) -> None:
        perf = self.perf
        fin = self.fin
        req = self.sim.req
        while fin and fin[0][0] <= target:
            f = fin[0][0]
            if f > self.n:
                dt = decode_stretch_ms(perf, self.b, self.ctx0 + self.b * self.n, f - self.n)
                self.busy_ms += dt
                self.t0 += dt / 1e3
                self.n = f
            while fin and fin[0][0] == f:
                _, rid = heapq.heappop(fin)
                self._finish(rid, req)
        if self.b > 0 and target > self.n:
            dt = decode_stretch_ms(perf, self.b, self.ctx0 + self.b * self.n, target - self.n)
            self.busy_ms += dt
            self.t0 += dt / 1e3
            self.n = target

    # ----------------------------------------------------------------- on-demand KV (module doc)
    def _prompt(self, rid: int) -> int:
        """Tokens `rid` prefills: its prompt, or after a preemption its prompt and the tokens it had generated."""
        r = self.resume.get(rid)
        return self.sim.req.isl[rid] if r is None else r[0]

    def _held_tokens(self) -> int:
        """KV tokens the running requests hold now: decoding contexts, and each prefilling prompt counted whole."""
        return self.ctx0 + self.b * self.n + sum(self._prompt(rid) for rid, _ in self.prefilling)

    def _steps_that_fit(self) -> int:
        """Decode steps the cache takes before it is full (each adds one token per decoding sequence)."""
        return max(0, (self.cap - self._held_tokens()) // self.b) if self.b > 0 else 1 << 60

    def _make_room(self) -> bool:
        """Preempt the most recently admitted running request until the next step fits; False when only one
        runs (it is not preempted for itself)."""
        while self.b > 0 and self._steps_that_fit() < 1:
            if len(self.admitted) <= 1:
                return False
            self._preempt(max(self.admitted, key=self.admitted.__getitem__))
        return True

    def _preempt(self, rid: int) -> None:
        """Free `rid`'s cache and put it back at the head of the queue (vLLM: recompute on resume)."""
        req = self.sim.req
        del self.admitted[rid]
        self.kv_res -= req.isl[rid] + req.osl[rid]
        self.preemptions += 1
        for i, item in enumerate(self.prefilling):
            if item[0] == rid:  # still prefilling: its computed chunks are dropped
                del self.prefilling[i]
                self.waiting_q.appendleft(rid)
                return
        c0 = self.my_ctx0.pop(rid)
        prompt, gen_before = self.resume.get(rid, (req.isl[rid], 0))
        generated = gen_before + 1 + self.n - (prompt - c0)  # its first token at joining, one more per step since
        self.resume[rid] = (req.isl[rid] + generated, generated)
        self.b -= 1
        self.ctx0 -= c0
        self.fin = [(f, r) for f, r in self.fin if r != rid]
        heapq.heapify(self.fin)
        self.waiting_q.appendleft(rid)

    def _finish(self, rid: int, req: Requests) -> None:
        self.b -= 1
        self.admitted.pop(rid, None)
        self.resume.pop(rid, None)
        self.ctx0 -= self.my_ctx0.pop(rid)
        need = req.isl[rid] + req.osl[rid]
        self.kv_res -= need
        self.load -= need
        self.done_requests += 1
        self.gen_tokens += req.osl[rid]
        req.t_done[rid] = self.t0
        self.sim.request_done(self.t0, rid, self)

    def _join_batch(self, rid: int, req: Requests) -> None:
        """Request holds its first token at boundary t0; it decodes osl-1 more steps (a preempted one: its next
        token, and the rest of its output)."""
        r = self.resume.get(rid)
        if r is None:
            req.t_first[rid] = self.t0
            rest = req.osl[rid] - 1
            c0 = req.isl[rid] - self.n
        else:
            rest = req.osl[rid] - r[1] - 1
            c0 = r[0] - self.n
        self.my_ctx0[rid] = c0
        self.ctx0 += c0
        self.b += 1
        if rest <= 0:
            self._finish(rid, req)
        else:
            heapq.heappush(self.fin, (self.n + rest, rid))

    def _admit(self) -> None:
        req = self.sim.req
        q = self.waiting_q
        held = self._held_tokens() if self.on_demand else 0
        while q:
            rid = q[0]
            need = req.isl[rid] + req.osl[rid]
            if self.b + len(self.prefilling) >= self.max_seqs:
                break
            if self.on_demand:  # its prompt beside what the running hold now (module doc)
                prompt = self._prompt(rid)
                if held + prompt > self.cap and (self.b or self.prefilling):
                    break
                held += prompt
                self.adm_seq += 1
                self.admitted[rid] = self.adm_seq
            elif self.kv_res + need > self.cap:
                break
            q.popleft()
            self.kv_res += need
            if self.mixed or rid in self.resume:  # a decode replica recomputes a preempted request itself
                if self.mixed and rid not in self.resume:
                    req.t_pf_start[rid] = self.t0
                self.prefilling.append([rid, 0])
            else:
                self._join_batch(rid, req)

    def _schedule(self, cutoff: float = -1.0) -> None:
        """Plan the next event from t0: a chunk step (its schedule made at `cutoff`, `_start_step`) or the decode
        stretch to the next finish; a new version drops the events planned before."""
        self.ver += 1
        if self.on_demand:
            self._make_room()  # the next step's tokens fit (it may preempt a prefilling prompt)
        if self.prefilling:  # mixed: prompts; decode: the recompute of a preempted request
            self._start_step(cutoff)
        elif self.b > 0:
            f = self.fin[0][0]
            if self.on_demand:  # the stretch ends where the cache is full, if before the next finish
                f = min(f, self.n + max(1, self._steps_that_fit()))
            dt = decode_stretch_ms(self.perf, self.b, self.ctx0 + self.b * self.n, f - self.n)
            self.sim.events.push(self.t0 + dt / 1e3, self._on_finish, (self.ver, f))

    def _on_finish(self, t: float, arg: tuple[int, int]) -> None:
        ver, target = arg
        if ver != self.ver:
            return  # superseded by a later join
        self._advance(target)
        self._admit()
        self._schedule()

    # ----------------------------------------------------------------- mixed: chunked-prefill steps
    def _start_step(self, cutoff: float = -1.0) -> None:
        """Start a chunk-carrying step at t0. `cutoff`: when its schedule was made, if after the present event
        (async scheduling: an arrival up to then is put in it, `arrive`)."""
        budget = self.perf.max_batched_tokens - self.b
        chunks: list[tuple[list[int], int]] = []
        tokens = 0
        isl2 = 0
        for item in self.prefilling:
            if budget <= 0:
                break
            rid, done = item
            n = min(self._prompt(rid) - done, budget)
            chunks.append((item, n))
            tokens += n
            isl2 += chunk_cost_isl2(done, n)
            budget -= n
        dt = mixed_step_ms(self.perf, self.b, self.ctx0 + self.b * self.n, tokens, isl2)
        self.busy_ms += dt
        self.stepping = True
        self.step_start, self.step_cutoff, self.step_dt = self.t0, cutoff, dt
        self.sim.events.push(self.t0 + dt / 1e3, self._on_step, (self.ver, chunks))

    def _on_step(self, t: float, arg: tuple[int, list[tuple[list[int], int]]]) -> None:
        ver, chunks = arg
        if ver != self.ver:
            return  # re-planned before it started (`arrive`)
        self.stepping = False
        self.t0 = t
        self.n += 1  # the decodes of this step produced one token each
        req = self.sim.req
        completed = []
        for item, k in chunks:
            item[1] += k
            if item[1] >= self._prompt(item[0]):
                completed.append(item)
        if completed:
            ids = {id(x) for x in completed}
            self.prefilling = [x for x in self.prefilling if id(x) not in ids]
        # finishes due at this boundary
        fin = self.fin
        while fin and fin[0][0] <= self.n:
            _, rid = heapq.heappop(fin)
            self._finish(rid, req)
        for item in completed:
            rid = item[0]
            if rid not in self.resume:
                req.t_pf_end[rid] = t
            self.prompt_tokens += self._prompt(rid)
            self._join_batch(rid, req)
        self._admit()
        if not self.deferred:
            self._schedule()
            return
        # Arrivals of the step that just ended missed the step scheduled during it (async scheduling): that step
        # runs first (a chunk step if prompts are prefilling, else one decode step), then they are admitted.
        deferred, self.deferred = self.deferred, []
        if self.prefilling:
            self._schedule()  # the chunk step already scheduled; they are admitted at its end
            self.waiting_q.extend(deferred)
            return
        if self.b > 0:
            self._advance(self.n + 1)
        self.waiting_q.extend(deferred)
        self._admit()
        self._schedule()
