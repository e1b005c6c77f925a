"""`isekai-gen review` without a browser: decisions, page data, and the server's refusals.

The server runs for real (uvicorn on a loopback port in a thread); requests are raw HTTP from
http.client, so a path goes out byte for byte as written (no client-side normalisation of `..`).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import multiprocessing
import socket
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from isekai_gen.curation import decisions
from isekai_gen.curation.data import BuildData
from isekai_gen.curation.thumbs import THUMB, thumbnail_path
from isekai_gen.errors import UserError
from isekai_gen.fileio import TEMP_MARKER
from isekai_gen.review.app import create_app, make_server
from test_episodes import make_catalog, set_manifest_field, write_build
from test_preview import unfilter


@pytest.fixture
def build(tmp_path):
    return write_build(tmp_path / "build", make_catalog(2), kept=5, rejected=2)


@contextlib.contextmanager
def running(server) -> "tuple[str, int]":
    """Run a ``uvicorn.Server`` in a thread until the block ends; yield (host, port) to connect to."""
    server.config.port = 0  # any free port
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("review server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        thread.join(10)


def request(address, method: str, path: str, body: dict | None = None, headers: dict | None = None):
    connection = http.client.HTTPConnection(*address, timeout=10)
    payload = None if body is None else json.dumps(body)
    sent = {"Content-Type": "application/json"} if body is not None else {}
    connection.request(method, path, body=payload, headers={**sent, **(headers or {})})
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()


@pytest.fixture
def server(build):
    with running(make_server(build, host="127.0.0.1", port=0)[0]) as address:
        yield address


KNOWN_JOBS = {f"{c}-{i:05d}" for c in ("iso0", "real0", "iso1", "real1") for i in range(8)}


def test_decisions_write_the_list_at_once_and_undo_per_tab(build):
    known = KNOWN_JOBS
    decisions.decide(build, known, ["iso0-00001"], "reject", "tab-a")
    decisions.decide(build, known, ["real1-00002"], "reject", "tab-b")
    decisions.decide(build, known, ["iso0-00003"], "reject", "tab-a")
    assert (build / "manual_rejects.txt").read_text() == "iso0-00001\niso0-00003\nreal1-00002\n"
    assert decisions.decide(build, known, ["iso0-00003"], "reject", "tab-a") is None  # no-op: no history
    # tab-b's undo reverts tab-b's decision, not tab-a's newer one.
    assert decisions.undo(build, known, "tab-b")["job_ids"] == ["real1-00002"]
    assert (build / "manual_rejects.txt").read_text() == "iso0-00001\niso0-00003\n"
    assert decisions.undo(build, known, "tab-b") is None
    decisions.decide(build, known, ["iso0-00001"], "restore", "tab-a")
    assert decisions.undo(build, known, "tab-a")["job_ids"] == ["iso0-00001"]   # the restore is undone
    assert decisions.undo(build, known, "tab-a")["job_ids"] == ["iso0-00003"]
    assert (build / "manual_rejects.txt").read_text() == "iso0-00001\n"
    history = decisions.read_history(build)
    assert [(r["seq"], r["action"], r["job_ids"], r["undoes"]) for r in history] == [
        (1, "reject", ["iso0-00001"], None), (2, "reject", ["real1-00002"], None), (3, "reject", ["iso0-00003"], None),
        (4, "undo", ["real1-00002"], 2), (5, "restore", ["iso0-00001"], None), (6, "undo", ["iso0-00001"], 5),
        (7, "undo", ["iso0-00003"], 3)]
    assert decisions.replay(history) == {"iso0-00001"}
    with pytest.raises(UserError, match="unknown job id 'iso9-00001'"):
        decisions.decide(build, known, ["iso9-00001"], "reject", "tab-a")


def test_bulk_decision_is_one_record_and_one_undo(build):
    decisions.decide(build, KNOWN_JOBS, ["iso0-00001"], "reject", "tab")
    record = decisions.decide(build, KNOWN_JOBS, ["iso0-00003", "iso0-00001", "iso0-00002"], "reject", "tab")
    assert record["job_ids"] == ["iso0-00002", "iso0-00003"]          # the one already listed is no change
    assert decisions.undo(build, KNOWN_JOBS, "tab")["job_ids"] == ["iso0-00002", "iso0-00003"]
    assert (build / "manual_rejects.txt").read_text() == "iso0-00001\n"


def test_reviewed_marks_count_progress_without_touching_the_list(build):
    decisions.decide(build, KNOWN_JOBS, ["iso0-00001", "iso0-00002"], "reviewed", "tab")
    decisions.decide(build, KNOWN_JOBS, ["iso0-00003"], "reject", "tab")          # a decision is a review too
    assert decisions.decide(build, KNOWN_JOBS, ["iso0-00002"], "reviewed", "tab") is None
    assert (build / "manual_rejects.txt").read_text() == "iso0-00003\n"
    assert decisions.reviewed(decisions.read_history(build)) == {"iso0-00001", "iso0-00002", "iso0-00003"}
    decisions.undo(build, KNOWN_JOBS, "tab")                                       # the reject: still looked at
    assert decisions.undo(build, KNOWN_JOBS, "tab")["refused"] is None             # the mark: unmarked
    assert decisions.reviewed(decisions.read_history(build)) == {"iso0-00003"}
    assert not (build / "manual_rejects.txt").read_text()
    data = BuildData(build)
    assert data.reviewed() == {"iso0-00003"} and data.view().reviewable == 28     # 4 concepts x 7 with an image


def test_a_rejects_reason_is_written_after_its_id(build):
    decisions.decide(build, KNOWN_JOBS, ["iso0-00002", "iso0-00001"], "reject", "tab", reason="artefact")
    decisions.decide(build, KNOWN_JOBS, ["iso0-00003"], "reject", "tab")
    assert (build / "manual_rejects.txt").read_text() == "iso0-00001  # artefact\niso0-00002  # artefact\niso0-00003\n"
    from isekai_gen.filtering.manifest import read_manual_entries
    assert read_manual_entries(build / "manual_rejects.txt", KNOWN_JOBS) == {
        "iso0-00001": "artefact", "iso0-00002": "artefact", "iso0-00003": None}   # what the filter reads
    with pytest.raises(UserError, match="reason 'ugly'"):
        decisions.decide(build, KNOWN_JOBS, ["iso0-00004"], "reject", "tab", reason="ugly")
    with pytest.raises(UserError, match="reason 'text'"):
        decisions.decide(build, KNOWN_JOBS, ["iso0-00004"], "restore", "tab", reason="text")


def test_undo_refuses_when_another_tab_changed_the_image_since(build):
    """Tab A rejects Y; tab B restores Y and rejects it again; A's undo must not restore Y."""
    decisions.decide(build, KNOWN_JOBS, ["iso0-00004"], "reject", "tab-a")
    decisions.decide(build, KNOWN_JOBS, ["iso0-00005"], "reject", "tab-a")
    decisions.decide(build, KNOWN_JOBS, ["iso0-00005"], "restore", "tab-b")
    decisions.decide(build, KNOWN_JOBS, ["iso0-00005"], "reject", "tab-b")
    refused = decisions.undo(build, KNOWN_JOBS, "tab-a")
    assert (refused["refused"], refused["undoes"], refused["job_ids"]) == ("changed since by another tab", 2, ["iso0-00005"])
    assert (build / "manual_rejects.txt").read_text() == "iso0-00004\niso0-00005\n"
    # The refusal consumed that decision: A's next undo is its one before, still untouched.
    assert decisions.undo(build, KNOWN_JOBS, "tab-a")["refused"] is None
    assert (build / "manual_rejects.txt").read_text() == "iso0-00005\n"
    # A hand edit of the list is a change since, too.
    decisions.decide(build, KNOWN_JOBS, ["iso0-00006"], "reject", "tab-c")
    (build / "manual_rejects.txt").write_text("iso0-00005\n")
    assert decisions.undo(build, KNOWN_JOBS, "tab-c")["refused"] == "changed since by another tab"


