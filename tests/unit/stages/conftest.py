"""Small synthetic tables shaped like a contract, for the stages' pure functions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlgitops.contract import ContractParams


def make_contract(task: str) -> ContractParams:
    target = (
        {"dtype": "category", "role": "target", "categories": ["no", "yes"]}
        if task == "classification"
        else {"dtype": "float", "role": "target"}
    )
    return ContractParams.model_validate(
        {
            "task": task,
            "columns": {
                "id": {"dtype": "string", "role": "identifier"},
                "x1": {"dtype": "float", "nullable": True},
                "x2": {"dtype": "int"},
                "group": {"dtype": "category", "categories": ["a", "b", "c"], "nullable": True},
                "note": {"dtype": "string", "role": "personal", "nullable": True},
                "day": {"dtype": "date", "role": "ignored"},
                "y": target,
            },
        }
    )


def make_frame(task: str, rows: int, seed: int) -> pd.DataFrame:
    """A typed frame where y depends on x1, x2 and group, with some missing values."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=rows)
    x2 = rng.integers(0, 10, size=rows)
    group = rng.choice(["a", "b", "c"], size=rows)
    signal = 2 * x1 + 0.3 * x2 + np.where(group == "a", 1.5, 0) + rng.normal(scale=0.5, size=rows)
    y = np.where(signal > 1.4, "yes", "no") if task == "classification" else signal
    frame = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(rows)],
            "x1": x1,
            "x2": pd.array(x2, dtype="Int64"),
            "group": group,
            "note": None,
            "day": pd.date_range("2024-01-01", periods=rows, freq="h"),
            "y": y,
        }
    )
    frame.loc[frame.index[::17], "x1"] = np.nan
    frame.loc[frame.index[::23], "group"] = None
    return frame


@pytest.fixture
def classification(seed):
    return make_contract("classification"), make_frame("classification", 400, seed)


@pytest.fixture
def regression(seed):
    return make_contract("regression"), make_frame("regression", 400, seed)
