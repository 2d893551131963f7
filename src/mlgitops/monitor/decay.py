"""Decay: the headline metric on labelled predictions over rolling windows, against training."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import numpy as np
import pandas as pd

from mlgitops.config import EvaluateParams
from mlgitops.metrics import METRICS, Predictions, safe_score
from mlgitops.monitor.settings import DecayParams
from mlgitops.prediction_log import PROBABILITY_PREFIX, LogError
from mlgitops.prediction_store import window_text

logger = logging.getLogger(__name__)


def rolling_windows(
    timestamps: pd.Series, *, window_days: float, step_days: float
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Windows `(start, end]` of `window_days`, oldest first.

    They end at the newest timestamp and every `step_days` before it, while the window still
    reaches a timestamp.
    """
    if timestamps.empty:
        return []
    newest, oldest = timestamps.max(), timestamps.min()
    window, step = dt.timedelta(days=window_days), dt.timedelta(days=step_days)
    windows = []
    end = newest
    while end >= oldest:
        windows.append((end - window, end))
        end = end - step
    return windows[::-1]


def score(frame: pd.DataFrame, metric: str, *, task: str, classes: list[str]) -> float:
    """`metric` of the logged predictions against their labels (probabilities when logged)."""
    y_true = frame["label"].to_numpy()
    if task == "classification":
        columns = [f"{PROBABILITY_PREFIX}{c}" for c in classes]
        proba = frame[columns].to_numpy(float) if classes else None
        labels = classes or sorted({*map(str, y_true), *map(str, frame["prediction"])})
        predictions = Predictions(
            y_true.astype(str), frame["prediction"].to_numpy().astype(str), proba, tuple(labels)
        )
    else:
        predictions = Predictions(y_true.astype(float), frame["prediction"].to_numpy(float))
    if metric not in METRICS:
        raise LogError(f"monitor.decay.metric '{metric}' is not a known metric")
    return safe_score(metric, predictions)


def measure_decay(
    labelled: pd.DataFrame,
    *,
    training: dict[str, Any],
    decay: DecayParams,
    evaluate: EvaluateParams,
    task: str,
) -> dict[str, Any]:
    """Score the labelled predictions per rolling window and compare with training.

    Args:
        labelled: predictions with a `label` column and UTC `timestamp`s.
        training: `reports/metrics.json` of the deployed model (values and `ci`).
        decay: the windowing and tolerance.
        evaluate: for the headline metrics (the default metric and the interval).
        task: the contract's task, classification or regression.

    Returns:
        The windows, each with its row count and score (None below `min_labels`), the
        training value and interval, and whether the newest scored window decayed.
    """
    metric = decay.metric or evaluate.headline[0]
    if metric not in evaluate.headline:
        raise LogError(
            f"monitor.decay.metric '{metric}' needs a training-time interval, so it must be "
            f"one of evaluate.headline {list(evaluate.headline)}"
        )
    interval = training.get("ci", {}).get(metric) or {}
    classes = sorted(
        str(c).removeprefix(PROBABILITY_PREFIX)
        for c in labelled
        if str(c).startswith(PROBABILITY_PREFIX)
    )
    windows = []
    for start, end in rolling_windows(
        labelled["timestamp"] if len(labelled) else pd.Series(dtype=object),
        window_days=decay.window_days,
        step_days=decay.step_days,
    ):
        rows = labelled[(labelled["timestamp"] > start) & (labelled["timestamp"] <= end)]
        value = (
            score(rows, metric, task=task, classes=classes)
            if len(rows) >= decay.min_labels
            else None
        )
        windows.append(
            {
                "start": start.isoformat(),
                "end": end.isoformat(),
                "labels": len(rows),
                metric: None if value is None or not np.isfinite(value) else round(value, 6),
            }
        )
    scored = [w for w in windows if w[metric] is not None]
    higher_is_better = metric.endswith("_score")
    latest = scored[-1][metric] if scored else None
    decayed = False
    if latest is not None and interval:
        if higher_is_better:
            decayed = latest < interval["low"] - decay.tolerance
        else:
            decayed = latest > interval["high"] + decay.tolerance
    return {
        "metric": metric,
        "training": {"value": training.get(metric), "interval": interval},
        "tolerance": decay.tolerance,
        "labelled_predictions": len(labelled),
        "windows": windows,
        "latest": latest,
        "decay_found": bool(decayed),
    }


def markdown(summary: dict[str, Any]) -> str:
    """The decay summary as markdown."""
    metric = summary["metric"]
    interval = summary["training"]["interval"]
    bounds = f"[{interval.get('low')}, {interval.get('high')}]" if interval else "(no interval)"
    verdict = "**Decay found**" if summary["decay_found"] else "**No decay found.**"
    if summary["latest"] is None:
        verdict = "**Not enough labelled predictions to judge decay.**"
    lines = [
        f"## Decay: {metric} on labelled predictions",
        "",
        verdict,
        "",
        f"Training: {summary['training']['value']} {bounds}, tolerance {summary['tolerance']}; "
        f"{summary['labelled_predictions']} labelled predictions"
        f"{window_text(summary.get('window'), 'labelled predictions')}.",
        "",
        f"| window start | window end | labels | {metric} |",
        "|---|---|---:|---:|",
    ]
    for w in summary["windows"]:
        shown = "n/a" if w[metric] is None else f"{w[metric]:.4f}"
        lines.append(f"| {w['start'][:16]} | {w['end'][:16]} | {w['labels']} | {shown} |")
    return "\n".join(lines) + "\n"
