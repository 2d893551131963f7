"""A pull request, executed: pr.yml's jobs by act, then pr-comment.yml on workflow_run."""

from __future__ import annotations

import json
import time

import pytest
import yaml
from harness import FIGURES, REPOSITORY, ActRun, Repository

from helpers import change_a_hyperparameter, run

pytestmark = pytest.mark.slow

WATERMARK = 'CML watermark mlgitops report"'


def pull_request_event(pull: dict) -> dict:
    return {
        "action": "synchronize",
        "number": pull["number"],
        "pull_request": pull,
        "repository": {"full_name": REPOSITORY, "default_branch": "main"},
    }


def workflow_run_event(pr_run: ActRun, pull: dict, conclusion: str) -> dict:
    """What GitHub sends pr-comment.yml when a pr run finishes (built here: act does not
    chain workflow_run)."""
    return {
        "action": "completed",
        "workflow_run": {
            "id": pr_run.run_id,
            "name": "pr",
            "event": "pull_request",
            "conclusion": conclusion,
            "head_sha": pull["head"]["sha"],
            "head_branch": pull["head"]["ref"],
            "head_repository": {"full_name": REPOSITORY},
        },
        "repository": {"full_name": REPOSITORY, "default_branch": "main"},
    }


def run_pr(repo: Repository, pull: dict, job: str) -> ActRun:
    return repo.act(
        "pull_request",
        "pr.yml",
        pull_request_event(pull),
        ref=f"refs/pull/{pull['number']}/merge",
        job=job,
    )


def comment(repo: Repository, pr_run: ActRun, pull: dict, conclusion: str) -> ActRun:
    return repo.act(
        "workflow_run", "pr-comment.yml", workflow_run_event(pr_run, pull, conclusion), ref="main"
    )


def artifact(repo: Repository, run: ActRun, name: str):
    return repo.state.artifacts / str(run.run_id) / name


def comment_writes(repo: Repository) -> list:
    return [c for c in repo.state.calls if c.method in {"POST", "PATCH"} and "comments" in c.path]


def test_a_pr_changing_a_hyperparameter_is_reported_gated_and_commented(repository):
    # Given main and a PR changing one hyperparameter of whatever estimator params.yaml has,
    # when pr.yml's report job runs on the PR's merge ref, then it succeeds (report and gate
    # green), and its artifact holds a report naming the PR and its head.
    repo = repository
    run(["git", "switch", "-q", "-c", "tune"], repo.work)
    change = change_a_hyperparameter(repo.work / "params.yaml")
    repo.commit(f"tune {change.key}")
    pull = repo.open_pull_request(7, "tune")
    pushed = time.monotonic()
    report = run_pr(repo, pull, "report")
    assert report.returncode == 0, report.log[-5000:]
    data = json.loads((artifact(repo, report, "pr-report") / "report.json").read_text())
    assert data["pr_number"] == 7
    assert data["head"]["sha"] == pull["head"]["sha"], "the report names the PR head"
    assert {"key": change.key, "base": change.old, "new": change.new} in data["params_diff"]
    assert data["verdict"]["passed"], data["verdict"]
    assert data["deployment_record"] == "none", "nothing was deployed yet"
    markdown = (artifact(repo, report, "pr-report") / "report.md").read_text()
    assert "git fetch origin pull/7/head" in markdown
    stages = {row["stage"]: row["status"] for row in data["stages"]}
    assert stages["train"] == "ran here", stages

    # When pr-comment.yml runs for that finished run, then one comment is posted on PR 7,
    # with the report and the watermark, and nothing is published by CML.
    first = comment(repo, report, pull, "success")
    assert first.returncode == 0, first.log[-5000:]
    FIGURES["push to comment, report job + pr-comment (s)"] = time.monotonic() - pushed
    posts = comment_writes(repo)
    assert [(c.method, c.path) for c in posts] == [
        ("POST", f"/repos/{REPOSITORY}/issues/7/comments")
    ]
    (posted,) = repo.state.comments
    assert markdown.strip() in posted["body"], "the comment is not the report"
    assert WATERMARK in posted["body"]
    assert not repo.state.calls_to("POST", "/_cml_publish"), "CML published runner files"

    # When the PR gets a second push and both workflows run again, then the same comment is
    # edited in place: still one comment, now naming the new head.
    run(["git", "switch", "-q", "tune"], repo.work)
    change_a_hyperparameter(repo.work / "params.yaml")
    repo.commit("tune again")
    pull = repo.open_pull_request(7, "tune")
    again = run_pr(repo, pull, "report")
    assert again.returncode == 0, again.log[-5000:]
    second = comment(repo, again, pull, "success")
    assert second.returncode == 0, second.log[-5000:]
    assert [c.method for c in comment_writes(repo)] == ["POST", "PATCH"]
    assert len(repo.state.comments) == 1, "a second comment was posted"
    assert pull["head"]["sha"][:12] in repo.state.comments[0]["body"]

    # When the artifact names another PR (8, at another commit), then the comment job
    # refuses before CML runs: nothing is written on either PR.
    forged = artifact(repo, again, "pr-report") / "report.json"
    forged.write_text(json.dumps({**json.loads(forged.read_text()), "pr_number": 8}))
    repo.state.pulls[8] = {
        **repo.state.pulls[7],
        "number": 8,
        "head": {"ref": "x", "sha": "0" * 40},
    }
    refused = comment(repo, again, pull, "success")
    assert refused.returncode != 0, "a forged PR number was accepted"
    assert "refusing to comment" in refused.log
    assert [c.method for c in comment_writes(repo)] == ["POST", "PATCH"], "a forged write"


