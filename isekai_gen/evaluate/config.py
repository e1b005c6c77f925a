"""`EvaluateConfig`: the typed, frozen run configuration of `isekai-gen evaluate`.

Built once from the YAML file (`schemas/evaluate_config.schema.json`) and the command line
(options given there win over the file; the field defaults fill the rest; paths in the file are
relative to the file's folder), validated, then read as attributes everywhere. A dataclass, not a
pydantic model: the JSON Schema already validates, so a plain frozen record is all that is left
to do. `to_dict()` is what run.json records; `from_dict()` reads it back.

Protocol presets (`protocol`) fill the settings the user did not give:
- `default`: what this tool always sent (ManyICL's prompt text; temperature 0; `max_tokens` =
  `tokens_per_query` x batch size; no API seed).
- `manyicl-original`: what ManyICL's `LMM.py` sends on top of that (stanfordmlgroup/ManyICL
  `GPT4VAPI.__init__(seed=66, temperature=0, detail='low')` and `__call__`'s
  `max_tokens=min(4096, max_tokens)`; `GeminiAPI` caps `max_output_tokens` at 8192 and sends no
  seed): `api_seed: 66` and a 4096-token output cap. The image `detail` stays `auto`, our default:
  prompt.py `work(..., detail='auto')` passes it to `GPT4VAPI`, overriding LMM.py's `'low'`.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..schema import validate
from ..yamlio import load_yaml

REQUIRED = ("truth", "model", "shots", "out")
PATH_KEYS = ("truth", "images", "out", "price_table")
PROTOCOLS = {
    "default": {},
    "manyicl-original": {"api_seed": 66, "max_tokens": 4096, "temperature": 0.0},
}


@dataclass(frozen=True)
class EvaluateConfig:
    truth: str
    model: str                       # PROVIDER:MODEL
    shots: tuple[int, ...]
    out: str
    images: str | None = None
    endpoint: str | None = None      # None: the provider's own (OPENAI_BASE_URL is read by api.effective_endpoint)
    batch_size: tuple[int, ...] = (1,)
    concurrency: int = 8
    seed: int = 0                    # seed of the per-request demo shuffles
    test_shuffle_seed: int = 66
    budget_usd: float | None = None
    max_requests: int | None = None
    price_table: str | None = None
    protocol: str = "default"
    temperature: float = 0.0
    tokens_per_query: int = 60
    max_tokens: int | None = None    # cap of the output tokens of one request (ManyICL's min(4096, ...))
    api_seed: int | None = None      # `seed` sent to APIs that take one (ManyICL's 66)
    lcl_max_tokens: int = 64
    demo_order: str = "per-request"  # or "cache-friendly": one demo shuffle per cell, the block first
    prompt_cache: bool = True        # cache markers (Anthropic cache_control, OpenAI prompt_cache_key) in cache-friendly order
    extractor: str = "strict"        # or "labels": a fallback label match, reported beside the strict score
    max_reasks: int = 2
    max_retries: int = 6
    retry_base_s: float = 1.0
    retry_max_s: float = 60.0
    request_timeout_s: float = 600.0
    max_connection_failures: int = 5  # consecutive connection failures that stop the run
    preflight: bool = True           # check the endpoint and the model before the first paid call
    engine: str = "local"            # or "ray": the calls through Ray Data LLM (ray_driver.py)
    ray_address: str | None = None   # with engine ray: the cluster; None starts Ray on this machine
    parse_failures: str = "wrong"
    lcl_compat: bool = False
    bootstrap: int = 1000
    batch: bool = False
    submit: bool = False
    retry_failed: bool = False
    provider_options: dict = field(default_factory=dict)
    limits: dict = field(default_factory=dict)

    # settings that shape the requests (and the pickle names): a run folder whose journal holds
    # answers asked under other values refuses them (api._check_run_folder). The grid may grow or
    # shrink; the endpoint may move (a restarted local server).
    REQUEST_FIELDS = ("model", "seed", "test_shuffle_seed", "temperature", "tokens_per_query", "max_tokens",
                      "api_seed", "lcl_max_tokens", "demo_order", "prompt_cache", "provider_options")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["shots"], out["batch_size"] = list(self.shots), list(self.batch_size)
        return out

    @classmethod
    def from_dict(cls, values: dict, source: str = "evaluate settings") -> "EvaluateConfig":
        validate(values, "evaluate_config", source)
        missing = [key for key in REQUIRED if values.get(key) in (None, [], ())]
        if missing:
            raise UserError(f"evaluate: missing --{missing[0].replace('_', '-')} (give it on the command line or in --config)")
        values = dict(values)
        for key in ("shots", "batch_size"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    def max_tokens_for(self, wanted: int) -> int:
        """The output cap of one request: the protocol's wanted tokens, capped by `max_tokens`."""
        return wanted if self.max_tokens is None else min(wanted, self.max_tokens)


DEFAULTS = {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
            for f in dataclasses.fields(EvaluateConfig)
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}


def _check_names(config, path: Path) -> None:
    """An unknown key is one line naming the closest known one (a typo must not be ignored)."""
    if not isinstance(config, dict):
        return   # the schema says what is wrong
    known = [f.name for f in dataclasses.fields(EvaluateConfig)]
    for key in config:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            raise UserError(f"{path}: unknown setting {key!r}" + (f"; did you mean {close[0]!r}?" if close else ""))


def load_run_config(config_file: str | Path | None, options: dict) -> EvaluateConfig:
    """Effective settings; ``options`` are the command line's (None = not given)."""
    config: dict = {}
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise UserError(f"{path}: config file not found")
        config = load_yaml(path) or {}
        _check_names(config, path)
        validate(config, "evaluate_config", path)
        for key in PATH_KEYS:
            if config.get(key) is not None:
                config[key] = str(path.parent / config[key])
    given = {**config, **{k: v for k, v in options.items() if v is not None}}
    protocol = given.get("protocol", "default")
    if protocol not in PROTOCOLS:
        raise UserError(f"--protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    merged = {**PROTOCOLS[protocol], **given}
    return EvaluateConfig.from_dict(merged)
