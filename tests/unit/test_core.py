"""The core registries and readers: metrics, estimators and the dvc.lock / data.dvc layout."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from mlgitops.estimators import ESTIMATOR_TASKS, ESTIMATORS, build_estimator, explainer_kind
from mlgitops.layout import LayoutError, data_md5, locked_md5, locked_outs
from mlgitops.metrics import METRICS, METRICS_BY_TASK, Predictions, direction, safe_score

TASKS = ("classification", "regression")
md5s = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)


def test_every_metric_has_a_direction_and_a_task():
    # Given the registry, each metric's name says which way is better, and each task has
    # the metrics registered for it, in registry order.
    for name, metric in METRICS.items():
        assert metric.direction in {1, -1}, f"{name}: direction must come from its name"
        assert metric.direction == direction(name)
        assert metric.tasks <= set(TASKS), f"{name}: unknown tasks {metric.tasks}"
    for task in TASKS:
        expected = tuple(n for n, m in METRICS.items() if task in m.tasks)
        assert METRICS_BY_TASK[task] == expected, f"{task}: {METRICS_BY_TASK[task]}"


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(8, 60))
def test_regression_scorers_are_scikit_learns(seed, rows):
    rng = np.random.default_rng(seed)
    predictions = Predictions(rng.normal(size=rows), rng.normal(size=rows))
    expected = {
        "r2_score": skm.r2_score,
        "mean_absolute_error": skm.mean_absolute_error,
        "root_mean_squared_error": skm.root_mean_squared_error,
    }
    assert set(expected) == set(METRICS_BY_TASK["regression"])
    for name, function in expected.items():
        value = function(predictions.y_true, predictions.y_pred)
        assert safe_score(name, predictions) == pytest.approx(value), name


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(10, 60), st.integers(2, 4))
def test_classification_scorers_are_defined_or_nan(seed, rows, classes):
    # Given any labels and probabilities, each classification metric is a finite number in
    # its range or NaN (undefined on these rows), never an exception.
    rng = np.random.default_rng(seed)
    labels = tuple(f"c{i}" for i in range(classes))
    proba = rng.dirichlet(np.ones(classes), size=rows)
    y_true = rng.choice(labels, size=rows)
    y_pred = np.asarray(labels)[proba.argmax(axis=1)]
    predictions = Predictions(y_true, y_pred, proba, labels)
    for name in METRICS_BY_TASK["classification"]:
        value = safe_score(name, predictions)
        assert np.isnan(value) or np.isfinite(value), f"{name}: {value}"
    accuracy = safe_score("accuracy_score", predictions)
    assert accuracy == pytest.approx(skm.accuracy_score(y_true, y_pred))


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_every_estimator_builds_for_each_of_its_tasks(name, seed):
    # Given an estimator row, its params' defaults build the scikit-learn class of each task
    # it supports, seeded, and the explainer kind comes back from the built estimator.
    row = ESTIMATORS[name]
    assert ESTIMATOR_TASKS[name] == row.tasks
    assert row.tasks <= set(TASKS), f"{name}: unknown tasks {row.tasks}"
    params = row.params.model_validate({"name": name})
    for task in row.tasks:
        estimator = build_estimator(params, task=task, seed=seed)  # type: ignore[arg-type]
        assert type(estimator).__name__ == row.classes[task].split(":")[1], f"{name}/{task}"
        assert estimator.get_params()["random_state"] == seed
        assert explainer_kind(estimator) == row.explainer


def test_an_unregistered_estimator_is_explained_by_permutation():
    from sklearn.neighbors import KNeighborsClassifier

    assert explainer_kind(KNeighborsClassifier()) == "permutation"


@given(
    st.dictionaries(
        st.sampled_from(["a", "b", "c"]),
        st.dictionaries(st.text(alphabet="abc/._", min_size=1, max_size=12), md5s, max_size=4),
        max_size=3,
    )
)
def test_locked_outs_reads_every_stage_output(stages):
    lock = {
        "schema": "2.0",
        "stages": {
            stage: {"outs": [{"path": p, "md5": m, "hash": "md5"} for p, m in outs.items()]}
            for stage, outs in stages.items()
        },
    }
    everything = {p: m for outs in stages.values() for p, m in outs.items()}
    assert locked_outs(lock) == everything
    for stage, outs in stages.items():
        assert locked_outs(lock, stage) == outs
        for path, md5 in outs.items():
            if everything[path] == md5:
                assert locked_md5(lock, path) == md5
    assert locked_outs(lock, "absent") == {}


def test_locked_md5_and_data_md5_name_what_is_missing():
    with pytest.raises(LayoutError, match=r"records no output 'artifacts/model.joblib'"):
        locked_md5({"stages": {"train": {"outs": []}}}, "artifacts/model.joblib")
    for pointer in (None, {}, {"outs": []}, {"outs": [{"path": "data"}]}, {"outs": ["x"]}):
        with pytest.raises(LayoutError, match="records no md5"):
            data_md5(pointer)  # type: ignore[arg-type]
    assert data_md5({"outs": [{"md5": "abc.dir", "path": "data"}]}) == "abc.dir"
