"""Fixtures of the monitor tier: training rows, held-out rows, and prediction logs written
in the service's format (JSON lines under `<dir>/mlgitops_predictions/data/`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
import pytest
from prediction_logs import log_record

from mlgitops.monitor.traffic import sample_records
from mlgitops.params import Params


@pytest.fixture(autouse=True)
def _no_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DO_NOT_TRACK", "1")


@pytest.fixture(scope="session")
def artifacts(trained_project: Path) -> Path:
    """Artifacts that match dvc.lock: the workspace's, or a fresh copy's after `dvc repro`."""
    return trained_project / "artifacts"


@pytest.fixture(scope="session")
def reference(artifacts: Path, params: Params) -> pd.DataFrame:
    from mlgitops.contract.check import load_valid_table

    return load_valid_table(artifacts / "train.csv", params.contract)


@pytest.fixture(scope="session")
def held_out(artifacts: Path) -> pd.DataFrame:
    from mlgitops.contract.check import read_table

    return read_table(artifacts / "test.csv")


@pytest.fixture(scope="session")
def model(artifacts: Path) -> Any:
    return joblib.load(artifacts / "model.joblib")


@pytest.fixture(scope="session")
def traffic(
    held_out: pd.DataFrame, model: Any, params: Params
) -> Callable[..., list[dict[str, Any]]]:
    """Log records of `count` held-out rows shifted by `shift` std, predicted by the model."""

    def make(*, seed: int, shift: float = 0.0, count: int = 150) -> list[dict[str, Any]]:
        records = sample_records(held_out, params.contract, count=count, shift=shift, seed=seed)
        frame = pd.DataFrame(records).reindex(columns=list(params.contract.features))
        for name in params.contract.numeric_features:
            frame[name] = pd.to_numeric(frame[name])
        predictions = model.predict(frame)
        return [log_record(r, str(p)) for r, p in zip(records, predictions, strict=True)]

    return make


# Raised inside Evidently and the web framework it imports, not by this project; an
# all-missing feature makes Evidently divide by zero on the way to its (skipped) drift test.
THIRD_PARTY_WARNINGS = (
    "ignore::DeprecationWarning:litestar.*",
    "ignore::DeprecationWarning:evidently.*",
    "ignore:invalid value encountered in scalar divide:RuntimeWarning:evidently.*",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Silence third-party warnings for this tier's tests only."""
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            for rule in THIRD_PARTY_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(rule))