def test_torn_history_line_is_cut_before_the_next_append(build):
    decisions.decide(build, KNOWN_JOBS, ["iso0-00001"], "reject", "tab")
    with open(build / decisions.HISTORY, "ab") as handle:
        handle.write(b'{"seq": 2, "action": "rej')   # a writer killed mid-line
    decisions.decide(build, KNOWN_JOBS, ["iso0-00002"], "reject", "tab")
    assert [r["seq"] for r in decisions.read_history(build)] == [1, 2]
    with open(build / decisions.HISTORY, "a") as handle:
        handle.write('{"seq": 3, "action": "maybe"}\n')
    with pytest.raises(UserError, match=r"decisions.jsonl:3: .*required property"):
        decisions.undo(build, KNOWN_JOBS, "tab")


def _decide_and_die_at(out_dir: str, step: str, count: int) -> None:
    """Make decisions in this forked process and SIGKILL it at the ``count``-th ``step`` of a write:
    ``fsync`` (the history line, then the list's temporary file) or ``replace`` (the list's rename)."""
    import os
    import signal

    calls = {"n": 0}
    real = {"fsync": os.fsync, "replace": os.replace}

    def hook(*args):
        calls["n"] += 1
        if calls["n"] == count:
            os.kill(os.getpid(), signal.SIGKILL)
        return real[step](*args)

    setattr(os, step, hook)
    out = Path(out_dir)
    for job_id in ("iso0-00001", "iso0-00002", "iso0-00003"):
        decisions.decide(out, KNOWN_JOBS, [job_id], "reject", "tab")
    decisions.undo(out, KNOWN_JOBS, "tab")


