"""Score a table in partitions with Dask: every row scored or quarantined, the output atomic.

Each partition is checked row by row against the contract as the service checks a request
(`request_schema`), and its valid rows are scored by the service's own `Predictor`, so batch
and online answers cannot drift. Rows that fail go to `quarantine/` with the column and the
check that failed. The output is written to a temporary sibling, moved into place, and
completed by `_SUCCESS.json` (the summary), written last: an output without it is partial.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlgitops.contract import ContractParams
from mlgitops.contract.check import check_rows, feature_frame, request_schema
from mlgitops.scoring.model import PinnedModel, ScoringError

logger = logging.getLogger(__name__)

MARKER = "_SUCCESS.json"
SCORED_DIR = "scored"
QUARANTINE_DIR = "quarantine"
# A row id: the partition's number in the high 32 bits, the row's position in it in the low
# ones. Unique, the same on every run of the same input, and sorted as the input is.
ROW_BITS = 32
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst")
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class Job:
    """What every partition task needs besides its rows: where to write and what to stamp."""

    output: str  # the temporary folder's URL
    model_md5: str
    run_id: str
    features: tuple[str, ...]


def input_format(url: str) -> str:
    """`csv` or `parquet`, from the input URL (a folder is a Parquet dataset).

    Raises:
        ScoringError: for any other file name.
    """
    name = PurePosixPath(url.rstrip("/")).name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES) or "." not in name:
        return "parquet"
    raise ScoringError(
        f"expected a CSV ({', '.join(CSV_SUFFIXES)}), a Parquet file "
        f"({', '.join(PARQUET_SUFFIXES)}) or a folder of Parquet files, got '{name}'"
    )


def input_files(url: str) -> tuple[Any, list[str]]:
    """The file system of `url` and the input's files, sorted.

    Raises:
        ScoringError: when nothing is there.
    """
    fs, path = fsspec.core.url_to_fs(url)
    if fs.isdir(path):
        files = sorted(p for p in fs.find(path) if p.lower().endswith(PARQUET_SUFFIXES))
    else:
        files = [path] if fs.isfile(path) else []
    if not files:
        raise ScoringError(f"no input at {url}: expected a CSV or Parquet file, or a folder")
    return fs, files


def input_fingerprint(url: str) -> str:
    """A hash of the input's files as their storage describes them (name, size, version)."""
    fs, files = input_files(url)
    described = []
    for path in files:
        info = fs.info(path)
        version = next(
            (str(info[key]) for key in ("ETag", "md5", "mtime", "LastModified") if key in info),
            "",
        )
        described.append([PurePosixPath(path).name, int(info.get("size") or 0), version])
    return hashlib.sha256(json.dumps(described).encode()).hexdigest()


def read_partitions(url: str, *, partition_bytes: int) -> list[Any]:
    """The input's partitions, as Dask delayed pandas frames (CSV cells as text)."""
    import dask
    import dask.dataframe as dd

    # Text as Python strings, as the training data is read: Dask would make them pyarrow
    # strings, which the pipeline's encoders handle 3x slower.
    with dask.config.set({"dataframe.convert-string": False}):
        if input_format(url) == "csv":
            frame = dd.read_csv(
                url, dtype=str, blocksize=partition_bytes, keep_default_na=True, encoding="utf-8"
            )
        else:
            frame = dd.read_parquet(url)
        parts: list[Any] = frame.to_delayed()
    return parts


def _stripped(frame: pd.DataFrame, contract: ContractParams) -> pd.DataFrame:
    """Category and bool text without surrounding blanks, as `read_table` reads training data.

    Numbers are left alone: their parsing ignores the blanks anyway.
    """
    for name in contract.categorical_features:
        if name in frame.columns and (
            frame[name].dtype == object or isinstance(frame[name].dtype, pd.StringDtype)
        ):
            frame[name] = frame[name].str.strip()
    return frame


