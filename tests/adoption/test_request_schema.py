"""The request schema of any adopted contract: it accepts every row the contract allows and
refuses each kind of invalid value, for contracts drawn from a seed (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mlgitops.contract import ContractParams
from mlgitops.contract.check import check_table, feature_frame
from mlgitops.monitor.traffic import to_records
from mlgitops.params import parse_params
from mlgitops.serving.schema import record_model
from tables import TARGET_KINDS, random_shape, table_from_contract

KINDS = st.sampled_from(TARGET_KINDS)
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _contract(seed: int, kind: tuple[str, str, int]) -> ContractParams:
    task, target_dtype, classes = kind
    shape = random_shape(seed, task=task, target_dtype=target_dtype, classes=classes)
    return parse_params(shape.params).contract


def _valid_records(contract: ContractParams, seed: int) -> list[dict]:
    typed, report = check_table(table_from_contract(contract, rows=40, seed=seed), contract)
    assert report["valid"], report["failures"]
    return to_records(feature_frame(typed, contract))


@SETTINGS
@given(seed=st.integers(0, 100_000), kind=KINDS)
def test_every_row_the_contract_allows_is_accepted(seed, kind):
    # Given rows that satisfy a generated contract, sent as JSON values (missing ones left
    # out), then the request schema accepts each, and keeps exactly its features.
    contract = _contract(seed, kind)
    model = record_model(contract)
    for record in _valid_records(contract, seed):
        parsed = model.model_validate(record)
        assert set(parsed.features()) == set(contract.features), "features lost or added"


def _invalid_values(contract: ContractParams, name: str) -> list[object]:
    spec = contract.columns[name]
    values: list[object] = [[1], {"a": 1}]
    if spec.dtype in {"int", "float"}:
        values += ["12", True]
        if spec.max is not None:
            values.append(spec.max + 1)
        if spec.min is not None:
            values.append(spec.min - 1)
        if spec.dtype == "int":
            values.append(1.5)
    elif spec.dtype == "bool":
        values += ["yes", 1, 0.0]
    elif spec.on_unknown == "reject":
        values += ["a value the contract does not list", 1]
    if not spec.nullable:
        values.append(None)
    return values


@SETTINGS
@given(seed=st.integers(0, 100_000), kind=KINDS, data=st.data())
def test_each_invalid_value_is_refused(seed, kind, data):
    # Given a valid record, when one feature gets a value its contract entry does not allow
    # (wrong type, outside min/max, an unlisted category where unknowns are rejected, null
    # where not nullable), or an unknown field is added, then the schema refuses it without
    # echoing the value.
    contract = _contract(seed, kind)
    model = record_model(contract)
    record = _valid_records(contract, seed)[0]
    name = data.draw(st.sampled_from(contract.features), label="feature")
    value = data.draw(st.sampled_from(_invalid_values(contract, name)), label="value")
    with pytest.raises(ValidationError) as refused:
        model.model_validate({**record, name: value})
    assert "input_value" not in str(refused.value), "the error echoes the value sent"
    with pytest.raises(ValidationError):
        model.model_validate({**record, "a field no contract names": 1})
