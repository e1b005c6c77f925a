"""The price table: shipped `configs/evaluate/prices.yaml` (dated) or the user's `--price-table`.

An entry is `{input, output}` dollars per million tokens, plus optionally `cache_read` and
`cache_write` (prompt-cache reads and writes per million input tokens; absent: cache reads and
writes cost the input price, i.e. no saving is claimed) and `batch_input` / `batch_output`
(absent: the table's `batch_discount` times the live price).

Which endpoint a price applies to: the shipped table prices only the providers' own APIs (no
`--endpoint`, or the provider's official host). A local or third-party server under a known model
name is not priced as that model (it is not billed by OpenAI); pass your own `--price-table` to
price such an endpoint, and its entries are taken for whatever endpoint the run uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..resources import CONFIG_DIR
from ..schema import validate
from ..yamlio import load_yaml

SHIPPED = CONFIG_DIR / "evaluate" / "prices.yaml"


@dataclass(frozen=True)
class Price:
    input_per_token: float
    output_per_token: float
    source: str          # "<table path> (<date>): <provider>/<key>"
    cache_read_per_token: float | None = None    # None: the input price
    cache_write_per_token: float | None = None   # None: the input price

    def cost(self, input_tokens: int, output_tokens: int, cache_read: int = 0, cache_write: int = 0) -> float:
        """Dollars of one call; ``input_tokens`` counts every input token, cached ones included."""
        read = self.input_per_token if self.cache_read_per_token is None else self.cache_read_per_token
        write = self.input_per_token if self.cache_write_per_token is None else self.cache_write_per_token
        plain = max(0, input_tokens - cache_read - cache_write)
        return (plain * self.input_per_token + cache_read * read + cache_write * write
                + output_tokens * self.output_per_token)


def load_price_table(path: str | Path | None = None) -> tuple[dict, str]:
    path = Path(path) if path is not None else SHIPPED
    if not path.is_file():
        raise UserError(f"{path}: price table not found")
    table = load_yaml(path)
    validate(table, "evaluate_prices", path)
    return table, str(path)


def find_price(table: dict, source: str, provider: str, model: str, *, batch: bool = False) -> Price | None:
    """The longest key equal to ``model`` or a ``key-`` prefix of it; None when unknown."""
    models = table["models"].get(provider, {})
    matches = [key for key in models if model == key or model.startswith(key + "-")]
    if not matches:
        return None
    key = max(matches, key=len)
    entry = models[key]
    per_token = {name: (entry[name] / 1e6 if entry.get(name) is not None else None)
                 for name in ("cache_read", "cache_write")}
    name = f"{source} ({table['date']}): {provider}/{key}"
    if not batch:
        return Price(entry["input"] / 1e6, entry["output"] / 1e6, name, per_token["cache_read"],
                     per_token["cache_write"])
    factor = table.get("batch_discount", 1.0)
    return Price(entry.get("batch_input", entry["input"] * factor) / 1e6,
                 entry.get("batch_output", entry["output"] * factor) / 1e6, name + " (batch)")
