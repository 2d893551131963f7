"""The monitor, executed: monitor.yml by act on a shifted prediction log opens a retraining
pull request whose branch carries every git-tracked output."""

from __future__ import annotations

import importlib.util

import joblib
import pandas as pd
import pytest
import yaml
from harness import REPOSITORY, Repository

from helpers import PROJECT_ROOT, run
from mlgitops.ci import git_tracked_outputs
from mlgitops.contract.check import read_table
from mlgitops.layout import MODEL_PATH, locked_md5
from mlgitops.monitor.traffic import sample_records
from mlgitops.params import load_params

pytestmark = pytest.mark.slow


def prediction_logs():
    """tests/monitor/prediction_logs.py: the service's log format, shared with that tier."""
    spec = importlib.util.spec_from_file_location(
        "prediction_logs", PROJECT_ROOT / "tests" / "monitor" / "prediction_logs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_shifted_log_opens_a_retraining_pr_with_every_tracked_output(
    repository: Repository, trained_origin, seed
):
    # Given the deployed model's prediction log of traffic shifted by 1.5 std, when monitor.yml
    # runs, then it finds drift, pushes monitor/retrain-<run>-<attempt> with dvc.lock,
    # data.dvc, monitor/ and every git-tracked output, and opens a PR from it into main.
    repo = repository
    project, _ = trained_origin
    params = load_params(project / "params.yaml")
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    md5 = locked_md5(lock, MODEL_PATH)
    held_out = read_table(project / "artifacts" / "test.csv")
    records = sample_records(held_out, params.contract, count=150, shift=1.5, seed=seed)
    frame = pd.DataFrame(records).reindex(columns=list(params.contract.features))
    for name in params.contract.numeric_features:
        frame[name] = pd.to_numeric(frame[name])
    predictions = joblib.load(project / "artifacts" / "model.joblib").predict(frame)
    logs = prediction_logs()
    log_dir = repo.root / "prediction-log"
    logs.write_log(
        log_dir,
        [logs.log_record(r, str(p), md5=md5) for r, p in zip(records, predictions, strict=True)],
    )
    repo.vars.update(MLGITOPS_LOG_URL=str(log_dir))
    event = {"repository": {"full_name": REPOSITORY, "default_branch": "main"}}
    result = repo.act("workflow_dispatch", "monitor.yml", event, ref="refs/heads/main")
    assert result.returncode == 0, result.log[-6000:]
    branch = f"monitor/retrain-{result.run_id}-1"
    (opened,) = repo.state.calls_to("POST", f"/repos/{REPOSITORY}/pulls")
    assert opened.body["head"] == branch, opened.body
    assert opened.body["base"] == "main"
    clone = repo.root / "retrain-clone"
    run(["git", "clone", "-q", "--branch", branch, str(repo.origin), str(clone)], repo.root)
    changed = run(["git", "diff", "--name-only", "origin/main", "HEAD"], clone).stdout.split()
    assert "monitor/drift.md" in changed, changed
    tracked = run(["git", "ls-files", *git_tracked_outputs(clone / "dvc.yaml")], clone).stdout
    assert tracked.strip(), "no git-tracked output on the branch"
    run(["dvc", "remote", "modify", "--local", "local", "url", str(repo.dvc_remote)], clone)
    run(["dvc", "pull", "-q"], clone, check=False)
    status = run(["dvc", "status"], clone).stdout
    assert "up to date" in status, f"the retraining branch disagrees with its dvc.lock:\n{status}"
