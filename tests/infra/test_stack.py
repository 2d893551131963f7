"""The template deployed for real into moto's AWS API on 127.0.0.1, and its bucket used as the
DVC remote: what CloudFormation creates is what the template promises and the workflows need.

moto stands in for AWS only; CloudFormation, S3, KMS and IAM answer through their real APIs
(boto3 and dvc-s3 make the same calls they make against AWS).
"""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from helpers import PROJECT_ROOT, copy_project, fetch_data, run
from mlgitops.deploy.target import DeployError
from mlgitops.deploy.verify import verify
from mlgitops.infra.outputs import REMOTE_OUTPUT, VARIABLES
from mlgitops.params import Params
from s3_server import OWNER, REPOSITORY, STACK, S3Server


@pytest.fixture
def stack(aws_stack: dict[str, str]) -> dict[str, str]:
    """The session's stack (tests/conftest.py), created from the template; its outputs."""
    return aws_stack


def _bucket(url: str) -> str:
    assert url.startswith("s3://"), url
    return url.removeprefix("s3://").split("/", 1)[0]


def test_both_buckets_exist_encrypted_with_the_stacks_key(
    stack: dict[str, str], s3_server: S3Server
) -> None:
    # moto's CloudFormation applies a bucket's encryption (and tags) only: versioning, the public
    # access block, the lifecycle rules and the bucket policies are held by the template tests,
    # cfn-lint and checkov (test_template.py), not here.
    s3, kms = s3_server.client("s3"), s3_server.client("kms")
    (key,) = kms.list_keys()["Keys"]
    for url in (stack["DvcRemoteUrl"], stack["LogUrl"]):
        (rule,) = s3.get_bucket_encryption(Bucket=_bucket(url))[
            "ServerSideEncryptionConfiguration"
        ]["Rules"]
        default = rule["ApplyServerSideEncryptionByDefault"]
        assert default["SSEAlgorithm"] == "aws:kms"
        assert default["KMSMasterKeyID"] == key["KeyArn"]


def _trust(role: dict[str, Any]) -> dict[str, Any]:
    document = role["AssumeRolePolicyDocument"]
    return json.loads(document) if isinstance(document, str) else document


def test_each_role_exists_and_trusts_only_this_repository(
    stack: dict[str, str], s3_server: S3Server
) -> None:
    # moto's CloudFormation does not create AWS::IAM::OIDCProvider; the roles name its ARN.
    iam = s3_server.client("iam")
    provider = "oidc-provider/token.actions.githubusercontent.com"
    for output in ("PullRequestRoleArn", "DeployRoleArn", "MonitorRoleArn"):
        name = stack[output].rsplit("/", 1)[1]
        role = iam.get_role(RoleName=name)["Role"]
        for statement in _trust(role)["Statement"]:
            assert statement["Principal"]["Federated"].endswith(provider), statement
            # The sub is exact (StringEquals), or the merge queue's pattern (StringLike).
            condition = statement["Condition"]
            subjects = next(
                condition[op]["token.actions.githubusercontent.com:sub"]
                for op in ("StringEquals", "StringLike")
                if "token.actions.githubusercontent.com:sub" in condition.get(op, {})
            )
            subjects = [subjects] if isinstance(subjects, str) else subjects
            assert subjects, output
            assert all(s.startswith(f"repo:{OWNER}/{REPOSITORY}:") for s in subjects), subjects


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_the_stack_bucket_is_a_dvc_remote_a_fresh_clone_pulls_from(
    stack: dict[str, str], aws_env: S3Server, tmp_path: Path
) -> None:
    # Given a project whose data is in its workspace, and the stack's bucket as its remote
    project = copy_project(tmp_path / "project", remote=tmp_path / "folder-remote")
    fetch_data(project)
    data = project / "data" / "raw.csv"
    expected = _md5(data)

    def use_stack_remote(folder: Path) -> None:
        run(["dvc", "remote", "add", "--local", "-f", "-d", "aws", stack["DvcRemoteUrl"]], folder)
        run(
            ["dvc", "remote", "modify", "--local", "aws", "endpointurl", aws_env.endpoint_url],
            folder,
        )

    use_stack_remote(project)
    # When it pushes, and a fresh clone pulls
    run(["dvc", "push", "-q", "data.dvc"], project)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    use_stack_remote(clone)
    run(["dvc", "pull", "-q", "data.dvc"], clone)
    # Then the clone has the same bytes, stored encrypted with the stack's key
    assert _md5(clone / "data" / "raw.csv") == expected
    s3 = aws_env.client("s3")
    bucket = _bucket(stack["DvcRemoteUrl"])
    objects = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert objects, "nothing was pushed"
    for item in objects:
        head = s3.head_object(Bucket=bucket, Key=item["Key"])
        assert head.get("ServerSideEncryption") == "aws:kms", item["Key"]


