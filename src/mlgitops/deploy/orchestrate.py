"""`mlgitops deploy`: verify the pinned artifacts, build the bento, release, smoke-test, and
restore the previous release when the new one is unhealthy. Deploy never trains."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from mlgitops.deploy import record
from mlgitops.deploy.commands import github_output
from mlgitops.deploy.target import (
    Check,
    DeployError,
    DeployTarget,
    Release,
    SmokeTestFailed,
)
from mlgitops.params import Params, load_params
from mlgitops.sections import ParamsError
from mlgitops.tools import tool

logger = logging.getLogger(__name__)

MODEL_PATH = "artifacts/model.joblib"
TEST_PATH = "artifacts/test.csv"
BENTO_NAME = "mlgitops"


@dataclass(frozen=True)
class Pinned:
    """What dvc.lock and data.dvc pin for this commit: the identity of the release."""

    commit: str
    model_md5: str
    data_md5: str

    @property
    def bento_tag(self) -> str:
        return f"{BENTO_NAME}:{self.commit}"


def _run(command: list[str], repo: Path) -> subprocess.CompletedProcess[str]:
    logger.info("$ %s", " ".join(command))
    executable = tool(command[0])
    return subprocess.run(
        [executable, *command[1:]], cwd=repo, capture_output=True, text=True, check=False
    )


def pinned(repo: Path) -> Pinned:
    """The commit and the hashes the workspace must match."""
    head = _run(["git", "rev-parse", "HEAD"], repo)
    if head.returncode != 0:
        raise DeployError(f"{repo} is not a git checkout: {head.stderr.strip()}")
    lock = yaml.safe_load((repo / "dvc.lock").read_text(encoding="utf-8"))
    model = next(
        (
            out["md5"]
            for stage in lock["stages"].values()
            for out in stage.get("outs", [])
            if out["path"] == MODEL_PATH
        ),
        None,
    )
    if model is None:
        raise DeployError(f"dvc.lock pins no {MODEL_PATH}; run the pipeline and commit dvc.lock")
    pointer = yaml.safe_load((repo / "data.dvc").read_text(encoding="utf-8"))
    return Pinned(head.stdout.strip(), model, pointer["outs"][0]["md5"])


def _changes(repo: Path) -> dict[str, list[str]]:
    """Stale and missing outputs per `dvc status`: {"stale": [...], "missing": [...]}."""
    status = _run(["dvc", "status", "--json"], repo)
    if status.returncode != 0:
        raise DeployError(f"`dvc status` failed: {status.stderr.strip()}")
    found: dict[str, list[str]] = {"stale": [], "missing": []}
    for stage, changes in json.loads(status.stdout or "{}").items():
        for change in changes:
            if not isinstance(change, dict):
                found["stale"].append(f"{stage} ({change})")
                continue
            for kind, entries in change.items():
                if not isinstance(entries, dict):  # e.g. "changed command"
                    found["stale"].append(f"{stage}: {kind}")
                    continue
                for path, state in entries.items():
                    if isinstance(state, dict):  # params: {key: "modified", ...}
                        keys = ", ".join(f"{key} {what}" for key, what in state.items())
                        found["stale"].append(f"{stage}: {path} ({keys})")
                        continue
                    # An output (or an upstream output) that is absent was not fetched: the
                    # remote lacks it. Anything else differs from what was reviewed.
                    if state in {"deleted", "not in cache"}:
                        found["missing"].append(path)
                    else:
                        found["stale"].append(f"{stage}: {path} ({state})")
    found["missing"] = sorted(set(found["missing"]))
    return found


def verify(repo: Path) -> Pinned:
    """Fetch the outputs pinned in dvc.lock and refuse a workspace that differs from them.

    Raises:
        DeployError: outputs are stale (listed), or a remote object is missing.
    """
    identity = pinned(repo)
    pulled = _run(["dvc", "pull"], repo)
    found = _changes(repo)
    if found["stale"]:
        raise DeployError(
            f"the workspace differs from dvc.lock: {'; '.join(found['stale'])}. Deploy ships "
            "exactly what was reviewed: reproduce and commit dvc.lock on a branch, then merge."
        )
    if pulled.returncode != 0 and not found["missing"]:
        logger.warning("`dvc pull` failed, but every pinned output is already in the workspace")
    if found["missing"]:
        detail = (pulled.stderr or pulled.stdout).strip().splitlines()
        raise DeployError(
            f"the DVC remote lacks pinned outputs ({'; '.join(found['missing']) or 'see below'}"
            f"; dvc said: {detail[-1] if detail else 'nothing'}). Push them from the commit that "
            "produced this dvc.lock (`dvc push`), and never garbage-collect the remote without "
            "--all-commits; deploy never retrains."
        )
    logger.info(
        "verified %s: model %s, data %s",
        identity.commit[:12],
        identity.model_md5,
        identity.data_md5,
    )
    return identity


def build(repo: Path, identity: Pinned) -> str:
    """Package the model and build the bento, versioned by the commit (idempotent).

    The bento pins the exact model it was built with (serving/bento.py), so reusing the
    bento of a commit serves that commit's model whatever was packaged since.
    """
    from mlgitops.serving.bento import BentoBuildError, build_bento
    from mlgitops.serving.package import PackageError, package

    existing = _run(["bentoml", "get", identity.bento_tag, "-o", "json"], repo)
    if existing.returncode == 0:
        logger.info("bento %s already built; reusing it", identity.bento_tag)
        return identity.bento_tag
    try:
        model = package(repo)
        build_bento(repo, model_tag=str(model.tag), version=identity.commit)
    except (BentoBuildError, PackageError) as error:
        raise DeployError(str(error)) from None
    logger.info("built bento %s", identity.bento_tag)
    return identity.bento_tag


def smoke_test(
    endpoint: str,
    *,
    expected_model_md5: str,
    example: dict[str, Any],
    api_key: str | None,
    timeout: float = 30.0,
) -> list[str]:
    """Problems found on a released endpoint: readiness, one prediction, the model hash."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    problems = []
    try:
        with httpx.Client(base_url=endpoint, headers=headers, timeout=timeout) as client:
            ready = client.get("/readyz")
            if ready.status_code != 200:
                problems.append(f"/readyz answered {ready.status_code}")
            predicted = client.post("/predict", json={"records": [example]})
            if predicted.status_code != 200 or not predicted.json():
                problems.append(
                    f"/predict answered {predicted.status_code}: {predicted.text[:300]}"
                )
            metadata = client.get("/metadata")
            served = metadata.json().get("model_md5") if metadata.status_code == 200 else None
            if served != expected_model_md5:
                problems.append(
                    f"/metadata reports model {served}, dvc.lock pins {expected_model_md5}"
                )
    except (httpx.HTTPError, ValueError) as error:
        problems.append(f"{endpoint} did not answer properly: {error}")
    return problems


