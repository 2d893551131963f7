"""The one GitHub Actions adapter: step outputs, the job summary, and the REST calls."""

from __future__ import annotations

import io
import logging
import os
import secrets
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.github.com"
# What deploy.yml uploads after every deploy, pass or fail: deployments.jsonl.
DEPLOYMENT_ARTIFACT = "deployment-record"
DEPLOYMENT_FILE = "deployments.jsonl"
# Deploy runs looked at, newest first, for one that still has its record (artifacts expire).
RUNS_SEARCHED = 20


class GitHubError(RuntimeError):
    """The GitHub API refused or could not answer a request."""


def step_output(**values: str) -> None:
    """Append `values` to the step outputs file ($GITHUB_OUTPUT), when there is one.

    A single-line value is written as `name=value`; a multi-line one between random
    delimiters, so a commit message cannot end the value early or add outputs of its own.

    Args:
        **values: output name to value.
    """
    path = os.environ.get("GITHUB_OUTPUT")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as handle:
        for name, value in values.items():
            if "\n" not in value and "\r" not in value:
                handle.write(f"{name}={value}\n")
                continue
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
            handle.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def step_summary(markdown: str) -> None:
    """Append `markdown` to the job summary ($GITHUB_STEP_SUMMARY), when there is one.

    Args:
        markdown: the text shown on the run's summary page.
    """
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(markdown + "\n")


def api_client(token: str, api_url: str, timeout: float = 10) -> httpx.Client:
    """A client of the GitHub REST API, authenticated with `token` when there is one."""
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(
        base_url=api_url.rstrip("/"), headers=headers, timeout=timeout, follow_redirects=True
    )


def client_from_environ(environ: Mapping[str, str] | None = None) -> httpx.Client:
    """The API client of an Actions job: token from GITHUB_TOKEN, address from GITHUB_API_URL."""
    environ = os.environ if environ is None else environ
    return api_client(
        environ.get("GITHUB_TOKEN", ""), environ.get("GITHUB_API_URL", DEFAULT_API_URL)
    )


def repository_from_environ(given: str | None, environ: Mapping[str, str] | None = None) -> str:
    """`given` (owner/name), else the job's own repository (GITHUB_REPOSITORY)."""
    environ = os.environ if environ is None else environ
    return given or environ.get("GITHUB_REPOSITORY", "")


def get_json(client: httpx.Client, path: str, **params: Any) -> Any:
    """GET `path` and its JSON body.

    Raises:
        GitHubError: naming the path and GitHub's status or the transport error.
    """
    try:
        response = client.get(path, params=params)
    except httpx.HTTPError as error:
        raise GitHubError(f"cannot reach the GitHub API for {path}: {error}") from None
    if response.status_code != 200:
        raise GitHubError(f"GitHub answered {response.status_code} for {path}")
    return response.json()


def fetch_deployment_record(
    client: httpx.Client,
    repository: str,
    destination: Path,
    *,
    workflow: str = "deploy.yml",
    branch: str = "main",
) -> int | None:
    """Write the deployment record of the newest finished `workflow` run on `branch`.

    deploy.yml uploads `deployments.jsonl` after every run, pass or fail (a failed deploy
    records the restore of the previous release), so the newest finished run that still has
    its artifact says what is serving.

    Returns:
        The id of the run whose record was written, or None when no run has one (nothing
        deployed yet, or every record expired).

    Raises:
        GitHubError: when the API refuses (e.g. the token lacks `actions: read`) or the
            artifact is not a zip holding deployments.jsonl.
    """
    if not repository or "/" not in repository:
        raise GitHubError(f"expected the repository as owner/name, got {repository!r}")
    runs = get_json(
        client,
        f"/repos/{repository}/actions/workflows/{workflow}/runs",
        branch=branch,
        status="completed",
        per_page=RUNS_SEARCHED,
    ).get("workflow_runs", [])
    for run in runs:
        artifacts = get_json(
            client,
            f"/repos/{repository}/actions/runs/{run['id']}/artifacts",
            name=DEPLOYMENT_ARTIFACT,
        ).get("artifacts", [])
        usable = [
            a for a in artifacts if a.get("name") == DEPLOYMENT_ARTIFACT and not a.get("expired")
        ]
        if not usable:
            continue
        try:
            response = client.get(usable[0]["archive_download_url"])
        except httpx.HTTPError as error:
            raise GitHubError(f"cannot download the record of run {run['id']}: {error}") from None
        if response.status_code != 200:
            raise GitHubError(
                f"GitHub answered {response.status_code} for the record of run {run['id']}"
            )
        try:
            with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
                record = archive.read(DEPLOYMENT_FILE)
        except (zipfile.BadZipFile, KeyError) as error:
            raise GitHubError(
                f"the record of run {run['id']} is not a zip holding {DEPLOYMENT_FILE}: {error}"
            ) from None
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(record)
        logger.info(
            "wrote %s from deploy run %s (%s, commit %s)",
            destination,
            run["id"],
            run.get("conclusion"),
            str(run.get("head_sha", ""))[:12],
        )
        return int(run["id"])
    logger.info("no finished %s run on %s has a deployment record", workflow, branch)
    return None