@pytest.mark.parametrize("step,count", [("fsync", n) for n in range(1, 9)] + [("replace", n) for n in range(1, 5)])
def test_a_kill_at_any_write_step_never_separates_decision_and_history(build, step, count):
    context = multiprocessing.get_context("fork")
    worker = context.Process(target=_decide_and_die_at, args=(str(build), step, count))
    worker.start()
    worker.join(60)
    assert worker.exitcode == -9                     # killed where asked
    decisions.recover(build, KNOWN_JOBS)             # what a restart (or the next writer) does
    history = decisions.read_history(build)
    listed = set((build / "manual_rejects.txt").read_text().split()) if (build / "manual_rejects.txt").exists() else set()
    assert listed == decisions.replay(history)       # every durable record is in the list, and only those
    assert not list(build.glob(f"{TEMP_MARKER}*"))   # the killed write's temporary file is gone
    # Decisions go on from here, and the undo history stays the list's: a recorded decision can be undone.
    decisions.decide(build, KNOWN_JOBS, ["real0-00001"], "reject", "tab")
    assert decisions.undo(build, KNOWN_JOBS, "tab")["refused"] is None
    assert set((build / "manual_rejects.txt").read_text().split()) == decisions.replay(decisions.read_history(build))


def _reject_many(out_dir: str, job_ids: list[str], client: str) -> None:
    for job_id in job_ids:
        decisions.decide(Path(out_dir), KNOWN_JOBS, [job_id], "reject", client)


def test_concurrent_writers_never_lose_a_decision(build):
    """Two processes (two servers, or preview --reject-file) and two threads decide at once."""
    jobs = sorted(KNOWN_JOBS)
    context = multiprocessing.get_context("fork")
    procs = [context.Process(target=_reject_many, args=(str(build), jobs[i::4], f"p{i}")) for i in range(2)]
    threads = [threading.Thread(target=_reject_many, args=(str(build), jobs[i::4], f"t{i}")) for i in (2, 3)]
    for worker in procs + threads:
        worker.start()
    for worker in procs + threads:
        worker.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert (build / "manual_rejects.txt").read_text().split() == jobs
    history = decisions.read_history(build)
    assert sorted(r["seq"] for r in history) == list(range(1, len(jobs) + 1))


