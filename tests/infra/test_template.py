"""The CloudFormation template: cfn-lint clean, and its roles' trust conditions evaluated on claims.

The evaluator below implements the two IAM condition operators the template uses, with AWS's
semantics: StringEquals is exact and case-sensitive; StringLike matches `*` (any run, `/`
included) and `?` (one character), case-sensitive; a list of values matches when any does; all
keys of a condition block must match; a key absent from the claims does not match.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from helpers import PROJECT_ROOT, require_tool
from mlgitops.infra.stack import TEMPLATE_PATH

TEMPLATE = PROJECT_ROOT / TEMPLATE_PATH
ISSUER = "token.actions.githubusercontent.com"


class _Loader(yaml.SafeLoader):
    """Reads CloudFormation short-form tags (!Sub, !Ref, !GetAtt, ...) as {'Fn': value}."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {suffix: value}


_Loader.add_multi_constructor("!", _tag)


@functools.cache
def _template() -> dict[str, Any]:
    """The parsed template, read once: hypothesis evaluates it on hundreds of claims."""
    loaded: dict[str, Any] = yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=_Loader)
    return loaded


def _resolve(value: Any, params: dict[str, str]) -> Any:
    """Resolve !Sub over the stack parameters (the only intrinsic in trust conditions)."""
    if isinstance(value, dict) and set(value) == {"Sub"}:
        return re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda m: params[m.group(1)], value["Sub"])
    if isinstance(value, list):
        return [_resolve(v, params) for v in value]
    return value


