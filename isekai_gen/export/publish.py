"""Publish the Hugging Face folder (``OUT/export/hf/``) as a dataset repository on the Hub.

``publish`` checks the folder first (card parses, every config's data files exist), then
``create_repo(..., repo_type="dataset", exist_ok=True)`` and ``upload_folder`` (which commits
in chunks and, re-run after an interruption, skips files already on the Hub). Rate limits
(429) and server errors (5xx) are retried with exponential backoff.

The token comes from ``huggingface_hub.get_token()`` (``HF_TOKEN`` or the saved login) and is
handed to ``HfApi`` only: it is never printed, logged or written, and error messages are
scrubbed of it. The Hub address is ``HF_ENDPOINT`` read at call time (``huggingface_hub``
itself reads it once, at import), so a test can point a fresh call at a local fake Hub.

``dry_run`` needs no credentials and makes no network call: it checks the card and the folder
and lists what would be uploaded. Only with ``validate_online`` does it also post the card to the
Hub's YAML validator (the request ``upload_folder`` makes first), reporting an unreachable Hub.

A smoke-test build (random-weight pipelines: its images are noise, and its own card says "do not
publish") is refused, dry run included, unless ``allow_smoke_test``. The Parquet rows decide (their
``smoke_test`` column), so a card edited by hand cannot hide it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from pathlib import Path

from ..errors import UserError
from ..lock import read_lock
from ..run_info import run_path
from .card import README, check_card
from .hf import HF_DIR
from .items import EXPORT_DIR

log = logging.getLogger(__name__)

RETRY_STATUS = (429, 500, 502, 503, 504)
MAX_ATTEMPTS = 5
BACKOFF_SECONDS = 2.0          # first wait; doubles per retry (a Retry-After header wins)
VALIDATOR_TIMEOUT_SECONDS = 10.0
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
# Hidden files (crash leftovers ``.isekai-gen-tmp-*``, caches) are never uploaded.
IGNORE_PATTERNS = [".*", "*/.*"]


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def resolve_folder(export_dir: Path) -> Path:
    """The folder to upload: ``export_dir`` itself, or its ``hf/`` / ``export/hf/`` (a build folder)."""
    export_dir = Path(export_dir)
    for candidate in (export_dir, export_dir / HF_DIR, export_dir / EXPORT_DIR / HF_DIR):
        if (candidate / README).is_file():
            return candidate
    if not export_dir.is_dir():
        raise UserError(f"{export_dir}: no such folder")
    raise UserError(f"{export_dir}: no {README} (dataset card) here or in {HF_DIR}/ or {EXPORT_DIR}/{HF_DIR}/; "
                    "run `isekai-gen export` first")


def upload_listing(folder: Path) -> list[tuple[str, int]]:
    """(path relative to ``folder``, size) of every file that would be uploaded, sorted."""
    listing = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder)
        if not any(part.startswith(".") for part in relative.parts):
            listing.append((relative.as_posix(), path.stat().st_size))
    return listing


def check_folder(folder: Path) -> list[tuple[str, int]]:
    """Check the card and that every ``configs`` data file pattern matches files; return the listing."""
    from huggingface_hub import DatasetCard

    readme = folder / README
    try:
        text = readme.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{readme}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    check_card(text, readme)
    listing = upload_listing(folder)
    for hub_config in DatasetCard(text).data.to_dict()["configs"]:
        data_files = hub_config.get("data_files") or []
        for entry in data_files if isinstance(data_files, list) else [data_files]:
            pattern = entry.get("path") if isinstance(entry, dict) else entry
            for single in pattern if isinstance(pattern, list) else [pattern]:
                # A hand-edited card: pathlib refuses empty and absolute patterns with a traceback.
                if not isinstance(single, str) or not single or single.startswith("/") or ".." in single.split("/"):
                    raise UserError(f"{readme}: config {hub_config.get('config_name')!r}: data file pattern {single!r} "
                                    "is not a path inside the folder")
                if not list(folder.glob(single)):
                    raise UserError(f"{readme}: config {hub_config.get('config_name')!r}: no file matches {single!r}")
    return listing


def smoke_test_rows(folder: Path, listing: list[tuple[str, int]]) -> tuple[int, int]:
    """``(smoke-test rows, rows)`` over every uploaded Parquet file with a ``smoke_test`` column."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    smoke = total = 0
    for relative, _ in listing:
        if not relative.endswith(".parquet"):
            continue
        try:
            if "smoke_test" not in pq.read_schema(folder / relative).names:
                continue
            column = pq.read_table(folder / relative, columns=["smoke_test"]).column("smoke_test")
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a damaged file
            raise UserError(f"{folder / relative}: not a readable Parquet file ({' '.join(str(exc).split())})") from None
        smoke += pc.sum(column).as_py() or 0
        total += len(column)
    return smoke, total


