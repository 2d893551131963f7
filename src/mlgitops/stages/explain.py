"""Stage `explain`: SHAP values on the test rows, as mean |SHAP| per original feature."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shap
from sklearn.base import is_classifier
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from mlgitops.config import ContractParams, ExplainParams, load_params
from mlgitops.contract import feature_frame, load_valid_table
from mlgitops.stages.common import load_model, run_stage, stage_parser, write_json

logger = logging.getLogger(__name__)

TREE_MODELS = (
    RandomForestClassifier,
    RandomForestRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
LINEAR_MODELS = (LogisticRegression, Ridge)


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
    if isinstance(estimator, TREE_MODELS):
        return shap.TreeExplainer(estimator)
    if isinstance(estimator, LINEAR_MODELS):
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
    np.add.at(grouped, (slice(None), owner_index, slice(None)), values)
    return grouped, names


def mean_abs_shap(
    model: Pipeline,
    frame: pd.DataFrame,
    *,
    contract: ContractParams,
    explain: ExplainParams,
    seed: int,
) -> pd.DataFrame:
    """Mean |SHAP| per original feature over (at most `max_rows`) rows, largest first."""
    features = feature_frame(frame, contract)
    rows = features.sample(n=min(explain.max_rows, len(features)), random_state=seed)
    background = features.sample(n=min(explain.background_rows, len(features)), random_state=seed)
    values, names = shap_by_feature(model, rows, background, seed=seed)
    importance = np.abs(values).mean(axis=(0, 2))
    table = pd.DataFrame({"feature": names, "mean_abs_shap": importance.round(6)})
    return table.sort_values(
        ["mean_abs_shap", "feature"], ascending=[False, True], ignore_index=True
    )


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", type=Path, required=True, help="the fitted pipeline")
    parser.add_argument("--test", type=Path, required=True, help="test rows (CSV)")
    parser.add_argument("--importance", type=Path, required=True, help="output: JSON")
    parser.add_argument("--plot", type=Path, required=True, help="output: plot data (CSV)")
    args = parser.parse_args(argv)

    def body() -> None:
        params = load_params(args.params)
        frame = load_valid_table(args.test, params.contract)
        model = load_model(args.model)
        table = mean_abs_shap(
            model, frame, contract=params.contract, explain=params.explain, seed=params.seed
        )
        write_json(
            args.importance,
            {
                "model": type(model[-1]).__name__,
                "rows_explained": min(params.explain.max_rows, len(frame)),
                "mean_abs_shap": dict(zip(table["feature"], table["mean_abs_shap"], strict=True)),
            },
        )
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.plot, index=False, lineterminator="\n")
        top = ", ".join(f"{f} ({v:.3f})" for f, v in table.head(3).itertuples(index=False))
        logger.info("explained %d rows; top features: %s", len(frame), top)

    return run_stage("explain", body)


if __name__ == "__main__":
    raise SystemExit(main())
