"""Fixtures of the reliability tier: a packaged model in a private BentoML home, real servers.

Servers are `bentoml serve` processes on free 127.0.0.1 ports, each in its own process group
and stopped by the fixture (or the test) that started it (see live_server.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import (
    Home,
    Server,
    build_bento,
    packaged_home,
    start_server,
    wait_ready,
)


@pytest.fixture
def home(tmp_path: Path, trained_project: Path) -> Home:
    """A private BentoML home for one test, the model packaged into it."""
    return packaged_home(tmp_path / "home", trained_project)


@pytest.fixture(scope="module")
def bento_server(
    tmp_path_factory: pytest.TempPathFactory, trained_project: Path
) -> Iterator[tuple[Home, Server]]:
    """The built bento, served from a private home for the module's tests."""
    home = packaged_home(tmp_path_factory.mktemp("bento") / "home", trained_project)
    server = start_server(home, build_bento(home))
    wait_ready(server)
    try:
        yield home, server
    finally:
        server.stop()
