"""Failures of a storage backend as one ``error:`` line naming the URL."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ..errors import UserError


@contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """Failures of the storage backend as one line naming the URL: a missing bucket, refused or
    absent credentials (botocore's errors are no ``OSError``), an unreachable endpoint."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001  (an I/O boundary: every backend has its own exception types)
        text = " ".join(str(exc).split()) or type(exc).__name__
        if _timed_out(exc):
            raise UserError(f"{url}: the storage server stopped answering ({text}); check that it runs and "
                            "rerun the same command") from None
        raise UserError(f"{url}: {'not found: ' if isinstance(exc, FileNotFoundError) else ''}{text}") from None


def _timed_out(exc: BaseException) -> bool:
    """A timeout anywhere in the chain: botocore's ``ReadTimeoutError``/``ConnectTimeoutError``,
    aiohttp's, ``TimeoutError`` (s3fs re-raises some as ``OSError`` with the timeout as cause)."""
    while exc is not None:
        if isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__:
            return True
        exc = exc.__cause__ or exc.__context__
    return False
