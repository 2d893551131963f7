"""The whole lifecycle on one machine: deploy v1, PR, merge and deploy v2, revert and get v1
back without retraining; an unhealthy release that leaves the previous one serving; a release
that keeps its own model when another is packaged and its worker is killed; a port mismatch."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from helpers import run
from live_server import kill_workers_and_wait
from mlgitops.deploy.local import LocalTarget, free_port
from mlgitops.deploy.verify import pinned

pytestmark = pytest.mark.slow
logger = logging.getLogger(__name__)
API_KEY = "lifecycle-test-key"


@contextmanager
def step(name: str, durations: dict[str, float]) -> Iterator[None]:
    start = time.monotonic()
    yield
    durations[name] = round(time.monotonic() - start, 1)
    logger.warning("lifecycle step %-40s %6.1f s", name, durations[name])


def git(repo: Path, *args: str) -> str:
    return run(
        ["git", "-c", "user.name=dev", "-c", "user.email=dev@example.com", *args], repo
    ).stdout.strip()


def model_md5(repo: Path) -> str:
    return pinned(repo).model_md5


def fresh_clone(origin: Path, where: Path) -> Path:
    if where.exists():
        shutil.rmtree(where)
    run(["git", "clone", "-q", str(origin), str(where)], origin.parent)
    return where


def metadata(endpoint: str) -> dict:
    response = httpx.get(
        f"{endpoint}/metadata", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def world(project_copy, tmp_path, monkeypatch, aws_stack, aws_env):
    """A bare origin at v1, the AWS stack's bucket (moto's S3 on 127.0.0.1) as the DVC remote
    holding v1's outputs, and a developer clone: deploys and reverts pull from S3 by hash."""
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    monkeypatch.setenv("BENTOML_DO_NOT_TRACK", "True")
    monkeypatch.setenv("MLGITOPS_API_KEYS", API_KEY)
    seed = project_copy("seed")
    # The copy's own folder remote (in its untracked local config) goes first: it would win.
    run(["dvc", "remote", "modify", "--local", "--unset", "local", "url"], seed, check=False)
    run(["dvc", "remote", "modify", "local", "url", aws_stack["DvcRemoteUrl"]], seed)
    run(["dvc", "remote", "modify", "local", "endpointurl", aws_env.endpoint_url], seed)
    git(seed, "commit", "-qam", "Use the shared DVC remote")
    origin = tmp_path / "origin.git"
    run(["git", "clone", "-q", "--bare", str(seed), str(origin)], tmp_path)
    developer = fresh_clone(origin, tmp_path / "developer")
    run(["mlgitops", "data", "fetch"], developer)
    run(["dvc", "repro"], developer)
    run(["dvc", "push"], developer)
    target = LocalTarget(state_dir=tmp_path / "local-state", port=free_port())
    yield {"tmp": tmp_path, "origin": origin, "developer": developer, "target": target}
    target.stop()


def deploy(world: dict, name: str, *extra: str, check: bool = True):
    clone = fresh_clone(world["origin"], world["tmp"] / f"deploy-{name}")
    target = world["target"]
    result = run(
        [
            "mlgitops",
            "deploy",
            "--target",
            "local",
            "--port",
            str(target.port),
            "--state-dir",
            str(target.state_dir),
            *extra,
        ],
        clone,
        check=check,
    )
    assert not (clone / "deployments.jsonl").exists(), "deploy wrote its record into the clone"
    return clone, result


