"""The ``ray`` engine: the worker in a pool of Ray Data actors, one worker (one model) per actor.

The pattern is Ray Data's batch inference (docs.ray.io "Working with LLMs / batch inference",
``Dataset.map_batches`` with a callable class, ``compute=ActorPoolStrategy(min_size, max_size)``
for an autoscaling actor pool, ``num_gpus=1`` per actor): each actor builds the stage's worker
once, then runs one batch per Dataset row. Batches and results travel pickled (a few hundred
bytes per image for generation: the actors write the images themselves); the driver streams the
rows back (``iter_rows``: Ray Data's streaming executor keeps a bounded number in flight),
reorders them and hands each result on in batch order, so the stage commits exactly as locally.

Which cluster (``engine.ray_address``, ``--ray-address``):

- none (the default): a PRIVATE Ray instance for this process, started with ``address="local"``
  (Ray then never attaches to a cluster already running on the machine, nor reads
  ``RAY_ADDRESS``) in its own temporary folder; shut down, and the folder removed, when the
  process exits. A reaper process (``reap_when_orphaned``) kills whatever of it is left once the
  driver exits or dies, so a killed driver leaves no Ray process behind (tests/test_engine_ray.py
  kills one with SIGKILL and checks);
- ``auto``: attach to the cluster this machine belongs to (``RAY_ADDRESS``, else the one ``ray
  start`` started), Ray's own meaning of ``auto``;
- ``HOST:PORT`` or ``ray://HOST:10001``: that cluster (Ray Client for ``ray://``).

A process that has called ``ray.init`` itself (a library user, the tests) keeps its connection.

Faults: Ray Data's actor pool restarts a killed actor and retries its task: it creates every
actor with ``max_restarts=-1`` and ``max_task_retries=-1`` unless ``map_batches`` overrides them
(``ActorPoolMapOperator._apply_default_remote_args``); they are left at those defaults because
Ray 2.60 has no named parameter for them (only ``**ray_remote_args``, deprecated, to be removed
in Ray 2.64). A worker's ``UserError`` is not raised in the actor, where Ray would wrap it (a
pickled exception loses its cause) and retry it: it goes back as the row's ``error`` and the
driver raises it. Any other failure of Ray (cluster unreachable, an actor that cannot start, a
task that keeps failing) is one ``engine ray: ...`` line; ``--verbose`` logs the traceback.

Checked against Ray 2.60's ``ray/data/dataset.py`` (``Dataset.map_batches``: ``batch_size``,
``compute``, ``num_cpus``, ``num_gpus``, ``fn_constructor_kwargs``),
``ray/data/_internal/execution/operators/actor_pool_map_operator.py``,
``ray/data/_internal/compute.py`` (``ActorPoolStrategy(min_size, max_size, initial_size,
max_tasks_in_flight_per_actor)``) and ``ray/_private/worker.py`` (``init``: ``address`` None or
``auto`` reads ``RAY_ADDRESS``, ``local`` always starts a new instance).
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Any, Iterator, Sequence

from ..config import EngineConfig
from ..errors import UserError
from . import RAY_EXTRA

log = logging.getLogger(__name__)

# Ray Data's ``max_tasks_in_flight_per_actor``: the next batch waits in the actor's
# queue while one runs, no more (a killed actor's queued batches are retried).
TASKS_IN_FLIGHT_PER_ACTOR = 2


def check(settings: EngineConfig) -> None:
    """Ray Data importable and the cluster reachable (connected now, kept for ``map_batches``)."""
    connect(settings)


def require_ray():
    """The ``ray`` module with Ray Data, or one line naming the extra that installs it."""
    if not log.isEnabledFor(logging.INFO):
        # Ray Data logs progress, and a failure at length before raising it: unless --verbose, the
        # one line is ours. Read when ray.data is imported and at each dataset's start.
        os.environ.setdefault("RAY_DATA_LOG_LEVEL", "CRITICAL")
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Core alone lacks Ray Data)
    except ImportError:
        raise UserError(f"engine ray: Ray Data is not installed; install it with {RAY_EXTRA}") from None
    return ray


# A traceback's exception line (``ray.exceptions.RayTaskError: text`` or ``RuntimeError: text``).
_EXCEPTION_LINE = re.compile(r"^(?:\w+\.)*(\w+): (\S.*)$")
_CAUSE_SEPARATOR = "The above exception was the direct cause of the following exception:"


def _one_line(exc: BaseException) -> str:
    """The innermost cause of a Ray exception as ``Type: first line`` (Ray's own text spans pages).

    A task's exception reaches the driver as a ``RayTaskError`` whose cause lost its own chain
    when pickled; the chain survives only in its text, innermost first.
    """
    while isinstance(getattr(exc, "cause", None), BaseException) and exc.cause is not exc:
        innermost = str(exc).split(_CAUSE_SEPARATOR)[0]
        found = [match for line in innermost.splitlines() if (match := _EXCEPTION_LINE.match(line))]
        if found:
            return f"{found[-1][1]}: {found[-1][2].strip()}"
        exc = exc.cause
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _failed(what: str, exc: Exception) -> UserError:
    log.info("engine ray: %s failed", what, exc_info=exc)  # the traceback, under --verbose only
    return UserError(f"engine ray: {what} failed ({_one_line(exc)})")


# Set in the environment of a private Ray's processes (gcs, raylet, agents, workers inherit it),
# so that its reaper finds them all, whatever their parent is by then.
PRIVATE_RAY_VARIABLE = "ISEKAI_GEN_PRIVATE_RAY"
_private: dict = {}  # the private Ray this process started: its reaper


def reap_when_orphaned(token: str, folder: str) -> None:
    """The reaper of a private Ray (a process of its own): until the driver closes our stdin or
    dies, keep track of the processes carrying ``token`` and their children; then kill those
    still running and remove the Ray's folder.

    Hand-written because Ray leaves its agents behind a killed driver for a minute or more (they
    see the raylet gone at once, then wait for the dead GCS before exiting). They are tracked as
    the raylet's children: their process title overwrites the environment they inherited.
    """
    import select

    import psutil

    tracked: dict[int, psutil.Process] = {}
    while not select.select([sys.stdin], [], [], 1.0)[0] or sys.stdin.buffer.read1(4096):
        for process in psutil.process_iter():
            try:
                if process.environ().get(PRIVATE_RAY_VARIABLE) == token:
                    tracked[process.pid] = process
                    tracked.update((child.pid, child) for child in process.children(recursive=True))
            except psutil.Error:  # gone meanwhile, or another user's
                continue
    for process in tracked.values():
        try:
            if process.is_running():  # the same process (its start time is checked), not a reused pid
                process.kill()
        except psutil.Error:
            continue
    shutil.rmtree(folder, ignore_errors=True)


def _start_private(ray, options: dict) -> None:
    """A new Ray instance for this process only, in its own folder, watched by a reaper."""
    # Short (not macOS's long $TMPDIR): Ray's socket paths below it must fit in 107 bytes.
    folder = tempfile.mkdtemp(prefix="isekai-ray-", dir="/tmp" if os.path.isdir("/tmp") else None)
    token = os.path.basename(folder)
    # Its own session: it outlives the driver, and a Ctrl-C to the terminal's job does not reach it.
    reaper = subprocess.Popen(
        [sys.executable, "-c", "import sys; from isekai_gen.engine.ray_data import reap_when_orphaned as reap; "
                               "reap(*sys.argv[1:])", token, folder],
        stdin=subprocess.PIPE, start_new_session=True)
    _private["reaper"] = reaper
    # At exit Ray is shut down gracefully (by its own hook or here), then the reaper kills what
    # lingers and removes the folder.
    atexit.register(_shut_down_private)
    os.environ[PRIVATE_RAY_VARIABLE] = token
    try:
        ray.init(address="local", _temp_dir=folder, **options)
    finally:
        del os.environ[PRIVATE_RAY_VARIABLE]  # only Ray's processes carry it


def _shut_down_private() -> None:
    if not _private:
        return
    import ray

    ray.shutdown()
    reaper = _private.pop("reaper")
    reaper.stdin.close()
    try:
        reaper.wait(timeout=30)
    except subprocess.TimeoutExpired:
        log.warning("engine ray: the private Ray's reaper did not finish in 30 s; it goes on in the background")


def connect(settings: EngineConfig):
    """``ray``, connected as the module docstring says (an existing connection is kept)."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    address = settings.ray_address
    verbose = log.isEnabledFor(logging.INFO)
    options = {"logging_level": logging.WARNING, "include_dashboard": False, "log_to_driver": verbose}
    try:
        if address is None:
            _start_private(ray, options)
        else:
            ray.init(address=address, **options)
    except Exception as exc:  # Ray raises ConnectionError, ValueError, RuntimeError, ...
        where = "a private Ray instance" if address is None else f"the Ray cluster at {address!r}"
        log.info("engine ray: connecting failed", exc_info=exc)
        raise UserError(f"engine ray: cannot connect to {where} ({_one_line(exc)})") from None
    return ray


def actor_resources(ray, settings: EngineConfig, device: str) -> tuple[dict, tuple[int, int]]:
    """map_batches resources per actor and the actor pool's (min, max) size."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    on_gpu = gpus > 0 and device in ("auto", "cuda") or device.startswith("cuda")
    cpus_per_actor = settings.cpus_per_actor or 1
    if on_gpu:
        per_actor, capacity = {"num_gpus": 1, "num_cpus": cpus_per_actor}, max(gpus, 1)
    else:
        per_actor, capacity = {"num_cpus": cpus_per_actor}, max(int(resources.get("CPU", 1) // cpus_per_actor), 1)
    low, high = settings.min_actors or 1, settings.max_actors or capacity
    return per_actor, (min(low, high), high)


class WorkerActor:
    """Ray Data's callable class: the stage's worker, built once per actor, one batch per row.

    A ``UserError`` of the worker's (in ``__init__`` too: a model that cannot load) goes back as
    the row's ``error``; anything else is Ray's to retry and, in the end, to report.
    """

    def __init__(self, worker: type, kwargs: dict):
        self.problem = ""
        try:
            self.worker = worker(**kwargs)
        except UserError as exc:
            self.problem = str(exc)

    def __call__(self, rows: dict) -> dict:
        import numpy as np

        results, errors = [], []
        for payload in rows["batch"]:
            result, problem = b"", self.problem
            if not problem:
                try:
                    result = pickle.dumps(self.worker(pickle.loads(payload)))
                except UserError as exc:
                    problem = str(exc)
            results.append(result)
            errors.append(problem)
        return {"index": rows["index"], "result": np.array(results, dtype=object),
                "error": np.array(errors, dtype=object)}


def map_batches(settings: EngineConfig, worker: type, kwargs: dict, batches: Sequence, *, device: str) -> Iterator[Any]:
    """Each batch's result, in batch order, from a pool of actors each running one ``worker``."""
    if not batches:
        return
    ray = connect(settings)
    from ray.data import DataContext

    context = DataContext.get_current()
    verbose = log.isEnabledFor(logging.INFO)
    context.enable_progress_bars = verbose  # the stage shows one bar for the whole cluster; --verbose adds Ray's
    context.print_on_execution_start = verbose
    per_actor, (low, high) = actor_resources(ray, settings, device)
    # Start with every actor the cluster can hold now; the autoscaler may add nodes up to `high`.
    pool = ray.data.ActorPoolStrategy(min_size=low, max_size=high, initial_size=high,
                                      max_tasks_in_flight_per_actor=TASKS_IN_FLIGHT_PER_ACTOR)
    items = [{"index": k, "batch": pickle.dumps(batch)} for k, batch in enumerate(batches)]
    dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        WorkerActor, batch_size=1, compute=pool, fn_constructor_kwargs={"worker": worker, "kwargs": kwargs},
        **per_actor,
    )
    log.info("%d batches on Ray actors (%d, %d) of %s, %s each", len(items), low, high, worker.__name__, per_actor)
    # Rows arrive in completion order; early ones wait here (at most the batches in flight).
    early: dict[int, bytes] = {}
    following = 0
    try:
        for row in dataset.iter_rows():
            if row["error"]:
                raise UserError(row["error"])
            early[int(row["index"])] = row["result"]
            while following in early:
                yield pickle.loads(early.pop(following))
                following += 1
    except UserError:
        raise
    except Exception as exc:  # any failure of Ray's: one line, the traceback under -v
        raise _failed(f"running {worker.__name__}", exc) from None
    if verbose:
        log.info("Ray Data stats:\n%s", dataset.stats())
