"""`bentoml build` of the service from a staged copy whose bentofile pins the exact model."""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mlgitops.serving.package import MODEL_ALIAS
from mlgitops.tools import tool

logger = logging.getLogger(__name__)

BENTOFILE = "bentofile.yaml"
# The build context (bentofile.yaml builds from src/, so the bento carries the package).
CONTEXT = "src"


class BentoBuildError(RuntimeError):
    """The bento could not be built; the message says why and what to do."""


def pinned_bentofile(bentofile: Mapping[str, Any], model_tag: str) -> dict[str, Any]:
    """`bentofile` with `models:` naming exactly `model_tag`, under the service's alias.

    BentoML records the tag in the bento's manifest (`bento.yaml`, `models:` with the alias)
    and sets the alias to it in every process that loads the bento, workers restarted after a
    crash included; the service resolves the alias, so it serves this model whatever else the
    model store holds.
    """
    return {**bentofile, "models": [{"tag": model_tag, "alias": MODEL_ALIAS}]}


def hidden_folder(path: Path) -> str | None:
    """The first folder of the absolute `path` whose name starts with a dot, if any."""
    return next((part for part in path.resolve().parts if part.startswith(".")), None)


def build_bento(
    repo: Path,
    *,
    model_tag: str,
    version: str | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Build the bento of `repo`'s service pinned to the model `model_tag`.

    The build runs in a staged copy of the build context and bentofile under the temporary
    directory: BentoML refuses to build when any folder of the context's path starts with a
    dot ("Accessing hidden files is not allowed"), which a checkout under e.g. `~/.cache`
    would otherwise hit.

    Args:
        repo: the project root (holding bentofile.yaml and src/).
        model_tag: the model store entry the bento serves, e.g. `mlgitops-pipeline:<version>`.
        version: the bento's version (default: one BentoML generates).
        env: the environment of `bentoml build` (default: this process's).

    Returns:
        The built bento's tag.

    Raises:
        BentoBuildError: the temporary directory is itself below a hidden folder, or the build
            failed (with BentoML's reason).
    """
    bentofile = yaml.safe_load((repo / BENTOFILE).read_text(encoding="utf-8"))
    stage = Path(tempfile.mkdtemp(prefix="mlgitops-bento-"))
    try:
        hidden = hidden_folder(stage)
        if hidden is not None:
            raise BentoBuildError(
                f"cannot build the bento: the temporary directory {stage.parent} lies below the "
                f'hidden folder {hidden!r}, and BentoML refuses to build there ("Accessing '
                'hidden files is not allowed"); set TMPDIR to a folder whose path has no '
                "folder starting with a dot"
            )
        shutil.copytree(
            repo / CONTEXT,
            stage / CONTEXT,
            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
        )
        (stage / BENTOFILE).write_text(
            yaml.safe_dump(pinned_bentofile(bentofile, model_tag), sort_keys=False),
            encoding="utf-8",
        )
        command = [tool("bentoml"), "build", "-f", BENTOFILE, "-o", "tag"]
        if version:
            command += ["--version", version]
        built = subprocess.run(
            [*command, CONTEXT],
            cwd=stage,
            capture_output=True,
            text=True,
            env=None if env is None else dict(env),
            check=False,
        )
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    if built.returncode != 0:
        detail = (built.stderr or built.stdout).strip().splitlines()
        raise BentoBuildError(f"`bentoml build` failed: {' '.join(detail[-5:]) or 'no output'}")
    tag = built.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    logger.info("built bento %s serving %s", tag, model_tag)
    return tag
