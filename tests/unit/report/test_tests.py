"""The test job's summary (from pytest's own junit XML) and the comment body built from it."""

from __future__ import annotations

import json

import pytest

from helpers import run_pytest
from mlgitops.cli import main as cli
from mlgitops.report.tests import (
    MAX_FAILED_LISTED,
    SummaryError,
    TestSummary,
    comment_body,
    read_summary,
    summarize_junit,
)


@pytest.fixture(scope="module")
def junit(tmp_path_factory, seed):
    """A junit XML written by a real pytest run of generated tests, some of which fail."""
    import random

    rng = random.Random(seed)
    folder = tmp_path_factory.mktemp("suite")
    outcomes = [rng.choice([True, False]) for _ in range(MAX_FAILED_LISTED + 7)]
    outcomes[0] = False
    source = "\n".join(
        f"def test_case_{i}():\n    assert {passes}\n" for i, passes in enumerate(outcomes)
    )
    (folder / "test_generated.py").write_text(source)
    xml = folder / "junit.xml"
    run_pytest(f"--junitxml={xml}", str(folder / "test_generated.py"), cwd=folder)
    return xml, outcomes


def test_summary_counts_and_names_what_failed(junit):
    xml, outcomes = junit
    summary = summarize_junit(xml, outcome="failure", pr_number=3)
    failed = [f"test_case_{i}" for i, passes in enumerate(outcomes) if not passes]
    assert summary.ran
    assert summary.tests == len(outcomes)
    assert summary.failed == len(failed)
    assert [name.rsplit("::", 1)[-1] for name in summary.failed_tests] == (
        failed[:MAX_FAILED_LISTED]
    )
    body = comment_body("## the report\n", summary)
    assert "**Tests: failed**" in body
    assert body.endswith("## the report\n")
    if len(failed) > MAX_FAILED_LISTED:
        assert f"and {len(failed) - MAX_FAILED_LISTED} more" in body


def test_a_missing_junit_means_the_tests_never_ran(tmp_path):
    summary = summarize_junit(tmp_path / "none.xml", outcome="failure", pr_number=None)
    assert summary.ran is False
    assert "failed before any test ran" in comment_body(None, summary)


def test_an_unknown_outcome_is_never_taken_for_success(tmp_path):
    summary = summarize_junit(tmp_path / "none.xml", outcome="weird", pr_number=None)
    assert summary.outcome == "failure"


@pytest.mark.parametrize(
    "payload",
    [
        {"pr_number": 0, "outcome": "success", "ran": True},
        {"pr_number": 1, "outcome": "success", "ran": True, "extra": "x"},
        {"pr_number": 1, "outcome": "passed", "ran": True},
        {"pr_number": 1, "outcome": "failure", "ran": True, "failed_tests": ["x" * 301]},
    ],
)
def test_an_invalid_summary_is_refused_without_echoing_it(tmp_path, payload):
    path = tmp_path / "tests.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(SummaryError) as raised:
        read_summary(path)
    assert "x" * 50 not in str(raised.value)
    assert "passed" not in str(raised.value)


def test_a_valid_summary_round_trips(tmp_path):
    summary = TestSummary(pr_number=5, outcome="success", ran=True, tests=4)
    path = tmp_path / "tests.json"
    path.write_text(summary.model_dump_json())
    assert read_summary(path) == summary
    assert "**Tests: passed** (4 tests" in comment_body("r", summary)


@pytest.mark.parametrize(
    ("needs", "code"),
    [
        (["tests=success", "report=success"], 0),
        (["tests=failure", "report=success"], 1),
        (["tests=success", "report=skipped"], 1),
        (["tests=success", "report="], 1),
        (["oops"], 1),
    ],
)
def test_required_check_passes_only_when_every_job_succeeded(needs, code, capsys):
    args = [item for need in needs for item in ("--need", need)]
    assert cli(["required-check", *args]) == code
