"""The metric registry: each metric's name, the tasks it scores and its scorer, in one table.

Names follow scikit-learn: `*_score` is better when higher, `*_error` and `*_loss` are better
when lower, so a metric's direction is read from its name (`direction`), for registered
metrics and for the per-class figures of `metrics.json` alike.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Predictions:
    """Truth and model output for a set of rows, aligned by position."""

    y_true: np.ndarray
    y_pred: np.ndarray
    proba: np.ndarray | None = None  # classification only: rows x classes
    classes: tuple[Any, ...] = ()  # labels, or their indices once encoded

    def encoded(self) -> Predictions:
        """The same predictions with labels as class indices.

        Metrics on integers are much faster, which matters for thousands of bootstrap
        resamples. Unknown labels become -1.
        """
        if self.proba is None:
            return self
        index = {label: i for i, label in enumerate(self.classes)}

        def codes(labels: np.ndarray) -> np.ndarray:
            return np.fromiter((index.get(label, -1) for label in labels), int, len(labels))

        return Predictions(
            codes(self.y_true),
            codes(self.y_pred),
            self.proba,
            tuple(range(len(self.classes))),
        )

    def take(self, rows: np.ndarray) -> Predictions:
        """The predictions of the given row positions."""
        return Predictions(
            self.y_true[rows],
            self.y_pred[rows],
            None if self.proba is None else self.proba[rows],
            self.classes,
        )


Scorer = Callable[[Predictions], float]


def direction(metric: str) -> int:
    """+1 when higher is better (`*_score`), -1 when lower is (`*_error`, `*_loss`), else 0.

    Args:
        metric: a metric name, or a dotted key ending in one (`slices.Island.Dream.log_loss`).
    """
    name = metric.rsplit(".", 1)[-1]
    if name.endswith("_score"):
        return 1
    if name.endswith(("_error", "_loss")):
        return -1
    return 0


@dataclass(frozen=True)
class Metric:
    """One registered metric: the tasks it scores and how."""

    name: str
    tasks: frozenset[str]
    scorer: Scorer

    @property
    def direction(self) -> int:
        """+1 when higher is better, -1 when lower is: from the name, as every metric's."""
        return direction(self.name)


# scikit-learn is imported when a metric is scored, not when the registry is read: params
# validation needs only the names.
def _accuracy(p: Predictions) -> float:
    from sklearn import metrics as skm

    return float(skm.accuracy_score(p.y_true, p.y_pred))


def _balanced_accuracy(p: Predictions) -> float:
    from sklearn import metrics as skm

    return float(skm.balanced_accuracy_score(p.y_true, p.y_pred))


def _macro_f1(p: Predictions) -> float:
    from sklearn import metrics as skm

    return float(skm.f1_score(p.y_true, p.y_pred, average="macro", zero_division=0))


def _roc_auc(p: Predictions) -> float:
    from sklearn import metrics as skm

    if p.proba is None:
        raise TypeError("roc_auc_ovr_score needs class probabilities")
    if len(p.classes) == 2:
        return float(skm.roc_auc_score(p.y_true == p.classes[1], p.proba[:, 1]))
    return float(skm.roc_auc_score(p.y_true, p.proba, multi_class="ovr", labels=list(p.classes)))


def _log_loss(p: Predictions) -> float:
    from sklearn import metrics as skm

    return float(skm.log_loss(p.y_true, p.proba, labels=list(p.classes)))


def _r2(p: Predictions) -> float:
    from sklearn import metrics as skm

    return float(skm.r2_score(p.y_true, p.y_pred))


def _mean_absolute_error(p: Predictions) -> float:
    from sklearn import metrics as skm

    return float(skm.mean_absolute_error(p.y_true, p.y_pred))


def _root_mean_squared_error(p: Predictions) -> float:
    from sklearn import metrics as skm

    return float(skm.root_mean_squared_error(p.y_true, p.y_pred))


_CLASSIFICATION = frozenset({"classification"})
_REGRESSION = frozenset({"regression"})

METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("accuracy_score", _CLASSIFICATION, _accuracy),
        Metric("balanced_accuracy_score", _CLASSIFICATION, _balanced_accuracy),
        Metric("macro_f1_score", _CLASSIFICATION, _macro_f1),
        Metric("roc_auc_ovr_score", _CLASSIFICATION, _roc_auc),
        Metric("log_loss", _CLASSIFICATION, _log_loss),
        Metric("r2_score", _REGRESSION, _r2),
        Metric("mean_absolute_error", _REGRESSION, _mean_absolute_error),
        Metric("root_mean_squared_error", _REGRESSION, _root_mean_squared_error),
    )
}

# The metrics of each task, in registry order: what `metrics.json` holds for that task.
METRICS_BY_TASK: dict[str, tuple[str, ...]] = {
    task: tuple(name for name, metric in METRICS.items() if task in metric.tasks)
    for task in ("classification", "regression")
}


def safe_score(metric: str, predictions: Predictions) -> float:
    """A metric, or NaN where it is undefined on these rows (one class only, a single row).

    Raises:
        KeyError: when `metric` is not registered.
    """
    from sklearn.exceptions import UndefinedMetricWarning

    scorer = METRICS[metric].scorer
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            warnings.simplefilter("ignore", UserWarning)  # "a single label was found"
            return float(scorer(predictions))
    except ValueError:
        return math.nan


def clean(value: float | None) -> float | None:
    """A score as `metrics.json` records it: rounded to 6 places, None when not finite."""
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def score_all(predictions: Predictions, names: tuple[str, ...]) -> dict[str, float | None]:
    """Each named metric on the predictions, as `metrics.json` records it."""
    return {name: clean(safe_score(name, predictions)) for name in names}
