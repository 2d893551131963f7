"""Behaviour of a model trained the way the pipeline trains it: on a table made from the
project's contract (any adopted table), and on the example data with the example's params."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from mlgitops.contract.check import check_table, feature_frame, target_series
from mlgitops.params import Params
from mlgitops.stages.prepare import clean, split
from mlgitops.stages.train import fit

# The example's penguins are well separated; its own params reach this on held-out rows.
EXAMPLE_MINIMUM_BALANCED_ACCURACY = 0.9


def _train(raw_text, params: Params):
    typed, report = check_table(raw_text, params.contract)
    assert report["valid"], f"the table does not satisfy its contract: {report['failures']}"
    frame = clean(typed, prepare=params.prepare)
    train, test = split(
        frame, contract=params.contract, split=params.prepare.split, seed=params.seed
    )
    model = fit(train, contract=params.contract, train=params.train, seed=params.seed)
    return model, test.reset_index(drop=True)


def _outputs(model, rows, params: Params) -> np.ndarray:
    if params.contract.task == "classification":
        return model.predict_proba(rows)
    return model.predict(rows)


@pytest.fixture(scope="module")
def trained(raw_text, params):
    return _train(raw_text, params)


@pytest.fixture(scope="module")
def example_trained(example_text, example_params):
    return _train(example_text, example_params)


def test_identifiers_and_free_text_do_not_change_predictions(trained, params):
    # Given the whole rows, identifiers and free text included, when those columns change,
    # then every output stays the same.
    model, test = trained
    changed = test.copy()
    for column in (*params.contract.identifiers, *params.contract.personal):
        changed[column] = changed[column].sample(frac=1, random_state=0).to_numpy()
    for column in params.contract.personal:
        changed[column] = "Free text that names a class and a person."
    np.testing.assert_array_equal(
        _outputs(model, test, params),
        _outputs(model, changed, params),
        err_msg="identifier or free-text columns influence the model",
    )


def test_missing_values_still_predict(trained, params):
    # Given rows whose nullable features are all missing, then the model still answers,
    # with probabilities that sum to one for a classifier.
    model, test = trained
    blank = feature_frame(test.head(3), params.contract).copy()
    nullable = [c for c in params.contract.features if params.contract.columns[c].nullable]
    blank[nullable] = np.nan
    outputs = _outputs(model, blank, params)
    assert np.isfinite(outputs).all(), "a prediction is not a number"
    if params.contract.task == "classification":
        np.testing.assert_allclose(outputs.sum(axis=1), 1.0)


def test_example_balanced_accuracy_on_held_out_rows(example_trained, example_params):
    model, test = example_trained
    contract = example_params.contract
    score = balanced_accuracy_score(
        target_series(test, contract), model.predict(feature_frame(test, contract))
    )
    assert score >= EXAMPLE_MINIMUM_BALANCED_ACCURACY, f"balanced accuracy {score:.3f} is too low"


def test_example_flipper_length_moves_towards_gentoo(example_trained, example_params):
    # Gentoo penguins have by far the longest flippers; a longer flipper must not make
    # Gentoo less likely, other things equal.
    model, test = example_trained
    gentoo = list(model.classes_).index("Gentoo penguin (Pygoscelis papua)")
    rows = feature_frame(test, example_params.contract).copy()
    short = model.predict_proba(rows.assign(**{"Flipper Length (mm)": 180.0}))[:, gentoo]
    long = model.predict_proba(rows.assign(**{"Flipper Length (mm)": 230.0}))[:, gentoo]
    assert (long >= short - 1e-9).all(), "Gentoo probability falls as flippers get longer"
    assert long.mean() > short.mean()