def score_partition(frame: pd.DataFrame, number: int, model: PinnedModel, job: Job) -> dict:
    """Check, score and write one partition; return its counts.

    Writes `scored/part-NNNNN.parquet` (always, so an empty table still has its columns) and
    `quarantine/part-NNNNN.parquet` when a row failed.
    """
    frame = _stripped(frame.reset_index(drop=True), model.predictor.contract)
    row_ids = (np.int64(number) << ROW_BITS) + np.arange(len(frame), dtype=np.int64)
    predictor = model.predictor
    valid, rejected = check_rows(frame, request_schema(predictor.contract), predictor.contract)
    # With no valid row (every row refused, say for a missing column) nothing is scored.
    features = feature_frame(valid, predictor.contract) if len(valid) else None
    outputs = predictor.outputs(features) if features is not None else None
    unknown = sum(1 for w in predictor.warnings(features) if w) if features is not None else 0
    columns: dict[str, Any] = {"row_id": pa.array(row_ids[valid.index.to_numpy()])}
    if predictor.classes is None:
        columns["prediction"] = pa.array(outputs.predictions if outputs else [], pa.float64())
    else:
        columns["prediction"] = pa.array(outputs.predictions if outputs else [], pa.string())
        width = len(predictor.classes)
        flat = (
            np.asarray(outputs.probabilities, dtype=np.float64).ravel()
            if outputs is not None and outputs.probabilities is not None
            else np.empty(0, dtype=np.float64)
        )
        columns["probabilities"] = pa.FixedSizeListArray.from_arrays(pa.array(flat), width)
    count = len(valid)
    columns["model_md5"] = pa.array([job.model_md5] * count, pa.string())
    columns["run_id"] = pa.array([job.run_id] * count, pa.string())
    _write(pa.table(columns), f"{job.output}/{SCORED_DIR}/part-{number:05d}.parquet")
    reasons: dict[str, int] = {}
    if len(rejected):
        rows = rejected["row"].to_numpy(dtype=np.int64)
        bad = frame.iloc[rows]
        quarantine = {
            "row_id": pa.array(row_ids[rows]),
            "column": pa.array(rejected["column"].astype(str), pa.string()),
            "check": pa.array(rejected["check"].astype(str), pa.string()),
            # The row's features as they were read (never its personal or other columns).
            **{
                name: pa.array(bad[name].astype("string"), pa.string())
                for name in job.features
                if name in bad.columns
            },
            "model_md5": pa.array([job.model_md5] * len(rows), pa.string()),
            "run_id": pa.array([job.run_id] * len(rows), pa.string()),
        }
        _write(pa.table(quarantine), f"{job.output}/{QUARANTINE_DIR}/part-{number:05d}.parquet")
        for reason, size in (rejected["column"] + ": " + rejected["check"]).value_counts().items():
            reasons[str(reason)] = int(size)
    return {
        "rows": len(frame),
        "scored": count,
        "quarantined": len(rejected),
        "reasons": reasons,
        "unknown_category_rows": unknown,
    }


def _write(table: pa.Table, url: str) -> None:
    with fsspec.open(url, "wb", auto_mkdir=True) as handle:
        pq.write_table(table, handle)


def run_embedded(parts: list[Any], model: PinnedModel, job: Job, *, progress: bool) -> list[dict]:
    """Score the partitions with Dask's threaded scheduler, the model shared by the threads."""
    import dask
    from dask.diagnostics import Callback

    shared = dask.delayed(model, name=f"model-{model.md5}")
    keys = [f"score-{job.run_id}-{number}" for number in range(len(parts))]
    tasks = [
        dask.delayed(score_partition, pure=True)(part, number, shared, job, dask_key_name=key)
        for number, (part, key) in enumerate(zip(parts, keys, strict=True))
    ]
    with _bar(len(tasks), progress) as bar:
        wanted = set(keys)

        class _Progress(Callback):
            def _posttask(self, key: Any, *_: Any) -> None:
                if key in wanted:
                    bar.update(1)

        with _Progress():
            results = dask.compute(*tasks, scheduler="threads")
    return list(results)


def run_on_cluster(
    parts: list[Any], model: PinnedModel, job: Job, *, address: str, progress: bool
) -> list[dict]:
    """Score the partitions on the Dask cluster at `address`; the model is sent once.

    Raises:
        ScoringError: when no scheduler answers at `address`.
    """
    import dask
    from distributed import Client, as_completed

    try:
        client = Client(address, timeout="30s")
    except (OSError, TimeoutError) as error:
        raise ScoringError(
            f"no Dask scheduler answers at {address} ({type(error).__name__})"
        ) from None
    with client:
        # One copy on every worker, not one pickled into each task.
        shared = client.scatter(model, broadcast=True, hash=False)
        tasks = [
            dask.delayed(score_partition, pure=True)(
                part, number, shared, job, dask_key_name=f"score-{job.run_id}-{number}"
            )
            for number, part in enumerate(parts)
        ]
        futures = client.compute(tasks)
        with _bar(len(futures), progress) as bar:
            for _ in as_completed(futures):
                bar.update(1)
        results: list[dict] = client.gather(futures)
        workers = len(client.scheduler_info().get("workers", {}))
    logger.info("scored on %s with %d worker(s)", address, workers)
    return results


def _bar(total: int, progress: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="partition", desc="scoring", disable=not progress)


def _read_marker(fs: Any, path: str) -> dict[str, Any] | None:
    marker = f"{path}/{MARKER}"
    if not fs.exists(marker):
        return None
    try:
        loaded = json.loads(fs.cat_file(marker))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return loaded if isinstance(loaded, dict) else None


