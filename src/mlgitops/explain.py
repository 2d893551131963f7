"""Explanations: SHAP values of a fitted pipeline, summed per original feature."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import shap
from sklearn.base import is_classifier
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from mlgitops.estimators import explainer_kind


def encoded_feature_owners(preprocess: ColumnTransformer) -> list[str]:
    """For each column the preprocessing outputs, the original feature it was encoded from."""
    owners: list[str] = []
    for name, transformer, columns in preprocess.transformers_:
        if name == "remainder" or transformer == "drop":
            continue
        last = transformer[-1] if isinstance(transformer, Pipeline) else transformer
        if isinstance(last, OneHotEncoder):
            widths = [len(categories) for categories in last.categories_]
        else:
            widths = [1] * len(columns)
        output = preprocess.output_indices_[name]
        if sum(widths) != output.stop - output.start:
            raise ValueError(f"cannot map the outputs of transformer '{name}' to its inputs")
        for column, width in zip(columns, widths, strict=True):
            owners.extend([column] * width)
    return owners


def _explainer(estimator: Any, background: np.ndarray, *, seed: int) -> shap.Explainer:
    kind = explainer_kind(estimator)
    if kind == "tree":
        return shap.TreeExplainer(estimator)
    if kind == "linear":
        return shap.LinearExplainer(estimator, background)
    output = estimator.predict_proba if hasattr(estimator, "predict_proba") else estimator.predict
    return shap.PermutationExplainer(output, background, seed=seed)


def shap_by_feature(
    model: Pipeline, features: pd.DataFrame, background: pd.DataFrame, *, seed: int
) -> tuple[np.ndarray, list[str]]:
    """SHAP values summed over each original feature's encoded columns.

    Returns:
        An array of rows x original features x outputs, and the feature names. A classifier
        has one output per class, in the order of `classes_`; a regressor has one.
    """
    encode = model[:-1]
    estimator = model[-1]
    encoded = np.asarray(encode.transform(features), dtype="float64")
    encoded_background = np.asarray(encode.transform(background), dtype="float64")
    explanation = _explainer(estimator, encoded_background, seed=seed)(encoded)
    values = np.asarray(explanation.values, dtype="float64")
    if values.ndim == 2:
        values = values[:, :, np.newaxis]
    if is_classifier(estimator) and len(estimator.classes_) == 2 and values.shape[2] == 1:
        # A binary logistic regression or gradient boosting explains one log-odds, that of
        # `classes_[1]`; the first class's log-odds is its negation, so each class gets its own
        # contributions, additive in its own log-odds.
        values = np.concatenate([-values, values], axis=2)
    owners = encoded_feature_owners(model.named_steps["preprocess"])
    names = list(dict.fromkeys(owners))
    owner_index = np.array([names.index(owner) for owner in owners])
    grouped = np.zeros((values.shape[0], len(names), values.shape[2]))
    # Additivity: an original feature's contribution is the sum of its encoded columns'.
    np.add.at(grouped, (slice(None), owner_index, slice(None)), values)  # type: ignore[arg-type]
    return grouped, names
