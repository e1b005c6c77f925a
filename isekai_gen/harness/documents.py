"""Harness documents: the requests `isekai-gen evaluate` would send, one document per query.

Nothing here words a prompt. Each document is one of the requests `evaluate`'s own planner builds
(``evaluate.plan.build_requests``) under its default ``EvaluateConfig`` (run seed, ManyICL's test
shuffle, per-request demo order, output caps, temperature) at batch size 1, so a harness sends the
same texts and images, in the same order and with the same seeded demonstration shuffles, as
``isekai-gen evaluate --batch-size 1`` does. Batched ManyICL queries (several test images in
one request) have no harness equivalent: a harness scores one document per request.

Images are what `evaluate` sends with no provider limit (``evaluate.images.encode_image``: JPEG
and PNG bytes as they are, other formats re-encoded), stored once per task folder under their
sha256 (``ImageStore``) and named by file in the documents.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from ..evaluate.config import EvaluateConfig
from ..evaluate.images import ImageCache
from ..evaluate.plan import build_requests, cells_of
from ..evaluate.providers.base import EncodedImage, Limits
from ..evaluate.tasks import LCLTask, ManyICLTask
from ..fileio import atomic_write_bytes, remove_stale

IMAGE_MARKER = "<image>"
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png"}
# The request key names a provider and model; the documents do not depend on them.
_KEY_PROVIDER, _KEY_MODEL = "openai", "harness-export"


@dataclass(frozen=True)
class Document:
    id: str              # the scorer's id of the query (file_name, or the LCL line number)
    position: int        # the request's position in its evaluate cell
    seed: int            # seed of its demonstration shuffle
    shots: int
    messages: list[dict]  # [{"role", "content": [{"type": "text", "text"} | {"type": "image", "image": file}]}]
    target: list[str]    # true labels (ManyICL; several or none for multi-label sets) or the LCL label
    choices: tuple[str, ...]  # the classes (ManyICL) or the episode's (positive, negative) labels
    max_tokens: int
    temperature: float

    @property
    def images(self) -> list[str]:
        return [part["image"] for message in self.messages for part in message["content"] if part["type"] == "image"]

    @property
    def text(self) -> str:
        """The prompt as one string with an image marker where each image stands (non-chat models)."""
        lines = []
        for message in self.messages:
            body = "".join(IMAGE_MARKER if part["type"] == "image" else part["text"] for part in message["content"])
            lines.append(body if message["role"] == "user" else f"{message['role'].upper()}: {body}")
        return "\n".join(lines)

    def row(self) -> dict:
        return {"id": self.id, "position": self.position, "seed": self.seed, "shots": self.shots,
                "messages": json.dumps(self.messages, ensure_ascii=False), "images": self.images, "text": self.text,
                "target": json.dumps(self.target, ensure_ascii=False), "max_tokens": self.max_tokens,
                "temperature": self.temperature}


class ImageStore:
    """Every image of a task folder once, as ``images/<sha256>.<ext>`` (the bytes `evaluate` sends)."""

    def __init__(self):
        self.cache = ImageCache(Limits(None, None, None, None))
        self.files: dict[str, EncodedImage] = {}

    def name(self, image: EncodedImage) -> str:
        file = f"{image.sha256}.{EXTENSIONS[image.media_type]}"
        self.files.setdefault(file, image)
        return file

    def write(self, folder: Path) -> dict[str, str]:
        """Write the images not there yet; remove those no document names. Returns file -> sha256."""
        folder.mkdir(parents=True, exist_ok=True)
        for file, image in sorted(self.files.items()):
            target = folder / file
            if not (target.is_file() and target.stat().st_size == image.nbytes):
                atomic_write_bytes(target, base64.b64decode(image.data_b64))
        remove_stale(folder, {folder / file for file in self.files})
        return {file: image.sha256 for file, image in self.files.items()}


def _messages(request, store: ImageStore) -> list[dict]:
    messages = [{"role": "system", "content": [{"type": "text", "text": request.system}]}] if request.system else []
    for turn in request.turns:
        messages.append({"role": turn.role, "content": [
            {"type": "text", "text": part.text} if part.image is None else {"type": "image", "image": store.name(part.image)}
            for part in turn.parts]})
    return messages


def task_documents(task: ManyICLTask | LCLTask, shots: list[int], store: ImageStore,
                   seed: int | None = None) -> dict[int, list[Document]]:
    """shots -> one document per request of `evaluate`'s cell ``shots-<k>_batch-1``, in cell order.

    The requests are `evaluate`'s own (``plan.cells_of`` + ``plan.build_requests``) under its
    default ``EvaluateConfig`` with ``seed`` as the run seed: ManyICL test rows in its shuffled
    order (``random_state=66``), LCL episodes in file order.
    """
    values = {"truth": str(task.truth_path), "model": f"{_KEY_PROVIDER}:{_KEY_MODEL}", "shots": tuple(shots),
              "out": "."}
    config = EvaluateConfig(**values, **({} if seed is None else {"seed": seed}))
    cells = cells_of(task, config)
    by_cell = build_requests(task, cells, config, store.cache)
    if isinstance(task, ManyICLTask):
        labels = {example.id: list(example.labels) for example in task.test}
        choices = {item_id: task.classes for item_id in labels}
    else:
        labels = {episode.id: [episode.label] for episode in task.episodes}
        choices = {episode.id: (episode.positive_label, episode.negative_label) for episode in task.episodes}
    return {cell["shots"]: [Document(request.ids[0], position, request.seed, cell["shots"], _messages(request, store),
                                     labels[request.ids[0]], choices[request.ids[0]], request.max_tokens,
                                     request.temperature)
                            for position, request in enumerate(by_cell[cell["name"]])]
            for cell in cells}
