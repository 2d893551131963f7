"""The `mlgitops` subcommands of the service: `package`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


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
