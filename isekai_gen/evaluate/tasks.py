"""What `evaluate --truth` points at, read into a task: a ManyICL split folder or an ISEKAI set.

- ManyICL: a folder holding `demo.csv`, `test.csv` and `images/` (the layout ManyICL's `run.py`
  reads and `isekai-gen splits build` writes). Both CSVs are read by the scorer's own reader, so
  the ids, classes and multi-label-ness the prompts use are exactly the ones scoring uses.
- LCL: `ISEKAI-10.json` / `ISEKAI-pair.json` (JSON Lines; image paths relative to an image root,
  by default the `images/` folder beside the file, as `export/lcl/` is laid out) or our
  `episodes.jsonl` (images under the build folder, `images/<concept>/<job_id>.png`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError, where
from ..paths import contained
from ..schema import validate
from ..scoring.textio import json_lines
from ..scoring.truth import load_truth, read_manyicl_csv


@dataclass(frozen=True)
class Example:
    id: str
    image: Path
    labels: tuple[str, ...]


@dataclass(frozen=True)
class ManyICLTask:
    name: str                    # dataset name (the folder name), used in pickle names
    truth_path: Path             # what the scorer reads (test.csv)
    classes: tuple[str, ...]
    multilabel: bool
    demo: tuple[Example, ...]    # demo.csv order
    test: tuple[Example, ...]    # test.csv order
    kind: str = "manyicl"

    def demos(self, per_class: int) -> list[Example]:
        """prompt.py `work()`'s rule: for each class in column order, its first ``per_class`` rows of demo.csv.

        Multi-label sets: a row positive for several classes is taken once (at its first class).
        """
        chosen, seen = [], set()
        for name in self.classes:
            rows = [example for example in self.demo if name in example.labels]
            if len(rows) < per_class:
                raise UserError(f"{self.truth_path.with_name('demo.csv')}: class {name!r} has {len(rows)} demo rows; "
                                f"--shots {per_class} needs {per_class} per class")
            for example in rows[:per_class]:
                if example.id not in seen:
                    seen.add(example.id)
                    chosen.append(example)
        return chosen


@dataclass(frozen=True)
class Episode:
    id: str                      # the scorer's id: LCL line number or episode_id
    query: Path
    positive: tuple[Path, ...]
    negative: tuple[Path, ...]
    positive_label: str
    negative_label: str
    label: str


@dataclass(frozen=True)
class LCLTask:
    name: str
    truth_path: Path
    episodes: tuple[Episode, ...]
    kind: str = "lcl"

    @property
    def max_shots(self) -> int:
        return min(min(len(e.positive), len(e.negative)) for e in self.episodes)


def _csv_examples(path: Path, images: Path, classes: tuple[str, ...]) -> tuple[tuple[Example, ...], bool]:
    truth = read_manyicl_csv(path)
    if truth.classes != classes:
        raise UserError(f"{path}: class columns {list(truth.classes)} differ from test.csv's {list(classes)}")
    examples = tuple(
        Example(item_id, contained(images, item_id, what="image", source=path),
                tuple(name for name, on in zip(truth.classes, row) if on))
        for item_id, row in zip(truth.ids, truth.targets))
    return examples, truth.multilabel


def load_manyicl(folder: Path) -> ManyICLTask:
    test_path, demo_path, images = folder / "test.csv", folder / "demo.csv", folder / "images"
    for needed in (test_path, demo_path):
        if not needed.is_file():
            raise UserError(f"{folder}: not a ManyICL split folder (no {needed.name})")
    if not images.is_dir():
        raise UserError(f"{folder}: no images/ folder beside demo.csv and test.csv")
    classes = read_manyicl_csv(test_path).classes
    test, multi_test = _csv_examples(test_path, images, classes)
    demo, multi_demo = _csv_examples(demo_path, images, classes)
    return ManyICLTask(folder.resolve().name, test_path, classes, multi_test or multi_demo, demo, test)


def _lcl_episodes(path: Path, image_root: Path) -> tuple[Episode, ...]:
    episodes = []
    for line, row in json_lines(path):
        source = where(path, line)

        def image(name, source=source):
            if not isinstance(name, str):
                raise UserError(f"{source}: image names must be strings")
            return contained(image_root, name, what="image", source=source)

        for field in ("positive_list", "negative_list"):
            if not isinstance(row.get(field), list):
                raise UserError(f"{source}: missing list field {field!r}")
        episodes.append(Episode(str(line), image(row.get("image_name")),
                                tuple(map(image, row["positive_list"])), tuple(map(image, row["negative_list"])),
                                row["positive_promt"], row["negative_promt"], row["label_name"]))
    return tuple(episodes)


def _job_image(build: Path, concept: str, job_id: str, source: str) -> Path:
    """Generation's layout: `OUT/images/<concept_id>/<job_id>.png`."""
    return contained(build, f"images/{concept}/{job_id}.png", what="support job id", source=source)


def _episode_rows(path: Path) -> tuple[Episode, ...]:
    build = path.resolve().parent.parent  # OUT/episodes/episodes.jsonl
    episodes = []
    for line, row in json_lines(path):
        source = where(path, line)
        validate(row, "episode_row", source)
        episodes.append(Episode(
            row["episode_id"], contained(build, row["query_image"], what="query_image", source=source),
            tuple(_job_image(build, row["positive_concept"], j, source) for j in row["positive_support"]),
            tuple(_job_image(build, row["negative_concept"], j, source) for j in row["negative_support"]),
            row["positive_label"], row["negative_label"], row["label"]))
    return tuple(episodes)


def load_task(truth: str | Path, images: str | Path | None = None) -> ManyICLTask | LCLTask:
    """The task behind ``--truth``; ``images`` overrides the LCL image root."""
    path = Path(truth)
    if path.is_dir():
        if images is not None:
            raise UserError(f"--images applies to ISEKAI files; {path} is a ManyICL split folder (images/ inside it)")
        return load_manyicl(path)
    scored = load_truth(path)  # validates the file the way the scorer will read it
    if scored.kind == "episodes":
        if images is not None:
            raise UserError(f"--images: {path} is an episodes.jsonl; its images are in its build folder")
        episodes = _episode_rows(path)
    elif scored.kind == "lcl":
        episodes = _lcl_episodes(path, Path(images) if images is not None else path.parent / "images")
    else:
        raise UserError(f"{path}: --truth takes a ManyICL split folder (demo.csv, test.csv, images/), "
                        "an ISEKAI-*.json file or an episodes.jsonl")
    return LCLTask(path.stem, path, episodes)
