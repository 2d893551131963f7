"""How every launcher starts the service: the `bentoml serve` command line."""

from __future__ import annotations

from pathlib import Path

from mlgitops.tools import tool

# What `mlgitops serve` serves by default: the service module, with the model dvc.lock pins.
SERVICE_TARGET = "mlgitops.serving.service:MlgitopsService"


def serve_command(
    target: str,
    *,
    host: str,
    port: int,
    keep_alive_s: int,
    ssl_certfile: Path | None = None,
    ssl_keyfile: Path | None = None,
) -> list[str]:
    """`bentoml serve` as every launcher runs it (`mlgitops serve`, the local deploy target).

    Args:
        target: a bento tag, or `module:Service` to serve from source.
        host: the address to listen on.
        port: the port to listen on.
        keep_alive_s: `serve.keep_alive_s`; BentoML's own default (5 s) equals common
            clients' idle timeout (httpx: 5 s), which lets a reused connection be reset.
        ssl_certfile: serve HTTPS with this certificate (PEM) and `ssl_keyfile`.
        ssl_keyfile: the certificate's private key (PEM).
    """
    tls = []
    if ssl_certfile is not None or ssl_keyfile is not None:
        if ssl_certfile is None or ssl_keyfile is None:
            raise ValueError("HTTPS needs both a certificate and its key")
        tls = ["--ssl-certfile", str(ssl_certfile), "--ssl-keyfile", str(ssl_keyfile)]
    return [
        tool("bentoml"),
        "serve",
        target,
        "--host",
        host,
        "--port",
        str(port),
        "--timeout-keep-alive",
        str(keep_alive_s),
        *tls,
    ]
