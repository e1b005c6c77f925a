"""``--format lmms-eval``: task folders for lmms-eval, demonstrations built into each document.

lmms-eval cannot build these tasks itself: its ``num_fewshot`` does not work with images
(maintainer's answer in its issue #307; the multimodal few-shot PR #365 was closed unmerged). So
every document carries its own interleaved demonstrations (``documents.py``: `isekai-gen
evaluate`'s requests at batch size 1). Layout, one folder per task group::

    lmms-eval/<group>/<task>.yaml      one task per shot count: `dataset_path: parquet` on
                                       docs/<task>.parquet, generate_until, `doc_to_messages`
    lmms-eval/<group>/utils.py         binds ``isekai_gen.harness.hooks`` to this folder
    lmms-eval/<group>/task.json        truth file and metric of the group
    lmms-eval/<group>/docs/<task>.parquet   one row per query (``Document.row``)
    lmms-eval/<group>/images/<sha256>.<ext> every image once
    lmms-eval/<group>/truth/<file>     what the aggregation scores against

Groups: ``isekai10`` and ``isekai_pair`` from a build's LCL files (tasks ``isekai10_<k>shot``,
k = 0..16 demonstrations per side by default), ``manyicl_<dataset>`` per ManyICL split folder
(tasks ``manyicl_<dataset>_<k>shot``, k per class); each task carries its group as ``tag``, so
``--tasks isekai10`` runs every shot count. The task YAMLs name their Parquet files by absolute
path (``datasets.load_dataset`` resolves relative ``data_files`` against the working folder):
export again after moving the folder. Keys as in lmms-eval's own local-file tasks
(``lmms_eval/tasks/structeditbench/structeditbench.yaml``) and its multiple-choice example
``lmms_eval/tasks/muirbench/``.

Run: ``lmms-eval --model openai --model_args model_version=NAME,base_url=http://HOST:PORT/v1
--include_path OUT/export/lmms-eval --tasks isekai10 --batch_size 1 --output_path RESULTS``.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from ..errors import UserError
from ..export.registry import BUILD, SPLITS, BuildInput, ExportResult, Exporter
from ..fileio import atomic_write_bytes, atomic_write_text, remove_stale, write_json
from ..scoring.metrics import ACCURACY, MACRO_F1
from .documents import Document, ImageStore, lcl_documents, manyicl_documents
from .hooks import IMAGES_DIR, TASK_FILE

FOLDER = "lmms-eval"
LCL_SETS = {"ISEKAI-10": "isekai10", "ISEKAI-pair": "isekai_pair"}
MAX_LCL_SHOTS = 16   # the largest shot count of the LCL paper

UTILS = '''"""lmms-eval hooks of this task folder, written by `isekai-gen export --format lmms-eval`.

