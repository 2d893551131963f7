"""`check_stratifiable` refuses exactly the stratified splits scikit-learn cannot make, with a
message that names the target column and what to change."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.model_selection import train_test_split

from mlgitops.split import SplitError, check_stratifiable


@given(
    counts=st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=12),
    test_size=st.floats(min_value=0.05, max_value=0.95),
    seed=st.integers(0, 2**16),
)
def test_refuses_exactly_what_scikit_learn_cannot_split(counts, test_size, seed):
    # Given any class sizes and test share, the check raises if and only if scikit-learn's
    # stratified split raises: it neither lets a crash through nor refuses a possible split.
    labels = pd.Series([c for c, n in enumerate(counts) for _ in range(n)], name="label")
    if len(labels) < 2:
        return
    try:
        train_test_split(labels, test_size=test_size, random_state=seed, stratify=labels)
        sklearn_error = False
    except ValueError:
        sklearn_error = True
    if not sklearn_error:
        check_stratifiable(labels, test_size=test_size, target="label", fix="FIX")
        return
    with pytest.raises(SplitError, match=r"'label'.*FIX$"):
        check_stratifiable(labels, test_size=test_size, target="label", fix="FIX")


def test_single_row_classes_are_counted_not_listed():
    labels = pd.Series(["a"] * 5 + ["b"] * 5 + ["secret-1", "secret-2"])
    with pytest.raises(SplitError, match="2 of its 4 classes have only 1 row") as caught:
        check_stratifiable(labels, test_size=0.2, target="y", fix="drop them")
    assert "secret" not in str(caught.value)


def test_one_single_row_class_is_named_in_the_singular():
    labels = pd.Series(["a"] * 5 + ["b"] * 5 + ["lonely"])
    with pytest.raises(SplitError, match="1 of its 3 classes has only 1 row"):
        check_stratifiable(labels, test_size=0.2, target="y", fix="drop it")
