"""Request traces and their bucketing into request classes.

A trace is a CSV of requests: `timestamp, model, input_tokens, output_tokens` (the product's
format), or the Azure LLM inference trace's `TIMESTAMP, ContextTokens, GeneratedTokens` (Patel et
al., "Splitwise", ISCA 2024), whose model is given by the caller. Bucketing splits each model's
requests at quantiles of input and output length (log-spaced lengths bunch at the quantiles the
operator cares about), and gives each bucket its mean lengths and its rate over the trace's span.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from planner.errors import InputError
from planner.fileio import read_csv
from planner.schema import ModelEntry, RequestClass, Slo, Workload

# Column names of the Azure LLM inference trace 2023 (Azure/AzurePublicDataset).
AZURE_COLUMNS = {"TIMESTAMP": "timestamp", "ContextTokens": "input_tokens", "GeneratedTokens": "output_tokens"}


def read_trace(path: str | os.PathLike[str], model: str | None = None) -> pd.DataFrame:
    """A trace as a DataFrame with columns t_s (seconds from the first request), model, input_tokens,
    output_tokens, sorted by time. `model` names the model for traces without a model column."""
    p = Path(path)
    if not p.is_file():
        raise InputError(str(p), None, "file not found")
    try:
        head = pd.read_csv(p, nrows=0)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(str(p), None, f"expected a CSV with a header row (timestamp, model, input_tokens, "
                         f"output_tokens or the Azure columns), could not read one ({exc})") from None
    if set(AZURE_COLUMNS) <= set(head.columns):
        df = read_csv(p, {"TIMESTAMP": "any", "ContextTokens": "numeric", "GeneratedTokens": "numeric"})
        df = df.rename(columns=AZURE_COLUMNS)
    else:
        df = read_csv(p, {"timestamp": "any", "input_tokens": "numeric", "output_tokens": "numeric"})
    if df.empty:
        raise InputError(str(p), None, "the trace has no requests")
    if "model" not in df.columns:
        if model is None:
            raise InputError(str(p), "model", "the trace has no model column: pass the model name (--model)")
        df["model"] = model
    elif model is not None:
        df = df[df["model"] == model]
        if df.empty:
            raise InputError(str(p), "model", f"no request of model '{model}' in the trace")
    ts = df["timestamp"]
    if pd.api.types.is_numeric_dtype(ts):
        t = ts.astype(float)
    else:
        parsed = pd.to_datetime(ts, errors="coerce")
        if parsed.isna().any():
            row = int(parsed.isna().values.argmax())
            raise InputError(str(p), "timestamp", f"expected seconds or a date-time; row {row + 2} has {ts.iloc[row]!r}")
        t = (parsed - parsed.min()).dt.total_seconds()
    for col in ("input_tokens", "output_tokens"):
        if (df[col] < 0).any():
            row = int((df[col] < 0).values.argmax())
            raise InputError(str(p), col, f"expected token counts >= 0; row {row + 2} has {df[col].iloc[row]}")
    out = pd.DataFrame({
        "t_s": t.to_numpy() - float(np.min(t)),
        "model": df["model"].astype(str).to_numpy(),
        "input_tokens": np.maximum(df["input_tokens"].to_numpy(dtype=np.int64), 1),
        "output_tokens": np.maximum(df["output_tokens"].to_numpy(dtype=np.int64), 1),
    })
    return out.sort_values("t_s", kind="stable").reset_index(drop=True)


def _edges(values: np.ndarray, buckets: int) -> np.ndarray:
    """Inner bucket edges at equal-count quantiles, de-duplicated (few distinct lengths -> fewer buckets)."""
    if buckets <= 1:
        return np.array([])
    qs = np.quantile(values, np.linspace(0, 1, buckets + 1)[1:-1])
    return np.unique(qs)


def bucket_trace(trace: pd.DataFrame, slo: Slo | dict[str, Slo], isl_buckets: int = 3, osl_buckets: int = 2,
                 duration_s: float | None = None, rate_quantile: float | None = None, window_s: float = 60.0) -> Workload:
    """Request classes from a trace: ISL x OSL buckets per model, rates over the trace's span.

    `rate_quantile` (e.g. 0.9) sizes the model for that quantile of its per-`window_s` rate instead
    of the mean (plan for the busy minutes of a bursty trace, not the average); each class gets its
    share of requests of that rate, so the classes sum to the model's quantile rate and never above
    the trace's busiest window (each class at its own quantile would: their peaks need not coincide).
    """
    slos = slo if isinstance(slo, dict) else {m: slo for m in trace["model"].unique()}
    span = duration_s or max(float(trace["t_s"].max() - trace["t_s"].min()), 1.0)
    classes: list[RequestClass] = []
    for model, df in trace.groupby("model", sort=True):
        if model not in slos:
            raise InputError(None, "slo", f"no SLO given for model '{model}'")
        ie, oe = _edges(df["input_tokens"].to_numpy(), isl_buckets), _edges(df["output_tokens"].to_numpy(), osl_buckets)
        ib = np.searchsorted(ie, df["input_tokens"].to_numpy(), side="right")
        ob = np.searchsorted(oe, df["output_tokens"].to_numpy(), side="right")
        model_rate = len(df) / span
        if rate_quantile is not None:
            per_window = np.bincount((df["t_s"].to_numpy() // window_s).astype(int),
                                     minlength=int(span // window_s) + 1) / window_s
            model_rate = max(model_rate, float(np.quantile(per_window, rate_quantile)))
        for (i, o), g in df.groupby([ib, ob], sort=True):
            rate = model_rate * len(g) / len(df)
            classes.append(RequestClass(
                id=f"{model}/isl{i}-osl{o}",
                model=str(model),
                isl=int(round(g["input_tokens"].mean())),
                osl=int(round(g["output_tokens"].mean())),
                rate_rps=round(rate, 6),
            ))
    return Workload(models={m: ModelEntry(slo=s) for m, s in slos.items() if m in set(trace["model"])}, classes=classes)


def assign_classes(trace: pd.DataFrame, workload: Workload) -> np.ndarray:
    """Class id of each trace request: the class of its model nearest in (log isl, log osl)."""
    out = np.empty(len(trace), dtype=object)
    for model, idx in trace.groupby("model").groups.items():
        cls = [c for c in workload.classes if c.model == model]
        if not cls:
            raise InputError(None, "model", f"trace model '{model}' has no class in the workload")
        centers = np.log([[c.isl, c.osl] for c in cls])
        pts = np.log(trace.loc[idx, ["input_tokens", "output_tokens"]].to_numpy(dtype=float))
        d = ((pts[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
        out[np.asarray(idx)] = np.array([c.id for c in cls], dtype=object)[d.argmin(axis=1)]
    return out
