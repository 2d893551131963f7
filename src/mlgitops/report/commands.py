"""The report's commands: `metrics`, `report`, `gate`, `comment-target`, `fetch-deployments`."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

from mlgitops.github import step_output, step_summary
from mlgitops.layout import PARAMS_PATH

logger = logging.getLogger(__name__)


def _metrics(args: argparse.Namespace) -> int:
    from mlgitops.params import load_params
    from mlgitops.sections import ParamsError

    try:
        params = load_params(args.params)
        metrics = json.loads(args.metrics.read_text(encoding="utf-8"))
    except (ParamsError, FileNotFoundError, json.JSONDecodeError) as error:
        logger.error("cannot show metrics: %s (run `make repro` first)", error)
        return 1
    print(format_metrics(metrics, headline=params.evaluate.headline))
    return 0


def format_metrics(metrics: dict, *, headline: tuple[str, ...]) -> str:
    """A small table: headline metrics first, with their confidence intervals."""
    names = [
        *headline,
        *(k for k, v in metrics.items() if k not in headline and isinstance(v, float)),
    ]
    width = max(len(name) for name in names)
    intervals: dict[str, dict[str, Any]] = metrics.get("ci", {})
    confidence = next(iter(intervals.values()), {}).get("confidence", 0.95)
    lines = [f"{'metric':<{width}}  {'value':>9}  {confidence:.0%} interval"]
    for name in names:
        value = metrics.get(name)
        interval = metrics.get("ci", {}).get(name)
        shown = "n/a" if value is None else f"{value:.4f}"
        bounds = f"[{interval['low']:.4f}, {interval['high']:.4f}]" if interval else ""
        lines.append(f"{name:<{width}}  {shown:>9}  {bounds}")
    lines.append(f"(on {metrics.get('test_rows', '?')} test rows)")
    return "\n".join(lines)


def _report(args: argparse.Namespace) -> int:
    from mlgitops.deployment_record import find as find_record
    from mlgitops.report.build import build, write
    from mlgitops.report.inputs import load_inputs
    from mlgitops.report.render import render
    from mlgitops.report.revisions import RevisionError, merge_base
    from mlgitops.sections import ParamsError

    repo = args.repo.resolve()
    try:
        base = args.base or merge_base(repo, args.main_branch)
        inputs = load_inputs(
            repo,
            base,
            args.params,
            pr_number=args.pr_number,
            deployments=args.deployments or find_record(repo),
            environ=dict(os.environ),
            head=args.head_sha,
        )
        report = build(inputs)
    except (RevisionError, ParamsError, FileNotFoundError) as error:
        logger.error("cannot build the report: %s", error)
        return 1
    markdown = render(report)
    written = write(report, markdown, args.output_dir, repo)
    step_summary(markdown)
    verdict = report["verdict"]
    print(
        f"wrote {len(written)} files to {args.output_dir}/ "
        f"(gate {'passed' if verdict['passed'] else 'failed'}, mode {verdict['mode']})"
    )
    return 0


def _gate(args: argparse.Namespace) -> int:
    try:
        report = json.loads(args.report.read_text(encoding="utf-8"))
        verdict = report["verdict"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError) as error:
        logger.error(
            "cannot read the gate verdict from %s: %s (run `mlgitops report`)", args.report, error
        )
        return 1
    for rule in verdict["rules"]:
        print(f"{rule['status'].upper():8} {rule['rule']} ({rule['against']}): {rule['detail']}")
    if verdict["passed"]:
        print("gate passed")
        return 0
    if verdict["mode"] == "advisory":
        print("gate failed, but mode is advisory: not blocking")
        return 0
    print("gate FAILED")
    return 1


def _comment_target(args: argparse.Namespace) -> int:
    from mlgitops.github import client_from_environ, repository_from_environ
    from mlgitops.report.target import TargetError, pr_number_from_report, verify_pull_request
    from mlgitops.report.tests import SummaryError, comment_body, read_summary

    try:
        summary = read_summary(args.tests) if args.tests and args.tests.exists() else None
        has_report = args.report.exists()
        number = pr_number_from_report(args.report) if has_report else None
        if summary is not None and summary.pr_number is not None:
            if number is not None and number != summary.pr_number:
                raise TargetError("report.json and tests.json name different pull requests")
            number = summary.pr_number
        if number is None:
            raise TargetError(f"neither {args.report} nor the test summary names a pull request")
        if args.head_sha:
            with client_from_environ() as client:
                verify_pull_request(
                    client,
                    number,
                    head_sha=args.head_sha,
                    repository=repository_from_environ(args.repository),
                )
    except (TargetError, SummaryError) as error:
        logger.error("refusing to comment: %s", error)
        return 1
    if args.body:
        markdown = args.report.with_name("report.md")
        report = markdown.read_text(encoding="utf-8") if has_report and markdown.exists() else None
        args.body.parent.mkdir(parents=True, exist_ok=True)
        args.body.write_text(comment_body(report, summary), encoding="utf-8")
    step_output(pr_number=str(number))
    print(f"pr_number={number}")
    return 0


def _fetch_deployments(args: argparse.Namespace) -> int:
    from mlgitops.github import (
        GitHubError,
        client_from_environ,
        fetch_deployment_record,
        repository_from_environ,
    )

    repository = repository_from_environ(args.repository)
    try:
        with client_from_environ() as client:
            run = fetch_deployment_record(
                client, repository, args.output, workflow=args.workflow, branch=args.branch
            )
    except GitHubError as error:
        logger.error(
            "cannot fetch the deployment record of %s: %s (the job needs `actions: read`); the "
            "report goes on without what is deployed",
            repository,
            error,
        )
        return 1
    if run is None:
        print(f"no deployment record: nothing deployed from {args.branch} yet")
    else:
        print(f"wrote {args.output} from {args.workflow} run {run}")
    return 0


def optional_pr_number(text: str) -> int | None:
    """An argparse type: empty (no pull request, e.g. a merge queue run) or a positive integer."""
    if text == "":
        return None
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or nothing, got {text!r}")
    return int(text)


def register(commands: argparse._SubParsersAction) -> None:
    """Add `metrics`, `report`, `gate`, `comment-target` and `fetch-deployments`.

    Args:
        commands: the `mlgitops` parser's subcommands.
    """
    metrics = commands.add_parser("metrics", help="print the headline metrics of the workspace")
    metrics.add_argument("--metrics", type=Path, default=Path("reports/metrics.json"))
    metrics.add_argument("--params", type=Path, default=Path(PARAMS_PATH))
    metrics.set_defaults(handler=_metrics)

    report = commands.add_parser(
        "report", help="compare the workspace with a base revision: report.md, report.json, PNGs"
    )
    report.add_argument("--base", help="base revision (default: merge-base with the main branch)")
    report.add_argument("--main-branch", default="main", help="for the default --base")
    report.add_argument("--output-dir", type=Path, default=Path("report"))
    report.add_argument(
        "--pr-number",
        type=optional_pr_number,
        help="recorded for the comment job (empty: no pull request, e.g. a merge queue run)",
    )
    report.add_argument(
        "--head-sha", help="the commit a reviewer reproduces (default: HEAD; in CI the PR head)"
    )
    report.add_argument("--params", type=Path, default=Path(PARAMS_PATH))
    report.add_argument("--repo", type=Path, default=Path("."))
    report.add_argument(
        "--deployments",
        type=Path,
        help="deployment record (JSON lines); its last serving entry is what is deployed. Default: "
        "deployments.jsonl as fetch-deployments writes it, else the local target's record "
        "of this checkout",
    )
    report.set_defaults(handler=_report)

    gate = commands.add_parser("gate", help="print the gate verdict; exit 1 when it blocks")
    gate.add_argument("--report", type=Path, default=Path("report/report.json"))
    gate.set_defaults(handler=_gate)

    target = commands.add_parser(
        "comment-target", help="validate the PR number in report.json and output it"
    )
    target.add_argument("--report", type=Path, default=Path("report/report.json"))
    target.add_argument(
        "--head-sha",
        help="the triggering run's head commit: the PR must point at it (checked with the "
        "GitHub API, token from GITHUB_TOKEN), so a report cannot name another PR",
    )
    target.add_argument("--repository", help="owner/name (default: $GITHUB_REPOSITORY)")
    target.add_argument(
        "--tests", type=Path, help="tests.json of the PR's test job (untrusted, validated)"
    )
    target.add_argument(
        "--body", type=Path, help="write the comment here: the tests' outcome, then report.md"
    )
    target.set_defaults(handler=_comment_target)

    deployed = commands.add_parser(
        "fetch-deployments",
        help="download what deploy.yml last recorded (deployments.jsonl) from GitHub, so the "
        "report compares the PR with the deployed model (token from GITHUB_TOKEN)",
    )
    deployed.add_argument("--output", type=Path, default=Path("deployments.jsonl"))
    deployed.add_argument("--repository", help="owner/name (default: $GITHUB_REPOSITORY)")
    deployed.add_argument("--workflow", default="deploy.yml", help="the deploy workflow's file")
    deployed.add_argument("--branch", default="main", help="the branch deploys run from")
    deployed.set_defaults(handler=_fetch_deployments)
