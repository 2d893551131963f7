"""Logging set up once, by whichever entry point runs."""

from __future__ import annotations

import logging
import os


def configure_logging(level: str | None = None) -> None:
    """Log to stderr with timestamps; the level comes from `MLGITOPS_LOG_LEVEL` or INFO.

    Does nothing when logging is already configured (by a test harness, say).
    """
    logging.basicConfig(
        level=(level or os.environ.get("MLGITOPS_LOG_LEVEL", "INFO")).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
