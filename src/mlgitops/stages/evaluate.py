"""Stage `evaluate`: metrics with bootstrap intervals, per class and per slice, and plot data."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import bootstrap
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve
from sklearn.pipeline import Pipeline

from mlgitops.config import EvaluateParams, load_pipeline_params
from mlgitops.contract import ContractParams
from mlgitops.contract.check import feature_frame, load_valid_table, target_series
from mlgitops.metrics import METRICS_BY_TASK, Predictions, clean, safe_score, score_all
from mlgitops.stages.common import load_model, run_stage, stage_parser, write_json

logger = logging.getLogger(__name__)

MISSING_SLICE = "(missing)"


def predict(model: Pipeline, frame: pd.DataFrame, contract: ContractParams) -> Predictions:
    """Run the model on the feature columns of `frame`."""
    features = feature_frame(frame, contract)
    y_true = target_series(frame, contract).to_numpy()
    y_pred = model.predict(features)
    if contract.task == "classification":
        classes = tuple(str(c) for c in model.classes_)
        return Predictions(y_true, y_pred.astype(str), model.predict_proba(features), classes)
    return Predictions(y_true.astype(float), y_pred.astype(float))


def confidence_interval(
    metric: str, predictions: Predictions, *, n_resamples: int, confidence: float, seed: int
) -> dict[str, float | None]:
    """Percentile bootstrap interval of one metric over the rows."""
    rows = np.arange(len(predictions.y_true))
    encoded = predictions.encoded()
    result = bootstrap(
        (rows,),
        lambda sample: safe_score(metric, encoded.take(sample)),
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=False,
        rng=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return {"low": clean(low), "high": clean(high), "confidence": confidence}


def per_class(predictions: Predictions) -> dict[str, dict[str, Any]]:
    """Precision, recall and F1 for each class, with its number of rows."""
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        predictions.y_true, predictions.y_pred, labels=list(predictions.classes), zero_division=0
    )
    return {
        label: {
            "precision_score": clean(precision[i]),
            "recall_score": clean(recall[i]),
            "f1_score": clean(f1[i]),
            "rows": int(support[i]),
        }
        for i, label in enumerate(predictions.classes)
    }


def per_slice(
    frame: pd.DataFrame,
    predictions: Predictions,
    *,
    slices: tuple[str, ...],
    names: tuple[str, ...],
) -> dict[str, dict[str, dict[str, Any]]]:
    """The metrics on each value of each slice column."""
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for column in slices:
        labelled = frame[column].astype(object).where(frame[column].notna(), MISSING_SLICE)
        values = labelled.astype(str).to_numpy()
        result[column] = {}
        for value in sorted(set(values)):
            rows = np.flatnonzero(values == value)
            result[column][value] = {
                **score_all(predictions.take(rows), names),
                "rows": len(rows),
            }
    return result


def compute_metrics(
    frame: pd.DataFrame,
    predictions: Predictions,
    *,
    contract: ContractParams,
    evaluate: EvaluateParams,
    seed: int,
) -> dict[str, Any]:
    """Everything that goes into `metrics.json`."""
    names = METRICS_BY_TASK[contract.task]
    result: dict[str, Any] = {**score_all(predictions, names), "test_rows": len(frame)}
    result["ci"] = {
        metric: confidence_interval(
            metric,
            predictions,
            n_resamples=evaluate.bootstrap.n_resamples,
            confidence=evaluate.bootstrap.confidence,
            seed=seed,
        )
        for metric in evaluate.headline
    }
    if contract.task == "classification":
        result["per_class"] = per_class(predictions)
    result["slices"] = per_slice(frame, predictions, slices=evaluate.slices, names=names)
    return result


def slug(label: str) -> str:
    """A file-name-safe form of a class label."""
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_") or "class"


def plot_tables(predictions: Predictions, *, calibration_bins: int) -> dict[str, pd.DataFrame]:
    """Plot data by relative path.

    Confusion, ROC, precision-recall and calibration curves for classification; residuals and
    calibration for regression.
    """
    tables: dict[str, pd.DataFrame] = {}
    if predictions.proba is None:
        residual = predictions.y_true - predictions.y_pred
        tables["residuals.csv"] = pd.DataFrame(
            {
                "actual": predictions.y_true,
                "predicted": predictions.y_pred,
                "residual": residual,
            }
        )
        bins = pd.qcut(predictions.y_pred, q=calibration_bins, duplicates="drop")
        grouped = pd.DataFrame({"p": predictions.y_pred, "a": predictions.y_true, "bin": bins})
        grouped = grouped.groupby("bin", observed=True).mean()
        tables["calibration/target.csv"] = pd.DataFrame(
            {
                "mean_predicted": grouped["p"].to_numpy(),
                "observed": grouped["a"].to_numpy(),
            }
        )
        return tables
    tables["confusion.csv"] = pd.DataFrame(
        {
            "actual": predictions.y_true,
            "predicted": predictions.y_pred,
        }
    )
    for i, label in enumerate(predictions.classes):
        positive = predictions.y_true == label
        if positive.all() or not positive.any():
            continue  # a curve needs both classes among the test rows
        score = predictions.proba[:, i]
        fpr, tpr, _ = skm.roc_curve(positive, score)
        tables[f"roc/{slug(label)}.csv"] = pd.DataFrame({"fpr": fpr, "tpr": tpr})
        precision, recall, _ = skm.precision_recall_curve(positive, score)
        tables[f"precision_recall/{slug(label)}.csv"] = pd.DataFrame(
            {"recall": recall, "precision": precision}
        )
        fraction, mean_predicted = calibration_curve(
            positive, score, n_bins=calibration_bins, strategy="uniform"
        )
        tables[f"calibration/{slug(label)}.csv"] = pd.DataFrame(
            {"mean_predicted": mean_predicted, "observed": fraction}
        )
    return tables


def write_plots(tables: dict[str, pd.DataFrame], directory: Path) -> None:
    """Write each plot table as CSV under `directory`, rounded to 6 places."""
    for relative, table in tables.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        table.round(6).to_csv(path, index=False, lineterminator="\n")


def main(argv: list[str] | None = None) -> int:
    """Run the stage: score the model on the test rows; 0 on success, 1 on bad input."""
    parser = stage_parser(__doc__)
    parser.add_argument("--model", type=Path, required=True, help="the fitted pipeline")
    parser.add_argument("--test", type=Path, required=True, help="test rows (CSV)")
    parser.add_argument("--metrics", type=Path, required=True, help="output: metrics JSON")
    parser.add_argument("--plots", type=Path, required=True, help="output: plot data directory")
    args = parser.parse_args(argv)

    def body() -> None:
        params = load_pipeline_params(args.params)
        frame = load_valid_table(args.test, params.contract)
        predictions = predict(load_model(args.model), frame, params.contract)
        result = compute_metrics(
            frame, predictions, contract=params.contract, evaluate=params.evaluate, seed=params.seed
        )
        write_json(args.metrics, result)
        write_plots(
            plot_tables(predictions, calibration_bins=params.evaluate.calibration_bins), args.plots
        )
        headline = ", ".join(f"{m}={result[m]}" for m in params.evaluate.headline)
        logger.info("evaluated on %d rows: %s -> %s", len(frame), headline, args.metrics)

    return run_stage("evaluate", body)


if __name__ == "__main__":
    raise SystemExit(main())
