"""Helpers shared by tests in several folders (a module, so it never clashes with conftest)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_PARAMS_PATH = PROJECT_ROOT / "tests" / "example_params.yaml"
# The files through which an Actions step talks to its runner.
RUNNER_FILES = ("GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STATE")


def tracked_files(root: Path) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [name for name in listed.split("\0") if name and (root / name).is_file()]


def run(command: list[str], cwd: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command with the test interpreter's bin directory first on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, check=False)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def copy_project(target: Path, *, remote: Path) -> Path:
    """Copy the project as a fresh clone would have it into `target`, as its own git
    repository whose DVC remote is the folder `remote` (set in the untracked local config)."""
    for relative in tracked_files(PROJECT_ROOT):
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / relative, destination)
    run(["git", "init", "-q", "-b", "main"], target)
    run(["git", "add", "-A"], target)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"], target)
    run(["dvc", "remote", "modify", "--local", "local", "url", str(remote)], target)
    push_workspace_data(target)
    return target


def push_workspace_data(copy: Path) -> None:
    """Put this workspace's raw data into a copy's DVC remote, as `dvc push` in the clone
    that added it did, so the copy, like any fresh clone, gets it with a real `dvc pull`.

    Only an adopted project needs it: the example's data also comes from its package, and a
    workspace without data (a fresh clone before `make data`) has nothing to push.
    """
    from mlgitops.data import EXAMPLE_DATA_MD5, pointer_md5

    recorded = pointer_md5(copy)
    if recorded in {None, EXAMPLE_DATA_MD5} or not (PROJECT_ROOT / "data").is_dir():
        return
    shutil.copytree(PROJECT_ROOT / "data", copy / "data")
    run(["dvc", "commit", "-f", "-q", "data.dvc"], copy)  # into the copy's own cache
    if pointer_md5(copy) != recorded:
        raise AssertionError(
            f"this workspace's data/ is not the version data.dvc records ({recorded}): run "
            "`make data` (or `dvc checkout data.dvc`) before the tests"
        )
    run(["dvc", "push", "-q", "data.dvc"], copy)
    # Then as a fresh clone has it: no data and no cache, only the pointer and the remote.
    shutil.rmtree(copy / "data")
    shutil.rmtree(copy / ".dvc" / "cache", ignore_errors=True)


def fetch_data(project: Path) -> None:
    """Get a project copy's raw data as a clone would: `mlgitops data fetch` (`dvc pull` from
    the copy's remote, which `copy_project` seeded, or the example's package)."""
    run(["mlgitops", "data", "fetch"], project)


@dataclass(frozen=True)
class AsgiAnswer:
    """What an ASGI app sent back for one request."""

    status: int
    headers: dict[bytes, bytes]
    body: bytes


def call_asgi(
    app: Any, method: str, path: str, headers: dict[str, str] | None = None
) -> AsgiAnswer:
    """Run one HTTP request (no body) through an ASGI app, without a server."""
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "server": ("127.0.0.1", 3000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return AsgiAnswer(start["status"], dict(start.get("headers") or []), body)


@dataclass(frozen=True)
class ParamChange:
    """One hyperparameter a test changed in a params.yaml: its dotted key, old and new value."""

    key: str
    old: int | float
    new: int | float


def change_a_hyperparameter(params_path: Path) -> ParamChange:
    """Change one numeric hyperparameter of whichever estimator params.yaml names, in place.

    The suite runs on every PR's own params, so a test that needs "a changed hyperparameter"
    takes it from the file instead of assuming main's estimator or values. Ints grow by one,
    floats halve (or become 1.0 from 0), which every numeric bound of the estimators allows.
    """
    import yaml

    from mlgitops.params import load_params

    raw = yaml.safe_load(params_path.read_text(encoding="utf-8"))
    estimator = load_params(params_path).train.estimator.model_dump()
    name, old = next(
        (field, value)
        for field, value in estimator.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and field != "n_jobs"
    )
    new = old + 1 if isinstance(old, int) else (old / 2 if old else 1.0)
    raw["train"]["estimator"][name] = new
    params_path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    load_params(params_path)  # the change is one the product accepts
    return ParamChange(f"train.estimator.{name}", old, new)


def run_pytest(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A separate pytest run (quiet, no cache folder) with the test interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
