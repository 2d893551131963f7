"""Rollback by revert: undo a merge into main with `git revert`, on a branch or on main itself.

Git stays the source of truth: the previous model comes back because the revert restores the
previous `dvc.lock`, and deploying that commit pulls the old outputs from the DVC remote by
hash. Two modes:

- pull request (default): the revert goes on a new branch `rollback/<short sha>` made from
  main; merging its pull request deploys it like any other merge;
- emergency: the revert is committed on main itself, to be pushed and deployed at once.

Either way, nothing is left half-done: a dirty tree, a commit that is not part of main's
history, a commit already reverted, a conflict or a refused push each raise RollbackError after
the repository is put back as it was. Nothing is pushed unless asked; with `push`, a token in
`GITHUB_TOKEN` (GitHub Actions) is handed to git for those commands through the environment,
never written to `.git/config` or put on a command line.
"""

from __future__ import annotations

import base64
import logging
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

ROLLBACK_PREFIX = "rollback/"
TOKEN_ENV = "GITHUB_TOKEN"


class RollbackError(RuntimeError):
    """The rollback cannot be made; the message says why and what to do."""


@dataclass(frozen=True)
class Rollback:
    """A revert commit that was made (and maybe pushed)."""

    reverted: str  # the commit that was undone
    revert_commit: str  # the new commit that undoes it
    branch: str  # the branch holding the new commit
    main_branch: str
    was_merge: bool
    pushed: bool
    subject: str  # the revert commit's first line
    message: str  # its whole message

    @property
    def emergency(self) -> bool:
        """Whether the revert was committed on the main branch itself."""
        return self.branch == self.main_branch


