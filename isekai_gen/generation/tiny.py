"""Tiny random-weight Stable Diffusion pipelines for offline smoke tests.

They are assembled from configs (the way diffusers' own test suite builds them), written with
``save_pretrained`` into a cache folder once, and then loaded through exactly the same
``AutoPipelineForText2Image.from_pretrained`` call as real models. Their images are noise.

The tokenizer is the real CLIP BPE tokenizer, rebuilt offline from the vocabulary file that ships
inside open_clip, so prompts are tokenised as the real models tokenise them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from ..catalog import clip_bpe_merges
from ..fileio import temp_prefix
from ..resources import default_cache_dir

log = logging.getLogger(__name__)

TINY_MODELS = {"tiny-sd", "tiny-sdxl"}
# Bump when the architecture below changes, so stale cached copies are rebuilt.
TINY_FORMAT = 2
CLIP_MAX_LENGTH = 77
# Small enough that the tiny preset (1,600 images) generates in about a minute on 2 CPU cores.
TINY_CHANNELS = (16, 32)
TINY_GROUPS = 8


def _write_clip_tokenizer_files(folder: Path) -> None:
    """vocab.json + merges.txt of OpenAI CLIP's BPE, from open_clip's bundled vocabulary."""
    from open_clip.tokenizer import bytes_to_unicode

    merges = clip_bpe_merges()
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(merge.split()) for merge in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


def _tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    _write_clip_tokenizer_files(folder)
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=CLIP_MAX_LENGTH)


def _text_config(hidden_size: int, projection_dim: int | None = None):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=49408, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=CLIP_MAX_LENGTH,
        bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
        projection_dim=projection_dim or hidden_size,
    )


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=list(TINY_CHANNELS), in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], norm_num_groups=TINY_GROUPS, sample_size=64,
    )


def build_tiny_sd(folder: Path):
    """A Stable-Diffusion-1.x-shaped pipeline: UNet2DCondition + KL VAE + CLIP text encoder."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    unet = UNet2DConditionModel(
        block_out_channels=TINY_CHANNELS, layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=TINY_GROUPS,
    )
    return StableDiffusionPipeline(
        unet=unet, vae=_vae(), text_encoder=CLIPTextModel(_text_config(32)), tokenizer=_tokenizer(folder / "_tok"),
        scheduler=EulerDiscreteScheduler(timestep_spacing="trailing", steps_offset=1), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False,
    )


def build_tiny_sdxl(folder: Path):
    """An SDXL-shaped pipeline: two text encoders and the text_time added conditioning."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    unet = UNet2DConditionModel(
        block_out_channels=TINY_CHANNELS, layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=80,
        cross_attention_dim=64, norm_num_groups=TINY_GROUPS,
    )
    tokenizer = _tokenizer(folder / "_tok")
    return StableDiffusionXLPipeline(
        unet=unet, vae=_vae(), text_encoder=CLIPTextModel(_text_config(32)), tokenizer=tokenizer,
        text_encoder_2=CLIPTextModelWithProjection(_text_config(32, projection_dim=32)), tokenizer_2=tokenizer,
        scheduler=EulerDiscreteScheduler(timestep_spacing="trailing", steps_offset=1), add_watermarker=False,
    )


BUILDERS = {"tiny-sd": build_tiny_sd, "tiny-sdxl": build_tiny_sdxl}


def ensure_tiny_pipeline(name: str, cache_dir: Path | None = None) -> Path:
    """Return the folder of the tiny pipeline ``name``, building and saving it on first use.

    Weights are seeded, so every machine builds the same pipeline. The folder appears atomically
    (built in a temporary sibling, then renamed), so concurrent processes never see half of it.
    """
    import torch

    folder = (cache_dir or default_cache_dir()) / "pipelines" / f"{name}-v{TINY_FORMAT}"
    if (folder / "model_index.json").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(name), dir=folder.parent))
    try:
        log.info("building tiny random-weight pipeline %s in %s", name, folder)
        with torch.random.fork_rng():
            torch.manual_seed(0)
            pipe = BUILDERS[name](tmp)
        pipe.save_pretrained(tmp)
        shutil.rmtree(tmp / "_tok", ignore_errors=True)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / "model_index.json").exists():  # lost a race to a finished copy: fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
