"""A merge, executed: deploy.yml by act to the `local` target on a self-hosted runner, then
rollback.yml's two paths."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest
import yaml
from harness import REPOSITORY, Repository

from helpers import change_a_hyperparameter, run
from mlgitops.layout import MODEL_PATH, locked_md5

pytestmark = pytest.mark.slow

API_KEY = "act-scenario-key"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def local_target(repository: Repository) -> Iterator[Repository]:
    """The repository configured as a team with one machine does: the deploy target is the
    `local` repository variable, the proxy's port is set in params.yaml (a free one here),
    and the local target's state and bento store live outside every workspace."""
    repo = repository
    port = free_port()
    params_path = repo.work / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["deploy"]["local"]["port"] = port
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    repo.commit("deploy locally on this machine's free port")
    run(["git", "push", "-q", "origin", "HEAD:main"], repo.work)
    repo.vars.update(
        MLGITOPS_DEPLOY_TARGET="local", MLGITOPS_BENTOML_HOME=str(repo.root / "bentoml")
    )
    repo.secrets.update(MLGITOPS_API_KEYS=API_KEY)
    repo.port = port
    yield repo
    run(
        [
            "mlgitops",
            "deploy",
            "stop",
            "--target",
            "local",
            "--state-dir",
            str(repo.root / "local-state"),
        ],
        repo.work,
        check=False,
    )


def deploy_env(repo: Repository) -> dict[str, str]:
    return {"MLGITOPS_LOCAL_STATE": str(repo.root / "local-state")}


def merge(repo: Repository, branch: str) -> str:
    """Merge `branch` into main as GitHub's merge button does (a merge commit), push it."""
    run(["git", "switch", "-q", "main"], repo.work)
    run(["git", "pull", "-q", "--ff-only", "origin", "main"], repo.work)
    run(
        [
            "git",
            "-c",
            "user.name=octo",
            "-c",
            "user.email=octo@x",
            "merge",
            "-q",
            "--no-ff",
            "-m",
            f"Merge {branch}",
            branch,
        ],
        repo.work,
    )
    run(["git", "push", "-q", "origin", "main"], repo.work)
    return repo.sha("refs/heads/main")


def push_event(sha: str, before: str) -> dict:
    return {
        "ref": "refs/heads/main",
        "before": before,
        "after": sha,
        "repository": {"full_name": REPOSITORY, "default_branch": "main"},
    }


def metadata(repo: Repository) -> dict:
    response = httpx.get(
        f"http://127.0.0.1:{repo.port}/metadata",
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()


def pinned_model_md5(repo: Repository, sha: str) -> str:
    lock = yaml.safe_load(run(["git", "show", f"{sha}:dvc.lock"], repo.origin).stdout)
    return locked_md5(lock, MODEL_PATH)


def test_a_merge_deploys_to_the_local_target_and_rollback_takes_it_back(local_target):
    # Given a PR that changes a hyperparameter, reproduced and pushed by its author, when it
    # is merged and deploy.yml runs on the push, then the local target serves the merge: its
    # /metadata names the merge commit and the model md5 dvc.lock pins.
    repo = local_target
    before = repo.sha("refs/heads/main")
    run(["git", "switch", "-q", "-c", "tune"], repo.work)
    change_a_hyperparameter(repo.work / "params.yaml")
    run(["dvc", "repro", "--pull"], repo.work)
    run(["dvc", "push", "-q"], repo.work)
    repo.commit("tune, reproduced")
    merged = merge(repo, "tune")
    deployed = repo.act(
        "push",
        "deploy.yml",
        push_event(merged, before),
        ref="refs/heads/main",
        extra_env=deploy_env(repo),
    )
    assert deployed.returncode == 0, deployed.log[-6000:]
    assert "containerize and push to ghcr.io" not in deployed.log.split("Job succeeded")[-1]
    served = metadata(repo)
    assert served["git_commit"] == merged, served
    assert served["bento_tag"].endswith(merged), served
    assert served["model_md5"] == pinned_model_md5(repo, merged), served
    record = repo.state.artifacts / str(deployed.run_id) / "deployment-record" / "deployments.jsonl"
    entries = [json.loads(line) for line in record.read_text().splitlines()]
    assert entries[-1]["commit"] == merged, entries

    # When rollback.yml runs in its default mode, then a branch reverting the merge is pushed
    # and a pull request from it into main is opened; main does not move.
    # As GitHub sends it: a dispatch's inputs are strings in the event, booleans included.
    dispatch = {
        "inputs": {"commit": "", "emergency": "false"},
        "repository": {"full_name": REPOSITORY, "default_branch": "main"},
    }
    reverted = repo.act("workflow_dispatch", "rollback.yml", dispatch, ref="refs/heads/main")
    assert reverted.returncode == 0, reverted.log[-6000:]
    assert repo.sha("refs/heads/main") == merged, "the review path moved main"
    (opened,) = repo.state.calls_to("POST", f"/repos/{REPOSITORY}/pulls")
    branch = opened.body["head"]
    assert branch.startswith("rollback/"), opened.body
    assert opened.body["base"] == "main"
    assert pinned_model_md5(repo, f"refs/heads/{branch}") == pinned_model_md5(repo, before)

    # When rollback.yml runs as an emergency with the repository's model key, then the revert
    # lands on main and the called deploy.yml builds it with that key (rollback.yml passes
    # exactly that secret; before, the called build saw none and shipped the model in the
    # clear). act gives a called workflow no environment secrets (GitHub supplies the
    # production environment's MLGITOPS_API_KEYS there), so here the new release fails
    # (`deploy failed: ...`), and the target restores the release that was serving.
    repo.secrets["MLGITOPS_MODEL_KEY"] = "ab" * 32
    dispatch["inputs"]["emergency"] = "true"
    emergency = repo.act(
        "workflow_dispatch",
        "rollback.yml",
        dispatch,
        ref="refs/heads/main",
        extra_env=deploy_env(repo),
    )
    head = repo.sha("refs/heads/main")
    assert head != merged, "the emergency path did not push the revert"
    assert pinned_model_md5(repo, head) == pinned_model_md5(repo, before)
    assert "encrypted with" in emergency.log, "the called build did not get the model key"
    assert "not encrypted (MLGITOPS_MODEL_KEY is not set)" not in emergency.log
    failure = [line for line in emergency.log.splitlines() if "deploy failed:" in line]
    assert emergency.returncode != 0, "the release passed without the environment's API keys"
    assert failure, "the release failed for another reason than its own checks"
    served = metadata(repo)
    assert served["git_commit"] == merged, "the failed release did not restore the previous one"
