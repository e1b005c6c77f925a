"""Load any diffusers text-to-image pipeline and run batches with one generator per image."""

from __future__ import annotations

import inspect
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import GenerationConfig, ModelRef
from ..errors import UserError
from .tiny import TINY_MODELS, ensure_tiny_pipeline

log = logging.getLogger(__name__)


def resolve_device(name: str = "auto") -> str:
    import torch

    if name != "auto":
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"device {name!r} requested but CUDA is not available (use --device cpu)")
        return name
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(name: str, device: str) -> str:
    """auto: bfloat16 on CUDA (float16 on GPUs without bf16), float16 on MPS, float32 on CPU."""
    import torch

    if name != "auto":
        return name
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if device == "mps":
        return "float16"
    return "float32"


@dataclass
class LoadedPipeline:
    pipe: object
    model_id: str
    revision: str | None
    pipeline_class: str
    dtype: str
    device: str

    @property
    def device_type(self) -> str:
        return self.device.split(":")[0]


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _missing_model_error(model_id: str, reason: str) -> UserError:
    return UserError(
        f"model {model_id!r}: {reason}; ways out: pass --model-path DIR (a folder written by save_pretrained "
        f"or a downloaded snapshot), fill the Hugging Face cache on a connected machine "
        f"(`hf download {model_id}`, then copy HF_HOME), or run the offline smoke test with --preset tiny"
    )


def _source(model: ModelRef, cache_dir: Path | None) -> str:
    """A local folder or a Hub id to hand to from_pretrained, checked so failures are one line."""
    model_id = model.id
    if model.path:
        folder = Path(model.path).expanduser()
        if not (folder / "model_index.json").is_file():
            raise UserError(f"model path {folder}: no model_index.json there (expected a diffusers pipeline folder)")
        return str(folder)
    if model_id in TINY_MODELS:
        return str(ensure_tiny_pipeline(model_id, cache_dir))
    local = Path(model_id).expanduser()
    if local.is_dir():
        if not (local / "model_index.json").is_file():
            raise UserError(f"model {model_id}: folder has no model_index.json (expected a diffusers pipeline folder)")
        return str(local)
    if _offline():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model_id, "model_index.json", revision=model.revision)
        if not isinstance(cached, str):
            raise _missing_model_error(model_id, "not in the local Hugging Face cache and HF_HUB_OFFLINE is set")
    return model_id


_SNAPSHOT = re.compile(r"(?:^|/)snapshots/([0-9a-f]{40})(?:/|$)")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def resolved_revision(pipe, source: str, model: ModelRef) -> str | None:
    """The commit hash of the weights that were loaded, or None when they are no Hub snapshot.

    ``from_pretrained`` loads a Hub model from its cache folder ``.../snapshots/<commit>/`` (the
    huggingface_hub cache layout), and diffusers and transformers record that folder as each
    component's ``_name_or_path``; a ``--model-path`` into a snapshot names it too. Failing that, a
    Hub id is resolved offline through the cache's refs (``try_to_load_from_cache``). A
    ``save_pretrained`` folder (the tiny models) has no commit.
    """
    components = getattr(pipe, "components", None) or {}
    names = [source, getattr(pipe, "name_or_path", None)]
    names += [getattr(getattr(c, "config", None), "_name_or_path", None) or getattr(c, "name_or_path", None)
              for c in components.values()]
    for name in names:
        if isinstance(name, (str, os.PathLike)):
            path = os.path.realpath(name) if os.path.isdir(name) else str(name)
            match = _SNAPSHOT.search(Path(path).as_posix()) or _SNAPSHOT.search(Path(name).as_posix())
            if match:
                return match[1]
    requested = model.revision
    if source == model.id and not os.path.isdir(source):  # a Hub id, not a local folder
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(model.id, "model_index.json", revision=requested)
        except ValueError:  # not a valid repo id (HFValidationError)
            cached = None
        match = _SNAPSHOT.search(Path(cached).as_posix()) if isinstance(cached, str) else None
        if match:
            return match[1]
    return requested if isinstance(requested, str) and _COMMIT.match(requested) else None


