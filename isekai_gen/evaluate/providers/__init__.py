"""Registry of model providers: `get_provider("openai:gpt-4o", endpoint)`.

Each module here (`openai`, `anthropic`, `gemini`, `hf` in-process) is imported only when its prefix is used, so an
SDK that is not installed costs nothing until asked for; then the error is one line naming the
extra to install. A module exposes `create(model, endpoint, **options) -> Provider`.
"""

from __future__ import annotations

import importlib

from isekai_gen.errors import UserError

from .base import (EncodedImage, EvalRequest, Limits, Part, PermanentError, Provider, Reply,
                   TransientError, Turn)

# prefix -> (module in this package, the SDK's top-level import name, the extra that installs it or None: core)
PROVIDERS = {
    "openai": ("openai", "openai", "openai"),
    "anthropic": ("anthropic", "anthropic", "anthropic"),
    "gemini": ("gemini", "google.genai", "gemini"),
    "hf": ("hf", "transformers", None),   # in-process; transformers is a core dependency
}

__all__ = ["EncodedImage", "EvalRequest", "Limits", "Part", "PermanentError", "Provider", "Reply",
           "TransientError", "Turn", "PROVIDERS", "get_provider", "split_spec"]


def split_spec(spec: str) -> tuple[str, str]:
    """"openai:gpt-4o" -> ("openai", "gpt-4o"); one line for anything else."""
    prefix, sep, model = spec.partition(":")
    if not sep or not model or prefix not in PROVIDERS:
        raise UserError(f"--model {spec!r}: expected PROVIDER:MODEL with PROVIDER one of "
                        f"{', '.join(PROVIDERS)} (e.g. openai:gpt-4o)")
    return prefix, model


def get_provider(spec: str, endpoint: str | None = None, **options) -> Provider:
    prefix, model = split_spec(spec)
    module_name, sdk, extra = PROVIDERS[prefix]
    try:
        module = importlib.import_module(f"{__name__}.{module_name}")
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == sdk or sdk.startswith(exc.name + ".") or exc.name.startswith(sdk)):
            install = f"isekai-gen[{extra}]" if extra else "isekai-gen"
            raise UserError(f"--model {spec}: the {prefix} provider needs the {sdk} SDK: "
                            f"pip install '{install}'") from None
        raise
    return module.create(model, endpoint, **options)
