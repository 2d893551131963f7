"""`mlgitops package`: the model in the BentoML store is the one dvc.lock records, labelled."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from helpers import PROJECT_ROOT, run
from mlgitops.layout import LayoutError, data_md5, locked_md5
from mlgitops.serving.package import (
    MODEL_FILE,
    PackageError,
    collect,
    file_md5,
    params_sha256,
)


def read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_params_hash_ignores_key_order_but_not_values():
    # Given the same params in another key order, and with one value changed,
    # when hashed, then only the changed value changes the hash.
    params = {"seed": 1, "train": {"a": 1, "b": [1, 2]}}
    reordered = {"train": {"b": [1, 2], "a": 1}, "seed": 1}
    changed = {"seed": 2, "train": {"a": 1, "b": [1, 2]}}
    assert params_sha256(params) == params_sha256(reordered), "key order changed the hash"
    assert params_sha256(params) != params_sha256(changed), "a changed value kept the hash"


def test_locked_md5_names_the_missing_output():
    # Given a lock file without the model, when its md5 is asked for, then the error says
    # which output is missing and how to produce it.
    with pytest.raises(LayoutError, match=r"artifacts/model.joblib.*make repro"):
        locked_md5({"stages": {"prepare": {"outs": []}}}, "artifacts/model.joblib")


def test_package_labels_the_model_with_its_provenance(packaged, trained_project, params):
    # Given the trained project, when packaged, then the labels carry the commit, the md5s
    # that dvc.lock and data.dvc record, the params hash and the headline metrics.
    labels = packaged.info.labels
    lock = read_yaml(trained_project / "dvc.lock")
    assert labels["model_md5"] == locked_md5(lock, "artifacts/model.joblib"), "model md5"
    assert labels["data_md5"] == data_md5(read_yaml(trained_project / "data.dvc")), "data md5"
    raw = read_yaml(trained_project / "params.yaml")
    assert labels["params_sha256"] == params_sha256(raw), "params hash"
    head = run(["git", "rev-parse", "HEAD"], trained_project).stdout.strip()
    assert labels["git_commit"] == head, "git commit"
    for metric in params.evaluate.headline:
        assert metric in labels, f"headline metric {metric} is not a label"
    assert packaged.tag.version == labels["model_md5"][:16], "version is not the model md5"


def test_package_stores_the_exact_file_and_the_contract(packaged, trained_project, params):
    # Given the packaged model, then its file is byte-identical to the workspace's, and its
    # metadata holds the contract, the serve params and a complete example row.
    stored = Path(packaged.path) / MODEL_FILE
    assert file_md5(stored) == file_md5(trained_project / "artifacts/model.joblib"), "bytes"
    metadata = packaged.info.metadata
    assert set(metadata["contract"]["columns"]) == set(params.contract.columns), "contract"
    assert metadata["serve"]["max_records"] == params.serve.max_records, "serve params"
    assert set(metadata["example"]) == set(params.contract.features), "example columns"
    assert all(v is not None for v in metadata["example"].values()), "example has gaps"
    assert yaml.safe_load(metadata["params_yaml"]) == read_yaml(trained_project / "params.yaml")


def test_package_refuses_a_model_that_differs_from_the_lock(trained_project, tmp_path):
    # Given a workspace whose model file is not the one dvc.lock records, when packaged,
    # then it is refused, naming both md5s and how to fix it.
    for name in ("params.yaml", "dvc.lock", "data.dvc", "artifacts/model.joblib"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(trained_project / name, tmp_path / name)
    with (tmp_path / "artifacts/model.joblib").open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(PackageError, match=r"differs from dvc.lock.*dvc repro"):
        collect(tmp_path)


def test_package_command_explains_what_is_missing(tmp_path):
    # Given a project without artifacts, when `mlgitops package` runs, then it exits 1 and
    # says to run the pipeline first.
    shutil.copy2(PROJECT_ROOT / "params.yaml", tmp_path / "params.yaml")
    result = run(["mlgitops", "package", "--repo", str(tmp_path)], tmp_path, check=False)
    assert result.returncode == 1, f"expected exit 1, got {result.returncode}"
    assert "make repro" in result.stderr, f"no hint in: {result.stderr}"


def test_bentofile_pins_the_locked_versions():
    # Given bentofile.yaml and requirements.lock, then every pinned package has the locked
    # version (scikit-learn above all: the model was trained with it).
    locked = {}
    for line in (PROJECT_ROOT / "requirements.lock").read_text().splitlines():
        name, _, version = line.partition("==")
        if version:
            locked[name.lower()] = version.strip()
    bentofile = read_yaml(PROJECT_ROOT / "bentofile.yaml")
    assert bentofile["python"]["lock_packages"] is False, "locking needs the network"
    pins = dict(p.split("==") for p in bentofile["python"]["packages"])
    assert "scikit-learn" in pins, "scikit-learn is not pinned"
    for name, version in pins.items():
        assert locked.get(name.lower()) == version, f"{name}=={version} is not the locked version"
