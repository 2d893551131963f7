"""The import graph: core under the feature packages, no sideways imports, commands on top."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "mlgitops"
FEATURES = ("stages", "report", "serving", "deploy", "monitor", "infra", "scoring")
# The top layer: argument parsing and printing, free to import anything.
TOP = {"cli", "ci"}

# Sideways imports that are real dependencies, each with why.
ALLOWED_SIDEWAYS = {
    # Deploying is building, starting and checking the serving package: the bento, the model
    # it pins and the server's settings are serving's, and serving never imports deploy.
    ("deploy", "serving"): "deploy ships what serving defines",
    # Batch scoring answers with the service's own predictor, so batch and online cannot drift.
    ("scoring", "serving"): "batch scores with the service's prediction code",
}
# Single imports still to be removed by the split of the modules that hold them (issue 14,
# the command tree); each is listed so it cannot grow, and the test fails once it is gone.
PENDING: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    """One `mlgitops` import: the importing file (relative to the package) and the module."""

    source: str
    module: str

    @property
    def source_package(self) -> str | None:
        parts = Path(self.source).parts
        return parts[0] if len(parts) > 1 else None

    @property
    def target_package(self) -> str | None:
        parts = self.module.split(".")
        return parts[1] if len(parts) > 1 and parts[1] in FEATURES else None

    @property
    def target_is_top(self) -> bool:
        parts = self.module.split(".")
        return (len(parts) == 2 and parts[1] in TOP) or parts[-1] == "commands"


def layer(source: str) -> str:
    """`top`, `feature` or `core` for a file of the package."""
    path = Path(source)
    if (path.stem in TOP and len(path.parts) == 1) or path.name == "commands.py":
        return "top"
    return "feature" if len(path.parts) > 1 else "core"


def _module(base: str, name: str) -> str:
    """`base.name` when that is a module of the package, else `base` (a name imported from it)."""
    candidate = PACKAGE.parent.joinpath(*base.split("."), name)
    if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
        return f"{base}.{name}"
    return base


def mlgitops_imports() -> list[Import]:
    """Every import of an `mlgitops` module in the package, at any depth of the code."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                # `from mlgitops.deploy import record` imports the module `mlgitops.deploy.record`.
                modules = [_module(node.module, alias.name) for alias in node.names]
            else:
                continue
            found.extend(Import(source, m) for m in modules if m.split(".")[0] == "mlgitops")
    return found


IMPORTS = mlgitops_imports()


def test_the_graph_is_read():
    # Given the package, then its imports are found, the feature packages exist, and no
    # relative import hides an edge from this test.
    assert len(IMPORTS) > 50, f"only {len(IMPORTS)} mlgitops imports found"
    for package in FEATURES:
        assert (PACKAGE / package / "__init__.py").is_file(), f"{package}/ is not a package"
    relative = [
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and node.level
    ]
    assert not relative, f"relative imports (write them absolute): {relative}"


def test_core_imports_no_feature_package():
    # The core sits under the services. One composition is allowed: `params.py` builds the
    # whole-file model from each owner's `settings.py` (pydantic sections, importing only core).
    upward = [
        f"{i.source} -> {i.module}"
        for i in IMPORTS
        if layer(i.source) == "core"
        and (i.target_package or i.target_is_top)
        and not (i.source == "params.py" and i.module.endswith(".settings"))
    ]
    assert not upward, f"core modules import feature packages or commands: {upward}"


SETTINGS = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.glob("*/settings.py"))


def test_each_operational_owner_has_its_settings():
    # The stages read only the pipeline's params (config.py); every other feature package
    # owns a section of params.yaml, but infra: its settings are the CloudFormation stack's
    # parameters (deploy/aws/).
    expected = [
        f"{package}/settings.py"
        for package in sorted(FEATURES)
        if package not in {"stages", "infra"}
    ]
    assert expected == SETTINGS, f"settings modules: {SETTINGS}"


@pytest.mark.parametrize("settings", SETTINGS)
def test_settings_import_only_the_core(settings):
    above = [i.module for i in IMPORTS if i.source == settings and i.target_package]
    assert not above, f"{settings} must import only core modules (params.py reads it): {above}"


def test_no_sideways_imports_between_feature_packages():
    sideways = {
        (i.source, i.module)
        for i in IMPORTS
        if layer(i.source) == "feature"
        and i.target_package
        and i.target_package != i.source_package
        and (i.source_package, i.target_package) not in ALLOWED_SIDEWAYS
    }
    unexpected = sorted(sideways - set(PENDING))
    assert not unexpected, f"sideways imports between feature packages: {unexpected}"


def test_nothing_below_the_top_imports_a_command_module():
    upward = {(i.source, i.module) for i in IMPORTS if layer(i.source) != "top" and i.target_is_top}
    unexpected = sorted(upward - set(PENDING))
    assert not unexpected, f"library modules import command modules: {unexpected}"


def test_every_pending_exception_is_still_needed():
    # An exception whose import is gone is deleted, so the list only shrinks.
    present = {(i.source, i.module) for i in IMPORTS}
    stale = sorted(set(PENDING) - present)
    assert not stale, f"remove these from PENDING, the imports are gone: {stale}"
