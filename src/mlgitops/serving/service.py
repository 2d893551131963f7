"""The BentoML service: predictions, explanations and provenance of the packaged pipeline.

Everything the service knows comes from the model entry `mlgitops package` wrote: the exact
`model.joblib` DVC recorded, the data contract (from which the request schema is derived), the
`serve` params (limits, batching, workers) and the provenance `/metadata` reports.

Routes: `POST /predict`, `POST /explain`, `POST /feedback`, `GET /metadata`, and BentoML's
`/livez`, `/readyz` and `/metrics`. Every route but the probes and `/metrics` needs an API key.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import sqlite3
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import bentoml
import joblib
import numpy as np
import pandas as pd
import prometheus_client
from bentoml.validators import ContentType
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mlgitops.explain import shap_by_feature
from mlgitops.layout import PREDICTION_LOG_DIR
from mlgitops.prediction_log import (
    PREDICTIONS_FOLDER,
    PredictionLogMonitor,
    append_feedback,
    feedback_path,
    log_columns,
)
from mlgitops.prediction_store import PredictionStore
from mlgitops.serving.connections import bound_header_time
from mlgitops.serving.guards import (
    ApiKeyAuth,
    KnownPathsOnly,
    RequestGuard,
    error_payload,
    quiet_client_errors,
)
from mlgitops.serving.openapi import ConformingResponses
from mlgitops.serving.package import (
    BACKGROUND_FILE,
    EXPECTED_MODEL_MD5_ENV,
    MODEL_TAG_ENV,
    served_model_tag,
)
from mlgitops.serving.predictor import Predictor
from mlgitops.serving.schema import (
    Contribution,
    FeedbackReceipt,
    feedback_model,
    record_model,
    records_frame,
    request_model,
    response_models,
    typed_frame,
)
from mlgitops.serving.store import (
    SERVICE_NAME,
    ModelNotPackaged,
    find_packaged_model,
    read_model,
)

logger = logging.getLogger(__name__)

# Where `bentoml.monitor` writes the prediction log (JSON lines), relative to the working dir.
PREDICTION_LOG_ENV = "MLGITOPS_PREDICTION_LOG_DIR"

T = TypeVar("T")
# A list response declared as JSON up front: without it BentoML derives the media type from
# the response's JSON schema, generated anew for every response (40% of a one-record request
# in a profile).
JsonResponse = Annotated[T, ContentType("application/json")]


def _served_tag() -> str:
    from bentoml._internal.configuration.containers import BentoMLContainer

    # BentoML sets a bento's model aliases before it imports the service.
    tag = served_model_tag(BentoMLContainer.model_aliases.get(), os.environ)
    if tag is None:
        raise ModelNotPackaged(
            "no model chosen to serve: serve a bento (`make bento` pins its model), or serve "
            "from the project with `mlgitops serve` / `make serve` (the model dvc.lock pins), "
            f"or set {MODEL_TAG_ENV}=mlgitops-pipeline:<version>"
        )
    return tag


PACKAGED = find_packaged_model(_served_tag())
MODEL_MD5 = PACKAGED.labels["model_md5"]
# A deploy target names the model it released; a server holding another never gets ready.
EXPECTED_MD5 = os.environ.get(EXPECTED_MODEL_MD5_ENV, "").strip()
if EXPECTED_MD5 and EXPECTED_MD5 != MODEL_MD5:
    raise ModelNotPackaged(
        f"{PACKAGED.tag} holds model {MODEL_MD5}, but this release must serve {EXPECTED_MD5} "
        f"({EXPECTED_MODEL_MD5_ENV}): build the release's bento from its own dvc.lock"
    )
# Checked (an encrypted model decrypted in memory) at import, in the process `bentoml serve`
# starts, so a tampered model or a wrong or missing key stops the server with a non-zero exit
# instead of a worker that BentoML restarts forever.
read_model(
    PACKAGED.path, PACKAGED.metadata, expected_md5=MODEL_MD5, key_env=PACKAGED.serve.model_key_env
)
SERVE = PACKAGED.serve

# prometheus_client directly (BentoML's own wrapper is deprecated); BentoML sets up the
# multiprocess directory before a worker imports this module, so /metrics aggregates workers.
PREDICTIONS = prometheus_client.Counter(
    name="mlgitops_predictions",
    documentation="Predictions served, by predicted class ('value' for a regressor)",
    labelnames=["predicted_class"],
)
MODEL_INFO = prometheus_client.Gauge(
    name="mlgitops_model_info",
    documentation="The model being served (always 1), labelled with its provenance",
    labelnames=["git_commit", "model_md5", "data_md5", "model_version"],
    multiprocess_mode="max",
)
REJECTIONS = prometheus_client.Counter(
    name="mlgitops_validation_rejections",
    documentation="Requests refused as bad input, by endpoint and field",
    labelnames=["endpoint", "field"],
)
UNAUTHORIZED = prometheus_client.Counter(
    name="mlgitops_unauthorized_requests",
    documentation="Requests refused with 401 for a missing or invalid API key",
)
UNKNOWN_PATHS = prometheus_client.Counter(
    name="mlgitops_unknown_path_requests",
    documentation="Requests to a path no route serves (answered 404; the path is not kept)",
)


def count_rejection(endpoint: str, field: str) -> None:
    """Count one refused field of one request."""
    REJECTIONS.labels(endpoint=endpoint.strip("/") or "/", field=field).inc()


EXAMPLE = PACKAGED.metadata.get("example")
if TYPE_CHECKING:
    # Built at import from the packaged contract; to the type checker they are pydantic models.
    from pydantic import BaseModel as Explanation
    from pydantic import BaseModel as Feedback
    from pydantic import BaseModel as Prediction
    from pydantic import BaseModel as Record
else:
    Record = record_model(PACKAGED.contract, example=EXAMPLE)
PredictRequest = request_model(
    "PredictRequest",
    Record,
    max_records=SERVE.max_records,
    example=EXAMPLE,
    endpoint="predict",
    hook=count_rejection,
)
ExplainRequest = request_model(
    "ExplainRequest",
    Record,
    max_records=SERVE.max_explain_records,
    example=EXAMPLE,
    endpoint="explain",
    hook=count_rejection,
)


if not TYPE_CHECKING:
    # The target's values as the data holds them (ints, booleans, text), in requests and
    # responses.
    Feedback = feedback_model(PACKAGED.contract, PACKAGED.classes)
    Prediction, Explanation = response_models(PACKAGED.contract, PACKAGED.classes)


# The names an error's `loc` may show: anything else in one came from the client.
KNOWN_NAMES = frozenset(
    {
        *("body", "records", "path", "header", "Authorization", "Content-Type"),
        *PACKAGED.contract.columns,
        *Feedback.model_fields,
    }
)
# BentoML logs each client error at ERROR with a traceback: one WARNING line instead.
quiet_client_errors()
# uvicorn waits for request headers as long as a client trickles them: bound that time.
bound_header_time(SERVE.header_timeout_s)


class GuardedService(bentoml.Service):
    """A BentoML service whose app checks the API key, then answers unknown paths itself."""

    def to_asgi(self, is_main: bool = True) -> Any:
        """The ASGI app behind the guards, outermost first (see the comment below)."""
        app = super().to_asgi(is_main=is_main)
        # Outermost first: the API key, then unknown paths (so only a caller with a key learns
        # whether a path exists), then every answer kept to the published OpenAPI document.
        conforming = ConformingResponses(app, known_names=KNOWN_NAMES)
        known = KnownPathsOnly(conforming, routes=app.routes, on_unknown=UNKNOWN_PATHS.inc)
        return ApiKeyAuth(known, keys_env=SERVE.api_keys_env, on_refuse=UNAUTHORIZED.inc)


async def _metadata(request: Request) -> JSONResponse:
    return JSONResponse(PACKAGED.describe(SERVICE.bento).model_dump(mode="json"))


metadata_app = Starlette(routes=[Route("/metadata", _metadata, methods=["GET"])])


@bentoml.asgi_app(metadata_app, path="/")
@bentoml.service(
    name=SERVICE_NAME,
    service_class=GuardedService,
    workers=SERVE.workers,
    traffic={"timeout": 60},
)
class MlgitopsService:
    """Predictions and explanations of the packaged pipeline, and what is deployed."""

    # No `bentoml.models.BentoModel` attribute: BentoML would record it in the bento without
    # the alias and so drop the pin (bento.yaml's service models replace the top-level ones).
    # `make bento` names the model in the bentofile instead (serving/bento.py).

    def __init__(self) -> None:
        """Load the packaged model once, with its explainer and background data."""
        # Again in the worker: the file could change between import and load. The plaintext of
        # an encrypted model only ever exists in memory.
        md5 = MODEL_MD5
        model = read_model(
            PACKAGED.path, PACKAGED.metadata, expected_md5=md5, key_env=SERVE.model_key_env
        )
        self.pipeline = joblib.load(io.BytesIO(model))
        self.contract = PACKAGED.contract
        self.predictor = Predictor.of(self.pipeline, self.contract, PACKAGED.classes)
        self.classes = self.predictor.classes
        # Text as written (a category such as "NA" stays itself); only empty cells are missing.
        background = pd.read_csv(
            PACKAGED.path / BACKGROUND_FILE, dtype=str, keep_default_na=False, na_values=[""]
        )
        self.background = typed_frame(
            cast("list[dict[str, Any]]", background.to_dict("records")),
            self.contract,
        )
        self.seed = int(PACKAGED.metadata.get("seed", 0))
        self.log_dir = os.environ.get(PREDICTION_LOG_ENV, PREDICTION_LOG_DIR)
        # The log's index (SQLite beside it): /feedback looks ids up here, not in the files.
        self.prediction_store = PredictionStore(Path(self.log_dir))
        MODEL_INFO.labels(
            git_commit=PACKAGED.labels.get("git_commit", ""),
            model_md5=md5,
            data_md5=PACKAGED.labels.get("data_md5", ""),
            model_version=PACKAGED.version,
        ).set(1)
        logger.info(
            "serving %s (commit %s, model md5 %s); prediction log under %s",
            PACKAGED.tag,
            PACKAGED.labels.get("git_commit", "?")[:12],
            md5,
            self.log_dir,
        )

    def _frame(self, records: list[Any]) -> pd.DataFrame:
        return records_frame(records, self.contract)

    def _log(
        self, frame: pd.DataFrame, ids: list[str], outputs: list[Any], proba: np.ndarray | None
    ) -> None:
        columns = log_columns(
            frame,
            contract=self.contract,
            classes=self.classes,
            ids=ids,
            outputs=outputs,
            proba=proba,
            model_md5=PACKAGED.labels.get("model_md5"),
        )
        options = {
            "log_path": self.log_dir,
            "fsync": SERVE.fsync_prediction_log,
            "worker": bentoml.server_context.worker_index or 0,
        }
        # BentoML's overloads name a monitor instance or a string; a MonitorBase subclass is
        # what its custom-monitor API takes.
        with bentoml.monitor(  # type: ignore[call-overload]
            PREDICTIONS_FOLDER, monitor_class=PredictionLogMonitor, monitor_options=options
        ) as monitor:
            for name, role, kind, values in columns:
                monitor.log_batch(values, name=name, role=role, data_type=kind)
        if isinstance(monitor, PredictionLogMonitor):
            self._index(monitor.data_path)

    def _index(self, path: Path) -> None:
        # The line is logged already; an index that cannot be written now catches up later
        # (at the next append or on a lookup's miss), so the request does not fail for it.
        try:
            self.prediction_store.catch_up([path])
        except sqlite3.Error as error:
            logger.warning("prediction store not updated (it catches up later): %s", error)

    @bentoml.api(
        input_spec=PredictRequest,
        batchable=SERVE.adaptive_batching,
        max_batch_size=max(2, SERVE.max_records),
        max_latency_ms=SERVE.max_batch_latency_ms,
    )
    def predict(self, records: list[Record]) -> JsonResponse[list[Prediction]]:
        """Predict each record: the class and class probabilities (or the value), with an id."""
        frame = self._frame(records)
        answer = self.predictor.outputs(frame)
        outputs, proba = answer.predictions, answer.probabilities
        ids = [uuid.uuid4().hex for _ in records]
        self._log(frame, ids, outputs, proba)
        for label, count in Counter(
            outputs if self.classes is not None else ["value"] * len(outputs)
        ).items():
            PREDICTIONS.labels(predicted_class=str(label)).inc(count)
        probabilities: list[dict[str, float] | None] = [None] * len(ids)
        if proba is not None and self.classes is not None:
            labels = self.classes.tolist()
            probabilities = [dict(zip(labels, row, strict=True)) for row in proba.round(6).tolist()]
        # Built from values this method made itself, so pydantic's validation is skipped
        # (a tenth of a 1,000-record request in a profile); the response is still serialized
        # through the model.
        return [
            Prediction.model_construct(
                request_id=request_id,
                prediction=self.predictor.class_value.get(output, output),
                probabilities=probability,
                model_version=PACKAGED.version,
                warnings=warning,
            )
            for request_id, output, probability, warning in zip(
                ids, outputs, probabilities, self.predictor.warnings(frame), strict=True
            )
        ]

    @bentoml.api(input_spec=ExplainRequest)
    def explain(self, records: list[Record]) -> JsonResponse[list[Explanation]]:
        """The top SHAP contributions per original feature behind each record's prediction."""
        frame = self._frame(records)
        answer = self.predictor.outputs(frame)
        outputs, proba = answer.predictions, answer.probabilities
        values, names = shap_by_feature(self.pipeline, frame, self.background, seed=self.seed)
        top_k = SERVE.explain_top_k
        explanations = []
        for i in range(len(frame)):
            column = int(proba[i].argmax()) if proba is not None else 0
            contributions = values[i, :, column]
            order = np.argsort(-np.abs(contributions), kind="stable")[:top_k]
            explanations.append(
                Explanation(
                    request_id=uuid.uuid4().hex,
                    prediction=self.predictor.class_value.get(outputs[i], outputs[i]),
                    explained_output=self.predictor.class_value.get(outputs[i])
                    if proba is not None
                    else None,
                    contributions=[
                        Contribution(feature=names[j], value=round(float(contributions[j]), 6))
                        for j in order
                    ],
                    model_version=PACKAGED.version,
                )
            )
        return explanations

    @bentoml.api(input_spec=Feedback)
    def feedback(self, prediction_id: str, label: Any) -> FeedbackReceipt:
        """Record the ground truth of an earlier prediction (append-only, fsynced).

        The request model already refused a label that is not one of the classes (typed as
        the target column holds them) or, for a regressor, not a finite number.
        """
        if not self.prediction_store.knows(prediction_id):
            message = (
                "no prediction with this id in the prediction log; send the request_id that "
                "/predict returned (records past monitor.retention_days or erased on request "
                "are gone)"
            )
            # A response rather than BentoML's NotFound, whose body cannot name the field.
            return JSONResponse(  # type: ignore[return-value]
                error_payload(message, loc=["body", "prediction_id"], kind="not_found"),
                status_code=404,
            )
        now = dt.datetime.now(dt.UTC).isoformat()
        append_feedback(
            Path(self.log_dir),
            {
                "prediction_id": prediction_id,
                # The log holds the class text, as predictions are logged.
                "label": self.predictor.class_text[label]
                if self.classes is not None
                else float(label),
                "timestamp": now,
                "model_md5": PACKAGED.labels.get("model_md5"),
            },
        )
        self._index(feedback_path(Path(self.log_dir)))
        return FeedbackReceipt(prediction_id=prediction_id, recorded_at=now)


# The type checker keeps a decorated class's own type; BentoML's decorators made a Service.
SERVICE = cast("bentoml.Service[Any]", MlgitopsService)
SERVICE.add_asgi_middleware(
    RequestGuard,
    max_body_bytes=SERVE.max_body_bytes,
    body_timeout_s=SERVE.body_timeout_s,
    on_reject=count_rejection,
)
