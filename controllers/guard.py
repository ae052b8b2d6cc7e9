"""Safety rules between the optimiser's proposal and the platform; none of them is optimisation.

Budgets, inventory, step limits and churn live in the ILP. The guard only:
  - holds the last good plan when metrics are missing or stale, or when the solver failed or
    found the instance infeasible (it never invents a fleet of its own);
  - applies cooldowns after a change (scale-up: default none, as the HPA; scale-down: a delay);
  - stabilises scale-down like the Kubernetes HPA: a pool shrinks only to the LARGEST
    recommendation seen within the stabilization window, so one quiet interval does not release
    capacity that the next burst needs (the window is seeded with the replicas found at start);
  - blocks scale-down of a pool whose model's load rose in the last intervals (a fleet must not
    shrink into a ramp: issue 9);
  - blocks scale-down of a pool with replicas still starting while its model has requests waiting
    (`coming`: the capacity asked for to drain that backlog must serve before it is judged);
  - blocks scale-down of a pool whose queue is growing (a safety veto; the scale-UP that queues
    call for is produced by the ILP itself, because the loop feeds the backlog into the load);
  - never goes below the configured floor per pool, nor (never_below_proposal) below the proposal itself (the
    floors are also the ILP's lower bounds, controllers.decide: the proposal holds them inside the inventory).
State is kept in `GuardState` so that the decisions are a pure function of inputs and state.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from controllers.config import GuardConfig

# A gap since a pool's last recommendation longer than its window and this many intervals is a pause, not the cadence:
# halfway between one interval (the cadence) and two (one decision missed), so a late solve is not a pause.
PAUSE_INTERVALS = 1.5


@dataclass
class GuardState:
    last_good: dict[str, int] | None = None
    """The last plan that passed the guard (pool -> replicas)."""
    recommendations: dict[str, deque[tuple[float, int]]] = field(default_factory=dict)
    last_change_s: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class GuardDecision:
    target: dict[str, int]
    held: bool
    reasons: list[str]

    def changes(self, current: dict[str, int]) -> dict[str, tuple[int, int]]:
        """pool -> (from, to) for pools whose replicas change."""
        pools = set(current) | set(self.target)
        return {
            p: (current.get(p, 0), self.target.get(p, current.get(p, 0)))
            for p in sorted(pools)
            if self.target.get(p, current.get(p, 0)) != current.get(p, 0)
        }


def hold(state: GuardState, current: dict[str, int], reason: str) -> GuardDecision:
    """Keep the last good plan (or, before any, the fleet as found) and say why."""
    base = dict(state.last_good) if state.last_good is not None else dict(current)
    return GuardDecision(target=base, held=True, reasons=[f"hold: {reason}"])


def guard(
    cfg: GuardConfig,
    state: GuardState,
    now_s: float,
    current: dict[str, int],
    proposal: dict[str, int] | None,
    *,
    metrics_ok: bool,
    metrics_reason: str = "",
    solver_ok: bool = True,
    solver_reason: str = "",
    queue_growing: set[str] | frozenset[str] = frozenset(),
    rising: set[str] | frozenset[str] = frozenset(),
    stabilization_s: float | None = None,
    hold_proposal: dict[str, int] | None = None,
    coming: set[str] | frozenset[str] = frozenset(),
    decode_pools: set[str] | frozenset[str] = frozenset(),
    interval_s: float | None = None,
) -> GuardDecision:
    """Decide the replicas to apply now; mutates `state` (history, last change, last good).

    `rising`: pools whose model's load rose in the last intervals (no scale-down into a ramp);
    `stabilization_s`: the window when cfg.scale_down_stabilization_s is None (the caller derives
    it from start-up and lag); `hold_proposal`: what the stabilization window remembers instead of
    the proposal (the controller's plan without its short-lived trend term); `coming`: pools whose
    starting replicas are kept (requests wait for them); `decode_pools`: pools whose window is
    cfg.decode_stabilization_factor x the window; `interval_s`: the decisions' cadence, which tells a pause (see
    PAUSE_INTERVALS) from the cadence; None: no pause is told."""
    window = cfg.scale_down_stabilization_s if cfg.scale_down_stabilization_s is not None else (stabilization_s or 0.0)
    if not metrics_ok:
        return hold(state, current, f"metrics unusable ({metrics_reason or 'missing or stale'})")
    if proposal is None or not solver_ok:
        return hold(state, current, f"no usable plan from the solver ({solver_reason or 'failed'})")

    target: dict[str, int] = {}
    reasons: list[str] = []
    for pool in sorted(set(current) | set(proposal) | set(cfg.min_replicas)):
        cur = current.get(pool, 0)
        floor = cfg.min_replicas.get(pool, 0)
        rec = max(proposal.get(pool, 0), floor)
        hist = state.recommendations.setdefault(pool, deque())
        w = window * (cfg.decode_stabilization_factor if pool in decode_pools else 1.0)
        if window > 0 and hist and interval_s is not None and now_s - hist[-1][0] > max(w, PAUSE_INTERVALS * interval_s):
            # a pause (the loop stopped deciding, e.g. another replica held the lease): the window holds no
            # recommendation, and the fleet as it stands counts as one, as at start (found in QA: after a 96-min
            # pause, 8 -> 1 decode replicas at the first decision, where a restarted controller holds 8 for the window)
            reasons.append(f"{pool}: {now_s - hist[-1][0]:g}s since its last decision (a pause): the replicas found "
                           "count as a recommendation, as at start")
            hist.clear()
        if not hist and window > 0:
            hist.append((now_s, cur))  # seed: the fleet as found counts as a recommendation
        hist.append((now_s, max(hold_proposal.get(pool, 0), floor) if hold_proposal is not None else rec))
        while hist and hist[0][0] < now_s - w:
            hist.popleft()
        since = now_s - state.last_change_s.get(pool, float("-inf"))
        if rec > cur:
            if since < cfg.scale_up_cooldown_s:
                reasons.append(f"{pool}: scale-up {cur}->{rec} deferred (cooldown {cfg.scale_up_cooldown_s:g}s)")
                target[pool] = cur
            else:
                target[pool] = rec
        elif rec < cur:
            stable = max(max(n for _, n in hist), floor)
            if pool in queue_growing:
                reasons.append(f"{pool}: scale-down {cur}->{rec} vetoed (queue growing)")
                target[pool] = cur
            elif pool in coming:
                reasons.append(f"{pool}: scale-down {cur}->{rec} vetoed (replicas still starting while requests wait)")
                target[pool] = cur
            elif pool in rising:
                reasons.append(f"{pool}: scale-down {cur}->{rec} vetoed (load rising)")
                target[pool] = cur
            elif since < cfg.scale_down_cooldown_s:
                reasons.append(f"{pool}: scale-down {cur}->{rec} deferred (cooldown {cfg.scale_down_cooldown_s:g}s)")
                target[pool] = cur
            else:
                if stable > rec:
                    reasons.append(
                        f"{pool}: scale-down {cur}->{rec} stabilised to {min(stable, cur)} "
                        f"(max recommendation in {w:g}s)"
                    )
                target[pool] = min(stable, cur)
                if cfg.never_below_proposal and target[pool] < rec:
                    reasons.append(f"{pool}: scale-down {cur}->{rec}: the window remembers at most {stable}, "
                                   "below the proposal; kept at the proposal")
                    target[pool] = rec
        else:
            target[pool] = cur
        if target[pool] != cur:
            state.last_change_s[pool] = now_s
    state.last_good = dict(target)
    return GuardDecision(target=target, held=False, reasons=reasons)