def test_overview_data_pairs_partners_and_counts_pending(build):
    set_manifest_field(build, "real0-00002", kept=False, reject_reason="manual_reject")
    (build / "manual_rejects.txt").write_text("iso0-00001\n")
    data = BuildData(build)
    view = data.view()
    assert [[c["id"] for c in g["concepts"]] for g in view.overview["groups"]] == [["iso0", "real0"], ["iso1", "real1"]]
    iso0 = view.overview["groups"][0]["concepts"][0]
    assert (iso0["generated"], iso0["kept"], iso0["rejects"]) == (8, 5, {"failed": 1, "low_alignment": 2})
    # Best-aligned kept images first.
    strip = [view.rows[j]["scores"]["alignment"] for j, _ in iso0["strip"]]
    assert strip == sorted(strip, reverse=True) and len(strip) == 5
    from isekai_gen.curation.data import pending
    assert pending(view.rows, data.manual(view)) == {"reject": ["iso0-00001"], "restore": ["real0-00002"]}
    assert data.view() is view                       # cached while the manifest is unchanged
    set_manifest_field(build, "iso1-00000", kept=False, reject_reason="duplicate", duplicate_of="iso1-00001")
    assert data.view() is not view and data.view().rows["iso1-00000"]["duplicate_of"] == "iso1-00001"


