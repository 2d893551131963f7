"""The stack, executed: infra.yml by act on a pull request (lint and change set, nothing
created), on a fork's pull request (lint only, no credentials), and on the merge (the stack
deployed into moto's AWS API on 127.0.0.1, with the retention the pull request proposed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from harness import REPOSITORY, Repository

from helpers import run
from s3_server import running_s3_server

pytestmark = pytest.mark.slow

STACK = "mlgitops"  # the default of `mlgitops infra change-set --stack`
ROLE = "arn:aws:iam::123456789012:role/mlgitops-infra"


def pull_request_event(pull: dict, head_repository: str) -> dict:
    head = {**pull["head"], "repo": {"full_name": head_repository}}
    return {
        "action": "synchronize",
        "number": pull["number"],
        "pull_request": {**pull, "head": head},
        "repository": {"full_name": REPOSITORY, "default_branch": "main"},
    }


def set_retention(params: Path, days: int) -> None:
    text = params.read_text(encoding="utf-8")
    current = yaml.safe_load(text)["monitor"]["retention_days"]
    lines = [
        line.replace(f"retention_days: {current}", f"retention_days: {days}", 1)
        if line.lstrip().startswith("retention_days:")
        else line
        for line in text.splitlines(keepends=True)
    ]
    params.write_text("".join(lines), encoding="utf-8")
    assert yaml.safe_load(params.read_text())["monitor"]["retention_days"] == days


def test_a_stack_pull_request_gets_its_change_set_and_the_merge_deploys_it(
    repository: Repository, tmp_path: Path, seed: int
):
    repo = repository
    days = 7 + seed % 300
    current = yaml.safe_load((repo.work / "params.yaml").read_text())["monitor"]["retention_days"]
    days = days if days != current else days + 1
    run(["git", "switch", "-q", "-c", "retention"], repo.work)
    set_retention(repo.work / "params.yaml", days)
    repo.commit(f"keep prediction logs {days} days")
    pull = repo.open_pull_request(21, "retention")
    repo.vars.update({"MLGITOPS_INFRA_ROLE_ARN": ROLE, "AWS_REGION": "us-east-1"})
    with running_s3_server(tmp_path) as server:
        aws = server.env()
        cloudformation, s3 = server.client("cloudformation"), server.client("s3")

        # A fork's pull request: the template is linted; no credentials, no change set.
        fork = repo.act(
            "pull_request",
            "infra.yml",
            pull_request_event(pull, "mallory/mlgitops-demo"),
            ref="refs/pull/21/merge",
            extra_env=aws,
        )
        assert fork.returncode == 0, fork.log[-5000:]
        assert "cfn-lint" in fork.log
        assert "checkov" in fork.log
        assert not cloudformation.list_stacks()["StackSummaries"], "a fork reached the account"

        # The repository's own pull request: the change set, described, and nothing created.
        reviewed = repo.act(
            "pull_request",
            "infra.yml",
            pull_request_event(pull, REPOSITORY),
            ref="refs/pull/21/merge",
            extra_env=aws,
        )
        assert reviewed.returncode == 0, reviewed.log[-5000:]
        assert f"Change set for stack `{STACK}`" in reviewed.log, reviewed.log[-5000:]
        assert not s3.list_buckets()["Buckets"], "a pull request's change set was executed"
        left = cloudformation.list_stacks()["StackSummaries"]
        assert all(s["StackStatus"] == "DELETE_COMPLETE" for s in left), left

        # The merge: the stack is deployed, its log bucket keeping the days the PR proposed.
        run(["git", "switch", "-q", "main"], repo.work)
        run(["git", "merge", "-q", "--ff-only", "retention"], repo.work)
        run(["git", "push", "-q", "origin", "main"], repo.work)
        sha = repo.sha("refs/heads/main")
        merged = repo.act(
            "push",
            "infra.yml",
            {
                "ref": "refs/heads/main",
                "before": pull["base"]["sha"],
                "after": sha,
                "repository": {"full_name": REPOSITORY, "default_branch": "main"},
            },
            ref="main",
            extra_env=aws,
        )
        assert merged.returncode == 0, merged.log[-5000:]
        stack = cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]
        assert stack["StackStatus"].endswith("_COMPLETE"), stack["StackStatus"]
        parameters = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
        owner, name = REPOSITORY.split("/")
        assert parameters["GitHubOwner"] == owner
        assert parameters["GitHubRepository"] == name
        # The retention the pull request proposed is the stack's. (moto creates the buckets
        # but applies no lifecycle rule and lists no Outputs for a change set's stack:
        # tests/infra/test_template.py holds that the rule is this parameter.)
        assert parameters["LogRetentionDays"] == str(days)
        resources = cloudformation.describe_stack_resources(StackName=STACK)["StackResources"]
        created = {r.get("LogicalResourceId"): r.get("PhysicalResourceId") for r in resources}
        buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
        assert {created["DvcRemoteBucket"], created["PredictionLogBucket"]} <= buckets
