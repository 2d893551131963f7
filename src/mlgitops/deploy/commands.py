"""`mlgitops deploy [verify|build|containerize|release|stop]` and `mlgitops rollback`."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlgitops.github import step_output
from mlgitops.layout import PARAMS_PATH

if TYPE_CHECKING:
    from mlgitops.deploy.target import DeployTarget
    from mlgitops.params import Params

logger = logging.getLogger(__name__)


def _rollback(args: argparse.Namespace) -> int:
    from mlgitops.deploy.rollback import RollbackError, create_rollback

    try:
        rollback = create_rollback(
            args.repo.resolve(),
            commit=args.commit or None,
            main_branch=args.main_branch,
            emergency=args.emergency,
            push=args.push,
            remote=args.remote,
        )
    except RollbackError as error:
        logger.error("no rollback made: %s", error)
        return 1
    body = (
        f"{rollback.message}\n\n"
        f"Rolls back {rollback.reverted}: merging this deploys the previous `dvc.lock`, whose "
        "model and data come back from the DVC remote by hash, with no retraining.\n\n"
        "_Opened by `mlgitops rollback` (.github/workflows/rollback.yml)._"
    )
    step_output(
        commit=rollback.revert_commit,
        branch=rollback.branch,
        reverted=rollback.reverted,
        title=rollback.subject,
        body=body,
    )
    where = f"{args.remote}/{rollback.branch}" if rollback.pushed else rollback.branch
    print(f"reverted {rollback.reverted[:12]} with {rollback.revert_commit[:12]} on {where}")
    if not rollback.pushed:
        print(f"push it with: git push {args.remote} {rollback.branch}")
    elif not rollback.emergency:
        print(f"open a pull request from {rollback.branch} into {rollback.main_branch}")
    return 0


def _server_env(items: list[str]) -> dict[str, str]:
    from mlgitops.deploy.target import DeployError

    env = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise DeployError(f"--server-env expects NAME=VALUE, got {item!r}")
        env[name] = value
    return env


def _local(args: argparse.Namespace, params: Params, repo: Path) -> DeployTarget:
    from mlgitops.deploy.local import LocalTarget

    return LocalTarget.from_params(
        params.deploy.local,
        serve=params.serve,
        state_dir=_state_dir(args, repo),
        port=args.port,
        env=_server_env(args.server_env),
    )


def _kubernetes(args: argparse.Namespace, params: Params, repo: Path) -> DeployTarget:
    from mlgitops.deploy.kubernetes import KubernetesTarget

    return KubernetesTarget.from_params(params.deploy.kubernetes, repo=repo)


def _bentocloud(args: argparse.Namespace, params: Params, repo: Path) -> DeployTarget:
    from mlgitops.deploy.bentocloud import BentoCloudTarget

    return BentoCloudTarget(params.deploy.bentocloud)


# The only list of target names: each builds its target from the command line and params.yaml.
TARGETS: dict[str, Callable[[argparse.Namespace, Params, Path], DeployTarget]] = {
    "local": _local,
    "kubernetes": _kubernetes,
    "bentocloud": _bentocloud,
}


def _state_dir(args: argparse.Namespace, repo: Path) -> Path:
    from mlgitops import deployment_record as record

    return args.state_dir or record.local_state_dir(repo)


def _deploy(args: argparse.Namespace) -> int:
    """Run one deploy action (or all of them); every failure is one clear line and exit 1."""
    from mlgitops import deployment_record as record
    from mlgitops.deploy.bento import build, containerize
    from mlgitops.deploy.release import release
    from mlgitops.deploy.target import DeployError
    from mlgitops.deploy.verify import pinned, verify
    from mlgitops.params import load_params
    from mlgitops.sections import ParamsError

    action = args.action or "all"
    repo = args.repo.resolve()
    try:
        params = load_params(repo / PARAMS_PATH)
        targeted = action in {"release", "stop", "all"}
        target = TARGETS[args.target](args, params, repo) if targeted else None
        record_path = args.record or record.FETCHED
        if not targeted or args.target == "local":
            # The local target keeps the project's record, and unless BENTOML_HOME says
            # otherwise its bentos and models, next to its servers: nothing in the working
            # tree, nothing shared with another checkout (every bentoml call below inherits it).
            state_dir = _state_dir(args, repo)
            record_path = args.record or record.local_record(state_dir)
            os.environ.setdefault("BENTOML_HOME", str(state_dir / "bentoml"))
        if target is not None and action == "stop":
            target.stop()
            print(f"stopped every {target.name} release")
            return 0
        if target is not None:
            # Where this release's record is, for the workflow step that uploads it (the local
            # target's lives in its state directory, not in the working tree).
            step_output(record=str(record_path.resolve()))
            target.check_configured()  # before anything is touched
        identity = verify(repo) if action in {"verify", "all"} else pinned(repo)
        if action in {"build", "all"}:
            build(repo, identity)
        if action == "containerize":
            print(f"pushed {containerize(repo, identity, args.image)}")
        if target is not None:
            released = release(
                repo, target, identity, params=params, image=args.image, record_path=record_path
            )
            print(f"serving {released.bento_tag} at {released.endpoint}")
    except (DeployError, ParamsError) as error:
        logger.error("deploy failed: %s", error)
        return 1
    return 0


def _options(parser: argparse.ArgumentParser, *names: str, inherit: bool) -> None:
    """Add the named deploy options; on an action, one left out keeps `deploy`'s value."""
    default: dict[str, Any] = {"default": argparse.SUPPRESS} if inherit else {}
    if "repo" in names:
        parser.add_argument("--repo", type=Path, **(default or {"default": Path(".")}))
    if "target" in names:
        parser.add_argument(
            "--target", choices=sorted(TARGETS), **(default or {"default": "local"})
        )
    if "image" in names:
        parser.add_argument(
            "--image", help="container image reference, tagged with the commit", **default
        )
    if "state" in names:
        parser.add_argument(
            "--state-dir",
            type=Path,
            help="local target's state directory (default: $MLGITOPS_LOCAL_STATE, else one per "
            "checkout under ~/.cache/mlgitops/local)",
            **default,
        )
    if "server" in names:
        parser.add_argument(
            "--port",
            type=int,
            help="local target's port (default: deploy.local.port in params)",
            **default,
        )
        parser.add_argument(
            "--server-env",
            action="append",
            metavar="NAME=VALUE",
            help="extra environment for the local target's servers (repeatable), e.g. API keys",
            **(default or {"default": []}),
        )
    if "record" in names:
        parser.add_argument(
            "--record",
            type=Path,
            help="deployment record to append to (JSON lines; what the report compares with). "
            "Default: the local target's state directory (its deployments.jsonl); for the other "
            "targets deployments.jsonl in the working directory, which deploy.yml uploads",
            **default,
        )


