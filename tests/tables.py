"""Tables made from a data contract, and contracts made from a seed, for tests on any data.

`table_from_contract` writes rows the way a CSV holds them (text, blanks for missing values)
that satisfy the contract: ranges, categories, nullability, uniqueness and dtypes. The
target depends on the features, so a model has something to learn. `random_shape` draws a
whole project shape (task, target type, feature types, awkward column names, identifier and
personal columns, slices, derived features) from a seed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlgitops.contract import ContractParams

MISSING_RATE = 0.08


def _bounds(spec: Any) -> tuple[float, float]:
    low = spec.min if spec.min is not None else (spec.max - 100 if spec.max is not None else 0)
    high = spec.max if spec.max is not None else low + 100
    return float(low), float(high)


def _column_text(name: str, spec: Any, u: np.ndarray, rng: np.random.Generator) -> pd.Series:
    rows = len(u)
    if spec.dtype == "float":
        low, high = _bounds(spec)
        values = [f"{low + x * (high - low):.4f}" for x in u]
    elif spec.dtype == "int":
        low, high = _bounds(spec)
        if spec.unique:
            values = [str(int(low) + i) for i in range(rows)]
        else:
            values = [str(int(np.floor(low + x * (high - low + 1 - 1e-9)))) for x in u]
    elif spec.dtype == "category":
        cats = list(spec.categories)
        values = [cats[min(int(x * len(cats)), len(cats) - 1)] for x in u]
    elif spec.dtype == "bool":
        values = ["true" if x >= 0.5 else "false" for x in u]
    elif spec.dtype == "date":
        start = dt.date(2021, 1, 1)
        values = [(start + dt.timedelta(days=int(x * 900))).isoformat() for x in u]
    elif spec.unique or spec.role == "identifier":
        values = [f"ID-{i:06d}" for i in range(rows)]
    else:
        words = ["note", "seen", "late", "ok", "check", "müde", "retry"]
        values = [" ".join(rng.choice(words, size=3)) + f" {i}" for i in range(rows)]
    series = pd.Series(values, dtype=object)
    if spec.nullable and spec.role != "target" and not spec.unique:
        missing = rng.random(rows) < MISSING_RATE
        missing[:2] = [True, False]  # at least one gap, and never an all-missing column
        series[missing] = np.nan
    return series


def table_from_contract(contract: ContractParams, *, rows: int, seed: int) -> pd.DataFrame:
    """A text table (as `read_table` returns it) that satisfies `contract`.

    The target is a function of the features plus a little noise: classes come from
    quantiles of a score over the features, a regression target is that score rescaled into
    the target's range.
    """
    rng = np.random.default_rng(seed)
    drivers = {name: rng.random(rows) for name in contract.columns}
    columns = {
        name: _column_text(name, spec, drivers[name], rng)
        for name, spec in contract.columns.items()
        if spec.role != "target"
    }
    features = contract.features
    score = sum(drivers[n] * (1 if i % 2 == 0 else -1) for i, n in enumerate(features))
    score = np.asarray(score, dtype=float) + rng.normal(0, 0.05 * max(len(features), 1), rows)
    target = contract.columns[contract.target]
    rank = pd.Series(score).rank(pct=True).to_numpy()
    if contract.task == "regression":
        low, high = _bounds(target)
        if target.dtype == "int":
            values = [str(round(low + r * (high - low))) for r in rank]
        else:
            values = [f"{low + r * (high - low):.4f}" for r in rank]
    else:
        if target.dtype == "category":
            labels = list(target.categories)
        elif target.dtype == "bool":
            labels = ["false", "true"]
        else:
            low = int(target.min if target.min is not None else 0)
            high = int(target.max if target.max is not None else low + 1)
            labels = [str(i) for i in range(low, high + 1)]
        values = [labels[min(int(r * len(labels)), len(labels) - 1)] for r in rank]
    columns[contract.target] = pd.Series(values, dtype=object)
    return pd.DataFrame({name: columns[name] for name in contract.columns})


# --- whole project shapes ------------------------------------------------------------------

AWKWARD_NAMES = (
    "weight (kg)",
    "ratio a/b",
    "größe",
    "temp °C",
    "visits / week",
    "score (raw)",
    "café count",
    "plain_name",
    "depth",
    "zone",
    "flag on",
    "ÿear built",
)


# (task, target dtype, classes) of the targets a contract may declare, for property tests.
TARGET_KINDS = (
    ("classification", "category", 2),
    ("classification", "category", 3),
    ("classification", "category", 4),
    ("classification", "int", 2),
    ("classification", "int", 3),
    ("classification", "bool", 2),
    ("regression", "float", 0),
    ("regression", "int", 0),
)


@dataclass(frozen=True)
class Shape:
    """A generated project: its params as a mapping and a one-line description."""

    seed: int
    params: dict[str, Any]
    description: str
    slices: tuple[str, ...] = ()
    derived: dict[str, str] = field(default_factory=dict)


def random_shape(seed: int, *, task: str, target_dtype: str, classes: int = 2) -> Shape:
    """A project shape drawn from `seed` with the given task and target type.

    Every shape holds numeric features; the seed picks which of int, float, bool, category
    and date columns it also holds, which are nullable, whether it has an identifier and a
    personal column, slices and a derived feature, and awkward column names.
    """
    rng = np.random.default_rng(seed)
    names = list(rng.permutation(AWKWARD_NAMES))
    columns: dict[str, dict[str, Any]] = {}

    def take() -> str:
        return str(names.pop())

    kinds = ["float", "int", *rng.choice(["float", "int", "bool", "category"], size=3)]
    for kind in kinds:
        name = take()
        spec: dict[str, Any] = {"dtype": str(kind)}
        if kind == "float":
            low = float(rng.integers(-50, 50))
            spec.update(min=low, max=low + float(rng.integers(1, 500)))
        elif kind == "int":
            low = int(rng.integers(0, 20))
            spec.update(min=low, max=low + int(rng.integers(5, 90)))
        elif kind == "category":
            size = int(rng.integers(2, 5))
            spec.update(categories=[f"k{j} é/{j}" for j in range(size)])
            spec["on_unknown"] = str(rng.choice(["reject", "map_to_unknown"]))
        if rng.random() < 0.4:
            spec["nullable"] = True
        columns[name] = spec
    if rng.random() < 0.6:
        columns["record id"] = {"dtype": "string", "role": "identifier", "unique": True}
    if rng.random() < 0.6:
        columns["customer e-mail"] = {"dtype": "string", "role": "personal", "nullable": True}
    if rng.random() < 0.5:
        columns["observed on"] = {"dtype": "date", "role": "ignored"}
    target_name = take()
    target: dict[str, Any] = {"dtype": target_dtype, "role": "target"}
    if target_dtype == "category":
        target["categories"] = [f"class {chr(65 + j)}" for j in range(classes)]
    elif target_dtype in {"float", "int"} and task == "regression":
        target.update(min=0, max=1000)
    elif target_dtype == "int":
        target.update(min=0, max=classes - 1)
    columns[target_name] = target
    slice_candidates = [n for n, s in columns.items() if s["dtype"] in {"category", "bool"}]
    slices = tuple(slice_candidates[:1]) if slice_candidates and rng.random() < 0.7 else ()
    numeric = [n for n, s in columns.items() if s["dtype"] == "float" and s.get("role") is None]
    derived = {}
    if len(numeric) >= 1 and rng.random() < 0.6:
        derived = {"derived (x²)": f"`{numeric[0]}` * `{numeric[0]}`"}
    headline = (
        ["balanced_accuracy_score", "macro_f1_score", "log_loss"]
        if task == "classification"
        else ["r2_score", "mean_absolute_error", "root_mean_squared_error"]
    )
    estimator = str(
        rng.choice(
            ["random_forest", "hist_gradient_boosting", "logistic_regression"]
            if task == "classification"
            else ["random_forest", "hist_gradient_boosting", "ridge"]
        )
    )
    params: dict[str, Any] = {
        "seed": seed,
        "contract": {"task": task, "strict": True, "columns": columns},
        "validate": {"examples_per_failure": 5},
        "prepare": {"split": {"method": "random", "test_size": 0.25, "stratify": True}},
        "train": {"derived_features": derived, "estimator": {"name": estimator}},
        "evaluate": {
            "headline": headline,
            "bootstrap": {"n_resamples": 200},
            "slices": list(slices),
            "calibration_bins": 5,
        },
        "explain": {"max_rows": 40, "background_rows": 20},
        "gates": {
            "non_inferiority": {m: {"margin": 0.05} for m in headline if m.endswith("_score")},
        },
    }
    if estimator == "random_forest":
        params["train"]["estimator"]["n_estimators"] = 30
    if estimator == "hist_gradient_boosting":
        params["train"]["estimator"]["max_iter"] = 30
    kinds_text = ", ".join(f"{n!r}:{s['dtype']}" for n, s in columns.items() if n != target_name)
    description = (
        f"{task} target {target_name!r}:{target_dtype}"
        f"{f' ({classes} classes)' if task == 'classification' else ''}, {estimator}; "
        f"columns {kinds_text}; slices {list(slices)}; derived {list(derived)}"
    )
    return Shape(seed, params, description, slices, derived)
