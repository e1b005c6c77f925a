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
from pathlib import Path

from ..export.registry import ExportResult
from ..fileio import atomic_write_bytes, atomic_write_text, remove_stale, write_json
from .documents import Document
from .groups import HarnessExporter, TaskGroup, groups_of, slug
from .hooks import IMAGES_DIR, TASK_FILE

FOLDER = "lmms-eval"

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


def group_name(group: TaskGroup) -> str:
    return {"ISEKAI-10": "isekai10", "ISEKAI-pair": "isekai_pair"}[group.name] if group.kind == "lcl" else \
        f"manyicl_{slug(group.name)}"


def write_group(folder: Path, group: TaskGroup) -> list[str]:
    """One task group folder; returns its task names. Files of earlier exports not rewritten are removed."""
    name = group_name(group)
    written: set[Path] = set()

    def put(path: Path, data: bytes | str) -> None:
        (atomic_write_text if isinstance(data, str) else atomic_write_bytes)(path, data)
        written.add(path)

    put(folder / "truth" / group.truth.name, group.truth.read_bytes())
    write_json(folder / TASK_FILE, {"truth": f"truth/{group.truth.name}", "metric": group.metric})
    written.add(folder / TASK_FILE)
    put(folder / "utils.py", UTILS)
    tasks = []
    for shots, documents in sorted(group.documents.items()):
        task = f"{name}_{shots}shot"
        docs = folder / "docs" / f"{task}.parquet"
        put(docs, _docs_table(documents))
        put(folder / f"{task}.yaml", _yaml(task, name, docs.resolve(), documents, group.metric, group.truth.name))
        tasks.append(task)
    written.update(folder / IMAGES_DIR / file for file in group.store.write(folder / IMAGES_DIR))
    remove_stale(folder, written)
    return tasks


class LmmsEvalExporter(HarnessExporter):
    name = "lmms-eval"
    folder = FOLDER

    def export(self, source) -> ExportResult:
        root = self.root(source)
        groups = groups_of(source, FOLDER)
        tasks = [task for group in groups for task in write_group(root / group_name(group), group)]
        return ExportResult({}, {"tasks": len(tasks), "groups": [group_name(g) for g in groups], "path": str(root)})


EXPORTER = LmmsEvalExporter
