"""One writer per build folder: real second processes against the real commands.

The holders are separate Python processes holding ``isekai_gen.lock.build_lock`` (or running the
real ``generate`` command with its stage paused); the contenders are the installed ``isekai-gen``.
Every wait is bounded by a subprocess timeout, never by a time assertion.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from isekai_gen.cli import main
from isekai_gen.fileio import TEMP_MARKER
from isekai_gen.lock import LOCK_NAME, build_lock
from test_episodes import make_catalog, write_build

EXE = str(Path(sys.executable).parent / "isekai-gen")
TIMEOUT = 60

# Test double of a writer: holds the lock (optionally as one shard) until its stdin gets a line.
HOLDER = """
import sys
from isekai_gen.lock import build_lock
shard = tuple(map(int, sys.argv[3].split("/"))) if len(sys.argv) > 3 else None
with build_lock(sys.argv[1], sys.argv[2], shard=shard):
    print("held", flush=True)
    sys.stdin.readline()
"""

# Test double of `isekai-gen generate` mid-run: the real command (lock, config) with its stage
# (``build.prepare``, which writes run.json and then generates) replaced by a pause.
PAUSED_GENERATE = """
import sys
import isekai_gen.build

def paused(config, out_dir):
    print("held", flush=True)
    sys.stdin.readline()
    sys.exit(0)

isekai_gen.build.prepare = paused
from isekai_gen.cli import main
from isekai_gen.fileio import TEMP_MARKER
main(sys.argv[1:], prog_name="isekai-gen")
"""

# Test double of a writer killed mid-write: real atomic writes left open in every place a stage
# writes (run.json, filter/, episodes/, the embedding cache, export/, export/lcl/, images/, a
# split's staging folder), then it waits to be SIGKILLed.
KILLED_WRITER = """
import contextlib, sys, tempfile
from pathlib import Path
from isekai_gen.fileio import atomic_open, temp_prefix
from isekai_gen.lock import build_lock
out = Path(sys.argv[1])
targets = ["run.json", "filter/report.json", "episodes/episodes.jsonl", "cache/embeddings/ViT-B-32/part-00000.npz",
           "export/SHA256SUMS", "export/lcl/ISEKAI-10.json", "images/iso0/iso0-00099.png"]
with build_lock(out, "isekai-gen build --out " + str(out)), contextlib.ExitStack() as stack:
    for name in targets:
        stack.enter_context(atomic_open(out / name, "w")).write("half")
    (out / "benchmarks").mkdir()
    tempfile.mkdtemp(prefix=temp_prefix("eurosat"), dir=out / "benchmarks")
    print("held", flush=True)
    sys.stdin.readline()
"""

# Test double of a build whose data loader forked workers: the holder forks a child (os.fork, as a
# DataLoader worker is started) that sleeps on after the holder is killed.
FORKING_HOLDER = """
import multiprocessing, os, sys, time
from isekai_gen.lock import build_lock
with build_lock(sys.argv[1], "isekai-gen filter"):
    worker = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,), daemon=False)
    worker.start()
    print("held", worker.pid, flush=True)
    sys.stdin.readline()
