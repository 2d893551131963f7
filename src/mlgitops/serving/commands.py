"""The `mlgitops` subcommands of the service: `package`, `bento` and `serve`."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from mlgitops.layout import PARAMS_PATH
from mlgitops.serving.server import SERVICE_TARGET, serve_command

logger = logging.getLogger(__name__)


def _serve(args: argparse.Namespace) -> int:
    from mlgitops.params import load_params
    from mlgitops.sections import ParamsError

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
    from mlgitops.serving.package import MODEL_TAG_ENV, PackageError, workspace_model_tag

    if args.target == SERVICE_TARGET and not os.environ.get(MODEL_TAG_ENV, "").strip():
        # From source, serve the workspace's model (a bento pins its own): never the newest
        # entry of a model store that other checkouts package into too.
        try:
            os.environ[MODEL_TAG_ENV] = workspace_model_tag(args.params.resolve().parent)
        except PackageError as error:
            logger.error("cannot serve: %s", error)
            return 1
        logger.info("serving %s, the model dvc.lock pins", os.environ[MODEL_TAG_ENV])
    logger.info("%s", " ".join(command))
    # Replace this process, so signals (Ctrl-C, a supervisor's SIGTERM) reach BentoML itself.
    os.execv(command[0], command)


def _package(args: argparse.Namespace) -> int:
    from mlgitops.contract.check import ContractViolation
    from mlgitops.sections import ParamsError
    from mlgitops.serving.package import PackageError, Paths, package

    try:
        model = package(args.repo.resolve(), Paths(params=args.params))
    except (PackageError, ParamsError, ContractViolation, FileNotFoundError) as error:
        logger.error("cannot package the model: %s", error)
        return 1
    print(f"packaged {model.tag} (model md5 {model.info.labels['model_md5']})")
    return 0


def _bento(args: argparse.Namespace) -> int:
    from mlgitops.serving.bento import BentoBuildError, build_bento
    from mlgitops.serving.package import PackageError, workspace_model_tag

    repo = args.repo.resolve()
    try:
        tag = build_bento(repo, model_tag=workspace_model_tag(repo), version=args.version)
    except (BentoBuildError, PackageError) as error:
        logger.error("cannot build the bento: %s", error)
        return 1
    print(f"built {tag}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add the service's subcommands to the `mlgitops` parser.

    Args:
        commands: the `mlgitops` parser's subcommands.
    """
    package = commands.add_parser(
        "package",
        help="save the trained pipeline into the BentoML model store, labelled with its "
        "commit, model and data hashes, params hash and metrics",
    )
    package.add_argument("--repo", type=Path, default=Path("."), help="project root")
    package.add_argument(
        "--params", type=Path, default=Path(PARAMS_PATH), help="relative to --repo"
    )
    package.set_defaults(handler=_package)

    bento = commands.add_parser(
        "bento",
        help="build the bento from bentofile.yaml, pinned to the model dvc.lock pins (package "
        "it first); it serves that model whatever else the model store holds",
    )
    bento.add_argument("--repo", type=Path, default=Path("."), help="project root")
    bento.add_argument("--version", help="the bento's version (default: generated)")
    bento.set_defaults(handler=_bento)

    serve = commands.add_parser(
        "serve",
        help="serve a bento, or from source the packaged model dvc.lock pins (next to "
        "--params; MLGITOPS_MODEL_TAG overrides), with `bentoml serve` and the server options "
        "of params.yaml (serve.keep_alive_s)",
    )
    serve.add_argument(
        "target",
        nargs="?",
        default=SERVICE_TARGET,
        help=f"a bento tag, or module:Service (default {SERVICE_TARGET})",
    )
    serve.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    serve.add_argument("--port", type=int, default=3000, help="default 3000")
    serve.add_argument("--params", type=Path, default=Path(PARAMS_PATH))
    serve.add_argument("--ssl-certfile", type=Path, help="serve HTTPS with this certificate")
    serve.add_argument("--ssl-keyfile", type=Path, help="the certificate's private key")
    serve.set_defaults(handler=_serve)
