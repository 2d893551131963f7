"""The commands around the pipeline: `data`, `init`, and the workflow helpers of ci.py."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from mlgitops.adopt import AdoptError, adopt, review_lines
from mlgitops.ci import CiError, commit_retraining, failed_needs, git_tracked_outputs
from mlgitops.github import step_output
from mlgitops.layout import PARAMS_PATH, RAW_DATA_PATH
from mlgitops.report.commands import optional_pr_number
from mlgitops.sections import ParamsError

logger = logging.getLogger(__name__)


def _data_fetch(args: argparse.Namespace) -> int:
    from mlgitops.data import DataError, fetch_raw_data

    try:
        source = fetch_raw_data(args.repo)
    except DataError as error:
        logger.error("%s", error)
        return 1
    print(f"raw data ready (from {source})")
    return 0


def _data_materialize(args: argparse.Namespace) -> int:
    from mlgitops.data import write_default_dataset

    print(f"wrote {write_default_dataset(args.output)}")
    return 0


def _init(args: argparse.Namespace) -> int:
    try:
        proposal = adopt(
            args.data,
            target=args.target,
            task=args.task,
            repo=args.repo,
            params_path=args.params,
            track=not args.no_dvc,
        )
    except (AdoptError, ParamsError, FileNotFoundError, UnicodeDecodeError) as error:
        logger.error("cannot adopt %s: %s", args.data, error)
        return 1
    print(f"wrote {args.params} and {RAW_DATA_PATH} from {args.data}; review the contract:")
    print("\n".join(review_lines(proposal)))
    print(
        "\nThen:\n"
        "  - widen each min/max to what is valid, not only what this sample holds (the\n"
        "    service refuses values outside them); add categories that may appear later\n"
        "  - check identifier and personal columns: they are never features or logged\n"
        "  - optional: derived_features, evaluate.slices, gates.floors, a time split\n"
        "  - make repro && make test\n"
        "  - git add params.yaml data.dvc && git commit, then push the data where clones\n"
        "    can pull it: `dvc remote add -d storage <url>` and `dvc push`"
    )
    return 0


def _test_summary(args: argparse.Namespace) -> int:
    from mlgitops.report.tests import summarize_junit

    summary = summarize_junit(args.junit, outcome=args.outcome, pr_number=args.pr_number)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(summary.model_dump_json(indent=2) + "\n", encoding="utf-8")
    print(
        f"wrote {args.output}: {summary.outcome}, {summary.tests} tests, "
        f"{summary.failed + summary.errors} failed"
    )
    return 0


def _required_check(args: argparse.Namespace) -> int:
    try:
        failed = failed_needs(args.need)
    except CiError as error:
        logger.error("%s", error)
        return 1
    if failed:
        print(f"required check FAILED: {', '.join(failed)}")
        return 1
    print(f"required check passed: {', '.join(n.partition('=')[0] for n in args.need)}")
    return 0


def _tracked_outputs(args: argparse.Namespace) -> int:
    for path in git_tracked_outputs(args.dvc_yaml):
        print(path)
    return 0


def _retrain_branch(args: argparse.Namespace) -> int:
    try:
        sha = commit_retraining(args.repo, args.branch, message=args.message, push=args.push)
    except CiError as error:
        logger.error("cannot make the retraining branch: %s", error)
        return 1
    step_output(commit=sha)
    print(f"committed {sha[:12]} on {args.branch}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add `data`, `init`, `test-summary`, `required-check`, `tracked-outputs`, `retrain-branch`.

    Args:
        commands: the `mlgitops` parser's subcommands.
    """
    data = commands.add_parser("data", help="get the raw data").add_subparsers(
        dest="data_command", required=True, metavar="ACTION"
    )
    fetch = data.add_parser(
        "fetch",
        help="`dvc pull` the raw data; with no reachable remote, write it from the package",
    )
    fetch.add_argument("--repo", type=Path, default=Path("."), help="project root")
    fetch.set_defaults(handler=_data_fetch)
    materialize = data.add_parser(
        "materialize", help="write the default dataset from the palmerpenguins package"
    )
    materialize.add_argument("--output", type=Path, default=Path(RAW_DATA_PATH))
    materialize.set_defaults(handler=_data_materialize)

    init = commands.add_parser(
        "init",
        help="adopt a CSV: propose the contract and params.yaml, copy it to data/raw.csv, "
        "dvc add it, print what to review",
    )
    init.add_argument("--data", type=Path, required=True, help="the CSV to adopt")
    init.add_argument("--target", required=True, help="the column to predict")
    init.add_argument(
        "--task",
        choices=("classification", "regression"),
        help="default: classification for text, bool or few-valued integer targets",
    )
    init.add_argument("--repo", type=Path, default=Path("."), help="project root")
    init.add_argument("--params", type=Path, default=PARAMS_PATH)
    init.add_argument("--no-dvc", action="store_true", help="do not run `dvc add data`")
    init.set_defaults(handler=_init)

    summary = commands.add_parser("test-summary", help="junit XML -> tests.json for the comment")
    summary.add_argument("--junit", type=Path, required=True)
    summary.add_argument("--outcome", required=True, help="the test step's outcome")
    summary.add_argument("--pr-number", type=optional_pr_number, default=None)
    summary.add_argument("--output", type=Path, default=Path("test-results/tests.json"))
    summary.set_defaults(handler=_test_summary)

    check = commands.add_parser("required-check", help="exit 1 unless every NAME=RESULT is success")
    check.add_argument("--need", action="append", default=[], metavar="NAME=RESULT")
    check.set_defaults(handler=_required_check)

    tracked = commands.add_parser("tracked-outputs", help="the git-tracked outputs of dvc.yaml")
    tracked.add_argument("--dvc-yaml", type=Path, default=Path("dvc.yaml"))
    tracked.set_defaults(handler=_tracked_outputs)

    retrain = commands.add_parser(
        "retrain-branch",
        help="commit dvc.lock, data.dvc, monitor/ and every git-tracked output on a new branch",
    )
    retrain.add_argument("--branch", required=True)
    retrain.add_argument("--message", required=True)
    retrain.add_argument("--repo", type=Path, default=Path("."))
    retrain.add_argument("--push", action="store_true", help="push it (token: GITHUB_TOKEN)")
    retrain.set_defaults(handler=_retrain_branch)
