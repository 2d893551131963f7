"""Realistic traffic for demos and tests: held-out rows, optionally shifted, sent to /predict."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlgitops.contract import NUMERIC_DTYPES, ContractParams

logger = logging.getLogger(__name__)


def shift_rows(frame: pd.DataFrame, contract: ContractParams, amount: float) -> pd.DataFrame:
    """Move every numeric feature by `amount` standard deviations, kept inside the contract.

    Clipping to the contract's `min`/`max` keeps shifted rows valid requests; a large shift
    piles values up at the bound, which is still drift.
    """
    shifted = frame.copy()
    for name in contract.features:
        spec = contract.columns[name]
        if spec.dtype not in NUMERIC_DTYPES:
            continue
        values = pd.to_numeric(shifted[name], errors="coerce").astype(float)
        moved = (values + amount * values.std()).clip(spec.min, spec.max)
        # The service types an int feature strictly: 3.0 is refused where 3 is accepted.
        shifted[name] = moved.round(0).astype("Int64") if spec.dtype == "int" else moved.round(5)
    return shifted


def _plain(value: Any) -> Any:
    """A JSON-ready Python value from a pandas/numpy scalar (numpy ints are not JSON)."""
    return value.item() if isinstance(value, np.generic) else value


def draw_rows(frame: pd.DataFrame, *, count: int, seed: int) -> pd.DataFrame:
    """Up to `count` distinct rows of `frame`, in a random order drawn from `seed`.

    Rows are drawn without replacement: repeating rows of a small test split would make the
    traffic look like a different distribution to the drift tests (ties the training data
    does not have), so `--shift 0` would report drift that is not there. A frame smaller
    than `count` is returned whole.
    """
    if count > len(frame):
        logger.warning(
            "%d records asked for but the data has %d rows: sending each row once, since "
            "repeated rows would look like drift",
            count,
            len(frame),
        )
    chosen = np.random.default_rng(seed).permutation(len(frame))[:count]
    return frame.iloc[chosen].reset_index(drop=True)


def to_records(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Request records from typed rows: plain JSON values, missing values left out."""
    records = rows.astype(object).mask(rows.isna(), None).to_dict("records")
    return [{str(k): _plain(v) for k, v in r.items() if v is not None} for r in records]


def sample_records(
    frame: pd.DataFrame, contract: ContractParams, *, count: int, shift: float, seed: int
) -> list[dict[str, Any]]:
    """Up to `count` distinct rows of `frame`'s features (`draw_rows`), shifted by `shift`."""
    rows = draw_rows(frame, count=count, seed=seed)
    return to_records(shift_rows(rows[list(contract.features)], contract, shift))


@dataclass(frozen=True)
class TrafficResult:
    """What a simulation sent and how the service answered."""

    sent: int
    ok: int
    failed: int
    seconds: float
    status_counts: dict[int, int]


def send_traffic(
    url: str,
    records: list[dict[str, Any]],
    *,
    api_key: str,
    batch_size: int,
    max_seconds: float,
    progress: bool = True,
) -> TrafficResult:
    """POST `records` to `url`/predict in batches, with a progress bar, within `max_seconds`."""
    import httpx
    from tqdm import tqdm

    start = time.monotonic()
    statuses: dict[int, int] = {}
    sent = ok = 0
    headers = {"Authorization": f"Bearer {api_key}"}
    with (
        httpx.Client(base_url=url, timeout=30, headers=headers) as client,
        tqdm(total=len(records), unit="record", disable=not progress) as bar,
    ):
        for begin in range(0, len(records), batch_size):
            if time.monotonic() - start > max_seconds:
                logger.warning("stopped after %.0f s (--max-seconds)", max_seconds)
                break
            batch = records[begin : begin + batch_size]
            try:
                status = client.post("/predict", json={"records": batch}).status_code
            except httpx.TransportError as error:
                logger.error("request failed: %s", error)
                status = 0
            statuses[status] = statuses.get(status, 0) + 1
            sent += len(batch)
            ok += len(batch) if status == 200 else 0
            bar.update(len(batch))
    return TrafficResult(sent, ok, sent - ok, round(time.monotonic() - start, 3), statuses)
