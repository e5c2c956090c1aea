"""Where settings come from: options, then environment, then the config file.

Model resolution order (README and `rlm ask --help` say the same): `--model`, then `RLM_MODEL`,
then `model` in the config file (`$RLM_CONFIG`, or `config.toml` in the user config directory),
then the bundled local model when the `local` extra is installed (unless `RLM_LOCAL_DEFAULT=0`).
With none of them, a run cannot start: exit 4 with every way to configure one.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from rlm_cli.errors import ModelError, UsageError

CONFIG_KEYS = ("model", "sub_model", "api_base", "sub_api_base")


def config_path(environ: Mapping[str, str] = os.environ) -> Path:
    override = environ.get("RLM_CONFIG")
    return Path(override) if override else Path(platformdirs.user_config_dir("rlm")) / "config.toml"


def cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The root of everything rlm caches; `RLM_CACHE_DIR` moves it (tests, CI, read-only homes)."""
    override = environ.get("RLM_CACHE_DIR")
    return Path(override).expanduser() if override else Path(platformdirs.user_cache_dir("rlm"))


def read_config_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"config file {path}: {exc}") from exc
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise UsageError(f"config file {path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(CONFIG_KEYS)}")
    bad = [k for k, v in data.items() if not isinstance(v, str)]
    if bad:
        raise UsageError(f"config file {path}: {', '.join(bad)} must be a string")
    return dict(data)


@dataclass(frozen=True)
class ModelChoice:
    model: str
    sub_model: str
    api_base: str | None
    sub_api_base: str | None
    source: str  # where the root model came from, for the trace


def _local_extra_installed() -> bool:
    from rlm_cli.local.weights import is_available

    return is_available()


def resolve_models(
    model: str | None,
    sub_model: str | None,
    api_base: str | None,
    sub_api_base: str | None,
    environ: Mapping[str, str] = os.environ,
    local_available: Callable[[], bool] = _local_extra_installed,
) -> ModelChoice:
    """Apply option > environment > config file > local extra, for each setting on its own."""
    path = config_path(environ)
    file = read_config_file(path)

    def pick(option: str | None, env: str, key: str) -> tuple[str | None, str]:
        if option:
            return option, f"--{key.replace('_', '-')}"
        if environ.get(env):
            return environ[env], env
        if file.get(key):
            return file[key], str(path)
        return None, ""

    root, source = pick(model, "RLM_MODEL", "model")
    if not root and environ.get("RLM_LOCAL_DEFAULT", "1") != "0" and local_available():
        root, source = "local", "the local extra (default)"
    if not root:
        raise ModelError(
            "no model configured. Pass --model (e.g. --model gpt-4o-mini with OPENAI_API_KEY set, or any "
            "litellm model string), set RLM_MODEL, or put model = \"...\" in "
            f"{path}; for any OpenAI-compatible server add --api-base URL (or RLM_API_BASE); "
            'for a model that runs here with no key: pip install "rlm-cli[local]"'
        )
    base = pick(api_base, "RLM_API_BASE", "api_base")[0]
    sub = pick(sub_model, "RLM_SUB_MODEL", "sub_model")[0] or root
    sub_base = pick(sub_api_base, "RLM_SUB_API_BASE", "sub_api_base")[0] or base
    return ModelChoice(root, sub, base, sub_base, source)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """`5000000`, `500k`, `5M`, `1.5GB` -> bytes (binary multiples)."""
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"not a size: {text!r} (try 5M, 500k or a number of bytes)")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * 1024 ** "_kmgt".index(unit or "_"))