def example_request(repo: Path, params: Params) -> dict[str, Any]:
    """A known-good record for the smoke test: the first test row, as the API takes it."""
    from mlgitops.contract.check import load_valid_table
    from mlgitops.serving.package import example_record

    if not (repo / TEST_PATH).exists():  # a fresh checkout, as in the release job
        fetched = _run(["dvc", "pull", TEST_PATH], repo)
        if fetched.returncode != 0:
            raise DeployError(
                f"the smoke test needs {TEST_PATH} from the DVC remote: {fetched.stderr.strip()}"
            )
    return example_record(load_valid_table(repo / TEST_PATH, params.contract), params)


def first_api_key(params: Params) -> str | None:
    keys = [k.strip() for k in os.environ.get(params.serve.api_keys_env, "").split(",")]
    return next((k for k in keys if k), None)


def release(
    repo: Path, target: DeployTarget, identity: Pinned, *, image: str | None, record_path: Path
) -> Release:
    """Release to the target and smoke-test it; on failure restore the previous release.

    Raises:
        DeployError: with the reason, after the previous release was restored.
    """
    params = load_params(repo / "params.yaml")
    example = example_request(repo, params)
    previous = target.current()

    def log(outcome: str, reason: str = "") -> None:
        record.append(
            record_path,
            record.DeploymentEntry(
                commit=identity.commit,
                model_md5=identity.model_md5,
                data_md5=identity.data_md5,
                bento_tag=identity.bento_tag,
                target=target.name,
                outcome=outcome,
                reason=reason,
            ),
        )

    def log_restored(release: Release) -> None:
        # The previous release's hashes are not known here; its commit identifies it.
        record.append(
            record_path,
            record.DeploymentEntry(
                commit=release.commit,
                model_md5="",
                data_md5="",
                bento_tag=release.bento_tag,
                target=target.name,
                outcome=record.RESTORED,
                reason=f"restored after {identity.commit[:12]} failed",
            ),
        )

    def smoke(endpoint: str) -> list[str]:
        return smoke_test(
            endpoint,
            expected_model_md5=identity.model_md5,
            example=example,
            api_key=first_api_key(params),
        )

    def rolled_back(problems: list[str]) -> DeployError:
        target.restore(previous)
        reason = "; ".join(problems)
        log(record.ROLLED_BACK, reason)
        if previous is not None:
            log_restored(previous)
        kept = previous.bento_tag if previous else "nothing (there was no previous release)"
        return DeployError(f"smoke test failed ({reason}); {kept} is serving")

    # The target smoke-tests the new version on its own before any traffic reaches it; the
    # check through the public endpoint afterwards proves traffic now reaches that version.
    try:
        released = target.release(
            identity.commit, identity.bento_tag, image, check=Check(identity.model_md5, smoke)
        )
    except SmokeTestFailed as failed:
        raise rolled_back(failed.problems) from None
    except DeployError as error:
        target.restore(previous)
        log(record.FAILED, str(error))
        raise
    problems = smoke(released.endpoint)
    if problems:
        raise rolled_back(problems)
    retire = getattr(target, "retire", None)
    if retire is not None:
        retire(previous)
    log(record.RELEASED)
    logger.info("released %s on %s at %s", identity.bento_tag, target.name, released.endpoint)
    return released


STEPS = ("verify", "build", "containerize", "release", "all", "stop")


