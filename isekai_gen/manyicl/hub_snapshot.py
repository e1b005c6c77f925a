"""Hub snapshots on this machine: fetched with huggingface_hub, or recognised in a folder.

``--source hf:OWNER/NAME[@REVISION]`` goes through ``snapshot_download`` (its cache, ``HF_HOME``,
``HF_HUB_OFFLINE``); a folder given as ``--root`` is a snapshot when it holds parquet at the
places ``datasets`` and the Hub's parquet converter put it. The repo and commit come from the
huggingface_hub cache path or the ``--local-dir`` download records. Also: the ``datasets``
features in a parquet file's schema metadata, and ClassLabel names from the card.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

HF_PREFIX = "hf:"
COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class HubSource:
    """A local snapshot of a copy: the folder, the repo and the commit when known."""

    folder: Path
    repo: str | None = None
    revision: str | None = None   # as the user asked for it (None: not pinned)
    commit: str | None = None


def parse_source(text: str) -> tuple[str, str | None]:
    """``hf:owner/name[@revision]`` -> (repo id, revision or None)."""
    if not text.startswith(HF_PREFIX):
        raise UserError(f"--source {text!r}: expected hf:OWNER/NAME[@REVISION]")
    repo, _, revision = text[len(HF_PREFIX):].partition("@")
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", repo) or (revision == "" and "@" in text):
        raise UserError(f"--source {text!r}: expected hf:OWNER/NAME[@REVISION]")
    return repo, revision or None


def download(repo: str, revision: str | None, report) -> HubSource:
    """The snapshot of ``repo`` at ``revision`` through huggingface_hub's cache (``HF_HUB_OFFLINE``
    and ``HF_HOME`` apply): parquet files and the card only. The snapshot folder's name is the
    resolved commit (huggingface_hub cache layout ``datasets--owner--name/snapshots/<commit>/``)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    if revision is None:
        report(f"hf:{repo}: no revision given; the split is not pinned (pass hf:{repo}@<commit>)")
    try:
        folder = snapshot_download(repo, repo_type="dataset", revision=revision,
                                   allow_patterns=["*.parquet", "README.md"])
    except (LocalEntryNotFoundError, RepositoryNotFoundError, HfHubHTTPError, OSError, ValueError) as exc:
        first = " ".join(str(exc).split())[:240]
        raise UserError(f"hf:{repo}{'@' + revision if revision else ''}: cannot get the snapshot ({first})") from None
    folder = Path(folder)
    commit = folder.name if COMMIT.match(folder.name) else None
    return HubSource(folder, repo, revision, commit)


def local_source(root: Path) -> HubSource | None:
    """A folder holding a copy's parquet files (a snapshot), or None; the repo and commit are read
    from a huggingface_hub cache path when the folder is one."""
    root = Path(root)
    if not _looks_like_snapshot(root):
        return None
    resolved = root.resolve()
    repo = commit = None
    parts = resolved.parts
    for position, part in enumerate(parts[:-2]):
        if part.startswith("datasets--") and parts[position + 1] == "snapshots":
            repo = part[len("datasets--"):].replace("--", "/", 1)
            commit = parts[position + 2] if COMMIT.match(parts[position + 2]) else None
    if commit is None:
        commit = _local_dir_commit(root)
    return HubSource(root, repo, commit, commit)


def _local_dir_commit(root: Path) -> str | None:
    """The commit ``hf download --local-dir`` recorded for the snapshot's parquet files (None: unknown).

    huggingface_hub keeps ``.cache/huggingface/download/<file>.metadata`` (commit, etag, time) per
    file and ignores a record older than the file (``_local_folder.read_download_metadata``, used
    here because the record has no public reader); files of several commits are refused.
    """
    from huggingface_hub._local_folder import read_download_metadata

    commits = set()
    for path in parquet_files(root):
        record = read_download_metadata(root, path.relative_to(root).as_posix())
        commits.add(record.commit_hash if record is not None else None)
    if len(commits - {None}) > 1:
        raise UserError(f"{root}: parquet files downloaded from {len(commits - {None})} different commits "
                        f"({', '.join(sorted(c[:12] for c in commits - {None}))}); download one revision")
    return commits.pop() if len(commits) == 1 else None


def _looks_like_snapshot(root: Path) -> bool:
    """Parquet in the root, in ``data/``, in the parquet converter's ``default/<split>/`` (the Hub's
    ``refs/convert/parquet`` branch), or, beside a card, in ``<config>/<split>/``; never a walk of a
    native image tree."""
    if not root.is_dir():
        return False
    if any(root.glob("*.parquet")) or any((root / "data").glob("*.parquet")) or any(root.glob("default/*/*.parquet")):
        return True
    return (root / "README.md").is_file() and any(root.glob("*/*/*.parquet"))


def parquet_files(root: Path) -> list[Path]:
    """Parquet files under ``root`` (hidden folders skipped: ``.cache/`` of ``huggingface-cli download``)."""
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(s for s in subfolders if not s.startswith("."))
        found += [Path(folder) / name for name in sorted(files) if name.endswith(".parquet")]
    return found


def features(path: Path) -> dict:
    """The ``datasets`` features recorded in a parquet file's schema metadata ({} when absent)."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_schema(path).metadata or {}
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for a file that is no parquet
        raise UserError(f"{path}: not a readable parquet file ({exc})") from None
    try:
        info = json.loads(metadata.get(b"huggingface", b"{}"))
    except ValueError:
        raise UserError(f"{path}: unreadable huggingface schema metadata") from None
    return (info.get("info") or {}).get("features") or {}


def class_label_names(features_: dict, column: str) -> list[str] | None:
    feature = features_.get(column)
    if isinstance(feature, dict) and feature.get("_type") == "ClassLabel":
        return list(feature["names"])
    return None


def card_class_names(root: Path, column: str) -> list[str] | None:
    """ClassLabel names of ``column`` from the card's ``dataset_info`` (README.md front matter), as
    the Hub writes it: ``features: [{name, dtype: {class_label: {names: {'0': ..., '1': ...}}}}]``."""
    from ..yamlio import loads

    readme = Path(root) / "README.md"
    if not readme.is_file():
        return None
    text = readme.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return None
    front = loads(text[3:].split("\n---", 1)[0], str(readme)) or {}
    infos = front.get("dataset_info") if isinstance(front, dict) else None
    for info in infos if isinstance(infos, list) else [infos]:
        for feature in (info or {}).get("features") or []:
            dtype = feature.get("dtype") if isinstance(feature, dict) else None
            if feature.get("name") == column and isinstance(dtype, dict) and "class_label" in dtype:
                names = dtype["class_label"].get("names") or {}
                return [names[key] for key in sorted(names, key=int)] if isinstance(names, dict) else list(names)
    return None