def records(world: dict) -> list[dict]:
    """The deployment record, where the local target keeps it: in its state directory."""
    path = world["target"].state_dir / "deployments.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_merge_deploys_and_revert_rolls_back_without_retraining(world):
    durations: dict[str, float] = {}
    developer, endpoint = world["developer"], world["target"].endpoint
    v1 = model_md5(developer)

    with step("deploy v1 (fresh clone)", durations):
        clone, _ = deploy(world, "v1")
    assert metadata(endpoint)["model_md5"] == v1, "v1 serves after the first deploy"

    with step("PR: change a hyperparameter, repro, push", durations):
        git(developer, "checkout", "-qb", "smaller-forest")
        params = yaml.safe_load((developer / "params.yaml").read_text())
        params["train"]["estimator"]["n_estimators"] = 60
        (developer / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        run(["dvc", "repro"], developer)
        git(developer, "commit", "-qam", "Smaller forest")
        run(["dvc", "push"], developer)
        git(developer, "push", "-q", "origin", "smaller-forest")
    v2 = model_md5(developer)
    assert v2 != v1, "the hyperparameter change must produce another model"

    with step("PR: report and gate", durations):
        run(["mlgitops", "report", "--base", "origin/main"], developer)
        gate = run(["mlgitops", "gate"], developer, check=False)
    assert gate.returncode == 0, f"the PR should pass the gate:\n{gate.stdout}"

    with step("merge", durations):
        git(developer, "checkout", "-q", "main")
        git(developer, "merge", "-q", "--no-ff", "smaller-forest", "-m", "Merge smaller-forest")
        git(developer, "push", "-q", "origin", "main")
    with step("deploy v2 (fresh clone)", durations):
        deploy(world, "v2")
    served = metadata(endpoint)
    assert served["model_md5"] == v2, "the merge is what serves"
    assert served["git_commit"] == git(developer, "rev-parse", "HEAD")

    with step("revert the merge", durations):
        git(developer, "revert", "--no-edit", "-m", "1", "HEAD")
        git(developer, "push", "-q", "origin", "main")
    with step("deploy the revert (fresh clone)", durations):
        clone, _ = deploy(world, "revert")
    assert metadata(endpoint)["model_md5"] == v1, "the revert brings v1 back"
    ran = sorted(p.stem for p in (clone / ".mlgitops" / "runs").glob("*.json"))
    assert ran == [], f"deploy must never train, but these stages ran: {ran}"
    assert run(["dvc", "status", "-q"], clone, check=False).returncode == 0

    entries = records(world)
    assert [r["outcome"] for r in entries] == ["released"] * 3
    assert [r["model_md5"] for r in entries] == [v1, v2, v1]
    logger.warning("lifecycle durations (s): %s", durations)


def test_unhealthy_release_leaves_the_previous_one_serving(world, monkeypatch):
    developer, endpoint = world["developer"], world["target"].endpoint
    v1 = model_md5(developer)
    deploy(world, "v1")
    assert metadata(endpoint)["model_md5"] == v1
    # A new commit whose server starts but rejects the smoke test's key (misconfigured).
    (developer / "NOTES.md").write_text("a change that needs a deploy\n")
    git(developer, "add", "NOTES.md")
    git(developer, "commit", "-qm", "Docs")
    git(developer, "push", "-q", "origin", "main")
    # The new server gets API keys the smoke test does not have (a misconfigured release):
    # it starts and reports ready, but /predict answers 401, so the release is rolled back.
    _, result = deploy(
        world, "bad", "--server-env", "MLGITOPS_API_KEYS=not-the-smoke-test-key", check=False
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "smoke test failed" in result.stderr
    served = metadata(endpoint)
    assert served["model_md5"] == v1, "the previous release still serves"
    assert served["git_commit"] != git(developer, "rev-parse", "HEAD")
    outcomes = [entry["outcome"] for entry in records(world)]
    assert outcomes == ["released", "rolled_back", "restored"]


def test_release_keeps_its_model_when_another_is_packaged_and_its_worker_restarts(world):
    # Given v1 deployed, when another model is packaged into the same BentoML store (another
    # checkout's `mlgitops package`), then re-deploying v1's commit reuses its bento and passes
    # its smoke test, and after its worker is killed with SIGKILL (BentoML restarts it)
    # /metadata still reports v1's model.
    developer, endpoint = world["developer"], world["target"].endpoint
    v1 = model_md5(developer)
    deploy(world, "v1")
    git(developer, "checkout", "-qb", "other-seed")
    params = yaml.safe_load((developer / "params.yaml").read_text())
    params["seed"] = int(params["seed"]) + 1
    (developer / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["dvc", "repro"], developer)
    run(["mlgitops", "package"], developer)
    assert model_md5(developer) != v1, "another seed must produce another model"

    _, again = deploy(world, "v1-again")
    assert "already built; reusing it" in again.stderr, "v1's bento was not reused"
    assert metadata(endpoint)["model_md5"] == v1, "the re-deploy serves another model"

    active = json.loads((world["target"].state_dir / "active.json").read_text())
    kill_workers_and_wait(active["pid"], active["backend"])
    assert metadata(endpoint)["model_md5"] == v1, "the restarted worker serves another model"
    outcomes = [entry["outcome"] for entry in records(world)]
    assert outcomes == ["released", "released"]


def test_a_port_unlike_the_running_proxys_is_refused(world):
    # Given v1 deployed on the target's port, when a deploy asks for another port, then it is
    # refused naming both ports, nothing is released, and v1 still serves on its port.
    developer, target = world["developer"], world["target"]
    v1 = model_md5(developer)
    deploy(world, "v1")
    other_port = free_port()
    _, result = deploy(world, "moved", "--port", str(other_port), check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert str(target.port) in result.stderr, "the running proxy's port is not named"
    assert str(other_port) in result.stderr, "the asked port is not named"
    assert "Traceback" not in result.stderr
    assert metadata(target.endpoint)["model_md5"] == v1
    assert [entry["outcome"] for entry in records(world)] == ["released"]
