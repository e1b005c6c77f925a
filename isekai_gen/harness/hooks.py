"""The lmms-eval hooks of an exported task folder; its ``utils.py`` binds them to the folder.

lmms-eval (EvolvingLMMs-Lab/lmms-eval 0.7.x, ``lmms_eval/api/task.py`` and ``protocol.py``) calls
``doc_to_messages`` for chat models (``lmms_eval/models/chat/``, e.g. ``openai``): a list of
``{"role", "content": [{"type": "text", "text"}, {"type": "image", "url": PIL image}]}`` turns,
which its ``ChatMessages.to_openai_messages`` turns into the request; simple models get
``doc_to_visual`` (the images in order) and ``doc_to_text`` (the prompt with an ``<image>``
marker per image). Documents name their images by file (``images/<sha256>.<ext>`` beside
``utils.py``): lmms-eval strips image columns from the documents ``process_results`` sees, and k
demonstrations stored per document would repeat each image thousands of times.

``process_results`` keeps (id, reply) per document; the aggregation scores all of them with
``isekai_gen.scoring.score_run`` against the truth file copied into the folder (ManyICL's
``test.csv`` or an ``ISEKAI-*.json``), so the number is the one ``isekai-gen score`` reports:
accuracy, macro-F1 with the multi-label rules (CheXpert), or the LCL answer matching.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

TASK_FILE = "task.json"     # {"truth": path under the folder, "metric": "accuracy" | "macro_f1"}
IMAGES_DIR = "images"


class TaskHooks:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.task = json.loads((self.folder / TASK_FILE).read_text(encoding="utf-8"))
        self.metric = self.task["metric"]

    @functools.lru_cache(maxsize=4096)
    def image(self, file: str):
        from PIL import Image

        with Image.open(self.folder / IMAGES_DIR / file) as opened:
            opened.load()
            return opened.copy()   # decoded as sent: no mode conversion (the harness encodes it again)

    def doc_to_messages(self, doc: dict, lmms_eval_specific_kwargs=None) -> list[dict]:
        return [{"role": message["role"], "content": [
            {"type": "image", "url": self.image(part["image"])} if part["type"] == "image" else part
            for part in message["content"]]} for message in json.loads(doc["messages"])]

    def doc_to_visual(self, doc: dict) -> list:
        return [self.image(file) for file in doc["images"]]

    def doc_to_text(self, doc: dict, lmms_eval_specific_kwargs=None) -> str:
        return doc["text"]

    def doc_to_target(self, doc: dict) -> str:
        return ", ".join(json.loads(doc["target"])) or "none"

    def process_results(self, doc: dict, results: list) -> dict:
        return {self.metric: {"id": doc["id"], "reply": results[0] if results else None, "shots": doc["shots"]}}

    def aggregate(self, items: list[dict]) -> float | None:
        """The scorer's value (percent) over every document's reply."""
        from ..scoring.api import score_run
        from ..scoring.predictions import Prediction, PredictionRun
        from ..scoring.truth import load_truth

        truth = load_truth(self.folder / self.task["truth"])
        rows = tuple(Prediction(item["id"], item["reply"], "lmms-eval", number)
                     for number, item in enumerate(items, start=1))
        shots = items[0]["shots"] if items else None
        result, _ = score_run(truth, PredictionRun("lmms-eval", "jsonl", None, shots, 1, rows), bootstrap=0)
        return result["value"]
