"""Fuzzing the served bento from its own OpenAPI document (schemathesis + hypothesis).

Every operation in `/docs.json` gets valid (positive) and invalid (negative) requests, all
sent with a valid API key. Every response must be a non-5xx that matches the document: its
status documented with a schema, its body valid against that schema. An operation the
document says needs a key must refuse the same request without one, and with a wrong one.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
)

pytestmark = pytest.mark.slow

CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance, ignored_auth]
# Examples per operation and mode; SHAP makes /explain the costly one.
EXAMPLES = {"/predict": 400, "/explain": 60, "/feedback": 150}
PROBE_EXAMPLES = 20
MIN_REQUESTS = 1000


def test_fuzzed_requests_get_no_5xx_and_match_the_document(bento_server, seed):
    # Given the served bento and its OpenAPI document, when schemathesis sends at least
    # 1,000 generated requests (valid and invalid) to every operation, then none is a 5xx
    # and every response matches the document.
    home, server = bento_server
    auth = {"Authorization": f"Bearer {home.keys[0]}"}
    document = httpx.get(f"{server.url}/docs.json", headers=auth, timeout=30).json()
    schema = schemathesis.openapi.from_dict(document)
    sent: Counter[tuple[str, str, int]] = Counter()

    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            modes = [GenerationMode.POSITIVE]
            if operation.body:
                modes.append(GenerationMode.NEGATIVE)
            for mode in modes:
                fuzz(
                    operation,
                    mode,
                    session=session,
                    url=server.url,
                    auth=auth,
                    seed=seed,
                    sent=sent,
                )

    total = sum(sent.values())
    summary = "\n".join(f"{key}: {count}" for key, count in sorted(sent.items()))
    assert total >= MIN_REQUESTS, f"only {total} requests were generated:\n{summary}"
    five_hundreds = {key: n for key, n in sent.items() if key[2] >= 500}
    assert not five_hundreds, f"5xx answers: {five_hundreds}"
    positive_ok = sum(
        n
        for (path, mode, status), n in sent.items()
        if path == "/predict" and mode == "positive" and status == 200
    )
    assert positive_ok, f"no valid /predict request was answered 200:\n{summary}"
    # A /feedback body the document calls valid is never refused as invalid (400): its label
    # is typed from the contract's target. (A made-up, well-formed prediction id is a 404.)
    feedback = {
        status: n
        for (path, mode, status), n in sent.items()
        if path == "/feedback" and mode == "positive"
    }
    assert feedback, f"/feedback was not fuzzed with valid bodies:\n{summary}"
    assert 400 not in feedback, f"valid /feedback bodies refused with 400: {feedback}"
    # GET /metadata is a route mounted next to BentoML's; only the corrected document has it.
    assert sent[("/metadata", "positive", 200)], f"/metadata was not fuzzed:\n{summary}"
    logging.getLogger(__name__).info(
        "%d fuzzed requests, by (path, mode, status):\n%s", total, summary
    )


def fuzz(
    operation: Any,
    mode: GenerationMode,
    *,
    session: requests.Session,
    url: str,
    auth: dict[str, str],
    seed: int,
    sent: Counter[tuple[str, str, int]],
) -> None:
    """Send one operation's generated requests; count them by status; fail on a check."""

    @hypothesis_seed(seed)
    @settings(
        max_examples=EXAMPLES.get(operation.path, PROBE_EXAMPLES),
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        response = case.call(base_url=url, session=session, headers=auth, timeout=60)
        sent[(operation.path, mode.value, response.status_code)] += 1
        case.validate_response(response, checks=CHECKS, headers=auth)

    check()
