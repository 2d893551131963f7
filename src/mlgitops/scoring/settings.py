"""The `score` section of `params.yaml`: where batch scoring runs and how it partitions."""

from __future__ import annotations

from pydantic import Field

from mlgitops.sections import Section


class ScoreParams(Section):
    """Batch scoring's engine and partition size."""

    # A Dask scheduler address (tcp://host:8786) to score on an existing cluster; null: embedded,
    # Dask's threaded scheduler on this machine. `mlgitops score --scheduler` overrides it.
    scheduler: str | None = None
    # A CSV input is read in blocks of this many bytes (one partition each); a Parquet input
    # keeps its files' row groups. Peak memory grows with this, not with the table.
    partition_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024)