def refuse_smoke_test(folder: Path, listing: list[tuple[str, int]]) -> None:
    smoke, total = smoke_test_rows(folder, listing)
    if smoke:
        raise UserError(f"{folder}: smoke-test build ({smoke} of {total} images made with random-weight pipelines: "
                        "they are noise); refusing to publish it (pass --allow-smoke-test to upload it anyway)")


def validate_online(readme: Path, endpoint: str) -> str:
    """Ask the Hub's YAML validator about the card (the request ``upload_folder`` makes first).

    A rejection is an error; an unreachable Hub or an unexpected answer is reported, not fatal.
    """
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    if constants.is_offline_mode():
        return "online YAML validation skipped: HF_HUB_OFFLINE is set"
    try:
        response = get_session().post(
            f"{endpoint}/api/validate-yaml", json={"content": readme.read_text("utf-8"), "repoType": "dataset"},
            timeout=VALIDATOR_TIMEOUT_SECONDS,
        )
        answer = response.json()
    except (httpx2.TransportError, ConnectionError) as exc:
        return f"online YAML validation skipped: the Hub at {endpoint} is not reachable ({type(exc).__name__})"
    except ValueError:
        return f"online YAML validation skipped: {endpoint} answered HTTP {response.status_code} without JSON"
    if response.status_code == 400:
        problems = "; ".join(str(e.get("message")) for e in answer.get("errors", [])) or "no reason given"
        raise UserError(f"{readme}: the Hub's YAML validator rejected the card: {' '.join(problems.split())}")
    if response.status_code != 200:
        return f"online YAML validation skipped: {endpoint} answered HTTP {response.status_code}"
    warnings = "; ".join(str(w.get("message")) for w in answer.get("warnings", []))
    return f"online YAML validation passed ({endpoint})" + (f" with warnings: {warnings}" if warnings else "")


def _retry_wait(exc, attempt: int) -> float:
    retry_after = exc.response.headers.get("Retry-After") if exc.response is not None else None
    if retry_after and retry_after.isdigit():
        return float(retry_after)
    return BACKOFF_SECONDS * 2 ** (attempt - 1)


def _problem(exc: Exception, token: str | None) -> str:
    """One line about a failed Hub call, with the token (should a server echo it) masked."""
    message = " ".join(str(exc).split())
    return message.replace(token, "***") if token else message


