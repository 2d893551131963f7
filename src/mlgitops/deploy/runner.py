"""Running the command-line tools deploy targets drive (kubectl, bentoml), injectable in tests."""

from __future__ import annotations

import logging
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommandResult:
    """What a finished command returned."""

    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        """Whether the command exited 0."""
        return self.returncode == 0

    def reason(self) -> str:
        """What to show when the command failed.

        The end of stderr (or stdout), or only the last line of a Python traceback (the
        exception).
        """
        lines = [line for line in (self.stderr or self.stdout).strip().splitlines() if line]
        if any(line.startswith("Traceback") for line in lines):
            lines = lines[-1:]
        return "\n".join(lines[-5:]) or f"exit code {self.returncode}"


class Runner(Protocol):
    """Runs one command. Raises FileNotFoundError when the program is not installed."""

    def __call__(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        """Run `argv` and return its exit code and output."""
        ...


TIMED_OUT = 124  # the exit code `timeout(1)` uses


def run_command(
    argv: Sequence[str],
    *,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
) -> CommandResult:
    """Run `argv` (no shell), capturing its output; a timeout becomes exit code 124.

    Args:
        argv: the program and its arguments.
        timeout: seconds before the command is killed.
        env: the whole environment of the command (default: this process's).
    """
    logger.info("$ %s", shlex.join(argv))
    try:
        completed = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=None if env is None else dict(env),
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        return CommandResult(
            TIMED_OUT,
            _text(error.stdout),
            f"{_text(error.stderr)}\n{argv[0]} timed out after {timeout:g} s".strip(),
        )
    return CommandResult(completed.returncode, completed.stdout, completed.stderr)


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode("utf-8", "replace")
    return output or ""
