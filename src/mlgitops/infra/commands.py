"""`mlgitops infra change-set|outputs`: deploy the AWS stack, and the variables it gives."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
from pathlib import Path

from mlgitops.layout import PARAMS_PATH

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


def _change_set_name() -> str:
    """Unique per workflow run and attempt (a re-run must not collide with the first run's)."""
    sha, run_id = os.environ.get("GITHUB_SHA", ""), os.environ.get("GITHUB_RUN_ID", "")
    if sha and run_id:
        return f"mlgitops-{sha[:12]}-{run_id}-{os.environ.get('GITHUB_RUN_ATTEMPT', '1')}"
    return f"mlgitops-{dt.datetime.now(dt.UTC).strftime('%Y%m%d%H%M%S%f')}"


def _change_set(args: argparse.Namespace) -> int:
    import boto3

    from mlgitops.github import step_summary
    from mlgitops.infra.outputs import StackError
    from mlgitops.infra.stack import StackParameters, create_change_set, discard, execute
    from mlgitops.params import load_params
    from mlgitops.sections import ParamsError

    try:
        parameters = StackParameters.of(
            args.repository or "",
            retention_days=load_params(args.params).monitor.retention_days,
            create_oidc_provider=args.create_oidc_provider,
        )
        client = boto3.client("cloudformation", region_name=args.region)
        change_set = create_change_set(
            client, args.stack, args.template.read_text(), parameters, name=_change_set_name()
        )
        summary = change_set.markdown(args.stack)
        print(summary, end="")
        step_summary(summary)
        if args.execute:
            print(f"stack {args.stack}: {execute(client, args.stack, change_set)}")
        else:
            discard(client, args.stack, change_set)
    except (StackError, ParamsError, OSError) as error:
        logger.error("%s", error)
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `mlgitops infra change-set` and `mlgitops infra outputs`."""
    from mlgitops.infra.stack import TEMPLATE_PATH

    infra = subparsers.add_parser("infra", help="the AWS stack of deploy/aws/")
    commands = infra.add_subparsers(dest="infra_command", required=True)
    change_set = commands.add_parser(
        "change-set", help="create the stack's change set (and with --execute, deploy it)"
    )
    change_set.add_argument("--stack", default="mlgitops", help="the stack's name")
    change_set.add_argument("--template", type=Path, default=TEMPLATE_PATH)
    change_set.add_argument("--params", type=Path, default=PARAMS_PATH)
    change_set.add_argument("--region", default=None, help="the stack's region (default: AWS's)")
    change_set.add_argument(
        "--repository",
        default=os.environ.get("GITHUB_REPOSITORY"),
        help="OWNER/NAME the roles trust (default: $GITHUB_REPOSITORY)",
    )
    change_set.add_argument(
        "--create-oidc-provider",
        action="store_true",
        default=os.environ.get("MLGITOPS_CREATE_OIDC_PROVIDER") == "true",
        help="create GitHub's OIDC provider (default: $MLGITOPS_CREATE_OIDC_PROVIDER == true)",
    )
    change_set.add_argument("--execute", action="store_true", help="deploy the change set")
    change_set.set_defaults(handler=_change_set)
    outputs = commands.add_parser(
        "outputs",
        help="print the `gh variable set` commands (and the DVC remote) the stack's outputs give",
    )
    outputs.add_argument("--stack", default="mlgitops", help="the stack's name")
    outputs.add_argument("--region", default=None, help="the stack's region (default: AWS's)")
    outputs.add_argument("--repo", default=None, help="OWNER/REPO for gh (default: the current)")
    outputs.set_defaults(handler=_outputs)
