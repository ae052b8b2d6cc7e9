"""Measurement grids, their order, early stopping, resumption and adaptive sampling.

This module is the backend-independent half of ``planner profile``: WHICH points to measure and in
what order. The backends (``profiles.backends.vllm`` over HTTP, ``profiles.backends.torch_ref`` on a
GPU) say HOW one point is measured; :mod:`profiles.format` says how the points are written (the
default grids, columns and the :class:`~profiles.format.ProfileStore`). It imports only the standard
library so that the torch backend runs as a standalone script on a GPU machine that has torch, numpy
and pyyaml but not this project's other dependencies.

Default grids (:data:`profiles.format.PREFILL_ISL` ..., DESIGN.md "Profiler"):
  prefill: isl {128 .. 16384} x batch {1, 2, 4, 8}, one forward pass, ``max_tokens=1`` -> TTFT;
  decode:  batch {1 .. 256} x context {512 .. 8192}, steady-state ITL; points whose KV does not fit
           the engine's KV capacity are skipped.

Order and early stop: points of a grid are visited with both axes ascending. Latency is monotone in
both axes, so once a point is over the latency cap (or the KV cache is full), every point that is
larger-or-equal on both axes is skipped ("dominated"): the sweep dimension stops early without
wasting GPU time on points no SLO would accept.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from profiles.format import DECODE_BATCH, DECODE_CONTEXT, PREFILL_BATCH, PREFILL_ISL

# Latency caps beyond which a sweep dimension stops. A TTFT of 30 s or an ITL of 500 ms is far past
# any interactive SLO (the strictest public SLOs are TTFT ~0.2-2 s, ITL 20-100 ms, DistServe/Splitwise),
# so measuring further along that axis buys nothing for planning.
DEFAULT_TTFT_CAP_MS = 30_000.0
DEFAULT_ITL_CAP_MS = 500.0

# Decode tokens generated per request while measuring ITL: the first few steps overlap the prefill
# tail and batch formation, so the steady state is read from the middle of a 64-token stream.
DEFAULT_DECODE_TOKENS = 64


@dataclass(frozen=True, order=True)
class PrefillPoint:
    """One prefill measurement: `batch` prompts of `isl` tokens each, one output token."""

    isl: int
    batch: int

    @property
    def key(self) -> tuple[int, int]:
        return (self.isl, self.batch)

    @property
    def tokens(self) -> int:
        return self.isl * self.batch


@dataclass(frozen=True, order=True)
class DecodePoint:
    """One decode measurement: `batch` sequences decoding at about `context` tokens of context."""

    batch: int
    context: int

    @property
    def key(self) -> tuple[int, int]:
        return (self.batch, self.context)

    @property
    def kv_tokens(self) -> int:
        return self.batch * self.context


def parse_int_list(text: str | None, default: Sequence[int]) -> tuple[int, ...]:
    """'128,256,512' -> (128, 256, 512); None or '' -> `default`. Raises ValueError naming the bad item."""
    if text is None or str(text).strip() == "":
        return tuple(default)
    out = []
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        try:
            v = int(item)
        except ValueError:
            raise ValueError(
                f"expected a comma-separated list of positive integers, got {item!r} in {text!r}") from None
        if v <= 0:
            raise ValueError(f"expected positive integers, got {v} in {text!r}")
        out.append(v)
    return tuple(sorted(set(out)))


def prefill_grid(
    isls: Iterable[int] = PREFILL_ISL,
    batches: Iterable[int] = PREFILL_BATCH,
    max_tokens: int | None = None,
    max_isl: int | None = None,
) -> list[PrefillPoint]:
    """Prefill points, isl-major then batch, ascending; drop those over `max_tokens` or `max_isl`
    (the engine's max_model_len), which the engine would reject."""
    pts = [PrefillPoint(i, b) for i in sorted(set(isls)) for b in sorted(set(batches))]
    if max_isl is not None:
        pts = [p for p in pts if p.isl < max_isl]
    if max_tokens is not None:
        pts = [p for p in pts if p.tokens <= max_tokens]
    return pts


def decode_grid(
    batches: Iterable[int] = DECODE_BATCH,
    contexts: Iterable[int] = DECODE_CONTEXT,
    kv_capacity_tokens: int | None = None,
    decode_tokens: int = DEFAULT_DECODE_TOKENS,
    max_num_seqs: int | None = None,
) -> list[DecodePoint]:
    """Decode points, batch-major then context, ascending; skip those whose KV (batch x (context +
    decode_tokens)) does not fit `kv_capacity_tokens`, or whose batch exceeds the engine's max_num_seqs."""
    pts = [DecodePoint(b, c) for b in sorted(set(batches)) for c in sorted(set(contexts))]
    if max_num_seqs is not None:
        pts = [p for p in pts if p.batch <= max_num_seqs]
    if kv_capacity_tokens is not None:
        pts = [p for p in pts if p.batch * (p.context + decode_tokens) <= kv_capacity_tokens]
    return pts


# --------------------------------------------------------------------------- the sweep loop
Point = PrefillPoint | DecodePoint
P = TypeVar("P", bound=Point)
"""The point type of one sweep (all prefill or all decode points): its `measure` and `record` take that type."""


@dataclass
class SweepOutcome:
    """What one sweep did: keys measured now, skipped as already present, skipped as dominated."""

    measured: list[tuple[int, int]] = field(default_factory=list)
    resumed: list[tuple[int, int]] = field(default_factory=list)
    dominated: list[tuple[int, int]] = field(default_factory=list)
    stop_reasons: dict[tuple[int, int], str] = field(default_factory=dict)


class StopAxis(Exception):
    """Raised by a measuring function when a point cannot be measured because a limit was reached
    (KV cache full, engine rejected the size). Larger points along both axes are skipped."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def dominated_by(key: tuple[int, int], stops: Iterable[tuple[int, int]]) -> bool:
    """True when some stopping point is <= `key` on both axes (latency monotone in both)."""
    return any(key[0] >= s[0] and key[1] >= s[1] for s in stops)


class SweepState:
    """Bookkeeping of one sweep: which points are resumed, dominated by a stop, or to be measured.
    Shared by the synchronous (torch) and asynchronous (HTTP) loops."""

    def __init__(self, done: dict[tuple[int, int], float] | Iterable[tuple[int, int]] = (),
                 latency_cap_ms: float | None = None):
        self.done = dict(done) if isinstance(done, dict) else {k: 0.0 for k in done}
        self.cap = latency_cap_ms
        self.stops: list[tuple[int, int]] = []
        self.outcome = SweepOutcome()
        # A resumed point that was over the cap stops its dimension again, as in the first run.
        if self.cap is not None:
            for k, v in self.done.items():
                if v > self.cap:
                    self.stops.append(k)
                    self.outcome.stop_reasons[k] = f"latency {v:.1f} ms over the cap {self.cap:g} ms (resumed)"

    def classify(self, p: Point) -> str | None:
        """'resumed' or 'skipped' (dominated by a stop), or None: measure it."""
        if p.key in self.done:
            self.outcome.resumed.append(p.key)
            return "resumed"
        if dominated_by(p.key, self.stops):
            self.outcome.dominated.append(p.key)
            return "skipped"
        return None

    def stopped(self, p: Point, reason: str) -> None:
        self.stops.append(p.key)
        self.outcome.stop_reasons[p.key] = reason
        self.outcome.dominated.append(p.key)

    def measured(self, p: Point, ms: float) -> None:
        self.outcome.measured.append(p.key)
        if self.cap is not None and ms > self.cap:
            self.stops.append(p.key)
            self.outcome.stop_reasons[p.key] = f"latency {ms:.1f} ms over the cap {self.cap:g} ms"

    def settle(self, p: P, result: float | StopAxis, record: Callable[[P, float], None]) -> str:
        """Book one measurement: a latency is recorded (on disk) and then checked against the cap
        ('measured'); a StopAxis stops its dimension ('skipped'). Shared by both sweep loops."""
        if isinstance(result, StopAxis):
            self.stopped(p, result.reason)
            return "skipped"
        record(p, result)
        self.measured(p, result)
        return "measured"


def run_sweep(
    points: Sequence[P],
    measure: Callable[[P], float],
    record: Callable[[P, float], None],
    done: dict[tuple[int, int], float] | Iterable[tuple[int, int]] = (),
    latency_cap_ms: float | None = None,
    on_point: Callable[[P, str], None] | None = None,
) -> SweepOutcome:
    """Measure `points` in order; call `record` after each (the caller writes atomically there).

    `done` holds points already in the profile directory ({key: latency_ms}, resumption): they are
    not measured again, and one over the cap still stops its dimension. `measure` returns the
    point's latency in ms, or raises StopAxis. Any other exception propagates; the points measured
    before it are already recorded (on disk). `on_point(point, status)` hears 'measured',
    'resumed' or 'skipped' (for a progress bar).
    """
    state = SweepState(done, latency_cap_ms)
    for p in points:
        status = state.classify(p)
        if status is None:
            result: float | StopAxis
            try:
                result = measure(p)
            except StopAxis as stop:
                result = stop
            status = state.settle(p, result, record)
        if on_point:
            on_point(p, status)
    return state.outcome


# --------------------------------------------------------------------------- monotone output
# A point whose median falls more than this below the largest latency at smaller work (either axis,
# the other fixed) is measured again. Kept below planner.perf.profiledata.MONOTONE_TOLERANCE (15%), the
# drop its loader refuses, so a profile this module writes is always one the loader accepts.
MONOTONE_MARGIN = 0.10
# How many times a point's repeats are run again before its central value is raised to the floor.
MONOTONE_RETRIES = 2


def monotone_floor(key: tuple[int, int], done: dict[tuple[int, int], float], margin: float = MONOTONE_MARGIN) -> float:
    """The lowest central latency `key` may have given the points already measured: (1 - margin) x
    the largest latency at a smaller size along either axis with the other fixed (0 when none).
    Latency is physically non-decreasing in work, so a value below it is timing jitter (a busy
    machine, a clock hiccup), not a property of the engine."""
    prior = [v for k, v in done.items()
             if (k[0] == key[0] and k[1] < key[1]) or (k[1] == key[1] and k[0] < key[0])]
    return (1.0 - margin) * max(prior) if prior else 0.0


def central_with_floor(samples: Sequence[float], floor: float) -> tuple[float, bool]:
    """(central value, raised): the median of `samples`, raised to `floor` if below it (the spread
    of the samples is kept beside it by the caller)."""
    m = statistics.median(samples)
    return (floor, True) if m < floor else (m, False)


def measured_with_floor(key: tuple[int, int], done: dict[tuple[int, int], float],
                        measure_repeats: Callable[[], list[float]]) -> tuple[list[float], float]:
    """(samples, central value) of one point: `measure_repeats()` (one round of repeats), run again up to
    MONOTONE_RETRIES times while its median is below :func:`monotone_floor` of the points `done`, then the median
    raised to the floor if it is still below (:func:`central_with_floor`), so a profile a backend writes is always
    one the loader accepts (planner.perf.profiledata refuses a drop of over 15%). The torch backend's form; the vLLM
    backend runs the same steps on its asynchronous client."""
    samples = list(measure_repeats())
    floor = monotone_floor(key, done)
    for _ in range(MONOTONE_RETRIES):
        if statistics.median(samples) >= floor:
            break
        samples += measure_repeats()
    central, _raised = central_with_floor(samples, floor)
    return samples, central


# --------------------------------------------------------------------------- adaptive sampling
def seed_subset(keys: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Corners and midpoints of a 2-D grid of keys (both axes), the first points an adaptive
    profile measures: they pin a law's intercept, slopes and curvature at the grid's extremes."""
    xs = sorted({k[0] for k in keys})
    ys = sorted({k[1] for k in keys})

    def picks(v: list[int]) -> list[int]:
        return sorted({v[0], v[len(v) // 2], v[-1]})

    present = set(keys)
    chosen = [(x, y) for x in picks(xs) for y in picks(ys) if (x, y) in present]
    # A grid cut by the KV cache may lack a corner: take the nearest present key instead.
    for x in picks(xs):
        col = sorted(k for k in keys if k[0] == x)
        if col and col[-1] not in chosen:
            chosen.append(col[-1])
    return sorted(set(chosen))


Key = tuple[int, int]


def adaptive_subset(
    keys: Sequence[Key],
    measure: Callable[[Key], float],
    fit_predict: Callable[[dict[Key, float], Sequence[Key]], Sequence[float]],
    budget_points: int,
    tol: float = 0.05,
    n_probe: int = 3,
) -> dict[Key, float]:
    """Measure a sparse subset of a grid chosen adaptively; returns {key: latency_ms} measured, in order.

    1. Measure the corners and midpoints (:func:`seed_subset`).
    2. Leave-one-out: refit without each measured point and predict it. If every such error is
       under `tol`, the law is pinned down: stop.
    3. Else take the `n_probe` points with the largest leave-one-out error; the unmeasured key where
       the fits without them disagree most with the fit on all points is where the law is least
       certain: measure it (ties: the key farthest, in log space, from anything measured). Repeat.
    Stops at `budget_points`. `fit_predict(measured, query)` fits the law on `measured` and
    returns its predictions at `query` (the caller owns the law: planner.perf.fit).
    """
    budget = min(budget_points, len(keys))
    measured: dict[Key, float] = {}
    for k in seed_subset(keys)[:budget]:
        measured[k] = measure(k)
    while len(measured) < budget:
        loo: dict[Key, float] = {}
        for k, v in measured.items():
            others = {j: w for j, w in measured.items() if j != k}
            loo[k] = abs(fit_predict(others, [k])[0] / v - 1.0)
        if max(loo.values()) < tol:
            break
        cands = [k for k in keys if k not in measured]
        if not cands:
            break
        full = fit_predict(measured, cands)
        score = [0.0] * len(cands)
        for w in sorted(loo, key=loo.__getitem__, reverse=True)[:n_probe]:
            alt = fit_predict({j: x for j, x in measured.items() if j != w}, cands)
            score = [max(sc, abs(a / f - 1.0) if f > 0 else 0.0) for sc, a, f in zip(score, alt, full, strict=False)]
        best = max(range(len(cands)), key=lambda i: (round(score[i], 6), _log_dist_to(cands[i], measured)))
        measured[cands[best]] = measure(cands[best])
    return measured


def _log_dist_to(k: tuple[int, int], measured: dict[tuple[int, int], float]) -> float:
    return min(math.hypot(math.log2(k[0] / m[0]), math.log2(k[1] / m[1])) for m in measured) if measured else 0.0


def iter_chunks(seq: Sequence[int], n: int) -> Iterator[Sequence[int]]:
    """Consecutive slices of `seq` of at most `n` items."""
    for i in range(0, len(seq), n):
        yield seq[i : i + n]
