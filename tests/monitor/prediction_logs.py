"""Prediction logs in the service's format (JSON lines under `<dir>/mlgitops_predictions/data/`),
written by the monitor tests. A module of its own: `conftest` names clash across folders."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

from mlgitops.prediction_log import PREDICTIONS_FOLDER

MODEL_MD5 = "0" * 31 + "1"


def log_record(
    features: dict[str, Any],
    prediction: str,
    *,
    md5: str = MODEL_MD5,
    when: dt.datetime | None = None,
    prediction_id: str | None = None,
    probabilities: dict[str, float] | None = None,
) -> dict[str, Any]:
    """One line of the prediction log, as the service writes it."""
    record = dict(features)
    record["prediction"] = prediction
    for label, value in (probabilities or {}).items():
        record[f"probability:{label}"] = value
    record["prediction_id"] = prediction_id or uuid.uuid4().hex
    record["model_md5"] = md5
    record["timestamp"] = (when or dt.datetime.now(dt.UTC)).isoformat()
    record["request_id"] = "1"
    record["trace_id"] = "0"
    return record


def write_log(log_dir: Path, records: list[dict[str, Any]], name: str = "data.0.log") -> Path:
    path = log_dir / PREDICTIONS_FOLDER / "data" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in records)
    return path
