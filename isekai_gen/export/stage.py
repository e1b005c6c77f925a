"""The export stage: run the registered export formats over a build, then ``OUT/export/SHA256SUMS``.

``run_export`` is what the build and ``isekai-gen export`` call, after the ManyICL splits (which
the Hugging Face folder packages), so that the content hash covers them. Without ``formats`` it
writes the default formats (LCL files, webdataset, Hugging Face folder; see ``registry.FORMATS``)
that the config switches on and removes the folders of those it switches off; with ``formats`` it
writes exactly those and leaves the others alone. ``run_split_export`` writes the formats that read
ManyICL split folders into a folder of the user's choice.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from ..catalog import Catalog
from ..config import BuildConfig
from ..errors import UserError
from ..fileio import TEMP_MARKER, atomic_write_bytes, is_leftover, is_temp_name, sha256_bytes, sha256_file
from ..curation.pending import refuse_pending
from .registry import FORMATS, SPLITS, BuildInput, SplitsInput, get_exporter

log = logging.getLogger(__name__)

CHECKSUMS = "SHA256SUMS"


def _remove_leftovers(folder: Path) -> None:
    """A killed export leaves its temporary files (a partial shard can be 500 MB); this run owns the folder."""
    for leftover in sorted(folder.rglob(f"{TEMP_MARKER}*")) if folder.is_dir() else ():
        if leftover.is_file() and is_leftover(leftover.name):
            log.info("removing %s left by an interrupted export", leftover)
            leftover.unlink()


def _planned(source: BuildInput, formats: list[str] | None) -> list:
    """The exporters to run, in registry order; a default run removes switched-off formats' folders."""
    if formats is not None:
        exporters = [get_exporter(name) for name in FORMATS if name in formats]
        for exporter in exporters:
            problem = exporter.missing_input(source)
            if problem:
                raise UserError(problem)
        return exporters
    exporters = []
    for name in FORMATS:
        exporter = get_exporter(name)
        if not exporter.default:
            continue
        folder = source.export_dir / exporter.folder
        if not exporter.enabled(source.config.export):
            if folder.exists():
                log.info("removing %s: switched off in the config", folder)
                shutil.rmtree(folder)
            continue
        problem = exporter.missing_input(source)
        if problem:
            log.warning("not writing %s: %s", name, problem)
            continue
        exporters.append(exporter)
    return exporters


def run_export(config: BuildConfig, out_dir: Path, catalog: Catalog, *, formats: list[str] | None = None,
               progress: bool = False, shots: list[int] | None = None, seed: int | None = None) -> dict:
    """Write the export formats of a filtered build into ``OUT/export/<format folder>/``.

    Returns ``{"formats": {name: summary}, "content_hash", "files"}`` (the hash and the file count
    of SHA256SUMS, rewritten when a hashed format was written, else as they were) and, for the
    default formats, their summaries under their names. ``shots`` and ``seed`` are the harness
    formats' (see ``registry.BuildInput``). Identical inputs give byte-identical files.
    """
    refuse_pending(Path(out_dir), "export")  # every format (the LCL files too) reads the kept set
    source = BuildInput(config, Path(out_dir), catalog, progress, shots, seed)
    exporters = _planned(source, formats)
    known: dict[str, str] = {}  # path under export/ -> sha256 taken while writing
    summaries = {}
    for exporter in exporters:
        _remove_leftovers(source.export_dir / exporter.folder)
        result = exporter.export(source)
        known.update((path, digest) for path, digest in result.files.items() if digest)
        summaries[exporter.name] = result.summary
    content_hash, files = None, None
    if any(exporter.hashed for exporter in exporters):
        content_hash, files = write_checksums(source.export_dir, known)
    elif (source.export_dir / CHECKSUMS).is_file():
        data = (source.export_dir / CHECKSUMS).read_bytes()
        content_hash, files = sha256_bytes(data), data.count(b"\n")
    for exporter in exporters:
        if exporter.hashed:
            exporter.finish(source, content_hash)
    if any(exporter.hashed for exporter in exporters):
        ran = {exporter.name for exporter in exporters}
        for name in FORMATS:
            if name not in ran:
                get_exporter(name).outdated(source, content_hash)
    return {"formats": summaries, **summaries, "content_hash": content_hash, "files": files}


def run_split_export(source: SplitsInput, formats: list[str]) -> dict:
    """Write ``formats`` (each must read split folders) for ``source.folders`` under ``source.dest``."""
    summaries = {}
    for name in formats:
        exporter = get_exporter(name)
        if SPLITS not in exporter.reads:
            raise UserError(f"--format {name}: this format cannot be written from ManyICL split folders")
        _remove_leftovers(source.dest / exporter.folder)
        summaries[name] = exporter.export(source).summary
    return {"formats": summaries}


def _unhashed(export_dir: Path) -> tuple[set[str], list[str]]:
    """Files that state the hash, and folders of formats the hash does not cover (derived views)."""
    files, folders = {CHECKSUMS}, []
    for name in FORMATS:
        exporter = get_exporter(name)
        files.update(f"{exporter.folder}/{path}" for path in exporter.unhashed)
        if not exporter.hashed:
            folders.append(f"{exporter.folder}/")
    return files, folders


def write_checksums(export_dir: Path, known: dict[str, str] | None = None) -> tuple[str, int]:
    """Write ``OUT/export/SHA256SUMS`` (``sha256sum -c`` format, paths sorted) and return its sha256.

    That digest is the export's content hash: it changes when any exported file (webdataset,
    Parquet, LCL files and images, benchmark splits) changes, and only then. The card is left out
    because it states the hash, and so are the harness task folders, which are views of the hashed
    files (regenerated from them). ``known`` maps relative paths to digests computed while writing
    them this run (the shards), not re-read.
    """
    known = known or {}
    not_hashed, unhashed_folders = _unhashed(export_dir)
    lines = []
    for path in sorted(p for p in export_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(export_dir).as_posix()
        if relative in not_hashed or is_temp_name(path.name) or relative.startswith(tuple(unhashed_folders)):
            continue
        lines.append(f"{known.get(relative) or sha256_file(path)}  {relative}\n")
    data = "".join(lines).encode("utf-8")
    atomic_write_bytes(export_dir / CHECKSUMS, data)
    return sha256_bytes(data), len(lines)
