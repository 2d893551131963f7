"""Features derived inside the model pipeline, so training and serving compute them alike."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from mlgitops.sections import ParamsError


class FeatureError(ParamsError):
    """A derived feature's expression (in `train.derived_features`) cannot be computed.

    A params error, so every stage ends on it with the message and no traceback.
    """


class DerivedFeatures(TransformerMixin, BaseEstimator):
    """Append columns computed from pandas expressions over the input columns.

    Args:
        expressions: new column name -> pandas expression, e.g.
            ``{"Culmen Ratio": "`Culmen Length (mm)` / `Culmen Depth (mm)`"}``.
    """

    def __init__(self, expressions: dict[str, str] | None = None):
        """Store the expressions (scikit-learn's convention: `__init__` only stores)."""
        self.expressions = expressions

    def fit(self, X: pd.DataFrame, y: object = None) -> DerivedFeatures:
        """Record the input columns and check every expression on the first row."""
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        # Fail at fit time, with the expression's name, rather than at the first prediction.
        self.transform(X.head(1))
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The input with one numeric column appended per expression.

        Raises:
            FeatureError: naming the expression that cannot be computed.
        """
        X = X.copy()
        for name, expression in (self.expressions or {}).items():
            try:
                values = X.eval(expression, engine="python")
            except Exception as error:  # pandas raises many types for a bad expression
                raise FeatureError(
                    f"derived feature '{name}' = {expression!r} cannot be computed: {error}"
                ) from error
            numbers = pd.to_numeric(pd.Series(values, index=X.index), errors="coerce")
            X[name] = numbers.replace([np.inf, -np.inf], np.nan)
        return X

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """The input columns, then the derived ones."""
        return np.asarray([*self.feature_names_in_, *(self.expressions or {})], dtype=object)


def as_float(X: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns as float64, nullable integers included (missing becomes NaN)."""
    return X.astype("float64")


def as_text(X: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns as plain text, missing values as NaN, so one encoder fits all."""
    return X.astype("string").astype(object).where(X.notna(), np.nan)
