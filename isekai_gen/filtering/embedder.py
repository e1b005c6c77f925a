"""The image/text embedder behind the filter: open_clip, or anything with the same interface.

An embedder exposes ``model`` and ``pretrained`` (recorded beside every score), ``cache_key``
(changes whenever the embeddings would: architecture, weights, preprocessing, random-init
seed, numerics), ``device`` (where the encoders run), ``preprocess`` (PIL image -> tensor; runs
in DataLoader worker processes) and two encoders returning L2-normalised float32 arrays.
``LazyOpenClip`` knows all but the last three from the config alone and loads the weights only
when one of those is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from ..config import BuildConfig, FilterModelConfig
from ..errors import UserError
from ..fileio import dumps_canonical, sha256_file
from ..resources import CONFIG_DIR
from .cache import TextEmbeddingCache

log = logging.getLogger(__name__)

# Shipped open_clip model configs (e.g. the random-weight `isekai-tiny-clip` of the tiny preset).
OPEN_CLIP_CONFIG_DIR = CONFIG_DIR / "open_clip"


class Embedder(Protocol):
    model: str
    pretrained: str
    cache_key: str
    device: Any                             # torch.device or its name
    preprocess: Callable[[Any], Any]

    def encode_images(self, batch) -> np.ndarray: ...

    def encode_texts(self, texts: list[str]) -> np.ndarray: ...


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class OpenClipEmbedder:
    def __init__(self, model, preprocess, tokenizer, device, *, model_name: str, pretrained: str, cache_key: str):
        self.model = model_name
        self.pretrained = pretrained
        self.cache_key = cache_key
        self.preprocess = preprocess
        self._net = model
        self._tokenizer = tokenizer
        self.device = device

    def _autocast(self):
        import torch

        # bf16 autocast only where it pays (CUDA); CPU stays in exact float32.
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda")

    def encode_images(self, batch) -> np.ndarray:
        import torch

        with torch.inference_mode(), self._autocast():
            features = self._net.encode_image(batch.to(self.device, non_blocking=True))
        return normalise(features.float().cpu().numpy())

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.inference_mode(), self._autocast():
            features = self._net.encode_text(self._tokenizer(texts).to(self.device))
        return normalise(features.float().cpu().numpy())


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"filter.device: {name!r} is not a torch device (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"filter.device: {name!r} requested but CUDA is not available (use cpu or auto)")
    return device


def _register_configs(config: BuildConfig, model_cfg: FilterModelConfig) -> None:
    import open_clip

    open_clip.add_model_config(OPEN_CLIP_CONFIG_DIR)
    if model_cfg.config:
        path = config.resolve_path(model_cfg.config)
        if not path.is_file():
            raise UserError(f"filter.model.config: open_clip model config {path} not found")
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"{path}: not a JSON open_clip model config ({exc})") from None
        open_clip.add_model_config(path)


def _weights_missing(name: str, tag: str, exc: Exception) -> UserError:
    reason = str(exc).split(". ")[0]
    return UserError(
        f"filter model {name} ({tag}): weights are neither in the Hugging Face cache nor downloadable ({reason}). "
        f"Ways out: run once with network access to fill the cache (HF_HUB_OFFLINE=1 works afterwards), "
        f"or set filter.model.weights to a local checkpoint file (keep filter.model.pretrained for its preprocessing), "
        f"or pick another filter.model"
    )


def _pretrained_cfg(name: str, tag: str) -> dict:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(name, tag)
    if not cfg:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
        raise UserError(f"filter.model.pretrained: {tag!r} is not an open_clip tag of {name} (known: {tags})")
    return cfg


def _local_weights(config: BuildConfig, weights: str, tag: str | None) -> Path:
    path = config.resolve_path(weights)
    if not path.is_file():
        raise UserError(f"filter.model.weights: checkpoint file {path} not found")
    if not tag:
        raise UserError(
            "filter.model.weights is set but filter.model.pretrained is null: name the open_clip tag the "
            "weights correspond to, so that its preprocessing (mean, std, resize) is used"
        )
    return path


def _tag_checkpoint(name: str, tag: str) -> Path:
    """The tag's checkpoint file: from the Hugging Face cache without any network access when it
    is there (open_clip would ask the Hub first and retry for a minute when offline), else
    downloaded."""
    import huggingface_hub
    import open_clip

    tag_cfg = open_clip.get_pretrained_cfg(name, tag)
    model_id, filename = os.path.split(tag_cfg.get("hf_hub", ""))
    if model_id:
        default = open_clip.pretrained.HF_WEIGHTS_NAME
        filename = filename or default
        # open_clip prefers a .safetensors twin of the named file (open_clip_model.* for the default).
        safe = "open_clip_model" if filename == default else filename.rsplit(".", 1)[0]
        for candidate in (f"{safe}.safetensors", filename):
            cached = huggingface_hub.try_to_load_from_cache(model_id, candidate)
            if isinstance(cached, str):
                return Path(cached)
    try:
        with _quiet("huggingface_hub"):
            return Path(open_clip.pretrained.download_pretrained(tag_cfg))
    except Exception as exc:  # network errors, missing cache under HF_HUB_OFFLINE, ...
        raise _weights_missing(name, tag, exc) from None


@contextlib.contextmanager
def _quiet(logger_name: str | None, enabled: bool = True):
    """Silence one logger's warnings: open_clip warns on the root logger about the random init
    the tiny preset wants; huggingface_hub logs every retry of a download that will fail anyway
    (the failure becomes one line of our own)."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    if enabled:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@dataclass