def _like(pattern: str, value: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


OPERATORS = {"StringEquals": lambda pattern, value: pattern == value, "StringLike": _like}


def may_assume(statement: dict[str, Any], claims: dict[str, str], params: dict[str, str]) -> bool:
    """Whether a web-identity token with `claims` satisfies one trust statement."""
    if statement["Effect"] != "Allow" or statement["Action"] != "sts:AssumeRoleWithWebIdentity":
        return False
    for operator, block in statement.get("Condition", {}).items():
        if operator not in OPERATORS:
            raise AssertionError(f"trust condition operator {operator!r} is not evaluated here")
        for key, expected in block.items():
            issuer, _, claim = key.partition(":")
            if issuer != ISSUER or claim not in claims:
                return False
            patterns = _resolve(expected, params)
            patterns = patterns if isinstance(patterns, list) else [patterns]
            if not any(OPERATORS[operator](p, claims[claim]) for p in patterns):
                return False
    return True


def assumable(claims: dict[str, str], params: dict[str, str]) -> set[str]:
    """The roles of the template a token with these claims may assume."""
    roles = set()
    for name, resource in _template()["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        if any(
            may_assume(s, claims, params)
            for s in resource["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        ):
            roles.add(name)
    return roles


_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9-]{0,20}", fullmatch=True)


def _claims(owner: str, repo: str, context: str) -> dict[str, str]:
    return {
        "aud": "sts.amazonaws.com",
        "sub": f"repo:{owner}/{repo}:{context}",
        "repository": f"{owner}/{repo}",
    }


@given(
    owner=_names,
    repo=_names,
    other=_names,
    number=st.integers(min_value=1, max_value=10**6),
    sha=st.from_regex(r"[0-9a-f]{40}", fullmatch=True),
)
def test_each_context_assumes_only_its_role(
    owner: str, repo: str, other: str, number: int, sha: str
) -> None:
    params = {"GitHubOwner": owner, "GitHubRepository": repo}
    assert assumable(_claims(owner, repo, "pull_request"), params) == {"PullRequestRole"}
    assert assumable(_claims(owner, repo, "environment:production"), params) == {"DeployRole"}
    assert assumable(_claims(owner, repo, "ref:refs/heads/main"), params) == {
        "DeployRole",
        "MonitorRole",
    }
    # pr.yml in main's merge queue runs on the queue's temporary branch.
    queue = f"ref:refs/heads/gh-readonly-queue/main/pr-{number}-{sha}"
    assert assumable(_claims(owner, repo, queue), params) == {"PullRequestRole"}
    # A branch push other than main, another branch's queue, a fork's own workflow, a wrong
    # audience: nothing.
    branch = f"ref:refs/heads/{other}" if other != "main" else "ref:refs/heads/main-x"
    assert assumable(_claims(owner, repo, branch), params) == set()
    other_queue = queue.replace("/main/", f"/{other if other != 'main' else 'mainx'}/")
    assert assumable(_claims(owner, repo, other_queue), params) == set()
    fork_owner = other if other != owner else other + "x"
    assert assumable(_claims(fork_owner, repo, "pull_request"), params) == set()
    assert assumable(_claims(fork_owner, repo, queue), params) == set()
    wrong_aud = _claims(owner, repo, "pull_request") | {"aud": "https://github.com/" + owner}
    assert assumable(wrong_aud, params) == set()
    assert assumable({"aud": "sts.amazonaws.com"}, params) == set()


def test_string_like_wildcards_follow_iam() -> None:
    assert _like("repo:o/r:*", "repo:o/r:ref:refs/heads/a/b")
    assert _like("repo:o/?:pull_request", "repo:o/r:pull_request")
    assert not _like("repo:o/?:pull_request", "repo:o/rr:pull_request")
    assert not _like("repo:o/r:*", "repo:O/r:pull_request")
    assert _like("a.b", "a.b")
    assert not _like("a.b", "axb")


MERGE_QUEUE_SUB = "repo:${GitHubOwner}/${GitHubRepository}:ref:refs/heads/gh-readonly-queue/main/*"


def test_every_role_requires_audience_and_an_exact_sub() -> None:
    """A trust policy without a sub condition, or with a wildcard one, would widen trust.

    The one wildcard allowed is the pull-request role's merge-queue branch of main, whose name
    GitHub makes unique per queued pull request.
    """
    for name, resource in _template()["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for statement in resource["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
            condition = statement["Condition"]
            equals = condition["StringEquals"]
            assert equals[f"{ISSUER}:aud"] == "sts.amazonaws.com", name
            if "StringLike" in condition:
                assert set(condition) == {"StringEquals", "StringLike"}, name
                assert set(equals) == {f"{ISSUER}:aud"}, name
                assert name == "PullRequestRole", name
                assert condition["StringLike"] == {f"{ISSUER}:sub": {"Sub": MERGE_QUEUE_SUB}}
                continue
            assert set(condition) == {"StringEquals"}, name
            subs = equals[f"{ISSUER}:sub"]
            for sub in subs if isinstance(subs, list) else [subs]:
                assert "*" not in sub["Sub"], name
                assert "?" not in sub["Sub"], name


def test_repository_parameters_refuse_wildcards() -> None:
    parameters = _template()["Parameters"]
    for name in ("GitHubOwner", "GitHubRepository"):
        pattern = parameters[name]["AllowedPattern"]
        for bad in ("*", "org*", "a?b", "a/b", ""):
            assert re.fullmatch(pattern, bad) is None, (name, bad)


def test_log_bucket_retention_is_the_parameter_and_remote_has_no_expiry() -> None:
    resources = _template()["Resources"]
    rules = resources["PredictionLogBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert [r["ExpirationInDays"] for r in rules] == [{"Ref": "LogRetentionDays"}]
    assert "LifecycleConfiguration" not in resources["DvcRemoteBucket"]["Properties"]


def test_cfn_lint_has_no_findings() -> None:
    # cfn-lint comes with the lock (moto's CloudFormation needs it too), beside the interpreter.
    cfn_lint = str(Path(sys.executable).with_name("cfn-lint"))
    done = subprocess.run([cfn_lint, str(TEMPLATE)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_checkov_has_no_findings() -> None:
    """Suppressions live in the template's Metadata, each with its reason in SECURITY.md."""
    checkov = require_tool("checkov", install="`make test` installs it into .tools/checkov")
    command = [checkov, "-f", str(TEMPLATE), "--quiet", "--compact", "-o", "json"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-4000:]
