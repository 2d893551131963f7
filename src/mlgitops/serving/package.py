"""`mlgitops package`: the trained pipeline into the BentoML model store, with its provenance.

The stored model is the byte-exact file that DVC recorded in `dvc.lock`, labelled with the git
commit, the model and data md5s, a params hash and the headline metrics. Its metadata carries
the data contract and the `serve` params, so the service derives its request schema and limits
from the model it serves rather than from whatever `params.yaml` is next to it.

With a key in the environment variable `serve.model_key_env`, the model is stored encrypted
(`model.joblib.enc`, see `encryption.py`) and no plaintext copy of it enters the store.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from mlgitops import layout
from mlgitops.contract.check import feature_frame, load_valid_table
from mlgitops.layout import LayoutError, data_md5, locked_md5, read_yaml
from mlgitops.metrics import METRICS_BY_TASK
from mlgitops.params import Params, parse_params
from mlgitops.serving.encryption import (
    ALGORITHM,
    ModelKeyError,
    encrypt_model,
    model_key,
)

logger = logging.getLogger(__name__)

MODEL_NAME = "mlgitops-pipeline"  # in the BentoML model store
# The name a bento gives its model (bentofile `models:` alias): BentoML resolves it, in every
# process that loads the bento, to the exact tag recorded in the bento's manifest.
MODEL_ALIAS = "mlgitops-packaged-model"
# The model to serve from source (`mlgitops serve` sets it to the one dvc.lock pins), e.g.
# `mlgitops-pipeline:<version>`. A bento ignores it: it serves the model its manifest pins.
MODEL_TAG_ENV = "MLGITOPS_MODEL_TAG"
# The md5 of the model a server must serve, set by the deploy targets: a server whose model
# differs refuses to start, so it never becomes ready and never takes traffic.
EXPECTED_MODEL_MD5_ENV = "MLGITOPS_EXPECTED_MODEL_MD5"
# The model store versions are the md5's first characters (one entry per distinct model).
TAG_VERSION_CHARS = 16
MODEL_FILE = "model.joblib"
ENCRYPTED_MODEL_FILE = "model.joblib.enc"
# Metadata key recording how the stored model file is encrypted: ALGORITHM, or "none".
ENCRYPTION_METADATA = "model_encryption"
BACKGROUND_FILE = "background.csv"


class PackageError(RuntimeError):
    """The workspace cannot be packaged: an input is missing or differs from `dvc.lock`."""


@dataclass(frozen=True)
class Paths:
    """Where `package` reads its inputs, relative to the project root."""

    params: Path = Path(layout.PARAMS_PATH)
    model: Path = Path(layout.MODEL_PATH)
    train: Path = Path(layout.TRAIN_PATH)
    test: Path = Path(layout.TEST_PATH)
    metrics: Path = Path(layout.METRICS_PATH)
    lock: Path = Path(layout.DVC_LOCK_PATH)
    data_dvc: Path = Path(layout.DATA_POINTER)


@dataclass(frozen=True)
class Provenance:
    """What identifies a packaged model: code, model, data and params."""

    git_commit: str
    git_dirty: bool
    model_md5: str
    data_md5: str
    params_sha256: str


def bytes_md5(data: bytes) -> str:
    """The md5 of bytes in memory, as DVC records it for a file holding them."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def file_md5(path: Path) -> str:
    """The md5 of a file's bytes, as DVC records it for a single-file output."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_tag(model_md5: str) -> str:
    """The model store tag `package` gives the model whose file has md5 `model_md5`."""
    return f"{MODEL_NAME}:{model_md5[:TAG_VERSION_CHARS]}"


def workspace_model_tag(repo: Path, paths: Paths | None = None) -> str:
    """The model store tag of the model `dvc.lock` pins in `repo` (what `package` stores).

    Raises:
        PackageError: when `dvc.lock` is missing or pins no model.
    """
    paths = paths or Paths()
    return model_tag(_locked_model_md5(repo, paths))


def served_model_tag(aliases: Mapping[str, str], environ: Mapping[str, str]) -> str | None:
    """Which model store entry a server process serves; None when nothing names one.

    Inside a bento, the tag its manifest pins: BentoML sets the bento's model aliases
    (`models:` of bento.yaml) before importing the service, in the server, in every worker it
    (re)starts, and while building. Otherwise the tag in `MLGITOPS_MODEL_TAG`, which
    `mlgitops serve` sets to the model dvc.lock pins. Never "the newest entry": that is
    whichever model was packaged last, on this machine, by any checkout.

    Args:
        aliases: BentoML's model aliases in this process.
        environ: the process's environment.
    """
    chosen = environ.get(MODEL_TAG_ENV, "").strip()
    pinned = aliases.get(MODEL_ALIAS)
    if pinned:
        if chosen and chosen != pinned:
            logger.warning(
                "%s names %s, but this bento pins %s: serving the bento's model",
                MODEL_TAG_ENV,
                chosen,
                pinned,
            )
        return pinned
    return chosen or None


def params_sha256(raw: dict[str, Any]) -> str:
    """A hash of the params content, independent of key order, comments and layout."""
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def git_state(repo: Path) -> tuple[str, bool]:
    """The commit checked out in `repo` and whether tracked files differ from it.

    Returns ("unknown", True) outside a git repository, so a package is never mistaken for a
    clean build of some commit.
    """
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=False
    )
    if head.returncode != 0:
        return "unknown", True
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    return head.stdout.strip(), bool(status.stdout.strip()) or status.returncode != 0


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        return read_yaml(path)
    except LayoutError as error:
        raise PackageError(str(error)) from None


def _data_md5(repo: Path, paths: Paths) -> str:
    try:
        return data_md5(read_yaml(repo / paths.data_dvc))
    except LayoutError as error:
        raise PackageError(str(error)) from None


def _locked_model_md5(repo: Path, paths: Paths) -> str:
    try:
        return locked_md5(read_yaml(repo / paths.lock), paths.model)
    except LayoutError as error:
        raise PackageError(str(error)) from None


def _json_ready(value: Any) -> Any:
    """Plain Python values for JSON: numpy scalars unwrapped, NaN and NA as None."""
    if hasattr(value, "item"):
        value = value.item()
    if value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def without_none(value: Any) -> Any:
    """`value` with every None (and every mapping entry holding one) left out, recursively."""
    if isinstance(value, dict):
        return {k: without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [without_none(v) for v in value if v is not None]
    return value


def example_record(frame: pd.DataFrame, params: Params) -> dict[str, Any]:
    """One real row's features for the API docs and tests: the first with no missing value."""
    features = feature_frame(frame, params.contract)
    complete = features.dropna()
    row = (complete if len(complete) else features).iloc[0]
    return {name: _json_ready(row[name]) for name in features.columns}


