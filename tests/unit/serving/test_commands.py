"""`mlgitops serve`: the `bentoml serve` command every launcher runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgitops.cli import main
from mlgitops.serving.server import serve_command


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


def test_mlgitops_serve_from_source_serves_the_model_dvc_lock_pins(tmp_path, monkeypatch):
    # Given a project whose dvc.lock pins a model (any md5: derived from the path), when
    # `mlgitops serve` runs from source with no model named, then the server it starts is
    # told that model's store tag, never the newest entry.
    import hashlib
    import os

    import yaml

    from helpers import PROJECT_ROOT
    from mlgitops.serving.package import MODEL_TAG_ENV, model_tag

    md5 = hashlib.md5(str(tmp_path).encode(), usedforsecurity=False).hexdigest()
    (tmp_path / "params.yaml").write_text((PROJECT_ROOT / "params.yaml").read_text())
    lock = {"stages": {"train": {"outs": [{"path": "artifacts/model.joblib", "md5": md5}]}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    monkeypatch.setenv(MODEL_TAG_ENV, "")  # unset, and restored unset afterwards
    started: list[tuple[list[str], str | None]] = []

    def execv(program: str, argv: list[str]) -> None:
        started.append((argv, os.environ.get(MODEL_TAG_ENV)))

    monkeypatch.setattr(os, "execv", execv)
    main(["serve", "--params", str(tmp_path / "params.yaml")])
    ((argv, served),) = started
    assert served == model_tag(md5), f"the server was told {served}"
    assert "serve" in argv


def test_mlgitops_serve_from_source_without_a_lock_says_so(tmp_path, monkeypatch, caplog):
    # Given params but no dvc.lock, when `mlgitops serve` runs from source, then it exits 1
    # naming what is missing, without starting a server.
    import os

    from helpers import PROJECT_ROOT
    from mlgitops.serving.package import MODEL_TAG_ENV

    (tmp_path / "params.yaml").write_text((PROJECT_ROOT / "params.yaml").read_text())
    monkeypatch.setenv(MODEL_TAG_ENV, "")  # unset, and restored unset afterwards
    monkeypatch.setattr(os, "execv", lambda *args: pytest.fail("a server was started"))
    assert main(["serve", "--params", str(tmp_path / "params.yaml")]) == 1
    assert "dvc.lock" in caplog.text, caplog.text
