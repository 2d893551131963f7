"""`mlgitops serve`: the `bentoml serve` command every launcher runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgitops.cli import main
from mlgitops.serving.commands import serve_command


def test_serve_command_carries_the_keep_alive_and_binds_the_given_address(params):
    # Given the serve params, when the command is built, then it serves the target on the
    # given host and port with params' keep-alive.
    command = serve_command(
        "mlgitops:abc", host="127.0.0.1", port=3123, keep_alive_s=params.serve.keep_alive_s
    )
    assert command[1:3] == ["serve", "mlgitops:abc"], command
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--port") + 1] == "3123"
    assert command[command.index("--timeout-keep-alive") + 1] == str(params.serve.keep_alive_s)
    assert "--ssl-certfile" not in command, "plain HTTP unless a certificate is given"


def test_serve_command_serves_https_with_a_certificate_and_its_key():
    # Given a certificate and its key, then both reach bentoml; one without the other is
    # refused rather than silently served over plain HTTP.
    command = serve_command(
        "t",
        host="127.0.0.1",
        port=1,
        keep_alive_s=75,
        ssl_certfile=Path("cert.pem"),
        ssl_keyfile=Path("key.pem"),
    )
    assert command[-4:] == ["--ssl-certfile", "cert.pem", "--ssl-keyfile", "key.pem"]
    with pytest.raises(ValueError, match="both a certificate and its key"):
        serve_command("t", host="127.0.0.1", port=1, keep_alive_s=75, ssl_certfile=Path("c"))


def test_mlgitops_serve_refuses_a_certificate_without_its_key(caplog):
    # Given `mlgitops serve --ssl-certfile` alone, then it exits 2 naming both options,
    # without starting a server.
    assert main(["serve", "--ssl-certfile", "cert.pem"]) == 2
    assert "--ssl-certfile and --ssl-keyfile" in caplog.text
