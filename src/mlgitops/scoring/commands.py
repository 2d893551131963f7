"""`mlgitops score` and `mlgitops deployed-commit`: thin wrappers around batch scoring."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from mlgitops.deployment_record import FETCHED
from mlgitops.github import step_output, step_summary
from mlgitops.layout import PARAMS_PATH

logger = logging.getLogger(__name__)


def _score(args: argparse.Namespace) -> int:
    from mlgitops.params import load_params
    from mlgitops.scoring.batch import score, summary_markdown
    from mlgitops.scoring.model import ScoringError, load_pinned_model
    from mlgitops.sections import ParamsError

    for option, value in (("--input", args.input), ("--output", args.output)):
        if not value.strip():
            logger.error(
                "%s: expected a path or URL, got nothing (in score.yml: the workflow input, "
                "or vars.MLGITOPS_SCORE_INPUT_URL / MLGITOPS_SCORE_OUTPUT_URL)",
                option,
            )
            return 2
    try:
        params = load_params(args.repo / args.params)
        model = load_pinned_model(args.repo, params.contract, model=args.model)
        summary = score(
            args.input,
            args.output,
            model=model,
            scheduler=args.scheduler or params.score.scheduler,
            partition_bytes=args.partition_bytes or params.score.partition_bytes,
            run_id=args.run_id,
            progress=sys.stderr.isatty(),
            environ=os.environ,
        )
    except (ParamsError, ScoringError, OSError) as error:
        logger.error("cannot score %s: %s", args.input, error)
        return 1
    step_summary(summary_markdown(summary))
    print(json.dumps({k: v for k, v in summary.items() if k != "classes"}, indent=2))
    return 0


def _deployed_commit(args: argparse.Namespace) -> int:
    from mlgitops.deployment_record import serving_now

    entry = serving_now(args.deployments)
    commit = str((entry or {}).get("commit") or "")
    if not commit:
        logger.error(
            "%s records no release that is serving: nothing to score with "
            "(deploy first, or run `mlgitops fetch-deployments`)",
            args.deployments,
        )
        return 1
    step_output(commit=commit)
    print(commit)
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add `score` and `deployed-commit`.

    Args:
        commands: the `mlgitops` parser's subcommands.
    """
    score = commands.add_parser(
        "score",
        help="score a table (CSV or Parquet, local or any fsspec URL) with the model dvc.lock "
        "pins, into partitioned Parquet with a quarantine of the rows the contract refuses",
    )
    score.add_argument("--input", required=True, help="a CSV or Parquet file, or a folder")
    score.add_argument("--output", required=True, help="the output folder (local or a URL)")
    score.add_argument(
        "--scheduler",
        help="a Dask scheduler address (default: params score.scheduler, else embedded)",
    )
    score.add_argument(
        "--model", type=Path, help="the model file (default: artifacts/model.joblib)"
    )
    score.add_argument(
        "--partition-bytes",
        type=int,
        help="CSV block size per partition (default: params score.partition_bytes)",
    )
    score.add_argument(
        "--run-id", help="stamped on every row (default: from the input and model hashes)"
    )
    score.add_argument("--repo", type=Path, default=Path("."), help="project root")
    score.add_argument("--params", type=Path, default=Path(PARAMS_PATH))
    score.set_defaults(handler=_score)

    deployed = commands.add_parser(
        "deployed-commit",
        help="print the commit serving now (and set the step output `commit`)",
    )
    deployed.add_argument(
        "--deployments",
        type=Path,
        default=FETCHED,
        help="the deployment record, as `mlgitops fetch-deployments` writes it",
    )
    deployed.set_defaults(handler=_deployed_commit)
