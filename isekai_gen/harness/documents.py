"""Harness documents: the requests `isekai-gen evaluate` would send, one document per query.

Nothing here words a prompt. Each document is built from ``evaluate.prompts.manyicl_requests`` /
``lcl_requests`` themselves, with `evaluate`'s default settings (``evaluate.config.DEFAULTS``: run
seed, ManyICL's test shuffle, output caps, temperature) and batch size 1, so a harness sends the
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

from ..errors import UserError
from ..evaluate.api import _test_order
from ..evaluate.config import DEFAULTS
from ..evaluate.images import ImageCache
from ..evaluate.prompts import lcl_requests, manyicl_requests
from ..evaluate.providers.base import EncodedImage, Limits
from ..evaluate.tasks import LCLTask, ManyICLTask
from ..fileio import atomic_write_bytes, remove_stale

IMAGE_MARKER = "<image>"
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png"}
# The request key names a provider and model; the documents do not depend on them.
_KEY_PROVIDER, _KEY_MODEL = "harness", "export"


def cell_name(shots: int) -> str:
    """`evaluate`'s cell of ``shots`` at batch size 1 (its seeds depend on the name)."""
    return f"shots-{shots}_batch-1"


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


def manyicl_documents(task: ManyICLTask, shots: int, store: ImageStore, seed: int | None = None) -> list[Document]:
    """One document per test row, in `evaluate`'s shuffled order (ManyICL's ``random_state=66``)."""
    run_seed = DEFAULTS["seed"] if seed is None else seed
    order = _test_order(task, DEFAULTS["test_shuffle_seed"])
    requests = manyicl_requests(task, shots, 1, order, cell=cell_name(shots), run_seed=run_seed,
                                provider=_KEY_PROVIDER, model=_KEY_MODEL, images=store.cache,
                                temperature=DEFAULTS["temperature"], tokens_per_query=DEFAULTS["tokens_per_query"])
    labels = {example.id: list(example.labels) for example in task.test}
    return [Document(request.ids[0], position, request.seed, shots, _messages(request, store),
                     labels[request.ids[0]], task.classes, request.max_tokens, request.temperature)
            for position, request in enumerate(requests)]


def lcl_documents(task: LCLTask, shots: int, store: ImageStore, seed: int | None = None) -> list[Document]:
    """One document per episode line, in file order."""
    if shots > task.max_shots:
        raise UserError(f"--shots {shots}: {task.truth_path} has support lists of only {task.max_shots} images "
                        "per side in some episode")
    run_seed = DEFAULTS["seed"] if seed is None else seed
    requests = lcl_requests(task.episodes, shots, cell=cell_name(shots), run_seed=run_seed, provider=_KEY_PROVIDER,
                            model=_KEY_MODEL, images=store.cache, temperature=DEFAULTS["temperature"],
                            max_tokens=DEFAULTS["lcl_max_tokens"])
    episodes = {episode.id: episode for episode in task.episodes}
    return [Document(request.ids[0], position, request.seed, shots, _messages(request, store),
                     [episodes[request.ids[0]].label],
                     (episodes[request.ids[0]].positive_label, episodes[request.ids[0]].negative_label),
                     request.max_tokens, request.temperature)
            for position, request in enumerate(requests)]
