"""Export formats: an ``Exporter`` interface and the registry of formats (``isekai-gen export --format``).

A format is one module defining ``EXPORTER`` (an ``Exporter`` subclass instance factory: the
class itself) plus one line in ``FORMATS``; its module is imported only when the format is used,
in the manner of lmms-eval's model and task registries. ``FORMATS`` order is the order formats run
in, so a format that reads another's files (the harness tasks read the LCL files) comes after it.

An exporter reads a build folder (``BuildInput``: kept images, episodes, the LCL files, the
ManyICL splits under ``OUT/benchmarks/``) and writes ``OUT/export/<folder>/``, or, when it
``reads`` split folders too, ManyICL split folders given on the command line (``SplitsInput``),
writing into a folder of the user's choice. ``export`` returns the files it wrote (path relative
to ``OUT/export/`` -> sha256 when computed while writing, else None) and a summary; ``finish``
runs after ``OUT/export/SHA256SUMS`` is written, for files that state the content hash (the card).
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..catalog import Catalog
from ..config import BuildConfig, ExportConfig
from ..errors import UserError
from .items import EXPORT_DIR, ExportItem, collect_items, read_episodes

BUILD = "build"
SPLITS = "splits"

# format name -> module defining EXPORTER; the order is the run order.
FORMATS = {
    "lcl": "isekai_gen.export.lcl",
    "webdataset": "isekai_gen.export.webdataset",
    "hf": "isekai_gen.export.hf",
    "lmms-eval": "isekai_gen.harness.lmms_tasks",
    "vlmevalkit": "isekai_gen.harness.vlmevalkit",
}


@dataclass
class BuildInput:
    """A filtered build folder, read once for every format of one export run."""

    config: BuildConfig
    out_dir: Path
    catalog: Catalog
    progress: bool = False
    shots: list[int] | None = None   # harness formats: shots per side (None: 0 up to the support size)
    seed: int | None = None          # harness formats: run seed (None: `isekai-gen evaluate`'s default)

    @property
    def export_dir(self) -> Path:
        return self.out_dir / EXPORT_DIR

    @functools.cached_property
    def _collected(self) -> tuple[list[ExportItem], list[dict]]:
        return collect_items(self.out_dir, self.catalog)

    @property
    def items(self) -> list[ExportItem]:
        """Kept images ordered by (class index, job id)."""
        return self._collected[0]

    @property
    def manifest_rows(self) -> list[dict]:
        return self._collected[1]

    @functools.cached_property
    def episodes(self) -> list[dict]:
        return read_episodes(self.out_dir, {item.key for item in self.items})


@dataclass
class SplitsInput:
    """ManyICL split folders (``demo.csv``, ``test.csv``, ``images/``) exported into ``dest``."""

    folders: list[Path]
    dest: Path
    shots: list[int]
    seed: int | None = None        # None: `isekai-gen evaluate`'s default run seed
    progress: bool = False


@dataclass
class ExportResult:
    files: dict[str, str | None] = field(default_factory=dict)   # path under the export root -> sha256 or None
    summary: dict = field(default_factory=dict)


class Exporter:
    """One export format. Subclasses set the class attributes and implement ``export``."""

    name: ClassVar[str]
    folder: ClassVar[str]                       # under OUT/export/ (or under --dest for split folders)
    reads: ClassVar[tuple[str, ...]] = (BUILD,)
    default: ClassVar[bool] = False             # written by `build` and by `export` without --format
    hashed: ClassVar[bool] = True               # covered by SHA256SUMS (the content hash)
    unhashed: ClassVar[tuple[str, ...]] = ()    # its files (under its folder) that state the hash

    def enabled(self, export: ExportConfig) -> bool:
        """Whether a default export writes this format (a switched-off one has its folder removed)."""
        return True

    def missing_input(self, source: BuildInput) -> str | None:
        """Why this build cannot be exported in this format (None: it can)."""
        return None

    def export(self, source) -> ExportResult:
        raise NotImplementedError

    def finish(self, source: BuildInput, content_hash: str) -> None:
        """After SHA256SUMS: write what states the content hash."""

    def outdated(self, source: BuildInput, content_hash: str) -> None:
        """Another format changed the content hash: drop what of ours states the old one."""

    def describe(self, summary: dict, show) -> list[str]:
        """The command's lines for ``summary``; ``show`` renders a path relative to the export root (OUT/export/
        or --dest) as the user knows it."""
        return [f"{self.name}: {summary['tasks']} task(s) -> {show(self.folder)}"]


def format_names(reads: str | None = None) -> list[str]:
    """Registered formats in run order (those that read ``reads``, when given)."""
    return [name for name in FORMATS if reads is None or reads in get_exporter(name).reads]


def get_exporter(name: str) -> Exporter:
    """A fresh exporter of the format ``name``; imports its module now."""
    module_name = FORMATS.get(name)
    if module_name is None:
        raise UserError(f"--format {name!r}: unknown export format (known: {', '.join(FORMATS)})")
    return importlib.import_module(module_name).EXPORTER()


def parse_formats(text: str, reads: str) -> list[str]:
    """``lcl,hf`` -> known names in run order; one line naming an unknown or unfitting format."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise UserError("--format: give at least one format name")
    for name in names:
        exporter = get_exporter(name)
        if reads not in exporter.reads:
            kind = "a build folder" if reads == BUILD else "ManyICL split folders"
            raise UserError(f"--format {name}: this format cannot be written from {kind}")
    return [name for name in FORMATS if name in names]
