"""The retraining branch the monitor pushes matches its own dvc.lock in a fresh checkout."""

from __future__ import annotations

import pytest

from helpers import run
from mlgitops.ci import git_tracked_outputs
from mlgitops.contract.check import read_table

pytestmark = pytest.mark.slow

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def test_a_fresh_checkout_of_the_retraining_branch_is_clean(project_copy, tmp_path, seed):
    # Given a project with an origin, when the raw data changes (new rows, as the monitor's
    # `dvc update`/`make data` brings), the pipeline re-runs and `retrain-branch --push`
    # commits the result, then a fresh clone of that branch, after `dvc pull`, has
    # `dvc status` clean: dvc.lock and every git-tracked output agree.
    project = project_copy()
    origin = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", str(origin)], tmp_path)
    run(["git", "remote", "add", "origin", str(origin)], project)
    run(["git", "push", "-q", "origin", "main"], project)
    run(["mlgitops", "data", "fetch"], project)
    raw = project / "data" / "raw.csv"
    table = read_table(raw)  # cells as written: an int column with gaps stays ints
    table.sample(frac=0.8, random_state=seed).sort_index().to_csv(raw, index=False)
    run(["dvc", "add", "-q", "data"], project)
    run(["dvc", "repro"], project)
    run(["dvc", "push", "-q"], project)
    changed = run(["git", "status", "--porcelain"], project).stdout
    assert any(p in changed for p in git_tracked_outputs(project / "dvc.yaml")), (
        f"the new data changed no git-tracked output, nothing to prove:\n{changed}"
    )

    branch = "monitor/retrain-1-1"
    result = run(
        ["mlgitops", "retrain-branch", "--branch", branch, "--message", "retrain", "--push"],
        project,
        check=False,
    )
    assert result.returncode == 0, result.stderr

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", "--branch", branch, str(origin), str(clone)], tmp_path)
    remote = run(["dvc", "remote", "list", "--local"], project).stdout.split()[1]
    run(["dvc", "remote", "modify", "--local", "local", "url", remote], clone)
    run(["dvc", "pull", "-q"], clone)
    status = run(["dvc", "status"], clone).stdout
    assert "up to date" in status, f"the pushed branch disagrees with its dvc.lock:\n{status}"

    # A rerun on the same branch name fails loudly instead of dropping its outputs.
    again = run(
        ["mlgitops", "retrain-branch", "--branch", branch, "--message", "retrain", "--push"],
        project,
        check=False,
    )
    assert again.returncode == 1
    assert "exists already" in again.stderr or "already" in again.stderr
