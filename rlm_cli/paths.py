"""Where rlm keeps its files: the cache root and the config file. The ground floor of the package.

Imports nothing else from rlm at import time, so every module (the loader, the code graph, the local model, the
settings) can ask for a path without an import circle.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import platformdirs


def cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The root of everything rlm caches; `RLM_CACHE_DIR` moves it (tests, CI, read-only homes)."""
    override = environ.get("RLM_CACHE_DIR")
    return Path(override).expanduser() if override else Path(platformdirs.user_cache_dir("rlm"))


def config_path(environ: Mapping[str, str] = os.environ) -> Path:
    """The config file: `$RLM_CONFIG`, or `config.toml` in the user config directory."""
    override = environ.get("RLM_CONFIG")
    return Path(override) if override else Path(platformdirs.user_config_dir("rlm")) / "config.toml"


def runs_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where trajectories are kept by default."""
    return cache_dir(environ) / "runs"


def check_writable(path: Path, option: str) -> None:
    """Fail before any model call when `path` (a file to be written) cannot be written.

    The message names the option, so `-o` and `--trace` fail the same way.
    """
    from rlm_cli.errors import UsageError

    parent = path.parent
    if path.is_dir():
        raise UsageError(f"cannot write {option} {path}: it is a directory")
    if not parent.is_dir():
        raise UsageError(f"cannot write {option} {path}: no such directory {parent}")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"cannot write {option} {path}: permission denied")
