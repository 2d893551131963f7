"""What the PR's test job found, summarized for the comment; the comment body itself."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# Failed tests named in the comment; the rest are counted. Names are capped too: the summary
# is PR-controlled data read by the privileged comment job.
MAX_FAILED_LISTED = 20
MAX_NAME = 300
MAX_SUMMARY_BYTES = 64_000

Outcome = Literal["success", "failure", "cancelled", "skipped"]


class TestSummary(BaseModel):
    """tests.json: the outcome of `make test` and which tests failed."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    __test__ = False  # not a pytest test class

    pr_number: Annotated[int, Field(ge=1)] | None = None
    outcome: Outcome
    ran: bool  # pytest wrote results; False when `make test` failed before (e.g. install)
    tests: Annotated[int, Field(ge=0)] = 0
    failed: Annotated[int, Field(ge=0)] = 0
    errors: Annotated[int, Field(ge=0)] = 0
    skipped: Annotated[int, Field(ge=0)] = 0
    failed_tests: Annotated[
        list[Annotated[str, Field(max_length=MAX_NAME)]], Field(max_length=MAX_FAILED_LISTED)
    ] = []


class SummaryError(ValueError):
    """tests.json is missing, too large or not a test summary."""


def summarize_junit(junit: Path, *, outcome: str, pr_number: int | None) -> TestSummary:
    """The summary of a junit XML report as pytest writes it (one file of the job's own run).

    A missing or unreadable file means pytest never finished writing it: `ran` is False.
    """
    try:
        root = ElementTree.parse(junit).getroot()
    except (OSError, ElementTree.ParseError):
        return TestSummary(pr_number=pr_number, outcome=_outcome(outcome), ran=False)
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    failed_names = []
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            name = f"{case.get('classname', '')}::{case.get('name', '')}".strip(":")
            failed_names.append(name[:MAX_NAME])

    def total(key: str) -> int:
        return sum(int(suite.get(key, "0") or 0) for suite in suites)

    return TestSummary(
        pr_number=pr_number,
        outcome=_outcome(outcome),
        ran=True,
        tests=total("tests"),
        failed=total("failures"),
        errors=total("errors"),
        skipped=total("skipped"),
        failed_tests=failed_names[:MAX_FAILED_LISTED],
    )


def _outcome(text: str) -> Outcome:
    # A step outcome from GitHub; anything else is treated as a failure, never as success.
    return text if text in {"success", "failure", "cancelled", "skipped"} else "failure"  # type: ignore[return-value]


def read_summary(path: Path) -> TestSummary:
    """tests.json from the PR's artifact, validated (it is untrusted data).

    Raises:
        SummaryError: naming what was expected; never echoing the file's content.
    """
    try:
        if path.stat().st_size > MAX_SUMMARY_BYTES:
            raise SummaryError(f"{path} is larger than {MAX_SUMMARY_BYTES} bytes")
        return TestSummary.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except OSError as error:
        raise SummaryError(f"cannot read {path}: {error.strerror}") from None
    except json.JSONDecodeError:
        raise SummaryError(f"{path} is not JSON") from None
    except ValidationError as error:
        fields = sorted({".".join(map(str, e["loc"])) for e in error.errors()})
        raise SummaryError(f"{path} is not a test summary (invalid: {', '.join(fields)})") from None


def _code(text: str) -> str:
    return "`" + text.replace("`", "'").replace("\n", " ") + "`"


def tests_section(summary: TestSummary | None) -> str:
    """The lines the comment opens with about the tests."""
    if summary is None:
        return "> [!WARNING]\n> **Tests: no result.** The tests job uploaded no summary.\n"
    if summary.outcome == "success":
        return f"**Tests: passed** ({summary.tests} tests, {summary.skipped} skipped)\n"
    if not summary.ran:
        return (
            "> [!CAUTION]\n> **Tests: failed before any test ran** (`make test` stopped while "
            "installing or collecting; see the tests job's log).\n"
        )
    lines = [
        "> [!CAUTION]",
        f"> **Tests: failed**: {summary.failed} failed, {summary.errors} errors of "
        f"{summary.tests} tests.",
    ]
    lines += [f"> - {_code(name)}" for name in summary.failed_tests]
    hidden = summary.failed + summary.errors - len(summary.failed_tests)
    if hidden > 0:
        lines.append(f"> - and {hidden} more (see the tests job's log)")
    return "\n".join(lines) + "\n"


def comment_body(report_markdown: str | None, summary: TestSummary | None) -> str:
    """The PR comment: what the tests found, then the report (or why there is none)."""
    report = (
        report_markdown
        if report_markdown is not None
        else (
            "> [!CAUTION]\n> **No report**: the report job failed before writing "
            "`report.md` (see its log: reproducing the pipeline or building the report "
            "failed). The gate did not run.\n"
        )
    )
    return tests_section(summary) + "\n" + report
