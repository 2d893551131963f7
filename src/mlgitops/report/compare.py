"""What changed between two snapshots: metrics, params, data and explanations."""

from __future__ import annotations

import io
import logging
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp

from mlgitops.layout import DATA_POINTER, TRAIN_PATH, VALIDATION_PATH, LayoutError, data_md5
from mlgitops.metrics import direction
from mlgitops.report.revisions import WORKSPACE, Snapshot

logger = logging.getLogger(__name__)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys: {"a": {"b": 1}} -> {"a.b": 1}."""
    if not isinstance(tree, dict):
        return {prefix: tree} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _delta(base: Any, new: Any) -> float | None:
    numbers = isinstance(base, int | float) and isinstance(new, int | float)
    if numbers and math.isfinite(base) and math.isfinite(new):
        return round(float(new) - float(base), 6)
    return None


def headline_rows(
    base: dict[str, Any] | None, new: dict[str, Any], headline: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Base, new value, delta, the new value's interval, and whether the change is better."""
    rows = []
    for metric in headline:
        old = None if base is None else base.get(metric)
        value = new.get(metric)
        delta = _delta(old, value)
        interval = new.get("ci", {}).get(metric)
        rows.append(
            {
                "metric": metric,
                "base": old,
                "new": value,
                "delta": delta,
                "ci_low": interval and interval.get("low"),
                "ci_high": interval and interval.get("high"),
                "improved": None if not delta else (delta * direction(metric) > 0),
            }
        )
    return rows


def metrics_diff(base: dict[str, Any] | None, new: dict[str, Any]) -> list[dict[str, Any]]:
    """Every metric that changed, intervals left out (the headline table shows them)."""
    old = flatten({k: v for k, v in (base or {}).items() if k != "ci"})
    current = flatten({k: v for k, v in new.items() if k != "ci"})
    return [
        {
            "metric": key,
            "base": old.get(key),
            "new": current.get(key),
            "delta": _delta(old.get(key), current.get(key)),
        }
        for key in sorted(old.keys() | current.keys())
        if old.get(key) != current.get(key)
    ]


def params_diff(base: dict[str, Any] | None, new: dict[str, Any]) -> list[dict[str, Any]]:
    """Every params key whose value differs, with both values (None: absent)."""
    old, current = flatten(base or {}), flatten(new)
    return [
        {"key": key, "base": old.get(key), "new": current.get(key)}
        for key in sorted(old.keys() | current.keys())
        if old.get(key) != current.get(key)
    ]


def importance_rows(
    base: dict[str, Any] | None, new: dict[str, Any] | None, top_k: int
) -> list[dict[str, Any]]:
    """The top features by mean |SHAP| in the new model, with their base values and ranks."""
    current = (new or {}).get("mean_abs_shap", {})
    old = (base or {}).get("mean_abs_shap", {})
    old_rank = {feature: i + 1 for i, feature in enumerate(old)}
    return [
        {
            "feature": feature,
            "rank": i + 1,
            "new": value,
            "base": old.get(feature),
            "base_rank": old_rank.get(feature),
        }
        for i, (feature, value) in enumerate(list(current.items())[:top_k])
    ]


def _pointer_hash(snapshot: Snapshot) -> str | None:
    pointer = snapshot.yaml(DATA_POINTER)
    try:
        return data_md5(pointer if isinstance(pointer, dict) else None)
    except LayoutError:
        return None


