"""Params split by what invalidates the pipeline: operational edits leave `dvc status` clean."""

from __future__ import annotations

import inspect
import json
import random
import shutil
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from helpers import PROJECT_ROOT, copy_project, run
from mlgitops.config import PipelineParams
from mlgitops.params import Params, parse_params
from mlgitops.sections import ParamsError

pytestmark = pytest.mark.slow

# The operational sections (the whole file's, less the pipeline's) and the file defining the
# model of each: editing either must never make a stage stale.
OPERATIONAL = {
    name: Path(inspect.getfile(Params.model_fields[name].annotation))
    .relative_to(PROJECT_ROOT)
    .as_posix()
    for name in set(Params.model_fields) - set(PipelineParams.model_fields)
}
PIPELINE_SECTIONS = tuple(
    field.alias or name for name, field in PipelineParams.model_fields.items()
)


Leaf = tuple[tuple[str, ...], Any]


def leaf_fields(section: BaseModel, prefix: tuple[str, ...]) -> list[Leaf]:
    """Every scalar field of a parsed section (nested sections included): path, annotation."""
    found: list[Leaf] = []
    for name, field in type(section).model_fields.items():
        key = (*prefix, field.alias or name)
        value = getattr(section, name)
        if isinstance(value, BaseModel):
            found.extend(leaf_fields(value, key))
        elif not isinstance(value, dict | tuple | list):
            found.append((key, field.annotation))
    return found


def candidates(value: Any, field_annotation: Any) -> list[Any]:
    """Values other than `value` that a field of this annotation may hold, by its type."""
    literals = [
        choice
        for arg in (field_annotation, *typing.get_args(field_annotation))
        if typing.get_origin(arg) is typing.Literal
        for choice in typing.get_args(arg)
    ]
    found: list[Any] = [choice for choice in literals if choice != value]
    if isinstance(value, bool):
        found.append(not value)
    elif isinstance(value, int):
        found.extend([value + 1, value - 1, value * 2])
    elif isinstance(value, float):
        found.extend([value * 1.5, value / 2, value + 1.0])
    elif isinstance(value, str):
        found.extend([f"{value}_changed", "CHANGED_ENV"])
    elif value is None:
        found.extend(["changed", 2, 0.5])
    return [c for c in found if c != value or type(c) is not type(value)]


def changed_params(raw: dict[str, Any], section: str, rng: random.Random) -> tuple[dict, str]:
    """`raw` with one field of `section` changed to another valid value, and its dotted path."""
    parsed = parse_params(raw)
    paths = leaf_fields(
        getattr(parsed, "validate_" if section == "validate" else section), (section,)
    )
    rng.shuffle(paths)
    full = parsed.model_dump(mode="json", by_alias=True)
    for path, annotation in paths:
        current: Any = full
        for part in path:
            current = current[part]
        options = candidates(current, annotation)
        rng.shuffle(options)
        for option in options:
            changed = json.loads(json.dumps(raw))
            target = changed.setdefault(path[0], {}) if len(path) > 1 else changed
            for part in path[1:-1]:
                target = target.setdefault(part, {})
            target[path[-1]] = option
            try:
                parse_params(changed)
            except ParamsError:
                continue
            return changed, ".".join(path)
    raise AssertionError(f"no field of '{section}' accepts another value")


@pytest.fixture
def trained_copy(trained_project: Path, tmp_path: Path) -> Path:
    """A git copy of the trained project, with its data and artifacts, so `dvc status` is clean."""
    copy = copy_project(tmp_path / "project", remote=tmp_path / "remote")
    for folder in ("data", "artifacts"):
        shutil.rmtree(copy / folder, ignore_errors=True)
        shutil.copytree(trained_project / folder, copy / folder)
    # Into the copy's own cache, as `dvc repro` would have left it; the lock must not change.
    run(["dvc", "commit", "--force", "--quiet"], copy)
    unchanged = run(["git", "diff", "--quiet", "--", "dvc.lock", "data.dvc"], copy, check=False)
    assert unchanged.returncode == 0, "the trained project's outputs differ from its dvc.lock"
    status = dvc_status(copy)
    assert status == {}, f"the trained copy should start clean, got {status}"
    return copy


def dvc_status(project: Path) -> dict[str, Any]:
    result = run(["dvc", "status", "--json"], project)
    return json.loads(result.stdout or "{}")


def test_operational_fields_and_their_code_leave_the_pipeline_clean(trained_copy, seed):
    # Given a trained copy, when a field of each of serve, deploy, gates, monitor and score changes
    # in params.yaml and the module reading each section is edited, then no stage is stale.
    rng = random.Random(seed)
    params_path = trained_copy / "params.yaml"
    raw = original = yaml.safe_load(params_path.read_text())
    assert set(OPERATIONAL) == {"serve", "deploy", "gates", "monitor", "score"}, OPERATIONAL
    changed_fields = []
    for section, module in sorted(OPERATIONAL.items()):
        raw, field = changed_params(raw, section, rng)
        changed_fields.append(field)
        with (trained_copy / module).open("a", encoding="utf-8") as handle:
            handle.write("# an edit of the code that reads this section\n")
    params_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    for section in OPERATIONAL:
        before, after = parse_params(original), parse_params(raw)
        assert getattr(before, section) != getattr(after, section), f"'{section}' did not change"
    status = dvc_status(trained_copy)
    assert status == {}, f"changing {changed_fields} and their modules made stages stale: {status}"


@pytest.mark.parametrize("section", [s for s in PIPELINE_SECTIONS if s != "seed"])
def test_a_pipeline_field_makes_its_stages_stale(trained_copy, seed, section):
    # Given a trained copy, when a field of a pipeline section changes, then `dvc status`
    # names every stage whose params list that section (the converse of the test above).
    raw = yaml.safe_load((trained_copy / "params.yaml").read_text())
    changed, field = changed_params(raw, section, random.Random(f"{seed}{section}"))
    (trained_copy / "params.yaml").write_text(yaml.safe_dump(changed, sort_keys=False))
    stages = yaml.safe_load((trained_copy / "dvc.yaml").read_text())["stages"]
    expected = {name for name, spec in stages.items() if section in spec.get("params", [])}
    assert expected, f"no stage depends on '{section}'"
    stale = set(dvc_status(trained_copy))
    assert expected <= stale, f"changing {field} should make {sorted(expected)} stale, got {stale}"


def test_an_edit_of_the_pipeline_params_code_makes_every_stage_stale(trained_copy):
    with (trained_copy / "src/mlgitops/config.py").open("a", encoding="utf-8") as handle:
        handle.write("# an edit of the pipeline's params code\n")
    stages = yaml.safe_load((trained_copy / "dvc.yaml").read_text())["stages"]
    stale = set(dvc_status(trained_copy))
    assert stale == set(stages), (
        f"config.py is every stage's dependency, but only {stale} are stale"
    )
