"""The estimator registry: one row per estimator name (params, tasks, classes, explainer)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import Field

from mlgitops.sections import Section

ExplainerKind = Literal["tree", "linear", "permutation"]


class LogisticRegressionParams(Section):
    """Hyperparameters of scikit-learn's `LogisticRegression` (classification)."""

    name: Literal["logistic_regression"]
    C: Annotated[float, Field(gt=0)] = 1.0
    max_iter: Annotated[int, Field(ge=1)] = 1000
    class_weight: Literal["balanced"] | None = None


class RidgeParams(Section):
    """Hyperparameters of scikit-learn's `Ridge` (regression)."""

    name: Literal["ridge"]
    alpha: Annotated[float, Field(ge=0)] = 1.0


class RandomForestParams(Section):
    """Hyperparameters of scikit-learn's random forests (either task)."""

    name: Literal["random_forest"]
    n_estimators: Annotated[int, Field(ge=1)] = 200
    max_depth: Annotated[int, Field(ge=1)] | None = None
    min_samples_leaf: Annotated[int, Field(ge=1)] = 1
    max_features: Literal["sqrt", "log2"] | Annotated[float, Field(gt=0, le=1)] | None = "sqrt"
    class_weight: Literal["balanced"] | None = None
    n_jobs: int = 1


class HistGradientBoostingParams(Section):
    """Hyperparameters of scikit-learn's histogram gradient boosting (either task)."""

    name: Literal["hist_gradient_boosting"]
    learning_rate: Annotated[float, Field(gt=0)] = 0.1
    max_iter: Annotated[int, Field(ge=1)] = 100
    max_leaf_nodes: Annotated[int, Field(ge=2)] | None = 31
    max_depth: Annotated[int, Field(ge=1)] | None = None
    min_samples_leaf: Annotated[int, Field(ge=1)] = 20
    l2_regularization: Annotated[float, Field(ge=0)] = 0.0
    class_weight: Literal["balanced"] | None = None


EstimatorParams = Annotated[
    LogisticRegressionParams | RidgeParams | RandomForestParams | HistGradientBoostingParams,
    Field(discriminator="name"),
]


@dataclass(frozen=True)
class Estimator:
    """One estimator name: its params, its scikit-learn class per task and its SHAP explainer.

    Classes are named as `module:Class`, imported when a model is built or explained, so
    reading params stays cheap.
    """

    params: type[Section]
    classes: dict[str, str]  # task -> "module:Class"
    explainer: ExplainerKind
    # Options always passed, whatever the params say.
    fixed: dict[str, Any] = field(default_factory=dict)

    @property
    def tasks(self) -> frozenset[str]:
        """The tasks this estimator supports."""
        return frozenset(self.classes)

    def build(self, params: Section, *, task: str, seed: int) -> Any:
        """The scikit-learn estimator for `task`, with the params' hyperparameters and the seed."""
        options = params.model_dump(exclude={"name"})
        if task != "classification":
            # A regressor has no class weights.
            options.pop("class_weight", None)
        return _resolve(self.classes[task])(random_state=seed, **self.fixed, **options)


@cache
def _resolve(name: str) -> type:
    module, _, attribute = name.partition(":")
    resolved: type = getattr(importlib.import_module(module), attribute)
    return resolved


ESTIMATORS: dict[str, Estimator] = {
    "logistic_regression": Estimator(
        LogisticRegressionParams,
        {"classification": "sklearn.linear_model:LogisticRegression"},
        "linear",
    ),
    "ridge": Estimator(RidgeParams, {"regression": "sklearn.linear_model:Ridge"}, "linear"),
    "random_forest": Estimator(
        RandomForestParams,
        {
            "classification": "sklearn.ensemble:RandomForestClassifier",
            "regression": "sklearn.ensemble:RandomForestRegressor",
        },
        "tree",
    ),
    "hist_gradient_boosting": Estimator(
        HistGradientBoostingParams,
        {
            "classification": "sklearn.ensemble:HistGradientBoostingClassifier",
            "regression": "sklearn.ensemble:HistGradientBoostingRegressor",
        },
        "tree",
        # Early stopping carves a validation set out of the data; keep training explicit.
        fixed={"early_stopping": False},
    ),
}

ESTIMATOR_TASKS: dict[str, frozenset[str]] = {
    name: estimator.tasks for name, estimator in ESTIMATORS.items()
}


def build_estimator(estimator: EstimatorParams, *, task: str, seed: int) -> Any:
    """The estimator named in params, with its hyperparameters and the seed."""
    return ESTIMATORS[estimator.name].build(estimator, task=task, seed=seed)


def explainer_kind(estimator: Any) -> ExplainerKind:
    """Which SHAP explainer suits a fitted estimator: by the registry row of its class."""
    for row in ESTIMATORS.values():
        if any(isinstance(estimator, _resolve(name)) for name in row.classes.values()):
            return row.explainer
    return "permutation"
