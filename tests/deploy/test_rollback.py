"""Rollback by revert, on real git repositories: a bare origin and a clone, no network."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from mlgitops.cli import main
from mlgitops.deploy.rollback import RollbackError, create_rollback, last_merge, push_environment


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    assert result.returncode == 0, f"git {' '.join(args)} failed: {result.stderr}"
    return result.stdout.strip()


def commit_file(repo: Path, name: str, text: str, message: str) -> str:
    (repo / name).write_text(text, encoding="utf-8")
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def snapshot(repo: Path) -> tuple[str, str, str]:
    """HEAD, every ref and the status: what must not change when a rollback is refused."""
    head = subprocess.run(
        ["git", "symbolic-ref", "-q", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip() or git(repo, "rev-parse", "HEAD")
    refs = git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    return head, refs, git(repo, "status", "--porcelain")


@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user or system git config leaks in; commits get a fixed identity; no token."""
    config = tmp_path / "gitconfig"
    config.write_text("[user]\n\tuseConfigOnly = true\n[init]\n\tdefaultBranch = main\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@example.com")
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)


@pytest.fixture
def project(tmp_path: Path) -> dict[str, Path | str]:
    """origin (bare) and a clone whose main has v1, then a merged pull request with v2."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(origin), str(work))
    v1 = commit_file(work, "dvc.lock", "model: v1\n", "v1")
    git(work, "push", "-q", "origin", "main")
    git(work, "switch", "-q", "-c", "tune")
    feature = commit_file(work, "dvc.lock", "model: v2\n", "tune the model")
    git(work, "switch", "-q", "main")
    git(work, "merge", "-q", "--no-ff", "-m", "Merge pull request #1 from tune", "tune")
    merge = git(work, "rev-parse", "HEAD")
    git(work, "push", "-q", "origin", "main")
    return {"origin": origin, "work": work, "v1": v1, "feature": feature, "merge": merge}


def test_default_reverts_the_last_merge_on_a_rollback_branch(project):
    # Given main whose last merge brought v2, when a rollback is made with no commit named,
    # then a rollback/<short sha> branch off main holds `git revert -m 1` of the merge, the
    # file is back at v1, main is untouched and nothing is pushed.
    work, merge = project["work"], project["merge"]
    rollback = create_rollback(work)
    short = git(work, "rev-parse", "--short", merge)
    assert rollback.branch == f"rollback/{short}", f"branch is {rollback.branch}"
    assert rollback.reverted == merge, "the last merge must be the default"
    assert rollback.was_merge, "a merge is reverted with -m 1"
    assert git(work, "rev-parse", f"{rollback.revert_commit}^") == merge
    assert (work / "dvc.lock").read_text() == "model: v1\n", "the previous dvc.lock is back"
    assert git(work, "branch", "--show-current") == rollback.branch
    assert git(work, "rev-parse", "main") == merge, "main must not move in PR mode"
    assert f"This reverts commit {merge}" in rollback.message
    assert not git(work, "ls-remote", "--heads", "origin", rollback.branch), "pushed unasked"
    assert not rollback.pushed


def test_push_publishes_the_rollback_branch_only(project):
    # Given --push in PR mode, then origin gets the rollback branch and its main is unchanged.
    work, origin = project["work"], project["origin"]
    rollback = create_rollback(work, push=True)
    assert git(origin, "rev-parse", rollback.branch) == rollback.revert_commit
    assert git(origin, "rev-parse", "main") == project["merge"], "origin main must not move"


def test_emergency_commits_the_revert_on_main_and_pushes_it(project):
    # Given --emergency --push, then the revert is the new main, locally and on origin.
    work, origin = project["work"], project["origin"]
    rollback = create_rollback(work, emergency=True, push=True)
    assert rollback.branch == "main"
    assert rollback.emergency
    assert git(origin, "rev-parse", "main") == rollback.revert_commit, "origin main not moved"
    assert git(work, "rev-parse", "main^") == project["merge"]
    assert (work / "dvc.lock").read_text() == "model: v1\n"


def test_a_squash_merged_commit_on_main_gets_a_plain_revert(project):
    # Given a plain commit on main (a squash merge), when it is named, then it is reverted
    # without -m and the file returns to the state before it.
    work = project["work"]
    squash = commit_file(work, "dvc.lock", "model: v3\n", "Tune again (#2)")
    rollback = create_rollback(work, commit=squash)
    assert not rollback.was_merge
    assert (work / "dvc.lock").read_text() == "model: v2\n"


def test_last_merge_ignores_commits_after_it(project):
    # Given a plain commit after the merge, then the last merge is still the merge.
    commit_file(project["work"], "README", "docs\n", "docs")
    assert last_merge(project["work"]) == project["merge"]


@pytest.mark.parametrize(
    ("commit", "message"),
    [
        ("feature", "is not a merge into main"),
        ("v1", "first commit of main"),
        ("does-not-exist", "is not a commit"),
    ],
)
def test_commits_that_were_not_merged_into_main_are_refused(project, commit, message):
    # Given a commit from the PR branch itself, the root commit, or no commit at all, then
    # the rollback is refused and the repository is exactly as it was.
    work = project["work"]
    before = snapshot(work)
    with pytest.raises(RollbackError, match=message):
        create_rollback(work, commit=str(project.get(commit, commit)))
    assert snapshot(work) == before, "a refused rollback changed the repository"


def test_a_dirty_tree_is_refused(project):
    # Given uncommitted changes, then the rollback is refused and they are left alone.
    work = project["work"]
    (work / "dvc.lock").write_text("model: edited\n")
    before = snapshot(work)
    with pytest.raises(RollbackError, match="uncommitted changes"):
        create_rollback(work)
    assert snapshot(work) == before
    assert (work / "dvc.lock").read_text() == "model: edited\n"


@pytest.mark.parametrize("emergency", [False, True])
def test_a_conflicting_revert_is_aborted_and_leaves_nothing(project, emergency):
    # Given a later commit on main that changed the same line, when the merge is reverted,
    # then it conflicts: the revert is aborted, no branch or commit remains, and the error
    # names the file.
    work = project["work"]
    commit_file(work, "dvc.lock", "model: v2-tuned\n", "hotfix on main")
    before = snapshot(work)
    with pytest.raises(RollbackError, match=r"conflicts with later changes in: dvc\.lock"):
        create_rollback(work, commit=str(project["merge"]), emergency=emergency)
    assert snapshot(work) == before, "a failed revert left something behind"
    git_dir = Path(git(work, "rev-parse", "--absolute-git-dir"))
    assert not (git_dir / "REVERT_HEAD").exists(), "the revert was not aborted"


def test_a_commit_already_reverted_is_refused(project):
    # Given a merge that was already reverted on main, then a second rollback is refused.
    work = project["work"]
    create_rollback(work, emergency=True)
    with pytest.raises(RollbackError, match="already reverted"):
        create_rollback(work, commit=str(project["merge"]))


def test_main_without_a_merge_is_refused(tmp_path):
    # Given a history with no merge commit, then the default rollback says to name a commit.
    work = tmp_path / "linear"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    commit_file(work, "a", "1\n", "one")
    commit_file(work, "a", "2\n", "two")
    with pytest.raises(RollbackError, match="no merge commit"):
        create_rollback(work)


def test_an_existing_rollback_branch_is_refused(project):
    # Given a rollback branch prepared before, then a second one is refused.
    work = project["work"]
    create_rollback(work)
    git(work, "switch", "-q", "main")
    with pytest.raises(RollbackError, match="exists already"):
        create_rollback(work)


@pytest.mark.parametrize("emergency", [False, True])
def test_a_refused_push_is_undone_locally(project, emergency):
    # Given an origin that refuses every push, then the revert is undone locally: main is
    # back at the merge, no rollback branch remains, HEAD is where it was.
    work, origin = project["work"], project["origin"]
    hook = origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected branch' >&2\nexit 1\n")
    hook.chmod(0o755)
    before = snapshot(work)
    with pytest.raises(RollbackError, match="refused the push"):
        create_rollback(work, emergency=emergency, push=True)
    assert snapshot(work) == before, "a refused push left a local revert behind"


def test_pushing_from_an_outdated_main_is_refused(project, tmp_path):
    # Given origin's main moved on (another merge landed), when pushing a rollback made from
    # the stale local main, then it is refused before anything is made.
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(project["origin"]), str(other))
    commit_file(other, "README", "docs\n", "docs")
    git(other, "push", "-q", "origin", "main")
    before = snapshot(project["work"])
    with pytest.raises(RollbackError, match="differs from origin/main"):
        create_rollback(project["work"], emergency=True, push=True)
    assert snapshot(project["work"]) == before


def test_a_missing_git_identity_is_refused(project, monkeypatch):
    # Given no identity to commit with, then the rollback says how to set one.
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.delenv(f"GIT_{role}_NAME")
        monkeypatch.delenv(f"GIT_{role}_EMAIL")
    with pytest.raises(RollbackError, match=r"set user\.name and user\.email"):
        create_rollback(project["work"])


def test_push_environment_scopes_the_token_to_the_remote_host():
    # Given a token and an HTTPS remote, then the token travels as an extra header for that
    # host through GIT_CONFIG_* variables (after any already set); otherwise nothing is added.
    env = push_environment(
        "https://github.com/acme/models.git",
        {"GITHUB_TOKEN": "s3cret", "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "a.b"},
    )
    assert env["GIT_CONFIG_COUNT"] == "2"
    assert env["GIT_CONFIG_KEY_1"] == "http.https://github.com/.extraheader"
    scheme, _, value = env["GIT_CONFIG_VALUE_1"].rpartition(" ")
    assert scheme == "AUTHORIZATION: basic"
    assert base64.b64decode(value).decode() == "x-access-token:s3cret"
    assert "GIT_CONFIG_COUNT" not in push_environment("https://github.com/acme/m.git", {})
    ssh = push_environment("git@github.com:acme/m.git", {"GITHUB_TOKEN": "s3cret"})
    assert "GIT_CONFIG_COUNT" not in ssh, "a token must only go to an HTTPS remote"


def test_cli_rollback_writes_step_outputs(project, step_outputs):
    # Given `mlgitops rollback --push` in GitHub Actions, then it exits 0 and writes the new
    # commit, the branch, the PR title and body as step outputs.
    assert main(["rollback", "--repo", str(project["work"]), "--commit", "", "--push"]) == 0
    outputs = step_outputs()
    head = git(project["work"], "rev-parse", "HEAD")
    short = git(project["work"], "rev-parse", "--short", str(project["merge"]))
    for name, value in [("commit", head), ("branch", f"rollback/{short}")]:
        assert name in outputs, f"no {name} output"
        assert outputs[name] == value, f"{name} output is not {value}"
    assert 'Revert "Merge pull request #1 from tune"' in outputs.get("title", ""), "no PR title"
    assert "\n" in outputs.get("body", ""), "the PR body keeps its lines"


def test_cli_rollback_fails_with_one_line_on_refusal(project, caplog):
    # Given a dirty tree, then `mlgitops rollback` exits 1 and says why.
    (project["work"] / "dvc.lock").write_text("edited\n")
    assert main(["rollback", "--repo", str(project["work"])]) == 1
    assert "no rollback made: the work tree has uncommitted changes" in caplog.text
