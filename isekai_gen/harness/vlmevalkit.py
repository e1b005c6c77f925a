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
import json
import string
from pathlib import Path

from ..errors import UserError
from ..export.registry import BUILD, SPLITS, BuildInput, ExportResult, Exporter
from ..fileio import atomic_write_bytes, atomic_write_text, remove_stale
from .documents import Document, ImageStore, lcl_documents, manyicl_documents

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


def _rows(documents: list[Document], classes: list[str], category: str, group_of, store: ImageStore) -> list[dict]:
    letters = string.ascii_uppercase
    if len(classes) > len(letters):
        raise UserError(f"{category}: {len(classes)} classes; VLMEvalKit's option columns are the letters A-Z")
    rows = []
    for number, document in enumerate(documents):
        images = document.images
        rows.append({
            "index": number,
            "image": str([store.files[file].data_b64 for file in images]),
            "image_path": str(images),
            "question": document.text,
            **{letters[i]: name for i, name in enumerate(classes)},
            "answer": letters[classes.index(document.target[0])],
            "category": category, "split": "test",
            "id": document.id, "shots": document.shots, "seed": document.seed, "group": group_of(document),
        })
    return rows


def _tsv(rows: list[dict]) -> bytes:
    import pandas as pd

    buffer = io.StringIO()
    pd.DataFrame(rows).to_csv(buffer, sep="\t", index=False, lineterminator="\n")
    return buffer.getvalue().encode("utf-8")


class VLMEvalKitExporter(Exporter):
    name = "vlmevalkit"
    folder = FOLDER
    reads = (BUILD, SPLITS)
    hashed = False   # a view of the LCL files and splits, which the content hash covers

    def export(self, source) -> ExportResult:
        from_build = isinstance(source, BuildInput)
        root = (source.export_dir if from_build else source.dest) / FOLDER
        written = set()
        for name, rows in (_build_tables(source) if from_build else _split_tables(source)):
            atomic_write_bytes(root / f"{name}.tsv", _tsv(rows))
            written.add(root / f"{name}.tsv")
        atomic_write_text(root / DATASET_CLASS_FILE, DATASET_CLASS)
        written.add(root / DATASET_CLASS_FILE)
        remove_stale(root, written | {p for p in root.glob("images/**/*") if p.is_file()})
        return ExportResult({}, {"tasks": len(written) - 1, "path": str(root)})


def _build_tables(source):
    from ..evaluate.tasks import load_task
    from ..export.lcl import LCL_DIR, annotation_file
    from .lmms_tasks import MAX_LCL_SHOTS

    found = False
    for set_name, stem in LCL_STEMS.items():
        path = source.out_dir / LCL_DIR / annotation_file(set_name)
        if not path.is_file():
            continue
        found = True
        task = load_task(path)
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        store = ImageStore()
        shots = source.shots if source.shots is not None else range(min(MAX_LCL_SHOTS, task.max_shots) + 1)
        for k in shots:
            documents = lcl_documents(task, k, store, source.seed)
            rows = []
            for document in documents:   # options: this episode's two labels, positive first
                line = lines[int(document.id) - 1]
                rows += _rows([document], [line["positive_promt"], line["negative_promt"]], set_name,
                              lambda d, line=line: f"{line['positive_promt']} vs {line['negative_promt']}", store)
            for number, row in enumerate(rows):
                row["index"] = number
            yield dataset_name(stem, k), rows
    if not found:
        raise UserError(f"{source.out_dir / LCL_DIR}: no ISEKAI-10.json or ISEKAI-pair.json; write them first "
                        f"(`isekai-gen export --out {source.out_dir} --format lcl,{FOLDER}`)")


def _split_tables(source):
    from ..evaluate.tasks import load_manyicl

    for folder in source.folders:
        task = load_manyicl(Path(folder))
        if task.multilabel:
            raise UserError(f"{folder}: a multi-label set; a VLMEvalKit multiple-choice row has exactly one answer "
                            "(use --format lmms-eval)")
        store = ImageStore()
        for k in source.shots:
            documents = manyicl_documents(task, k, store, source.seed)
            yield dataset_name(f"ManyICL_{task.name}", k), _rows(documents, list(task.classes), task.name, lambda d: task.name, store)


EXPORTER = VLMEvalKitExporter
