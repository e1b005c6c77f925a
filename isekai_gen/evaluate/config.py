"""The run configuration: YAML file (`schemas/evaluate_config.schema.json`) + command-line options.

Options given on the command line win over the file; the defaults fill the rest. Paths in the
file are relative to the file's folder.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..yamlio import load_yaml
from ..schema import validate

DEFAULTS = {
    "images": None, "endpoint": None, "batch_size": [1], "concurrency": 8, "seed": 0, "test_shuffle_seed": 66,
    "budget_usd": None, "max_requests": None, "price_table": None, "temperature": 0.0, "tokens_per_query": 60,
    "lcl_max_tokens": 64, "max_reasks": 2, "max_retries": 6, "retry_base_s": 1.0, "retry_max_s": 60.0,
    "request_timeout_s": 600.0, "parse_failures": "wrong", "lcl_compat": False, "bootstrap": 1000,
    "batch": False, "submit": False, "retry_failed": False, "provider_options": {}, "limits": {},
}
REQUIRED = ("truth", "model", "shots", "out")
PATH_KEYS = ("truth", "images", "out", "price_table")


def load_run_config(config_file: str | Path | None, options: dict) -> dict:
    """Effective settings; ``options`` are the command line's (None = not given)."""
    config: dict = {}
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise UserError(f"{path}: config file not found")
        config = load_yaml(path) or {}
        validate(config, "evaluate_config", path)
        for key in PATH_KEYS:
            if config.get(key) is not None:
                config[key] = str(path.parent / config[key])
    merged = {**DEFAULTS, **config, **{k: v for k, v in options.items() if v is not None}}
    missing = [key for key in REQUIRED if merged.get(key) in (None, [], ())]
    if missing:
        raise UserError(f"evaluate: missing --{missing[0].replace('_', '-')} (give it on the command line or in --config)")
    validate(merged, "evaluate_config", "evaluate settings")
    return merged
