"""Style is part of the build: ruff and mypy pass on every commit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).with_name("ruff")


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_ruff(command):
    result = subprocess.run(
        # No cache: a cached verdict misses what a moved module changes in import sorting
        # (first- or third-party), which a fresh clone's run then finds.
        [str(RUFF), *command, "--no-cache", "src", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"ruff {' '.join(command)} found problems:\n{result.stdout}"


@pytest.mark.slow
def test_mypy():
    """Given src/, when mypy checks it with pyproject's settings, then it finds nothing."""
    result = subprocess.run(
        # The whole program is checked from scratch, as a fresh clone's run does.
        [str(Path(sys.executable).with_name("mypy")), "--no-incremental"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"mypy found problems:\n{result.stdout}"
