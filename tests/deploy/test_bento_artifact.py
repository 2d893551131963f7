"""deploy.yml's `bento` artifact is a complete build context: BentoML builds the container's
context from it alone, in a fresh BentoML home, as the containerize job does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import PROJECT_ROOT
from live_server import Home, build_bento, packaged_home

pytestmark = pytest.mark.slow

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "deploy.yml"
STORE = "build/bentoml"  # deploy.yml's BENTOML_HOME, relative to the workspace

# Run in a fresh interpreter: BentoML reads BENTOML_HOME once, at import.
CONTEXT_SCRIPT = """
import sys
from pathlib import Path
import bentoml
from bentoml._internal.container import construct_containerfile

bento = bentoml.get(sys.argv[1])
with construct_containerfile(bento, enable_buildkit=False) as (context, dockerfile):
    models = sorted(p.relative_to(context).as_posix() for p in Path(context, "models").rglob("*"))
    print("DOCKERFILE", Path(dockerfile).is_file())
    print("MODELS", *models)
"""


def artifact_paths() -> tuple[list[str], str]:
    """What the build job uploads (relative to the store) and where containerize downloads."""
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    jobs = workflow["jobs"]
    (upload,) = [
        s for s in jobs["verify-build"]["steps"] if "upload-artifact@" in s.get("uses", "")
    ]
    (download,) = [
        s for s in jobs["containerize"]["steps"] if "download-artifact@" in s.get("uses", "")
    ]
    paths = [line.strip() for line in upload["with"]["path"].splitlines() if line.strip()]
    return paths, download["with"]["path"].rstrip("/")


def transfer_as_the_artifact_does(workspace: Path, fresh_workspace: Path) -> None:
    """upload-artifact keeps several paths below their least common ancestor; download-artifact
    writes that tree into its `path`, here in another job's workspace."""
    paths, destination = artifact_paths()
    ancestor = os.path.commonpath(paths)
    for path in paths:
        shutil.copytree(
            workspace / path,
            fresh_workspace / destination / Path(path).relative_to(ancestor),
            symlinks=True,
        )


def build_context(home: Path, tag: str) -> subprocess.CompletedProcess[str]:
    env = Home(home.parent).env() | {"BENTOML_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-c", CONTEXT_SCRIPT, tag],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory, trained_project) -> tuple[Path, str]:
    """A bento built in a BentoML home laid out as deploy.yml's: the build job's workspace and
    the bento's tag."""
    workspace = tmp_path_factory.mktemp("build-job")
    home = packaged_home(workspace / "build", trained_project)
    assert home.bentoml_home == workspace / STORE, "not deploy.yml's layout"
    return workspace, build_bento(home)


def test_the_downloaded_artifact_alone_is_a_complete_build_context(tmp_path, built):
    # Given a bento built in a BentoML home laid out as deploy.yml's (<workspace>/build/bentoml),
    # when only what the `bento` artifact uploads is put into a fresh home the way
    # download-artifact does, then BentoML generates the container build context with the
    # model inside it.
    workspace, tag = built
    transfer_as_the_artifact_does(workspace, tmp_path / "containerize-job")
    result = build_context(tmp_path / "containerize-job" / STORE, tag)
    assert result.returncode == 0, f"build context failed:\n{result.stderr[-3000:]}"
    assert "DOCKERFILE True" in result.stdout
    models = result.stdout.split("MODELS", 1)[1].split()
    assert any(m.startswith("models/mlgitops-pipeline/") for m in models), result.stdout


def test_bentos_alone_are_not_enough(tmp_path, built):
    # Given the same bento, when only bentos/ travels (the artifact before the fix), then
    # BentoML cannot build the context: the model it references is missing.
    workspace, tag = built
    fresh = tmp_path / "containerize-job" / STORE
    shutil.copytree(workspace / STORE / "bentos", fresh / "bentos", symlinks=True)
    result = build_context(fresh, tag)
    assert result.returncode != 0
    assert "could not be found" in result.stderr or "NotFound" in result.stderr
