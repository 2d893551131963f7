"""The packaged pipeline's answers on validated rows: one code path for every consumer.

The service calls it on each request and batch scoring on each partition, so online and batch
answers cannot drift apart: the same classes in the same order, the same probabilities, the
same warnings for categories the model treats as unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlgitops.contract import ContractParams
from mlgitops.serving.schema import class_values


@dataclass(frozen=True)
class Outputs:
    """Per row: the prediction as the model holds it, and the class probabilities (or None)."""

    predictions: list[Any]
    probabilities: np.ndarray | None


@dataclass
class Predictor:
    """A fitted pipeline with its contract and (for classification) its classes."""

    pipeline: Any
    contract: ContractParams
    classes: np.ndarray | None
    # Class text (as the model and the prediction log hold it) -> the value as the data holds
    # it (what responses carry and /feedback accepts), and back.
    class_value: dict[Any, Any] = field(init=False)
    class_text: dict[Any, Any] = field(init=False)
    map_to_unknown: dict[str, frozenset[Any]] = field(init=False)

    @classmethod
    def of(cls, pipeline: Any, contract: ContractParams, classes: Sequence[str]) -> Predictor:
        """The predictor of `pipeline`; `classes` is empty for a regressor."""
        return cls(
            pipeline=pipeline,
            contract=contract,
            classes=np.asarray(classes, dtype=object) if classes else None,
        )

    def __post_init__(self) -> None:
        classes = self.classes.tolist() if self.classes is not None else []
        self.class_value = dict(zip(classes, class_values(self.contract, classes), strict=True))
        self.class_text = {value: text for text, value in self.class_value.items()}
        self.map_to_unknown = {
            name: frozenset(self.contract.columns[name].categories or ())
            for name in self.contract.features
            if self.contract.columns[name].categories
            and self.contract.columns[name].on_unknown == "map_to_unknown"
        }

    def outputs(self, frame: pd.DataFrame) -> Outputs:
        """The pipeline's predictions (the class with the highest probability) on `frame`."""
        if self.classes is None:
            return Outputs([float(v) for v in self.pipeline.predict(frame)], None)
        probabilities = self.pipeline.predict_proba(frame)
        return Outputs(self.classes[probabilities.argmax(axis=1)].tolist(), probabilities)

    def warnings(self, frame: pd.DataFrame) -> list[list[str]]:
        """Per row, the values the model treats as unknown categories."""
        warnings: list[list[str]] = [[] for _ in range(len(frame))]
        for name, known in self.map_to_unknown.items():
            column = frame[name]
            unknown = (column.notna() & ~column.isin(known)).to_numpy()
            for i in np.flatnonzero(unknown):
                warnings[i].append(
                    f"{name}: {column.iat[int(i)]!r} is not a known category; treated as unknown"
                )
        return warnings
