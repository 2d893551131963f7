"""The deployment record: one JSON line per release or restore; the reader and the writer.

It says what is deployed, for the deploy targets that write it and the report that reads it.
Where it lives: the local target keeps it in its state directory (`local_record`); on GitHub
it is the deploy run's artifact, which `mlgitops fetch-deployments` downloads as
`deployments.jsonl` (`FETCHED`). `find` is where every `mlgitops` reader looks.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RELEASED = "released"
RESTORED = "restored"
ROLLED_BACK = "rolled_back"
FAILED = "failed"
# Outcomes after which the entry's commit is what serves (see `serving_now`).
SERVING_OUTCOMES = frozenset({RELEASED, RESTORED})

FILE_NAME = "deployments.jsonl"
# The record of a deploy on GitHub: written in the run's workspace and uploaded as its
# artifact (deploy.yml), and what `mlgitops fetch-deployments` downloads (git-ignored).
FETCHED = Path(FILE_NAME)
# Moves the local target's state (servers, proxy, logs, record, BentoML home) of a project.
STATE_ENV = "MLGITOPS_LOCAL_STATE"
STATE_ROOT = Path("~/.cache/mlgitops/local")


def local_state_dir(repo: Path, environ: dict[str, str] | None = None) -> Path:
    """The local target's state directory of the checkout at `repo`.

    `MLGITOPS_LOCAL_STATE` when set; else a folder of its own under `~/.cache/mlgitops/local`,
    named after the checkout's path, so two projects (or two checkouts of one) never serve,
    retire or record each other's releases.
    """
    environ = dict(os.environ) if environ is None else environ
    if environ.get(STATE_ENV, "").strip():
        return Path(environ[STATE_ENV].strip()).expanduser()
    resolved = repo.resolve()
    digest = hashlib.sha256(str(resolved).encode("utf-8")).hexdigest()[:12]
    return STATE_ROOT.expanduser() / f"{resolved.name}-{digest}"


def local_record(state_dir: Path) -> Path:
    """The deployment record the local target keeps in `state_dir`."""
    return state_dir / FILE_NAME


def find(repo: Path, environ: dict[str, str] | None = None) -> Path:
    """The record a reader of `repo` uses: GitHub's when fetched, else the local target's.

    The local target's record of this checkout need not exist: then there was no deploy.
    """
    fetched = repo / FETCHED
    if fetched.is_file():
        return fetched
    return local_record(local_state_dir(repo, environ))


@dataclass(frozen=True)
class DeploymentEntry:
    """What was shipped where, when, and how it ended."""

    commit: str
    model_md5: str
    data_md5: str
    bento_tag: str
    target: str
    outcome: str
    reason: str = ""
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def append(path: Path, entry: DeploymentEntry) -> None:
    """Append one entry; the file only ever grows, so history is never rewritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(asdict(entry), sort_keys=True) + "\n")


def read(path: Path) -> list[dict[str, Any]]:
    """Every readable entry, oldest first; a corrupt line is skipped, not fatal."""
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return entries


def serving_now(path: Path) -> dict[str, Any] | None:
    """The deployed release: the last entry whose outcome left it serving, if any.

    Args:
        path: a deployment record (it need not exist: then nothing is deployed).
    """
    serving = [entry for entry in read(path) if entry.get("outcome") in SERVING_OUTCOMES]
    return serving[-1] if serving else None