def make_target(args: Any, params: Params, repo: Path) -> DeployTarget:
    """The target named on the command line, configured from `deploy:` in params.yaml."""
    if args.target == "local":
        from mlgitops.deploy.local import LocalTarget

        env = {}
        for item in args.server_env:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise DeployError(f"--server-env expects NAME=VALUE, got {item!r}")
            env[name] = value
        local = params.deploy.local
        return LocalTarget(
            state_dir=args.state_dir or record.local_state_dir(repo),
            port=args.port or local.port,
            ready_timeout=local.ready_timeout_s,
            env=env,
            keep_alive_s=params.serve.keep_alive_s,
        )
    if args.target == "kubernetes":
        from mlgitops.deploy.kubernetes import KubernetesTarget

        options = params.deploy.kubernetes.model_dump()
        options["manifests"] = repo / options["manifests"]
        return KubernetesTarget.from_environ(**options)
    from mlgitops.deploy.bentocloud import BentoCloudTarget

    options = params.deploy.bentocloud.model_dump()
    options["secrets"] = list(options["secrets"])
    return BentoCloudTarget(**options)


def containerize(repo: Path, identity: Pinned, image: str | None) -> str:
    """Build the bento's container image, tagged with the commit, and push it.

    Raises:
        DeployError: without an image name, with a tag other than the commit, or when the
            build or the push fails.
    """
    if not image:
        raise DeployError("--image is required: e.g. ghcr.io/<owner>/<repo>:<commit sha>")
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag or tag != identity.commit:
        raise DeployError(
            f"the image tag must be the commit {identity.commit} (never only 'latest'), got "
            f"{image!r}"
        )
    # Registries such as ghcr.io only accept lowercase repository names.
    image = f"{name.lower()}:{tag}"
    for command in (
        ["bentoml", "containerize", identity.bento_tag, "--image-tag", image],
        ["docker", "push", image],
    ):
        result = _run(command, repo)
        if result.returncode != 0:
            raise DeployError(
                f"`{' '.join(command[:2])}` failed:\n"
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )
    logger.info("pushed %s", image)
    return image


def run_deploy(args: Any) -> int:
    """Run the requested deploy steps; every failure is one clear line and exit code 1."""
    repo = args.repo.resolve()
    try:
        params = load_params(repo / "params.yaml")
        target = make_target(args, params, repo)
        record_path = args.record or record.FETCHED
        state_dir = getattr(target, "state_dir", None)
        if state_dir is not None:
            # The local target keeps the project's record, and unless BENTOML_HOME says
            # otherwise its bentos and models, next to its servers: nothing in the working
            # tree, nothing shared with another checkout (every bentoml call below inherits it).
            record_path = args.record or record.local_record(state_dir)
            os.environ.setdefault("BENTOML_HOME", str(state_dir / "bentoml"))
        if args.step == "stop":
            stop = getattr(target, "stop", None)
            if stop is None:
                raise DeployError(f"--step stop is only for the local target, not {target.name}")
            stop()
            print(f"stopped every {target.name} release")
            return 0
        if args.step in {"release", "all"}:
            # Where this release's record is, for the workflow step that uploads it (the local
            # target's lives in its state directory, not in the working tree).
            github_output({"record": str(record_path.resolve())}, os.environ.get("GITHUB_OUTPUT"))
            target.check_configured()  # before anything is touched
        identity = verify(repo) if args.step in {"verify", "all"} else pinned(repo)
        if args.step in {"build", "all"}:
            build(repo, identity)
        if args.step == "containerize":
            print(f"pushed {containerize(repo, identity, args.image)}")
        if args.step in {"release", "all"}:
            released = release(repo, target, identity, image=args.image, record_path=record_path)
            print(f"serving {released.bento_tag} at {released.endpoint}")
    except (DeployError, ParamsError) as error:
        logger.error("deploy failed: %s", error)
        return 1
    return 0


def add_deploy_command(commands: Any) -> None:
    """Register `mlgitops deploy`."""
    deploy = commands.add_parser(
        "deploy", help="verify pinned artifacts, build the bento, release, smoke-test, roll back"
    )
    deploy.add_argument("--target", choices=["local", "kubernetes", "bentocloud"], default="local")
    deploy.add_argument("--step", choices=STEPS, default="all")
    deploy.add_argument("--repo", type=Path, default=Path("."))
    deploy.add_argument("--image", help="container image reference (kubernetes)")
    deploy.add_argument(
        "--port", type=int, help="local target's port (default: deploy.local.port in params)"
    )
    deploy.add_argument(
        "--state-dir",
        type=Path,
        help="local target's state directory (default: $MLGITOPS_LOCAL_STATE, else one per "
        "checkout under ~/.cache/mlgitops/local)",
    )
    deploy.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the local target's servers (repeatable), e.g. API keys",
    )
    deploy.add_argument(
        "--record",
        type=Path,
        help="deployment record to append to (JSON lines; the report's champion). Default: "
        "the local target's state directory (its deployments.jsonl); for the other targets "
        "deployments.jsonl in the working directory, which deploy.yml uploads as an artifact",
    )
    deploy.set_defaults(handler=run_deploy)
