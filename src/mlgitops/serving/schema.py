"""Request and response models derived from the data contract, and the model's input frame.

A record has one field per feature of the contract, under the column's own name, typed by its
`dtype` and bounded by its `min`/`max` and `categories`. Values are checked strictly (a number
sent as text is a wrong type, not something to guess at). Columns the contract knows but the
model does not use (identifiers, personal or free-text fields, the target) are accepted, so
whole rows of the table can be sent, and left out of every dump: they never reach the model or
a log line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, ClassVar, Literal

import pandas as pd
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
    create_model,
)

from mlgitops.contract import NUMERIC_DTYPES, ColumnSpec, ContractParams

MAX_CATEGORY_LENGTH = 200
# Label values of the rejection metric that are not feature names (bounded cardinality).
RECORDS_FIELD = "records"
UNKNOWN_FIELD = "unknown_field"

RejectionHook = Callable[[str, str], None]

_PANDAS_DTYPES: dict[str, str] = {"float": "float64", "int": "Int64", "bool": "boolean"}
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
    # The contract's other columns are accepted so whole rows of the table can be sent, and
    # left out of every dump: they never reach the model or a log line. (Fields rather than
    # a "before" validator dropping them: that would make pydantic build Python objects
    # from the JSON of every record, 7x slower on a 1,000-record request.)
    ignored = [name for name in contract.columns if name not in contract.features]
    for index, name in enumerate(ignored):
        fields[f"ignored_{index}"] = (
            Any,
            Field(
                None,
                alias=name,
                title=name,
                exclude=True,
                description=f"A {contract.columns[name].role} column of the contract: accepted "
                "and ignored; it never reaches the model or a log.",
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


class RequestBase(BaseModel):
    """A request body, `{"records": [...]}`, that reports the fields of every refusal."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    endpoint: ClassVar[str] = ""
    feature_names: ClassVar[frozenset[str]] = frozenset()
    on_rejection: ClassVar[RejectionHook | None] = None

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> Any:
        """Validate a JSON body; a rejection calls the hook once per rejected field."""
        # The hook sits here, around the whole body, rather than in a validator of the list:
        # a Python validator would make pydantic build Python objects from the JSON first.
        try:
            return super().model_validate_json(json_data, **kwargs)
        except ValidationError as error:
            if cls.on_rejection is not None:
                for field in {
                    request_field(item["loc"], cls.feature_names) for item in error.errors()
                }:
                    cls.on_rejection(cls.endpoint, field)
            raise


def request_field(loc: tuple[int | str, ...], features: frozenset[str]) -> str:
    """Which field an error of a request body is about (see `rejected_field`)."""
    if loc and loc[0] != RECORDS_FIELD:
        return UNKNOWN_FIELD  # a top-level key other than `records`
    return rejected_field(tuple(loc[1:]), features)


def request_model(
    name: str,
    record: type[BaseModel],
    *,
    max_records: int,
    example: dict[str, Any] | None = None,
    endpoint: str = "",
    hook: RejectionHook | None = None,
) -> type:
    """The body of a request: `{"records": [...]}` with 1 to `max_records` records.

    Errors never echo the input; `hook(endpoint, field)` is called once per rejected field
    of a body that fails.
    """
    base = type(
        f"{name}Base",
        (RequestBase,),
        {
            "__module__": __name__,
            "model_config": ConfigDict(
                **RequestBase.model_config,
                json_schema_extra={"example": {"records": [example]}} if example else None,
            ),
            "endpoint": endpoint,
            "feature_names": frozenset(
                field.alias or attribute
                for attribute, field in record.model_fields.items()
                if not field.exclude
            ),
            "on_rejection": staticmethod(hook) if hook is not None else None,
        },
    )
    records = Annotated[
        list[record],  # type: ignore[valid-type]
        Field(
            min_length=1,
            max_length=max_records,
            description=f"1 to {max_records} records, one per prediction.",
        ),
    ]
    return create_model(name, __base__=base, __module__=__name__, records=(records, ...))


def typed_frame(rows: list[dict[str, Any]], contract: ContractParams) -> pd.DataFrame:
    """Feature rows as the pipeline was trained on them: contract order and dtypes."""
    frame = pd.DataFrame.from_records(rows, columns=list(contract.features))
    for name in contract.features:
        dtype = contract.columns[name].dtype
        column: pd.Series = frame[name]
        if dtype in NUMERIC_DTYPES:
            column = pd.to_numeric(column)
        elif dtype == "bool":  # rows read back from CSV hold "True"/"False"
            column = column.map(lambda v: _BOOL_TEXT.get(v, v) if isinstance(v, str) else v)
        frame[name] = column.astype(pd.api.types.pandas_dtype(_PANDAS_DTYPES.get(dtype, "object")))
    return frame


