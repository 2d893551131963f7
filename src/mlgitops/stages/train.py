"""Stage `train`: fit one scikit-learn Pipeline (derivation, preprocessing, estimator)."""

from __future__ import annotations

import logging
from pathlib import Path

import joblib
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from mlgitops.config import (
    TrainParams,
    load_pipeline_params,
)
from mlgitops.contract import ContractParams
from mlgitops.contract.check import feature_frame, load_valid_table, target_series
from mlgitops.estimators import build_estimator
from mlgitops.features import DerivedFeatures, as_float, as_text
from mlgitops.stages.common import run_stage, stage_parser

logger = logging.getLogger(__name__)


def build_pipeline(contract: ContractParams, train: TrainParams, *, seed: int) -> Pipeline:
    """Derived features, then imputation, scaling and one-hot encoding, then the estimator.

    Everything a prediction needs lives in this one object, so the service cannot preprocess
    differently from training.
    """
    numeric = [*contract.numeric_features, *train.derived_features]
    categorical = list(contract.categorical_features)
    transformers = []
    if numeric:
        transformers.append(
            (
                "numeric",
                make_pipeline(
                    FunctionTransformer(as_float, feature_names_out="one-to-one"),
                    SimpleImputer(strategy="median"),
                    StandardScaler(),
                ),
                numeric,
            )
        )
    if categorical:
        transformers.append(
            (
                "categorical",
                make_pipeline(
                    FunctionTransformer(as_text, feature_names_out="one-to-one"),
                    SimpleImputer(strategy="constant", fill_value="(missing)"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                categorical,
            )
        )
    preprocess = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return Pipeline(
        [
            ("derive", DerivedFeatures(dict(train.derived_features))),
            ("preprocess", preprocess),
            ("estimator", build_estimator(train.estimator, task=contract.task, seed=seed)),
        ]
    )


def fit(
    frame: pd.DataFrame, *, contract: ContractParams, train: TrainParams, seed: int
) -> Pipeline:
    """Fit the pipeline on the feature columns of `frame` against its target column."""
    pipeline = build_pipeline(contract, train, seed=seed)
    pipeline.fit(feature_frame(frame, contract), target_series(frame, contract))
    return pipeline


def main(argv: list[str] | None = None) -> int:
    """Run the stage: fit the pipeline on the training rows; 0 on success, 1 on bad input."""
    parser = stage_parser(__doc__)
    parser.add_argument("--train", type=Path, required=True, help="training rows (CSV)")
    parser.add_argument("--model", type=Path, required=True, help="output: the fitted pipeline")
    args = parser.parse_args(argv)

    def body() -> None:
        params = load_pipeline_params(args.params)
        frame = load_valid_table(args.train, params.contract)
        model = fit(frame, contract=params.contract, train=params.train, seed=params.seed)
        args.model.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, args.model)
        logger.info(
            "trained %s on %d rows x %d features -> %s",
            params.train.estimator.name,
            len(frame),
            len(params.contract.features),
            args.model,
        )

    return run_stage("train", body)


if __name__ == "__main__":
    raise SystemExit(main())
