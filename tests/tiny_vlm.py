"""Tiny random-weight image-text-to-text models for the `hf:` provider's tests (no download).

Each family's model is built from its config (hidden size 32, one layer, a one-layer vision
tower) and saved with `save_pretrained` next to its real processor class, whose tokenizer is
trained here (`tokenizers` byte-level BPE on a few hundred words) and carries the family's
special tokens and a chat template of the family's shape:

- Qwen2-VL: ChatML (`<|im_start|>role ... <|im_end|>`), an image part is
  `<|vision_start|><|image_pad|><|vision_end|>` (Qwen2-VL-7B-Instruct's chat_template.json).
- Qwen2.5-VL: the same tokens, template and image processor as Qwen2-VL; a windowed vision tower.
- Idefics3 / SmolVLM (SmolVLM-Instruct's model type is idefics3; SmolVLM2's `smolvlm` processor
  needs the num2words package, absent here): `User:` / `Assistant:` turns closed by `<end_of_utterance>`, an image part is
  `<image>` (SmolVLM-Instruct's template); the processor expands it to
  `<fake_token_around_image><global-img><image>...`.
- LLaVA-OneVision: ChatML with every image of a message first, each `<image>` + newline, then its
  texts (llava-onevision-qwen2-0.5b-ov-hf's template).
"""

from __future__ import annotations

from pathlib import Path

WORDS = ("given the image answer following question using specific format choice choices cat dog owl "
         "select from a an of in is there what which class this that photo picture these images example "
         "examples each query assistant user system you are helpful label labels prediction final only "
         "one two three four five six seven eight nine ten yes no not here with for and to on by as").split()

QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")
ONEVISION_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{{ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def train_tokenizer(special: list[str], chat_template: str, eos: str, pad: str):
    """A byte-level BPE trained on WORDS with ``special`` as added special tokens (ids 0..)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator([" ".join(WORDS)] * 4 + WORDS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=eos, pad_token=pad,
                                   additional_special_tokens=[t for t in special if t not in (eos, pad)])
    fast.chat_template = chat_template
    return fast


TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
            max_position_embeddings=4096)


def build_qwen2_vl(path: Path) -> Path:
    from transformers import (Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor,
                              Qwen2VLProcessor, Qwen2VLVideoProcessor)

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
               "<|image_pad|>", "<|video_pad|>"]
    tokenizer = train_tokenizer(special, QWEN_TEMPLATE, eos="<|im_end|>", pad="<|endoftext|>")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in special}
    config = Qwen2VLConfig(
        text_config=dict(TEXT, vocab_size=len(tokenizer), rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3]},
                         eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"], bos_token_id=None),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    Qwen2VLForConditionalGeneration(config).save_pretrained(path)
    # 56x56 pixels at most: 4x4 patches of 14, merged 2x2 -> 4 image tokens per image
    image_processor = Qwen2VLImageProcessor(min_pixels=28 * 28, max_pixels=56 * 56)
    Qwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=Qwen2VLVideoProcessor(),
                     chat_template=QWEN_TEMPLATE).save_pretrained(path)
    return path


def build_qwen2_5_vl(path: Path) -> Path:
    """Qwen2.5-VL: Qwen2-VL's tokens, template and image processor; a windowed-attention vision tower."""
    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor,
                              Qwen2VLImageProcessor, Qwen2VLVideoProcessor)

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
               "<|image_pad|>", "<|video_pad|>"]
    tokenizer = train_tokenizer(special, QWEN_TEMPLATE, eos="<|im_end|>", pad="<|endoftext|>")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in special}
    config = Qwen2_5_VLConfig(
        text_config=dict(TEXT, vocab_size=len(tokenizer), rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3]},
                         eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"], bos_token_id=None),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                           fullatt_block_indexes=[0]),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    Qwen2_5_VLForConditionalGeneration(config).save_pretrained(path)
    image_processor = Qwen2VLImageProcessor(min_pixels=28 * 28, max_pixels=56 * 56)
    Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=Qwen2VLVideoProcessor(),
                        chat_template=QWEN_TEMPLATE).save_pretrained(path)
    return path


def build_idefics3(path: Path) -> Path:
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessor, Idefics3Processor

    special = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>",
               "<global-img>"] + [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    tokenizer = train_tokenizer(special, SMOLVLM_TEMPLATE, eos="<end_of_utterance>", pad="<|endoftext|>")
    image_token = tokenizer.convert_tokens_to_ids("<image>")
    config = Idefics3Config(
        text_config=dict(TEXT, model_type="llama", vocab_size=len(tokenizer), head_dim=16,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=16),
        image_token_id=image_token, scale_factor=2)
    Idefics3ForConditionalGeneration(config).save_pretrained(path)
    # one 32-pixel tile per image (no splitting): (32/16)^2 / 2^2 = 1 image token
    image_processor = Idefics3ImageProcessor(do_image_splitting=False, size={"longest_edge": 32},
                                             max_image_size={"longest_edge": 32})
    Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=1,
                      chat_template=SMOLVLM_TEMPLATE).save_pretrained(path)
    return path


def build_llava_onevision(path: Path) -> Path:
    from transformers import (LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration,
                              LlavaOnevisionImageProcessor, LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor)

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]
    tokenizer = train_tokenizer(special, ONEVISION_TEMPLATE, eos="<|im_end|>", pad="<|endoftext|>")
    config = LlavaOnevisionConfig(
        text_config=dict(TEXT, model_type="qwen2", vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None),
        vision_config=dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, image_size=32, patch_size=16),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=[[32, 32]], vision_feature_layer=-1, vision_aspect_ratio="anyres_max_1")
    LlavaOnevisionForConditionalGeneration(config).save_pretrained(path)
    image_processor = LlavaOnevisionImageProcessor(size={"height": 32, "width": 32}, image_grid_pinpoints=[[32, 32]],
                                                   crop_size={"height": 32, "width": 32})
    LlavaOnevisionProcessor(image_processor=image_processor, tokenizer=tokenizer,
                            video_processor=LlavaOnevisionVideoProcessor(), num_image_tokens=4,
                            vision_feature_select_strategy="full", chat_template=ONEVISION_TEMPLATE
                            ).save_pretrained(path)
    return path


FAMILIES = {"qwen2_vl": build_qwen2_vl, "qwen2_5_vl": build_qwen2_5_vl, "idefics3": build_idefics3,
            "llava_onevision": build_llava_onevision}
