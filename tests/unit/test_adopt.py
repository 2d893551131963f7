"""`mlgitops init`: the contract it proposes for a table accepts that table and keeps the
types and roles the table's own contract gave it; a table it cannot adopt is named."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlgitops.adopt import AdoptError, adopt, propose_column, propose_contract, propose_params
from mlgitops.cli import main
from mlgitops.contract.check import check_table
from mlgitops.params import parse_params
from tables import TARGET_KINDS, random_shape, table_from_contract

SHAPES = st.builds(
    lambda seed, kind: (seed, *kind), st.integers(0, 10_000), st.sampled_from(TARGET_KINDS)
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=SHAPES)
def test_proposed_contract_accepts_the_table_and_keeps_its_types(shape):
    # Given a table made from a generated contract, when init proposes a contract from the
    # CSV text alone, then the proposed params parse, the table satisfies them, the task is
    # the same, and every column keeps its dtype family and is a feature only if it was one.
    seed, task, target_dtype, classes = shape
    original = parse_params(
        random_shape(seed, task=task, target_dtype=target_dtype, classes=classes).params
    ).contract
    table = table_from_contract(original, rows=200, seed=seed)
    proposal = propose_contract(table, target=original.target, task=task)
    params = parse_params(propose_params(proposal.contract, None))
    _, report = check_table(table, params.contract)
    assert report["valid"], f"the proposed contract refuses its own table: {report['failures']}"
    assert params.contract.task == task
    assert params.contract.target == original.target
    for name, spec in original.columns.items():
        proposed = params.contract.columns[name]
        if spec.dtype in {"int", "float", "bool", "date"} and spec.role != "identifier":
            assert proposed.dtype == spec.dtype, f"{name}: {spec.dtype} became {proposed.dtype}"
        if name not in original.features:
            assert name not in params.contract.features, f"{name} became a feature"
    assert not params.train.derived_features, "init must propose no derived features"


def _table(**columns: list) -> pd.DataFrame:
    return pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in columns.items()})


@pytest.mark.parametrize(
    ("table", "target", "task", "expected"),
    [
        (_table(x=["1", "2", "3"], y=["a", "b", "a"]), "z", None, "is not a column"),
        (_table(x=["1", "2", "3"], y=["a", None, "a"]), "y", None, "missing value"),
        (_table(x=["1", "2", "3"], y=["0.5", "1.5", "2.5"]), "y", "classification", "regression"),
        (_table(x=["1", "2", "3"], y=["a", "b", "a"]), "y", "regression", "numeric target"),
        (_table(x=["1", "1", "1"], y=["a", "b", "a"]), "y", None, "no column could be"),
    ],
    ids=["no-target", "nullable-target", "fractional-classes", "text-regression", "no-feature"],
)
def test_tables_that_cannot_be_adopted_are_named(table, target, task, expected):
    with pytest.raises(AdoptError, match=expected):
        propose_contract(table, target=target, task=task)


def test_init_error_is_one_line_without_traceback(tmp_path, caplog, capsys):
    # Given a CSV whose target is not a column, when `mlgitops init` runs, then it exits 1
    # with a message naming the column, and no traceback.
    data = tmp_path / "my.csv"
    data.write_text("a,b\n1,x\n2,y\n")
    with caplog.at_level(logging.ERROR):
        code = main(["init", "--data", str(data), "--target", "c", "--repo", str(tmp_path)])
    assert code == 1
    assert "'c' is not a column" in caplog.text, caplog.text
    assert "Traceback" not in caplog.text + capsys.readouterr().err
    assert not (tmp_path / "params.yaml").exists(), "a failed init wrote params"


@given(
    classes=st.integers(min_value=3, max_value=20),
    rare=st.integers(min_value=1, max_value=3),
    seed=st.integers(0, 2**16),
)
@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_a_target_the_split_cannot_stratify_is_refused_at_adoption(
    tmp_path_factory, classes, rare, seed
):
    # Given an integer target read as classification with `rare` classes of one row, when the
    # table is adopted, then init refuses before writing params, naming the target and the way
    # out (--task regression) instead of leaving `dvc repro` to crash in prepare; with
    # --task regression the same table is adopted.
    rare = min(rare, classes - 2)
    rng = np.random.default_rng(seed)
    common = rng.integers(0, classes - rare, size=200).tolist()
    labels = common + list(range(classes - rare, classes))[:rare]
    repo = tmp_path_factory.mktemp("repo")
    data = repo / "my.csv"
    pd.DataFrame({"x": rng.normal(size=len(labels)), "y": labels}).to_csv(data, index=False)
    with pytest.raises(AdoptError, match=r"'y'.*--task regression"):
        adopt(data, target="y", task=None, repo=repo, params_path=Path("params.yaml"), track=False)
    assert not (repo / "params.yaml").exists(), "a refused table wrote params"
    proposal = adopt(
        data, target="y", task="regression", repo=repo, params_path=Path("params.yaml"), track=False
    )
    assert proposal.contract["task"] == "regression"


@given(values=st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=3))
def test_a_float_column_keeps_its_exact_bounds(values):
    # Given any doubles written to CSV at full precision, the proposed min and max are the exact
    # values, so the contract accepts the very rows it was proposed from.
    text = pd.Series([repr(v) for v in values], dtype=object)
    spec, _ = propose_column("x", text, rows=len(text))
    if spec["dtype"] == "float":
        assert spec["min"] == min(values)
        assert spec["max"] == max(values)
