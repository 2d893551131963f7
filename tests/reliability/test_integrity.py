"""Model integrity: a server whose packaged model file was changed never serves it."""

from __future__ import annotations

import subprocess
import time

import httpx
import pytest

from live_server import start_server, wait_ready
from mlgitops.serving.package import MODEL_FILE, file_md5

# How long a tampered server is watched; the check runs when the worker starts (seconds).
WATCH_SECONDS = 25


def tamper(home) -> tuple[str, str, str]:
    """Append one byte to the stored model file (a joblib file that still loads).

    Returns:
        The file, its recorded md5 and its md5 now.
    """
    model_file = home.model_dir() / MODEL_FILE
    recorded = file_md5(model_file)
    with model_file.open("ab") as handle:
        handle.write(b"\0")
    return str(model_file), recorded, file_md5(model_file)


@pytest.mark.slow
def test_tampered_model_is_never_served_and_the_log_says_why(home):
    # Given a packaged model whose stored file was changed afterwards, when the service is
    # served, then it never becomes ready nor answers a prediction, and its log names the
    # file and both hashes.
    model_file, recorded, tampered = tamper(home)
    server = start_server(home)
    auth = {"Authorization": f"Bearer {home.keys[0]}"}
    answered: list[int] = []
    try:
        deadline = time.monotonic() + WATCH_SECONDS
        while time.monotonic() < deadline and server.process.poll() is None:
            for method, path in (("GET", "/readyz"), ("POST", "/predict")):
                try:
                    response = httpx.request(
                        method, f"{server.url}{path}", json={"records": []}, headers=auth, timeout=2
                    )
                    answered.append(response.status_code)
                except httpx.TransportError:
                    pass
            time.sleep(0.5)
    finally:
        server.stop()
    log = server.log.read_text()
    assert 200 not in answered, f"a tampered model answered 200: {answered}"
    expected = f"{model_file} has md5 {tampered}, but was packaged as {recorded}"
    assert expected in log, f"no clear integrity message in the log:\n{log[-3000:]}"


@pytest.mark.slow
def test_tampered_model_stops_the_server_with_a_non_zero_exit(home):
    # Given a tampered model file, when the service is served, then `bentoml serve` itself
    # exits non-zero (so a deploy fails at once rather than after its ready timeout).
    tamper(home)
    server = start_server(home)
    try:
        returncode = server.process.wait(timeout=WATCH_SECONDS)
    except subprocess.TimeoutExpired:
        returncode = None
    finally:
        server.stop()
    assert returncode not in (None, 0), f"bentoml serve still running after {WATCH_SECONDS} s"


@pytest.mark.slow
def test_untampered_model_serves(home):
    # Given the same packaging without tampering, then the server becomes ready (the tests
    # above fail for the tampering, not for the setup).
    server = start_server(home)
    try:
        wait_ready(server)
    finally:
        server.stop()
