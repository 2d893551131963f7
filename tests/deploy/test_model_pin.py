"""A built bento serves exactly the model its manifest references, whatever else the model store
holds, across worker restarts; `mlgitops serve` from source serves the model dvc.lock pins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from helpers import copy_project, run
from live_server import (
    API_KEYS,
    Home,
    Server,
    build_bento,
    kill_workers_and_wait,
    package_into,
    packaged_home,
    start_server,
    wait_ready,
)
from mlgitops.layout import locked_md5
from mlgitops.serving.package import (
    EXPECTED_MODEL_MD5_ENV,
    MODEL_ALIAS,
    MODEL_TAG_ENV,
    workspace_model_tag,
)

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {API_KEYS[0]}"}


@pytest.fixture(scope="module")
def other_project(tmp_path_factory: pytest.TempPathFactory, trained_project: Path) -> Path:
    """The project trained with another seed than its own params say: another model (B)."""
    folder = tmp_path_factory.mktemp("other")
    project = copy_project(folder / "project", remote=folder / "remote")
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    params["seed"] = int(params["seed"]) + 1
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["mlgitops", "data", "fetch"], project)
    run(["dvc", "repro"], project)
    assert model_md5(project) != model_md5(trained_project), "the other seed made the same model"
    return project


def model_md5(project: Path) -> str:
    lock = yaml.safe_load((project / "dvc.lock").read_text(encoding="utf-8"))
    return locked_md5(lock, "artifacts/model.joblib")


def served(url: str, example: dict) -> tuple[str, list[str]]:
    """The model md5 /metadata reports and the model version of each prediction."""
    with httpx.Client(base_url=url, headers=AUTH, timeout=30) as client:
        metadata = client.get("/metadata")
        assert metadata.status_code == 200, metadata.text
        predicted = client.post("/predict", json={"records": [example, example]})
        assert predicted.status_code == 200, predicted.text
    return metadata.json()["model_md5"], [p["model_version"] for p in predicted.json()]


@pytest.fixture
def bento_a_after_b(
    tmp_path: Path, trained_project: Path, other_project: Path
) -> Iterator[tuple[Server, str]]:
    """Model A packaged and its bento built, then model B packaged (the store's newest), and
    bento A served with no model named in the environment."""
    home = packaged_home(tmp_path / "home", trained_project)
    bento = build_bento(home)
    packaged_b = package_into(home, other_project)
    assert packaged_b.returncode == 0, packaged_b.stderr
    env = {k: v for k, v in home.extra_env.items() if k != MODEL_TAG_ENV}
    server = start_server(Home(root=home.root, extra_env=env), bento)
    try:
        wait_ready(server)
        yield server, workspace_model_tag(trained_project).partition(":")[2]
    finally:
        server.stop()


def example_of(home_root: Path, project: Path) -> dict:
    """The example record stored with the project's packaged model."""
    version = workspace_model_tag(project).partition(":")[2]
    model_yaml = home_root / "bentoml" / "models" / "mlgitops-pipeline" / version / "model.yaml"
    return dict(yaml.safe_load(model_yaml.read_text(encoding="utf-8"))["metadata"]["example"])


def test_bento_serves_its_own_model_across_a_worker_restart(bento_a_after_b, trained_project):
    # Given bento A served while the store's newest model is B, when its worker is killed
    # with SIGKILL and BentoML restarts it, then /metadata and every prediction are still A's.
    server, version_a = bento_a_after_b
    example = example_of(server.log.parent, trained_project)
    md5_a = model_md5(trained_project)
    assert served(server.url, example) == (md5_a, [version_a] * 2), "bento A serves B at start"
    kill_workers_and_wait(server.process.pid, server.url)
    assert served(server.url, example) == (md5_a, [version_a] * 2), "the restarted worker"


def test_serve_from_source_serves_the_model_dvc_lock_pins(tmp_path, trained_project, other_project):
    # Given models A then B packaged into one store, when `mlgitops serve` runs from source
    # with A's params and dvc.lock (no model named in the environment), then it serves A.
    home = packaged_home(tmp_path / "home", trained_project)
    assert package_into(home, other_project).returncode == 0
    env = {k: v for k, v in home.extra_env.items() if k != MODEL_TAG_ENV}
    server = start_server(Home(root=home.root, extra_env=env), project=trained_project)
    try:
        wait_ready(server)
        example = example_of(home.root, trained_project)
        version_a = workspace_model_tag(trained_project).partition(":")[2]
        assert served(server.url, example) == (model_md5(trained_project), [version_a] * 2)
    finally:
        server.stop()


def test_a_server_told_another_model_refuses_to_start(tmp_path, trained_project, other_project):
    # Given model A packaged, when a server of A is told the release must serve B's md5 (what
    # the deploy targets set), then it exits before it is ready, naming both models.
    home = packaged_home(tmp_path / "home", trained_project)
    home.extra_env[EXPECTED_MODEL_MD5_ENV] = model_md5(other_project)
    server = start_server(home, project=trained_project)
    try:
        exit_code = server.process.wait(timeout=120)
    finally:
        server.stop()
    log = server.log.read_text()
    assert exit_code != 0, "the server started with another model than the release's"
    assert model_md5(other_project) in log, log[-2000:]
    assert model_md5(trained_project) in log, log[-2000:]


def test_a_checkout_below_a_hidden_folder_builds_its_bento(tmp_path, trained_project):
    # Given a checkout whose path has a folder starting with a dot (a clone under ~/.cache),
    # when its bento is built, then the build succeeds (BentoML refuses such a context, so
    # the build runs from a staged copy) and the bento pins the model.
    checkout = copy_project(tmp_path / ".cache" / "project", remote=tmp_path / "remote")
    home = packaged_home(tmp_path / "home", trained_project)
    tag = build_bento(home, project=checkout)
    name, _, version = tag.partition(":")
    manifest = home.bentoml_home / "bentos" / name / version / "bento.yaml"
    models = yaml.safe_load(manifest.read_text(encoding="utf-8"))["models"]
    assert [m["tag"] for m in models] == [home.extra_env[MODEL_TAG_ENV]], models
    assert [m["alias"] for m in models] == [MODEL_ALIAS], "the bento's model has no alias"
