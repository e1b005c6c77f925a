"""Where the heavy work runs: map a worker over batches, in this process or on a cluster.

The layer below the stages, in the manner of img2dataset's distributors (``distributor.py``: a
``multiprocessing`` and a ``pyspark`` distributor, each a function taking the same worker and
reader, picked by name): an engine only knows batches and a worker class, never what they hold.
A stage hands over

- ``worker``: a class built once per process that runs batches (``BatchWorker`` below), with its
  picklable constructor ``kwargs``; it loads its model in ``__init__`` (in that process), so a
  cluster engine ships the recipe, not the weights;
- ``batches``: the payloads (picklable), each one call of the worker;

and gets each batch's result back in batch order, here in the driver, which alone commits them
(journal lines, cache parts): a cluster never writes the build's records. Engines:

- ``local`` (``local.py``): this process; the worker's ``stream`` may overlap I/O with compute;
- ``ray`` (``ray_data.py``): Ray Data ``map_batches`` with an actor pool, ``pip install 'isekai-gen[ray]'``.

A third engine is one module with ``check(settings)`` and ``map_batches(...)`` plus its line in
``ENGINES``. ``engine/`` imports nothing from the stages (tests/test_engine_ray.py and the import contracts check it);
its settings are the typed ``EngineConfig`` of the build config.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, Iterator, Protocol, Sequence

from ..config import EngineConfig

ENGINES = {"local": "local", "ray": "ray_data"}  # engine name -> its module in this package
RAY_EXTRA = "pip install 'isekai-gen[ray]'"


class BatchWorker(Protocol):
    """What an engine runs: ``__init__(**kwargs)`` once per process (loads the model), then
    ``__call__(batch) -> result`` per batch. A problem of the user's (model not loadable, an
    unreadable image) is raised as ``UserError`` and reaches the user as that one line; results
    must pickle. ``stream(batches)``, optional, yields the same results in order and lets the
    local engine overlap one batch's I/O with the next one's compute."""

    def __call__(self, batch: Any) -> Any: ...


def _engine(name: str):
    return import_module(f".{ENGINES[name]}", __name__)


def check(settings: EngineConfig) -> None:
    """Raise ``UserError`` now, before anything is written, if the engine cannot run here (a
    cluster engine connects)."""
    _engine(settings.name).check(settings)


def map_batches(settings: EngineConfig, worker: type, kwargs: dict, batches: Sequence, *,
                device: str) -> Iterator[Any]:
    """``worker(**kwargs)(batch)`` for every batch, in batch order, on the engine ``settings``
    (the config's ``engine`` section) names; ``device`` (cpu, cuda, auto) tells a cluster engine
    whether a worker needs a GPU."""
    return _engine(settings.name).map_batches(settings, worker, kwargs, batches, device=device)
