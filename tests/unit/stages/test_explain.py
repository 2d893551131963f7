"""explain: SHAP per original feature, one-hot columns folded back into their feature."""

from __future__ import annotations

import numpy as np
import pytest

from mlgitops.config import ExplainParams, TrainParams
from mlgitops.contract.check import feature_frame
from mlgitops.explain import encoded_feature_owners, shap_by_feature
from mlgitops.stages.explain import mean_abs_shap
from mlgitops.stages.train import fit


def trained(contract, frame, name, seed, **derived):
    params = TrainParams.model_validate({"estimator": {"name": name}, "derived_features": derived})
    return fit(frame, contract=contract, train=params, seed=seed)


def test_owners_fold_one_hot_columns(classification, seed):
    contract, frame = classification
    model = trained(contract, frame, "logistic_regression", seed, ratio="x1 * 2")
    owners = encoded_feature_owners(model.named_steps["preprocess"])
    assert owners.count("group") == 4, "a, b, c and (missing) all belong to 'group'"
    assert owners.count("x1") == 1
    assert owners.count("ratio") == 1


@pytest.mark.parametrize("name", ["random_forest", "hist_gradient_boosting", "ridge"])
def test_shap_is_additive_per_original_feature(regression, seed, name):
    # Given a regressor, the grouped SHAP values plus the base value give the prediction.
    contract, frame = regression
    model = trained(contract, frame, name, seed)
    features = feature_frame(frame.head(20), contract)
    values, names = shap_by_feature(model, features, feature_frame(frame, contract), seed=seed)
    assert names == ["x1", "x2", "group"], names
    assert values.shape == (20, 3, 1)
    spread = values[:, :, 0].sum(axis=1)
    predictions = model.predict(features)
    np.testing.assert_allclose(
        spread - spread.mean(),
        predictions - predictions.mean(),
        atol=1e-6,
        err_msg="grouping must keep SHAP additivity",
    )


@pytest.mark.parametrize("name", ["random_forest", "logistic_regression"])
def test_importance_ranks_the_strongest_feature_first(classification, seed, name):
    contract, frame = classification
    model = trained(contract, frame, name, seed)
    table = mean_abs_shap(
        model, frame, contract=contract, explain=ExplainParams(max_rows=150), seed=seed
    )
    assert table["feature"].tolist()[0] == "x1", f"x1 drives y most: {table}"
    assert set(table["feature"]) == {"x1", "x2", "group"}, "only original features appear"
    assert (table["mean_abs_shap"] >= 0).all()
