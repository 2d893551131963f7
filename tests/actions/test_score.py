"""Batch scoring, executed: score.yml by act scores a table with the deployed commit's model."""

from __future__ import annotations

import json
import zipfile

import pytest
import yaml
from harness import REPOSITORY, Repository

from mlgitops.layout import MODEL_PATH, locked_md5
from mlgitops.params import load_params

pytestmark = pytest.mark.slow
DEPLOY_RUN = 7001


def test_score_yml_scores_with_the_deployed_model(repository: Repository, trained_origin, seed):
    # Given deploy.yml's record naming main's commit as released, and a table to score
    from tables import table_from_contract

    repo = repository
    project, _ = trained_origin
    deployed = repo.sha("refs/heads/main")
    entry = {"commit": deployed, "outcome": "released", "model_md5": "", "target": "local"}
    folder = repo.state.artifacts / str(DEPLOY_RUN)
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "deployment-record.zip", "w") as archive:
        archive.writestr("deployments.jsonl", json.dumps(entry) + "\n")
    repo.state.runs["deploy.yml"] = [
        {
            "id": DEPLOY_RUN,
            "head_branch": "main",
            "status": "completed",
            "conclusion": "success",
            "head_sha": deployed,
        }
    ]
    params = load_params(project / "params.yaml")
    rows = repo.root / "rows.csv"
    table_from_contract(params.contract, rows=300, seed=seed).to_csv(rows, index=False)
    output = repo.root / "scores"
    repo.vars.update(MLGITOPS_SCORE_INPUT_URL=str(rows), MLGITOPS_SCORE_OUTPUT_URL=str(output))
    # When score.yml runs on schedule
    event = {"repository": {"full_name": REPOSITORY, "default_branch": "main"}}
    result = repo.act("schedule", "score.yml", event, ref="refs/heads/main")
    # Then every row is accounted for, by the model the deployed commit pins
    assert result.returncode == 0, result.log[-6000:]
    summary = json.loads((output / "_SUCCESS.json").read_text())
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    pinned = locked_md5(lock, MODEL_PATH)
    assert summary["model_md5"] == pinned
    assert summary["rows_in"] == 300 == summary["scored"] + summary["quarantined"], summary
    assert repo.state.calls_to("GET", f"/repos/{REPOSITORY}/actions/workflows/deploy.yml/runs")
