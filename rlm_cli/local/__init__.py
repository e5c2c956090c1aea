"""A real local model for rlm: bundled weights served by llama-server on 127.0.0.1.

    weights.py     find the weight part packages, join them once into a verified GGUF file
    model_spec.py  parse `local` / `local:/path/to/model.gguf`
    server.py      run llama-server for one rlm run and never leave it behind

Typical use at the edge (the CLI), with litellm's OpenAI-compatible path:

    spec = parse_local_model("local")
    with LocalServer(spec.resolve_path(on_bytes), progress=on_phase) as server:
        litellm.completion(model=server.litellm_model, api_base=server.url,
                           api_key=server.api_key, messages=...)

`is_available()` is cheap (no import of the extra, no hashing): it decides whether `local` is
the default model.
"""

from __future__ import annotations

from rlm_cli.local.model_spec import LocalModelSpec, is_local_model, parse_local_model
from rlm_cli.local.server import (
    LocalServer,
    ServerBinary,
    ServerProgress,
    find_server_binary,
)
from rlm_cli.local.weights import ensure_model, is_available

__all__ = [
    "LocalModelSpec",
    "LocalServer",
    "ServerBinary",
    "ServerProgress",
    "ensure_model",
    "find_server_binary",
    "is_available",
    "is_local_model",
    "parse_local_model",
]
