"""Commands the workflows call around the pipeline: test summary, required check, retrain branch."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from mlgitops.deploy.commands import github_output
from mlgitops.deploy.revert import RevertError, git, push_environment

logger = logging.getLogger(__name__)

OUTPUT_KINDS = ("outs", "metrics", "plots")
# What a retraining commit carries besides the git-tracked outputs of dvc.yaml.
RETRAIN_PATHS = ("dvc.lock", "data.dvc")
# The monitor's reports, the reason for the retraining PR. Git ignores the folder, since
# `make monitor` writes it in every clone, so the retraining commit adds it by force.
MONITOR_REPORTS = "monitor"


class CiError(RuntimeError):
    """A workflow step cannot do what it was asked; the message says why."""


def git_tracked_outputs(dvc_yaml: Path) -> list[str]:
    """Every stage output of `dvc_yaml` that git tracks (`cache: false`), in file order.

    Outputs DVC caches are ignored by git and travel through the remote; these do not, so a
    commit of a new dvc.lock must carry them or the branch disagrees with its own lock.
    """
    pipeline = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}
    found: list[str] = []
    for stage in (pipeline.get("stages") or {}).values():
        for kind in OUTPUT_KINDS:
            for entry in stage.get(kind) or []:
                path, options = (
                    next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
                )
                if (options or {}).get("cache", True) is False and path not in found:
                    found.append(str(path))
    return found


def commit_retraining(
    repo: Path,
    branch: str,
    *,
    message: str,
    push: bool,
    remote: str = "origin",
    environ: Mapping[str, str] | None = None,
) -> str:
    """Commit dvc.lock, data.dvc, monitor/ and every git-tracked output on a new `branch`.

    Returns:
        The new commit's sha.

    Raises:
        CiError: when the branch exists (locally or on the remote: a rerun would otherwise
            drop its outputs, since `cml pr create` pushes nothing to an existing branch) or
            git refuses.
    """
    environ = dict(os.environ if environ is None else environ)
    paths = [
        p for p in [*RETRAIN_PATHS, *git_tracked_outputs(repo / "dvc.yaml")] if (repo / p).exists()
    ]
    try:
        remote_env = environ
        if push:
            url = git(repo, "remote", "get-url", remote).stdout.strip()
            remote_env = push_environment(url, environ)
            listed = git(repo, "ls-remote", "--heads", remote, branch, env=remote_env)
            if listed.stdout.strip():
                raise CiError(f"{remote} has a branch {branch} already: choose a new name")
        if not git(
            repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False
        ).returncode:
            raise CiError(f"branch {branch} exists already: choose a new name")
        git(repo, "switch", "--quiet", "--create", branch)
        git(repo, "add", "--", *paths)
        if (repo / MONITOR_REPORTS).is_dir():
            git(repo, "add", "--force", "--", MONITOR_REPORTS)
            paths.append(MONITOR_REPORTS)
        git(repo, "commit", "--quiet", "-m", message, env=environ)
        sha = git(repo, "rev-parse", "HEAD").stdout.strip()
        if push:
            git(repo, "push", "--quiet", remote, branch, env=remote_env)
    except RevertError as error:
        raise CiError(str(error)) from None
    logger.info(
        "committed %s on %s%s", ", ".join(paths), branch, f", pushed to {remote}" if push else ""
    )
    return sha


def failed_needs(results: Iterable[str]) -> list[str]:
    """The `name=result` pairs whose result is not `success`.

    Raises:
        CiError: on an item that is not `name=result`.
    """
    failed = []
    for item in results:
        name, sep, result = item.partition("=")
        if not sep or not name:
            raise CiError(f"expected NAME=RESULT, got {item!r}")
        if result != "success":
            failed.append(f"{name} ({result or 'no result'})")
    return failed


def _test_summary(args: argparse.Namespace) -> int:
    from mlgitops.report.tests import summarize_junit

    summary = summarize_junit(args.junit, outcome=args.outcome, pr_number=args.pr_number)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(summary.model_dump_json(indent=2) + "\n", encoding="utf-8")
    print(
        f"wrote {args.output}: {summary.outcome}, {summary.tests} tests, "
        f"{summary.failed + summary.errors} failed"
    )
    return 0


def _required_check(args: argparse.Namespace) -> int:
    try:
        failed = failed_needs(args.need)
    except CiError as error:
        logger.error("%s", error)
        return 1
    if failed:
        print(f"required check FAILED: {', '.join(failed)}")
        return 1
    print(f"required check passed: {', '.join(n.partition('=')[0] for n in args.need)}")
    return 0


def _tracked_outputs(args: argparse.Namespace) -> int:
    for path in git_tracked_outputs(args.dvc_yaml):
        print(path)
    return 0


def _retrain_branch(args: argparse.Namespace) -> int:
    try:
        sha = commit_retraining(args.repo, args.branch, message=args.message, push=args.push)
    except CiError as error:
        logger.error("cannot make the retraining branch: %s", error)
        return 1
    github_output({"commit": sha}, os.environ.get("GITHUB_OUTPUT"))
    print(f"committed {sha[:12]} on {args.branch}")
    return 0


def optional_pr_number(text: str) -> int | None:
    """An argparse type: empty (no pull request, e.g. a merge queue run) or a positive integer."""
    if text == "":
        return None
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or nothing, got {text!r}")
    return int(text)


def register_ci_commands(commands: Any) -> None:
    """Add `test-summary`, `required-check`, `tracked-outputs` and `retrain-branch`."""
    summary = commands.add_parser("test-summary", help="junit XML -> tests.json for the comment")
    summary.add_argument("--junit", type=Path, required=True)
    summary.add_argument("--outcome", required=True, help="the test step's outcome")
    summary.add_argument("--pr-number", type=optional_pr_number, default=None)
    summary.add_argument("--output", type=Path, default=Path("test-results/tests.json"))
    summary.set_defaults(handler=_test_summary)

    check = commands.add_parser("required-check", help="exit 1 unless every NAME=RESULT is success")
    check.add_argument("--need", action="append", default=[], metavar="NAME=RESULT")
    check.set_defaults(handler=_required_check)

    tracked = commands.add_parser("tracked-outputs", help="the git-tracked outputs of dvc.yaml")
    tracked.add_argument("--dvc-yaml", type=Path, default=Path("dvc.yaml"))
    tracked.set_defaults(handler=_tracked_outputs)

    retrain = commands.add_parser(
        "retrain-branch",
        help="commit dvc.lock, data.dvc, monitor/ and every git-tracked output on a new branch",
    )
    retrain.add_argument("--branch", required=True)
    retrain.add_argument("--message", required=True)
    retrain.add_argument("--repo", type=Path, default=Path("."))
    retrain.add_argument("--push", action="store_true", help="push it (token: GITHUB_TOKEN)")
    retrain.set_defaults(handler=_retrain_branch)
