"""What the sampler draws, checked by content: bytes hash, real image format, pHash.

Only items the sampler draws (and their replacements) are read, so a large pool (Camelyon17's
455k patches) costs nothing beyond the ~2k drawn files. ``ContentScreen.review`` looks at the
current draw and names the items to leave out; the sampler then draws again with them excluded
(each replacement is simply the next candidate of the same seeded order), until nothing is left
to leave out. Rules:

- identical bytes are one item: of two identical files only the one drawn first (earliest in the
  seeded order) stays, on either side, so no file is on both sides or twice on one side;
- single-label datasets: a photo carrying more than one label is left out (``multi_label:
  exclude``). Found two ways: identical bytes drawn under two labels, and the layout DomainBed's
  TerraIncognita script writes (``shutil.copyfile`` of the image into every category folder it is
  annotated with, facebookresearch/DomainBed ``domainbed/scripts/download.py``): a drawn file in a
  class folder has a same-named file with the same bytes in another class's folder.
  ``multi_label: keep`` keeps the copy drawn first (its label) and leaves the other copies out;
- images whose bytes are not what their name says, or whose mode is not RGB/L, are re-encoded when
  placed (``bad_images: reencode``) or left out and replaced (``bad_images: skip``, which also
  replaces undecodable files; otherwise an undecodable drawn file stops the build naming it);
- perceptual near-duplicates across demo/test (pHash Hamming distance <= the filter stage's
  ``phash_max_distance``) are counted as leakage, or replaced with ``exclude_near_duplicates``.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import UserError
from ..fileio import human_size, sha256_file
from .materialize import deviation

log = logging.getLogger(__name__)

MULTI_LABEL_RULES = ("exclude", "keep")
# Larger than any image of the ten datasets by far (FIVES' 2048x2048 PNGs are ~6 MB); a file this
# size named like an image is refused before a byte is read (issue 25: a 2 GB file read whole).
MAX_IMAGE_BYTES = 256 * 1024 * 1024
BAD_IMAGE_RULES = ("reencode", "skip")


@dataclass(frozen=True)
class ContentRules:
    """The content settings of one build (recorded in split.json)."""

    multi_label: str = "exclude"
    bad_images: str = "reencode"
    near_duplicate_distance: int | None = None   # None: no near-duplicate check
    exclude_near_duplicates: bool = False
    decode: bool = False                        # decode at full size, report each problem (--verify-images)

    @classmethod
    def from_settings(cls, dataset: str, settings: dict, default_distance: int | None) -> "ContentRules":
        rules = cls(
            multi_label=settings.get("multi_label", "exclude"),
            bad_images=settings.get("bad_images", "reencode"),
            near_duplicate_distance=settings.get("near_duplicate_distance", default_distance),
            exclude_near_duplicates=settings.get("exclude_near_duplicates", False),
            decode=settings.get("verify_images", False),
        )
        for key, allowed in (("multi_label", MULTI_LABEL_RULES), ("bad_images", BAD_IMAGE_RULES)):
            if getattr(rules, key) not in allowed:
                raise UserError(f"{dataset}: {key} must be one of {', '.join(allowed)}, got {getattr(rules, key)!r}")
        distance = rules.near_duplicate_distance
        whole = isinstance(distance, int) and not isinstance(distance, bool)
        if distance is not None and not (whole and 0 <= distance <= 64):
            raise UserError(f"{dataset}: near_duplicate_distance must be a whole number 0-64 or null, got {distance!r}")
        for key in ("exclude_near_duplicates", "verify_images"):
            if not isinstance(settings.get(key, False), bool):
                raise UserError(f"{dataset}: {key} must be true or false")
        if rules.exclude_near_duplicates and distance is None:
            raise UserError(f"{dataset}: exclude_near_duplicates needs a near_duplicate_distance")
        return rules

    def to_json(self) -> dict:
        return {"multi_label": self.multi_label, "bad_images": self.bad_images,
                "near_duplicate_distance": self.near_duplicate_distance,
                "exclude_near_duplicates": self.exclude_near_duplicates}


@dataclass(frozen=True)
class ImageFacts:
    """One drawn file as its bytes say: hash, real format and mode, pHash, or why it cannot be read."""

    path: Path
    sha256: str
    format: str | None
    mode: str | None
    phash: int | None
    problem: str | None   # "truncated image (...)" / "cannot be decoded (...)"


def inspect_image(path: Path, *, decode: bool, phash: bool) -> ImageFacts:
    """sha256 of the bytes (read in chunks), PIL's format and mode; decode it (at full size with
    ``decode``, else as small as the format allows) so no unreadable file is ever packaged; its pHash.

    Memory stays bounded by the decoded image: PIL reads the file as a stream, and a file larger
    than ``MAX_IMAGE_BYTES`` is refused by its size alone."""
    from PIL import Image, UnidentifiedImageError

    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise UserError(f"{path}: {human_size(size)} is too large for an image (limit "
                            f"{human_size(MAX_IMAGE_BYTES)}); not read")
        digest = sha256_file(path)
    except FileNotFoundError:
        raise UserError(f"{path}: image referenced by the dataset metadata is missing") from None
    fmt, mode, value = None, None, None
    try:
        with Image.open(path) as image:
            fmt, mode = image.format, image.mode
            if not decode:
                # JPEG: decode at down to 1/8 scale, still through the whole stream (truncation shows);
                # pHash looks at 32x32 anyway.
                image.draft(None, (64, 64))
            image.load()
            if phash:
                import imagehash

                value = int(str(imagehash.phash(image)), 16)
    except UnidentifiedImageError:
        return ImageFacts(path, digest, fmt, mode, None, "cannot be decoded (not an image format PIL knows)")
    except Exception as exc:  # PIL raises many types (OSError, SyntaxError, ValueError, DecompressionBombError)
        kind = "truncated image" if "truncated" in str(exc).lower() else "cannot be decoded"
        return ImageFacts(path, digest, fmt, mode, None, f"{kind} ({exc})")
    return ImageFacts(path, digest, fmt, mode, value, None)


class ContentScreen:
    """Reviews each draw of the sampler (see the module docstring); counts what it left out."""

    def __init__(self, adapter, root: Path, cache_dir: Path, pool, recipe, rules: ContentRules,
                 report=None, progress: bool = False):
        self.adapter, self.root, self.cache_dir = adapter, Path(root), Path(cache_dir)
        self.pool, self.recipe, self.rules = pool, recipe, rules
        self.report = report or log.warning
        self.progress = progress
        self.rank = None                      # position -> rank in the seeded order (set by the sampler)
        self._facts: dict[int, ImageFacts] = {}
        self._columns = {name: pool.frame[name].to_numpy() for name in pool.frame.columns}  # no copies
        self._listings: dict[PurePosixPath, frozenset[str]] = {}
        self._sibling_sha: dict[str, str | None] = {}
        self._positions: dict[str, int] | None = None
        self.left_out: dict[int, str] = {}    # position -> reason
        self.multi_label_shas: set[str] = set()
        self.near_duplicates = {"pairs": 0, "test_items": 0}

    # --- facts --------------------------------------------------------------------------------

    def facts(self, position: int) -> ImageFacts:
        if position not in self._facts:
            row = {name: values[position] for name, values in self._columns.items()}
            path = Path(self.adapter.image_file(self.root, row, self.cache_dir))
            self._facts[position] = inspect_image(
                path, decode=self.rules.decode, phash=self.rules.near_duplicate_distance is not None)
        return self._facts[position]

    def _label(self, position: int) -> str | None:
        positive = np.flatnonzero(self.pool.labels[position] > 0.5)
        return self.recipe.classes[positive[0]] if len(positive) == 1 else None

    def _copies_in_other_class_folders(self, position: int) -> tuple[bool, list[int]]:
        """(found any, pool positions) of same-bytes files named alike in other class folders."""
        label = self._label(position)
        path = PurePosixPath(self._columns["source_path"][position])
        if label is None or len(path.parts) < 2 or path.parent.name != label:
            return False, []
        mine = self.facts(position).sha256
        found, positions = False, []
        for other in self.adapter.all_classes:
            if other == label:
                continue
            folder = path.parent.parent / other
            if path.name not in self._listing(folder):
                continue
            sibling = (folder / path.name).as_posix()
            if sibling not in self._sibling_sha:
                # A dangling link or a folder is no copy; a file is read contained, like every file read.
                self._sibling_sha[sibling] = (sha256_file(self.adapter.source_file(self.root, sibling))
                                              if (self.root / sibling).is_file() else None)
            if self._sibling_sha[sibling] == mine:
                found = True
                if (index := self._pool_positions().get(sibling)) is not None:
                    positions.append(index)
        return found, positions

    def _listing(self, folder: PurePosixPath) -> frozenset[str]:
        """File names in a class folder, listed once (one listing per class, not one stat per item)."""
        if folder not in self._listings:
            try:
                self._listings[folder] = frozenset(os.listdir(self.root / folder))
            except (FileNotFoundError, NotADirectoryError):
                self._listings[folder] = frozenset()
        return self._listings[folder]

    def _pool_positions(self) -> dict[str, int]:
        if self._positions is None:  # built once, only when a copy in another class folder exists
            self._positions = {p: i for i, p in enumerate(self.pool.frame["source_path"])}
        return self._positions

    # --- review ---------------------------------------------------------------------------------

    def review(self, sides: dict[str, list[int]]) -> list[int]:
        """Positions to leave out of the draw ``sides`` ({"demo": [...], "test": [...]}); [] when it stands."""
        from tqdm import tqdm

        picked = [(side, p) for side in ("test", "demo") for p in sides[side]]
        new: dict[int, str] = {}
        unreadable = []
        for _, p in tqdm(picked, desc=f"{self.recipe.name} checks", unit="img", disable=not self.progress,
                         leave=False):
            facts = self.facts(p)
            if facts.problem:
                if self.rules.bad_images == "skip":
                    new[p] = "unreadable"
                    if self.rules.decode:
                        self.report(f"{facts.path}: {facts.problem}: left out, another drawn")
                else:
                    unreadable.append(facts)
            elif self.rules.bad_images == "skip" and (reason := deviation(facts.path.suffix, facts.format, facts.mode)):
                new[p] = "bad_image"
                if self.rules.decode:
                    self.report(f"{facts.path}: {reason}: left out, another drawn")
        if unreadable:
            self._refuse(unreadable)
        if not self.recipe.multilabel:
            for _, p in picked:
                if p not in new:
                    found, copies = self._copies_in_other_class_folders(p)
                    if found:
                        self._multi_label([p, *copies], new)
        self._identical([p for _, p in picked if p not in new], new)
        new = {p: reason for p, reason in new.items() if p not in self.left_out}  # copies left out before
        if not new:
            new = self._near_duplicates(sides)
        self.left_out.update(new)
        return sorted(new)

    def _refuse(self, unreadable: list[ImageFacts]) -> None:
        if self.rules.decode:
            for facts in unreadable:
                self.report(f"{facts.path}: {facts.problem}")
        first = unreadable[0]
        more = f" (and {len(unreadable) - 1} more drawn images that cannot be read)" if len(unreadable) > 1 else ""
        raise UserError(f"{first.path}: corrupt image: {first.problem}{more}; bad_images=skip draws others instead")

    def _multi_label(self, copies: list[int], new: dict[int, str]) -> None:
        """One photo under several labels: leave out every copy, or all but the first drawn."""
        self.multi_label_shas.add(self.facts(copies[0]).sha256)
        keeper = min(copies, key=lambda q: self.rank[q]) if self.rules.multi_label == "keep" else None
        for q in copies:
            if q != keeper:
                new[q] = "multi_label"

    def _identical(self, positions: list[int], new: dict[int, str]) -> None:
        by_sha = defaultdict(list)
        for p in positions:
            by_sha[self.facts(p).sha256].append(p)
        for sha, holders in by_sha.items():
            if sha in self.multi_label_shas and self.rules.multi_label == "exclude":
                new.update((q, "multi_label") for q in holders)
                continue
            if len(holders) < 2:
                continue
            if not self.recipe.multilabel and len({self._label(q) for q in holders}) > 1:
                self._multi_label(holders, new)
                continue
            keeper = min(holders, key=lambda q: self.rank[q])
            new.update((q, "identical") for q in holders if q != keeper)

    def _near_duplicates(self, sides: dict[str, list[int]]) -> dict[int, str]:
        """Count demo/test pairs within the pHash distance; with exclusion, leave out the later drawn."""
        from ..filtering.dedup import phash_pairs

        distance = self.rules.near_duplicate_distance
        positions = sides["demo"] + sides["test"]
        if distance is None or not sides["demo"] or not sides["test"]:
            return {}
        hashes = np.array([self.facts(p).phash for p in positions], dtype=np.uint64)
        side_of = np.array([0] * len(sides["demo"]) + [1] * len(sides["test"]))
        pairs, _ = phash_pairs(hashes, distance, groups=side_of)
        test_items = {positions[k] for pair in pairs for k in pair if side_of[k] == 1}
        self.near_duplicates = {"pairs": len(pairs), "test_items": len(test_items)}
        if not self.rules.exclude_near_duplicates:
            return {}
        later = (max(positions[i], positions[j], key=lambda q: self.rank[q]) for i, j in pairs)
        return {q: "near_duplicate" for q in later}

    def summary(self) -> dict:
        """The ``content`` section of split.json."""
        reasons = Counter(self.left_out.values())
        return {
            **self.rules.to_json(),
            "inspected_images": len(self._facts),
            "left_out": {key: reasons.get(key, 0) for key in
                         ("identical", "multi_label", "unreadable", "bad_image", "near_duplicate")},
            "multi_label_images": len(self.multi_label_shas),
            "near_duplicate_pairs": self.near_duplicates["pairs"],
            "near_duplicate_test_items": self.near_duplicates["test_items"],
        }
