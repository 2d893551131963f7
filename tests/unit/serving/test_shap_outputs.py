"""SHAP values per class for every estimator the project supports, binary and multiclass."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlgitops.config import TrainParams
from mlgitops.contract import ContractParams
from mlgitops.estimators import ESTIMATOR_TASKS
from mlgitops.explain import shap_by_feature
from mlgitops.stages.train import build_pipeline

# Small models: the test is about the shape and labelling of SHAP values, not their quality.
SMALL = {
    "logistic_regression": {},
    "ridge": {},
    "random_forest": {"n_estimators": 15, "max_depth": 4},
    "hist_gradient_boosting": {"max_iter": 15},
}
ROWS = 120
pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning:shap")


def generated_project(
    rng: np.random.Generator, *, task: str, n_classes: int
) -> tuple[ContractParams, pd.DataFrame]:
    """A contract and a table drawn from it: numeric and categorical features, a target that
    depends on them (int classes, text classes, or a number)."""
    n_numeric = int(rng.integers(2, 5))
    categories = tuple(f"c{i}" for i in range(int(rng.integers(2, 5))))
    columns: dict[str, dict] = {
        f"x {i}": {"dtype": "float", "nullable": bool(rng.integers(0, 2))} for i in range(n_numeric)
    }
    columns["group"] = {"dtype": "category", "categories": categories}
    frame = pd.DataFrame({name: rng.normal(size=ROWS) for name in columns if name != "group"})
    frame["group"] = rng.choice(categories, size=ROWS)
    score = frame.iloc[:, 0] + (frame["group"] == categories[0]) + rng.normal(0, 0.3, size=ROWS)
    if task == "regression":
        columns["y"] = {"dtype": "float", "role": "target"}
        frame["y"] = score
    else:
        # Quantile bins of the score: every class is present; int or text labels.
        bins = pd.qcut(score, n_classes, labels=False)
        as_int = bool(rng.integers(0, 2))
        columns["y"] = (
            {"dtype": "int", "role": "target"}
            if as_int
            else {"dtype": "category", "role": "target", "categories": ("no", "yes", "maybe")}
        )
        frame["y"] = bins if as_int else np.array(["no", "yes", "maybe"])[bins]
    for name, spec in columns.items():
        if spec.get("nullable"):
            frame.loc[rng.random(ROWS) < 0.1, name] = np.nan
    contract = ContractParams.model_validate({"task": task, "columns": columns})
    return contract, frame


def model_output(estimator, encoded: np.ndarray, n_outputs: int) -> np.ndarray:
    """What the explainer decomposes, one column per output: probabilities for a forest
    classifier, the decision function (log-odds) for the others, the prediction for a regressor."""
    if not hasattr(estimator, "classes_"):
        return estimator.predict(encoded)[:, np.newaxis]
    if type(estimator).__name__ == "RandomForestClassifier":
        return estimator.predict_proba(encoded)
    margin = estimator.decision_function(encoded)
    return np.column_stack([-margin, margin]) if n_outputs == 2 and margin.ndim == 1 else margin


CASES = [
    (name, task, n_classes)
    for name, tasks in ESTIMATOR_TASKS.items()
    for task in sorted(tasks)
    for n_classes in ((2, 3) if task == "classification" else (1,))
]


@pytest.mark.parametrize(("estimator", "task", "n_classes"), CASES)
def test_every_class_gets_its_own_additive_contributions(seed, estimator, task, n_classes):
    # Given a model of any supported estimator trained on a generated table, when its rows are
    # explained, then there is one column of contributions per class (in `classes_` order; one
    # for a regressor), and the contributions of each class add up to that class's model
    # output: the difference between two rows' sums is the difference of their outputs.
    rng = np.random.default_rng([seed, len(CASES), CASES.index((estimator, task, n_classes))])
    contract, frame = generated_project(rng, task=task, n_classes=n_classes)
    train = TrainParams.model_validate({"estimator": {"name": estimator, **SMALL[estimator]}})
    pipeline = build_pipeline(contract, train, seed=seed)
    features = frame[list(contract.features)]
    target = frame[contract.target]
    pipeline.fit(features, target.astype(str) if task == "classification" else target)
    rows = features.sample(n=12, random_state=seed)

    values, names = shap_by_feature(pipeline, rows, features.head(40), seed=seed)

    n_outputs = len(pipeline.classes_) if task == "classification" else 1
    assert n_outputs == n_classes, f"the generated target has {n_outputs} classes"
    assert values.shape == (len(rows), len(names), n_outputs), (
        f"expected rows x features x {n_outputs} outputs, got {values.shape}"
    )
    assert sorted(names) == sorted(contract.features), f"features explained: {names}"
    output = model_output(pipeline[-1], pipeline[:-1].transform(rows), n_outputs)
    sums = values.sum(axis=1)
    np.testing.assert_allclose(
        sums - sums[0],
        output - output[0],
        atol=1e-4,
        err_msg=f"{estimator}: contributions do not add up to each class's output",
    )
