"""The report and gate end to end on a real git repository with a base and a PR revision."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import (
    EXAMPLE_PARAMS_PATH,
    ParamChange,
    StartStub,
    StubReply,
    StubRequest,
    change_a_hyperparameter,
    run,
)
from mlgitops.cli import main as cli
from mlgitops.markdown import fmt

BASE_METRICS = {
    "accuracy_score": 0.93,
    "balanced_accuracy_score": 0.93,
    "macro_f1_score": 0.93,
    "roc_auc_ovr_score": 0.95,
    "log_loss": 0.3,
    "test_rows": 100,
    "ci": {
        "balanced_accuracy_score": {"low": 0.88, "high": 0.97, "confidence": 0.95},
        "macro_f1_score": {"low": 0.88, "high": 0.97, "confidence": 0.95},
        "log_loss": {"low": 0.25, "high": 0.35, "confidence": 0.95},
    },
}


def pr_metrics(score: float, half_width: float, loss: float = 0.3) -> dict:
    metrics = copy.deepcopy(BASE_METRICS)
    metrics.update(balanced_accuracy_score=score, macro_f1_score=score, log_loss=loss)
    for name in ("balanced_accuracy_score", "macro_f1_score"):
        metrics["ci"][name] = {
            "low": score - half_width,
            "high": score + half_width,
            "confidence": 0.95,
        }
    return metrics


def validation(columns: dict) -> dict:
    return {"valid": True, "failures": [], "rows": 300, "columns": columns}


def training_rows(seed: int, shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "Island": rng.choice(["Biscoe", "Dream"], size=300),
            "Body Mass (g)": rng.normal(4000, 300, size=300) + shift,
            "Flipper Length (mm)": rng.normal(200, 10, size=300),
        }
    )


def write(repo: Path, relative: str, payload) -> None:
    path = repo / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        path.write_text(json.dumps(payload, indent=2))
    elif path.suffix == ".csv":
        payload.to_csv(path, index=False)
    else:
        path.write_text(payload if isinstance(payload, str) else yaml.safe_dump(payload))


def commit(repo: Path, message: str) -> str:
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message], repo)
    return run(["git", "rev-parse", "HEAD"], repo).stdout.strip()


@pytest.fixture(scope="module")
def base_revision(tmp_path_factory: pytest.TempPathFactory, seed: int) -> Path:
    """A project at its base revision, built once per module: `git init`, `dvc init` and
    `dvc add` take seconds, a copy of their result milliseconds."""
    repo = tmp_path_factory.mktemp("base") / "project"
    repo.mkdir()
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["dvc", "init", "-q"], repo)
    # The fixture rows are penguin-like, so the params are the example's, not the project's.
    params = yaml.safe_load(EXAMPLE_PARAMS_PATH.read_text())
    params["gates"].pop("latency_budget_ms_per_row")
    write(repo, "params.yaml", params)
    write(repo, "reports/metrics.json", BASE_METRICS)
    write(
        repo,
        "reports/validation.json",
        validation(
            {
                "Island": {
                    "dtype": "category",
                    "role": "feature",
                    "null_rate": 0.0,
                    "categories": {"Biscoe": 150, "Dream": 150},
                },
                "Body Mass (g)": {"dtype": "float", "role": "feature", "null_rate": 0.0},
            }
        ),
    )
    write(
        repo,
        "reports/shap_importance.json",
        {"mean_abs_shap": {"Body Mass (g)": 0.2, "Island": 0.1}},
    )
    write(repo, "data.dvc", {"outs": [{"md5": "aaaa.dir", "path": "data"}]})
    write(repo, "artifacts/train.csv", training_rows(seed, 0.0))
    run(["dvc", "add", "-q", "artifacts/train.csv"], repo)
    commit(repo, "base")
    return repo


@pytest.fixture
def repo(tmp_path: Path, base_revision: Path) -> Path:
    """A project at its base revision: metrics, params, validation, SHAP, data and train rows
    (this test's own copy of the module's one)."""
    return Path(shutil.copytree(base_revision, tmp_path / "project", symlinks=True))


def make_pr(repo: Path, seed: int, metrics: dict) -> ParamChange:
    """Workspace changes of a PR: a param, the data, a new column and category, shifted rows."""
    change = change_a_hyperparameter(repo / "params.yaml")
    write(repo, "reports/metrics.json", metrics)
    write(
        repo,
        "reports/validation.json",
        validation(
            {
                "Island": {
                    "dtype": "category",
                    "role": "feature",
                    "null_rate": 0.1,
                    "categories": {"Biscoe": 100, "Dream": 100, "Torgersen": 70},
                },
                "Body Mass (g)": {"dtype": "float", "role": "feature", "null_rate": 0.0},
                "Ring Colour": {"dtype": "category", "role": "feature", "null_rate": 0.0},
            }
        ),
    )
    write(
        repo,
        "reports/shap_importance.json",
        {"mean_abs_shap": {"Island": 0.3, "Body Mass (g)": 0.1}},
    )
    write(repo, "data.dvc", {"outs": [{"md5": "bbbb.dir", "path": "data"}]})
    write(repo, "artifacts/train.csv", training_rows(seed + 1, 1000.0))
    run(["dvc", "add", "-q", "artifacts/train.csv"], repo)
    return change


def report(repo: Path, base: str = "HEAD", *extra: str) -> tuple[int, dict, str]:
    code = cli(
        [
            "report",
            "--repo",
            str(repo),
            "--base",
            base,
            "--params",
            "params.yaml",
            "--output-dir",
            str(repo / "out"),
            *extra,
        ]
    )
    if code != 0:
        return code, {}, ""
    return (
        code,
        json.loads((repo / "out" / "report.json").read_text()),
        (repo / "out" / "report.md").read_text(),
    )


def test_metrics_params_and_data_diffs(repo, seed, monkeypatch, tmp_path):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    change = make_pr(repo, seed, pr_metrics(0.95, 0.03, loss=0.2))
    code, data, markdown = report(repo, "HEAD", "--pr-number", "12")
    assert code == 0
    assert data["pr_number"] == 12
    headline = {r["metric"]: r for r in data["headline"]}
    assert headline["balanced_accuracy_score"]["delta"] == pytest.approx(0.02)
    assert headline["log_loss"]["improved"] is True
    assert {"key": change.key, "base": change.old, "new": change.new} in data["params_diff"]
    diff = data["data_diff"]
    assert diff["data_changed"]
    assert diff["data_hash_base"] == "aaaa.dir"
    assert {"column": "Ring Colour", "change": "added", "dtype": "category"} in diff[
        "schema_changes"
    ]
    island = next(c for c in diff["column_changes"] if c["column"] == "Island")
    assert island["new_categories"] == ["Torgersen"]
    assert island["null_rate_new"] == 0.1
    assert diff["drift"][0]["feature"] == "Body Mass (g)", "the shifted feature drifts most"
    assert diff["drift"][0]["statistic"] > 0.9
    assert data["features"][0] == {
        "feature": "Island",
        "rank": 1,
        "new": 0.3,
        "base": 0.1,
        "base_rank": 2,
    }
    assert data["verdict"]["passed"]
    for text in (
        "Headline metrics",
        "| `balanced_accuracy_score` | 0.9300 | 0.9500 | +0.0200",
        f"`{change.key}` | {fmt(change.old)} | {fmt(change.new)}",
        "Torgersen",
        "xychart-beta",
        "git checkout",
        "Gate: passed",
    ):
        assert text in markdown, f"report.md lacks {text!r}"
    assert summary.read_text().strip() == markdown.strip(), "the job summary gets the report"


@pytest.mark.parametrize(
    ("metrics", "passes", "why"),
    [
        (pr_metrics(0.95, 0.03, loss=0.2), True, "an improvement"),
        (pr_metrics(0.915, 0.04), True, "noise inside the interval"),
        (pr_metrics(0.70, 0.03, loss=0.6), False, "an injected regression"),
    ],
)
def test_gate_exit_code(repo, seed, capsys, metrics, passes, why):
    make_pr(repo, seed, metrics)
    assert report(repo)[0] == 0
    capsys.readouterr()
    code = cli(["gate", "--report", str(repo / "out" / "report.json")])
    printed = capsys.readouterr().out
    assert (code == 0) is passes, f"{why}: gate exit {code}\n{printed}"
    if not passes:
        assert re.search(r"FAILED +non_inferiority \(base\): balanced_accuracy_score", printed)
        assert "0.9300" in printed, "the base value is printed"
        assert "0.7300" in printed, "the PR's value (its interval's upper bound) is printed"


def test_base_without_metrics_says_no_baseline(repo, seed):
    (repo / "reports" / "metrics.json").unlink()
    commit(repo, "base without metrics")
    make_pr(repo, seed, pr_metrics(0.93, 0.03))
    code, data, markdown = report(repo)
    assert code == 0
    assert data["base"]["has_metrics"] is False
    assert "No baseline" in markdown
    assert data["verdict"]["passed"], "comparisons are skipped, floors still apply"


def test_deployed_record_is_compared(repo, seed):
    deployed = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    (repo / "deployments.jsonl").write_text(
        json.dumps({"commit": deployed, "outcome": "released"})
        + "\n"
        + json.dumps({"commit": "0" * 40, "outcome": "failed"})
        + "\n"
    )
    make_pr(repo, seed, pr_metrics(0.95, 0.03))
    code, data, markdown = report(repo)
    assert code == 0
    assert data["deployed"]["commit"] == deployed, "a failed release is not what is deployed"
    assert any(r["against"] == "deployed" for r in data["verdict"]["rules"])
    assert "Δ vs deployed" in markdown


def test_shallow_clone_says_how_to_fetch_the_base(repo, seed, tmp_path, caplog):
    base = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    make_pr(repo, seed, pr_metrics(0.9, 0.03))
    commit(repo, "pr")
    clone = tmp_path / "shallow"
    run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(clone)], tmp_path)
    code, _, _ = report(clone, base)
    assert code == 1
    assert "git fetch --unshallow" in caplog.text
    assert "fetch-depth: 0" in caplog.text


def test_size_capping_on_a_huge_params_diff(repo, seed):
    make_pr(repo, seed, pr_metrics(0.9, 0.03))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["contract"]["columns"].update(
        {f"extra column {i}": {"dtype": "float", "description": "x" * 200} for i in range(400)}
    )
    write(repo, "params.yaml", params)
    code, _, markdown = report(repo)
    assert code == 0
    assert len(markdown) < 65_536
    assert "shortened to fit" in markdown


@pytest.mark.parametrize(
    ("number", "ok"),
    [(7, True), (0, False), (-3, False), ("7", False), ("7; rm -rf /", False), (True, False)],
)
def test_comment_target_accepts_only_positive_integers(tmp_path, monkeypatch, number, ok):
    output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"pr_number": number}))
    code = cli(["comment-target", "--report", str(path)])
    assert (code == 0) is ok, f"PR number {number!r}"  # no --head-sha: format check only
    if ok:
        assert output.read_text() == "pr_number=7\n"
    else:
        assert not output.exists(), "nothing is written for a refused number"


@pytest.fixture
def github_api(http_stub: StartStub) -> str:
    """A stand-in for the GitHub REST API on 127.0.0.1 that knows PR #7 at commit abc123."""

    def answer(request: StubRequest) -> StubReply:
        if request.path == "/repos/octo/demo/pulls/7":
            return StubReply(200, {"number": 7, "head": {"sha": "abc123"}})
        return StubReply(404, {"message": "Not Found"})

    return http_stub(answer).url