class _Spec:
    """Everything the config says about the model, resolved without reading or initialising weights."""
    name: str
    recorded: str                    # the `pretrained` written beside every score
    device: Any                      # torch.device
    identity: dict                   # what the weights are; the cache key adds preprocessing and numerics
    kwargs: dict = field(default_factory=dict)   # create_model_and_transforms arguments but the weights
    weights: Path | None = None      # local checkpoint file
    tag: str | None = None           # open_clip tag whose checkpoint comes from the Hugging Face cache/Hub
    seed: int | None = None          # random init


def _resolve(config: BuildConfig) -> _Spec:
    """Validate ``filter.model`` (see configs/_base.yaml) and say what loading it means. The build
    config, not the filter section alone: its files are relative to the user's config file."""
    import open_clip

    model_cfg = config.filter.model
    name, tag, weights = model_cfg.name, model_cfg.pretrained, model_cfg.weights
    device = _device(config.filter.device)
    _register_configs(config, model_cfg)
    is_hub = name.startswith("hf-hub:")
    if not is_hub and open_clip.get_model_config(name) is None:
        raise UserError(f"filter.model.name: unknown open_clip model {name!r} (see open_clip.list_models())")

    identity = {"name": name, "architecture": None if is_hub else open_clip.get_model_config(name)}
    spec = _Spec(name=name, recorded="hf-hub", device=device, identity=identity)
    if weights or (tag and not is_hub):
        tag_cfg = _pretrained_cfg(name, tag) if tag else None
        if weights:
            spec.weights = _local_weights(config, weights, tag)
            spec.recorded = f"{tag} ({spec.weights.name})"
            identity.update(weights_sha256=sha256_file(spec.weights), preprocess_tag=tag)
        else:
            spec.tag = spec.recorded = identity["pretrained"] = tag
        # Always the tag's own preprocessing: a checkpoint file alone would get the architecture's.
        spec.kwargs = dict(
            image_mean=tag_cfg.get("mean"), image_std=tag_cfg.get("std"),
            image_interpolation=tag_cfg.get("interpolation"), image_resize_mode=tag_cfg.get("resize_mode"),
            force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
        )
    elif not is_hub:
        spec.seed = int(model_cfg.init_seed)
        spec.recorded = f"random-init-seed{spec.seed}"
        identity["random_init_seed"] = spec.seed
    return spec


def _create(spec: _Spec, *, quiet: bool, **kwargs):
    """open_clip's (model, inference preprocessing) for ``spec``; its failures as one-line errors."""
    import open_clip

    try:
        with _quiet(None, enabled=quiet):
            net, _, preprocess = open_clip.create_model_and_transforms(spec.name, **spec.kwargs, **kwargs)
    except (RuntimeError, OSError, ValueError) as exc:
        if spec.name.startswith("hf-hub:"):
            raise _weights_missing(spec.name, "hub", exc) from None
        raise UserError(
            f"filter model {spec.name} ({spec.recorded}): could not be loaded ({str(exc).splitlines()[0]})"
        ) from None
    return net, preprocess


def _cache_key(spec: _Spec, preprocess) -> str:
    identity = dict(spec.identity, preprocess=repr(preprocess))
    # Numerics differ between CPU float32 and CUDA bf16 autocast: never mix them in one cache.
    identity["numerics"] = "cuda-bf16-autocast" if spec.device.type == "cuda" else f"{spec.device.type}-float32"
    return hashlib.sha256(dumps_canonical(identity).encode()).hexdigest()[:24]