def records_frame(records: Sequence[RecordBase], contract: ContractParams) -> pd.DataFrame:
    """Validated records as the pipeline's input frame: contract order and dtypes.

    The values are already typed by the record model, so each column is built in one go
    (`typed_frame` parses text, as rows read back from CSV need).
    """
    attributes = {
        field.alias or attribute: attribute
        for attribute, field in (type(records[0]).model_fields.items() if records else ())
    }
    return pd.DataFrame(
        {
            name: pd.Series(
                [getattr(record, attributes[name]) for record in records],
                dtype=_PANDAS_DTYPES.get(contract.columns[name].dtype, object),
            )
            for name in contract.features
        },
        columns=list(contract.features),
    )


def class_values(contract: ContractParams, classes: Sequence[str]) -> tuple[Any, ...]:
    """The model's classes (stored as text) as the target column holds them in the data.

    An `int` target's classes are ints, a `bool` target's are booleans, a `category`
    target's are its text (numeric-looking text such as "01" stays text).
    """
    dtype = contract.columns[contract.target].dtype
    if dtype == "int":
        return tuple(int(text) for text in classes)
    if dtype == "bool":
        return tuple(_BOOL_TEXT[text] for text in classes)
    return tuple(classes)


def label_annotation(contract: ContractParams, classes: Sequence[str]) -> Any:
    """The type of a target value in requests and responses.

    For a classifier, one of the classes, typed as in the data; for a regressor, a finite
    number.
    """
    if contract.task == "regression":
        return Annotated[float, Field(strict=True, allow_inf_nan=False)]
    values = class_values(contract, classes)
    allowed = frozenset(values)

    def one_of_the_classes(value: Any) -> Any:
        if value not in allowed:
            raise ValueError(f"must be one of the model's classes {list(values)}")
        return value

    # A strict type and a membership check rather than a `Literal`: pydantic matches JSON
    # `true` and `1.0` to the literal `1`, and `0` to `False`.
    kind = {"int": int, "bool": bool}.get(contract.columns[contract.target].dtype, str)
    return Annotated[
        kind,
        Strict(),
        AfterValidator(one_of_the_classes),
        Field(json_schema_extra={"enum": list(values)}),
    ]


class FeedbackBase(BaseModel):
    """The body of `POST /feedback`; `feedback_model` types its `label` from the contract."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


def feedback_model(contract: ContractParams, classes: Sequence[str]) -> type:
    """The body of `POST /feedback`: a prediction id and the true label, typed by the target."""
    described = (
        f"The true class, one of {list(class_values(contract, classes))} (as in the "
        f"'{contract.target}' column)"
        if contract.task == "classification"
        else f"The true value of '{contract.target}'"
    )
    return create_model(
        "Feedback",
        __base__=FeedbackBase,
        __module__=__name__,
        __doc__="Ground truth for one earlier prediction.",
        prediction_id=(
            str,
            Field(pattern=r"^[0-9a-f]{32}$", description="The `request_id` /predict returned."),
        ),
        label=(label_annotation(contract, classes), Field(description=described + ".")),
    )


def response_models(contract: ContractParams, classes: Sequence[str]) -> tuple[type, type]:
    """`Prediction` and `Explanation` with their labels typed as the contract's target."""
    label = label_annotation(contract, classes)
    predicted = (label, Field(description="Predicted class, or value for a regressor."))
    prediction = create_model(
        "Prediction",
        __base__=Prediction,
        __module__=__name__,
        __doc__=Prediction.__doc__,
        prediction=predicted,
    )
    explained = Explanation.model_fields["explained_output"].description
    explanation = create_model(
        "Explanation",
        __base__=Explanation,
        __module__=__name__,
        __doc__=Explanation.__doc__,
        prediction=predicted,
        # The explained class is one of the classes too, typed as `prediction` is.
        explained_output=(
            label | None if contract.task == "classification" else None,
            Field(description=explained),
        ),
    )
    return prediction, explanation


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


class Metadata(BaseModel):
    """What `GET /metadata` answers: the code, model, data and params that are deployed."""

    model_config = ConfigDict(extra="forbid")

    service: str = Field(description="The BentoML service name.")
    git_commit: str | None = Field(description="The commit the model was packaged from.")
    git_dirty: bool = Field(description="Whether that workspace had uncommitted changes.")
    model_md5: str | None = Field(description="The model file's md5, as in dvc.lock.")
    data_md5: str | None = Field(description="The raw data's md5, as in data.dvc.")
    params_sha256: str | None = Field(description="SHA-256 of the packaged params.")
    model_tag: str = Field(description="The model's tag in the BentoML model store.")
    model_version: str = Field(description="The version part of that tag.")
    bento_tag: str | None = Field(description="The bento served; null when served from source.")
    build_time: str | None = Field(description="When the bento was built (else packaged).")
    packaged_at: str | None = Field(description="When `mlgitops package` stored the model.")
    metrics: dict[str, float] = Field(description="The headline metrics, by name.")
    params: dict[str, Any] = Field(description="The params.yaml the model was trained with.")


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


class FeedbackReceipt(BaseModel):
    """What /feedback recorded."""

    prediction_id: str
    recorded_at: str
