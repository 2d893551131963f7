"""Fixtures of the reliability tier: a packaged model in a private BentoML home, real servers.

Servers are `bentoml serve` processes on free 127.0.0.1 ports, each in its own process group
and stopped by the fixture (or the test) that started it (see live_server.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import PROJECT_ROOT, copy_project, run
from live_server import (
    REQUIRED_ARTIFACTS,
    Home,
    Server,
    build_bento,
    packaged_home,
    start_server,
    wait_ready,
)


@pytest.fixture(scope="session")
def reliability_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose artifacts match its dvc.lock: the workspace when it does, else a copy
    in which the pipeline runs (as in CI's fresh clone)."""
    from mlgitops.serving.package import PackageError, collect

    if all((PROJECT_ROOT / name).exists() for name in REQUIRED_ARTIFACTS):
        try:
            collect(PROJECT_ROOT)
            return PROJECT_ROOT
        except PackageError:
            pass
    folder = tmp_path_factory.mktemp("trained")
    target = copy_project(folder / "project", remote=folder / "remote")
    run(["mlgitops", "data", "fetch"], target)
    run(["dvc", "repro"], target)
    return target


@pytest.fixture
def home(tmp_path: Path, reliability_project: Path) -> Home:
    """A private BentoML home for one test, the model packaged into it."""
    return packaged_home(tmp_path / "home", reliability_project)


@pytest.fixture(scope="module")
def bento_server(
    tmp_path_factory: pytest.TempPathFactory, reliability_project: Path
) -> Iterator[tuple[Home, Server]]:
    """The built bento, served from a private home for the module's tests."""
    home = packaged_home(tmp_path_factory.mktemp("bento") / "home", reliability_project)
    server = start_server(home, build_bento(home))
    wait_ready(server)
    try:
        yield home, server
    finally:
        server.stop()
