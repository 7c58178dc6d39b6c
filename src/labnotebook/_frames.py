"""Turning store records into pandas DataFrames."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ._store.base import Columns, RunRecord

RUN_COLUMNS = [
    "id",
    "experiment",
    "name",
    "status",
    "tags",
    "started_at",
    "ended_at",
    "duration",
    "host",
    "pid",
    "command",
]


def flatten(params: Any, prefix: str = "params") -> dict[str, Any]:
    """Flatten nested dicts into dotted keys (lists stay as values)."""
    out: dict[str, Any] = {}
    stack = [(prefix, params)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict) and value:
            stack.extend((f"{path}.{k}", v) for k, v in value.items())
        else:
            out[path] = value
    return out


def runs_frame(records: list[RunRecord], now: float) -> pd.DataFrame:
    """One row per run: run columns, flattened params, metric summaries."""
    rows: list[dict[str, Any]] = []
    param_cols: dict[str, None] = {}
    metric_cols: dict[str, None] = {}
    for r in records:
        end = (
            r.ended_at
            if r.ended_at is not None
            else (now if r.status == "running" else r.heartbeat_at)
        )
        row: dict[str, Any] = {
            "id": r.id,
            "experiment": r.experiment,
            "name": r.name,
            "status": r.status,
            "tags": r.tags,
            "started_at": r.started_at,
            "ended_at": r.ended_at,
            "duration": end - r.started_at,
            "host": r.host,
            "pid": r.pid,
            "command": r.command,
        }
        flat = flatten(r.params) if r.params else {}
        for key in flat:
            param_cols.setdefault(key)
        row.update(flat)
        for key, s in r.metrics.items():
            base = f"metrics.{key}"
            row[f"{base}.last"] = s.last
            row[f"{base}.min"] = s.min
            row[f"{base}.max"] = s.max
            metric_cols.setdefault(base)
        rows.append(row)

    metric_names = [
        f"{base}.{part}"
        for base in sorted(metric_cols)
        for part in ("last", "min", "max")
    ]
    columns = RUN_COLUMNS + sorted(param_cols) + metric_names
    frame = pd.DataFrame.from_records(rows, columns=columns)
    for col in ("started_at", "ended_at"):
        frame[col] = pd.to_datetime(frame[col], unit="s", utc=True)
    for col in metric_names:
        frame[col] = frame[col].astype("float64")
    return frame


def history_frame(
    data: dict[str, Columns], keys: list[str], with_time: bool
) -> pd.DataFrame:
    """A step-indexed frame with one column per key (NaN where a key has no value)."""
    series: list[pd.Series] = []
    for key in keys:
        if key not in data:
            continue
        steps, values, times = data[key]
        index = pd.Index(np.asarray(steps, dtype="int64"), name="step")
        series.append(
            pd.Series(np.asarray(values, dtype="float64"), index=index, name=key)
        )
        if with_time:
            series.append(
                pd.Series(
                    np.asarray(times, dtype="float64"), index=index, name=f"{key}.time"
                )
            )
    if not series:
        return pd.DataFrame(index=pd.Index([], dtype="int64", name="step"))
    if len(series) == 1:
        return series[0].to_frame()
    frame = pd.concat(series, axis=1, sort=True)
    frame.index.name = "step"
    return frame
