"""Request and response models derived from the data contract, and the model's input frame.

A record has one field per feature of the contract, under the column's own name, typed by its
`dtype` and bounded by its `min`/`max` and `categories`. Values are checked strictly (a number
sent as text is a wrong type, not something to guess at). Columns the contract knows but the
model does not use (identifiers, personal or free-text fields, the target) are accepted and
dropped before anything else sees them, so they never reach the model or a log line.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Annotated, Any, ClassVar, Literal

import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    create_model,
    model_validator,
)

from mlgitops.config import NUMERIC_DTYPES, ColumnSpec, ContractParams

MAX_CATEGORY_LENGTH = 200
# Label values of the rejection metric that are not feature names (bounded cardinality).
RECORDS_FIELD = "records"
UNKNOWN_FIELD = "unknown_field"

RejectionHook = Callable[[str, str], None]

_PANDAS_DTYPES = {"float": "float64", "int": "Int64", "bool": "boolean"}
_BOOL_TEXT = {"True": True, "False": False}


class RecordBase(BaseModel):
    """A record's common behaviour; `record_model` adds one field per feature."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        # Error messages (and the server's log of them) never echo what was sent.
        hide_input_in_errors=True,
        serialize_by_alias=True,
    )
    dropped_columns: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _drop_non_features(cls, data: Any) -> Any:
        if isinstance(data, dict) and cls.dropped_columns.intersection(data):
            return {k: v for k, v in data.items() if k not in cls.dropped_columns}
        return data

    def features(self) -> dict[str, Any]:
        """The record as the model's input row: feature name -> value."""
        return self.model_dump(by_alias=True)


def _annotation(spec: ColumnSpec) -> Any:
    annotation: Any
    if spec.dtype == "float":
        annotation = Annotated[
            float, Field(strict=True, ge=spec.min, le=spec.max, allow_inf_nan=False)
        ]
    elif spec.dtype == "int":
        annotation = Annotated[int, Field(strict=True, ge=spec.min, le=spec.max)]
    elif spec.dtype == "bool":
        annotation = Annotated[bool, Field(strict=True)]
    elif spec.on_unknown == "reject":
        annotation = Literal[tuple(spec.categories or ())]
    else:
        annotation = Annotated[str, StringConstraints(strict=True, max_length=MAX_CATEGORY_LENGTH)]
    return annotation | None if spec.nullable else annotation


def _describe(spec: ColumnSpec) -> str:
    parts = [spec.description.rstrip(".") + "." if spec.description else ""]
    if spec.categories and spec.on_unknown == "map_to_unknown":
        parts.append(
            f"Known values: {', '.join(spec.categories)}; any other text is accepted and "
            "treated as an unknown category."
        )
    if spec.nullable:
        parts.append("May be null or left out (the model imputes it).")
    return " ".join(part for part in parts if part)


def record_model(contract: ContractParams, *, example: dict[str, Any] | None = None) -> type:
    """The pydantic model of one request record, from the contract's feature columns."""
    base = type(
        "ContractRecord",
        (RecordBase,),
        {
            "__module__": __name__,
            "model_config": ConfigDict(
                **RecordBase.model_config,
                json_schema_extra={"example": example} if example else None,
            ),
            "dropped_columns": frozenset(set(contract.columns) - set(contract.features)),
        },
    )
    fields: dict[str, Any] = {}
    for index, name in enumerate(contract.features):
        spec = contract.columns[name]
        fields[f"feature_{index}"] = (
            _annotation(spec),
            Field(
                None if spec.nullable else ...,
                alias=name,
                title=name,
                description=_describe(spec) or None,
            ),
        )
    return create_model("Record", __base__=base, __module__=__name__, **fields)


def rejected_field(loc: tuple[int | str, ...], features: frozenset[str]) -> str:
    """Which field a validation error is about, relative to the list of records.

    Returns a feature name, `records` for the list itself (empty, too long, an item that is not
    an object) or `unknown_field` for a name the contract does not know.
    """
    names = [part for part in loc if isinstance(part, str)]
    if not names:
        return RECORDS_FIELD
    return names[-1] if names[-1] in features else UNKNOWN_FIELD


def _report_rejections(
    value: Any,
    handler: ValidatorFunctionWrapHandler,
    *,
    endpoint: str,
    features: frozenset[str],
    hook: RejectionHook,
) -> Any:
    try:
        return handler(value)
    except ValidationError as error:
        for field in {rejected_field(item["loc"], features) for item in error.errors()}:
            hook(endpoint, field)
        raise


def records_type(
    record: type,
    *,
    max_records: int,
    endpoint: str,
    hook: RejectionHook | None = None,
) -> Any:
    """The type of a request's `records` list: 1 to `max_records` records.

    `hook(endpoint, field)` is called once per rejected field of a request that fails.
    """
    features = frozenset(f.alias or name for name, f in record.model_fields.items())
    metadata: list[Any] = [
        Field(
            min_length=1,
            max_length=max_records,
            description=f"1 to {max_records} records, one per prediction.",
        )
    ]
    if hook is not None:
        metadata.append(
            WrapValidator(
                partial(_report_rejections, endpoint=endpoint, features=features, hook=hook)
            )
        )
    return Annotated[list[record], *metadata]  # type: ignore[valid-type]


def request_model(name: str, records: Any, *, example: dict[str, Any] | None = None) -> type:
    """The body of a request: `{"records": [...]}`, with errors that never echo the input."""
    return create_model(
        name,
        __config__=ConfigDict(
            extra="forbid",
            hide_input_in_errors=True,
            json_schema_extra={"example": {"records": [example]}} if example else None,
        ),
        records=(records, ...),
    )


def typed_frame(rows: list[dict[str, Any]], contract: ContractParams) -> pd.DataFrame:
    """Feature rows as the pipeline was trained on them: contract order and dtypes."""
    frame = pd.DataFrame.from_records(rows, columns=list(contract.features))
    for name in contract.features:
        dtype = contract.columns[name].dtype
        column = frame[name]
        if dtype in NUMERIC_DTYPES:
            column = pd.to_numeric(column)
        elif dtype == "bool":  # rows read back from CSV hold "True"/"False"
            column = column.map(lambda v: _BOOL_TEXT.get(v, v) if isinstance(v, str) else v)
        frame[name] = column.astype(_PANDAS_DTYPES.get(dtype, object))
    return frame


class Prediction(BaseModel):
    """The model's answer for one record."""

    request_id: str = Field(description="Unique id of this prediction, also in the log.")
    prediction: str | float = Field(description="Predicted class, or value for a regressor.")
    probabilities: dict[str, float] | None = Field(
        None, description="Probability of each class (classifiers only)."
    )
    model_version: str = Field(description="Version of the model in the BentoML model store.")
    warnings: list[str] = Field(
        default_factory=list, description="Values the model treated as unknown categories."
    )


class Contribution(BaseModel):
    """How much one original feature moved the output, in SHAP units."""

    feature: str
    value: float


class Explanation(BaseModel):
    """The top contributions behind one record's prediction."""

    request_id: str
    prediction: str | float
    explained_output: str | None = Field(
        description="The class whose probability is explained (classifiers), else null."
    )
    contributions: list[Contribution] = Field(
        description="Largest absolute contributions first, by original feature."
    )
    model_version: str
