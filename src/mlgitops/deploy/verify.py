"""What a deploy ships: the commit and hashes dvc.lock pins, and a workspace that matches them."""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mlgitops import layout
from mlgitops.deploy.target import DeployError
from mlgitops.tools import tool

logger = logging.getLogger(__name__)

BENTO_NAME = "mlgitops"


@dataclass(frozen=True)
class Pinned:
    """What dvc.lock and data.dvc pin for this commit: the identity of the release."""

    commit: str
    model_md5: str
    data_md5: str

    @property
    def bento_tag(self) -> str:
        """The bento built from this commit."""
        return f"{BENTO_NAME}:{self.commit}"


def run(command: list[str], repo: Path) -> subprocess.CompletedProcess[str]:
    """Run a tool of the project (git, dvc, bentoml, docker) in `repo`, capturing its output."""
    logger.info("$ %s", " ".join(command))
    executable = tool(command[0])
    return subprocess.run(
        [executable, *command[1:]], cwd=repo, capture_output=True, text=True, check=False
    )


def pinned(repo: Path) -> Pinned:
    """The commit and the hashes the workspace must match."""
    head = run(["git", "rev-parse", "HEAD"], repo)
    if head.returncode != 0:
        raise DeployError(f"{repo} is not a git checkout: {head.stderr.strip()}")
    try:
        lock = layout.read_yaml(repo / layout.DVC_LOCK_PATH)
        model = layout.locked_outs(lock).get(layout.MODEL_PATH)
        if model is None:
            raise DeployError(
                f"dvc.lock pins no {layout.MODEL_PATH}; run the pipeline and commit dvc.lock"
            )
        data = layout.data_md5(layout.read_yaml(repo / layout.DATA_POINTER))
    except layout.LayoutError as error:
        raise DeployError(str(error)) from None
    return Pinned(head.stdout.strip(), model, data)


def _changes(repo: Path) -> dict[str, list[str]]:
    """Stale and missing outputs per `dvc status`: {"stale": [...], "missing": [...]}."""
    status = run(["dvc", "status", "--json"], repo)
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
    pulled = run(["dvc", "pull"], repo)
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
