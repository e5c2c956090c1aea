"""Sources: what the user names (files, directories, git URLs, stdin) and the `Context` built
from them.

`loader` and `git` run in the host; `context` runs in the worker, which imports only the standard
library. Importing `rlm_cli.sources.context` runs this file, so the loader (which needs pathspec
and platformdirs) is imported lazily, on first use of one of its names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rlm_cli.sources.context import Chunk, Context, Hit

if TYPE_CHECKING:
    from rlm_cli.sources.git import RepoInfo
    from rlm_cli.sources.loader import LoadedSources, LoadOptions, Skipped, load_sources

__all__ = [
    "Chunk",
    "Context",
    "Hit",
    "LoadOptions",
    "LoadedSources",
    "RepoInfo",
    "Skipped",
    "load_sources",
]

_LAZY = {
    "LoadOptions": "rlm_cli.sources.loader",
    "LoadedSources": "rlm_cli.sources.loader",
    "Skipped": "rlm_cli.sources.loader",
    "load_sources": "rlm_cli.sources.loader",
    "RepoInfo": "rlm_cli.sources.git",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
