"""Reading project files as they were at a git revision, or as they are in the workspace."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

WORKSPACE = "workspace"


class RevisionError(RuntimeError):
    """The base revision is not available in this clone."""


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)


def resolve(repo: Path, rev: str) -> str:
    """The full commit SHA of `rev`.

    Raises:
        RevisionError: with how to fetch it, when the clone does not have it (a shallow clone).
    """
    result = _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if result.returncode != 0:
        shallow = _git(repo, "rev-parse", "--is-shallow-repository").stdout.strip() == "true"
        hint = (
            "this is a shallow clone: run `git fetch --unshallow origin` (in GitHub Actions, "
            "check out with `fetch-depth: 0`)"
            if shallow
            else f"run `git fetch origin {rev}` (or `git fetch --all`) and try again"
        )
        raise RevisionError(f"base revision '{rev}' is not in this clone; {hint}")
    return result.stdout.strip()


def merge_base(repo: Path, branch: str = "main") -> str:
    """Where the current branch left `branch` (origin's copy when there is one)."""
    for candidate in (f"origin/{branch}", branch):
        result = _git(repo, "merge-base", "HEAD", candidate)
        if result.returncode == 0:
            return result.stdout.strip()
    raise RevisionError(f"no merge-base between HEAD and '{branch}'; fetch it or pass --base")


def head_sha(repo: Path) -> str | None:
    """The commit HEAD points at, or None outside a git checkout."""
    result = _git(repo, "rev-parse", "HEAD")
    return result.stdout.strip() if result.returncode == 0 else None


@dataclass(frozen=True)
class Snapshot:
    """The project's files at one revision (`rev`), or in the workspace (`rev=WORKSPACE`)."""

    repo: Path
    rev: str = WORKSPACE

    def text(self, path: str) -> str | None:
        """A file's text, or None when it does not exist at this revision."""
        if self.rev == WORKSPACE:
            file = self.repo / path
            return file.read_text(encoding="utf-8") if file.is_file() else None
        result = _git(self.repo, "show", f"{self.rev}:{path}")
        return result.stdout if result.returncode == 0 else None

    def json(self, path: str) -> Any:
        """The JSON file at `path` in this revision, or None when absent."""
        text = self.text(path)
        return None if text is None else json.loads(text)

    def yaml(self, path: str) -> Any:
        """The YAML file at `path` in this revision, or None when absent."""
        text = self.text(path)
        return None if text is None else yaml.safe_load(text)

    def listdir(self, directory: str) -> list[str]:
        """Paths of the files under `directory` at this revision, sorted."""
        if self.rev == WORKSPACE:
            root = self.repo / directory
            if not root.is_dir():
                return []
            return sorted(
                p.relative_to(self.repo).as_posix() for p in root.rglob("*") if p.is_file()
            )
        result = _git(self.repo, "ls-tree", "-r", "--name-only", self.rev, "--", directory)
        return sorted(result.stdout.splitlines()) if result.returncode == 0 else []
