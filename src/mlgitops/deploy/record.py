"""The deployment record: one JSON line per release or rollback, the report's champion."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Outcomes after which the record's commit is what serves (see report.build.champion_record).
RELEASED = "released"
RESTORED = "restored"
ROLLED_BACK = "rolled_back"
FAILED = "failed"


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