Needs isekai-gen installed beside lmms-eval: the hooks and the scorer are isekai_gen's own.
"""

from pathlib import Path

from isekai_gen.harness.hooks import TaskHooks

_hooks = TaskHooks(Path(__file__).resolve().parent)
doc_to_messages = _hooks.doc_to_messages
doc_to_visual = _hooks.doc_to_visual
doc_to_text = _hooks.doc_to_text
doc_to_target = _hooks.doc_to_target
process_results = _hooks.process_results
aggregate = _hooks.aggregate
'''


def slug(name: str) -> str:
    """A task-name part: lower case, runs of other characters as one underscore."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _docs_table(documents: list[Document]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.string()), ("position", pa.int64()), ("seed", pa.int64()), ("shots", pa.int64()),
                        ("messages", pa.string()), ("images", pa.list_(pa.string())), ("text", pa.string()),
                        ("target", pa.string()), ("max_tokens", pa.int64()), ("temperature", pa.float64())])
    table = pa.Table.from_pylist([document.row() for document in documents], schema=schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def _yaml(task: str, group: str, docs: Path, documents: list[Document], metric: str, source: str) -> str:
    """The task YAML (written as text: lmms-eval's ``!function`` tags; JSON strings are YAML scalars)."""
    first = documents[0]
    return f"""# Written by `isekai-gen export --format lmms-eval` from {json.dumps(source)}.
task: {json.dumps(task)}
tag:
  - {json.dumps(group)}
dataset_path: parquet
dataset_kwargs:
  data_files:
    test: {json.dumps(str(docs))}
test_split: test
output_type: generate_until
doc_to_messages: !function utils.doc_to_messages
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
doc_to_target: !function utils.doc_to_target
process_results: !function utils.process_results
generation_kwargs:
  max_new_tokens: {first.max_tokens}
  temperature: {first.temperature}
  do_sample: false
metric_list:
  - metric: {metric}
    aggregation: !function utils.aggregate
    higher_is_better: true
metadata:
  version: 1
  shots: {first.shots}
  batch_size: 1
  documents: {len(documents)}
"""


def write_group(folder: Path, group: str, truth: Path, metric: str, by_shots: dict[int, list[Document]],
                store: ImageStore, source: str) -> list[str]:
    """One task group folder; returns its task names. Files of earlier exports not rewritten are removed."""
    written: set[Path] = set()

    def put_text(path: Path, text: str) -> None:
        atomic_write_text(path, text)
        written.add(path)

    truth_copy = folder / "truth" / truth.name
    atomic_write_bytes(truth_copy, truth.read_bytes())
    written.add(truth_copy)
    write_json(folder / TASK_FILE, {"truth": f"truth/{truth.name}", "metric": metric})
    written.add(folder / TASK_FILE)
    put_text(folder / "utils.py", UTILS)
    tasks = []
    for shots, documents in sorted(by_shots.items()):
        task = f"{group}_{shots}shot"
        docs = folder / "docs" / f"{task}.parquet"
        atomic_write_bytes(docs, _docs_table(documents))
        written.add(docs)
        put_text(folder / f"{task}.yaml", _yaml(task, group, docs.resolve(), documents, metric, source))
        tasks.append(task)
    written.update(folder / IMAGES_DIR / file for file in store.write(folder / IMAGES_DIR))
    remove_stale(folder, written)
    return tasks


class LmmsEvalExporter(Exporter):
    name = "lmms-eval"
    folder = FOLDER
    reads = (BUILD, SPLITS)
    hashed = False   # a view of the LCL files and splits, which the content hash covers

    def export(self, source) -> ExportResult:
        from_build = isinstance(source, BuildInput)
        root = (source.export_dir if from_build else source.dest) / FOLDER
        groups = build_groups(source) if from_build else split_groups(source)
        tasks = []
        for group, (truth, metric, by_shots, store, origin) in groups.items():
            tasks += write_group(root / group, group, truth, metric, by_shots, store, origin)
        return ExportResult({}, {"tasks": len(tasks), "groups": list(groups), "path": str(root)})


def build_groups(source) -> dict:
    """ISEKAI-10 and ISEKAI-pair groups from ``OUT/export/lcl/`` (run the lcl format first)."""
    from ..evaluate.tasks import load_task
    from ..export.lcl import LCL_DIR, annotation_file

    groups = {}
    for set_name, group in LCL_SETS.items():
        path = source.out_dir / LCL_DIR / annotation_file(set_name)
        if not path.is_file():
            continue
        task = load_task(path)
        shots = source.shots if source.shots is not None else range(min(MAX_LCL_SHOTS, task.max_shots) + 1)
        store = ImageStore()
        by_shots = {k: lcl_documents(task, k, store, source.seed) for k in shots}
        groups[group] = (path, ACCURACY, by_shots, store, f"{LCL_DIR}/{path.name}")
    if not groups:
        lcl = source.out_dir / LCL_DIR
        raise UserError(f"{lcl}: no ISEKAI-10.json or ISEKAI-pair.json; write them first "
                        f"(`isekai-gen export --out {source.out_dir} --format lcl,{FOLDER}`)")
    return groups


def split_groups(source) -> dict:
    """One ``manyicl_<dataset>`` group per split folder."""
    from ..evaluate.tasks import load_manyicl

    groups = {}
    for folder in source.folders:
        task = load_manyicl(Path(folder))
        group = f"manyicl_{slug(task.name)}"
        if group in groups:
            raise UserError(f"{folder}: a second split folder named {task.name!r}; export them into separate --dest folders")
        store = ImageStore()
        by_shots = {k: manyicl_documents(task, k, store, source.seed) for k in source.shots}
        groups[group] = (task.truth_path, MACRO_F1 if task.multilabel else ACCURACY, by_shots, store, task.name)
    return groups


EXPORTER = LmmsEvalExporter
