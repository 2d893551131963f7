"""The `mlgitops` subcommands of rolling back: `rollback` (`deploy` is in orchestrate.py)."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
from pathlib import Path

logger = logging.getLogger(__name__)


def github_output(values: dict[str, str], path: str | None) -> None:
    """Append `values` to the GitHub Actions step outputs file, when there is one.

    Every value is written with a random delimiter, so a multi-line commit message cannot
    end the value early or add outputs of its own.
    """
    if not path:
        return
    with open(path, "a", encoding="utf-8") as handle:
        for name, value in values.items():
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
            handle.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def _rollback(args: argparse.Namespace) -> int:
    from mlgitops.deploy.revert import RevertError, create_rollback

    try:
        rollback = create_rollback(
            args.repo.resolve(),
            commit=args.commit or None,
            main_branch=args.main_branch,
            emergency=args.emergency,
            push=args.push,
            remote=args.remote,
        )
    except RevertError as error:
        logger.error("no rollback made: %s", error)
        return 1
    body = (
        f"{rollback.message}\n\n"
        f"Rolls back {rollback.reverted}: merging this deploys the previous `dvc.lock`, whose "
        "model and data come back from the DVC remote by hash, with no retraining.\n\n"
        "_Opened by `mlgitops rollback` (.github/workflows/rollback.yml)._"
    )
    github_output(
        {
            "commit": rollback.revert_commit,
            "branch": rollback.branch,
            "reverted": rollback.reverted,
            "title": rollback.subject,
            "body": body,
        },
        os.environ.get("GITHUB_OUTPUT"),
    )
    where = f"{args.remote}/{rollback.branch}" if rollback.pushed else rollback.branch
    print(f"reverted {rollback.reverted[:12]} with {rollback.revert_commit[:12]} on {where}")
    if not rollback.pushed:
        print(f"push it with: git push {args.remote} {rollback.branch}")
    elif not rollback.emergency:
        print(f"open a pull request from {rollback.branch} into {rollback.main_branch}")
    return 0


def register_deploy_commands(commands: argparse._SubParsersAction) -> None:
    """Add `rollback` to the `mlgitops` parser."""
    rollback = commands.add_parser(
        "rollback",
        help="revert a merge into main (default: the last one) on a rollback/<sha> branch for "
        "a pull request, or on main with --emergency",
        description="Create the revert commit of a merge into main. Merging (or, with "
        "--emergency, pushing) it deploys the previous dvc.lock: the old model comes back from "
        "the DVC remote, with no retraining. Refuses a dirty tree, a commit that was not "
        "merged into main, and a revert that conflicts, leaving the repository as it was.",
    )
    rollback.add_argument(
        "--commit", default="", help="the commit to revert (default: the last merge into main)"
    )
    rollback.add_argument(
        "--emergency",
        action="store_true",
        help="commit the revert on main itself (to push and deploy at once) instead of on a "
        "rollback/<short sha> branch for a pull request",
    )
    rollback.add_argument(
        "--push",
        action="store_true",
        help="git push the branch to --remote (a token in GITHUB_TOKEN authenticates HTTPS)",
    )
    rollback.add_argument("--main-branch", default="main", help="the branch deploys come from")
    rollback.add_argument("--remote", default="origin")
    rollback.add_argument("--repo", type=Path, default=Path("."), help="the git work tree")
    rollback.set_defaults(handler=_rollback)