def git(
    repo: Path, *args: str, env: Mapping[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run git in `repo`; with `check`, a failure raises RollbackError with git's message."""
    result = subprocess.run(
        ["git", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        env=None if env is None else dict(env),
        check=False,
    )
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise RollbackError(f"`git {' '.join(args)}` failed: {detail}")
    return result


def _out(repo: Path, *args: str) -> str:
    return git(repo, *args).stdout.strip()


def push_environment(
    remote_url: str, environ: Mapping[str, str], *, token_env: str = TOKEN_ENV
) -> dict[str, str]:
    """The environment for a git command that talks to `remote_url`, with the token if any.

    When `token_env` is set and the remote is HTTPS, the token goes in an HTTP header scoped to
    the remote's host (the way actions/checkout does it), through GIT_CONFIG_COUNT/KEY/VALUE, so
    it exists only in that one process's environment.
    """
    env = dict(environ)
    token = environ.get(token_env, "")
    parts = urlsplit(remote_url)
    if not token or parts.scheme != "https" or not parts.hostname:
        return env
    credentials = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    index = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
    env[f"GIT_CONFIG_KEY_{index}"] = f"http.https://{parts.netloc}/.extraheader"
    env[f"GIT_CONFIG_VALUE_{index}"] = f"AUTHORIZATION: basic {credentials}"
    env["GIT_CONFIG_COUNT"] = str(index + 1)
    return env


def last_merge(repo: Path, main_branch: str = "main") -> str:
    """The newest merge commit on main's first-parent history (what a merged PR made).

    Raises:
        RollbackError: main has no merge commit.
    """
    found = _out(repo, "rev-list", "--first-parent", "--merges", "-n", "1", main_branch, "--")
    if not found:
        raise RollbackError(
            f"{main_branch} has no merge commit to revert; name the commit to revert with "
            "--commit (a squash-merged pull request is a plain commit on main)"
        )
    return found


def _check_ready(repo: Path, main_branch: str) -> None:
    """The repository can take a revert: a clean tree, no operation under way, an identity."""
    if git(repo, "rev-parse", "--is-inside-work-tree", check=False).stdout.strip() != "true":
        raise RollbackError(f"{repo} is not a git work tree")
    git_dir = Path(_out(repo, "rev-parse", "--absolute-git-dir"))
    for marker in ("MERGE_HEAD", "REVERT_HEAD", "CHERRY_PICK_HEAD", "rebase-merge", "rebase-apply"):
        if (git_dir / marker).exists():
            raise RollbackError(
                f"a git operation is under way ({marker} exists): finish or abort it first"
            )
    dirty = _out(repo, "status", "--porcelain", "--untracked-files=no")
    if dirty:
        raise RollbackError(
            "the work tree has uncommitted changes; commit or stash them first:\n" + dirty
        )
    if git(
        repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{main_branch}", check=False
    ).returncode:
        raise RollbackError(f"there is no local branch {main_branch!r} to revert on")
    if git(repo, "var", "GIT_COMMITTER_IDENT", check=False).returncode:
        raise RollbackError(
            "git has no identity to commit with: set user.name and user.email (or "
            "GIT_AUTHOR_NAME/EMAIL and GIT_COMMITTER_NAME/EMAIL)"
        )


def _resolve(repo: Path, commit: str | None, main_branch: str) -> str:
    """The full SHA to revert, checked to be part of main's first-parent history."""
    if not commit:
        sha = last_merge(repo, main_branch)
    else:
        found = git(repo, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}", check=False)
        if found.returncode:
            raise RollbackError(f"{commit!r} is not a commit in this repository")
        sha = found.stdout.strip()
    history = set(_out(repo, "rev-list", "--first-parent", main_branch, "--").split())
    if sha not in history:
        raise RollbackError(
            f"{sha[:12]} is not a merge into {main_branch} (it is not on {main_branch}'s "
            f"first-parent history): only what was merged into {main_branch} is rolled back"
        )
    if sha == _out(repo, "rev-list", "--max-parents=0", "-n", "1", main_branch, "--"):
        raise RollbackError(f"{sha[:12]} is the first commit of {main_branch}; there is no before")
    already = _out(
        repo,
        "log",
        "--format=%H",
        "-n",
        "1",
        f"--grep=This reverts commit {sha}",
        main_branch,
        "--",
    )
    if already:
        raise RollbackError(f"{sha[:12]} was already reverted on {main_branch} by {already[:12]}")
    return sha


def create_rollback(
    repo: Path,
    *,
    commit: str | None = None,
    main_branch: str = "main",
    emergency: bool = False,
    push: bool = False,
    remote: str = "origin",
    environ: Mapping[str, str] | None = None,
) -> Rollback:
    """Revert `commit` (default: the last merge into main), as a branch or on main.

    Args:
        repo: the git work tree.
        commit: what to undo; a merge is reverted with `-m 1` (back to main's side), a plain
            commit on main (a squash merge) with a plain revert.
        main_branch: the branch deploys come from.
        emergency: commit the revert on main itself instead of on `rollback/<short sha>`.
        push: `git push <remote> <branch>` afterwards (after checking with `git ls-remote`
            that the local main is what the remote has, so the revert applies to what is
            deployed).
        remote: the remote to push to.
        environ: the environment for git (default: this process's); `GITHUB_TOKEN` in it
            authenticates `git ls-remote` and `git push` to an HTTPS remote.

    Raises:
        RollbackError: why no rollback was made; the repository is as it was before the call.
    """
    environ = dict(os.environ if environ is None else environ)
    _check_ready(repo, main_branch)
    remote_env = environ
    if push:
        url = git(repo, "remote", "get-url", remote, check=False)
        if url.returncode:
            raise RollbackError(f"there is no remote {remote!r} to push to")
        remote_env = push_environment(url.stdout.strip(), environ)
        listed = git(
            repo, "ls-remote", remote, f"refs/heads/{main_branch}", env=remote_env, check=False
        )
        if listed.returncode:
            raise RollbackError(f"cannot reach {remote}: {listed.stderr.strip()}")
        remote_main = listed.stdout.split()[0] if listed.stdout.strip() else ""
        if remote_main != _out(repo, "rev-parse", main_branch):
            raise RollbackError(
                f"the local {main_branch} differs from {remote}/{main_branch}: update it "
                f"(git pull --ff-only {remote} {main_branch}) so the revert applies to what "
                "was deployed"
            )
    sha = _resolve(repo, commit, main_branch)
    short = _out(repo, "rev-parse", "--short", sha)
    parents = _out(repo, "rev-list", "--parents", "-n", "1", sha).split()[1:]
    branch = main_branch if emergency else f"{ROLLBACK_PREFIX}{short}"
    if not emergency:
        exists = git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
        if not exists.returncode:
            raise RollbackError(
                f"branch {branch} exists already: a rollback of {short} was prepared before "
                f"(delete it with git branch -D {branch} to start over)"
            )
        if push:
            remote_branch = git(
                repo, "ls-remote", "--heads", remote, branch, env=remote_env, check=False
            )
            if remote_branch.stdout.strip():
                raise RollbackError(
                    f"{remote} has a branch {branch} already: its pull request may be open"
                )

    original_branch = git(repo, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    original_head = _out(repo, "rev-parse", "HEAD")
    main_before = _out(repo, "rev-parse", main_branch)

    def put_back() -> None:
        if emergency:
            git(repo, "reset", "--quiet", "--hard", main_before, check=False)
        if original_branch.returncode == 0:
            git(repo, "switch", "--quiet", original_branch.stdout.strip(), check=False)
        else:
            git(repo, "switch", "--quiet", "--detach", original_head, check=False)
        if not emergency:
            git(repo, "branch", "--quiet", "-D", branch, check=False)

    if emergency:
        git(repo, "switch", "--quiet", main_branch)
    else:
        git(repo, "switch", "--quiet", "--create", branch, main_branch)
    mainline = ["-m", "1"] if len(parents) > 1 else []
    reverted = git(repo, "revert", "--no-edit", *mainline, sha, check=False)
    if reverted.returncode:
        conflicted = _out(repo, "diff", "--name-only", "--diff-filter=U")
        git(repo, "revert", "--abort", check=False)
        put_back()
        detail = (
            f"it conflicts with later changes in: {', '.join(conflicted.split())}"
            if conflicted
            else (reverted.stderr or reverted.stdout).strip()
        )
        raise RollbackError(
            f"cannot revert {short} cleanly ({detail}); nothing was changed. Revert it by hand "
            "on a branch, resolve the conflicts and open a pull request"
        )
    revert_commit = _out(repo, "rev-parse", "HEAD")
    if push:
        pushed = git(repo, "push", "--quiet", remote, branch, env=remote_env, check=False)
        if pushed.returncode:
            put_back()
            raise RollbackError(
                f"the revert was made but {remote} refused the push of {branch} "
                f"({pushed.stderr.strip()}); it was undone locally, nothing changed"
            )
    message = _out(repo, "log", "-n", "1", "--format=%B", revert_commit)
    logger.info(
        "reverted %s (%s) with %s on %s%s",
        short,
        "merge, mainline 1" if mainline else "single commit",
        revert_commit[:12],
        branch,
        f", pushed to {remote}" if push else "",
    )
    return Rollback(
        reverted=sha,
        revert_commit=revert_commit,
        branch=branch,
        main_branch=main_branch,
        was_merge=bool(mainline),
        pushed=push,
        subject=message.splitlines()[0],
        message=message,
    )
