"""The base of every `params.yaml` section and the error a bad params file raises."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ParamsError(ValueError):
    """`params.yaml` is missing, unreadable or does not match the typed sections."""


class Section(BaseModel):
    """A frozen params section that rejects unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")
