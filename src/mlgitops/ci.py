"""Commands the workflows call around the pipeline: test summary, required check, retrain branch."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from mlgitops.deploy.rollback import RollbackError, git, push_environment

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
    except RollbackError as error:
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
