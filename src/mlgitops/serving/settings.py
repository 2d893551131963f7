"""The `serve` section of `params.yaml`: how the service accepts, limits and explains requests."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from mlgitops.sections import Section


class ServeParams(Section):
    """How the BentoML service accepts, limits and explains requests.

    `mlgitops package` stores this section with the model, so a served model always runs
    with the limits that were reviewed alongside it.
    """

    max_records: Annotated[int, Field(ge=1)] = 1000
    max_explain_records: Annotated[int, Field(ge=1)] = 100
    max_body_bytes: Annotated[int, Field(ge=1024)] = 2_000_000
    explain_top_k: Annotated[int, Field(ge=1)] = 5
    # Environment variable holding the accepted API keys, comma-separated.
    api_keys_env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")] = "MLGITOPS_API_KEYS"
    # Environment variable holding the key that encrypts the packaged model (64 hex characters);
    # unset or empty: the model is stored unencrypted.
    model_key_env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")] = "MLGITOPS_MODEL_KEY"
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    # Merge concurrent /predict requests into one model call (BentoML adaptive batching).
    adaptive_batching: bool = True
    # Longest a request may wait in the batching queue before it is refused with a 503.
    max_batch_latency_ms: Annotated[int, Field(ge=10, le=600_000)] = 10_000
    # Seconds an idle keep-alive connection stays open (`bentoml serve --timeout-keep-alive`):
    # longer than the idle timeouts of clients and load balancers, so they close idle
    # connections first. A server closing one just as a client reuses it resets that request.
    keep_alive_s: Annotated[int, Field(ge=1, le=3600)] = 75
    # Seconds a client has to send a request's whole body, else 408 (the client's error).
    # Below the service's request timeout (60 s), whose 504 counts as a server error.
    body_timeout_s: Annotated[float, Field(gt=0, lt=60)] = 20.0
    # Seconds a client has to send a request's headers once it has started one, else the
    # server closes the connection (a client trickling headers holds no connection for long).
    header_timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    # fsync each request's prediction-log lines before answering: they then survive a power
    # loss, not only a crash of the server, for one disk flush per request.
    fsync_prediction_log: bool = False
