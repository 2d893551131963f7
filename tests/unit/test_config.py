"""params.yaml parsing: typed sections, unknown keys and cross-section rules."""

from __future__ import annotations

import copy

import pytest
import yaml

from helpers import EXAMPLE_PARAMS_PATH
from mlgitops.params import load_params, parse_params
from mlgitops.sections import ParamsError


@pytest.fixture
def raw() -> dict:
    """The example's params as a mapping: the rules below break its named columns."""
    return yaml.safe_load(EXAMPLE_PARAMS_PATH.read_text())


def test_project_params_parse(params):
    # Given the committed params.yaml, when parsed, then the sections are typed and no
    # identifier, free-text or target column is a feature.
    contract = params.contract
    assert contract.target not in contract.features, "the target is never a feature"
    for column in (*contract.personal, *contract.identifiers):
        assert column not in contract.features, f"{column} must never be a feature"
    assert params.validate.examples_per_failure >= 1


def test_sections_are_frozen(params):
    with pytest.raises(Exception, match="frozen"):
        params.seed = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("path", "key"),
    [
        (("train", "estimator"), "n_estimatrs"),
        (("prepare", "split"), "tset_size"),
        (("evaluate",), "headlines"),
        ((), "trian"),
        (("contract", "columns", "Island"), "catgories"),
    ],
)
def test_typo_names_the_key(raw, path, key):
    # Given a misspelt key anywhere, when parsed, then the error names the full key path.
    broken = copy.deepcopy(raw)
    section = broken
    for part in path:
        section = section[part]
    section[key] = 1
    with pytest.raises(ParamsError) as error:
        parse_params(broken, source="params.yaml")
    expected = ".".join([*path, key])
    assert f"{expected}: unknown key" in str(error.value), f"message should name {expected}"


def test_wrong_type_says_what_was_received(raw):
    broken = copy.deepcopy(raw)
    broken["prepare"]["split"]["test_size"] = "a fifth"
    with pytest.raises(ParamsError, match=r"prepare\.split\.test_size: .*got 'a fifth'"):
        parse_params(broken)


def test_estimator_must_fit_task(raw):
    broken = copy.deepcopy(raw)
    broken["train"]["estimator"] = {"name": "ridge"}
    with pytest.raises(ParamsError, match="does not support task 'classification'"):
        parse_params(broken)


def test_headline_metric_must_exist_for_task(raw):
    broken = copy.deepcopy(raw)
    broken["evaluate"]["headline"] = ["r2_score"]
    with pytest.raises(ParamsError, match="r2_score"):
        parse_params(broken)


def test_slices_must_be_categorical_columns(raw):
    broken = copy.deepcopy(raw)
    broken["evaluate"]["slices"] = ["Body Mass (g)"]
    with pytest.raises(ParamsError, match="Body Mass"):
        parse_params(broken)


def test_contract_needs_exactly_one_target(raw):
    broken = copy.deepcopy(raw)
    broken["contract"]["columns"]["Island"]["role"] = "target"
    with pytest.raises(ParamsError, match="exactly one column must have role 'target'"):
        parse_params(broken)


def test_free_text_cannot_be_a_feature(raw):
    broken = copy.deepcopy(raw)
    broken["contract"]["columns"]["Comments"]["role"] = "feature"
    with pytest.raises(ParamsError, match=r"contract\.columns\.Comments"):
        parse_params(broken)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("seed: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)


def test_every_cross_section_problem_is_listed_at_once(raw):
    # Given params with three independent cross-section mistakes, when parsed, then one error
    # names all three, each on its own line with its key.
    broken = copy.deepcopy(raw)
    broken["train"]["estimator"] = {"name": "ridge"}
    broken["evaluate"]["slices"] = ["no such column"]
    broken["gates"]["floors"] = {"r2_score": 0.5}
    with pytest.raises(ParamsError) as error:
        parse_params(broken, source="params.yaml")
    message = str(error.value)
    for key in ("train.estimator.name:", "evaluate.slices:", "gates.floors.r2_score:"):
        assert f"  - {key}" in message, f"{key} missing from:\n{message}"
    assert "(3 problem(s))" in message, message


def test_time_column_is_only_checked_for_a_time_split(raw):
    # Given a random split naming a time column the contract lacks, then it parses; the same
    # column with a time split is an error naming the key.
    loose = copy.deepcopy(raw)
    loose["prepare"]["split"] = {"method": "random", "time_column": "not a column"}
    parse_params(loose)
    loose["prepare"]["split"]["method"] = "time"
    with pytest.raises(ParamsError, match=r"prepare\.split\.time_column: 'not a column'"):
        parse_params(loose)


@pytest.mark.parametrize(
    "expression",
    ["`no such column` / 2", "unknown_name * 2", "`Body Mass (g)` +* 1"],
    ids=["quoted", "bare", "syntax"],
)
def test_derived_feature_on_a_missing_column_fails_when_params_are_read(raw, expression):
    # Given a derived feature over a column the contract's features lack (or bad syntax),
    # when params are read, then the error names the derived feature, not a train traceback.
    broken = copy.deepcopy(raw)
    broken["train"]["derived_features"] = {"Bad Feature": expression}
    with pytest.raises(ParamsError, match=r"train\.derived_features\.Bad Feature: "):
        parse_params(broken)


def test_derived_features_of_the_contract_parse(raw):
    # Given derived features over real feature columns, one using another, then they parse.
    fine = copy.deepcopy(raw)
    numeric = [n for n, s in fine["contract"]["columns"].items() if s["dtype"] == "float"]
    fine["train"]["derived_features"] = {
        "first": f"`{numeric[0]}` / `{numeric[1]}`",
        "second": "first * 2",
    }
    parse_params(fine)
