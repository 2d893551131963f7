"""The `mlgitops` subcommands of the service: `package` and `serve`."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from mlgitops.tools import tool

logger = logging.getLogger(__name__)

# What `mlgitops serve` serves by default: the service module, with the newest packaged model.
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
        keep_alive_s: `serve.keep_alive_s`; BentoML's own default (5 s) equals common
            clients' idle timeout (httpx: 5 s), which lets a reused connection be reset.
        ssl_certfile: serve HTTPS with this certificate (PEM) and `ssl_keyfile`, its key.
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


def _serve(args: argparse.Namespace) -> int:
    from mlgitops.config import ParamsError, load_params

    try:
        serve = load_params(args.params).serve
    except ParamsError as error:
        logger.error("cannot serve: %s", error)
        return 1
    try:
        command = serve_command(
            args.target,
            host=args.host,
            port=args.port,
            keep_alive_s=serve.keep_alive_s,
            ssl_certfile=args.ssl_certfile,
            ssl_keyfile=args.ssl_keyfile,
        )
    except ValueError as error:
        logger.error("cannot serve: %s: pass --ssl-certfile and --ssl-keyfile together", error)
        return 2
    logger.info("%s", " ".join(command))
    # Replace this process, so signals (Ctrl-C, a supervisor's SIGTERM) reach BentoML itself.
    os.execv(command[0], command)


def _package(args: argparse.Namespace) -> int:
    from mlgitops.config import ParamsError
    from mlgitops.contract import ContractViolation
    from mlgitops.serving.package import PackageError, Paths, package

    try:
        model = package(args.repo.resolve(), Paths(params=args.params))
    except (PackageError, ParamsError, ContractViolation, FileNotFoundError) as error:
        logger.error("cannot package the model: %s", error)
        return 1
    print(f"packaged {model.tag} (model md5 {model.info.labels['model_md5']})")
    return 0


def register_serving_commands(commands: argparse._SubParsersAction) -> None:
    """Add the service's subcommands to the `mlgitops` parser."""
    package = commands.add_parser(
        "package",
        help="save the trained pipeline into the BentoML model store, labelled with its "
        "commit, model and data hashes, params hash and metrics",
    )
    package.add_argument("--repo", type=Path, default=Path("."), help="project root")
    package.add_argument(
        "--params", type=Path, default=Path("params.yaml"), help="relative to --repo"
    )
    package.set_defaults(handler=_package)

    serve = commands.add_parser(
        "serve",
        help="serve the packaged model with `bentoml serve` and the server options of "
        "params.yaml (serve.keep_alive_s)",
    )
    serve.add_argument(
        "target",
        nargs="?",
        default=SERVICE_TARGET,
        help=f"a bento tag, or module:Service (default {SERVICE_TARGET})",
    )
    serve.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    serve.add_argument("--port", type=int, default=3000, help="default 3000")
    serve.add_argument("--params", type=Path, default=Path("params.yaml"))
    serve.add_argument("--ssl-certfile", type=Path, help="serve HTTPS with this certificate")
    serve.add_argument("--ssl-keyfile", type=Path, help="the certificate's private key")
    serve.set_defaults(handler=_serve)