def _config_cache_key(spec: _Spec) -> str:
    """The cache key loading ``spec`` would report, from a model skeleton on the meta device: open_clip
    derives the preprocessing itself (so it cannot drift from a real load), but no weights are read
    or initialised, which takes milliseconds even for ViT-L-14. (hf-hub: models still fetch their
    config from the Hub or its cache.)"""
    import torch

    with torch.device("meta"):
        _, preprocess = _create(spec, quiet=True, load_weights=False, pretrained_text=False, device="meta")
    return _cache_key(spec, preprocess)


def _weights_kwargs(spec: _Spec) -> dict:
    """create_model's ``pretrained``: the local checkpoint, the tag's cached or downloaded one, or none."""
    if spec.weights is not None:
        return {"pretrained": str(spec.weights)}
    if spec.tag is not None:
        return {"pretrained": str(_tag_checkpoint(spec.name, spec.tag))}
    return {}


def _load(spec: _Spec) -> OpenClipEmbedder:
    import open_clip
    import torch

    kwargs = _weights_kwargs(spec)
    if spec.seed is not None:
        torch.manual_seed(spec.seed)
    net, preprocess = _create(spec, quiet=spec.seed is not None, device=spec.device, **kwargs)
    net.eval()
    cache_key = _cache_key(spec, preprocess)
    log.info("filter model %s (%s) on %s, cache key %s", spec.name, spec.recorded, spec.device, cache_key)
    return OpenClipEmbedder(
        net, preprocess, open_clip.get_tokenizer(spec.name), spec.device,
        model_name=spec.name, pretrained=spec.recorded, cache_key=cache_key,
    )


def load_open_clip(config: BuildConfig) -> OpenClipEmbedder:
    """Build the embedder named by ``filter.model`` (see configs/_base.yaml)."""
    return _load(_resolve(config))


class LazyOpenClip:
    """The configured open_clip embedder, loaded on first use.

    ``model``, ``pretrained``, ``device`` and ``cache_key`` come from the config alone, so a
    re-filter whose image and text embeddings are all cached never loads the weights.
    """

    def __init__(self, config: BuildConfig):
        self._spec = _resolve(config)
        self._loaded: OpenClipEmbedder | None = None
        self.model, self.pretrained, self.device = self._spec.name, self._spec.recorded, self._spec.device
        self.cache_key = _config_cache_key(self._spec)

    def _embedder(self) -> OpenClipEmbedder:
        if self._loaded is None:
            self._loaded = _load(self._spec)
            if self._loaded.cache_key != self.cache_key:
                # Embeddings were looked up under the config's key: a mismatch would mix two caches.
                raise RuntimeError(
                    f"filter model {self.model}: loaded cache key {self._loaded.cache_key} differs from the "
                    f"configured one {self.cache_key}"
                )
        return self._loaded

    @property
    def preprocess(self):
        return self._embedder().preprocess

    def encode_images(self, batch) -> np.ndarray:
        return self._embedder().encode_images(batch)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        return self._embedder().encode_texts(texts)


TEMPLATE_FIELDS = ("label", "name", "description")


def concept_texts(concept, templates: list[str]) -> list[str]:
    """The template sentences for one concept; unknown placeholders are a config error."""
    texts = []
    for template in templates:
        try:
            texts.append(template.format(**{name: getattr(concept, name) for name in TEMPLATE_FIELDS}))
        except (KeyError, IndexError, ValueError) as exc:
            raise UserError(
                f"filter.templates: template {template!r} is invalid ({exc!r}); "
                f"use only the placeholders {{label}}, {{name}}, {{description}}"
            ) from None
    return texts


def concept_text_embeddings(
    embedder: Embedder, concepts, templates: list[str], cache: TextEmbeddingCache | None = None
) -> np.ndarray:
    """(c, d) float32: per concept, the normalised mean of its normalised template embeddings.

    With ``cache`` only concepts whose exact texts it lacks are encoded, so a re-filter needs no
    text tower (and a ``LazyOpenClip`` no weights at all).
    """
    texts = [concept_texts(concept, templates) for concept in concepts]

    def mean_embedding(sentences: list[str]) -> np.ndarray:
        return embedder.encode_texts(sentences).mean(axis=0)

    rows = [mean_embedding(t) for t in texts] if cache is None else cache.rows(texts, mean_embedding)
    return normalise(np.stack(rows))


def embedder_description(embedder: Embedder) -> dict:
    return {"model": embedder.model, "pretrained": embedder.pretrained, "cache_key": embedder.cache_key}
