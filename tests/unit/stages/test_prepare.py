"""prepare: cleaning and deterministic random or time-aware splits."""

from __future__ import annotations

import pandas as pd

from mlgitops.config import PrepareParams, SplitParams
from mlgitops.stages.prepare import clean, split


def test_random_split_is_deterministic_and_stratified(classification, seed):
    contract, frame = classification
    params = SplitParams(method="random", test_size=0.25, stratify=True)
    train_a, test_a = split(frame, contract=contract, split=params, seed=seed)
    _train_b, test_b = split(frame, contract=contract, split=params, seed=seed)
    pd.testing.assert_frame_equal(test_a, test_b, obj="same seed, same split")
    assert len(test_a) == 100
    assert len(train_a) == 300
    assert set(train_a.index).isdisjoint(test_a.index), "no row in both sets"
    overall = frame["y"].value_counts(normalize=True)
    in_test = test_a["y"].value_counts(normalize=True)
    assert (overall - in_test).abs().max() < 0.02, "class shares are preserved in the test set"
    _, other = split(frame, contract=contract, split=params, seed=seed + 1)
    assert not other.index.equals(test_a.index), "another seed gives another split"


def test_time_split_tests_on_the_latest_rows(classification, seed):
    contract, frame = classification
    shuffled = frame.sample(frac=1, random_state=seed)
    params = SplitParams(method="time", test_size=0.2, time_column="day")
    train, test = split(shuffled, contract=contract, split=params, seed=seed)
    assert len(test) == 80
    assert train["day"].max() < test["day"].min(), "every test row comes after every train row"


def test_regression_split_ignores_stratify(regression, seed):
    contract, frame = regression
    train, test = split(frame, contract=contract, split=SplitParams(), seed=seed)
    assert len(train) + len(test) == len(frame)


def test_clean_drops_duplicate_rows_only_when_asked(classification):
    _, frame = classification
    doubled = pd.concat([frame, frame.head(5)])
    assert len(clean(doubled, prepare=PrepareParams(drop_duplicate_rows=True))) == len(frame)
    kept = clean(doubled, prepare=PrepareParams(drop_duplicate_rows=False))
    assert len(kept) == len(doubled)
    assert kept.index.tolist() == list(range(len(doubled))), "index is reset"