def headline_metrics(metrics: dict[str, Any], params: Params) -> dict[str, float]:
    """The metrics of `metrics.json` named by the task, headline ones first."""
    names = [
        *params.evaluate.headline,
        *(k for k in metrics if k not in params.evaluate.headline),
    ]
    known = METRICS_BY_TASK[params.contract.task]
    return {
        name: float(metrics[name])
        for name in names
        if name in known and isinstance(metrics.get(name), int | float)
    }


def labels_for(provenance: Provenance, metrics: dict[str, float], params: Params) -> dict[str, str]:
    """BentoML model labels (strings only): provenance and the headline metrics."""
    labels = {
        "git_commit": provenance.git_commit,
        "git_dirty": str(provenance.git_dirty).lower(),
        "model_md5": provenance.model_md5,
        "data_md5": provenance.data_md5,
        "params_sha256": provenance.params_sha256,
        "task": params.contract.task,
        "estimator": params.train.estimator.name,
    }
    for name in params.evaluate.headline:
        if name in metrics:
            labels[name] = f"{metrics[name]:.6g}"
    return labels


def collect(repo: Path, paths: Paths = Paths()) -> tuple[Params, dict[str, Any], Provenance]:
    """Read and cross-check everything `package` needs from the workspace.

    Returns:
        The typed params, the raw params mapping and the model's provenance.

    Raises:
        PackageError: when an input is missing, or the model file differs from `dvc.lock`.
    """
    raw = _read_yaml(repo / paths.params)
    params = parse_params(raw, source=str(paths.params))
    model_path = repo / paths.model
    if not model_path.exists():
        raise PackageError(f"{paths.model} does not exist; run `make repro` first")
    recorded = _locked_model_md5(repo, paths)
    actual = file_md5(model_path)
    if actual != recorded:
        # What was reviewed is what is deployed: refuse a model that dvc.lock does not describe.
        raise PackageError(
            f"{paths.model} (md5 {actual}) differs from dvc.lock (md5 {recorded}); "
            "run `dvc repro` (or `dvc checkout`) so the workspace matches the lock file"
        )
    commit, dirty = git_state(repo)
    provenance = Provenance(
        git_commit=commit,
        git_dirty=dirty,
        model_md5=actual,
        data_md5=_data_md5(repo, paths),
        params_sha256=params_sha256(raw),
    )
    return params, raw, provenance


