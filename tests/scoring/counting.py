"""A pipeline wrapper that counts how often it is pickled in this process (the test's client).

Workers import it too (their PYTHONPATH holds this folder), so it must stay importable alone.
"""

from __future__ import annotations

from typing import Any, ClassVar


class CountingPipeline:
    """Answers as the wrapped pipeline does; each pickling adds one to `pickled`."""

    pickled: ClassVar[int] = 0

    def __init__(self, pipeline: Any):
        self.pipeline = pipeline

    def __getattr__(self, name: str) -> Any:
        if name == "pipeline":  # not yet set while unpickling
            raise AttributeError(name)
        return getattr(self.pipeline, name)

    def __reduce__(self) -> tuple[Any, ...]:
        CountingPipeline.pickled += 1
        return (CountingPipeline, (self.pipeline,))
