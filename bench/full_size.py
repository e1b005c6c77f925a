"""Full-size SDXL(-Turbo) architecture with random weights, built from its configs (no download).

Same layer shapes, hence the same FLOPs, as stabilityai/sdxl-turbo: UNet 2.57B parameters,
VAE 84M, CLIP ViT-L text encoder 123M, OpenCLIP bigG text encoder 695M. For GPU benchmarks.

    python bench/full_size.py      # prints parameter counts (built on the meta device, instant)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=(5, 10, 20), transformer_layers_per_block=(1, 2, 10), cross_attention_dim=2048,
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816, norm_num_groups=32,
)
VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32,
    sample_size=512, scaling_factor=0.13025, force_upcast=True,
)
TEXT_ENCODER = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                    hidden_act="quick_gelu", projection_dim=768)
TEXT_ENCODER_2 = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                      hidden_act="gelu", projection_dim=1280)


def sdxl_turbo_random(device: str = "cpu", dtype=None):
    """The SDXL-Turbo pipeline with random weights, initialised directly on ``device``."""
    import tempfile

    import torch
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from isekai_gen.generation.tiny import _tokenizer

    def text_config(**kwargs):
        return CLIPTextConfig(vocab_size=49408, max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407,
                              pad_token_id=49407, **kwargs)

    tokenizer = _tokenizer(Path(tempfile.mkdtemp()))
    with torch.device(device):
        models = dict(unet=UNet2DConditionModel(**UNET), vae=AutoencoderKL(**VAE),
                      text_encoder=CLIPTextModel(text_config(**TEXT_ENCODER)),
                      text_encoder_2=CLIPTextModelWithProjection(text_config(**TEXT_ENCODER_2)))
    pipe = StableDiffusionXLPipeline(
        **models, tokenizer=tokenizer, tokenizer_2=tokenizer,
        scheduler=EulerAncestralDiscreteScheduler(timestep_spacing="trailing"), add_watermarker=False,
    )
    if dtype is not None:
        pipe = pipe.to(dtype=dtype)
    return pipe


def main() -> None:
    pipe = sdxl_turbo_random("meta")
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        count = sum(p.numel() for p in getattr(pipe, name).parameters())
        print(f"{name:15s} {count / 1e6:9.1f} M parameters")


if __name__ == "__main__":
    main()
