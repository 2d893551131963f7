"""Fixtures of the act tier: one trained project and DVC remote per session, a bare origin
with a stand-in GitHub API per scenario, and the wall time of each scenario."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from github_api import GitHubApi, State
from harness import FIGURES, GIT, Repository

from helpers import copy_project, run

TIMINGS: dict[str, float] = {}


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    """Inside an act job (a scenario's `make test`), this tier would start act again."""
    return True if os.environ.get("ACT") == "true" else None


@pytest.fixture(scope="session")
def act_root() -> Iterator[Path]:
    """Where act keeps workspaces: under /tmp, no hidden folder in the path (bentoml build
    refuses one), removed after the session."""
    root = Path(tempfile.mkdtemp(prefix="mlgitops-act-", dir="/tmp"))
    yield root
    if not os.environ.get("MLGITOPS_ACT_KEEP"):
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def trained_origin(act_root: Path) -> tuple[Path, Path]:
    """A project copy trained once (dvc repro) and pushed to a DVC remote every scenario
    reads: main of every scenario's origin, and that remote."""
    remote = act_root / "dvc-remote"
    project = copy_project(act_root / "trained", remote=remote)
    run(["mlgitops", "data", "fetch"], project)
    run(["dvc", "repro"], project)
    # The raw data too (written from the package, not yet in the cache), as a project's
    # remote holds it: monitor.yml's first step pulls it.
    run(["dvc", "add", "-q", "data"], project)
    run(["dvc", "push", "-q"], project)
    if run(["git", "status", "--porcelain"], project).stdout.strip():
        run(["git", "add", "-A"], project)
        run([*GIT, "commit", "-qm", "outputs of dvc repro"], project)
    return project, remote


@pytest.fixture
def repository(request, act_root: Path, trained_origin: tuple[Path, Path]) -> Iterator[Repository]:
    """A bare origin holding main, a developer's clone of it, and the stand-in API."""
    project, remote = trained_origin
    root = act_root / request.node.name
    root.mkdir()
    origin = root / "origin.git"
    run(["git", "clone", "-q", "--bare", str(project), str(origin)], root)
    work = root / "work"
    run(["git", "clone", "-q", str(origin), str(work)], root)
    run(["dvc", "remote", "modify", "--local", "local", "url", str(remote)], work)
    api = GitHubApi(State(repository="octo/mlgitops-demo", artifacts=root / "artifacts")).start()
    started = time.monotonic()
    try:
        yield Repository(root=root, origin=origin, work=work, api=api, dvc_remote=remote)
    finally:
        api.stop()
        TIMINGS[request.node.name] = time.monotonic() - started


def pytest_terminal_summary(terminalreporter) -> None:
    if TIMINGS:
        terminalreporter.write_sep("-", "act scenarios: wall time")
        for name, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{seconds:8.1f} s  {name}")
        terminalreporter.write_line(f"{sum(TIMINGS.values()):8.1f} s  total")
    for name, value in FIGURES.items():
        terminalreporter.write_line(f"{value:8.1f}    {name}")
