"""Behaviour of the model trained on the default data, the way the pipeline trains it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from mlgitops.contract import check_table, feature_frame, target_series
from mlgitops.stages.prepare import clean, split
from mlgitops.stages.train import fit

MINIMUM_BALANCED_ACCURACY = 0.9


@pytest.fixture(scope="module")
def trained(raw_text, params):
    typed, report = check_table(raw_text, params.contract)
    assert report["valid"]
    frame = clean(typed, prepare=params.prepare)
    train, test = split(
        frame, contract=params.contract, split=params.prepare.split, seed=params.seed
    )
    model = fit(train, contract=params.contract, train=params.train, seed=params.seed)
    return model, test.reset_index(drop=True)


def test_balanced_accuracy_on_held_out_rows(trained, params):
    model, test = trained
    score = balanced_accuracy_score(
        target_series(test, params.contract), model.predict(feature_frame(test, params.contract))
    )
    assert score >= MINIMUM_BALANCED_ACCURACY, f"balanced accuracy {score:.3f} is too low"


def test_identifiers_and_free_text_do_not_change_predictions(trained, params):
    # Given the whole rows, identifiers and comments included, when those columns change,
    # then every probability stays the same.
    model, test = trained
    changed = test.copy()
    for column in (*params.contract.identifiers, *params.contract.personal):
        changed[column] = changed[column].sample(frac=1, random_state=0).to_numpy()
    changed["Comments"] = "Bird was clearly a Gentoo penguin."
    np.testing.assert_array_equal(
        model.predict_proba(test),
        model.predict_proba(changed),
        err_msg="identifier or free-text columns influence the model",
    )


def test_missing_measurements_still_predict(trained, params):
    model, test = trained
    blank = feature_frame(test.head(3), params.contract).copy()
    blank[list(params.contract.numeric_features)] = np.nan
    proba = model.predict_proba(blank)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_flipper_length_moves_the_prediction_towards_gentoo(trained, params):
    # Gentoo penguins have by far the longest flippers; a longer flipper must not make
    # Gentoo less likely, other things equal.
    model, test = trained
    gentoo = list(model.classes_).index("Gentoo penguin (Pygoscelis papua)")
    rows = feature_frame(test, params.contract).copy()
    short = model.predict_proba(rows.assign(**{"Flipper Length (mm)": 180.0}))[:, gentoo]
    long = model.predict_proba(rows.assign(**{"Flipper Length (mm)": 230.0}))[:, gentoo]
    assert (long >= short - 1e-9).all(), "Gentoo probability falls as flippers get longer"
    assert long.mean() > short.mean()
