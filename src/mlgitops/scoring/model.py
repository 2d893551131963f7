"""The model batch scoring uses: the file `dvc.lock` pins, refused when its md5 differs."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import joblib

from mlgitops import layout
from mlgitops.contract import ContractParams
from mlgitops.serving.package import file_md5
from mlgitops.serving.predictor import Predictor

logger = logging.getLogger(__name__)


class ScoringError(ValueError):
    """Batch scoring cannot start or finish: a bad input, output, model or scheduler."""


@dataclass(frozen=True)
class PinnedModel:
    """The service's predictor over the pinned pipeline, and that pipeline file's md5."""

    predictor: Predictor
    md5: str


def load_pinned_model(
    repo: Path, contract: ContractParams, *, model: Path | None = None
) -> PinnedModel:
    """Load the model `dvc.lock` in `repo` pins, from `model` (default: the pipeline's output).

    Raises:
        ScoringError: when `dvc.lock` pins no model, the file is missing, or its md5 differs
            from the pinned one (what was reviewed is what scores).
    """
    path = model if model is not None else repo / layout.MODEL_PATH
    try:
        pinned = layout.locked_md5(layout.read_yaml(repo / layout.DVC_LOCK_PATH), layout.MODEL_PATH)
    except layout.LayoutError as error:
        raise ScoringError(str(error)) from None
    if not path.is_file():
        raise ScoringError(
            f"{path} does not exist; get the pinned model with `dvc pull {layout.MODEL_PATH}`"
        )
    actual = file_md5(path)
    if actual != pinned:
        raise ScoringError(
            f"{path} has md5 {actual}, but dvc.lock pins {pinned} for {layout.MODEL_PATH}; "
            "score with the reviewed model (`dvc pull` or `dvc checkout` it)"
        )
    pipeline = joblib.load(path)
    classes = [str(c) for c in getattr(pipeline, "classes_", [])]
    if bool(classes) != (contract.task == "classification"):
        raise ScoringError(
            f"the contract's task is {contract.task}, but {path} "
            f"{'has' if classes else 'has no'} classes"
        )
    logger.info("model %s (md5 %s, as dvc.lock pins)", path, actual)
    return PinnedModel(Predictor.of(pipeline, contract, classes), actual)