def score(
    input_url: str,
    output_url: str,
    *,
    model: PinnedModel,
    scheduler: str | None = None,
    partition_bytes: int,
    run_id: str | None = None,
    progress: bool = False,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Score every row of `input_url` into `output_url`; return the summary.

    An output already complete for the same input and model is left as it is (its summary is
    returned, with `rewritten: false`); anything else there is replaced.

    Raises:
        ScoringError: for an input that cannot be read or a scheduler that does not answer.
    """
    environ = environ or {}
    fingerprint = input_fingerprint(input_url)
    identity = hashlib.sha256(f"{fingerprint}:{model.md5}".encode()).hexdigest()
    fs, path = fsspec.core.url_to_fs(output_url)
    path = path.rstrip("/")
    fs.invalidate_cache()
    existing = _read_marker(fs, path)
    if existing and existing.get("identity") == identity:
        logger.info("%s is complete for this input and model: not rewritten", output_url)
        return {**existing, "rewritten": False}
    # The same input and model get the same run id, so a rerun writes the same bytes.
    run_id = run_id or identity[:16]
    parent, name = str(PurePosixPath(path).parent), PurePosixPath(path).name
    temporary = f"{parent}/.{name}.partial-{run_id}"
    temporary_url = fs.unstrip_protocol(temporary)
    if fs.exists(temporary):
        fs.rm(temporary, recursive=True)
    fs.makedirs(temporary, exist_ok=True)
    job = Job(temporary_url, model.md5, run_id, model.predictor.contract.features)
    started = time.perf_counter()
    parts = read_partitions(input_url, partition_bytes=partition_bytes)
    if scheduler:
        results = run_on_cluster(parts, model, job, address=scheduler, progress=progress)
    else:
        results = run_embedded(parts, model, job, progress=progress)
    fs.invalidate_cache()
    if fs.exists(path):
        logger.info(
            "replacing %s (%s)", output_url, "another input or model" if existing else "partial"
        )
        fs.rm(path, recursive=True)
    _move(fs, temporary, path)
    seconds = time.perf_counter() - started
    summary = summarize(results, seconds=seconds)
    summary.update(
        input=input_url,
        output=output_url,
        input_fingerprint=fingerprint,
        identity=identity,
        model_md5=model.md5,
        run_id=run_id,
        github_run_id=environ.get("GITHUB_RUN_ID"),
        task=model.predictor.contract.task,
        classes=model.predictor.classes.tolist() if model.predictor.classes is not None else None,
        scheduler=scheduler or "threads",
    )
    # Written last: its presence is what makes the output complete.
    fs.pipe_file(f"{path}/{MARKER}", (json.dumps(summary, indent=2) + "\n").encode())
    return {**summary, "rewritten": True}


def _move(fs: Any, source: str, target: str) -> None:
    """Move a folder: one rename on a local disk; on object storage, file by file."""
    from fsspec.implementations.local import LocalFileSystem

    if isinstance(fs, LocalFileSystem):
        fs.mv(source, target, recursive=True)
        return
    for path in fs.find(source):
        fs.copy(path, f"{target}/{path[len(source) :].lstrip('/')}")
    fs.rm(source, recursive=True)


def summarize(results: list[dict], *, seconds: float) -> dict[str, Any]:
    """The counts of every partition added up: rows in = scored + quarantined."""
    reasons: dict[str, int] = {}
    for result in results:
        for reason, count in result["reasons"].items():
            reasons[reason] = reasons.get(reason, 0) + count
    rows = sum(r["rows"] for r in results)
    return {
        "rows_in": rows,
        "scored": sum(r["scored"] for r in results),
        "quarantined": sum(r["quarantined"] for r in results),
        "quarantined_by_reason": dict(sorted(reasons.items())),
        "unknown_category_rows": sum(r["unknown_category_rows"] for r in results),
        "partitions": len(results),
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds, 1) if seconds > 0 else None,
    }


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """The summary as a GitHub job summary section."""
    lines = [
        "## Batch scoring",
        "",
        f"- input: `{summary['input']}`",
        f"- output: `{summary['output']}`",
        f"- model md5: `{summary['model_md5']}`; run id `{summary['run_id']}`",
        f"- rows in {summary['rows_in']:,} = scored {summary['scored']:,} + quarantined "
        f"{summary['quarantined']:,}",
        f"- {summary['seconds']} s, {summary['rows_per_second']} rows/s on {summary['scheduler']}",
    ]
    if not summary.get("rewritten", True):
        lines.append("- the output was already complete for this input and model: not rewritten")
    if summary["quarantined_by_reason"]:
        lines += ["", "| quarantined because | rows |", "|---|---:|"]
        lines += [f"| {r} | {n:,} |" for r, n in summary["quarantined_by_reason"].items()]
    return "\n".join(lines) + "\n"