def schema_changes(base: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Columns added, removed or retyped between two validation reports."""
    old, current = base.get("columns", {}), new.get("columns", {})
    changes = []
    for column in sorted(old.keys() | current.keys()):
        if column not in old:
            changes.append({"column": column, "change": "added", "dtype": current[column]["dtype"]})
        elif column not in current:
            changes.append({"column": column, "change": "removed", "dtype": old[column]["dtype"]})
        elif old[column].get("dtype") != current[column].get("dtype"):
            changes.append(
                {
                    "column": column,
                    "change": "retyped",
                    "base": old[column]["dtype"],
                    "new": current[column]["dtype"],
                }
            )
    return changes


def column_changes(base: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Per column: null rate before and after, and categories never seen at the base."""
    old, current = base.get("columns", {}), new.get("columns", {})
    rows = []
    for column in current:
        if column not in old:
            continue
        before, after = old[column].get("null_rate"), current[column].get("null_rate")
        new_categories = sorted(
            set(current[column].get("categories", {})) - set(old[column].get("categories", {}))
        )
        if before != after or new_categories:
            rows.append(
                {
                    "column": column,
                    "null_rate_base": before,
                    "null_rate_new": after,
                    "new_categories": new_categories,
                }
            )
    return rows


def drift(base: pd.DataFrame, new: pd.DataFrame, features: list[str]) -> list[dict[str, Any]]:
    """Per feature: Kolmogorov-Smirnov for numbers, Jensen-Shannon distance for categories."""
    rows = []
    for feature in features:
        if feature not in base.columns or feature not in new.columns:
            continue
        old, current = base[feature], new[feature]
        old_numbers = pd.to_numeric(old, errors="coerce").dropna()
        new_numbers = pd.to_numeric(current, errors="coerce").dropna()
        numeric = len(old_numbers) == old.notna().sum() and len(old_numbers) > 0
        if numeric and len(new_numbers) > 0:
            result = ks_2samp(old_numbers, new_numbers)
            rows.append(
                {
                    "feature": feature,
                    "test": "ks",
                    "statistic": round(result.statistic, 4),
                    "p_value": round(float(result.pvalue), 4),
                }
            )
            continue
        old_share = old.fillna("(missing)").astype(str).value_counts(normalize=True)
        new_share = current.fillna("(missing)").astype(str).value_counts(normalize=True)
        categories = sorted(old_share.index.union(new_share.index))
        distance = jensenshannon(
            old_share.reindex(categories, fill_value=0).to_numpy(),
            new_share.reindex(categories, fill_value=0).to_numpy(),
            base=2,
        )
        rows.append(
            {
                "feature": feature,
                "test": "jensen_shannon",
                "statistic": round(float(np.nan_to_num(distance)), 4),
                "p_value": None,
            }
        )
    return sorted(rows, key=lambda row: -row["statistic"])


def read_training_rows(snapshot: Snapshot) -> pd.DataFrame:
    """The training rows at a revision: the workspace file, or DVC's copy of the base's.

    Raises:
        Exception: whatever DVC raises when the data is in neither the cache nor the remote.
    """
    if snapshot.rev == WORKSPACE:
        return pd.read_csv(snapshot.repo / TRAIN_PATH, dtype=str)
    import dvc.api

    with dvc.api.open(TRAIN_PATH, repo=str(snapshot.repo), rev=snapshot.rev) as handle:
        return pd.read_csv(io.StringIO(handle.read()), dtype=str)


def data_diff(base: Snapshot, new: Snapshot, features: list[str]) -> dict[str, Any]:
    """How the data changed: pointer hash, rows, schema, null rates, categories and drift."""
    base_validation = base.json(VALIDATION_PATH) or {}
    new_validation = new.json(VALIDATION_PATH) or {}
    result: dict[str, Any] = {
        "data_hash_base": _pointer_hash(base),
        "data_hash_new": _pointer_hash(new),
        "rows_base": base_validation.get("rows"),
        "rows_new": new_validation.get("rows"),
        "schema_changes": schema_changes(base_validation, new_validation),
        "column_changes": column_changes(base_validation, new_validation),
        "drift": [],
        "drift_unavailable": None,
    }
    result["data_changed"] = result["data_hash_base"] != result["data_hash_new"]
    try:
        result["drift"] = drift(read_training_rows(base), read_training_rows(new), features)
    except Exception as error:  # DVC raises many types when data is in no cache or remote
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        result["drift_unavailable"] = f"base training rows are not available: {reason}"
        logger.warning("%s", result["drift_unavailable"])
    return result
