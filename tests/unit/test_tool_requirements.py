"""A test that needs a missing program is skipped on a developer's machine, never under CI."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from helpers import PROJECT_ROOT, require_tool, run_pytest

MISSING = "mlgitops-no-such-program"


def test_a_missing_tool_skips_outside_ci(monkeypatch):
    # Given a program that is not installed and no CI variable, when a test requires it,
    # then the test is skipped, naming the program and how to install it.
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"{MISSING} is not installed \\(apt-get"):
        require_tool(MISSING, install="apt-get install it")


def test_a_missing_tool_fails_under_ci(monkeypatch):
    # Given the same program missing under CI (CI=true, as GitHub Actions and .ci/run set
    # it), when a test requires it, then the test fails and says CI must install it.
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must install it, not skip its tests"):
        require_tool(MISSING, install="apt-get install it")


def test_an_installed_tool_is_found():
    # Given a program that is installed (the test interpreter itself), then its path comes back.
    assert Path(require_tool(Path(sys.executable).name, install="-")).is_file()


@pytest.mark.slow  # a separate pytest run
def test_the_prometheus_tests_fail_under_ci_without_promtool():
    # Given no promtool on PATH under CI, when the promtool tests run as CI runs them, then
    # they fail and say CI must install it: they are not skipped.
    env = {**os.environ, "PATH": str(Path(sys.executable).parent), "CI": "true"}
    env.pop("PYTEST_ADDOPTS", None)  # the outer run's options are not this run's
    tests = ("tests/monitor/test_prometheus.py", "-k", "promtool", "-p", "no:randomly")
    result = run_pytest(*tests, cwd=PROJECT_ROOT, env=env)
    assert result.returncode != 0, f"the tests passed without promtool:\n{result.stdout[-3000:]}"
    assert "SKIPPED" not in result.stdout, result.stdout[-3000:]
    assert "promtool is not installed" in result.stdout, result.stdout[-3000:]
    assert "CI must install it" in result.stdout, result.stdout[-3000:]
