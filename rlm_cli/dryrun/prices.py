"""Model prices, windows and tokenizers, known offline and without importing litellm.

litellm ships its price table as `model_prices_and_context_window_backup.json` and tiktoken's
BPE files in `litellm_core_utils/tokenizers/`; importing litellm takes seconds, so both are read
from the installed package's directory, located with `find_spec` (which does not run the
package). A model the table does not know has no price (None), never a guessed one; the bundled
local model costs nothing.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlm_cli.local.model_spec import is_local_model
from rlm_cli.units import CHARS_PER_TOKEN

EXACT_CHARS = 2_000_000  # beyond this, count a sample and scale (tokenizing 100 MB takes too long)
SAMPLES = 40


@dataclass(frozen=True)
class ModelPrice:
    model: str  # the name as given
    key: str | None  # the price table's entry, None when unknown
    input_per_token: float | None
    output_per_token: float | None
    max_input_tokens: int | None

    def cost(self, input_tokens: float, output_tokens: float) -> float | None:
        if self.input_per_token is None or self.output_per_token is None:
            return None
        return input_tokens * self.input_per_token + output_tokens * self.output_per_token


def _litellm_dir() -> Path | None:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


@functools.cache
def price_table() -> dict[str, Any]:
    root = _litellm_dir()
    if root is None:
        return {}
    try:
        data = json.loads((root / "model_prices_and_context_window_backup.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _candidates(model: str) -> list[str]:
    """`openai/gpt-4o-mini` is `gpt-4o-mini` in the table; `anthropic/claude-...` likewise."""
    names = [model]
    if "/" in model:
        names += [model.split("/", 1)[1], model.rsplit("/", 1)[1]]
    return names


def price_for(model: str) -> ModelPrice:
    if is_local_model(model):
        return ModelPrice(model, "local", 0.0, 0.0, None)
    table = price_table()
    for name in _candidates(model):
        entry = table.get(name)
        if isinstance(entry, dict) and entry.get("input_cost_per_token") is not None:
            window = entry.get("max_input_tokens") or entry.get("max_tokens")
            return ModelPrice(
                model,
                name,
                float(entry["input_cost_per_token"]),
                float(entry.get("output_cost_per_token") or 0.0),
                int(window) if window else None,
            )
    return ModelPrice(model, None, None, None, None)


def warm_up(model: str) -> None:
    """Load the model's tokenizer in the background (about a second) while sources load."""
    threading.Thread(target=_encoding, args=(model,), name="tokenizer-load", daemon=True).start()


@functools.cache
def _encoding(model: str) -> Any:
    """tiktoken's encoding for an OpenAI model, from litellm's offline copy; None for others."""
    root = _litellm_dir()
    if root is not None:
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(root / "litellm_core_utils" / "tokenizers"))
    try:
        import tiktoken
    except ImportError:
        return None
    for name in _candidates(model):
        try:
            return tiktoken.encoding_for_model(name)
        except (KeyError, ValueError):
            continue
        except Exception:  # the BPE file is missing and there is no network: estimate instead
            return None
    return None


@dataclass(frozen=True)
class TokenCount:
    tokens: int
    method: str  # the encoding's name, "... (sampled)", or "estimate: 4 characters per token"


def count_tokens(text: str, model: str) -> TokenCount:
    encoding = _encoding(model)
    if encoding is None:
        return TokenCount(len(text) // CHARS_PER_TOKEN, f"estimate: {CHARS_PER_TOKEN} characters per token")
    if len(text) <= EXACT_CHARS:
        return TokenCount(len(encoding.encode(text, disallowed_special=())), encoding.name)
    size = EXACT_CHARS // SAMPLES
    step = len(text) // SAMPLES
    sample = [text[i * step : i * step + size] for i in range(SAMPLES)]
    counted = sum(len(encoding.encode(piece, disallowed_special=())) for piece in sample)
    return TokenCount(round(counted * len(text) / (size * SAMPLES)), f"{encoding.name} (sampled)")
