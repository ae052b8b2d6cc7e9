"""What-if sweeps: change one input (traffic, prices, GPU mix, SLOs, roles, inventory), re-solve, tabulate.

Each sweep point is one ILP solve (`planner.api.solve`), so a sweep costs (points x ~0.1-1 s). Every
function returns a pandas DataFrame with one row per point and the same result columns:

  feasible, cost_per_hour (USD/h; NaN when infeasible), gpus (total), gpus_<type> per GPU type,
  prior_gpus (of them, in pools planned from the roofline prior: no profile of the variant),
  disaggregated_share (rate-weighted share of requests served by prefill+decode pools),
  load_multiplier (max-load mode only), bound (the solver's proven lower bound on the objective;
  USD/h for objective 'cost': the optimum lies in [bound, cost_per_hour]),
  binding (constraints that bind, '; '-joined),
  status (solver), solve_s (seconds), diagnosis (first line, when infeasible),
  over_slo (the classes, ', '-joined, that the point's plan predicts over their SLO behind their pools' mix of
  classes: a point is the closed form's plan, not simulated, and `planner solve` would verify and may re-size it,
  rule 58-V; '' when none)

Every sweep checks all its points before the first solve: one of the wrong type is a TypeError, one outside its range
(NaN, a price of 0, a negative factor, SLO bound or spread, an unknown policy) a ValueError naming the argument.

The input transformations (`with_price`, `with_gpu`, `without_gpu`, `with_roles`, `with_routing`, `with_slo`,
`scale_slo`, `with_length_spread`) are pure functions returning new `Workload`/`Fleet` records, usable on their own.
The catalog and performance laws are loaded once (see `planner.api.laws`) and shared by the points.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Unpack, get_args

import numpy as np
import pandas as pd

from planner.api import SolveKwargs, SolveOptions, solve
from planner.io.schema import (
    MAX_ISL_SCV,
    MAX_PRICE_PER_HOUR,
    MAX_RATE_RPS,
    MIN_PRICE_PER_HOUR,
    Fleet,
    GpuInventory,
    ModelEntry,
    PairingPolicy,
    Plan,
    ReplicaRouting,
    RequestClass,
    Role,
    Slo,
    Variant,
    Workload,
    parse_selector,
    revalidated,
)
from planner.planning.assemble import classes_over_slo

# Roles of the two deployment styles compared by `disaggregation_map`.
AGGREGATED_ROLES: tuple[Role, ...] = ("mixed",)
DISAGGREGATED_ROLES: tuple[Role, ...] = ("prefill", "decode")

RESULT_COLUMNS = ["feasible", "cost_per_hour", "gpus", "prior_gpus", "disaggregated_share", "load_multiplier",
                  "bound", "binding", "status", "solve_s", "diagnosis", "over_slo"]


# --------------------------------------------------------------------------- input transformations
def with_price(fleet: Fleet, gpu: str, price_per_hour: float) -> Fleet:
    """`fleet` with GPU type `gpu` priced at `price_per_hour` USD per GPU-hour (must be in the fleet)."""
    if gpu not in fleet.gpus:
        raise KeyError(f"GPU type '{gpu}' is not in the fleet ({', '.join(sorted(fleet.gpus))})")
    gpus = dict(fleet.gpus)
    gpus[gpu] = gpus[gpu].model_copy(update={"price_per_hour": float(price_per_hour)})
    return revalidated(fleet.model_copy(update={"gpus": gpus}))


def with_gpu(fleet: Fleet, gpu: str, available: int, price_per_hour: float | None = None) -> Fleet:
    """`fleet` with `available` more GPUs of type `gpu` (a new type is added with the catalog price
    unless `price_per_hour` is given)."""
    # `planner whatif --add-gpu G=0` is refused too; gpu_mix(add={"L40S": -3}) ran a scenario '+-3 L40S' (stop 52)
    if not (isinstance(available, int | np.integer) and not isinstance(available, bool) and available > 0):
        raise ValueError(f"GPUs to add of {gpu}: expected an integer > 0, got {available!r}")
    gpus = dict(fleet.gpus)
    old = gpus.get(gpu)
    have = old.available if old is not None else 0
    price = price_per_hour if price_per_hour is not None else (old.price_per_hour if old is not None else None)
    gpus[gpu] = GpuInventory(available=have + int(available), price_per_hour=price)
    return revalidated(fleet.model_copy(update={"gpus": gpus}))


def without_gpu(fleet: Fleet, gpu: str) -> Fleet:
    """`fleet` without GPU type `gpu` (its current pools, the floors of its pools, limits.pool_min_replicas, and the
    forbid_pairs rules that name it on either side, which forbid nothing without it, are dropped too: found in QA, a
    floor on an L40S pool, or a rule {prefill: L40S, decode: '*'}, made `whatif --remove-gpu L40S` an error on the
    fleet the what-if had made, "GPU type 'L40S' is not in the fleet's gpus")."""
    if gpu not in fleet.gpus:
        raise KeyError(f"GPU type '{gpu}' is not in the fleet ({', '.join(sorted(fleet.gpus))})")
    gpus = {g: inv for g, inv in fleet.gpus.items() if g != gpu}
    current = {p: n for p, n in fleet.current.items() if Variant.parse(p).gpu != gpu}
    floors = {p: n for p, n in fleet.limits.pool_min_replicas.items() if Variant.parse(p).gpu != gpu}
    rules = [r for r in fleet.limits.forbid_pairs if gpu not in (parse_selector(r.prefill)[0], parse_selector(r.decode)[0])]
    limits = fleet.limits.model_copy(update={"pool_min_replicas": floors, "forbid_pairs": rules})
    return revalidated(fleet.model_copy(update={"gpus": gpus, "current": current, "limits": limits}))


def with_inventory_factor(fleet: Fleet, factor: float) -> Fleet:
    """`fleet` with every GPU type's available count multiplied by `factor` (rounded down); a factor that is not a
    finite number >= 0 is a ValueError naming it (found in QA: NaN was "cannot convert float NaN to integer")."""
    if isinstance(factor, bool) or not (isinstance(factor, int | float | np.integer | np.floating)
                                        and math.isfinite(factor) and factor >= 0):
        raise ValueError(f"inventory factor {factor!r}: expected a finite number >= 0")
    gpus = {g: inv.model_copy(update={"available": int(math.floor(inv.available * factor + 1e-9))})
            for g, inv in fleet.gpus.items()}
    return revalidated(fleet.model_copy(update={"gpus": gpus}))


def with_pairing(fleet: Fleet, policy: PairingPolicy) -> Fleet:
    """`fleet` whose prefill pools may hand KV only to decode pools on the same GPU type ('same_gpu'),
    the same type and TP ('same_gpu_tp'), or to any ('any'); its forbid_pairs rules are kept."""
    limits = fleet.limits.model_copy(update={"pairing": policy})
    return revalidated(fleet.model_copy(update={"limits": limits}))


def with_routing(fleet: Fleet, routing: ReplicaRouting) -> Fleet:
    """The fleet whose pools route requests to replicas this way (limits.routing)."""
    return revalidated(fleet.model_copy(update={"limits": fleet.limits.model_copy(update={"routing": routing})}))


def with_length_spread(workload: Workload, isl_scv: float | None,
                       isl_max: int | Mapping[str, int] | None = None) -> Workload:
    """The workload whose every class's prompts spread with squared CV `isl_scv` (None or 0: all of the mean
    length), clipped at `isl_max` (one bound, or one per model, e.g. each model's context window; None or a model
    left out: unclipped; raised to the class's mean where it is below it)."""
    def cap(model: str) -> int | None:
        return isl_max.get(model) if isinstance(isl_max, Mapping) else isl_max

    classes = []
    for c in workload.classes:
        m = cap(c.model)
        classes.append(c.model_copy(update={"isl_scv": isl_scv or None,
                                            "isl_max": max(m, c.isl) if isl_scv and m is not None else None}))
    return revalidated(workload.model_copy(update={"classes": classes}))


def with_output_spread(workload: Workload, osl_scv: float | None) -> Workload:
    """The workload whose every class's output lengths spread with squared CV `osl_scv` (None or 0: all of the mean
    length; planner/planning/capacity.py, Output-length dispersion)."""
    return revalidated(workload.model_copy(update={"classes": [c.model_copy(update={"osl_scv": osl_scv or None})
                                                               for c in workload.classes]}))


def with_roles(fleet: Fleet, roles: Iterable[Role]) -> Fleet:
    """`fleet` whose policy allows only engine roles `roles` (e.g. ['mixed'] = aggregated serving)."""
    limits = fleet.limits.model_copy(update={"roles": list(roles)})
    return revalidated(fleet.model_copy(update={"limits": limits}))


def with_slo(workload: Workload, ttft_ms: float | None = None, itl_ms: float | None = None,
             models: Iterable[str] | None = None, percentile: float | None = None) -> Workload:
    """`workload` with the SLO bounds of `models` (default: all) set to the values given (others kept).

    Per-class SLO overrides of those models are replaced too, so the new bounds hold for every class."""
    chosen = set(_points(models, "models", '["llama-2-70b"]')) if models is not None else set(workload.models)
    unknown = chosen - set(workload.models)
    if unknown:
        raise KeyError(f"models {sorted(unknown)} are not in the workload ({', '.join(sorted(workload.models))})")

    def _new(slo: Slo) -> Slo:
        upd: dict[str, Any] = {}
        if ttft_ms is not None:
            upd["ttft_ms"] = float(ttft_ms)
        if itl_ms is not None:
            upd["itl_ms"] = float(itl_ms)
        if percentile is not None:
            upd["percentile"] = float(percentile)
        return Slo(**{**slo.model_dump(), **upd})

    models_new = {m: (ModelEntry(slo=_new(e.slo)) if m in chosen else e) for m, e in workload.models.items()}
    classes = [c.model_copy(update={"slo": None}) if c.model in chosen else c for c in workload.classes]
    return Workload(models=models_new, classes=classes)


def scale_slo(workload: Workload, factor: float, ttft: bool = True, itl: bool = True) -> Workload:
    """`workload` with every SLO bound (model defaults and class overrides) multiplied by `factor`
    (< 1 tightens). `ttft`/`itl` choose which bounds move."""
    def _scaled(slo: Slo) -> Slo:
        d = slo.model_dump()
        if ttft and d["ttft_ms"] is not None:
            d["ttft_ms"] = d["ttft_ms"] * factor
        if itl and d["itl_ms"] is not None:
            d["itl_ms"] = d["itl_ms"] * factor
        return Slo(**d)

    models = {m: ModelEntry(slo=_scaled(e.slo)) for m, e in workload.models.items()}
    classes = [c.model_copy(update={"slo": _scaled(c.slo)}) if c.slo is not None else c for c in workload.classes]
    return Workload(models=models, classes=classes)


# --------------------------------------------------------------------------- one row per solve
def plan_row(plan: Plan, workload: Workload) -> dict[str, Any]:
    """The result columns of one solved point (see the module docstring)."""
    total_rate = sum(c.rate_rps for c in workload.classes)
    disagg = float("nan")
    if plan.feasible and total_rate > 0:
        shares = {cid: pr.disaggregated_share for mp in plan.models.values() for cid, pr in mp.predicted.items()}
        disagg = sum(shares.get(c.id, 0.0) * c.rate_rps for c in workload.classes) / total_rate
    row: dict[str, Any] = {
        "feasible": plan.feasible,
        "cost_per_hour": plan.cost_per_hour if plan.feasible else float("nan"),
        "gpus": sum(plan.gpus.values()) if plan.feasible else float("nan"),
        # found by hand at stop 54: `whatif --add-gpu B200=16` priced a fleet of B200s (no profile of any model) at
        # -49% without a word that every law of it was the roofline prior's
        "prior_gpus": sum(p.gpus for mp in plan.models.values() for p in mp.pools if p.source == "prior")
        if plan.feasible else float("nan"),
        "disaggregated_share": disagg,
        "load_multiplier": plan.load_multiplier if plan.load_multiplier is not None else float("nan"),
        "bound": plan.solver.bound if plan.feasible and plan.solver.bound is not None else float("nan"),
        "binding": "; ".join(plan.binding),
        "status": plan.solver.status,
        "solve_s": plan.solver.seconds,
        "diagnosis": plan.diagnosis[0] if plan.diagnosis else "",
        # found by a helper at stop 58: notebook 02's scv-0.66 point read $59.19/h without a sign that its plan predicts
        # a class over its SLO, where `solve`'s default verifies and re-sizes it to $62.18/h
        "over_slo": ", ".join(classes_over_slo(plan)) if plan.feasible else "",
    }
    for g, n in sorted(plan.gpus.items()):
        row[f"gpus_{g}"] = n
    return row


def _frame(rows: list[dict[str, Any]], keys: Sequence[str]) -> pd.DataFrame:
    """Rows -> DataFrame: key columns first, result columns, then gpus_<type> (0 where a feasible
    plan uses none of that type, NaN where the point is infeasible)."""
    if not rows:  # an empty sweep: no rows, the same columns (gpus_<type> are those of the plans found)
        return pd.DataFrame(columns=[*keys, *RESULT_COLUMNS])
    return _gpu_columns_last(pd.DataFrame(rows), keys)


def _gpu_columns_last(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """`keys`, the result columns, then gpus_<type> sorted: a count per GPU type, 0 where a feasible point uses none of
    that type, NaN where the point is infeasible (as `gpus`; a CSV writes them as whole numbers,
    files.CSV_FLOAT_FORMAT)."""
    gpu_cols = sorted(c for c in df.columns if c.startswith("gpus_"))
    df = df.copy()
    for c in gpu_cols:
        df[c] = df[c].where(df[c].notna() | ~df["feasible"].astype(bool), 0)
    return df[[*keys, *RESULT_COLUMNS, *gpu_cols]]


def stack(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Several sweeps' frames in one table, each row named by its question (the `frames` key) in a first column
    `question`: the key columns of every sweep in order of appearance, the result columns, then every GPU type's
    count, 0 where a feasible point of one sweep used none of a type another sweep used (found by hand at stop 54:
    `planner whatif --csv` had left those cells empty and the L40S column after the others)."""
    if not frames:
        return pd.DataFrame(columns=["question", *RESULT_COLUMNS])
    keys: list[str] = []
    for df in frames.values():
        keys += [c for c in df.columns if c not in RESULT_COLUMNS and not c.startswith("gpus_") and c not in keys]
    both = pd.concat([df.assign(question=q) for q, df in frames.items()], ignore_index=True)
    return _gpu_columns_last(both, ["question", *keys])


def _solve_row(workload: Workload, fleet: Fleet, keys: dict[str, Any], **solve_kw: Unpack[SolveKwargs]) -> dict[str, Any]:
    """One point of a sweep: the closed form's plan (no simulation per point unless `verify` is passed: a sweep of
    dozens of points would simulate each one that predicts a class over its SLO, rule 58-V's default of solve)."""
    solve_kw.setdefault("verify", False)
    return {**keys, **plan_row(solve(workload, fleet, **solve_kw), workload)}


def _points(values: Iterable[Any], name: str, example: str) -> list[Any]:
    """A sweep's points as a list; one string (or bytes), or a single value, is a TypeError naming `name`.

    A string is iterable, so each sweep used to solve its characters (found in QA: traffic(wl, fl, "22") gave two rows
    at factor 2.0, slo_tightening(wl, fl, "0.5") a pydantic error on a 0 ms SLO, gpu_mix(remove="L40S") a KeyError on
    GPU type 'L'); a single number was "'int' object is not iterable"."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise TypeError(f"{name}: expected a list (e.g. {example}), got {values!r}")
    return list(values)


def _numbers(values: Iterable[Any], name: str, example: str) -> list[float]:
    """A numeric sweep's points as floats (`_points`); an element that is not a real number (a string, a bool) is a
    TypeError naming `name` and the element: float("2") would pass a string through, float(True) a bool as 1.0."""
    out = _points(values, name, example)
    for v in out:
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
            raise TypeError(f"{name}: expected numbers (e.g. {example}), got {v!r} in {out!r}")
    return [float(v) for v in out]


def _token_counts(values: Iterable[Any], name: str, example: str) -> list[int]:
    """A sweep's token lengths: whole numbers > 0, all checked before the first solve (found in QA:
    disaggregation_map(isl=[512.7]) priced a row 'isl 512', osl=[nan] stopped on "cannot convert float NaN to
    integer" without naming osl, and isl=[-5] was a pydantic error on a RequestClass after the points before it were
    solved)."""
    return [int(v) for v in _checked(values, name, example, lambda v: math.isfinite(v) and v >= 1 and v == int(v),
                                     f"whole numbers of tokens >= 1 (e.g. {example})")]


def _checked(values: Iterable[Any], name: str, example: str, ok: Callable[[float], bool], expected: str) -> list[float]:
    """A numeric sweep's points (`_numbers`), each of which `ok` accepts, all checked before the first solve; else a
    ValueError naming `name`, the point and what was `expected` (found in QA: gpu_price(prices=[3.0, nan]) solved the
    first point, then stopped on a pydantic error naming price_per_hour, an internal field)."""
    out = _numbers(values, name, example)
    for v in out:
        if not ok(v):
            raise ValueError(f"{name}: expected {expected}, got {v!r} in {out!r}")
    return out


def _positive(v: float) -> bool:
    """A finite number > 0 (a traffic or SLO factor, an SLO bound)."""
    return math.isfinite(v) and v > 0


def _scv(v: float) -> bool:
    """A squared CV the schema takes (RequestClass.isl_scv/osl_scv: 0 to MAX_ISL_SCV, 0 = no spread)."""
    return math.isfinite(v) and 0 <= v <= MAX_ISL_SCV


_SCV_TEXT = f"finite squared CVs from 0 (no spread) to {MAX_ISL_SCV:g}"
_PRICE_TEXT = f"finite USD/h from {MIN_PRICE_PER_HOUR:g} to {MAX_PRICE_PER_HOUR:g} (planner.io.schema.PRICE_RANGE_TEXT)"


def _choices(values: Iterable[Any], name: str, example: str, allowed: tuple[str, ...]) -> list[Any]:
    """A sweep's named points (`_points`), each one of `allowed`, all checked before the first solve (a ValueError
    naming `name`; an unknown policy was a pydantic error on limits after the points before it were solved)."""
    out = _points(values, name, example)
    for v in out:
        if v not in allowed:
            raise ValueError(f"{name}: expected {' or '.join(map(repr, allowed))}, got {v!r} in {out!r}")
    return out


# --------------------------------------------------------------------------- sweeps
def compare(scenarios: Mapping[str, tuple[Workload, Fleet]], **solve_kw: Unpack[SolveKwargs]) -> pd.DataFrame:
    """Solve named (workload, fleet) scenarios; one row each, keyed by `scenario`."""
    rows = [_solve_row(wl, fl, {"scenario": name}, **solve_kw) for name, (wl, fl) in scenarios.items()]
    return _frame(rows, ["scenario"])


class TrafficFactorError(ValueError):
    """A traffic factor no plan can be made for (`factor`; `cap` = max_traffic_factor of the workload)."""

    def __init__(self, message: str, factor: float, cap: float) -> None:
        super().__init__(message)
        self.factor, self.cap = factor, cap


def max_traffic_factor(workload: Workload) -> float:
    """The largest factor on every class's rate that keeps each within planner.io.schema.MAX_RATE_RPS, the range in
    which the ILP's answer is reliable (schema.py says why); inf for a workload without traffic."""
    top = max((c.rate_rps for c in workload.classes), default=0.0)
    return MAX_RATE_RPS / top if top > 0 else math.inf


def traffic(workload: Workload, fleet: Fleet, factors: Iterable[float] = (0.5, 1.0, 2.0, 4.0),
            **solve_kw: Unpack[SolveKwargs]) -> pd.DataFrame:
    """Every class's rate times each factor -> cost and GPUs. Keys: traffic_factor, rate_rps (total).

    TrafficFactorError (a ValueError), before any solve, for no factor, a factor that is not a finite number > 0, or
    one that takes a class beyond the planner's rate range (`max_traffic_factor`)."""
    factors = _numbers(factors, "traffic factors", "[0.5, 1, 2, 4]")
    cap = max_traffic_factor(workload)
    if not factors:
        raise TrafficFactorError("traffic: no factor given", math.nan, cap)
    for f in factors:
        if not (math.isfinite(f) and f > 0):
            raise TrafficFactorError(f"traffic factor {f!r}: expected a finite number > 0", f, cap)
        if f > cap:
            raise TrafficFactorError(f"traffic factor {f:g} takes the largest class beyond {MAX_RATE_RPS:g} req/s "
                                     f"(the planner's rate range): at most {cap:.4g}", f, cap)
    rows = []
    for f in factors:
        wl = workload.scaled(float(f))
        rows.append(_solve_row(wl, fleet, {"traffic_factor": float(f),
                                           "rate_rps": sum(c.rate_rps for c in wl.classes)}, **solve_kw))
    return _frame(rows, ["traffic_factor", "rate_rps"])


def gpu_price(workload: Workload, fleet: Fleet, gpu: str, prices: Iterable[float], **solve_kw: Unpack[SolveKwargs]) -> pd.DataFrame:
    """GPU type `gpu` at each price (USD per GPU-hour) -> cost and GPU mix. Keys: gpu, price_per_hour."""
    rows = [_solve_row(workload, with_price(fleet, gpu, p), {"gpu": gpu, "price_per_hour": p}, **solve_kw)
            for p in _checked(prices, "prices", "[1.5, 3.0, 4.5]",
                              lambda p: MIN_PRICE_PER_HOUR <= p <= MAX_PRICE_PER_HOUR, _PRICE_TEXT)]
    return _frame(rows, ["gpu", "price_per_hour"])


def prices(workload: Workload, fleet: Fleet, changes: Mapping[str, float], **solve_kw: Unpack[SolveKwargs]) -> pd.DataFrame:
    """The baseline, each price change alone, and (with two or more) all together. Key: scenario."""
    scen: dict[str, tuple[Workload, Fleet]] = {"baseline": (workload, fleet)}
    for g, p in changes.items():
        scen[f"{g} at ${p:g}/h"] = (workload, with_price(fleet, g, p))
    if len(changes) > 1:
        fl = fleet
        for g, p in changes.items():
            fl = with_price(fl, g, p)
        scen["all price changes"] = (workload, fl)
    return compare(scen, **solve_kw)


def gpu_mix(workload: Workload, fleet: Fleet, add: Mapping[str, int] | None = None,
            remove: Iterable[str] = (), **solve_kw: Unpack[SolveKwargs]) -> pd.DataFrame:
    """The baseline, then adding `count` GPUs of each type in `add`, then removing each type in
    `remove`, one change at a time. Key: scenario."""
    scen: dict[str, tuple[Workload, Fleet]] = {"baseline": (workload, fleet)}
    for g, n in (add or {}).items():
        scen[f"+{n} {g}"] = (workload, with_gpu(fleet, g, n))
    for g in _points(remove, "remove", '["L40S"]'):
        scen[f"without {g}"] = (workload, without_gpu(fleet, g))
    return compare(scen, **solve_kw)


def slo_tightening(workload: Workload, fleet: Fleet, factors: Iterable[float] = (1.0, 0.8, 0.6, 0.5),
                   ttft: bool = True, itl: bool = True, **solve_kw: Unpack[SolveKwargs]) -> pd.DataFrame:
    """Every SLO bound times each factor (< 1 = tighter) -> cost and GPUs. Key: slo_factor."""
    rows = [_solve_row(scale_slo(workload, f, ttft=ttft, itl=itl), fleet, {"slo_factor": f}, **solve_kw)
            for f in _checked(factors, "SLO factors", "[1.0, 0.8, 0.6]", _positive, "finite numbers > 0")]
    return _frame(rows, ["slo_factor"])


def _pareto(df: pd.DataFrame) -> np.ndarray:
    """True where no other feasible point has bounds at least as tight (TTFT and ITL) and a cost at
    most as high, with one of the three strictly better: the points worth choosing between."""
    t, i, c = (df[k].to_numpy(dtype=float) for k in ("ttft_ms", "itl_ms", "cost_per_hour"))
    ok = df["feasible"].to_numpy(dtype=bool)
    out = np.zeros(len(df), dtype=bool)
    for k in range(len(df)):
        if not ok[k]:
            continue
        dom = ok & (t <= t[k]) & (i <= i[k]) & (c <= c[k]) & ((t < t[k]) | (i < i[k]) | (c < c[k]))
        out[k] = not dom.any()
    return out


def slo_frontier(workload: Workload, fleet: Fleet, ttft_ms: Iterable[float], itl_ms: Iterable[float],
                 models: Iterable[str] | None = None, **solve_kw: Unpack[SolveKwargs]) -> pd.DataFrame:
    """Cost over a TTFT x ITL grid of SLO bounds (applied to `models`, default all).

    Keys: ttft_ms, itl_ms. Adds `frontier`: True on the Pareto frontier (no tighter-or-equal SLO point
    is as cheap)."""
    ms = _points(models, "models", '["llama-2-70b"]') if models is not None else None
    ttfts = _checked(ttft_ms, "ttft_ms", "[400, 800]", _positive, "finite milliseconds > 0")
    itls = _checked(itl_ms, "itl_ms", "[30, 60]", _positive, "finite milliseconds > 0")
    rows = [_solve_row(with_slo(workload, t, i, ms), fleet, {"ttft_ms": t, "itl_ms": i}, **solve_kw)
            for t in ttfts for i in itls]
    df = _frame(rows, ["ttft_ms", "itl_ms"])
    df.insert(2, "frontier", _pareto(df))
    return df


def single_class(model: str, isl: int, osl: int, rate_rps: float, slo: Slo) -> Workload:
    """A one-model, one-class workload (the unit of the disaggregation map)."""
    return Workload(models={model: ModelEntry(slo=slo)},
                    classes=[RequestClass(id=f"{model}/isl{isl}-osl{osl}", model=model, isl=int(isl), osl=int(osl),
                                          rate_rps=float(rate_rps))])


DISAGGREGATION_COLUMNS = ("isl", "osl", "cost_aggregated", "cost_disaggregated", "gpus_aggregated", "gpus_disaggregated",
                          "cost_ratio", "pd_ratio", "winner")
"""`disaggregation_map`'s columns (an empty grid gives them with no rows)."""


def disaggregation_map(fleet: Fleet, model: str, slo: Slo, isl: Iterable[int], osl: Iterable[int],
                       rate_rps: float = 10.0, **solve_kw: Unpack[SolveKwargs]) -> pd.DataFrame:
    """Where disaggregation pays: for each (ISL, OSL), the cheapest aggregated plan (mixed replicas only)
    and the cheapest disaggregated one (prefill + decode pools only), at `rate_rps` of one class.

    Keys: isl, osl. Columns: cost_aggregated, cost_disaggregated (USD/h, NaN when infeasible),
    gpus_aggregated, gpus_disaggregated, cost_ratio = aggregated / disaggregated (> 1: P/D is
    cheaper), pd_ratio (prefill GPUs / decode GPUs of the P/D plan), winner. A point whose prompt + output exceeds
    the model's context is a row of NaNs with winner 'beyond context' (no replica serves it; `solve` refuses it).
    A length that is not a whole number >= 1, or a rate that is not a finite number > 0, is a ValueError naming
    `isl`, `osl` or `rate_rps`, before any solve."""
    from planner.api import laws

    catalog = solve_kw.get("catalog") or laws(solve_kw.get("profiles_dir"))[0]
    max_context = catalog.model(model).max_context  # an unknown model: InputError before any solve
    agg_fleet, pd_fleet = with_roles(fleet, AGGREGATED_ROLES), with_roles(fleet, DISAGGREGATED_ROLES)
    rows: list[dict[str, Any]] = []
    isls, osls = _token_counts(isl, "isl", "[1024, 4096]"), _token_counts(osl, "osl", "[128, 512]")
    if not (isinstance(rate_rps, int | float | np.integer | np.floating) and not isinstance(rate_rps, bool)
            and math.isfinite(rate_rps) and rate_rps > 0):  # checked before the first solve, as the lengths are
        raise ValueError(f"rate_rps: expected a finite number of requests/s > 0, got {rate_rps!r}")
    for i in isls:
        for o in osls:
            if max_context is not None and i + o > max_context:
                rows.append({**dict.fromkeys(DISAGGREGATION_COLUMNS, float("nan")), "isl": i, "osl": o,
                             "winner": "beyond context"})
                continue
            wl = single_class(model, i, o, rate_rps, slo)
            a = solve(wl, agg_fleet, **solve_kw)  # one class: its pools serve no mix of classes to verify (rule 58-V)
            d = solve(wl, pd_fleet, **solve_kw)
            ca = a.cost_per_hour if a.feasible else float("nan")
            cd = d.cost_per_hour if d.feasible else float("nan")
            if a.feasible and d.feasible:
                winner = "disaggregated" if cd < ca else "aggregated" if ca < cd else "tie"
            else:
                winner = "aggregated" if a.feasible else "disaggregated" if d.feasible else "neither"
            pd_ratio = d.models[model].pd_ratio if d.feasible and model in d.models else None
            rows.append({
                "isl": i, "osl": o,
                "cost_aggregated": ca, "cost_disaggregated": cd,
                "gpus_aggregated": a.total_gpus if a.feasible else float("nan"),
                "gpus_disaggregated": d.total_gpus if d.feasible else float("nan"),
                "cost_ratio": ca / cd if a.feasible and d.feasible and cd > 0 else float("nan"),
                "pd_ratio": pd_ratio if pd_ratio is not None else float("nan"),
                "winner": winner,
            })
    return pd.DataFrame(rows, columns=DISAGGREGATION_COLUMNS)


def pairing(workload: Workload, fleet: Fleet,
            policies: Iterable[PairingPolicy] = ("any", "same_gpu", "same_gpu_tp"), **solve_kw: Unpack[SolveKwargs]) -> pd.DataFrame:
    """What restricting P->D pairing costs: the plan when prefill may hand KV to any decode pool, only
    to the same GPU type, or only to the same type and TP (e.g. no RDMA between node pools, or a KV
    connector without heterogeneous-TP support). Key: pairing."""
    rows = [_solve_row(workload, with_pairing(fleet, p), {"pairing": p}, **solve_kw)
            for p in _choices(policies, "policies", '["any", "same_gpu"]', get_args(PairingPolicy))]
    return _frame(rows, ["pairing"])


def routing(workload: Workload, fleet: Fleet, policies: Iterable[ReplicaRouting] = ("least_loaded", "random"),
            **solve_kw: Unpack[SolveKwargs]) -> pd.DataFrame:
    """What the routing in front of each pool costs: least-loaded (llm-d's load-aware scorers) against random or
    round-robin (a plain Kubernetes Service), where each replica queues alone (planner/planning/capacity.py, Pool
    of replicas, Random routing). Key: routing."""
    rows = [_solve_row(workload, with_routing(fleet, r), {"routing": r}, **solve_kw)
            for r in _choices(policies, "policies", '["least_loaded", "random"]', get_args(ReplicaRouting))]
    return _frame(rows, ["routing"])


def length_spread(workload: Workload, fleet: Fleet, scvs: Iterable[float] = (0.0, 0.25, 0.5, 1.0),
                  isl_max: int | Mapping[str, int] | None = None, **solve_kw: Unpack[SolveKwargs]) -> pd.DataFrame:
    """What the spread of prompt lengths costs: every class's prompts at squared CV `scv` (0: all of the mean
    length, the planner's view without `isl_scv`), clipped at `isl_max` (e.g. each model's context window: a
    {model: tokens} mapping; planner/planning/
    capacity.py, Prompt-length dispersion). The Azure conversation trace's prompts have scv 0.92 (0.52 within
    llama-2-70b's 4,096-token context; `planner workload from-trace --length-spread`). Key: isl_scv."""
    rows = [_solve_row(with_length_spread(workload, float(v), isl_max), fleet, {"isl_scv": float(v)}, **solve_kw)
            for v in _checked(scvs, "scvs", "[0.0, 0.5, 1.0]", _scv, _SCV_TEXT)]
    return _frame(rows, ["isl_scv"])


def output_spread(workload: Workload, fleet: Fleet, scvs: Iterable[float] = (0.0, 0.5, 1.0, 2.0),
                  **solve_kw: Unpack[SolveKwargs]) -> pd.DataFrame:
    """What the spread of output lengths costs: every class's outputs at squared CV `scv` (0: all of the mean length,
    the planner's view without `osl_scv`). The running decode batch is length-biased, so a KV-bound decode pool holds
    isl + osl·(1 + scv) tokens per sequence (planner/planning/capacity.py, Output-length dispersion). The Azure
    conversation trace's outputs have scv ~0.60 over the whole trace. Key: osl_scv."""
    rows = [_solve_row(with_output_spread(workload, float(v)), fleet, {"osl_scv": v}, **solve_kw)
            for v in _checked(scvs, "scvs", "[0.0, 0.5, 1.0]", _scv, _SCV_TEXT)]
    return _frame(rows, ["osl_scv"])


def headroom(workload: Workload, fleet: Fleet, inventory_factors: Iterable[float] = (1.0,),
             **solve_kw: Unpack[SolveOptions]) -> pd.DataFrame:
    """How much more traffic a fixed fleet serves within SLO (objective 'max_load'), for the fleet
    with its inventory scaled by each factor. Keys: inventory_factor, inventory_gpus (GPUs available), load_capped.

    `load_multiplier` is the common factor on every class's rate that still fits (1.0 = today), at most
    `max_traffic_factor(workload)`, the planner's rate range (found in QA at stop 58: 1e6 H100s read 51,961x, where
    `whatif --traffic` refuses beyond 25,000x): a fleet that takes more is the plan of the workload at that factor,
    with `load_capped` True (the multiplier is a lower bound: the fleet takes at least that much)."""
    factors = _numbers(inventory_factors, "inventory factors", "[0.5, 1.0]")
    for f in factors:  # checked before the first solve; NaN was "cannot convert float NaN to integer"
        if not (math.isfinite(f) and f >= 0):
            raise ValueError(f"inventory factor {f!r}: expected a finite number >= 0")
    cap = max_traffic_factor(workload)
    rows = []
    for f in factors:
        fl = with_inventory_factor(fleet, f)
        keys = {"inventory_factor": float(f), "inventory_gpus": sum(inv.available for inv in fl.gpus.values()),
                "load_capped": False}
        row = _solve_row(workload, fl, keys, objective="max_load", **solve_kw)
        if row["feasible"] and row["load_multiplier"] > cap:  # beyond the rate range: plan the workload at its edge
            at_cap = _solve_row(workload.scaled(cap), fl, {**keys, "load_capped": True}, **solve_kw)
            if at_cap["feasible"]:
                row = {**at_cap, "load_multiplier": cap}
        rows.append(row)
    return _frame(rows, ["inventory_factor", "inventory_gpus", "load_capped"])