@pytest.mark.parametrize(
    ("number", "head", "ok"),
    [(7, "abc123", True), (7, "fff999", False), (8, "abc123", False)],
)
def test_comment_target_checks_the_pr_points_at_the_run(
    tmp_path, monkeypatch, github_api, number, head, ok
):
    # Given a report naming PR `number`, when the run's head commit is `head`, then only the
    # PR that really points at that commit is accepted.
    monkeypatch.setenv("GITHUB_API_URL", github_api)
    monkeypatch.setenv("GITHUB_REPOSITORY", "octo/demo")
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"pr_number": number}))
    code = cli(["comment-target", "--report", str(path), "--head-sha", head])
    assert (code == 0) is ok, f"PR #{number} at head {head}"


def test_report_refuses_a_bad_pr_number_argument(repo):
    with pytest.raises(SystemExit):
        cli(["report", "--repo", str(repo), "--pr-number", "abc"])


def test_git_is_available():
    assert subprocess.run(["git", "--version"], capture_output=True, check=False).returncode == 0


def test_report_names_the_pr_head_to_reproduce_not_the_test_merge(repo, seed):
    # Given CI's checkout (a test merge commit nobody else has) and the PR's head, when the
    # report is built with --head-sha, then it tells the reviewer to fetch the PR's head.
    make_pr(repo, seed, pr_metrics(0.95, 0.03))
    merge = commit(repo, "the test merge CI checks out")
    pr_head = "1234567890abcdef" * 2 + "12345678"
    code, data, markdown = report(repo, "HEAD~1", "--pr-number", "12", "--head-sha", pr_head)
    assert code == 0
    assert data["head"]["sha"] == pr_head, "the report records the PR head"
    assert "git fetch origin pull/12/head" in markdown
    assert f"git checkout {pr_head}" in markdown
    assert merge not in markdown, "the test merge commit is never offered to reproduce"


