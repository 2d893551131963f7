"""Fixtures of the scoring tier: the pinned model, and generated inputs with injected bad rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlgitops.contract import NUMERIC_DTYPES, ColumnSpec, ContractParams
from mlgitops.params import Params
from mlgitops.scoring.model import PinnedModel, load_pinned_model

ROWS = 1_200
BAD_SHARE = 0.05
# The input is read in about this many partitions, however wide the adopted table is.
PARTITIONS = 4


@pytest.fixture(scope="session")
def pinned(trained_project: Path, params: Params) -> PinnedModel:
    """The trained project's model, loaded as `mlgitops score` loads it."""
    return load_pinned_model(trained_project, params.contract)


def refused_value(spec: ColumnSpec) -> str | None:
    """A text the contract refuses in a request for this feature, or None when it has none."""
    if spec.dtype in NUMERIC_DTYPES:
        return "not a number"
    if spec.dtype == "bool":
        return "perhaps"
    if spec.on_unknown == "reject":
        return "no such category"
    return None if spec.nullable else ""  # an empty cell reads as missing


@dataclass(frozen=True)
class Injected:
    """A generated table as text, and the positions and columns of the rows made invalid."""

    table: pd.DataFrame
    bad_rows: dict[int, str]  # position -> the column made invalid


def inject_bad_rows(table: pd.DataFrame, contract: ContractParams, *, seed: int) -> Injected:
    """Make about BAD_SHARE of the rows invalid, each in one feature the contract can refuse."""
    rng = np.random.default_rng(seed)
    refusable = {
        name: value
        for name in contract.features
        if (value := refused_value(contract.columns[name])) is not None
    }
    table = table.copy()
    bad: dict[int, str] = {}
    if refusable:
        names = sorted(refusable)
        count = max(1, int(len(table) * BAD_SHARE))
        for position in rng.choice(len(table), size=count, replace=False):
            name = names[int(rng.integers(len(names)))]
            table.iloc[int(position), table.columns.get_loc(name)] = refusable[name] or np.nan
            bad[int(position)] = name
    return Injected(table, bad)


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


def part_bytes(folder: Path) -> dict[str, bytes]:
    """Every data file of an output, by path relative to it (the summary left out)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.parquet"))
    }
