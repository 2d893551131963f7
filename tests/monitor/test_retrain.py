"""The retraining trigger of monitor.yml, run step by step in a local git repository.

`cml` cannot run here, so a recorder stands in for it on PATH: it records its arguments and
checks what `cml pr create` finds on an existing branch (the branch on origin; nothing to
commit), without the pull-request call. `mlgitops retrain-branch` commits and pushes for real,
to a bare origin.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers import PROJECT_ROOT, run
from mlgitops.ci import git_tracked_outputs
from mlgitops.layout import locked_md5

pytestmark = pytest.mark.slow

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "monitor.yml"
EXPRESSION = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")

RECORDER = '''#!{python}
"""A stand-in for `cml pr create --branch B`: records argv; B must exist on origin, since
CML (0.20.6) commits and pushes nothing to an existing branch."""
import json, subprocess, sys
with open({log!r}, "a") as handle:
    handle.write(json.dumps(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
assert args[:2] == ["pr", "create"], args
options = dict(zip(args[2::2], args[3::2]))
assert all(key.startswith("--") for key in options), f"paths given to cml: {{args}}"
listed = subprocess.run(["git", "ls-remote", "origin", options["--branch"]],
                        capture_output=True, text=True, check=True).stdout
assert listed.strip(), "the branch is not on origin"
print("https://github.invalid/pull/1")
'''

VALUES = {
    "github.run_id": "4242",
    "github.run_attempt": "1",
    "secrets.GITHUB_TOKEN": "not-a-token",
    "vars.MLGITOPS_LOG_URL": "unused",
}


def workflow_steps() -> dict[str, dict]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    return {step["name"]: step for step in workflow["jobs"]["monitor"]["steps"]}


def step_env(step: dict, base: dict[str, str]) -> dict[str, str]:
    """The step's `env:` with its `${{ }}` expressions replaced by the test's values."""
    env = dict(base)
    for key, value in (step.get("env") or {}).items():
        env[key] = EXPRESSION.sub(lambda m: VALUES[m[1]], str(value))
    return env


def run_step(step: dict, cwd: Path, env: dict[str, str]) -> int:
    import shlex
    import subprocess

    result = subprocess.run(
        shlex.split(step["run"]) if "$" not in step["run"] else ["bash", "-c", step["run"]],
        cwd=cwd,
        env=step_env(step, env),
        capture_output=True,
        text=True,
        check=False,
    )
    # A step the workflow runs with continue-on-error may also end "cannot judge" (exit 2, e.g.
    # decay with too few labels); the verdict step decides from the reports it wrote.
    allowed = {0, 1, 2} if step.get("continue-on-error") else {0, 1}
    assert result.returncode in allowed, f"{step['name']}: {result.stdout}\n{result.stderr}"
    return result.returncode


def test_drift_retrains_and_commits_an_updated_lock_on_a_branch(
    project_copy, traffic, tmp_path, seed, trained_project
):
    # Given a project whose outputs match dvc.lock, a shifted prediction log of the deployed
    # model, and new raw data, when monitor.yml's steps run from Drift to the pull request,
    # then the verdict is retrain, and a branch holds one commit with an updated dvc.lock and
    # the drift report, while main is untouched.
    repo = project_copy()
    for name in ("artifacts", "reports"):
        shutil.copytree(trained_project / name, repo / name, dirs_exist_ok=True)
    shutil.copytree(trained_project / "data", repo / "data", dirs_exist_ok=True)
    md5 = locked_md5(yaml.safe_load((repo / "dvc.lock").read_text()), "artifacts/model.joblib")
    logs = repo / ".mlgitops" / "predictions" / "mlgitops_predictions" / "data"
    logs.mkdir(parents=True)
    records = [{**r, "model_md5": md5} for r in traffic(seed=seed, shift=1.0, count=120)]
    (logs / "data.0.log").write_text("".join(pd.Series(records).map(_json) + "\n"))

    recorder_log = tmp_path / "cml.jsonl"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    cml = bin_dir / "cml"
    cml.write_text(RECORDER.format(python=sys.executable, log=str(recorder_log)))
    cml.chmod(cml.stat().st_mode | stat.S_IXUSR)
    env = {
        **os.environ,
        "PATH": os.pathsep.join(
            [str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]]
        ),
        "GITHUB_OUTPUT": str(tmp_path / "github_output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "DO_NOT_TRACK": "1",
    }
    steps = workflow_steps()
    assert run_step(steps["Drift"], repo, env) == 1, "drift not found on shifted traffic"
    run_step(steps["Decay"], repo, env)
    assert run_step(steps["Verdict and job summary"], repo, env) == 0, "no verdict"
    outputs = (tmp_path / "github_output").read_text()
    assert "retrain=true" in outputs, f"verdict outputs: {outputs}"
    assert "Drift found" in (tmp_path / "summary.md").read_text(), "no job summary"

    # New raw data arrives (what `dvc update data.dvc` does for imported data).
    raw = repo / "data" / "raw.csv"
    lines = raw.read_text().splitlines(keepends=True)
    raw.write_text("".join(lines[:-20]))
    run(["dvc", "add", "data"], repo)
    main_before = run(["git", "rev-parse", "main"], repo).stdout.strip()
    origin = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", str(origin)], tmp_path)
    run(["git", "remote", "add", "origin", str(origin)], repo)
    run(["git", "push", "-q", "origin", "main"], repo)

    for name in (
        "Retrain",
        "Commit the retraining on a new branch and push it",
        "Open the retraining pull request",
    ):
        assert run_step(steps[name], repo, env) == 0, f"step {name} failed"

    branch = "monitor/retrain-4242-1"
    left = run(
        ["git", "status", "--porcelain", "--", *git_tracked_outputs(repo / "dvc.yaml")], repo
    )
    assert not left.stdout.strip(), f"git-tracked outputs left out of the commit:\n{left.stdout}"
    assert run(["git", "ls-remote", "origin", branch], repo).stdout.strip(), "branch not pushed"
    changed = run(["git", "diff", "--name-only", "main", branch], repo).stdout.split()
    assert "dvc.lock" in changed, f"the branch does not update dvc.lock: {changed}"
    assert "data.dvc" in changed, f"the branch does not update data.dvc: {changed}"
    assert "monitor/drift.md" in changed, f"the report is not committed: {changed}"
    count = run(["git", "rev-list", "--count", f"main..{branch}"], repo).stdout.strip()
    assert count == "1", f"expected one commit on the branch, found {count}"
    assert run(["git", "rev-parse", "main"], repo).stdout.strip() == main_before, "main moved"
    recorded = recorder_log.read_text().splitlines()
    assert len(recorded) == 1, f"cml ran {len(recorded)} times: {recorded}"
    assert f'"--branch", "{branch}"' in recorded[0], f"cml arguments: {recorded}"


def _json(record: dict) -> str:
    import json

    return json.dumps(record)