def package(repo: Path, paths: Paths = Paths(), *, now: datetime | None = None) -> Any:
    """Save the workspace's trained pipeline into the BentoML model store.

    The tag's version is the first characters of the model md5 (`model_tag`), so packaging the same
    model twice replaces the entry (with fresh provenance) instead of piling up copies.

    Returns:
        The stored `bentoml.Model`.
    """
    import bentoml
    import sklearn

    params, _, provenance = collect(repo, paths)
    key_env = params.serve.model_key_env
    try:
        key = model_key(key_env)
    except ModelKeyError as error:
        raise PackageError(str(error)) from None
    metrics_path = repo / paths.metrics
    if not metrics_path.exists():
        raise PackageError(f"{paths.metrics} does not exist; run `make repro` first")
    metrics = headline_metrics(json.loads(metrics_path.read_text(encoding="utf-8")), params)
    test = load_valid_table(repo / paths.test, params.contract)
    train = load_valid_table(repo / paths.train, params.contract)
    background = feature_frame(train, params.contract).sample(
        n=min(params.explain.background_rows, len(train)), random_state=params.seed
    )
    pipeline = joblib.load(repo / paths.model)
    classes = [str(c) for c in getattr(pipeline, "classes_", [])]
    packaged_at = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    # BentoML metadata holds no nulls: unset contract keys fall back to their defaults when
    # the service reads them, and params travel as the exact text that was reviewed.
    metadata = without_none(
        {
            "contract": params.contract.model_dump(mode="json"),
            "serve": params.serve.model_dump(mode="json"),
            "classes": classes,
            "example": example_record(test, params),
            "metrics": metrics,
            "params_yaml": (repo / paths.params).read_text(encoding="utf-8"),
            "seed": params.seed,
            "packaged_at": packaged_at,
            ENCRYPTION_METADATA: ALGORITHM if key else "none",
        }
    )
    tag = model_tag(provenance.model_md5)
    try:
        bentoml.models.delete(tag)
        logger.info("replacing %s in the model store", tag)
    except bentoml.exceptions.NotFound:
        pass
    with bentoml.models.create(
        tag,
        module=__name__,
        labels=labels_for(provenance, metrics, params),
        metadata=metadata,
        context=bentoml.models.ModelContext(
            framework_name="sklearn", framework_versions={"scikit-learn": sklearn.__version__}
        ),
    ) as model:
        model_bytes = (repo / paths.model).read_bytes()
        if key:
            encrypted = encrypt_model(model_bytes, key, model_md5=provenance.model_md5)
            Path(model.path_of(ENCRYPTED_MODEL_FILE)).write_bytes(encrypted)
        else:
            Path(model.path_of(MODEL_FILE)).write_bytes(model_bytes)
        background.to_csv(model.path_of(BACKGROUND_FILE), index=False, lineterminator="\n")
    logger.info(
        "packaged %s (commit %s%s, model md5 %s, data md5 %s) into %s, %s",
        model.tag,
        provenance.git_commit[:12],
        ", uncommitted changes" if provenance.git_dirty else "",
        provenance.model_md5,
        provenance.data_md5,
        bentoml.models.get(model.tag).path,
        f"encrypted with {ALGORITHM} (key from {key_env})"
        if key
        else f"not encrypted ({key_env} is not set)",
    )
    return bentoml.models.get(model.tag)
