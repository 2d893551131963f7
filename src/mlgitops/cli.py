"""`mlgitops <command>`: the commands that Make targets and workflows call."""

from __future__ import annotations

import argparse
import importlib

from mlgitops.logs import configure_logging

# The command table: each module's `register(subparsers)` adds its commands, in this order.
COMMANDS: tuple[str, ...] = (
    "mlgitops.commands",  # data, init and the workflow helpers
    "mlgitops.report.commands",  # metrics, report, gate, comment-target, fetch-deployments
    "mlgitops.serving.commands",
    "mlgitops.deploy.commands",  # deploy and its sub-commands, rollback
    "mlgitops.monitor.commands",
    "mlgitops.infra.commands",  # infra outputs
    "mlgitops.scoring.commands",  # score, deployed-commit
)


def build_parser() -> argparse.ArgumentParser:
    """The `mlgitops` parser, with every command of the table registered."""
    parser = argparse.ArgumentParser(prog="mlgitops", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one `mlgitops` command and return its exit code."""
    args = build_parser().parse_args(argv)
    configure_logging()
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
