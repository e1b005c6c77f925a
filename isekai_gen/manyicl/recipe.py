"""What a ManyICL benchmark split is made of: the recipe, the candidate pool, the adapter contract.

A dataset module in ``splits/`` subclasses ``Adapter``: it states the recipe (classes, per-class
sizes, which source splits feed demo and test, group key, licence, documented defaults for what
the paper leaves open) and reads the dataset's native layout into a ``Pool``. Everything else —
sampling, writing, materialising images — is shared code in this package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..paths import contained

# Settings every dataset accepts; anything else must be one of the adapter's own options.
COMMON_SETTINGS = ("seed", "demo_per_class", "test_per_class", "classes", "materialize", "verify_images",
                   "multi_label", "bad_images", "near_duplicate_distance", "exclude_near_duplicates")
MATERIALIZE_MODES = ("copy", "symlink", "none")


@dataclass(frozen=True)
class Option:
    """A dataset-specific setting: its default and why that default was chosen.

    A value must have the default's type (``kind`` when the default is None) or be None; with
    ``choices`` it must be one of them; with ``subset_of`` (a list option) it must be a non-empty
    list of those values (``what`` names them in the error).
    """

    default: Any
    help: str
    choices: tuple | None = None
    kind: type | None = None
    subset_of: tuple | None = None
    what: str = ""

    def check(self, dataset: str, key: str, value) -> None:
        kind = self.kind or type(self.default)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool) != (kind is bool)):
            raise UserError(f"{dataset}: option {key}={value!r} must be a {_KIND_NAMES.get(kind, kind.__name__)}")
        if self.choices is not None and value not in self.choices:
            raise UserError(f"{dataset}: option {key}={value!r} is not one of {', '.join(map(str, self.choices))}")
        # bool is an int to Python: `true` must not pass for hospital 1.
        if self.subset_of is not None and (
                not value or any(isinstance(v, bool) or v not in self.subset_of for v in value)):
            allowed = ", ".join(map(str, self.subset_of))
            raise UserError(f"{dataset}: {key} must be a non-empty list of {self.what} among {allowed}, got {value!r}")


_KIND_NAMES = {str: "string", int: "whole number", list: "list", bool: "boolean"}


@dataclass(frozen=True)
class Recipe:
    """Everything that decides which items a split holds (recorded in split.json)."""

    name: str
    title: str
    classes: tuple[str, ...]          # CSV column order
    demo_per_class: int
    test_per_class: int
    demo_splits: tuple[str, ...]      # source splits whose items may go to demo
    test_splits: tuple[str, ...]      # ... and to test (may overlap: then groups are divided)
    group_key: str                    # what `group` means ("item" when every item is its own group)
    license: str
    redistributable: bool
    multilabel: bool                  # True: balanced positive/negative per class (CheXpert)
    options: dict = field(default_factory=dict)

    @property
    def contained_labels(self) -> list[list[str]]:
        return contained_label_pairs(self.classes)

    @property
    def strata(self) -> tuple[str, ...]:
        """Sampling cells: one per class, or a positive and a negative cell per class."""
        if not self.multilabel:
            return self.classes
        return tuple(f"{c}:{polarity}" for c in self.classes for polarity in ("positive", "negative"))

    def stratum_masks(self, labels: np.ndarray) -> np.ndarray:
        """(n, strata) booleans: which items may fill which cell."""
        positive = labels > 0.5
        if not self.multilabel:
            return positive
        masks = np.empty((labels.shape[0], 2 * labels.shape[1]), dtype=bool)
        masks[:, 0::2] = positive
        masks[:, 1::2] = ~positive
        return masks

    def to_json(self) -> dict:
        return {
            "name": self.name, "title": self.title, "classes": list(self.classes),
            "demo_per_class": self.demo_per_class, "test_per_class": self.test_per_class,
            "demo_splits": list(self.demo_splits), "test_splits": list(self.test_splits),
            "group_key": self.group_key, "license": self.license, "redistributable": self.redistributable,
            "multilabel": self.multilabel, "options": dict(self.options),
        }


def contained_label_pairs(classes) -> list[list[str]]:
    """[shorter, longer] pairs where one class name occurs inside another, ignoring case.

    ManyICL's released eval.py takes a class as predicted when its name is a case-insensitive
    substring of the answer, so an answer naming the longer class names both (DTD ``dotted`` in
    ``polka-dotted``) and is dropped as naming several classes.
    """
    return [[a, b] for a in classes for b in classes if a != b and a.lower() in b.lower()]


@dataclass
class Pool:
    """Every candidate item of a dataset, as read from its native layout.

    ``frame`` has the columns ``file_name`` (output name, unique, path-safe), ``source_path``
    (relative to the root, POSIX), ``source_split`` and ``group``, plus the adapter's
    ``extra_fields``; ``labels`` is (n, len(recipe.classes)) with 1.0 for each positive class;
    ``layouts`` names the distribution layout each part was read from (``Found.to_json``).
    """

    frame: Any  # pandas.DataFrame (pandas is imported lazily)
    labels: np.ndarray
    layouts: list[dict] = field(default_factory=list)  # the distribution layouts read (split.json ``layouts``)

    @classmethod
    def from_rows(cls, rows: list[dict], recipe: Recipe, extra_fields: tuple[str, ...] = ()) -> "Pool":
        """Rows of ``file_name, source_path, source_split, label`` (+ ``group``: default the item itself)."""
        import pandas as pd

        columns = ["file_name", "source_path", "source_split", "group", "label", *extra_fields]
        frame = pd.DataFrame([{"group": row["source_path"], **row} for row in rows], columns=columns)
        return cls.from_class_names(frame, "label", recipe)

    @classmethod
    def from_class_names(cls, frame, label_column: str, recipe: Recipe) -> "Pool":
        """One class name per row; rows of classes outside the recipe are left out."""
        import pandas as pd

        codes = pd.Index(recipe.classes).get_indexer(frame[label_column])
        chosen = codes >= 0
        frame = frame.loc[chosen].drop(columns=[label_column]).reset_index(drop=True)
        labels = np.zeros((len(frame), len(recipe.classes)), dtype=np.float32)
        labels[np.arange(len(frame)), codes[chosen]] = 1.0
        return cls(frame, labels)


class Adapter:
    """One benchmark dataset: its recipe defaults and a reader of its native layout."""

    name: str = ""
    title: str = ""
    all_classes: tuple[str, ...] = ()
    default_classes: tuple[str, ...] | None = None   # None: all classes
    demo_per_class: int = 0
    test_per_class: int = 0
    group_key: str = "item"
    license: str = ""
    redistributable: bool = False
    multilabel: bool = False
    layout: str = ""                                   # the native layout, for `splits list`
    notes: tuple[str, ...] = ()                        # defaults chosen where the paper is silent
    options: dict[str, Option] = {}
    extra_fields: tuple[str, ...] = ()                 # pool columns copied into split rows

    def source_splits(self, options: dict) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(source splits feeding demo, source splits feeding test) under ``options``."""
        raise NotImplementedError

    def read(self, root: Path, recipe: Recipe):
        """Read the native layout under ``root`` into a ``Pool`` over ``recipe.classes``."""
        raise NotImplementedError

    def image_file(self, root: Path, row: dict, cache_dir: Path) -> Path:
        """The image file behind a split row (DrugOOD draws it into ``cache_dir``)."""
        return self.source_file(root, row["source_path"])

    def source_file(self, root: Path, source_path: str) -> Path:
        """The file on disk a row comes from (sized for the fingerprint), kept inside ``root``
        (``isekai_gen.paths.contained``: symlinks included)."""
        return contained(root, source_path, what="source path", source=f"{self.name} root {root}")

    def recipe(self, settings: dict | None = None) -> Recipe:
        """The recipe under the user's ``settings`` (common settings plus this dataset's options)."""
        settings = dict(settings or {})
        unknown = sorted(set(settings) - set(COMMON_SETTINGS) - set(self.options))
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise UserError(f"{self.name}: unknown option(s) {', '.join(unknown)} (options of {self.name}: {known})")
        options = {key: settings.get(key, opt.default) for key, opt in self.options.items()}
        for key, opt in self.options.items():
            opt.check(self.name, key, options[key])
        classes = self._classes(settings.get("classes"))
        demo_splits, test_splits = self.source_splits(options)
        sizes = {}
        for key in ("demo_per_class", "test_per_class"):
            value = settings.get(key)
            sizes[key] = getattr(self, key) if value is None else value
            if not isinstance(sizes[key], int) or isinstance(sizes[key], bool) or sizes[key] < 0:
                raise UserError(f"{self.name}: {key} must be a whole number >= 0, got {sizes[key]!r}")
        return Recipe(
            name=self.name, title=self.title, classes=classes, demo_splits=tuple(demo_splits),
            test_splits=tuple(test_splits), group_key=self.group_key, license=self.license,
            redistributable=self.redistributable, multilabel=self.multilabel, options=options, **sizes,
        )

    def _classes(self, requested) -> tuple[str, ...]:
        if requested is None:
            requested = list(self.default_classes or self.all_classes)
        if isinstance(requested, str):
            requested = [c.strip() for c in requested.split(",") if c.strip()]
        if not isinstance(requested, list) or not all(isinstance(c, str) for c in requested):
            raise UserError(f"{self.name}: classes must be a list of class names, got {requested!r}")
        unknown = [c for c in requested if c not in self.all_classes]
        if unknown:
            raise UserError(f"{self.name}: unknown class {unknown[0]!r} (classes: {', '.join(self.all_classes)})")
        if not requested:
            raise UserError(f"{self.name}: --classes names no class")
        # Canonical order, whatever order the user typed: the CSV columns do not depend on it.
        return tuple(c for c in self.all_classes if c in set(requested))

    def describe(self) -> dict:
        """The dataset as `splits list` shows it."""
        recipe = self.recipe()
        dropped = [c for c in self.all_classes if c not in recipe.classes]
        return {
            **recipe.to_json(), "dropped_classes": dropped, "layout": self.layout, "notes": list(self.notes),
            "contained_labels": recipe.contained_labels,
            "option_help": {key: opt.help for key, opt in self.options.items()},
        }
