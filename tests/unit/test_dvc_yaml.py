"""dvc.yaml: every stage lists the modules it imports and only params sections that exist."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import pytest
import yaml
from ruamel.yaml import YAML

from mlgitops.config import PipelineParams
from mlgitops.params import Params
from mlgitops.report.compare import flatten

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def module_file(module: str) -> Path:
    path = SRC.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def imported_files(module: str, seen: set[Path] | None = None) -> set[Path]:
    """Every file of the mlgitops package that `module` imports, transitively, with packages."""
    seen = set() if seen is None else seen
    path = module_file(module)
    if path in seen:
        return seen
    seen.add(path)
    parts = module.split(".")
    for index in range(1, len(parts)):
        seen.add(module_file(".".join(parts[:index])))
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            if name.split(".")[0] == "mlgitops":
                imported_files(name, seen)
    return seen


@pytest.mark.parametrize("stage", list(PIPELINE))
def test_stage_deps_cover_its_imports(stage):
    spec = PIPELINE[stage]
    module = spec["cmd"].split()[2]
    assert module == f"mlgitops.stages.{stage}", "stage name = module name"
    needed = {p.relative_to(ROOT).as_posix() for p in imported_files(module)}
    # The model file is unpickled by evaluate and explain: it needs the modules train used.
    if "artifacts/model.joblib" in spec["deps"]:
        needed |= {p.relative_to(ROOT).as_posix() for p in imported_files("mlgitops.features")}
    missing = needed - set(spec["deps"])
    assert not missing, f"stage '{stage}' imports {sorted(missing)} but does not list them in deps"


@pytest.mark.parametrize("stage", list(PIPELINE))
def test_stage_params_are_real_sections(stage):
    sections = {field.alias or name for name, field in PipelineParams.model_fields.items()}
    for key in PIPELINE[stage].get("params", []):
        assert key in sections, f"stage '{stage}' depends on unknown params section '{key}'"


# The sections outside the pipeline: the whole-file model's fields that the stages lack.
OPERATIONAL_SECTIONS = set(Params.model_fields) - set(PipelineParams.model_fields)


@pytest.mark.parametrize("stage", list(PIPELINE))
def test_no_stage_depends_on_operational_settings(stage):
    # Given a stage's module and everything it imports, when the classes they define are
    # listed, then none is the model of an operational section: a `serve`, `deploy`, `gates`
    # or `monitor` edit must never change a file the stage depends on (no retraining).
    operational = {Params.model_fields[name].annotation.__name__ for name in OPERATIONAL_SECTIONS}
    assert operational, "the whole-file model has operational sections"
    files = imported_files(PIPELINE[stage]["cmd"].split()[2])
    if "artifacts/model.joblib" in PIPELINE[stage]["deps"]:
        files |= imported_files("mlgitops.features")
    defined = {
        f"{path.relative_to(ROOT).as_posix()}:{node.name}"
        for path in files
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef) and node.name in operational
    }
    assert not defined, f"stage '{stage}' depends on files defining operational params: {defined}"
    stage_sections = set(PIPELINE[stage].get("params", []))
    assert not stage_sections & OPERATIONAL_SECTIONS, f"stage '{stage}' lists operational params"


def test_dvc_lock_matches_the_committed_code_and_params():
    # Given dvc.lock, every source file and params section a stage depends on must hash to
    # what the lock records; otherwise a fresh clone re-runs stages and a deploy refuses it.
    # DVC writes YAML 1.2 (an unquoted Yes is text); PyYAML would read it as a boolean.
    lock = YAML(typ="safe", pure=True).load((ROOT / "dvc.lock").read_text())["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    stale = []
    for stage, entry in lock.items():
        for dep in entry.get("deps", []):
            if dep["path"].startswith("src/"):
                actual = hashlib.md5((ROOT / dep["path"]).read_bytes()).hexdigest()
                if actual != dep["md5"]:
                    stale.append(f"{stage}: {dep['path']}")
        for section, recorded in entry.get("params", {}).get("params.yaml", {}).items():
            if flatten({section: params.get(section)}) != flatten({section: recorded}):
                stale.append(f"{stage}: params.yaml {section}")
    assert not stale, f"dvc.lock is stale (run `dvc repro` and commit dvc.lock): {stale}"
