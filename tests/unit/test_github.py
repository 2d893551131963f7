"""The GitHub Actions adapter: step outputs, the job summary, and fetching deploy.yml's record
from the GitHub API (against a stand-in on 127.0.0.1)."""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlparse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import StartStub, StubReply, StubRequest
from mlgitops.cli import main as cli
from mlgitops.github import (
    GitHubError,
    api_client,
    fetch_deployment_record,
    step_output,
    step_summary,
)

REPO = "octo/demo"
RECORD = '{"event": "release", "commit": "abc123", "serving": true}\n'


NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(values=st.dictionaries(NAMES, st.text(max_size=80), min_size=1, max_size=4))
def test_step_outputs_hold_any_value_and_add_nothing(tmp_path_factory, values):
    # Given any values, a multi-line commit message or one that mimics the file's syntax
    # included, when step_output writes them, then each reads back as exactly its value and no
    # line of a value becomes an output of its own.
    path = tmp_path_factory.mktemp("outputs") / "github_output"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GITHUB_OUTPUT", str(path))
        step_output(**values)
    with path.open(encoding="utf-8", newline="") as handle:  # keep a value's \r as written
        text = handle.read()
    found = {}
    block = re.compile(r"([a-z0-9_]+)<<(ghadelimiter_[0-9a-f]{32})\n(.*?)\n\2\n", re.S)
    position = 0
    while position < len(text):
        match = block.match(text, position)
        if match:
            assert match.group(2) not in match.group(3), "the delimiter occurs in the value"
            found[match.group(1)] = match.group(3)
            position = match.end()
            continue
        line, _, _ = text[position:].partition("\n")
        name, _, value = line.partition("=")
        found[name] = value
        position += len(line) + 1
    assert found == values, f"wrote {text!r}"


def test_step_output_and_summary_write_nothing_outside_actions(tmp_path, monkeypatch):
    # Given no runner files in the environment, then neither writer creates a file.
    monkeypatch.chdir(tmp_path)
    step_output(name="value")
    step_summary("# heading")
    assert list(tmp_path.iterdir()) == [], "a writer created a file outside GitHub Actions"


