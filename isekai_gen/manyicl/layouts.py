"""Which distribution layout of a dataset a root folder holds, and the adapter base that uses it.

People point ``splits build --root`` at whatever they downloaded: the official archive as it
unpacks, a torchvision / WILDS / DomainBed download root, a Kaggle or Zenodo mirror, often inside
one or two wrapper folders (FIVES' figshare archive unpacks into a folder named after the paper),
or the parent folder of several datasets. Each adapter declares its known ``Layout``s (what must
exist under a folder, and which loader or script defines it); ``find_layout`` looks in the root
and in the folders up to ``WRAPPER_DEPTH`` levels below it, shallowest first. When nothing
matches, one line names the dataset, the root and every layout looked for, plus a deeper folder
that does match if there is one — never a misleading error from reading the wrong folder.

``LayoutAdapter`` is the ``Adapter`` every dataset module subclasses: it finds the layout, hands
it to ``read_layout``, records it in the pool (split.json ``layouts``) and declares the name
aliases ``splits list`` shows; ``Adapter`` keeps every file it opens inside the root
(``isekai_gen.paths.contained``: symlinks included).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .recipe import Adapter, Pool, Recipe

log = logging.getLogger(__name__)

WRAPPER_DEPTH = 2        # wrapper folders searched below the root when the root itself does not match
SUGGEST_DEPTH = 4        # deeper folders searched only to suggest a root in the error message
SEARCH_BUDGET = 50_000   # directory entries listed at most while searching (a home folder is huge)


@dataclass(frozen=True)
class Layout:
    """One way a dataset is distributed.

    ``markers`` are paths relative to the candidate folder that must all exist: a trailing ``/``
    means a folder, a segment may be an ``fnmatch`` pattern (``ISIC_*.jpg``), and ``a|b`` means
    either path. ``base`` is the folder the adapter reads, relative to the candidate. With
    ``classes``, ``base`` must also hold at least one folder named after a class (tells a
    class-folder tree from any other folder). ``folders`` are sub-folders of ``base`` the adapter
    reads (e.g. HAM10000's image parts).
    """

    name: str
    source: str
    markers: tuple[str, ...]
    base: str = "."
    classes: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()

    def describe(self) -> str:
        markers = [m.replace("|", " or ") for m in self.markers] or ["<class>/"]
        return f"{' + '.join(markers)} ({self.name})"

    def matches(self, folder: Path) -> bool:
        if not all(_exists(folder, marker) for marker in self.markers):
            return False
        if not self.classes:
            return True
        base = folder / self.base
        return any((base / name).is_dir() for name in self.classes)


@dataclass(frozen=True)
class Found:
    """A layout found under ``root``: the dataset folder is ``base`` (``root`` or below it)."""

    layout: Layout
    root: Path
    base: Path

    @property
    def prefix(self) -> str:
        """``base`` relative to the root as a POSIX prefix for ``source_path`` ('' or 'a/b/')."""
        relative = self.base.relative_to(self.root).as_posix()
        return "" if relative == "." else relative + "/"

    def folder(self, name: str) -> Path:
        return self.base / name

    def to_json(self, part: str = "") -> dict:
        """What split.json records: the layout, what defines it, the folder read (relative to the root)."""
        record = {"name": self.layout.name, "source": self.layout.source, "folder": self.prefix.rstrip("/") or "."}
        return {"part": part, **record} if part else record


def _exists(folder: Path, marker: str) -> bool:
    return any(_exists_one(folder, alternative) for alternative in marker.split("|"))


def _exists_one(folder: Path, marker: str) -> bool:
    want_dir = marker.endswith("/")
    current = folder
    segments = marker.rstrip("/").split("/")
    for position, segment in enumerate(segments):
        last = position == len(segments) - 1
        if any(ch in segment for ch in "*?["):
            found = _first_match(current, segment, want_dir if last else True)
            if found is None:
                return False
            current = found
        else:
            current = current / segment
    return current.is_dir() if want_dir else current.is_file()


def _first_match(folder: Path, pattern: str, want_dir: bool) -> Path | None:
    """The first entry of ``folder`` matching ``pattern`` (stops at the first: folders of 10k images)."""
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if fnmatch.fnmatchcase(entry.name, pattern) and entry.is_dir() == want_dir:
                    return Path(entry.path)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    return None


def _subfolders(folder: Path, budget: list[int]) -> list[Path]:
    """Non-hidden sub-folders of ``folder``, sorted; ``budget[0]`` counts down the entries listed."""
    try:
        with os.scandir(folder) as entries:
            found = []
            for entry in entries:
                budget[0] -= 1
                if budget[0] < 0:
                    break
                if not entry.name.startswith(".") and entry.is_dir():
                    found.append(Path(entry.path))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []
    return sorted(found)


def _matches_at(root: Path, folders: list[Path], layouts: tuple[Layout, ...]) -> list[Found]:
    """Every match among ``folders``, one per dataset folder (the first layout in preference order)."""
    found: dict[Path, Found] = {}
    for folder in folders:
        for layout in layouts:
            if layout.matches(folder):
                base = Path(os.path.normpath(folder / layout.base))
                found.setdefault(base, Found(layout, root, base))
    return list(found.values())


def find_layout(dataset: str, root: Path, layouts: tuple[Layout, ...], what: str = "") -> Found:
    """The layout ``root`` holds, itself or in wrapper folders up to ``WRAPPER_DEPTH`` below it.

    Shallowest wins; two different dataset folders at the same depth are ambiguous (refused, both
    named). ``what`` names the part looked for when a dataset has several (HAM10000's test set).
    """
    root = Path(root)
    level, budget = [root], [SEARCH_BUDGET]
    for depth in range(SUGGEST_DEPTH + 1):
        matches = _matches_at(root, level, layouts)
        if matches:
            return _chosen(dataset, root, layouts, matches, depth, what)
        level = [sub for folder in level for sub in _subfolders(folder, budget)]
        if not level:
            break
    raise UserError(_not_found(dataset, root, layouts, what))


def _chosen(dataset, root: Path, layouts, matches: list[Found], depth: int, what: str) -> Found:
    def shown(found: Found) -> str:
        return f"{found.base} ({found.layout.name})"

    if depth > WRAPPER_DEPTH:
        raise UserError(_not_found(dataset, root, layouts, what)
                        + f"; found one deeper: {shown(matches[0])}: pass --root {matches[0].base}")
    if len(matches) > 1:
        listed = "; ".join(shown(m) for m in matches)
        raise UserError(f"{root}: {dataset}{' ' + what if what else ''}: several copies found ({listed}); "
                        "pass the one to use as --root")
    found = matches[0]
    log.info("%s%s: %s layout at %s", dataset, f" {what}" if what else "", found.layout.name, found.base)
    return found


def _not_found(dataset: str, root: Path, layouts, what: str) -> str:
    looked = "; ".join(layout.describe() for layout in layouts)
    part = f" {what}" if what else ""
    return (f"{root}: no {dataset}{part} layout found in this folder or {WRAPPER_DEPTH} levels below it "
            f"(looked for: {looked})")


def name_key(name: str) -> str:
    """What dataset names are compared by: lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


class LayoutAdapter(Adapter):
    """An adapter whose native layouts are declared in ``layouts`` and read by ``read_layout``."""

    aliases: tuple[str, ...] = ()          # other spellings accepted for the name (any case)
    layouts: tuple[Layout, ...] = ()

    @property
    def layout(self) -> str:  # what `splits list` shows
        return "; ".join(layout.describe() for layout in self.layouts)

    def find_layout(self, root: Path, recipe: Recipe | None = None) -> Found:
        return find_layout(self.title, Path(root), self.layouts)

    def read(self, root: Path, recipe: Recipe) -> Pool:
        found = self.find_layout(root, recipe)
        pool = self.read_layout(found, recipe)
        pool.layouts.insert(0, found.to_json())
        return pool

    def read_layout(self, found: Found, recipe: Recipe) -> Pool:
        raise NotImplementedError

    def describe(self) -> dict:
        return {**super().describe(), "aliases": list(self.aliases),
                "hub_copies": [copy.repo for copy in getattr(self, "hub_copies", ())],
                "layouts": [{"name": lay.name, "markers": list(lay.markers), "source": lay.source}
                            for lay in self.layouts]}
