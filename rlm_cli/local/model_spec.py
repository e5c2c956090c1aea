"""Parse the local model strings `local` and `local:/path/to/model.gguf`.

`local` means the bundled Qwen2.5-Coder-1.5B weights of the `local` extra; `local:PATH` means
any GGUF file the user has. Parsing checks a user path at once (exists, is a file, starts with
the GGUF magic) so a typo is a usage error before any server starts; the bundled weights are
only located and joined when `resolve_path()` is called.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rlm_cli.errors import UsageError
from rlm_cli.local import weights

LOCAL_MODEL = "local"  # the model string, and the alias llama-server serves it under
GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class LocalModelSpec:
    """A model to serve with llama-server: the bundled weights (`path is None`) or a GGUF file."""

    path: Path | None = None

    @property
    def bundled(self) -> bool:
        return self.path is None

    @property
    def name(self) -> str:
        """A short human name for traces and `--json` output."""
        if self.path is None:
            return f"local ({weights.MODEL_FILENAME.removesuffix('.gguf')})"
        return f"local ({self.path.name})"

    def resolve_path(self, progress: weights.ProgressCallback | None = None) -> Path:
        """The GGUF file to load; for the bundled model this joins and verifies it on first use."""
        if self.path is not None:
            return self.path
        return weights.ensure_model(progress)


def is_local_model(model: str) -> bool:
    """Whether a `--model` string names a local model rather than a litellm provider model."""
    return model == LOCAL_MODEL or model.startswith(LOCAL_MODEL + ":")


def parse_local_model(model: str) -> LocalModelSpec:
    """Turn `local` or `local:PATH` into a spec, checking a user's GGUF file up front."""
    if model == LOCAL_MODEL:
        return LocalModelSpec()
    if not model.startswith(LOCAL_MODEL + ":"):
        raise UsageError(f"not a local model: {model!r} (expected 'local' or 'local:/path/to/model.gguf')")
    raw = model[len(LOCAL_MODEL) + 1 :].strip()
    if not raw:
        raise UsageError("'local:' needs a path to a GGUF file, e.g. local:/models/qwen.gguf")
    path = Path(raw).expanduser().resolve()
    check_gguf(path)
    return LocalModelSpec(path=path)


def check_gguf(path: Path) -> None:
    """Raise `UsageError` unless `path` is a readable file that starts with the GGUF magic."""
    if not path.exists():
        raise UsageError(f"local model file not found: {path}")
    if not path.is_file():
        raise UsageError(f"local model path is not a file: {path}")
    try:
        with path.open("rb") as handle:
            magic = handle.read(len(GGUF_MAGIC))
    except OSError as exc:
        raise UsageError(f"cannot read local model file {path}: {exc.strerror or exc}") from exc
    if magic != GGUF_MAGIC:
        raise UsageError(
            f"{path} is not a GGUF model file (it starts with {magic!r}, expected {GGUF_MAGIC!r}); "
            "llama-server loads GGUF files only"
        )
