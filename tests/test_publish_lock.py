"""``publish`` holds the build folder's lock shared (issue 25 item 6): a running writer keeps it
out (one line, or ``--wait``), a publish keeps writers out, two publishes run side by side.
Holders are separate processes (test_lock's HOLDER and a paused publish); the contender is the
installed ``isekai-gen``. Every wait is bounded by a subprocess timeout."""

from __future__ import annotations

import subprocess
import sys

import pytest
from test_export_helpers import make_build
from test_lock import EXE, HOLDER, TIMEOUT, read_until, release, run, start

from isekai_gen.export.stage import run_export
from isekai_gen.lock import LOCK_NAME

# Test double of a publish mid-upload: the real ``publish`` (lock, checks) with the dry run's
# listing paused until stdin gets a line.
PAUSED_PUBLISH = """
import sys
from isekai_gen.export import publish as module

real_listing = module.check_folder

def paused(folder):
    print("held", flush=True)
    sys.stdin.readline()
    return real_listing(folder)

module.check_folder = paused
module.publish(sys.argv[1], "org/name", dry_run=True)
"""


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("publish") / "build"
    config, catalog = make_build(out)
    run_export(config, out, catalog)
    assert (out / "run.json").is_file()
    return out


def test_a_running_writer_keeps_publish_out_in_one_line(build):
    holder = start(HOLDER, build, "isekai-gen export --out x")
    try:
        refused = run("publish", build / "export" / "hf", "--repo-id", "org/name", "--dry-run")
        assert refused.returncode == 1
        [line] = refused.stderr.strip().splitlines()
        assert line.startswith(f"error: {build.resolve()}: another isekai-gen is writing this build folder: "
                               "`isekai-gen export --out x`") and "--wait" in line
        waiter = subprocess.Popen([EXE, "publish", str(build), "--repo-id", "org/name",
                                   "--dry-run", "--wait"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert read_until(waiter.stderr, "waiting for `isekai-gen export --out x`"), "no waiting line"
    finally:
        release(holder)
    assert waiter.wait(timeout=TIMEOUT) == 0, waiter.stderr.read()
    assert "would upload" in waiter.stdout.read()


def test_a_publish_keeps_writers_out_but_not_another_publish(build):
    publisher = subprocess.Popen([sys.executable, "-c", PAUSED_PUBLISH, str(build / "export")], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert read_until(publisher.stdout, "held"), publisher.stderr.read()
    try:
        writer = run("export", "--out", build)
        assert writer.returncode == 1
        [line] = writer.stderr.strip().splitlines()
        assert "another isekai-gen is writing this build folder: `isekai-gen publish` (reading it)" in line
        second = run("publish", build, "--repo-id", "org/name", "--dry-run")
        assert second.returncode == 0, second.stderr
    finally:
        publisher.stdin.write("\n")
        publisher.stdin.flush()
        assert publisher.wait(timeout=TIMEOUT) == 0, publisher.stderr.read()
    assert not (build / LOCK_NAME).exists()  # the last reader removed the lock file
