"""Settings, resolved once at the edge: options, then environment, then the config file.

Model resolution order (README and `rlm ask --help` say the same): `--model`, then `RLM_MODEL`,
then `model` in the config file (`$RLM_CONFIG`, or `config.toml` in the user config directory),
then the bundled local model when the `local` extra is installed (unless `RLM_LOCAL_DEFAULT=0`).
With none of them, a run cannot start: exit 4 with every way to configure one. Each of the four
model settings is resolved on its own, so `RLM_SUB_MODEL` can complete a `--model` given on the
command line.

The provider-call knobs (`RLM_REQUEST_TIMEOUT`, `RLM_MAX_RETRIES`, `RLM_RETRY_BASE_DELAY`) and the
prompt profile (`RLM_PROMPT_PROFILE`) are read here too, and nowhere else; their defaults live
on the objects they configure (`ModelSettings`), not here.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlm_cli.errors import ModelError, UsageError
from rlm_cli.local.model_spec import LOCAL_MODEL
from rlm_cli.paths import config_path

CONFIG_KEYS = ("model", "sub_model", "api_base", "sub_api_base")
_REQUEST_ENV = {
    "RLM_REQUEST_TIMEOUT": ("request_timeout", float),
    "RLM_MAX_RETRIES": ("max_retries", int),
    "RLM_RETRY_BASE_DELAY": ("retry_base_delay", float),
}


@dataclass(frozen=True)
class ModelFlags:
    """The model options as given on the command line (or by a script); None = not given."""

    model: str | None = None
    sub_model: str | None = None
    api_base: str | None = None
    sub_api_base: str | None = None


@dataclass(frozen=True)
class ModelChoice:
    """Which models answer, after options, environment and config file have had their say."""

    model: str
    sub_model: str
    api_base: str | None
    sub_api_base: str | None


@dataclass(frozen=True)
class Settings:
    """Everything a run takes from its surroundings, read once."""

    models: ModelChoice
    request: Mapping[str, Any] = field(default_factory=dict)  # ModelSettings overrides from the environment
    profile: str | None = None  # RLM_PROMPT_PROFILE; None picks one by model


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


def _local_extra_installed() -> bool:
    from rlm_cli.local.weights import is_available

    return is_available()


def resolve_models(
    flags: ModelFlags,
    environ: Mapping[str, str] = os.environ,
    local_available: Callable[[], bool] = _local_extra_installed,
) -> ModelChoice:
    """Apply option > environment > config file > local extra, for each setting on its own."""
    path = config_path(environ)
    file = read_config_file(path)

    def pick(option: str | None, env: str, key: str) -> str | None:
        return option or environ.get(env) or file.get(key) or None

    root = pick(flags.model, "RLM_MODEL", "model")
    if not root and environ.get("RLM_LOCAL_DEFAULT", "1") != "0" and local_available():
        root = LOCAL_MODEL
    if not root:
        raise ModelError(
            "no model configured. Pass --model (e.g. --model gpt-4o-mini with OPENAI_API_KEY set, or any "
            "litellm model string), set RLM_MODEL, or put model = \"...\" in "
            f"{path}; for any OpenAI-compatible server add --api-base URL (or RLM_API_BASE); "
            'for a model that runs here with no key: pip install "rlm-cli[local]"'
        )
    base = pick(flags.api_base, "RLM_API_BASE", "api_base")
    sub = pick(flags.sub_model, "RLM_SUB_MODEL", "sub_model") or root
    sub_base = pick(flags.sub_api_base, "RLM_SUB_API_BASE", "sub_api_base") or base
    return ModelChoice(root, sub, base, sub_base)


def request_overrides(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """`ModelSettings` fields the environment sets; a malformed number is a usage error."""
    overrides: dict[str, Any] = {}
    for name, (key, kind) in _REQUEST_ENV.items():
        text = environ.get(name)
        if not text:
            continue
        try:
            value = kind(text)
        except ValueError:
            raise UsageError(f"{name}={text!r} is not a {'whole ' if kind is int else ''}number") from None
        if value < 0:
            raise UsageError(f"{name} must not be negative")
        overrides[key] = value
    return overrides


def resolve(
    flags: ModelFlags,
    environ: Mapping[str, str] = os.environ,
    local_available: Callable[[], bool] = _local_extra_installed,
) -> Settings:
    """The one place a run's settings are read from options, environment and config file."""
    return Settings(
        models=resolve_models(flags, environ, local_available),
        request=request_overrides(environ),
        profile=environ.get("RLM_PROMPT_PROFILE") or None,
    )
