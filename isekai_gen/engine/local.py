"""The ``local`` engine: the worker runs in this process, the default (needs no Ray)."""

from __future__ import annotations

from typing import Any, Iterator, Sequence

from ..config import EngineConfig


def check(settings: EngineConfig) -> None:
    """Always available."""


def map_batches(settings: EngineConfig, worker: type, kwargs: dict, batches: Sequence, *, device: str) -> Iterator[Any]:
    """One worker for all batches; its ``stream`` when it has one (it overlaps I/O with compute)."""
    instance = worker(**kwargs)
    stream = getattr(instance, "stream", None)
    if stream is not None:
        yield from stream(batches)
    else:
        for batch in batches:
            yield instance(batch)
