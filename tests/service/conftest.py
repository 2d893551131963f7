"""Fixtures of the service tier: a packaged model in a temporary BentoML home, the app once.

BentoML keeps its home and the Prometheus registry per process, so this tier sets both once
per session, packages the model once, and builds the ASGI app once (a second app in the same
process would register BentoML's metrics twice).
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from bad_input import API_KEYS

# BentoML fixes its home, and prometheus_client its multiprocess mode, the first time either is
# used in a process; set both while tests are collected, before any test can use them.
SESSION_DIR = Path(tempfile.mkdtemp(prefix="mlgitops-service-tests-"))
os.environ["BENTOML_HOME"] = str(SESSION_DIR / "bentoml")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(SESSION_DIR / "prometheus")
(SESSION_DIR / "prometheus").mkdir()


@pytest.fixture(scope="session")
def serving_env() -> Iterator[Path]:
    """The session's BentoML home and metrics directory, plus a prediction log and API keys.

    Yields:
        The directory holding them (removed after the session).
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENTOML_DO_NOT_TRACK", "True")
        patch.setenv("MLGITOPS_PREDICTION_LOG_DIR", str(SESSION_DIR / "predictions"))
        patch.setenv("MLGITOPS_API_KEYS", ",".join(API_KEYS))
        patch.delenv("MLGITOPS_MODEL_TAG", raising=False)
        # An exported key would encrypt the session's package (tests/reliability covers that).
        patch.delenv("MLGITOPS_MODEL_KEY", raising=False)
        yield SESSION_DIR
    shutil.rmtree(SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def packaged(serving_env: Path, trained_project: Path) -> Any:
    """The trained model, packaged into the session's BentoML home."""
    from mlgitops.serving.package import package

    return package(trained_project)


@pytest.fixture(scope="session")
def service_module(packaged: Any) -> ModuleType:
    """`mlgitops.serving.service`, imported once the model is in the store, serving it as
    `mlgitops serve` does from source (the tag in MLGITOPS_MODEL_TAG)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLGITOPS_MODEL_TAG", str(packaged.tag))
        return importlib.import_module("mlgitops.serving.service")


@pytest.fixture(scope="session")
def example(service_module: ModuleType) -> dict[str, Any]:
    """The example record stored with the model (a real test row), as the API docs show it."""
    return dict(service_module.EXAMPLE)


@pytest.fixture(scope="session")
def client(service_module: ModuleType) -> Iterator[Any]:
    """An HTTP client of the service's ASGI app, built and started once per session."""
    with warnings.catch_warnings():
        # Starlette prefers `httpx2` for its test client now; `httpx` is what is installed.
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    app = service_module.MlgitopsService.to_asgi()
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def auth() -> dict[str, str]:
    """Headers carrying a valid API key."""
    return {"Authorization": f"Bearer {API_KEYS[0]}"}
