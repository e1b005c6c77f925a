"""``--format vlmevalkit``: one VLMEvalKit TSV per (dataset or ISEKAI set, shots) + one dataset-class file.

Checked against VLMEvalKit (open-compass/VLMEvalKit, commit e8e78f05, 2026-08):
``vlmeval/dataset/__init__.py::build_dataset`` loads an unregistered ``$LMUData/<name>.tsv`` that
has ``question``, ``A``, ``B`` and an ``image`` column as a ``CustomMCQDataset``;
``image_base.py::ImageBaseDataset`` turns ``index`` into strings, parses each ``image`` /
``image_path`` cell with ``toliststr`` (a Python list literal) and ``dump_image`` writes each
listed base64 image to ``$LMUData/images/<name>/<image_path[i]>`` unless a file is there (so
images shared by rows, named by their sha256 here, are decoded once); ``image_mcq.py``'s
options are the upper-case letter columns, ``answer`` a letter; names containing ``mmbench``,
``ccbench``, ``circular`` or ``mmcr`` switch on circular evaluation, so they are refused.
``ImageMCQDataset.build_prompt`` puts every image before the text, which would cut the
demonstrations from their labels: the dataset class written beside the TSVs
(``isekai_icl_dataset.py``, ``IsekaiICLDataset``) splits ``question`` at its ``<image>``
markers with ``MUIRDataset.split_MUIR`` instead, interleaving the images where `evaluate` puts
them. The TSV is written by pandas with a tab separator, as VLMEvalKit's own ``dump`` does.

Columns: ``index``, ``image`` (list: demonstrations then the query, in prompt order),
``image_path`` (their file names), ``question`` (the prompt, ``<image>`` per image), ``A``, ``B``,
... (the class names), ``answer`` (the letter), ``category`` (dataset or ISEKAI set), ``split``,
and ours: ``id`` (the scorer's id), ``shots``, ``seed``, ``group``. Multi-label sets (CheXpert)
are refused: a VLMEvalKit MCQ row has one answer. Each row repeats its demonstrations' base64
text (VLMEvalKit's index indirection shares only a whole cell), so many-shot TSVs are large;
lmms-eval's task folders store each image once.
"""

from __future__ import annotations

import io
import string

from ..errors import UserError
from ..export.registry import ExportResult
from ..fileio import atomic_write_bytes, atomic_write_text, remove_stale
from .documents import Document
from .groups import HarnessExporter, TaskGroup, groups_of

FOLDER = "vlmevalkit"
CIRCULAR_TRIGGERS = ("mmbench", "ccbench", "circular", "mmcr")
DATASET_CLASS_FILE = "isekai_icl_dataset.py"

DATASET_CLASS = '''"""IsekaiICLDataset: many-shot / link-context TSVs written by `isekai-gen export --format vlmevalkit`.

Install: copy this file into your VLMEvalKit checkout as vlmeval/dataset/isekai_icl_dataset.py and add
    from .isekai_icl_dataset import IsekaiICLDataset
to vlmeval/dataset/__init__.py (and IsekaiICLDataset to its DATASET_CLASSES list). Point LMUData at the
folder holding the TSVs and run with a config naming the class, e.g.
    {"model": {...}, "data": {"ManyICL_UCM_5shot": {"class": "IsekaiICLDataset", "dataset": "ManyICL_UCM_5shot"}}}
    python run.py --config config.json
"""

from ..smp import toliststr
from .image_mcq import CustomMCQDataset, MUIRDataset


class IsekaiICLDataset(CustomMCQDataset):
    """Images interleaved at the question's <image> markers (demonstrations keep their labels)."""

    def build_prompt(self, line):
        if isinstance(line, int):
            line = self.data.iloc[line]
        paths = toliststr(self.dump_image(line))
        msgs = [dict(type="image", value=path) for path in paths] + [dict(type="text", value=line["question"])]
        return MUIRDataset.split_MUIR(msgs)
'''


LCL_STEMS = {"ISEKAI-10": "ISEKAI10", "ISEKAI-pair": "ISEKAIpair"}


def dataset_name(stem: str, shots: int) -> str:
    """``<stem>_<k>shot``; one line when VLMEvalKit would evaluate it circularly."""
    name = f"{stem}_{shots}shot"
    trigger = next((word for word in CIRCULAR_TRIGGERS if word in name.lower()), None)
    if trigger:
        raise UserError(f"{stem}: the VLMEvalKit dataset name {name} contains {trigger!r}, which switches on its "
                        "circular evaluation; rename the split folder")
    return name


def table_name(group: TaskGroup, shots: int) -> str:
    stem = LCL_STEMS[group.name] if group.kind == "lcl" else f"ManyICL_{group.name}"
    return dataset_name(stem, shots)


def _rows(group: TaskGroup, documents: list[Document]) -> list[dict]:
    letters = string.ascii_uppercase
    rows = []
    for number, document in enumerate(documents):
        choices = list(document.choices)
        if len(choices) > len(letters):
            raise UserError(f"{group.truth}: {len(choices)} classes; VLMEvalKit's option columns are the letters A-Z")
        images = document.images
        rows.append({
            "index": number,
            "image": str([group.store.files[file].data_b64 for file in images]),
            "image_path": str(images),
            "question": document.text,
            **{letters[i]: name for i, name in enumerate(choices)},
            "answer": letters[choices.index(document.target[0])],
            "category": group.name, "split": "test",
            "id": document.id, "shots": document.shots, "seed": document.seed,
            "group": " vs ".join(choices) if group.kind == "lcl" else group.name,
        })
    return rows


def _tsv(rows: list[dict]) -> bytes:
    import pandas as pd

    buffer = io.StringIO()
    pd.DataFrame(rows).to_csv(buffer, sep="\t", index=False, lineterminator="\n")
    return buffer.getvalue().encode("utf-8")


class VLMEvalKitExporter(HarnessExporter):
    name = "vlmevalkit"
    folder = FOLDER

    def export(self, source) -> ExportResult:
        root = self.root(source)
        groups = groups_of(source, FOLDER)
        for group in groups:
            if group.multilabel:
                raise UserError(f"{group.truth}: a multi-label set; a VLMEvalKit multiple-choice row has exactly one "
                                "answer (use --format lmms-eval)")
        tables = {table_name(group, shots): _rows(group, documents)
                  for group in groups for shots, documents in sorted(group.documents.items())}
        written = set()
        for name, rows in tables.items():
            atomic_write_bytes(root / f"{name}.tsv", _tsv(rows))
            written.add(root / f"{name}.tsv")
        atomic_write_text(root / DATASET_CLASS_FILE, DATASET_CLASS)
        written.add(root / DATASET_CLASS_FILE)
        # images/ is VLMEvalKit's own (dump_image writes there when LMUData is this folder).
        remove_stale(root, written | {p for p in root.glob("images/**/*") if p.is_file()})
        return ExportResult({}, {"tasks": len(tables), "path": str(root)})


EXPORTER = VLMEvalKitExporter
