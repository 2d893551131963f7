"""`mlgitops infra outputs`: the repository variables to set from the deployed AWS stack."""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)


def _outputs(args: argparse.Namespace) -> int:
    import boto3

    from mlgitops.infra.outputs import StackError, describe, setup_from_outputs

    client = boto3.client("cloudformation", region_name=args.region)
    try:
        setup = setup_from_outputs(describe(client, args.stack))
    except StackError as error:
        logger.error("%s", error)
        return 1
    for line in setup.commands(args.repo):
        print(line)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `mlgitops infra outputs`."""
    infra = subparsers.add_parser("infra", help="the AWS stack of deploy/aws/")
    commands = infra.add_subparsers(dest="infra_command", required=True)
    outputs = commands.add_parser(
        "outputs",
        help="print the `gh variable set` commands (and the DVC remote) the stack's outputs give",
    )
    outputs.add_argument("--stack", default="mlgitops", help="the stack's name")
    outputs.add_argument("--region", default=None, help="the stack's region (default: AWS's)")
    outputs.add_argument("--repo", default=None, help="OWNER/REPO for gh (default: the current)")
    outputs.set_defaults(handler=_outputs)
