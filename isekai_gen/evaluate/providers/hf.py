"""`hf:PATH_OR_HUB_ID`: image-text-to-text models run in this process with transformers.

`--model hf:./my-model` (a `save_pretrained` folder) or `--model hf:Qwen/Qwen2-VL-2B-Instruct` (a Hub
id; `HF_HUB_OFFLINE=1` is honoured by `from_pretrained`, so only the local cache is read then).
Loaded with `AutoProcessor` + `AutoModelForImageTextToText`, the classes transformers' own
"image-text-to-text" pipeline and model cards use; any family they map works. Checked against
the processors of the installed transformers (`processing_qwen2_vl.py`, `processing_qwen2_5_vl.py`,
`processing_idefics3.py`, `processing_llava_onevision.py`) and the families' shipped chat templates:

- A request becomes the processor's multimodal chat format: every message's content is a list of
  `{"type": "text", "text": ...}` and `{"type": "image"}` parts in prompt order (system and
  assistant turns too: SmolVLM's and LLaVA-OneVision's templates index `content` as a list). The
  processor's `apply_chat_template(..., add_generation_prompt=True)` renders it; each family's
  template places its own image placeholder (Qwen2-VL `<|vision_start|><|image_pad|><|vision_end|>`,
  Idefics3/SmolVLM `<image>`, LLaVA-OneVision `<image>` first in its message), and the
  processor expands it to the image's tokens. Images go in as one list per prompt (Idefics3
  checks the count per sample; the others flatten).
- Batched generation: the runner's concurrent requests are gathered by `InProcessProvider` and
  run as one `generate` call per (max_tokens, temperature) group, padded on the left (the
  tokenizer's `padding_side = "left"`, as transformers' generation guide asks for decoder-only
  batches). Greedy at temperature 0, sampling otherwise; `max_new_tokens` = the request's
  `max_tokens`.
- Device and dtype as `build` picks them (`generation.pipeline.resolve_device` /
  `resolve_dtype`: CUDA bf16/fp16, MPS fp16, CPU fp32); `provider_options: {device, dtype}`
  overrides them. The model is loaded on the first generation (a dry run loads only the processor).
- Usage: input tokens = the prompt's attention mask (images' tokens included); output tokens =
  the generated ones up to and including the first end-of-sequence token. In-process runs are
  never priced by the shipped table (`official_host` None); usage is journaled all the same.
- Estimates: the rendered template's text tokens plus each image's tokens from the processor's
  `_get_num_multimodal_tokens` (the method vLLM's transformers backend also calls to size
  placeholders; a processor without it counts one token per image). Context = the text config's
  `max_position_embeddings`.
"""

from __future__ import annotations

import base64
import io
import itertools
import time
from pathlib import Path

