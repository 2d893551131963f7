"""The service class called directly: predictions, explanations and the prediction log."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlgitops.contract.check import feature_frame, load_valid_table


@pytest.fixture(scope="module")
def service(service_module):
    """One instance of the service, as a BentoML worker creates it."""
    return service_module.MlgitopsService()


@pytest.fixture(scope="module")
def test_rows(trained_project, params):
    return feature_frame(
        load_valid_table(trained_project / "artifacts/test.csv", params.contract), params.contract
    )


def rows(frame):
    """The rows of a feature table as request bodies hold them (missing values as null)."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def as_modelled(service, value):
    """A response's label as the model and the prediction log hold it (class text)."""
    return service.predictor.class_text.get(value, value) if service.classes is not None else value


def mapped_column(service):
    """A column whose unseen categories the contract maps to unknown; skips when it has none."""
    if not service.predictor.map_to_unknown:
        pytest.skip("the project's contract maps no column's unseen categories to unknown")
    return next(iter(service.predictor.map_to_unknown))


def records(service_module, frame):
    """Request records built from rows of a feature table."""
    return [service_module.Record.model_validate(row) for row in rows(frame)]


def test_predictions_match_the_pipeline(service, service_module, test_rows):
    # Given the held-out rows, when predicted by the service, then every prediction and
    # probability equals the pipeline's own, with one unique id per record.
    answers = service.predict(records(service_module, test_rows))
    expected = service.pipeline.predict(test_rows)
    assert [as_modelled(service, a.prediction) for a in answers] == list(expected), (
        "predictions differ"
    )
    if service.classes is None:  # a regressor answers a value and no probabilities
        assert all(a.probabilities is None for a in answers), "a regressor sent probabilities"
    else:
        proba = service.pipeline.predict_proba(test_rows)
        got = np.array([list(a.probabilities.values()) for a in answers])
        np.testing.assert_allclose(got, proba, atol=1e-6, err_msg="probabilities differ")
    assert len({a.request_id for a in answers}) == len(answers), "request ids repeat"
    versions = {a.model_version for a in answers}
    assert versions == {service_module.PACKAGED.version}, f"model versions {versions}"


def test_unknown_category_is_mapped_and_reported(service, service_module, example):
    # Given a record whose map_to_unknown column holds an unseen value, when predicted,
    # then it still gets probabilities and a warning that names the column.
    unknown = mapped_column(service)
    record = service_module.Record.model_validate({**example, unknown: "never seen"})
    (answer,) = service.predict([record])
    assert abs(sum(answer.probabilities.values()) - 1) < 1e-6, "probabilities do not sum to 1"
    assert any(unknown in w for w in answer.warnings), f"no warning in {answer.warnings}"


def test_warnings_belong_to_the_record_that_caused_them(service, service_module, example):
    # Given a batch whose middle record alone holds an unseen category, when predicted, then
    # only that record carries a warning.
    unknown = mapped_column(service)
    batch = [
        service_module.Record.model_validate(row)
        for row in (example, {**example, unknown: "never seen"}, example)
    ]
    warnings = [answer.warnings for answer in service.predict(batch)]
    assert [bool(w) for w in warnings] == [False, True, False], f"warnings {warnings}"


def test_records_frame_equals_the_frame_parsed_from_rows(service_module, test_rows, params):
    # Given held-out rows (with missing values), when validated as records and turned into
    # the model's frame, then it equals the frame typed from the same rows: column order,
    # dtypes and missing values.
    from mlgitops.serving.schema import records_frame, typed_frame

    pd.testing.assert_frame_equal(
        records_frame(records(service_module, test_rows), params.contract),
        typed_frame(rows(test_rows), params.contract),
    )
    assert test_rows.isna().any().any(), "the rows have no missing value to compare"


def test_explanations_rank_original_features(service, service_module, example, params):
    # Given the example record, when explained, then it gets top_k contributions by original
    # feature, largest first, for the predicted class.
    (answer,) = service.explain([service_module.Record.model_validate(example)])
    names = [c.feature for c in answer.contributions]
    known = {*params.contract.features, *params.train.derived_features}
    expected = min(params.serve.explain_top_k, len(known))  # a small table has fewer features
    assert len(names) == expected, f"expected top {expected}"
    assert set(names) <= known, f"unknown features {set(names) - known}"
    sizes = [abs(c.value) for c in answer.contributions]
    assert sizes == sorted(sizes, reverse=True), "contributions are not sorted by size"
    # A classifier explains its predicted class; a regressor's one output needs no name.
    explained = answer.prediction if service.classes is not None else None
    assert answer.explained_output == explained, "explains another class"


def test_prediction_log_has_features_output_and_ids(service, service_module, example, serving_env):
    # Given a predicted record, then the JSON-lines prediction log holds its features, its
    # prediction, its id and the model hash.
    (answer,) = service.predict([service_module.Record.model_validate(example)])
    log_files = sorted(Path(serving_env, "predictions").glob("*/data/*.log"))
    assert log_files, "no prediction log was written"
    lines = [json.loads(line) for f in log_files for line in f.read_text().splitlines()]
    entry = next((e for e in lines if e.get("prediction_id") == answer.request_id), None)
    assert entry is not None, "the prediction is not in the log"
    assert entry["prediction"] == as_modelled(service, answer.prediction), "logged output differs"
    assert entry["model_md5"] == service_module.PACKAGED.labels["model_md5"], "model hash"
    for name, value in example.items():
        assert entry[name] == value, f"logged {name} differs"
