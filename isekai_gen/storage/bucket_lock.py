"""One writer per build in a bucket, across machines: a lock object written with a conditional put.

The local lock (``lock.build_lock``) guards a machine's mirror; two machines have two mirrors, so
a build in a bucket also holds ``URL/.isekai-gen.lock.json``:

- **Taken** with ``PutObject`` and ``If-None-Match: *``: S3 creates the object only if no object
  has the key, atomically (AWS S3 since 2024-08; MinIO; moto). A second machine gets HTTP 412
  ``PreconditionFailed`` and refuses in one line naming the holder, or waits (``--wait``).
- **Kept alive** by a heartbeat thread rewriting it every ``HEARTBEAT_S`` with ``If-Match: <its
  ETag>``; the object states its holder, host, pid, command and ``ttl_s``.
- **Stale** when its holder's process on this same host is gone (a rerun right after a kill), or
  when the server's own clock (the ``Date`` of a ``HeadObject`` response against the
  object's ``Last-Modified``, so no two machines' clocks are compared) says it was not renewed
  for its ``ttl_s``: the holder's machine died. It is then **taken over** with ``If-Match`` on
  the stale ETag: of two machines taking over at once exactly one wins, the other gets 412.
- **Released** by ``DeleteObject`` with ``If-Match`` (a lock taken over meanwhile is left alone).
  A run whose heartbeat found the lock taken over uploads nothing (``check`` before the push).

S3 only (s3fs' ``call_s3``); other fsspec backends get a warning that no cross-machine lock is
held (GCS generation preconditions would be the same scheme, not written yet). Generation shards
on several machines share a bucket by design and take no bucket lock. Checked against the
S3 API reference (PutObject ``If-None-Match``/``If-Match``, DeleteObject ``If-Match``), botocore
1.43's ``put_object``/``head_object``/``delete_object`` parameters and s3fs 2026.9's
``call_s3`` and ``translate_boto_error`` (the ``ClientError`` is the raised error's cause).
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterator

from ..errors import UserError
from .failures import storage_errors

if TYPE_CHECKING:
    from .remote import Remote

log = logging.getLogger(__name__)

LOCK_OBJECT = ".isekai-gen.lock.json"
TTL_S = 120          # a lock not renewed for this long belongs to a dead machine
HEARTBEAT_S = 30     # renewals per TTL: 4, so three missed ones (a slow store) are survived
PRECONDITION_CODES = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")


def _precondition_failed(exc: BaseException | None) -> bool:
    """Whether a conditional request was refused (HTTP 412, or 409 for a concurrent one)."""
    while exc is not None:
        response = getattr(exc, "response", None)
        if isinstance(response, dict):
            error = response.get("Error") or {}
            status = str((response.get("ResponseMetadata") or {}).get("HTTPStatusCode", ""))
            return str(error.get("Code")) in PRECONDITION_CODES or status in ("412", "409")
        exc = exc.__cause__ or exc.__context__
    return False


def _died_on_this_machine(record: dict) -> bool:
    """A holder on this host whose process is gone (a rerun right after a kill need not wait for
    the TTL; the caller holds this machine's mirror lock, so no live process here holds it)."""
    pid = record.get("pid")
    if record.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


class BucketLock:
    """The lock object of one remote build; ``acquire`` once, ``release`` at the end."""

    def __init__(self, remote: Remote, command: str):
        self.remote, self.command, self.ttl_s, self.heartbeat_s = remote, command, TTL_S, HEARTBEAT_S
        self.fs = remote.fs
        self.bucket, self.key, _ = self.fs.split_path(remote.key(LOCK_OBJECT))
        self.token = uuid.uuid4().hex
        self.since = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.etag: str | None = None
        self.lost: str | None = None  # who took the lock over while this run held it
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def _body(self) -> bytes:
        return json.dumps({"holder": self.token, "host": socket.gethostname(), "pid": os.getpid(),
                           "command": self.command, "ttl_s": self.ttl_s, "since": self.since}, sort_keys=True).encode()

    def _put(self, **condition) -> None:
        response = self.fs.call_s3("put_object", Bucket=self.bucket, Key=self.key, Body=self._body(),
                                   ContentType="application/json", **condition)
        self.etag = response["ETag"]

    def _current(self) -> tuple[str, dict, float] | None:
        """(ETag, holder record, seconds since its last renewal by the server's clock), or None if free."""
        self.fs.invalidate_cache(f"{self.bucket}/{self.key}")  # s3fs sizes cat_file from its listings
        try:
            head = self.fs.call_s3("head_object", Bucket=self.bucket, Key=self.key)
            body = self.fs.cat_file(f"{self.bucket}/{self.key}")
        except FileNotFoundError:
            return None
        try:
            record = json.loads(body)
        except ValueError:
            record = {}
        date = (head.get("ResponseMetadata") or {}).get("HTTPHeaders", {}).get("date")
        now = email.utils.parsedate_to_datetime(date) if date else datetime.now(timezone.utc)
        return head["ETag"], record if isinstance(record, dict) else {}, (now - head["LastModified"]).total_seconds()

    def _describe(self, record: dict, age: float) -> str:
        return (f"`{record.get('command', '?')}` (pid {record.get('pid', '?')} on {record.get('host', '?')}, "
                f"since {record.get('since', '?')}, renewed {age:.0f} s ago)")

    def acquire(self, *, wait: bool = False, poll_s: float = 5.0) -> None:
        waiting = False
        while True:
            with storage_errors(self.remote.url):
                if self._try_acquire():
                    break
                current = self._current()
            if current is None:
                continue  # released in between
            _, record, age = current
            holder = self._describe(record, age)
            if not wait:
                raise UserError(f"{self.remote.url}: another isekai-gen is writing this build: {holder}; wait for it "
                                "to finish or pass --wait (a lock not renewed for "
                                f"{float(record.get('ttl_s', TTL_S)):.0f} s is taken over)")
            if not waiting:
                log.warning("%s: waiting for %s to finish writing it", self.remote.url, holder)
                waiting = True
            time.sleep(poll_s)
        self._beat = threading.Thread(target=self._heartbeat, name="isekai-gen bucket lock", daemon=True)
        self._beat.start()

    def _try_acquire(self) -> bool:
        """Create the lock object, or take over a stale one; False while a live holder has it."""
        try:
            self._put(IfNoneMatch="*")
        except FileNotFoundError:  # s3fs's NoSuchBucket
            raise UserError(f"{self.remote.url}: bucket {self.bucket!r} not found; create it first") from None
        except OSError as exc:
            if not _precondition_failed(exc):
                raise
            current = self._current()
            if current is None:
                return False  # released in between: the caller looks again
            etag, record, age = current
            died_here = _died_on_this_machine(record)
            if age <= float(record.get("ttl_s", TTL_S)) and not died_here:
                return False
            if not self.take_over(etag):
                return False
            log.warning("%s: took over the lock of %s (%s)", self.remote.url, self._describe(record, age),
                        "its process on this machine is gone" if died_here else "its machine stopped renewing it")
            return True
        return self._verify()

    def take_over(self, stale_etag: str) -> bool:
        """Replace the stale lock object ``stale_etag``; False if another machine replaced it first."""
        try:
            self._put(IfMatch=stale_etag)
        except OSError as exc:
            if _precondition_failed(exc):
                return False
            raise
        return self._verify()

    def _verify(self) -> bool:
        """Read the object back: a store that ignored the condition shows another holder's token."""
        current = self._current()
        return current is not None and current[1].get("holder") == self.token

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self._put(IfMatch=self.etag)
            except Exception as exc:  # noqa: BLE001  (a thread: any failure is logged, the next beat retries)
                if _precondition_failed(exc):
                    self.lost = self._holder_now()
                    log.error("%s: the lock was taken over by %s", self.remote.url, self.lost)
                    return
                log.warning("%s: renewing the build lock failed (%s); retrying", self.remote.url, exc)

    def _holder_now(self) -> str:
        try:
            current = self._current()
        except Exception:  # noqa: BLE001  (only for the message)
            current = None
        return self._describe(*current[1:]) if current else "another machine"

    def check(self) -> None:
        """Refuse to upload when another machine took the lock over during this run."""
        if self.lost:
            raise UserError(f"{self.remote.url}: the build lock was taken over by {self.lost} while this run "
                            "held it (its renewals did not reach the store); nothing of this run was uploaded")

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        if self.lost or self.etag is None:
            return
        try:
            self.fs.call_s3("delete_object", Bucket=self.bucket, Key=self.key, IfMatch=self.etag)
        except OSError as exc:
            if not _precondition_failed(exc):
                log.warning("%s: could not remove the build lock (%s); it expires in %.0f s",
                            self.remote.url, exc, self.ttl_s)
        self.fs.invalidate_cache(f"{self.bucket}/{self.key}")


@contextlib.contextmanager
def bucket_lock(remote: Remote, command: str, *, wait: bool = False) -> Iterator[BucketLock | None]:
    """Hold ``remote``'s lock object for the block (S3); None where the backend has no such lock."""
    if not hasattr(remote.fs, "call_s3"):
        log.warning("%s: no lock across machines on this storage (S3 only): run one writer at a time", remote.url)
        yield None
        return
    lock = BucketLock(remote, command)
    lock.acquire(wait=wait)
    try:
        yield lock
    finally:
        lock.release()
