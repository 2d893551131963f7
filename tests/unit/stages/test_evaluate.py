"""evaluate: metric values, bootstrap intervals, per class and per slice, plot tables."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from mlgitops.config import EvaluateParams, TrainParams
from mlgitops.metrics import Predictions
from mlgitops.stages.evaluate import (
    compute_metrics,
    confidence_interval,
    plot_tables,
    predict,
    slug,
)
from mlgitops.stages.train import fit


@pytest.fixture
def fitted(classification, seed):
    contract, frame = classification
    train = TrainParams.model_validate({"estimator": {"name": "logistic_regression"}})
    model = fit(frame.iloc[:250], contract=contract, train=train, seed=seed)
    return contract, frame.iloc[250:].reset_index(drop=True), model


def test_metrics_match_scikit_learn_and_name_direction(fitted, seed):
    contract, test, model = fitted
    predictions = predict(model, test, contract)
    params = EvaluateParams(headline=("balanced_accuracy_score", "log_loss"), slices=("group",))
    metrics = compute_metrics(test, predictions, contract=contract, evaluate=params, seed=seed)
    expected = balanced_accuracy_score(test["y"].astype(str), model.predict(test))
    assert metrics["balanced_accuracy_score"] == pytest.approx(expected, abs=1e-6)
    assert metrics["test_rows"] == len(test)
    numeric = [k for k, v in metrics.items() if isinstance(v, float)]
    assert all(k.endswith(("_score", "_error", "_loss")) for k in numeric), numeric
    for name in params.headline:
        interval = metrics["ci"][name]
        assert interval["low"] <= metrics[name] <= interval["high"], f"{name} inside its interval"
        assert interval["confidence"] == 0.95
    assert sum(c["rows"] for c in metrics["per_class"].values()) == len(test)
    slices = metrics["slices"]["group"]
    assert set(slices) == {"a", "b", "c", "(missing)"}, "missing values are a slice of their own"
    assert sum(s["rows"] for s in slices.values()) == len(test)


def test_bootstrap_interval_is_reproducible_and_narrows_with_rows(seed):
    rng = np.random.default_rng(seed)

    def noisy(rows: int) -> Predictions:
        truth = rng.choice(["a", "b"], size=rows)
        flip = rng.random(rows) < 0.2
        guess = np.where(flip, np.where(truth == "a", "b", "a"), truth)
        return Predictions(truth, guess, None, ("a", "b"))

    small, large = noisy(60), noisy(2000)
    options = {"n_resamples": 500, "confidence": 0.95, "seed": seed}
    first = confidence_interval("accuracy_score", small, **options)
    assert first == confidence_interval("accuracy_score", small, **options), "same seed, same CI"
    wide = first["high"] - first["low"]
    narrow_ci = confidence_interval("accuracy_score", large, **options)
    assert narrow_ci["high"] - narrow_ci["low"] < wide / 3, "more rows, tighter interval"
    assert narrow_ci["low"] < 0.8 < narrow_ci["high"], "the true accuracy (0.8) is covered"


def test_regression_metrics_and_plots(regression, seed):
    contract, frame = regression
    train = TrainParams.model_validate({"estimator": {"name": "ridge"}})
    model = fit(frame.iloc[:300], contract=contract, train=train, seed=seed)
    test = frame.iloc[300:].reset_index(drop=True)
    predictions = predict(model, test, contract)
    params = EvaluateParams(headline=("r2_score", "mean_absolute_error"))
    metrics = compute_metrics(test, predictions, contract=contract, evaluate=params, seed=seed)
    assert metrics["r2_score"] > 0.7
    assert "per_class" not in metrics
    tables = plot_tables(predictions, calibration_bins=5)
    assert set(tables) == {"residuals.csv", "calibration/target.csv"}
    residuals = tables["residuals.csv"]
    np.testing.assert_allclose(residuals["actual"] - residuals["predicted"], residuals["residual"])


def test_classification_plot_tables(fitted):
    contract, test, model = fitted
    tables = plot_tables(predict(model, test, contract), calibration_bins=5)
    assert len(tables["confusion.csv"]) == len(test), "one confusion row per test row"
    for kind in ("roc", "precision_recall", "calibration"):
        assert f"{kind}/yes.csv" in tables
        assert f"{kind}/no.csv" in tables
    roc = tables["roc/yes.csv"]
    assert roc["fpr"].is_monotonic_increasing
    assert roc["tpr"].iloc[-1] == 1.0


def test_slug_is_file_name_safe():
    assert slug("Adelie Penguin (Pygoscelis adeliae)") == "adelie_penguin_pygoscelis_adeliae"
    assert slug("???") == "class"
