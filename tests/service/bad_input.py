"""Every class of bad input the service must refuse, shared by the in-process and live tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlgitops.contract import NUMERIC_DTYPES
from mlgitops.params import Params

API_KEYS = ("test-key-one", "test-key-two")


def _feature(params: Params, test: Callable[[Any], bool]) -> str:
    contract = params.contract
    return next(name for name in contract.features if test(contract.columns[name]))


def _numeric(params: Params) -> str:
    return _feature(params, lambda spec: spec.dtype in NUMERIC_DTYPES and spec.max is not None)


def _rejected_category(params: Params) -> str:
    return _feature(params, lambda spec: spec.categories and spec.on_unknown == "reject")


def _required(params: Params) -> str:
    return _feature(params, lambda spec: not spec.nullable)


def _one(record: dict[str, Any]) -> dict[str, Any]:
    return {"json": {"records": [record]}}


@dataclass(frozen=True)
class BadInput:
    """One kind of bad request, its expected status and the field its error must name."""

    name: str
    status: int
    field: str | None
    build: Callable[[dict[str, Any], Params], dict[str, Any]]
    path: str = "/predict"


def _raw(body: bytes, content_type: str = "application/json") -> dict[str, Any]:
    return {"content": body, "headers": {"Content-Type": content_type}}


BAD_INPUT_CASES: tuple[BadInput, ...] = (
    BadInput(
        "missing-field",
        400,
        "required",
        lambda ex, p: _one({k: v for k, v in ex.items() if k != _required(p)}),
    ),
    BadInput("wrong-type", 400, "numeric", lambda ex, p: _one({**ex, _numeric(p): "heavy"})),
    BadInput(
        "number-as-text",
        400,
        "numeric",
        lambda ex, p: _one({**ex, _numeric(p): str(ex[_numeric(p)])}),
    ),
    BadInput(
        "out-of-range",
        400,
        "numeric",
        lambda ex, p: _one({**ex, _numeric(p): p.contract.columns[_numeric(p)].max * 10 + 1}),
    ),
    BadInput(
        "unknown-category",
        400,
        "category",
        lambda ex, p: _one({**ex, _rejected_category(p): "Not-A-Category"}),
    ),
    # A name the client made up is not echoed: the error names it `unknown_field`.
    BadInput(
        "unknown-field",
        400,
        "unknown_field",
        lambda ex, p: _one({**ex, "Not In The Contract": 1}),
    ),
    BadInput("record-not-an-object", 400, "records", lambda ex, p: {"json": {"records": [1]}}),
    BadInput("records-not-a-list", 400, "records", lambda ex, p: {"json": {"records": ex}}),
    BadInput("no-records", 400, "records", lambda ex, p: {"json": {}}),
    BadInput("empty-list", 400, "records", lambda ex, p: {"json": {"records": []}}),
    BadInput(
        "too-many-records",
        400,
        "records",
        lambda ex, p: {"json": {"records": [ex] * (p.serve.max_records + 1)}},
    ),
    BadInput(
        "too-many-to-explain",
        400,
        "records",
        lambda ex, p: {"json": {"records": [ex] * (p.serve.max_explain_records + 1)}},
        path="/explain",
    ),
    BadInput("invalid-json", 400, None, lambda ex, p: _raw(b'{"records": [')),
    BadInput(
        "body-too-large",
        413,
        "body",
        lambda ex, p: _raw(json.dumps({"records": [ex]}).encode() + b" " * p.serve.max_body_bytes),
    ),
    BadInput(
        "not-json",
        415,
        "Content-Type",
        lambda ex, p: _raw(b"records=1", "application/x-www-form-urlencoded"),
    ),
)


def expected_field(case: BadInput, params: Params) -> str | None:
    """The field name a case's error must mention, resolved against the contract."""
    resolve = {"required": _required, "numeric": _numeric, "category": _rejected_category}
    return resolve[case.field](params) if case.field in resolve else case.field


def send(
    client: Any, case: BadInput, *, example: dict[str, Any], params: Params, headers: dict[str, str]
) -> Any:
    """Send one bad request with `client` (a TestClient or an httpx.Client)."""
    kwargs = case.build(example, params)
    kwargs["headers"] = {**headers, **kwargs.get("headers", {})}
    return client.post(case.path, **kwargs)


def fields_named(body: dict[str, Any]) -> set[str]:
    """Every name in the `loc` of every detail of an error body."""
    return {str(part) for item in body.get("detail", []) for part in item.get("loc", [])}


def check_refusal(response: Any, case: BadInput, params: Params) -> None:
    """Assert that a response is the refusal `case` expects, with a useful JSON body."""
    assert response.status_code == case.status, (
        f"{case.name}: {response.status_code} {response.text[:300]}"
    )
    body = response.json()
    assert body.get("error"), f"{case.name}: no error message in {body}"
    assert body.get("detail"), f"{case.name}: no detail in {body}"
    field = expected_field(case, params)
    if field is not None:
        assert field in fields_named(body), f"{case.name}: '{field}' is not named in {body}"
    assert all(item.get("msg") for item in body["detail"]), f"{case.name}: a detail has no msg"