def test_a_pr_failing_the_gate_is_red_and_its_comment_says_why(repository):
    # Given a PR that makes the model much weaker (one shallow tree), when the report job runs,
    # then it fails at the gate, uploads the report anyway, and the comment says the gate failed.
    repo = repository
    run(["git", "switch", "-q", "-c", "weaker"], repo.work)
    params_path = repo.work / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["train"]["estimator"] = {"name": "logistic_regression", "C": 0.0001, "max_iter": 5}
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    repo.commit("a much weaker model")
    pull = repo.open_pull_request(9, "weaker")
    report = run_pr(repo, pull, "report")
    assert report.returncode != 0, "the gate let a much weaker model through"
    assert "gate FAILED" in report.log
    data = json.loads((artifact(repo, report, "pr-report") / "report.json").read_text())
    assert data["verdict"]["passed"] is False
    posted = comment(repo, report, pull, "failure")
    assert posted.returncode == 0, posted.log[-5000:]
    (body,) = [c["body"] for c in repo.state.comments]
    assert "**Gate: failed**" in body


def test_a_pr_whose_tests_fail_gets_a_comment_saying_what_failed(repository):
    # Given a PR adding a test module that cannot even be collected, when pr.yml's tests job
    # runs, then it fails, its summary names the module, and the comment says the tests
    # failed and which, with no report (the report job did not run in this scenario).
    repo = repository
    run(["git", "switch", "-q", "-c", "broken"], repo.work)
    (repo.work / "tests" / "unit" / "test_broken.py").write_text("def test_x(:\n")
    repo.commit("a broken test")
    pull = repo.open_pull_request(11, "broken")
    tests = run_pr(repo, pull, "tests")
    assert tests.returncode != 0, "the tests job passed with a broken test module"
    summary = json.loads((artifact(repo, tests, "pr-tests") / "tests.json").read_text())
    assert summary["outcome"] == "failure"
    assert summary["pr_number"] == 11
    assert any("test_broken" in name for name in summary["failed_tests"]), summary
    posted = comment(repo, tests, pull, "failure")
    assert posted.returncode == 0, posted.log[-5000:]
    (body,) = [c["body"] for c in repo.state.comments]
    assert "**Tests: failed**" in body
    assert "test_broken" in body
    assert "**No report**" in body
