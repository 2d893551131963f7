"""deploy.yml and rollback.yml: triggers, least privilege, the production gate, the image tag.

The generic rules (actionlint, zizmor, pinned actions, one command per `run:`) are checked for
every workflow in tests/workflows; these are the deploy-specific promises.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import PROJECT_ROOT
from mlgitops.cli import build_parser

WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
COMMIT_OUTPUT = "${{ needs.verify-build.outputs.commit }}"
TARGET = '"$MLGITOPS_DEPLOY_TARGET"'  # the repository variable, kubernetes by default


def load(name: str) -> dict[str, Any]:
    """A workflow as a dict; PyYAML reads the `on:` key as True, so it is renamed back."""
    workflow = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    workflow["on"] = workflow.pop(True)
    return workflow


@pytest.fixture(scope="module")
def deploy() -> dict[str, Any]:
    return load("deploy.yml")


@pytest.fixture(scope="module")
def rollback() -> dict[str, Any]:
    return load("rollback.yml")


def runs(job: dict[str, Any]) -> list[str]:
    return [step["run"] for step in job.get("steps", []) if "run" in step]


def step_running(job: dict[str, Any], prefix: str) -> dict[str, Any]:
    found = [step for step in job["steps"] if step.get("run", "").startswith(prefix)]
    assert len(found) == 1, f"expected one step running {prefix!r}, found {len(found)}"
    return found[0]


def step_using(job: dict[str, Any], action: str) -> dict[str, Any]:
    found = [step for step in job["steps"] if step.get("uses", "").startswith(f"{action}@")]
    assert len(found) == 1, f"expected one {action} step, found {len(found)}"
    return found[0]


# --- deploy.yml -------------------------------------------------------------------------


def test_deploy_runs_on_push_to_main_dispatch_and_as_a_reusable_workflow(deploy):
    # Given deploy.yml, then a push to main, a manual dispatch and a workflow_call start it,
    # the last two with an optional `ref` to deploy.
    on = deploy["on"]
    assert on["push"] == {"branches": ["main"]}, f"push trigger is {on['push']}"
    for trigger in ("workflow_call", "workflow_dispatch"):
        ref = on[trigger]["inputs"]["ref"]
        assert ref["required"] is False, f"{trigger} must not require a ref"
        assert ref["type"] == "string"
        assert ref["default"] == ""
    assert not {"pull_request", "pull_request_target"} & set(on), "pull requests never deploy"


def test_deploy_grants_each_job_only_what_it_needs(deploy):
    # Given deploy.yml, then the top level grants nothing and each job gets only its own
    # scopes: read the code (+ OIDC for the DVC remote), push packages, nothing else.
    assert deploy["permissions"] == {}, f"top-level permissions: {deploy['permissions']}"
    expected = {
        "verify-build": {"contents": "read", "id-token": "write"},
        "containerize": {"contents": "read", "packages": "write"},
        "deploy": {"contents": "read", "id-token": "write"},
    }
    granted = {job_id: job.get("permissions") for job_id, job in deploy["jobs"].items()}
    assert granted == expected, f"job permissions are {granted}"


def test_oidc_is_granted_only_to_jobs_that_assume_the_aws_role(deploy):
    # Given each job, then id-token: write goes with a configure-aws-credentials step that
    # only runs when a role is configured.
    for job_id, job in deploy["jobs"].items():
        aws = [
            step
            for step in job["steps"]
            if step.get("uses", "").startswith("aws-actions/configure-aws-credentials@")
        ]
        oidc = job["permissions"].get("id-token") == "write"
        assert oidc == bool(aws), f"{job_id}: id-token write={oidc}, assumes a role={bool(aws)}"
        for step in aws:
            assert step["if"] == "vars.DVC_DEPLOY_ROLE_ARN != ''", f"{job_id}: {step['if']}"


def test_the_release_runs_in_the_production_environment_one_at_a_time(deploy):
    # Given the deploy job, then it runs in the `production` environment (so required
    # reviewers can gate it), after verify-build and containerize, in one concurrency group
    # shared by every run, which never cancels a running deploy.
    job = deploy["jobs"]["deploy"]
    assert job["environment"] == "production"
    assert set(job["needs"]) == {"verify-build", "containerize"}
    concurrency = job["concurrency"]
    assert concurrency["cancel-in-progress"] is False, "a running deploy must never be cancelled"
    assert "${{" not in concurrency["group"], (
        f"group {concurrency['group']!r} must be one constant so every deploy queues in it"
    )


def test_no_concurrency_group_cancels_a_run_in_progress(deploy, rollback):
    # Given every concurrency setting in deploy.yml and rollback.yml, then none cancels.
    settings = [
        (name, where, setting)
        for name, workflow in (("deploy.yml", deploy), ("rollback.yml", rollback))
        for where, setting in [
            ("workflow", workflow.get("concurrency")),
            *((job_id, job.get("concurrency")) for job_id, job in workflow["jobs"].items()),
        ]
        if setting is not None
    ]
    assert settings, "no concurrency settings found"
    for name, where, setting in settings:
        assert isinstance(setting, dict), f"{name}:{where}: concurrency without cancel-in-progress"
        assert setting.get("cancel-in-progress") is False, f"{name}:{where} may cancel: {setting}"


def test_only_the_production_job_reads_deploy_secrets(deploy):
    # Given deploy.yml, then the kubeconfig and API keys are read only by the job in the
    # production environment, and only in the step that releases.
    text = yaml.safe_dump(deploy)
    for secret in ("MLGITOPS_KUBECONFIG", "MLGITOPS_API_KEYS"):
        assert text.count(f"secrets.{secret}") == 1, f"secrets.{secret} used more than once"
    release = step_running(deploy["jobs"]["deploy"], "mlgitops deploy")
    assert release["env"]["MLGITOPS_KUBECONFIG"] == "${{ secrets.MLGITOPS_KUBECONFIG }}"


def test_image_is_tagged_with_the_commit_sha_never_only_latest(deploy):
    # Given the containerize and deploy jobs, then both name the same image, ghcr.io/<repo>
    # tagged with the commit verify-build checked out, and pass it to mlgitops; `latest` is
    # nowhere in the workflow.
    verify = deploy["jobs"]["verify-build"]
    checkout = step_using(verify, "actions/checkout")
    assert verify["outputs"]["commit"] == "${{ steps.checkout.outputs.commit }}"
    assert checkout["id"] == "checkout"
    assert checkout["with"]["ref"] == "${{ inputs.ref || github.sha }}"
    images = {
        job_id: deploy["jobs"][job_id]["env"]["MLGITOPS_IMAGE"]
        for job_id in ("containerize", "deploy")
    }
    assert len(set(images.values())) == 1, f"the jobs name different images: {images}"
    image = images["deploy"]
    assert image == f"ghcr.io/${{{{ github.repository }}}}:{COMMIT_OUTPUT}", f"image is {image}"
    for job_id in images:
        step = step_running(deploy["jobs"][job_id], "mlgitops deploy")
        assert '--image "$MLGITOPS_IMAGE"' in step["run"], f"{job_id} does not pass the image"
    text = (WORKFLOWS / "deploy.yml").read_text(encoding="utf-8")
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    assert not re.search(r":\s*latest\b", code), "an image tagged `latest` in deploy.yml"


def test_containerize_logs_in_to_ghcr_with_the_job_token(deploy):
    # Given the containerize job, then docker login targets ghcr.io with GITHUB_TOKEN (no
    # long-lived registry secret) before the image is built and pushed.
    job = deploy["jobs"]["containerize"]
    login = step_using(job, "docker/login-action")
    assert login["with"]["registry"] == "ghcr.io"
    assert login["with"]["password"] == "${{ secrets.GITHUB_TOKEN }}"
    steps = job["steps"]
    containerize = step_running(job, "mlgitops deploy")
    assert containerize["run"].startswith("mlgitops deploy containerize ")
    assert steps.index(login) < steps.index(containerize), "login must come before the push"


def test_each_job_checks_out_the_commit_that_was_verified(deploy):
    # Given the later jobs, then they check out verify-build's commit, never a moving ref.
    for job_id in ("containerize", "deploy"):
        checkout = step_using(deploy["jobs"][job_id], "actions/checkout")
        assert checkout["with"]["ref"] == COMMIT_OUTPUT, f"{job_id} checks out another ref"


def test_the_steps_run_in_order_verify_build_containerize_release(deploy):
    # Given the jobs, then verify and build run in verify-build, containerize in its job, and
    # the release (smoke test and rollback inside) in the production job, whose record is
    # uploaded whatever the outcome.
    jobs = deploy["jobs"]
    assert runs(jobs["verify-build"])[-2:] == [
        "mlgitops deploy verify",
        "mlgitops deploy build",
    ]
    assert jobs["containerize"]["needs"] == "verify-build"
    release = step_running(jobs["deploy"], f"mlgitops deploy release --target {TARGET}")
    assert release["run"].endswith('--image "$MLGITOPS_IMAGE"')
    record = step_using(jobs["deploy"], "actions/upload-artifact")
    assert record["if"] == "always()", "the record must be uploaded when the release fails too"
    assert record["with"]["path"] == (
        f"${{{{ steps.{release['id']}.outputs.record || 'deployments.jsonl' }}}}"
    ), "the record is uploaded from where the release step says it wrote it"
    uploaded = step_using(jobs["verify-build"], "actions/upload-artifact")["with"]["name"]
    downloaded = step_using(jobs["containerize"], "actions/download-artifact")["with"]["name"]
    assert uploaded == downloaded == "bento", "containerize must use the bento verify-build built"


def test_the_bento_artifact_carries_bentos_and_models(deploy):
    # Given the bento artifact, then it holds the bento store's bentos/ and models/ (the bento
    # only references its model) and every download puts them back into one store.
    upload = step_using(deploy["jobs"]["verify-build"], "actions/upload-artifact")["with"]
    paths = {line.strip().rstrip("/") for line in upload["path"].splitlines() if line.strip()}
    assert paths == {"build/bentoml/bentos", "build/bentoml/models"}, f"uploads {paths}"
    download = step_using(deploy["jobs"]["containerize"], "actions/download-artifact")["with"]
    assert download["path"].rstrip("/") == "build/bentoml", f"downloads into {download['path']}"


def test_the_deploy_target_is_a_repository_variable_kubernetes_by_default(deploy):
    # Given deploy.yml, then the target comes from vars.MLGITOPS_DEPLOY_TARGET (kubernetes when
    # unset); for `local` the image job is skipped and the release runs on a self-hosted runner.
    assert deploy["env"]["MLGITOPS_DEPLOY_TARGET"] == (
        "${{ vars.MLGITOPS_DEPLOY_TARGET || 'kubernetes' }}"
    )
    jobs = deploy["jobs"]
    assert jobs["containerize"]["if"] == "vars.MLGITOPS_DEPLOY_TARGET != 'local'"
    assert "self-hosted" in jobs["deploy"]["runs-on"]
    assert "needs.containerize.result == 'skipped'" in jobs["deploy"]["if"]
    assert "needs.verify-build.result == 'success'" in jobs["deploy"]["if"]


# --- rollback.yml -----------------------------------------------------------------------


def test_rollback_is_manual_with_commit_and_emergency_inputs(rollback):
    # Given rollback.yml, then only a manual dispatch starts it, with an optional commit
    # (empty = the last merge) and an emergency switch that is off by default.
    assert set(rollback["on"]) == {"workflow_dispatch"}
    inputs = rollback["on"]["workflow_dispatch"]["inputs"]
    assert inputs["commit"]["type"] == "string"
    assert inputs["commit"]["required"] is False
    assert inputs["commit"]["default"] == ""
    assert inputs["emergency"] == {**inputs["emergency"], "type": "boolean", "default": False}


def test_rollback_grants_each_job_only_what_it_needs(rollback):
    # Given rollback.yml, then the top level grants nothing; the PR path may push a branch
    # and open a PR; the emergency path may push main; the deploy call gets deploy.yml's
    # scopes (a called workflow can use no more than its caller grants).
    assert rollback["permissions"] == {}
    granted = {job_id: job.get("permissions") for job_id, job in rollback["jobs"].items()}
    assert granted == {
        "revert-pr": {"contents": "write", "pull-requests": "write"},
        "revert-main": {"contents": "write"},
        "deploy": {"contents": "read", "id-token": "write", "packages": "write"},
    }, f"job permissions are {granted}"


def test_the_deploy_call_grants_what_deploy_yml_jobs_need(rollback, deploy):
    # Given the reusable call, then its permissions cover every deploy.yml job's.
    called = rollback["jobs"]["deploy"]["permissions"]
    for job_id, job in deploy["jobs"].items():
        for scope, level in job["permissions"].items():
            assert called.get(scope) in {level, "write"}, f"{job_id} needs {scope}: {level}"


def test_pull_request_mode_reverts_pushes_and_opens_a_pr(rollback):
    # Given the default (not emergency) path, then it runs on main only, reverts the given
    # commit onto a branch and pushes it with the job token passed through env, then CML
    # opens the pull request from the branch mlgitops reported.
    job = rollback["jobs"]["revert-pr"]
    assert "!inputs.emergency" in job["if"]
    assert "github.ref == 'refs/heads/main'" in job["if"]
    revert = step_running(job, "mlgitops rollback")
    assert revert["run"] == 'mlgitops rollback --commit "$COMMIT" --push'
    assert revert["env"] == {
        "COMMIT": "${{ inputs.commit }}",
        "GITHUB_TOKEN": "${{ secrets.GITHUB_TOKEN }}",
    }
    pr = step_running(job, "cml pr create")
    assert '--branch "$BRANCH"' in pr["run"]
    assert "--target-branch main" in pr["run"]
    assert pr["env"]["BRANCH"] == f"${{{{ steps.{revert['id']}.outputs.branch }}}}"
    assert job["steps"].index(revert) < job["steps"].index(pr)


def test_emergency_mode_pushes_main_then_calls_deploy(rollback):
    # Given emergency, then the revert is pushed to main and deploy.yml is called as a
    # reusable workflow with the revert commit, because a push made with GITHUB_TOKEN starts
    # no workflow.
    job = rollback["jobs"]["revert-main"]
    assert "inputs.emergency" in job["if"]
    assert "!inputs.emergency" not in job["if"]
    revert = step_running(job, "mlgitops rollback")
    assert revert["run"] == 'mlgitops rollback --commit "$COMMIT" --emergency --push'
    assert job["outputs"]["commit"] == f"${{{{ steps.{revert['id']}.outputs.commit }}}}"
    call = rollback["jobs"]["deploy"]
    assert call["uses"] == "./.github/workflows/deploy.yml"
    assert call["needs"] == "revert-main"
    assert call["with"] == {"ref": "${{ needs.revert-main.outputs.commit }}"}


def secrets_read(job: dict[str, Any]) -> set[str]:
    return set(re.findall(r"secrets\.(\w+)", yaml.safe_dump(job))) - {"GITHUB_TOKEN"}


def test_the_emergency_deploy_gets_exactly_the_secrets_deploy_yml_needs(rollback, deploy):
    # Given deploy.yml called by rollback.yml, then the secrets its jobs without an environment
    # read (the production job gets its own from the environment) are declared by
    # workflow_call and passed by the caller: exactly those, so the model key reaches the
    # build and the rollback is encrypted like a push deploy.
    needed = set().union(
        *(secrets_read(job) for job in deploy["jobs"].values() if "environment" not in job)
    )
    assert needed == {"MLGITOPS_MODEL_KEY"}, f"deploy.yml's build jobs read {needed}"
    declared = set(deploy["on"]["workflow_call"].get("secrets") or {})
    assert needed <= declared, f"workflow_call declares {declared}, the jobs need {needed}"
    passed = rollback["jobs"]["deploy"].get("secrets") or {}
    assert passed == {name: f"${{{{ secrets.{name} }}}}" for name in needed}, (
        f"rollback.yml passes {passed}, deploy.yml needs exactly {needed}"
    )


def test_rollback_checkouts_have_full_history_and_no_stored_token(rollback):
    # Given the revert jobs, then each checkout fetches all history (to find and revert the
    # merge) and keeps no token in .git/config (pushes get it through env, for one command).
    for job_id in ("revert-pr", "revert-main"):
        checkout = step_using(rollback["jobs"][job_id], "actions/checkout")
        assert checkout["with"]["fetch-depth"] == 0, f"{job_id}: shallow checkout"
        assert checkout["with"]["persist-credentials"] is False, f"{job_id} stores the token"


@pytest.mark.parametrize("name", ["deploy.yml", "rollback.yml"])
def test_every_mlgitops_command_parses_with_the_cli(name):
    # Given each `mlgitops ...` run line, then the real command-line parser accepts it, so
    # the workflow and the CLI cannot drift apart.
    parser = build_parser()
    for job in load(name)["jobs"].values():
        for command in runs(job):
            for target in ("kubernetes", "local"):
                words = shlex.split(command.replace(TARGET, target))
                if Path(words[0]).name != "mlgitops":
                    continue
                try:
                    parser.parse_args(words[1:])
                except SystemExit:
                    pytest.fail(f"{name}: `{command}` is not accepted by `mlgitops`")


def test_a_local_release_gets_the_model_key_its_server_decrypts_with(deploy):
    # Given the release step, then the model key reaches it for the local target only, whose
    # own server decrypts the packaged model; a cluster's pods read their Secret instead.
    release = step_running(deploy["jobs"]["deploy"], f"mlgitops deploy release --target {TARGET}")
    key = release["env"]["MLGITOPS_MODEL_KEY"]
    assert "secrets.MLGITOPS_MODEL_KEY" in key, key
    assert "vars.MLGITOPS_DEPLOY_TARGET == 'local'" in key, f"the key goes to every target: {key}"
