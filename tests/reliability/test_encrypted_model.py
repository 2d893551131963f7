"""Encryption at rest: an encrypted package serves with its key and stops the server without."""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from live_server import (
    Home,
    Server,
    build_bento,
    package_into,
    packaged_home,
    start_server,
    wait_ready,
)
from mlgitops.layout import locked_md5
from mlgitops.serving.package import (
    ENCRYPTED_MODEL_FILE,
    ENCRYPTION_METADATA,
    MODEL_FILE,
    file_md5,
)

pytestmark = pytest.mark.slow

KEY_ENV = "MLGITOPS_MODEL_KEY"  # serve.model_key_env in params.yaml
# How long a server with the wrong key is watched before it counts as still running (seconds).
WATCH_SECONDS = 30


@dataclasses.dataclass(frozen=True)
class Encrypted:
    """A private home whose model was packaged encrypted, the bento built from it, the key."""

    home: Home
    bento: str
    key: str
    model_md5: str


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory: pytest.TempPathFactory, reliability_project: Path) -> Encrypted:
    key = secrets.token_hex(32)
    lock = yaml.safe_load((reliability_project / "dvc.lock").read_text(encoding="utf-8"))
    # `mlgitops package` and `bentoml build` (which imports the service) both read the key.
    home = packaged_home(
        tmp_path_factory.mktemp("encrypted") / "home", reliability_project, {KEY_ENV: key}
    )
    bento = build_bento(home)
    return Encrypted(
        home=home, bento=bento, key=key, model_md5=locked_md5(lock, "artifacts/model.joblib")
    )


def serving_with_key(encrypted: Encrypted, key: str) -> Home:
    """The encrypted home, its servers given `key`."""
    return dataclasses.replace(encrypted.home, extra_env={KEY_ENV: key})


def watch_until_exit(server: Server, url_path: str = "/readyz") -> tuple[int | None, list[int]]:
    """Poll `url_path` until the server exits or WATCH_SECONDS pass.

    Returns:
        The exit code (None if still running) and every status answered.
    """
    answered: list[int] = []
    deadline = time.monotonic() + WATCH_SECONDS
    while time.monotonic() < deadline and server.process.poll() is None:
        with contextlib.suppress(httpx.TransportError):
            answered.append(httpx.get(f"{server.url}{url_path}", timeout=2).status_code)
        time.sleep(0.5)
    try:
        return server.process.wait(timeout=1), answered
    except subprocess.TimeoutExpired:
        return None, answered


def test_encrypted_package_holds_no_plaintext_and_serves_with_its_key(encrypted):
    # Given the model packaged with a key and built into a bento, then no file of the BentoML
    # home (model store and bentos) is the plaintext model and the metadata records the
    # encryption; when the bento is served with the key, then it predicts and reports the
    # md5 that dvc.lock records, and the key appears nowhere in the server log.
    home = encrypted.home
    model_dir = home.model_dir()
    assert (model_dir / ENCRYPTED_MODEL_FILE).is_file(), "no encrypted model file in the store"
    assert not (model_dir / MODEL_FILE).exists(), "a plaintext model file is in the store"
    # A bento refers to the model store entry; `bentoml containerize` copies that entry.
    stored = [p for p in home.bentoml_home.rglob("*") if p.is_file()]
    plaintext = [str(p) for p in stored if file_md5(p) == encrypted.model_md5]
    assert not plaintext, f"plaintext copies of the model: {plaintext}"
    model_yaml = yaml.safe_load((model_dir / "model.yaml").read_text(encoding="utf-8"))
    assert model_yaml["metadata"][ENCRYPTION_METADATA] == "AES-256-GCM", "encryption not recorded"

    server = start_server(
        serving_with_key(encrypted, encrypted.key), encrypted.bento, log_name="right-key.log"
    )
    auth = {"Authorization": f"Bearer {home.keys[0]}"}
    try:
        wait_ready(server)
        example = model_yaml["metadata"]["example"]
        predicted = httpx.post(
            f"{server.url}/predict", json={"records": [example]}, headers=auth, timeout=60
        )
        metadata = httpx.get(f"{server.url}/metadata", headers=auth, timeout=10)
    finally:
        server.stop()
    assert predicted.status_code == 200, f"predict: {predicted.status_code} {predicted.text}"
    # A prediction may be falsy (class 0 or false of an adopted table), never missing.
    assert predicted.json()[0].get("prediction") is not None, f"no prediction: {predicted.text}"
    assert metadata.json()["model_md5"] == encrypted.model_md5, "served md5 is not dvc.lock's"
    assert encrypted.key not in server.log.read_text(), "the model key is in the server log"


def test_wrong_key_stops_the_server_and_the_log_says_why(encrypted):
    # Given the encrypted bento, when served with another well-formed key, then it never
    # becomes ready, `bentoml serve` exits non-zero, and its log names the problem and the
    # variable without showing the key.
    wrong = secrets.token_hex(32)
    server = start_server(serving_with_key(encrypted, wrong), encrypted.bento, log_name="wrong.log")
    try:
        returncode, answered = watch_until_exit(server)
    finally:
        server.stop()
    log = server.log.read_text()
    assert 200 not in answered, f"a server with the wrong key became ready: {answered}"
    assert returncode not in (None, 0), f"bentoml serve still running after {WATCH_SECONDS} s"
    expected = f"cannot decrypt the packaged model: wrong or missing {KEY_ENV}"
    assert expected in log, f"no clear decryption message in the log:\n{log[-3000:]}"
    assert wrong not in log, "the wrong key is in the server log"
    assert encrypted.key not in log, "the model key is in the server log"


def test_package_refuses_a_malformed_key_and_stores_nothing(tmp_path, reliability_project):
    # Given a key that is not 64 hexadecimal characters, when the model is packaged, then
    # `mlgitops package` exits 1 naming the variable and the expected format, without the
    # key, and the model store stays empty.
    malformed = "correct-horse-battery-staple"
    home = Home(root=tmp_path / "home", extra_env={KEY_ENV: malformed})
    home.root.mkdir()
    result = package_into(home, reliability_project)
    output = result.stdout + result.stderr
    assert result.returncode == 1, f"mlgitops package exited {result.returncode}:\n{output}"
    expected = f"{KEY_ENV} must be 64 hexadecimal characters"
    assert expected in result.stderr, f"no clear key error:\n{output}"
    assert malformed not in output, "the malformed key was echoed"
    models = home.bentoml_home / "models"
    assert not models.exists() or not any(models.rglob("*.joblib*")), "a model was stored"