def test_step_summary_appends_markdown(tmp_path, monkeypatch):
    # Given a job summary with text, then each summary is appended on its own line.
    summary = tmp_path / "summary.md"
    summary.write_text("earlier\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    step_summary("## one")
    step_summary("two")
    assert summary.read_text(encoding="utf-8") == "earlier\n## one\ntwo\n"


def zipped(name: str, text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, text)
    return buffer.getvalue()


@dataclass
class StandIn:
    """What the stand-in API serves, and what it was asked."""

    url: str = ""
    runs: list[dict] = field(default_factory=list)
    artifacts: dict[int, list[dict]] = field(default_factory=dict)
    archive: bytes = b""
    runs_status: int = 200
    requests: list[tuple[str, str | None]] = field(default_factory=list)


@pytest.fixture
def github(http_stub: StartStub) -> StandIn:
    """A stand-in for the GitHub REST API: workflow runs, their artifacts, an archive behind
    a redirect (as GitHub sends archives from storage elsewhere)."""
    state = StandIn()

    def answer(request: StubRequest) -> StubReply:
        url = urlparse(request.path)
        state.requests.append((request.path, request.headers.get("Authorization")))
        if url.path == f"/repos/{REPO}/actions/workflows/deploy.yml/runs":
            return StubReply(state.runs_status, {"workflow_runs": state.runs})
        if url.path.startswith(f"/repos/{REPO}/actions/runs/"):
            run = int(url.path.split("/")[6])
            return StubReply(200, {"artifacts": state.artifacts.get(run, [])})
        if url.path == "/download/record":
            return StubReply(302, body=b"", headers={"Location": f"{state.url}/storage/record.zip"})
        if url.path == "/storage/record.zip":
            return StubReply(200, body=state.archive, headers={"Content-Type": "application/zip"})
        return StubReply(404, {"message": "Not Found"})

    state.url = http_stub(answer).url
    return state


def artifact(*, expired: bool = False) -> dict:
    return {
        "name": "deployment-record",
        "expired": expired,
        "archive_download_url": "/download/record",
    }


def test_newest_run_with_a_record_is_written(github, tmp_path):
    # Given the newest finished deploy run whose record expired and an older one with its
    # record, when fetched, then the older run's deployments.jsonl is written, following
    # the download redirect, with the token on every API call.
    github.runs = [{"id": 300, "conclusion": "failure"}, {"id": 200, "conclusion": "success"}]
    github.artifacts = {300: [artifact(expired=True)], 200: [artifact()]}
    github.archive = zipped("deployments.jsonl", RECORD)
    output = tmp_path / "deployments.jsonl"
    with api_client("t0ken", github.url) as client:
        run = fetch_deployment_record(client, REPO, output)
    assert run == 200, f"used run {run}"
    assert output.read_text() == RECORD
    api_calls = [(path, auth) for path, auth in github.requests if path.startswith("/repos/")]
    assert {auth for _, auth in api_calls} == {"Bearer t0ken"}, github.requests
    query = parse_qs(urlparse(api_calls[0][0]).query)
    assert query["status"] == ["completed"], "unfinished runs have no record yet"
    assert query["branch"] == ["main"], query


def test_nothing_deployed_yet_writes_nothing(github, tmp_path):
    # Given no finished deploy run, then nothing is written and None says so.
    output = tmp_path / "deployments.jsonl"
    with api_client("", github.url) as client:
        assert fetch_deployment_record(client, REPO, output) is None
    assert not output.exists(), "a record was written with no deploy run"


@pytest.mark.parametrize(
    ("archive", "message"),
    [(b"not a zip", "not a zip"), (zipped("other.txt", "x"), "deployments.jsonl")],
    ids=["not-zip", "no-record-inside"],
)
def test_a_broken_archive_is_refused(github, tmp_path, archive, message):
    # Given a record artifact that is not a zip holding deployments.jsonl, then it is refused
    # naming the run, and nothing is written.
    github.runs = [{"id": 7}]
    github.artifacts = {7: [artifact()]}
    github.archive = archive
    output = tmp_path / "deployments.jsonl"
    with api_client("", github.url) as client, pytest.raises(GitHubError, match=message):
        fetch_deployment_record(client, REPO, output)
    assert not output.exists()


def test_command_writes_the_record_and_says_which_run(github, tmp_path, monkeypatch, capsys):
    # Given the environment Actions sets, when `mlgitops fetch-deployments` runs, then it
    # writes the record and names the run.
    github.runs = [{"id": 41, "conclusion": "success", "head_sha": "abc123"}]
    github.artifacts = {41: [artifact()]}
    github.archive = zipped("deployments.jsonl", RECORD)
    monkeypatch.setenv("GITHUB_API_URL", github.url)
    monkeypatch.setenv("GITHUB_REPOSITORY", REPO)
    output = tmp_path / "deployments.jsonl"
    assert cli(["fetch-deployments", "--output", str(output)]) == 0
    assert output.read_text() == RECORD
    assert "run 41" in capsys.readouterr().out


def test_command_says_what_permission_is_missing(github, tmp_path, monkeypatch, caplog):
    # Given an API that refuses (a token without `actions: read`), then the command exits 1
    # naming GitHub's answer and the permission, and writes nothing.
    github.runs_status = 403
    monkeypatch.setenv("GITHUB_API_URL", github.url)
    monkeypatch.setenv("GITHUB_REPOSITORY", REPO)
    output = tmp_path / "deployments.jsonl"
    assert cli(["fetch-deployments", "--output", str(output)]) == 1
    assert "403" in caplog.text, caplog.text
    assert "actions: read" in caplog.text, caplog.text
    assert not output.exists()
