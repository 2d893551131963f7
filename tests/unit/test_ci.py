"""The git-tracked outputs of dvc.yaml, as DVC itself sees them; the required check."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
import yaml

from helpers import PROJECT_ROOT, run
from mlgitops.ci import git_tracked_outputs


def dvc_git_tracked(root) -> list[str]:
    """What DVC's own index says git tracks: every stage output with cache disabled."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return sorted(
            out.def_path for stage in repo.index.stages for out in stage.outs if not out.use_cache
        )


def test_the_projects_tracked_outputs_are_dvcs(tmp_path):
    # Given the project's dvc.yaml, then the list equals what DVC's index calls uncached.
    listed = git_tracked_outputs(PROJECT_ROOT / "dvc.yaml")
    assert sorted(listed) == dvc_git_tracked(PROJECT_ROOT)
    assert len(listed) == len(set(listed)), f"duplicates in {listed}"


@pytest.fixture(scope="module")
def dvc_metadata(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .dvc folder `dvc init --no-scm` writes, made once per module and copied per test."""
    root = tmp_path_factory.mktemp("dvc-init")
    run(["dvc", "init", "--no-scm", "-q"], root)
    return root / ".dvc"


@pytest.mark.parametrize("case", range(5))
def test_generated_pipelines_agree_with_dvc(tmp_path, seed, case, dvc_metadata):
    # Given a generated dvc.yaml (outs, metrics and plots, cached or not, with and without
    # options), then the list equals DVC's own view of it.
    rng = random.Random(seed + case)
    stages = {}
    for s in range(rng.randint(1, 4)):
        stage = {"cmd": f"echo {s}"}
        for kind in ("outs", "metrics", "plots"):
            entries = []
            for o in range(rng.randint(0, 3)):
                path = f"{kind}/s{s}_{o}.json"
                choice = rng.choice(["plain", "cached", "uncached", "uncached+"])
                if choice == "plain":
                    entries.append(path)
                elif choice == "cached":
                    entries.append({path: {"cache": True}})
                elif choice == "uncached":
                    entries.append({path: {"cache": False}})
                else:
                    entries.append({path: {"cache": False, "persist": True}})
            if entries:
                stage[kind] = entries
        stages[f"stage{s}"] = stage
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    shutil.copytree(dvc_metadata, tmp_path / ".dvc")
    assert sorted(git_tracked_outputs(tmp_path / "dvc.yaml")) == dvc_git_tracked(tmp_path)
