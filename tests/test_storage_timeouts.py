"""A store that stops answering: one ``error:`` line, not a silent hang (issue 25 item 6).

The test double is a loopback TCP server that accepts every connection and never sends a byte
(what a paused S3 server looks like to a client). The read timeout is shortened through fsspec's
own configuration variable, as a user would; the command must still give up after its bounded
attempts. The subprocess timeout bounds the wait, no time is asserted.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("s3fs")

EXE = str(Path(sys.executable).parent / "isekai-gen")


@pytest.fixture
def silent_server():
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def accept_forever():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:  # closed at teardown
                return
            accepted.append(connection)  # kept open, never answered

    thread = threading.Thread(target=accept_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    listener.close()
    for connection in accepted:
        connection.close()


@pytest.mark.parametrize("args", [["preview", "{url}"], ["build", "--preset", "tiny", "--out", "{url}"]])
def test_a_store_that_stops_answering_is_one_error_line(silent_server, tmp_path, args):
    endpoint, accepted = silent_server
    url = "s3://isekai-test/paused"
    env = {**os.environ, "FSSPEC_S3_ENDPOINT_URL": endpoint, "FSSPEC_S3_KEY": "testing",
           "FSSPEC_S3_SECRET": "testing", "ISEKAI_GEN_MIRRORS": str(tmp_path / "mirrors"),
           "FSSPEC_S3_CONFIG_KWARGS": json.dumps({"read_timeout": 1, "connect_timeout": 1})}
    result = subprocess.run([EXE, *[arg.format(url=url) for arg in args]], capture_output=True, text=True,
                            env=env, timeout=300, check=False)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {url}: the storage server stopped answering (")
    assert "rerun the same command" in line
    assert accepted, "the command never reached the server"