from ...errors import UserError
from .base import EvalRequest, Limits, Reply
from .inprocess import InProcessProvider


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class HFProvider(InProcessProvider):
    name = "hf"
    max_batch_size = 8

    def __init__(self, model: str, endpoint: str | None = None, *, device: str = "auto", dtype: str = "auto",
                 max_batch_size: int | None = None, **_options):
        from transformers import AutoConfig, AutoProcessor

        super().__init__(model, endpoint)
        if endpoint:
            raise UserError(f"--model hf:{model}: runs in this process; --endpoint is for HTTP providers")
        if max_batch_size is not None:
            self.max_batch_size = max_batch_size
        self.device_name, self.dtype_name = device, dtype
        if model.startswith((".", "/", "~")) and not Path(model).expanduser().is_dir():
            raise UserError(f"--model hf:{model}: no such folder (a save_pretrained folder or a Hub id)")
        try:
            self.processor = AutoProcessor.from_pretrained(model)
            config = AutoConfig.from_pretrained(model)
        except (OSError, ValueError) as exc:
            raise UserError(f"--model hf:{model}: cannot load the processor: {_first_line(exc)}") from None
        if not hasattr(self.processor, "apply_chat_template") or not getattr(self.processor, "chat_template", None):
            raise UserError(f"--model hf:{model}: the processor has no chat template (an image-text-to-text "
                            "model's processor_config / chat_template.json is needed)")
        self.tokenizer = self.processor.tokenizer
        self.tokenizer.padding_side = "left"
        text_config = getattr(config, "text_config", config)
        self.limits = Limits(None, None, None, getattr(text_config, "max_position_embeddings", None))
        self._model = None
        self._images: dict[str, object] = {}   # sha256 -> PIL image, decoded once per run

    # --- request shape ---------------------------------------------------------------------

    @staticmethod
    def messages(request: EvalRequest) -> list[dict]:
        def content(parts):
            return [{"type": "image"} if p.image is not None else {"type": "text", "text": p.text} for p in parts]

        head = [{"role": "system", "content": [{"type": "text", "text": request.system}]}] if request.system else []
        return head + [{"role": turn.role, "content": content(turn.parts)} for turn in request.turns]

    def prompt(self, request: EvalRequest) -> str:
        return self.processor.apply_chat_template(self.messages(request), add_generation_prompt=True, tokenize=False)

    def _image(self, image):
        from PIL import Image

        pil = self._images.get(image.sha256)
        if pil is None:
            pil = self._images[image.sha256] = Image.open(io.BytesIO(base64.b64decode(image.data_b64))).convert("RGB")
        return pil

    def estimate_tokens(self, request: EvalRequest) -> tuple[int, int]:
        text = len(self.tokenizer(self.prompt(request), add_special_tokens=False)["input_ids"])
        sizes = [[image.height, image.width] for image in request.images()]
        count = getattr(self.processor, "_get_num_multimodal_tokens", None)
        per_image = count(image_sizes=sizes).num_image_tokens if sizes and count else [1] * len(sizes)
        return text + sum(per_image) - len(sizes), request.max_tokens

    # --- generation ------------------------------------------------------------------------

    def loaded_model(self):
        if self._model is None:
            import torch
            from transformers import AutoModelForImageTextToText

            from ...generation.pipeline import resolve_device, resolve_dtype

            device = resolve_device(self.device_name)
            dtype = resolve_dtype(self.dtype_name, device)
            try:
                model = AutoModelForImageTextToText.from_pretrained(self.model, dtype=getattr(torch, dtype))
            except (OSError, ValueError) as exc:
                raise UserError(f"--model hf:{self.model}: cannot load the model: {_first_line(exc)}") from None
            self._model = model.to(device).eval()
        return self._model

    def generate(self, requests: list[EvalRequest]) -> list[Reply | Exception]:
        results: dict[int, Reply] = {}
        order = sorted(range(len(requests)), key=lambda i: (requests[i].max_tokens, requests[i].temperature))
        for _, group in itertools.groupby(order, key=lambda i: (requests[i].max_tokens, requests[i].temperature)):
            group = list(group)
            for index, reply in zip(group, self._generate_group([requests[i] for i in group])):
                results[index] = reply
        return [results[i] for i in range(len(requests))]

    def _generate_group(self, requests: list[EvalRequest]) -> list[Reply]:
        import torch

        model = self.loaded_model()
        started = time.perf_counter()
        images = [[self._image(image) for image in request.images()] for request in requests]
        inputs = self.processor(text=[self.prompt(r) for r in requests], images=images if any(images) else None,
                                padding=True, return_tensors="pt").to(model.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        temperature = requests[0].temperature
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        eos = model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with torch.inference_mode():
            output = model.generate(**inputs, max_new_tokens=requests[0].max_tokens, pad_token_id=pad,
                                    eos_token_id=eos, **sampling)
        latency = time.perf_counter() - started
        new = output[:, inputs["input_ids"].shape[1]:].tolist()
        stops = set(eos if isinstance(eos, list) else [eos])
        replies = []
        for row, tokens in enumerate(new):
            end = next((n + 1 for n, token in enumerate(tokens) if token in stops), len(tokens))
            text = self.tokenizer.decode(tokens[:end], skip_special_tokens=True)
            input_tokens = int(inputs["attention_mask"][row].sum())
            replies.append(Reply(text, input_tokens, end, latency,
                                 {"model": self.model, "generated_tokens": end, "batch_size": len(requests),
                                  "device": str(model.device), "dtype": str(model.dtype).removeprefix("torch.")}))
        return replies


def create(model: str, endpoint: str | None = None, *, timeout_s: float | None = None, **options) -> HFProvider:
    return HFProvider(model, endpoint, **options)
