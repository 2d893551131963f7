"""params.yaml parsing: typed sections, unknown keys and cross-section rules."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from mlgitops.config import ParamsError, load_params, parse_params

PARAMS_FILE = Path(__file__).resolve().parents[2] / "params.yaml"


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load(PARAMS_FILE.read_text())


def test_project_params_parse(params):
    # Given the committed params.yaml, when parsed, then the sections are typed.
    assert params.contract.target == "Species", "the default target is the species"
    assert "Comments" not in params.contract.features, "free text must never be a feature"
    assert "Individual ID" not in params.contract.features, "identifiers are never features"
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
