"""Whether a table can be split the way `prepare.split` asks, checked before scikit-learn tries."""

from __future__ import annotations

import math

import pandas as pd

from mlgitops.sections import ParamsError


class SplitError(ParamsError):
    """A stratified split the table's classes cannot give."""


def check_stratifiable(labels: pd.Series, *, test_size: float, target: str, fix: str) -> None:
    """Raise when a stratified split of `labels` would fail or leave a class out of a side.

    A stratified split needs two rows of every class (one for each side) and, on each side,
    at least one row per class: scikit-learn refuses otherwise, with a message about `y` that
    names neither the column nor the setting to change.

    Raises:
        SplitError: naming the target and how many classes are too small, then `fix`.
    """
    counts = labels.value_counts()
    single = int((counts < 2).sum())
    if single:
        raise SplitError(
            f"a stratified split needs at least 2 rows of every class of '{target}', but "
            f"{single} of its {len(counts)} classes {'has' if single == 1 else 'have'} only 1 row: "
            f"{fix}"
        )
    rows = len(labels)
    n_test = math.ceil(test_size * rows)
    n_train = rows - n_test
    if min(n_test, n_train) < len(counts):
        raise SplitError(
            f"a stratified split of {rows} rows with test_size {test_size} gives "
            f"{n_train} train and {n_test} test rows, fewer than the {len(counts)} classes of "
            f"'{target}': {fix}"
        )