def test_api_decisions_and_thumbnails(server, build):
    status, _, body = request(server, "POST", "/api/decide", {"job_id": "iso1-00002", "action": "reject", "client": "t"})
    assert status == 200 and json.loads(body)["pending_count"] == 1
    overview = json.loads(request(server, "GET", "/api/overview")[2])
    iso1 = overview["groups"][1]["concepts"][0]
    assert (iso1["id"], iso1["kept"], iso1["kept_after"]) == ("iso1", 5, 4)   # the pending reject counted
    concept = json.loads(request(server, "GET", "/api/concept/real0")[2])
    assert (concept["previous"], concept["next"]) == ("iso0", "iso1")           # what the n/p keys walk
    assert (build / "manual_rejects.txt").read_text() == "iso1-00002\n"
    status, _, body = request(server, "GET", "/api/concept/iso1")
    page = json.loads(body)
    assert status == 200 and page["manual"] == ["iso1-00002"] and page["partner"]["id"] == "real1"
    assert len(page["items"]) == 8 and len(page["partner_kept"]) == 5
    # A form post (what another web site could make the browser send) is refused.
    status, _, _ = request(server, "POST", "/api/decide", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415
    status, headers, body = request(server, "GET", "/thumb/iso1-00002")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    row = BuildData(build).view().rows["iso1-00002"]
    cached = thumbnail_path(build, row["sha256"])
    assert cached.read_bytes() == body
    with Image.open(cached) as image:
        assert image.format == "JPEG" and max(image.size) == THUMB
    status, _, body = request(server, "GET", "/image/iso1-00002")
    assert status == 200 and body == (build / row["image"]).read_bytes()
    broken = build / "images/iso0/iso0-00002.png"
    broken.write_bytes(b"not a png")
    status, _, body = request(server, "GET", "/thumb/iso0-00002")
    assert status == 422 and f"{broken}: corrupt or unreadable image".encode() in body
    # Another host name (a DNS-rebinding page) cannot reach the loopback server.
    assert request(server, "GET", "/api/overview", headers={"Host": "attacker.example"})[0] == 400


def raw_post(address, body: bytes, headers: dict | None = None, path: str = "/api/decide"):
    """POST ``body`` byte for byte (http.client would encode a str)."""
    connection = http.client.HTTPConnection(*address, timeout=20)
    connection.request("POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
    response = connection.getresponse()
    return response.status, response.read()


@pytest.mark.parametrize("body,status", [
    (b"\xff\xfe{}", 400),                                   # not UTF-8
    (b"[" * 100000, 400),                                   # nests past the parser's recursion limit
    (b'{"job_ids": "iso0-00001", "action": "reject"}', 400),  # not a list
    (b'["iso0-00001"]', 400),                               # not an object
    (b"{" + b" " * (300 * 1024) + b"}", 413),               # over the cap
])
def test_malformed_and_oversized_decision_bodies_are_refused_cleanly(server, build, body, status):
    answer_status, answer = raw_post(server, body)
    assert answer_status == status and "error" in json.loads(answer)
    assert not (build / "manual_rejects.txt").exists()
    # A declared length over the cap is refused before a byte of the body is read.
    connection = http.client.HTTPConnection(*server, timeout=10)
    connection.putrequest("POST", "/api/decide")
    for name, value in (("Content-Type", "application/json"), ("Content-Length", str(2 * 1024 ** 3))):
        connection.putheader(name, value)
    connection.endheaders()
    assert connection.getresponse().status == 413


def test_a_body_that_never_arrives_times_out_and_others_are_served_meanwhile(build, monkeypatch):
    from isekai_gen.review import app as review_app

    monkeypatch.setattr(review_app, "BODY_SECONDS", 1.0)
    monkeypatch.setattr(review_app, "HEADER_SECONDS", 1.0)
    with running(make_server(build, host="127.0.0.1", port=0)[0]) as address:
        slow = socket.create_connection(address, timeout=10)
        slow.sendall(b"POST /api/decide HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{")
        headers_only = socket.create_connection(address, timeout=10)
        headers_only.sendall(b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\n")   # never ends its headers
        assert request(address, "GET", "/api/state")[0] == 200   # the stalled ones hold up no one
        assert slow.recv(100).startswith(b"HTTP/1.1 408")
        assert headers_only.recv(100) == b""                      # closed by the server
        slow.close()
        headers_only.close()


def test_api_undo_refused_after_another_tab_names_the_current_state(server, build):
    for action, client in (("reject", "a"), ("restore", "b"), ("reject", "b")):
        assert request(server, "POST", "/api/decide", {"job_ids": ["iso0-00001"], "action": action, "client": client})[0] == 200
    status, _, body = request(server, "POST", "/api/undo", {"client": "a"})
    answer = json.loads(body)
    assert answer["reason_choices"] == ["wrong concept", "artefact", "text", "near-duplicate"]
    assert status == 409 and answer["error"] == "undo refused: changed since by another tab (iso0-00001 is rejected)"
    assert answer["manual"] == ["iso0-00001"] and answer["smoke_test"] == 32   # the banner survives a decision
    assert json.loads(request(server, "GET", "/api/state")[2])["manual"] == ["iso0-00001"]


@pytest.mark.parametrize("path", [
    "/image/../../run.json", "/image/..%2F..%2Frun.json", "/image/%2e%2e%2f%2e%2e%2frun.json",
    "/image/..%252F..%252Frun.json", "/thumb/..%2Fmanifest.jsonl", "/image/manifest.jsonl",
    "/static/../../manifest.jsonl", "/static/..%2F..%2F..%2Fmanifest.jsonl", "/image/iso0-00007",  # failed job
])
def test_paths_outside_the_manifest_images_are_refused(server, build, path):
    (build / "run.json").write_text('{"secret": 1}')
    status, _, body = request(server, "GET", path)
    assert status in (403, 404), (status, body)
    assert b"secret" not in body and b"job_id" not in body


def test_images_pointing_outside_are_refused(build, tmp_path):
    outside = tmp_path / "outside.png"
    Image.new("RGB", (4, 4)).save(outside)
    (build / "images/iso0/iso0-00001.png").unlink()
    (build / "images/iso0/iso0-00001.png").symlink_to(outside)
    with running(make_server(build, port=0)[0]) as address:
        for path in ("/image/iso0-00001", "/thumb/iso0-00001"):
            status, _, body = request(address, "GET", path)
            assert status == 403 and b"points outside" in body, path
    set_manifest_field(build, "iso0-00000", image="../outside.png")
    with pytest.raises(UserError, match="points outside"):
        make_server(build, port=0)


def test_non_loopback_bind_requires_the_printed_token(build):
    with pytest.raises(UserError, match="needs an access token"):
        create_app(build, host="0.0.0.0")
    server, url = make_server(build, host="0.0.0.0", port=0)
    token = url.split("?token=", 1)[1]
    assert len(token) >= 32 and make_server(build, host="0.0.0.0", port=0)[1] != url  # random each time
    with running(server) as address:
        for path in ("/", "/api/overview", "/thumb/iso0-00000", "/?token=wrong", "/static/review.js"):
            assert request(address, "GET", path)[0] == 403, path
        assert request(address, "POST", "/api/decide", {"job_id": "iso0-00000", "action": "reject"})[0] == 403
        status, headers, _ = request(address, "GET", f"/concept/iso0?token={token}")
        assert status == 303 and headers["location"] == "/concept/iso0"
        cookie = headers["set-cookie"].split(";", 1)[0]
        assert "HttpOnly" in headers["set-cookie"]
        status, _, body = request(address, "GET", "/api/overview", headers={"Cookie": cookie})
        assert status == 200 and json.loads(body)["generated"] == 32
    assert not (build / "manual_rejects.txt").exists()


def test_cli_review_one_line_errors(tmp_path, build):
    from isekai_gen.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["review", str(build), "--port", str(port)])
    assert result.exit_code == 1
    assert result.output == (f"error: review: cannot listen on 127.0.0.1:{port} (Address already in use); "
                             "choose another --port or --host\n")
    result = CliRunner().invoke(main, ["review", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output == f"error: {tmp_path / 'manifest.jsonl'}: not found; run `isekai-gen generate --out {tmp_path}` first\n"


def test_unfiltered_build_pages_show_not_scored(build):
    unfilter(build)
    with running(make_server(build, port=0)[0]) as address:
        status, _, body = request(address, "GET", "/api/overview")
        overview = json.loads(body)
        assert status == 200 and overview["kept"] == 0
        assert overview["groups"][0]["concepts"][0]["rejects"] == {"failed": 1, "not scored": 7}
        status, _, body = request(address, "GET", "/api/concept/iso0")
        items = json.loads(body)["items"]
        assert status == 200 and {i["verdict"] for i in items} == {"not scored", "failed"}
        assert all(value is None for i in items for value in i["scores"].values())


def test_cross_origin_decisions_are_refused(server, build):
    decision = {"job_id": "iso0-00001", "action": "reject", "client": "t"}
    port = server[1]
    for origin in ("http://attacker.example", "null", f"http://127.0.0.1:{port + 1}"):
        status, _, body = request(server, "POST", "/api/decide", decision, headers={"Origin": origin})
        assert status == 403 and b"own pages" in body, origin
    assert not (build / "manual_rejects.txt").exists()
    status, _, _ = request(server, "POST", "/api/decide", decision, headers={"Origin": f"http://127.0.0.1:{port}"})
    assert status == 200 and (build / "manual_rejects.txt").read_text() == "iso0-00001\n"


def test_torn_cached_thumbnail_is_made_again(server, build):
    row = BuildData(build).view().rows["iso0-00001"]
    status, _, whole = request(server, "GET", "/thumb/iso0-00001")
    cached = thumbnail_path(build, row["sha256"])
    assert status == 200 and cached.read_bytes() == whole
    for torn in (b"", whole[: len(whole) // 2]):     # what a power cut can leave of an unsynced file
        cached.write_bytes(torn)
        status, _, body = request(server, "GET", "/thumb/iso0-00001")
        assert status == 200 and body == whole and cached.read_bytes() == whole
