"""The price table: shipped `configs/evaluate/prices.yaml` (dated) or the user's `--price-table`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..yamlio import load_yaml
from ..resources import CONFIG_DIR
from ..schema import validate

SHIPPED = CONFIG_DIR / "evaluate" / "prices.yaml"


@dataclass(frozen=True)
class Price:
    input_per_token: float
    output_per_token: float
    source: str          # "<table path> (<date>): <provider>/<key>"

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return input_tokens * self.input_per_token + output_tokens * self.output_per_token


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
    factor = table.get("batch_discount", 1.0) if batch else 1.0
    entry = models[key]
    return Price(entry["input"] * factor / 1e6, entry["output"] * factor / 1e6,
                 f"{source} ({table['date']}): {provider}/{key}")
