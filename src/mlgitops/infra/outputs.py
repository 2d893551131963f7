"""From the AWS stack's outputs to the repository variables the workflows read.

The stack (deploy/aws/mlgitops.yaml) creates the DVC remote, the prediction-log store and one
OIDC role per job kind; its outputs are exactly what the workflows need. This module names the
variable each output becomes and writes the `gh variable set` commands that set them.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Stack output -> the repository variable a workflow reads (`vars.NAME`).
VARIABLES: dict[str, str] = {
    "PullRequestRoleArn": "DVC_PR_ROLE_ARN",
    "DeployRoleArn": "DVC_DEPLOY_ROLE_ARN",
    "MonitorRoleArn": "DVC_MONITOR_ROLE_ARN",
    "LogUrl": "MLGITOPS_LOG_URL",
    "AwsRegion": "AWS_REGION",
}
# The DVC remote is no variable: its URL is committed in .dvc/config, like any DVC remote.
REMOTE_OUTPUT = "DvcRemoteUrl"
READY = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"}


class StackError(RuntimeError):
    """The stack is missing, not deployed, or lacks an output the workflows need."""


@dataclass(frozen=True)
class Setup:
    """What a repository needs from the stack: its variables and its DVC remote URL."""

    variables: dict[str, str]
    remote_url: str

    def commands(self, repository: str | None = None) -> list[str]:
        """Shell commands that apply it: `gh variable set` per variable, then the remote."""
        target = f" --repo {shlex.quote(repository)}" if repository else ""
        lines = [
            f"gh variable set {name} --body {shlex.quote(value)}{target}"
            for name, value in sorted(self.variables.items())
        ]
        lines.append(f"dvc remote add --default --force storage {shlex.quote(self.remote_url)}")
        return lines


def setup_from_outputs(outputs: Mapping[str, str]) -> Setup:
    """The repository's setup from the stack's outputs (OutputKey -> OutputValue)."""
    missing = sorted({*VARIABLES, REMOTE_OUTPUT} - set(outputs))
    if missing:
        raise StackError(
            f"the stack has no output {', '.join(missing)}: expected the outputs of "
            "deploy/aws/mlgitops.yaml; deploy that template (see docs/infra.md)"
        )
    return Setup(
        variables={name: outputs[key] for key, name in VARIABLES.items()},
        remote_url=outputs[REMOTE_OUTPUT],
    )


def find_stack(cloudformation: Any, stack: str) -> dict[str, Any] | None:
    """The stack's description, or None when the account has no stack of that name.

    Raises:
        StackError: when the stack cannot be read (credentials, permissions, the endpoint).
    """
    from botocore.exceptions import ClientError

    try:
        (found,) = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as error:
        message = str(error.response["Error"].get("Message", error))
        if error.response["Error"].get("Code") == "ValidationError" and "does not exist" in message:
            return None
        raise StackError(f"cannot read stack {stack!r}: {message}") from error
    return dict(found)


def describe(cloudformation: Any, stack: str) -> dict[str, str]:
    """The outputs of a deployed stack, from a boto3 CloudFormation client."""
    found = find_stack(cloudformation, stack)
    if found is None:
        raise StackError(f"stack {stack!r} does not exist: deploy it first (see docs/infra.md)")
    status = found["StackStatus"]
    if status not in READY:
        raise StackError(f"stack {stack!r} is {status}: expected one of {', '.join(sorted(READY))}")
    return {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}
