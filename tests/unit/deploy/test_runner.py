"""The command runner the deploy targets share: output, timeouts, missing programs."""

from __future__ import annotations

import sys

import pytest

from mlgitops.deploy.runner import TIMED_OUT, CommandResult, run_command


def test_run_command_captures_output_and_environment():
    # Given a command and an environment, then its exit code, stdout and stderr come back.
    script = "import os, sys; print(os.environ['PROBE']); sys.exit(3)"
    result = run_command([sys.executable, "-c", script], env={"PROBE": "seen"})
    assert result == CommandResult(3, "seen\n", ""), f"got {result}"
    assert not result.ok


def test_run_command_turns_a_timeout_into_exit_code_124():
    # Given a command that outlives its timeout, then it is killed and reported as timed out.
    result = run_command([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.5)
    assert result.returncode == TIMED_OUT
    assert "timed out after 0.5 s" in result.reason()


def test_run_command_raises_for_a_missing_program():
    # Given a program that is not installed, then FileNotFoundError tells the caller so.
    with pytest.raises(FileNotFoundError):
        run_command(["mlgitops-no-such-program"])


def test_reason_keeps_the_exception_of_a_traceback():
    # Given a Python traceback on stderr, then the reason is its last line only.
    traceback = 'Traceback (most recent call last):\n  File "x", line 1\nValueError: bad token\n'
    assert CommandResult(1, "", traceback).reason() == "ValueError: bad token"
    assert CommandResult(1, "", "").reason() == "exit code 1"
