"""Task groups: what each harness format writes, one group per ISEKAI set of a build or per split folder.

A build's groups come from its LCL files (``OUT/export/lcl/ISEKAI-10.json`` and
``ISEKAI-pair.json``, which `isekai-gen evaluate --truth` reads too, ids = line numbers), at
0..16 shots per side by default (the LCL paper's largest count; fewer when the episodes carry
fewer); a split folder's group holds one document list per requested shot count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..evaluate.tasks import load_manyicl, load_task
from ..export.lcl import LCL_DIR, annotation_file
from ..export.registry import BUILD, SPLITS, BuildInput, Exporter
from ..scoring.metrics import ACCURACY, MACRO_F1
from .documents import Document, ImageStore, task_documents

LCL_SETS = ("ISEKAI-10", "ISEKAI-pair")
MAX_LCL_SHOTS = 16


@dataclass
class TaskGroup:
    kind: str                                  # "lcl" (an ISEKAI set) | "manyicl" (a split folder)
    name: str                                  # the set or dataset name, e.g. "ISEKAI-10", "UCMerced"
    truth: Path                                # the file the scorer reads
    multilabel: bool
    documents: dict[int, list[Document]] = field(default_factory=dict)   # by shots
    store: ImageStore = field(default_factory=ImageStore)

    @property
    def metric(self) -> str:
        return MACRO_F1 if self.multilabel else ACCURACY


def slug(name: str) -> str:
    """A name part for harness task names: lower case, runs of other characters as one underscore."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def build_groups(source, needed_by: str) -> list[TaskGroup]:
    """The ISEKAI sets of a build (its LCL files must exist: the lcl format runs first)."""
    groups = []
    for set_name in LCL_SETS:
        path = source.out_dir / LCL_DIR / annotation_file(set_name)
        if not path.is_file():
            continue
        task = load_task(path)
        group = TaskGroup("lcl", set_name, path, multilabel=False)
        shots = source.shots if source.shots is not None else range(min(MAX_LCL_SHOTS, task.max_shots) + 1)
        group.documents = task_documents(task, list(shots), group.store, source.seed)
        groups.append(group)
    if not groups:
        raise UserError(f"{source.out_dir / LCL_DIR}: no ISEKAI-10.json or ISEKAI-pair.json; write them first "
                        f"(`isekai-gen export --out {source.out_dir} --format lcl,{needed_by}`)")
    return groups


def split_groups(source) -> list[TaskGroup]:
    """One group per ManyICL split folder, named after the folder."""
    groups, seen = [], {}
    for folder in source.folders:
        task = load_manyicl(Path(folder))
        if slug(task.name) in seen:
            raise UserError(f"{folder}: named like {seen[slug(task.name)]}; export them into separate --dest folders")
        seen[slug(task.name)] = folder
        group = TaskGroup("manyicl", task.name, task.truth_path, task.multilabel)
        group.documents = task_documents(task, list(source.shots), group.store, source.seed)
        groups.append(group)
    return groups


def groups_of(source, needed_by: str) -> list[TaskGroup]:
    """A build's groups or the split folders' groups, whichever ``source`` is."""
    return build_groups(source, needed_by) if isinstance(source, BuildInput) else split_groups(source)


class HarnessExporter(Exporter):
    """The base of the harness formats: they read a build or split folders and write a view of them."""
    reads = (BUILD, SPLITS)
    hashed = False   # a view of the LCL files and splits, which the content hash covers

    def root(self, source) -> Path:
        """OUT/export/<folder> for a build, <dest>/<folder> for split folders."""
        return (source.export_dir if isinstance(source, BuildInput) else source.dest) / self.folder