def test_report_tells_stages_committed_with_the_pr_from_run_cache_restores(repo, seed):
    # Given a base dvc.lock, a PR that committed a new entry for stage `train` and a workspace
    # where DVC restored a different `evaluate` entry (run cache), then the stage table tells
    # the two apart.
    def lock(train: str, evaluate: str) -> dict:
        return {
            "schema": "2.0",
            "stages": {"train": {"cmd": train}, "evaluate": {"cmd": evaluate}},
        }

    write(repo, "dvc.yaml", {"stages": {"train": {"cmd": "t"}, "evaluate": {"cmd": "e"}}})
    write(repo, "dvc.lock", lock("base", "base"))
    commit(repo, "base lock")
    make_pr(repo, seed, pr_metrics(0.95, 0.03))
    write(repo, "dvc.lock", lock("pr", "base"))
    commit(repo, "the PR commits its own lock")
    write(repo, "dvc.lock", lock("pr", "restored"))
    code, data, _ = report(repo, "HEAD~1")
    assert code == 0
    status = {row["stage"]: row["status"] for row in data["stages"]}
    assert status["train"] == "skipped: committed with this PR's dvc.lock", status
    assert status["evaluate"] == "restored from the DVC run cache", status


@pytest.mark.parametrize(
    ("outcome", "says"), [("failure", "could not be fetched"), ("success", "no deployment record")]
)
def test_report_tells_a_failed_record_fetch_from_no_record(repo, seed, monkeypatch, outcome, says):
    # Given no deployments.jsonl, when the fetch step failed (or succeeded with nothing), then
    # the report says which of the two happened.
    monkeypatch.setenv("MLGITOPS_DEPLOYMENTS_FETCH", outcome)
    make_pr(repo, seed, pr_metrics(0.95, 0.03))
    code, data, markdown = report(repo)
    assert code == 0
    assert data["deployment_record"] == ("fetch failed" if outcome == "failure" else "none")
    first = markdown.split("\n\n")[0] + markdown.split("\n\n")[1]
    assert says in first, f"the title block does not say {says!r}: {first}"


