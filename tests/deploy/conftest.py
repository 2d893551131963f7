"""Deploy-tier fixtures: reading the step outputs a command wrote for GitHub Actions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


def read_step_outputs(path: Path) -> dict[str, str]:
    """The outputs in a $GITHUB_OUTPUT file, read as the Actions runner documents its format.

    A stand-in for the runner's parser: `name=value` lines, and `name<<DELIMITER` blocks whose
    value is every line up to the line holding only DELIMITER.
    """
    outputs: dict[str, str] = {}
    lines = iter(path.read_text(encoding="utf-8").split("\n"))
    for line in lines:
        if not line:
            continue
        equals, heredoc = line.find("="), line.find("<<")
        if equals >= 0 and (heredoc < 0 or equals < heredoc):
            outputs[line[:equals]] = line[equals + 1 :]
            continue
        name, delimiter = line[:heredoc], line[heredoc + 2 :]
        value = []
        for body in lines:
            if body == delimiter:
                break
            value.append(body)
        else:
            raise AssertionError(f"output {name!r} has no closing delimiter")
        outputs[name] = "\n".join(value)
    return outputs


@pytest.fixture
def step_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], dict[str, str]]:
    """Point $GITHUB_OUTPUT at a fresh file; calling the fixture's value reads it back."""
    path = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(path))
    return lambda: read_step_outputs(path)
