"""Deploying deploy/aws/mlgitops.yaml through a CloudFormation change set.

The stack's parameters come from the repository, not from a person: the owner and name from
`GITHUB_REPOSITORY`, the log retention from `monitor.retention_days` in params.yaml (so storage
expires logs exactly when the monitor promises). A pull request gets the change set, to read;
a merge executes it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgitops.infra.outputs import StackError, find_stack

TEMPLATE_PATH = Path("deploy/aws/mlgitops.yaml")
# GitHub's own rules for an owner and a repository name; the template refuses the rest too.
REPOSITORY = re.compile(
    r"(?P<owner>[A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))/(?P<name>[A-Za-z0-9._-]{1,100})"
)
WAIT_SECONDS = 1800
# How CloudFormation words the refusal of a change set that would change nothing.
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")


@dataclass(frozen=True)
class StackParameters:
    """The template's parameters, as the repository determines them."""

    owner: str
    repository: str
    log_retention_days: int
    create_oidc_provider: bool

    @classmethod
    def of(
        cls, repository: str, *, retention_days: int, create_oidc_provider: bool
    ) -> StackParameters:
        """From `OWNER/NAME` and the monitor's retention; a malformed name is refused."""
        match = REPOSITORY.fullmatch(repository)
        if match is None:
            raise StackError(
                "expected the repository as OWNER/NAME (letters, digits, '-', and '.' or '_' in "
                "the name, no wildcard); received a value that is not"
            )
        return cls(match["owner"], match["name"], retention_days, create_oidc_provider)

    def as_cloudformation(self) -> list[dict[str, str]]:
        """The `Parameters` argument of CloudFormation's calls."""
        values = {
            "GitHubOwner": self.owner,
            "GitHubRepository": self.repository,
            "LogRetentionDays": str(self.log_retention_days),
            "CreateOidcProvider": str(self.create_oidc_provider).lower(),
        }
        return [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]


@dataclass(frozen=True)
class ChangeSet:
    """A created change set: its id and the changes it would make, one line each."""

    id: str
    changes: list[str]
    # CREATE when the stack did not exist: CloudFormation then holds an empty stack in
    # REVIEW_IN_PROGRESS until the change set is executed or that stack is deleted.
    creates_stack: bool = False
    # CloudFormation refuses a change set that changes nothing; it is kept only to be deleted.
    empty: bool = False

    def markdown(self, stack: str) -> str:
        """The change set as a job-summary section."""
        lines = [f"## Change set for stack `{stack}`", ""]
        lines += [f"- {change}" for change in self.changes] or ["No changes."]
        return "\n".join(lines) + "\n"


def _exists(cloudformation: Any, stack: str) -> bool:
    """Whether the stack was created (a change set under review creates none yet)."""
    found = find_stack(cloudformation, stack)
    return found is not None and found["StackStatus"] not in {
        "REVIEW_IN_PROGRESS",
        "DELETE_COMPLETE",
    }


def _wait(describe: Any, key: str, done: set[str], failed: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        answer = describe()
        status = answer[key]
        if status in done:
            return answer
        if status in failed:
            reason = answer.get("StatusReason") or answer.get("StackStatusReason") or ""
            raise StackError(f"CloudFormation reports {status}: {reason}")
        time.sleep(2)
    raise StackError(f"CloudFormation did not finish within {WAIT_SECONDS} s")


def create_change_set(
    cloudformation: Any, stack: str, template: str, parameters: StackParameters, *, name: str
) -> ChangeSet:
    """Create (and wait for) the change set that brings `stack` to `template`."""
    created = cloudformation.create_change_set(
        StackName=stack,
        ChangeSetName=name,
        TemplateBody=template,
        Parameters=parameters.as_cloudformation(),
        Capabilities=["CAPABILITY_NAMED_IAM"],
        ChangeSetType="UPDATE" if (update := _exists(cloudformation, stack)) else "CREATE",
    )
    described = _wait(
        lambda: cloudformation.describe_change_set(ChangeSetName=created["Id"], StackName=stack),
        "Status",
        done={"CREATE_COMPLETE", "FAILED"},
        failed=set(),
    )
    if described["Status"] == "FAILED":
        reason = described.get("StatusReason", "")
        if not any(phrase in reason for phrase in NO_CHANGES):
            raise StackError(f"CloudFormation reports FAILED: {reason}")
        # A pull request touching params.yaml but not the retention: nothing to change.
        return ChangeSet(id=created["Id"], changes=[], empty=True)
    changes = [
        f"{c['ResourceChange']['Action']} {c['ResourceChange']['LogicalResourceId']} "
        f"({c['ResourceChange']['ResourceType']})"
        for c in described.get("Changes", [])
    ]
    return ChangeSet(id=created["Id"], changes=changes, creates_stack=not update)


def discard(cloudformation: Any, stack: str, change_set: ChangeSet) -> None:
    """Delete a change set that was only for review, and the empty stack a CREATE one made.

    A pull request's preview then leaves nothing in the account: the merge's own change set
    creates the stack, and a closed pull request leaves no stack in REVIEW_IN_PROGRESS.
    """
    cloudformation.delete_change_set(ChangeSetName=change_set.id, StackName=stack)
    if change_set.creates_stack:
        found = find_stack(cloudformation, stack)
        if found is not None and found["StackStatus"] == "REVIEW_IN_PROGRESS":
            cloudformation.delete_stack(StackName=stack)


def execute(cloudformation: Any, stack: str, change_set: ChangeSet) -> str:
    """Execute the change set and wait for the stack; its final status."""
    if change_set.empty:
        discard(cloudformation, stack, change_set)
        return "unchanged"
    cloudformation.execute_change_set(ChangeSetName=change_set.id, StackName=stack)
    described = _wait(
        lambda: cloudformation.describe_stacks(StackName=stack)["Stacks"][0],
        "StackStatus",
        done={"CREATE_COMPLETE", "UPDATE_COMPLETE"},
        failed={
            "ROLLBACK_COMPLETE",
            "UPDATE_ROLLBACK_COMPLETE",
            "ROLLBACK_FAILED",
            "CREATE_FAILED",
        },
    )
    return str(described["StackStatus"])