def test_comment_is_posted_from_the_test_summary_when_the_report_is_missing(tmp_path):
    # Given only the tests job's summary (the report job failed before writing), then the
    # comment target comes from it and the body says the tests failed and there is no report.
    tests = tmp_path / "tests.json"
    tests.write_text(
        json.dumps(
            {
                "pr_number": 7,
                "outcome": "failure",
                "ran": True,
                "tests": 3,
                "failed": 1,
                "failed_tests": ["tests/unit/test_x.py::test_y"],
            }
        )
    )
    body = tmp_path / "comment" / "comment.md"
    code = cli(
        [
            "comment-target",
            "--report",
            str(tmp_path / "missing.json"),
            "--tests",
            str(tests),
            "--body",
            str(body),
        ]
    )
    assert code == 0
    text = body.read_text()
    assert "**Tests: failed**" in text
    assert "`tests/unit/test_x.py::test_y`" in text
    assert "**No report**" in text


def test_comment_target_refuses_artifacts_naming_two_prs(tmp_path):
    (tmp_path / "report.json").write_text(json.dumps({"pr_number": 7}))
    (tmp_path / "tests.json").write_text(
        json.dumps({"pr_number": 8, "outcome": "success", "ran": True})
    )
    code = cli(
        [
            "comment-target",
            "--report",
            str(tmp_path / "report.json"),
            "--tests",
            str(tmp_path / "tests.json"),
        ]
    )
    assert code == 1
