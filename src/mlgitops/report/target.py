"""Which pull request a report may be commented on: the artifact is untrusted data."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from mlgitops.github import GitHubError, get_json


class TargetError(ValueError):
    """The report does not name a pull request this run may comment on."""


def pr_number_from_report(path: Path) -> int:
    """The PR number in report.json, accepted only as a positive integer.

    Raises:
        TargetError: when the file is unreadable or the number is anything else.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))["pr_number"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise TargetError(f"{path} has no readable pr_number ({error})") from None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise TargetError(f"pr_number in {path} must be a positive integer, got {raw!r}")
    return raw


def verify_pull_request(
    client: httpx.Client, number: int, *, head_sha: str, repository: str
) -> None:
    """Check with the GitHub API that PR `number` of `repository` points at `head_sha`.

    The report is produced by the PR's own code, which could write any number into it; the
    comment job's trusted input is the triggering run's head commit.

    Raises:
        TargetError: when the PR does not exist, points elsewhere, or the API cannot answer.
    """
    if not repository or "/" not in repository:
        raise TargetError(f"expected the repository as owner/name, got {repository!r}")
    try:
        pull = get_json(client, f"/repos/{repository}/pulls/{number}")
    except GitHubError as error:
        raise TargetError(f"cannot check PR #{number}: {error}") from None
    actual = (pull.get("head") or {}).get("sha")
    if actual != head_sha:
        raise TargetError(
            f"PR #{number} points at {actual}, not at the run's head commit {head_sha}: "
            "the report names a different pull request"
        )
