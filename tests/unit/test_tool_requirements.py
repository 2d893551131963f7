"""A test that needs a missing program is skipped on a developer's machine, never under CI."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from helpers import PROJECT_ROOT, run_pytest

# Tests marked requires_tool("promtool", ...): they only run promtool itself.
PROMTOOL_TESTS = ("tests/monitor/test_prometheus.py", "-k", "promtool", "-p", "no:randomly")


def without_tools() -> dict[str, str]:
    """This environment with only the test interpreter's bin directory on PATH."""
    return {**os.environ, "PATH": str(Path(sys.executable).parent)}


def test_a_missing_tool_skips_its_tests_outside_ci():
    # Given no promtool on PATH and no CI variable, when the promtool tests run, then they
    # are skipped, naming the program and how to install it.
    env = {k: v for k, v in without_tools().items() if k != "CI"}
    result = run_pytest(*PROMTOOL_TESTS, "-rs", cwd=PROJECT_ROOT, env=env)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 skipped" in result.stdout, result.stdout[-3000:]
    assert "promtool is not installed (Debian: apt-get install prometheus)" in result.stdout


def test_a_missing_tool_fails_its_tests_under_ci():
    # Given no promtool on PATH under CI (CI=true, as GitHub Actions and .ci/run set it),
    # when the promtool tests run, then they fail and say CI must install it.
    env = {**without_tools(), "CI": "true"}
    result = run_pytest(*PROMTOOL_TESTS, cwd=PROJECT_ROOT, env=env)
    assert result.returncode != 0, f"the tests passed without promtool:\n{result.stdout[-3000:]}"
    assert "skipped" not in result.stdout, result.stdout[-3000:]
    assert "promtool is not installed" in result.stdout, result.stdout[-3000:]
    assert "CI must install it" in result.stdout, result.stdout[-3000:]
