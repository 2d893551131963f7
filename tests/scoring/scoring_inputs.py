"""Generated scoring inputs: a table with injected bad rows, and the bytes of an output."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mlgitops.contract import NUMERIC_DTYPES, ColumnSpec, ContractParams

ROWS = 1_200
BAD_SHARE = 0.05
# The input is read in about this many partitions, however wide the adopted table is.
PARTITIONS = 4


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


def part_bytes(folder: Path) -> dict[str, bytes]:
    """Every data file of an output, by path relative to it (the summary left out)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.parquet"))
    }
