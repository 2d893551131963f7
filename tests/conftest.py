"""Shared fixtures: the project root, the seed, params, the raw data and project copies."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from helpers import (
    EXAMPLE_PARAMS_PATH,
    PROJECT_ROOT,
    RUNNER_FILES,
    HttpStub,
    StartStub,
    StubAnswer,
    copy_project,
    fetch_data,
    require_tool,
    run,
)
from mlgitops.params import Params, load_params
from s3_server import S3Server, deploy_stack, running_s3_server

TIERS = (
    "unit",
    "data",
    "model",
    "pipeline",
    "workflows",
    "service",
    "deploy",
    "lifecycle",
    "monitor",
    "reliability",
    "adoption",
    "actions",
    "infra",
    "scoring",
)

os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@pytest.fixture(autouse=True)
def _isolated_from_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without the runner's step files (job summary, step outputs): a test
    that writes them sets its own, and never writes into the suite's own Test step."""
    for name in RUNNER_FILES:
        monkeypatch.delenv(name, raising=False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier, taken from the folder it lives in."""
    for item in items:
        relative = Path(str(item.fspath)).relative_to(PROJECT_ROOT / "tests")
        if relative.parts[0] in TIERS:
            item.add_marker(getattr(pytest.mark, relative.parts[0]))


TIER_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Add each phase's time (setup, call, teardown) to its tier, for the budget summary."""
    parts = report.nodeid.split("::", 1)[0].split("/")
    tier = parts[1] if len(parts) > 2 and parts[0] == "tests" else ""
    if tier in TIERS:
        TIER_SECONDS[tier] = TIER_SECONDS.get(tier, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The time each tier took, so the suite's budget is tracked tier by tier."""
    if TIER_SECONDS:
        terminalreporter.write_sep("-", "time per tier (setup + call + teardown)")
        for tier, seconds in sorted(TIER_SECONDS.items(), key=lambda kv: -kv[1]):
            terminalreporter.write_line(f"{seconds:8.1f} s  {tier}")
        terminalreporter.write_line(f"{sum(TIER_SECONDS.values()):8.1f} s  total")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a test marked `requires_tool(name, install=...)` that lacks the program.

    Under CI it fails instead (see `helpers.require_tool`).
    """
    for mark in item.iter_markers("requires_tool"):
        require_tool(*mark.args, **mark.kwargs)


@pytest.fixture(scope="session")
def seed() -> int:
    """The one seed every test that needs randomness takes."""
    return 20261130


@pytest.fixture(scope="session")
def params() -> Params:
    """The project's own params.yaml: whatever table the project has adopted."""
    return load_params(PROJECT_ROOT / "params.yaml")


# Enough rows for a stratified split, bootstrap intervals and per-class tables.
GENERATED_ROWS = 300


@pytest.fixture(scope="session")
def raw_text(params: Params, seed: int) -> pd.DataFrame:
    """A raw table made from the project's contract, as text cells the way the pipeline
    reads them: it holds for any table the project adopts."""
    from tables import table_from_contract

    return table_from_contract(params.contract, rows=GENERATED_ROWS, seed=seed)


@pytest.fixture(scope="session")
def raw_data_path(raw_text: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`raw_text` written as the project's data/raw.csv would be."""
    path = tmp_path_factory.mktemp("raw") / "raw.csv"
    raw_text.to_csv(path, index=False, lineterminator="\n")
    return path


@pytest.fixture(scope="session")
def example_params() -> Params:
    """The example project's params (the penguins), for tests about the example data."""
    return load_params(EXAMPLE_PARAMS_PATH)


@pytest.fixture(scope="session")
def example_data_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example raw table, written from the registry package as `make data` does offline."""
    from mlgitops.data import write_default_dataset

    return write_default_dataset(tmp_path_factory.mktemp("example") / "raw.csv")


@pytest.fixture(scope="session")
def example_text(example_data_path: Path) -> pd.DataFrame:
    """The example raw table as text cells."""
    from mlgitops.contract.check import read_table

    return read_table(example_data_path)


@pytest.fixture
def project_copy(tmp_path: Path) -> Callable[..., Path]:
    """A copy of the project as a fresh clone would have it, in its own git repository.

    Its DVC remote points at an empty folder, so the raw data comes from the package.
    """

    def make(name: str = "project") -> Path:
        return copy_project(tmp_path / name, remote=tmp_path / f"{name}-remote")

    return make


REQUIRED_ARTIFACTS = (
    "artifacts/model.joblib",
    "artifacts/train.csv",
    "artifacts/test.csv",
    "reports/metrics.json",
)


def _workspace_matches_lock(root: Path) -> bool:
    from mlgitops.serving.package import PackageError, collect

    if not all((root / name).exists() for name in REQUIRED_ARTIFACTS):
        return False
    try:
        collect(root)
    except PackageError:
        return False
    return True


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose artifacts match its dvc.lock: the workspace itself when it does (after
    `make repro`), else a fresh copy in which the pipeline runs (as in CI's fresh clone)."""
    if _workspace_matches_lock(PROJECT_ROOT):
        return PROJECT_ROOT
    folder = tmp_path_factory.mktemp("trained")
    target = copy_project(folder / "project", remote=folder / "remote")
    fetch_data(target)
    run(["dvc", "repro"], target)
    return target


@pytest.fixture
def http_stub() -> Iterator[StartStub]:
    """Start stand-in HTTP servers on 127.0.0.1, stopped when the test ends.

    `http_stub(answer)` serves `answer`, a function from the request to the reply.
    """
    started: list[HttpStub] = []

    def start(answer: StubAnswer) -> HttpStub:
        started.append(HttpStub(answer))
        return started[-1]

    yield start
    for stub in started:
        stub.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One moto server (S3, CloudFormation, IAM, KMS) on 127.0.0.1 for the whole session."""
    with running_s3_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(scope="session")
def aws_stack(s3_server: S3Server, params: Params) -> dict[str, str]:
    """The project's AWS stack, deployed once into moto's server: its outputs."""
    return deploy_stack(s3_server, retention_days=params.monitor.retention_days)


@pytest.fixture
def aws_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """This test's processes (dvc, boto3, mlgitops) talk to moto's server."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server
