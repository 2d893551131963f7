"""The request guards and the schema helpers on their own, without a server."""

from __future__ import annotations

import pytest

from mlgitops.serving.guards import ApiKeyAuth
from mlgitops.serving.schema import RECORDS_FIELD, UNKNOWN_FIELD, rejected_field


def app(scope, receive, send):  # pragma: no cover - never reached by these tests
    raise AssertionError("the wrapped app must not be called")


def test_every_configured_key_is_accepted_and_nothing_else(monkeypatch):
    # Given two keys (with spaces around them) in the environment, then each is accepted,
    # and a prefix, a longer string, an empty key and no key are not.
    monkeypatch.setenv("TEST_KEYS", " alpha-key , beta-key ,")
    auth = ApiKeyAuth(app, keys_env="TEST_KEYS")
    assert auth.is_valid(b"alpha-key"), "first key refused"
    assert auth.is_valid(b"beta-key"), "second key refused"
    for wrong in (b"alpha", b"alpha-key2", b"", None):
        assert not auth.is_valid(wrong), f"{wrong!r} accepted"


def test_no_configured_key_refuses_everything(monkeypatch, caplog):
    # Given no key in the environment, then nothing is accepted and the reason is logged.
    monkeypatch.delenv("TEST_KEYS", raising=False)
    auth = ApiKeyAuth(app, keys_env="TEST_KEYS")
    assert not auth.is_valid(b""), "an empty key opened the service"
    assert not auth.is_valid(b"anything"), "a key was accepted with none configured"
    assert "TEST_KEYS" in caplog.text, "the missing variable is not named in the log"


@pytest.mark.parametrize(
    ("loc", "expected"),
    [
        ((), RECORDS_FIELD),
        ((3,), RECORDS_FIELD),
        ((0, "Island"), "Island"),
        ((0, "Wingspan"), UNKNOWN_FIELD),
    ],
)
def test_rejected_field_is_a_feature_or_a_fixed_label(loc, expected):
    # Metric labels stay bounded: a feature name, `records`, or `unknown_field`.
    assert rejected_field(loc, frozenset({"Island"})) == expected, f"loc {loc}"
