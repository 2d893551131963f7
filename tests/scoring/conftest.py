"""Fixtures of the scoring tier: the pinned model, and generated inputs with injected bad rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from scoring_inputs import PARTITIONS, ROWS, Injected, inject_bad_rows

from mlgitops.params import Params
from mlgitops.scoring.model import PinnedModel, load_pinned_model


@pytest.fixture(scope="session")
def pinned(trained_project: Path, params: Params) -> PinnedModel:
    """The trained project's model, loaded as `mlgitops score` loads it."""
    return load_pinned_model(trained_project, params.contract)


@pytest.fixture(scope="session")
def injected(params: Params, seed: int) -> Injected:
    """A table generated from the project's contract, with injected bad rows."""
    from tables import table_from_contract

    table = table_from_contract(params.contract, rows=ROWS, seed=seed)
    return inject_bad_rows(table, params.contract, seed=seed)


@pytest.fixture(scope="session")
def input_csv(injected: Injected, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scoring-input") / "rows.csv"
    injected.table.to_csv(path, index=False, lineterminator="\n")
    return path


@pytest.fixture(scope="session")
def partition_bytes(input_csv: Path) -> int:
    """A CSV block size that cuts the input into about PARTITIONS partitions."""
    return input_csv.stat().st_size // PARTITIONS + 1