def register(commands: argparse._SubParsersAction) -> None:
    """Add `deploy` (with its actions verify, build, containerize, release, stop) and `rollback`.

    Args:
        commands: the `mlgitops` parser's subcommands.
    """
    deploy = commands.add_parser(
        "deploy",
        help="verify pinned artifacts, build the bento, release, smoke-test, restore on failure",
        description="With no action: verify, build and release. Deploy never trains.",
    )
    _options(deploy, "repo", "target", "image", "state", "server", "record", inherit=False)
    deploy.set_defaults(handler=_deploy, action=None)
    actions = deploy.add_subparsers(dest="action", metavar="ACTION")
    verify = actions.add_parser(
        "verify", help="dvc pull what dvc.lock pins; refuse a workspace that differs from it"
    )
    _options(verify, "repo", inherit=True)
    build = actions.add_parser("build", help="package the model, build the bento (idempotent)")
    _options(build, "repo", "state", inherit=True)
    containerize = actions.add_parser(
        "containerize", help="build the bento's image, tagged with the commit, and push it"
    )
    _options(containerize, "repo", "state", inherit=True)
    containerize.add_argument(
        "--image", required=True, help="container image reference, tagged with the commit"
    )
    release = actions.add_parser(
        "release", help="release to the target, smoke-test, restore the previous one on failure"
    )
    _options(release, "repo", "target", "image", "state", "server", "record", inherit=True)
    stop = actions.add_parser("stop", help="stop the proxy and every release (local target)")
    _options(stop, "repo", "target", "state", "server", inherit=True)

    rollback = commands.add_parser(
        "rollback",
        help="revert a merge into main (default: the last one) on a rollback/<sha> branch for "
        "a pull request, or on main with --emergency",
        description="Create the revert commit of a merge into main. Merging (or, with "
        "--emergency, pushing) it deploys the previous dvc.lock: the old model comes back from "
        "the DVC remote, with no retraining. Refuses a dirty tree, a commit that was not "
        "merged into main, and a revert that conflicts, leaving the repository as it was.",
    )
    rollback.add_argument(
        "--commit", default="", help="the commit to revert (default: the last merge into main)"
    )
    rollback.add_argument(
        "--emergency",
        action="store_true",
        help="commit the revert on main itself (to push and deploy at once) instead of on a "
        "rollback/<short sha> branch for a pull request",
    )
    rollback.add_argument(
        "--push",
        action="store_true",
        help="git push the branch to --remote (a token in GITHUB_TOKEN authenticates HTTPS)",
    )
    rollback.add_argument("--main-branch", default="main", help="the branch deploys come from")
    rollback.add_argument("--remote", default="origin")
    rollback.add_argument("--repo", type=Path, default=Path("."), help="the git work tree")
    rollback.set_defaults(handler=_rollback)