def test_infra_outputs_prints_every_variable_a_workflow_reads(
    stack: dict[str, str], aws_env: S3Server
) -> None:
    # Given the deployed stack, when `mlgitops infra outputs` reads it as a user runs it
    done = run(
        ["mlgitops", "infra", "outputs", "--stack", STACK],
        PROJECT_ROOT,
    )
    lines = done.stdout.splitlines()
    # Then each line sets one variable to the stack's value, and the last adds the remote
    assigned = {}
    for line in lines[:-1]:
        words = shlex.split(line)
        assert words[:3] == ["gh", "variable", "set"], line
        assert words[4] == "--body", line
        assigned[words[3]] = words[5]
    assert assigned == {name: stack[key] for key, name in VARIABLES.items()}
    assert shlex.split(lines[-1])[-1] == stack["DvcRemoteUrl"]
    # and every variable is one the workflows read, and every output has its place
    workflows = "".join(
        p.read_text() for p in (PROJECT_ROOT / ".github" / "workflows").glob("*.yml")
    )
    unread = [name for name in assigned if f"vars.{name}" not in workflows]
    assert not unread, f"no workflow reads {unread}"
    assert set(stack) == {*VARIABLES, REMOTE_OUTPUT}


def test_infra_outputs_names_a_missing_stack(aws_env: S3Server) -> None:
    done = run(
        ["mlgitops", "infra", "outputs", "--stack", "no-such-stack"],
        PROJECT_ROOT,
        check=False,
    )
    assert done.returncode == 1
    assert "no-such-stack" in done.stderr
    assert not done.stdout


def test_a_change_set_deploys_the_stack_with_the_projects_retention(
    aws_env: S3Server, params: Params, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given the repository of a workflow run, when a merge executes the change set
    monkeypatch.setenv("GITHUB_REPOSITORY", f"{OWNER}/{REPOSITORY}")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    command = ["mlgitops", "infra", "change-set", "--stack", "from-a-merge", "--execute"]
    done = run(command, PROJECT_ROOT)
    # Then the stack exists, its change set was shown, and the roles trust this repository
    assert "stack from-a-merge: CREATE_COMPLETE" in done.stdout
    assert "DvcRemoteBucket" in summary.read_text()
    cloudformation = aws_env.client("cloudformation")
    (stack,) = cloudformation.describe_stacks(StackName="from-a-merge")["Stacks"]
    given = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert given["LogRetentionDays"] == str(params.monitor.retention_days)
    assert (given["GitHubOwner"], given["GitHubRepository"]) == (OWNER, REPOSITORY)


def test_a_reviewed_change_set_leaves_nothing_and_the_merge_creates_the_stack(
    aws_env: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a pull request's preview of a stack that does not exist yet
    monkeypatch.setenv("GITHUB_REPOSITORY", f"{OWNER}/{REPOSITORY}")
    cloudformation = aws_env.client("cloudformation")
    preview = run(["mlgitops", "infra", "change-set", "--stack", "reviewed"], PROJECT_ROOT)
    # Then it was described, and no live stack and no change set are left in the account
    assert "Add DvcRemoteBucket" in preview.stdout
    live = [
        s["StackName"]
        for s in cloudformation.list_stacks()["StackSummaries"]
        if s["StackStatus"] != "DELETE_COMPLETE"
    ]
    assert "reviewed" not in live
    # And the merge's change set creates it; a later preview is an update that changes nothing
    command = ["mlgitops", "infra", "change-set", "--stack", "reviewed", "--execute"]
    assert "stack reviewed: CREATE_COMPLETE" in run(command, PROJECT_ROOT).stdout
    # (a pull request touching params.yaml but not the retention: CloudFormation refuses a
    # change set without changes, which is not a failure of the pull request)
    again = run(["mlgitops", "infra", "change-set", "--stack", "reviewed"], PROJECT_ROOT)
    assert "No changes." in again.stdout
    merged = ["mlgitops", "infra", "change-set", "--stack", "reviewed", "--execute"]
    assert "stack reviewed: unchanged" in run(merged, PROJECT_ROOT).stdout
    (stack,) = cloudformation.describe_stacks(StackName="reviewed")["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    waiting = [
        c["ChangeSetName"]
        for c in cloudformation.list_change_sets(StackName="reviewed")["Summaries"]
        if c["ExecutionStatus"] != "EXECUTE_COMPLETE"
    ]
    assert not waiting, "a preview's change set was left for someone to execute"


@pytest.mark.parametrize("repository", ["acme/*", "*/churn", "acme", "acme/churn/extra", ""])
def test_a_change_set_refuses_a_repository_that_would_widen_the_trust(
    repository: str, aws_env: S3Server
) -> None:
    command = ["mlgitops", "infra", "change-set", "--repository", repository, "--stack", "wide"]
    done = run(command, PROJECT_ROOT, check=False)
    assert done.returncode == 1
    assert "expected the repository as OWNER/NAME" in done.stderr
    stacks = aws_env.client("cloudformation").list_stacks()["StackSummaries"]
    assert "wide" not in [s["StackName"] for s in stacks]


@pytest.mark.slow
def test_verify_names_the_outputs_an_s3_remote_lacks(project_copy: Any, aws_env: S3Server) -> None:
    # Given a fresh clone whose DVC remote is an S3 bucket nothing was pushed to
    aws_env.client("s3").create_bucket(Bucket="never-pushed-remote")
    project = project_copy()
    run(["dvc", "remote", "modify", "--local", "local", "url", "s3://never-pushed-remote"], project)
    run(
        ["dvc", "remote", "modify", "--local", "local", "endpointurl", aws_env.endpoint_url],
        project,
    )
    run(["mlgitops", "data", "fetch"], project)
    # When the deploy verifies it, then it names what the remote lacks
    with pytest.raises(DeployError, match=r"the DVC remote lacks pinned outputs.*model\.joblib"):
        verify(project)