"""


def start(script: str, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert read_until(proc.stdout, "held"), proc.stderr.read()
    return proc


def read_until(stream, text: str, timeout: float = TIMEOUT) -> str | None:
    """Lines of ``stream`` up to one containing ``text`` (None at EOF or after ``timeout``)."""
    seen, deadline = "", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], 0.2)
        if ready:
            line = stream.readline()
            if not line:
                return None
            seen += line
            if text in line:
                return seen
    return None


def release(proc: subprocess.Popen) -> None:
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.wait(timeout=TIMEOUT) == 0, proc.stderr.read()


def run(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=TIMEOUT, **kwargs)


@pytest.fixture
def build(tmp_path):
    return write_build(tmp_path / "build", make_catalog(1), kept=3, rejected=0)


def test_second_writer_is_refused_in_one_line_naming_the_running_generate(build):
    command = ["generate", "--out", str(build), "--images-per-concept", "41"]
    holder = start(PAUSED_GENERATE, *command)
    try:
        manifest = (build / "manifest.jsonl").read_bytes()
        second = run("generate", "--out", build, "--preset", "tiny")
        assert second.returncode == 1
        [line] = second.stderr.strip().splitlines()
        assert line.startswith(f"error: {build.resolve()}: another isekai-gen is writing this build folder: ")
        assert f"`isekai-gen generate --out {build} --images-per-concept 41`" in line
        assert f"pid {holder.pid} on {socket.gethostname()}" in line and "--wait" in line
        # The case: filter started while generate extends the build is refused, not run on old rows.
        refused = run("filter", "--out", build)
        assert refused.returncode == 1 and "another isekai-gen is writing" in refused.stderr
        assert (build / "manifest.jsonl").read_bytes() == manifest
    finally:
        release(holder)


def test_wait_waits_for_the_holder_then_runs(build):
    holder = start(HOLDER, build, "isekai-gen export --out x")
    try:
        waiter = subprocess.Popen([EXE, "preview", "--wait", str(build)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        assert read_until(waiter.stderr, "waiting for `isekai-gen export --out x`"), "no waiting line"
        assert waiter.poll() is None and not (build / "preview").exists()
    finally:
        release(holder)
    assert waiter.wait(timeout=TIMEOUT) == 0, waiter.stderr.read()
    assert (build / "preview" / "index.html").is_file()


def test_lock_of_a_killed_writer_is_taken_over_and_its_temporary_files_removed(build):
    before = {p: p.read_bytes() for p in build.rglob("*") if p.is_file()}
    holder = start(KILLED_WRITER, build)
    leftovers = sorted(p.relative_to(build) for p in build.rglob(f"{TEMP_MARKER}*"))
    assert len(leftovers) == 8 and Path("export/lcl") in {p.parent for p in leftovers}
    assert json.loads((build / LOCK_NAME).read_text())["pid"] == holder.pid
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=TIMEOUT)

    result = run("preview", build)
    assert result.returncode == 0, result.stderr
    assert sorted(build.rglob(f"{TEMP_MARKER}*")) == []
    assert all(path.read_bytes() == data for path, data in before.items())  # nothing of the build touched
    assert not (build / LOCK_NAME).exists()  # released: the last holder removes the file


def test_a_rerun_right_after_a_kill_runs_although_forked_workers_live_on(build):
    holder = subprocess.Popen([sys.executable, "-c", FORKING_HOLDER, str(build)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = read_until(holder.stdout, "held")
    assert line, holder.stderr.read()
    worker = int(line.split()[-1])
    try:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=TIMEOUT)
        os.kill(worker, 0)  # the worker still runs (it would have kept the lock)
        result = run("preview", build)
        assert result.returncode == 0, result.stderr
        assert not (build / LOCK_NAME).exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker, signal.SIGKILL)


# A forked child that leaves the lock's with block as its parent does (and exits normally); the
# parent, once the child is gone, checks with another open file that the lock is still held.
FORK_LEAVING_THE_BLOCK = """
import fcntl, os, sys
from pathlib import Path
from isekai_gen.lock import LOCK_NAME, build_lock
out = Path(sys.argv[1])
with build_lock(out, "parent"):
    (out / "kept").write_text("x")
    child = os.fork()
    if child:
        os.waitpid(child, 0)
        with open(out / LOCK_NAME, "rb") as other:
            try:
                fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print("still locked")
"""


def test_a_forked_child_leaving_the_lock_block_leaves_the_parents_lock_alone(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-c", FORK_LEAVING_THE_BLOCK, str(out)], capture_output=True,
                            text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["still locked"]
    assert (out / "kept").exists() and not (out / LOCK_NAME).exists()


def test_generation_shards_share_the_folder_but_keep_other_writers_out(build):
    shard0 = start(HOLDER, build, "isekai-gen generate --shard 0/2", "0/2")
    shard1 = start(HOLDER, build, "isekai-gen generate --shard 1/2", "1/2")
    try:
        other = run("preview", build)
        assert other.returncode == 1
        assert "`isekai-gen generate --shard 0/2`" in other.stderr and "`isekai-gen generate --shard 1/2`" in other.stderr
        twin = subprocess.run([sys.executable, "-c", HOLDER, str(build), "twin", "0/2"], capture_output=True,
                              text=True, timeout=TIMEOUT, input="\n")
        assert twin.returncode == 1 and "`isekai-gen generate --shard 0/2`" in twin.stderr
        assert "--shard 1/2" not in twin.stderr
    finally:
        release(shard0)
        release(shard1)
    assert run("preview", build).returncode == 0
    assert sorted(p.name for p in build.glob(".isekai-gen*")) == []  # the shards' lock files and its own tidied


@pytest.mark.parametrize("args", [
    ["build", "--preset", "tiny", "--out", "{out}"],
    ["generate", "--preset", "tiny", "--out", "{out}"],
    ["filter", "--out", "{out}"],
    ["filter", "--out", "{out}", "--calibrate"],
    ["episodes", "--out", "{out}"],
    ["export", "--out", "{out}"],
    ["preview", "{out}"],
    ["splits", "build", "--dataset", "eurosat", "--root", "{out}", "--out", "{out}"],
    ["splits", "build-all", "--roots", "{out}/ROOTS.yaml", "--out", "{out}"],
])
def test_every_writing_command_takes_the_lock(tmp_path, args):
    """The holder is this test process's own flock on the file (a different open file than the
    command's, so it conflicts as another process's would)."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text("{}")
    with open(out / LOCK_NAME, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        handle.write(json.dumps({"host": "h", "pid": 1, "command": "isekai-gen holder", "since": "now"}))
        handle.flush()
        result = CliRunner().invoke(main, [a.format(out=out) for a in args])
    assert result.exit_code == 1, result.output
    assert "another isekai-gen is writing this build folder: `isekai-gen holder` (pid 1 on h" in result.output
    assert "--wait" in result.output


def test_lock_is_reentrant_and_a_refused_run_into_a_new_folder_leaves_nothing(tmp_path):
    out = tmp_path / "new"
    with build_lock(out, "outer"), build_lock(out, "inner"):
        assert json.loads((out / LOCK_NAME).read_text())["command"] == "outer"
    assert not out.exists()  # it wrote nothing, so the folder it made is gone again
    result = run("build", "--out", out, "--set", "generation.steps=two")
    assert result.returncode == 1 and not out.exists()