def call_hub(action: str, endpoint: str, token: str | None, function, /, **kwargs):
    """Run one Hub call; retry 429/5xx and network errors with backoff; turn failures into UserError."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return function(**kwargs)
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status in RETRY_STATUS and attempt < MAX_ATTEMPTS:
                wait = _retry_wait(exc, attempt)
                log.warning("%s: HTTP %s from the Hub, retry %d of %d in %.1f s", action, status, attempt,
                            MAX_ATTEMPTS - 1, wait)
                time.sleep(wait)
                continue
            if status == 401:
                raise UserError(f"{action}: the Hub at {endpoint} rejected the token (401): set a valid HF_TOKEN "
                                "or run `hf auth login`") from None
            if status == 403:
                raise UserError(f"{action}: the token has no write access there (403): "
                                f"{_problem(exc, token)}") from None
            raise UserError(f"{action} failed: {_problem(exc, token)}") from None
        except ValueError as exc:  # upload_folder: the Hub's YAML validator rejected README.md
            raise UserError(f"{action} failed: {_problem(exc, token)}") from None
        except (httpx2.TransportError, ConnectionError) as exc:
            if attempt < MAX_ATTEMPTS:
                wait = BACKOFF_SECONDS * 2 ** (attempt - 1)
                log.warning("%s: %s, retry %d of %d in %.1f s", action, type(exc).__name__, attempt,
                            MAX_ATTEMPTS - 1, wait)
                time.sleep(wait)
                continue
            raise UserError(f"{action}: cannot reach the Hub at {endpoint} ({_problem(exc, token)})") from None


def _require_token() -> str:
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise UserError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (or use --dry-run)")
    return token


def build_folder_of(export_dir: Path) -> Path | None:
    """The build folder ``export_dir`` is (OUT), or lies in (OUT/export, OUT/export/hf); None for
    a folder outside any build (a copy of the Hugging Face folder)."""
    export_dir = Path(export_dir)
    return next((folder for folder in (export_dir, export_dir.parent, export_dir.parent.parent)
                 if run_path(folder).is_file()), None)


def publish(export_dir: Path, repo_id: str, *, private: bool = False, revision: str | None = None,
            dry_run: bool = False, validate_online_card: bool = False, allow_smoke_test: bool = False,
            wait: bool = False) -> dict:
    """Upload the export's Hugging Face folder to dataset repo ``repo_id`` (or only check it).

    Holds the build folder's lock shared (``lock.read_lock``) for the whole check and upload: no
    export rewrites the folder meanwhile (``wait``: wait for a running writer instead of failing).
    Returns ``{"folder", "repo_id", "files": [(path, bytes)], "bytes", "dry_run", "validation",
    "url", "commit"}``; ``validation`` is set on dry runs, ``url`` and ``commit`` after an upload.
    """
    if not REPO_ID.match(repo_id):
        raise UserError(f"--repo-id {repo_id!r}: expected ORG/NAME (letters, digits, '.', '_', '-')")
    build = build_folder_of(export_dir)
    with read_lock(build, wait=wait) if build is not None else contextlib.nullcontext():
        return _publish(export_dir, repo_id, private=private, revision=revision, dry_run=dry_run,
                        validate_online_card=validate_online_card, allow_smoke_test=allow_smoke_test)


def _publish(export_dir: Path, repo_id: str, *, private: bool, revision: str | None, dry_run: bool,
             validate_online_card: bool, allow_smoke_test: bool) -> dict:
    folder = resolve_folder(export_dir)
    build_dir = folder.parent.parent  # OUT of OUT/export/hf: decisions made since the export was written
    if folder.parent.name == EXPORT_DIR and folder.name == HF_DIR and (build_dir / "manifest.jsonl").is_file():
        from ..curation.pending import refuse_pending

        refuse_pending(build_dir, "publish")
    listing = check_folder(folder)
    if not allow_smoke_test:
        refuse_smoke_test(folder, listing)
    endpoint = hub_endpoint()
    result = {"folder": str(folder), "repo_id": repo_id, "files": listing, "bytes": sum(s for _, s in listing),
              "dry_run": dry_run, "validation": None, "url": None, "commit": None}
    if dry_run:
        result["validation"] = (validate_online(folder / README, endpoint) if validate_online_card else
                                "online YAML validation not run (offline dry run; --validate-online asks the Hub)")
        return result

    from huggingface_hub import HfApi, constants

    if constants.is_offline_mode():
        raise UserError("HF_HUB_OFFLINE is set: cannot publish (unset it, or use --dry-run)")
    token = _require_token()
    api = HfApi(endpoint=endpoint, token=token)
    user = call_hub("checking the token", endpoint, token, api.whoami)
    log.info("publishing %s as %s to %s", folder, user.get("name", "?"), repo_id)
    repo = call_hub(f"creating dataset repo {repo_id}", endpoint, token, api.create_repo,
                    repo_id=repo_id, repo_type="dataset", private=private, exist_ok=True)
    if revision:
        call_hub(f"creating branch {revision}", endpoint, token, api.create_branch,
                 repo_id=repo_id, repo_type="dataset", branch=revision, exist_ok=True)
    commit = call_hub(f"uploading {folder}", endpoint, token, api.upload_folder,
                      repo_id=repo_id, repo_type="dataset", folder_path=folder, revision=revision,
                      ignore_patterns=list(IGNORE_PATTERNS), commit_message="Upload dataset built with isekai-gen")
    result.update(url=str(repo), commit=getattr(commit, "oid", None))
    return result
