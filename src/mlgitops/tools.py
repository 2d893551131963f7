"""Finding the command-line tools installed with mlgitops (dvc, bentoml)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def tool(name: str) -> str:
    """The executable `name` installed beside this interpreter, else the one on PATH.

    Preferring the interpreter's own bin directory means `.venv/bin/mlgitops` works without
    an activated environment, and always with the pinned versions.
    """
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return str(beside)
    return shutil.which(name) or name
