"""train: one Pipeline per estimator and task, preprocessing inside, derived features."""

from __future__ import annotations

import numpy as np
import pytest

from mlgitops.config import TrainParams
from mlgitops.contract.check import feature_frame
from mlgitops.stages.train import build_pipeline, fit

CLASSIFIERS = ["logistic_regression", "random_forest", "hist_gradient_boosting"]
REGRESSORS = ["ridge", "random_forest", "hist_gradient_boosting"]


def train_params(name: str, **derived: str) -> TrainParams:
    return TrainParams.model_validate({"estimator": {"name": name}, "derived_features": derived})


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_each_classifier_learns_the_signal(classification, seed, name):
    contract, frame = classification
    model = fit(frame.iloc[:300], contract=contract, train=train_params(name), seed=seed)
    accuracy = model.predict(feature_frame(frame.iloc[300:], contract)) == frame["y"].iloc[300:]
    assert accuracy.mean() > 0.75, f"{name} should beat chance clearly, got {accuracy.mean():.2f}"
    assert set(model.classes_) == {"no", "yes"}


@pytest.mark.parametrize("name", REGRESSORS)
def test_each_regressor_learns_the_signal(regression, seed, name):
    contract, frame = regression
    model = fit(frame.iloc[:300], contract=contract, train=train_params(name), seed=seed)
    predicted = model.predict(feature_frame(frame.iloc[300:], contract))
    correlation = np.corrcoef(predicted, frame["y"].iloc[300:])[0, 1]
    assert correlation > 0.8, f"{name} predictions should track the target, got r={correlation:.2f}"


def test_same_seed_same_model(classification, seed):
    contract, frame = classification
    params = train_params("random_forest")
    a = fit(frame, contract=contract, train=params, seed=seed)
    b = fit(frame, contract=contract, train=params, seed=seed)
    features = feature_frame(frame, contract)
    np.testing.assert_array_equal(a.predict_proba(features), b.predict_proba(features))


def test_pipeline_uses_only_feature_columns(classification, seed):
    contract, frame = classification
    model = fit(frame, contract=contract, train=train_params("random_forest"), seed=seed)
    used = set(model.named_steps["preprocess"].feature_names_in_)
    assert used == {"x1", "x2", "group"}, f"identifier, personal and ignored columns leak: {used}"


def test_derived_features_are_part_of_the_model(classification, seed):
    contract, frame = classification
    params = train_params("logistic_regression", ratio="x1 / (x2 + 1)")
    model = fit(frame, contract=contract, train=params, seed=seed)
    encoded = model.named_steps["preprocess"].get_feature_names_out()
    assert "ratio" in encoded, f"the derived feature is computed inside the model: {encoded}"


def test_bad_derived_expression_names_the_feature(classification, seed):
    contract, frame = classification
    params = train_params("logistic_regression", broken="`no such column` * 2")
    with pytest.raises(ValueError, match="derived feature 'broken'"):
        fit(frame, contract=contract, train=params, seed=seed)


def test_unseen_category_and_missing_values_still_predict(classification, seed):
    contract, frame = classification
    model = build_pipeline(contract, train_params("random_forest"), seed=seed)
    model.fit(feature_frame(frame, contract), frame["y"])
    odd = feature_frame(frame.head(2), contract).copy()
    odd["group"] = ["z", None]
    odd["x1"] = np.nan
    assert len(model.predict(odd)) == 2, "unknown categories map to 'unknown', NaNs are imputed"
