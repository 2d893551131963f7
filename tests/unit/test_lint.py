"""Style is part of the build: ruff's lint and format checks pass on every commit."""

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
