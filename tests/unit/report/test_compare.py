"""Diffs between two snapshots: names, directions, params, schema, categories and drift."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlgitops.metrics import direction
from mlgitops.report.compare import (
    column_changes,
    drift,
    flatten,
    headline_rows,
    metrics_diff,
    params_diff,
    schema_changes,
)


def test_direction_from_metric_names():
    assert direction("balanced_accuracy_score") == 1
    assert direction("slices.Island.Dream.log_loss") == -1
    assert direction("root_mean_squared_error") == -1
    assert direction("test_rows") == 0


def test_flatten_and_params_diff():
    assert flatten({"a": {"b": 1, "c": [1, 2]}}) == {"a.b": 1, "a.c": [1, 2]}
    diff = params_diff({"train": {"n": 100, "gone": 1}}, {"train": {"n": 200, "new": 2}})
    assert diff == [
        {"key": "train.gone", "base": 1, "new": None},
        {"key": "train.n", "base": 100, "new": 200},
        {"key": "train.new", "base": None, "new": 2},
    ]


def test_headline_marks_improvement_by_direction():
    rows = headline_rows(
        {"a_score": 0.8, "b_loss": 0.2},
        {"a_score": 0.9, "b_loss": 0.3, "ci": {"a_score": {"low": 0.85, "high": 0.95}}},
        ("a_score", "b_loss"),
    )
    assert rows[0]["improved"] is True
    assert rows[0]["delta"] == 0.1
    assert rows[0]["ci_low"] == 0.85
    assert rows[1]["improved"] is False, "a loss that rises is a regression"
    assert headline_rows(None, {"a_score": 0.9}, ("a_score",))[0]["base"] is None


def test_metrics_diff_lists_only_changes_and_skips_intervals():
    diff = metrics_diff(
        {"a_score": 1, "ci": {"a_score": {"low": 0}}, "per_class": {"x": {"f1_score": 0.5}}},
        {"a_score": 1, "ci": {"a_score": {"low": 1}}, "per_class": {"x": {"f1_score": 0.7}}},
    )
    assert [d["metric"] for d in diff] == ["per_class.x.f1_score"]
    assert diff[0]["delta"] == 0.2


def test_schema_and_column_changes():
    base = {
        "columns": {
            "a": {"dtype": "float", "null_rate": 0.0},
            "b": {"dtype": "category", "null_rate": 0.1, "categories": {"x": 3}},
            "gone": {"dtype": "int", "null_rate": 0.0},
        }
    }
    new = {
        "columns": {
            "a": {"dtype": "int", "null_rate": 0.2},
            "b": {"dtype": "category", "null_rate": 0.1, "categories": {"x": 2, "y": 1}},
            "added": {"dtype": "float", "null_rate": 0.0},
        }
    }
    changes = {(c["column"], c["change"]) for c in schema_changes(base, new)}
    assert changes == {("a", "retyped"), ("gone", "removed"), ("added", "added")}
    columns = {c["column"]: c for c in column_changes(base, new)}
    assert columns["a"]["null_rate_new"] == 0.2
    assert columns["b"]["new_categories"] == ["y"]


def test_drift_flags_a_shifted_feature_only(seed):
    rng = np.random.default_rng(seed)
    base = pd.DataFrame(
        {
            "x": rng.normal(size=500),
            "y": rng.normal(size=500),
            "c": rng.choice(["a", "b"], size=500),
        }
    )
    new = pd.DataFrame(
        {
            "x": rng.normal(size=500) + 1.0,
            "y": rng.normal(size=500),
            "c": rng.choice(["a", "b"], size=500),
        }
    )
    rows = {r["feature"]: r for r in drift(base.astype(str), new.astype(str), ["x", "y", "c"])}
    assert rows["x"]["test"] == "ks"
    assert rows["x"]["statistic"] > 0.3
    assert rows["x"]["p_value"] < 0.01
    assert rows["y"]["p_value"] > 0.01, "an unshifted feature is not flagged"
    assert rows["c"]["test"] == "jensen_shannon"
    assert rows["c"]["statistic"] < 0.1
