"""A build in a bucket holds a lock object across machines (issue 25 item 6), against conftest's
S3 test double (moto's server on loopback, which honours ``If-None-Match`` and ``If-Match``).

"Another machine" is a second ``isekai-gen`` process with its own mirror folder
(``ISEKAI_GEN_MIRRORS``), so the local mirror lock does not see it: only the bucket's lock does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import S3_BUCKET as BUCKET

pytest.importorskip("s3fs")

EXE = str(Path(sys.executable).parent / "isekai-gen")
LOCK_OBJECT = ".isekai-gen.lock.json"


def other_machine(tmp_path, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "ISEKAI_GEN_MIRRORS": str(tmp_path / "other-machine-mirrors")}
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, env=env, timeout=120, check=False)


def test_a_second_machine_is_refused_in_one_line_naming_the_holder(s3, tmp_path):
    from isekai_gen.storage import opened

    url = f"s3://{BUCKET}/two-machines"
    with opened(url, command="isekai-gen build --out " + url) as session:
        record = json.loads(s3.cat_file(f"{BUCKET}/two-machines/{LOCK_OBJECT}"))
        assert record["pid"] == os.getpid() and record["command"] == f"isekai-gen build --out {url}"
        refused = other_machine(tmp_path, "preview", url)
        (session.mirror / "run.json").write_text("{}\n")
    assert refused.returncode == 1
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith(f"error: {url}: another isekai-gen is writing this build: `isekai-gen build --out {url}` "
                           f"(pid {os.getpid()} on ")
    assert "--wait" in line and "taken over" in line
    s3.invalidate_cache()
    assert s3.find(f"{BUCKET}/two-machines") == [f"{BUCKET}/two-machines/run.json"]  # released: object gone


def test_a_stale_lock_is_taken_over_and_only_one_of_two_takers_wins(s3, tmp_path):
    from isekai_gen.storage.bucket_lock import BucketLock
    from isekai_gen.storage.remote import connect

    url = f"s3://{BUCKET}/stale"
    key = f"{BUCKET}/stale/{LOCK_OBJECT}"
    # A machine that died holding the lock (a TTL already run out, so that the test need not wait).
    s3.pipe_file(key, json.dumps({"holder": "dead", "host": "gone", "pid": 7, "command": "isekai-gen build",
                                  "ttl_s": -1, "since": "then"}).encode())
    s3.invalidate_cache()
    stale_etag = s3.info(key)["ETag"]
    first, second = BucketLock(connect(url), "first"), BucketLock(connect(url), "second")
    assert first.take_over(stale_etag)
    assert not second.take_over(stale_etag)  # the same stale ETag: the store lets one replace it
    assert json.loads(s3.cat_file(key))["command"] == "first"
    first.release()
    s3.invalidate_cache()
    assert not s3.exists(key)

    s3.pipe_file(key, json.dumps({"holder": "dead", "command": "isekai-gen build", "ttl_s": -1}).encode())
    result = other_machine(tmp_path, "preview", url)  # takes it over, then refuses: no build there
    assert "took over the lock of `isekai-gen build`" in result.stderr
    s3.invalidate_cache()
    assert not s3.exists(key)


def test_a_lock_taken_over_during_the_run_stops_the_upload(s3, monkeypatch, caplog):
    from isekai_gen.errors import UserError
    from isekai_gen.storage import bucket_lock, opened

    monkeypatch.setattr(bucket_lock, "HEARTBEAT_S", 0.05)
    url = f"s3://{BUCKET}/lost"
    with pytest.raises(UserError, match=r"the build lock was taken over by `isekai-gen build` .*"
                                        r"nothing of this run was uploaded"):
        with opened(url, command="isekai-gen export") as session:
            (session.mirror / "run.json").write_text("{}\n")
            # Another machine judged this lock stale and replaced it; this run's next renewal finds out.
            s3.pipe_file(f"{BUCKET}/lost/{LOCK_OBJECT}", json.dumps({"command": "isekai-gen build"}).encode())
            for _ in range(600):  # bounded wait for the heartbeat thread (no time asserted)
                if any("the lock was taken over" in r.getMessage() for r in caplog.records):
                    break
                time.sleep(0.05)
    s3.invalidate_cache()
    assert not s3.exists(f"{BUCKET}/lost/run.json")
    assert s3.exists(f"{BUCKET}/lost/{LOCK_OBJECT}")  # the other machine's lock is left alone


def test_a_rerun_on_the_machine_of_a_killed_holder_need_not_wait_for_the_ttl(s3, tmp_path):
    import socket

    from temp_names import DEAD_PID

    url, key = f"s3://{BUCKET}/killed-here", f"{BUCKET}/killed-here/{LOCK_OBJECT}"
    s3.pipe_file(key, json.dumps({"holder": "killed", "host": socket.gethostname(), "pid": DEAD_PID,
                                  "command": "isekai-gen build", "ttl_s": 120}).encode())
    result = other_machine(tmp_path, "preview", url)
    assert "took over the lock of `isekai-gen build`" in result.stderr, result.stderr
    s3.pipe_file(key, json.dumps({"holder": "alive", "host": "another-host", "pid": DEAD_PID,
                                  "command": "isekai-gen build", "ttl_s": 120}).encode())
    refused = other_machine(tmp_path, "preview", url)  # another host's pid says nothing here: refused
    assert refused.returncode == 1 and "another isekai-gen is writing this build" in refused.stderr
