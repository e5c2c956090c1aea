"""Prices and context windows from litellm's bundled table, without importing litellm.

litellm ships `model_prices_and_context_window_backup.json` (its offline price map) inside the
package. Importing litellm to read it costs ~3 s; locating the package with
`importlib.util.find_spec` imports nothing (`importlib.resources.files` would import the
package), so the file is found that way and parsed once, on first use (~50 ms for 3 MB).
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

TABLE = "model_prices_and_context_window_backup.json"


@functools.cache
def _table() -> dict[str, dict[str, Any]]:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    for location in spec.submodule_search_locations:
        path = Path(location) / TABLE
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return {}
            return data if isinstance(data, dict) else {}
    return {}


def model_info(model: str) -> dict[str, Any] | None:
    """The table's entry for `model` (`gpt-4o-mini` or `openai/gpt-4o-mini`), or None."""
    table = _table()
    entry = table.get(model)
    if entry is None and "/" in model:
        provider, bare = model.split("/", 1)
        entry = table.get(bare)
        if entry is not None and entry.get("litellm_provider") not in (provider, None):
            entry = None
    return entry if isinstance(entry, dict) else None


def context_window(model: str) -> int | None:
    """The model's input window in tokens, where the table knows it."""
    info = model_info(model) or {}
    window = info.get("max_input_tokens") or info.get("max_tokens")
    return int(window) if isinstance(window, int | float) and window else None


def cost(model: str, input_tokens: int, output_tokens: int) -> float | None:
    """The price in USD of one call, or None for a model the table does not price."""
    info = model_info(model) or {}
    per_in, per_out = info.get("input_cost_per_token"), info.get("output_cost_per_token")
    if not isinstance(per_in, int | float) or not isinstance(per_out, int | float):
        return None
    return input_tokens * per_in + output_tokens * per_out