def load_generation_pipeline(settings: GenerationConfig, cache_dir: Path | None = None) -> LoadedPipeline:
    """The pipeline of a ``generation`` section, loaded with every option that section sets."""
    return load_pipeline(settings.model, dtype=settings.dtype, device=settings.device, cache_dir=cache_dir,
                         vae_fp32_decode=settings.vae_fp32_decode, compile=settings.compile)


def load_pipeline(model: ModelRef, *, dtype: str = "auto", device: str = "auto", cache_dir: Path | None = None,
                  vae_fp32_decode: bool = GenerationConfig.vae_fp32_decode,
                  compile: bool = GenerationConfig.compile) -> LoadedPipeline:
    import diffusers
    import torch
    import transformers
    from diffusers import AutoPipelineForText2Image

    # Our own progress bar covers generation; loading bars would only add noise.
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    source = _source(model, cache_dir)
    kwargs = {"dtype": getattr(torch, dtype)}  # dtype names are validated by the config schema
    if model.revision and source == model.id:
        kwargs["revision"] = model.revision
    if model.variant:
        kwargs["variant"] = model.variant
    try:
        pipe = AutoPipelineForText2Image.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _missing_model_error(model.id, f"could not be loaded ({first_line})") from None
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    log.info("loaded %s (%s) on %s as %s", model.id, type(pipe).__name__, device, dtype)
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
        if denoiser is not None and hasattr(pipe, "unet"):
            denoiser.to(memory_format=torch.channels_last)
        if compile and denoiser is not None:
            # Batch size and resolution stay fixed within a run (the last batch is padded), so
            # the compiled graphs are reused rather than recompiled.
            denoiser.compile(fullgraph=False)
            pipe.vae.decoder.compile(fullgraph=False)
    if vae_fp32_decode and dtype == "float16" and hasattr(pipe.vae.config, "force_upcast"):
        # SDXL's VAE overflows in fp16 (NaN / black images); the pipeline upcasts when asked.
        pipe.vae.register_to_config(force_upcast=True)
    return LoadedPipeline(
        pipe=pipe, model_id=model.id, revision=resolved_revision(pipe, source, model),
        pipeline_class=type(pipe).__name__, dtype=dtype, device=device,
    )


def generate_batch(loaded: LoadedPipeline, prompts: list[str], negative_prompts: list[str], seeds: list[int], *,
                   steps: int, guidance_scale: float, width: int, height: int, pad_to: int | None = None,
                   max_sequence_length: int | None = None):
    """Run one pipeline call; returns (float images HxWx3 in [0,1] possibly NaN, nsfw flags).

    One CPU ``torch.Generator`` per image: CPU noise is identical on every device, so any image
    can be regenerated alone from its seed. ``pad_to`` repeats the last prompt so every call has
    the same batch size (compiled graphs are not rebuilt for a short last batch).
    """
    import torch

    count = len(prompts)
    if pad_to and count < pad_to:
        extra = pad_to - count
        prompts = prompts + [prompts[-1]] * extra
        negative_prompts = negative_prompts + [negative_prompts[-1]] * extra
        seeds = seeds + [seeds[-1]] * extra
    kwargs = dict(
        prompt=prompts, num_inference_steps=steps, guidance_scale=guidance_scale, width=width, height=height,
        generator=[torch.Generator("cpu").manual_seed(s) for s in seeds], output_type="np",
    )
    accepted = inspect.signature(loaded.pipe.__call__).parameters
    if "negative_prompt" in accepted and any(negative_prompts):
        kwargs["negative_prompt"] = negative_prompts
    if max_sequence_length and "max_sequence_length" in accepted:
        kwargs["max_sequence_length"] = max_sequence_length
    with torch.inference_mode():
        output = loaded.pipe(**kwargs)
    images = np.asarray(output.images, dtype=np.float32)[:count]
    nsfw = getattr(output, "nsfw_content_detected", None) or [False] * len(images)
    return images, [bool(flag) for flag in nsfw][:count]
