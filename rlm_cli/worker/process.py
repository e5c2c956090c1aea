"""The host's side of the worker: start it, run cells, serve its sub-calls, survive its death.

The worker is a separate `python -m rlm_cli.worker` process in its own session (so a Ctrl-C in the
terminal reaches only the host), with a scrubbed environment and a scratch working directory,
confined by `sandbox` (namespaces, Landlock, rlimits; a pids cgroup when the host is root). It
talks to the host over one inherited Unix socket. Whatever it started dies with it. A cell that overruns its timeout gets SIGINT;
if it does not stop within a grace period, the worker is killed and started again, and the
model is told its variables are gone.

The host trusts nothing the worker controls. Once the worker runs, the host never opens, reads
or follows a path inside the scratch directory: the context arrives through an inherited
descriptor (`handoff`), written afresh from the host's own copy at every start; the worker's
stdout and stderr go to a pipe the host drains continuously, keeping only a bounded tail to
quote when the worker dies; and every message it sends is checked (`protocol.decode`) before
it is believed, a bad one costing the worker a restart, never the host its run. A run's first
worker also inherits the descriptors of its state files (rlm_cli.runs.state): one it pickles its
variables into when asked (`save_state`), one it restores an earlier run's from
(`restore_state`); the host moves those bytes and never loads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rlm_cli
from rlm_cli.errors import UsageError, WorkerError
from rlm_cli.sources.summary import ContextSummary
from rlm_cli.worker.handoff import Handoff
from rlm_cli.worker.protocol import (
    HEADER_SIZE,
    ExecuteReply,
    ExecuteRequest,
    InitReply,
    InitRequest,
    LlmReply,
    LlmRequest,
    Message,
    ProtocolError,
    RestoreReply,
    RestoreRequest,
    ShutdownRequest,
    StateReply,
    StateRequest,
    decode,
    encode,
    frame_length,
)
from rlm_cli.worker.sandbox import (
    PidsCgroup,
    Policy,
    kill_tree,
    prepare_host,
    warnings_for,
)

LlmHandler = Callable[[LlmRequest], Awaitable[list[dict[str, str]]]]

# Only these reach the worker: nothing that could hold a key, a token or a credential.
ENV_ALLOWED = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH", "VIRTUAL_ENV")
INTERRUPT_GRACE_S = 2.0
# While a cell waits for its sub-calls its clock stops (a local model can take minutes over a
# scan), up to this many times the cell timeout in all, so a cell cannot live on sub-calls forever.
SUBCALL_WAIT_FACTOR = 10
TAIL_BYTES = 64 * 1024  # of the worker's own stdout/stderr, kept to say how it died
DEFAULT_MAX_WORKERS = 4
WORKER_MEMORY_SHARE = 1 << 30  # what one worker at rest plus a modest context is given, for the default


def max_workers(environ: Mapping[str, str] = os.environ) -> int:
    """Workers a run may have started at once at each depth: RLM_MAX_WORKERS, else
    DEFAULT_MAX_WORKERS or fewer when the free memory holds fewer WORKER_MEMORY_SHAREs."""
    text = environ.get("RLM_MAX_WORKERS", "").strip()
    if text:
        if not text.isdigit() or int(text) < 1:
            raise UsageError(f"RLM_MAX_WORKERS must be a whole number of at least 1, not {text!r}")
        return int(text)
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return DEFAULT_MAX_WORKERS
    return max(1, min(DEFAULT_MAX_WORKERS, free // WORKER_MEMORY_SHARE))


def worker_env(scratch: Path, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The worker's whole environment: an allow-list, plus paths that keep it inside `scratch`."""
    env = {k: v for k, v in environ.items() if k in ENV_ALLOWED}
    package_root = str(Path(rlm_cli.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.update(
        HOME=str(scratch),
        TMPDIR=str(scratch),
        IPYTHONDIR=str(scratch / ".ipython"),
        MPLBACKEND="Agg",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONIOENCODING="utf-8",
    )
    return env


@dataclass(frozen=True)
class CellOutcome:
    """A finished cell as the loop sees it, including the ways it can go wrong outside Python."""

    output: str
    output_chars: int
    error: str | None
    final: str | None
    restored: tuple[str, ...]
    duration_s: float
    timed_out: bool = False
    restarted: bool = False  # the worker died or was killed; variables are gone
    crash: str | None = None  # how it died, when it did
    final_json: str | None = None  # a dict or list answer, as JSON text
    sources: tuple[Any, ...] | None = None  # FINAL(answer, sources=[...]), as the model gave them


class OutputTail(asyncio.Protocol):
    """The last `limit` bytes the worker wrote to its stdout/stderr, read from a pipe the host owns.

    Read as it arrives, so a worker that writes without end costs the host `limit` bytes and
    some CPU, never a blocked pipe or its memory. The host's own pipe rather than asyncio's
    subprocess pipe: a process the worker left behind may keep the write end open, and waiting
    for the worker's exit must not wait for that process too.
    """

    def __init__(self, limit: int = TAIL_BYTES) -> None:
        self._limit = limit
        self._data = bytearray()
        self._ended = asyncio.get_running_loop().create_future()
        self._transport: asyncio.BaseTransport | None = None

    @classmethod
    async def open(cls) -> tuple[OutputTail, int]:
        """A tail reading a new pipe, and the pipe's write end for the worker (the caller closes it)."""
        read_fd, write_fd = os.pipe()
        tail = cls()
        loop = asyncio.get_running_loop()
        tail._transport, _ = await loop.connect_read_pipe(lambda: tail, os.fdopen(read_fd, "rb", buffering=0))
        return tail, write_fd

    def data_received(self, data: bytes) -> None:
        self._data += data
        if len(self._data) > self._limit:
            del self._data[: len(self._data) - self._limit]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._ended.done():
            self._ended.set_result(None)

    async def settle(self, timeout: float) -> None:
        """Wait up to `timeout` for what the worker wrote last (until every writer has gone)."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._ended), timeout)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def last_lines(self, count: int = 3) -> list[str]:
        text = self._data.decode("utf-8", "replace").strip()
        return [line.strip() for line in text.splitlines()[-count:]]


class WorkerProcess:
    """One worker: `start()`, then `execute()` cells one at a time, then `close()`."""

    def __init__(
        self,
        handoff: Handoff,
        scratch: Path,
        env: Mapping[str, str] | None = None,
        policy: Policy | None = None,
        inherit: tuple[int, ...] = (),
    ) -> None:
        """`inherit`: more descriptors the worker gets at every start (the state files of
        rlm_cli.runs.state), which the caller owns and closes."""
        self._handoff = handoff
        self._inherit = inherit
        self._scratch = scratch
        self._env = dict(env) if env is not None else worker_env(scratch)
        self._policy = policy
        self._cgroup: PidsCgroup | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tail: OutputTail | None = None
        self.isolation: dict[str, str] = {}  # mechanism -> what is in force (sandbox.confine)
        self.warnings: list[str] = []  # what isolation is missing, one line each, for a Notice
        self._busy = False  # a cell is running: on close, kill at once rather than ask politely
        self._starting: asyncio.Task[None] | None = None  # start_soon()'s start, until it is done
        self._cancelled_read: asyncio.Future[Message] | None = None  # an interrupted cell's read of the stream

    @property
    def started(self) -> bool:
        """The worker is up: started in the foreground, or start_soon()'s start has finished well."""
        starting = self._starting
        if starting is not None and (not starting.done() or starting.cancelled() or starting.exception() is not None):
            return False
        return self.pid is not None

    @property
    def summary(self) -> ContextSummary:
        """What the prompt says about the context: built by the host, never asked of the worker."""
        return self._handoff.summary

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def start(self) -> None:
        """Spawn the worker and hand it the context."""
        context_fd, size = await asyncio.to_thread(self._handoff.open)
        self._tail, output_fd = await OutputTail.open()
        host_end, worker_end = socket.socketpair()
        try:
            if self._policy is None:
                self._policy = Policy.for_context(self._scratch, size)
            prepare_host()
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "rlm_cli.worker",
                "--fd",
                str(worker_end.fileno()),
                "--policy",
                self._policy.to_json(),
                pass_fds=(worker_end.fileno(), context_fd, *self._inherit),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output_fd,
                stderr=output_fd,
                cwd=self._scratch,
                env=self._env,
                start_new_session=True,
            )
        except BaseException:
            host_end.close()
            self._tail.close()
            raise
        finally:
            os.close(context_fd)  # the worker holds its own copies now
            os.close(output_fd)
            worker_end.close()
        processes = self._limit_processes(self._proc.pid)
        self._reader, self._writer = await asyncio.open_unix_connection(sock=host_end)
        self._send(InitRequest(context_fd=context_fd))
        try:
            reply = await self._next_message()
        except (EOFError, ConnectionError, asyncio.IncompleteReadError, ProtocolError) as exc:
            note = await self._death_note(exc)
            await self.close()
            raise WorkerError(f"the worker failed to start: it {note}") from exc
        if not isinstance(reply, InitReply):
            await self.close()
            raise WorkerError(f"worker answered init with {reply.type}")
        self.isolation = {**reply.isolation, "processes": processes}
        self.warnings = warnings_for(self.isolation)

    def start_soon(self) -> asyncio.Task[None]:
        """`start()` in the background, so the host can ask the root model its first question
        meanwhile; `execute` waits for it (and raises its error), `close` cancels it."""
        self._starting = asyncio.ensure_future(self.start())
        return self._starting

    def _limit_processes(self, pid: int) -> str:
        """Cap the worker's process count: RLIMIT_NPROC in the worker, or a pids cgroup for root."""
        assert self._policy is not None
        if not self._policy.limits:
            return "not limited: disabled by RLM_SANDBOX_DISABLE"
        if os.geteuid() != 0:
            return f"limited to {self._policy.max_processes} (RLIMIT_NPROC)"
        if self._cgroup is None:
            self._cgroup = PidsCgroup.create(self._policy.max_processes)
        if self._cgroup is not None and self._cgroup.add(pid):
            return f"limited to {self._policy.max_processes} (pids cgroup)"
        return "not limited: running as root (RLIMIT_NPROC does not apply) and no pids cgroup could be made"

    async def execute(self, cell_id: int, code: str, *, timeout: float, max_output_chars: int, on_llm: LlmHandler) -> CellOutcome:
        """Run one cell, serving its sub-calls through `on_llm` until it replies, times out or dies.

        `timeout` counts the cell's own time: while sub-calls it asked for are in flight the
        clock stops (up to SUBCALL_WAIT_FACTOR times `timeout`), since the model's time is
        bounded by the run's --timeout, --max-subcalls and --max-cost instead.
        """
        if self._starting is not None:
            await asyncio.shield(self._starting)  # a cancelled cell leaves the start to `close`
        self._send(ExecuteRequest(cell_id=cell_id, code=code, max_output_chars=max_output_chars))
        self._busy = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pause_left = timeout * SUBCALL_WAIT_FACTOR
        interrupted = False
        serving: set[asyncio.Task[None]] = set()
        reading = asyncio.ensure_future(self._next_message())
        try:
            while True:
                if serving and not interrupted and pause_left > 0:  # the clock stops while sub-calls run
                    paused = loop.time()
                    done, _ = await asyncio.wait({reading, *serving}, timeout=pause_left, return_when=asyncio.FIRST_COMPLETED)
                    waited = loop.time() - paused
                    pause_left -= waited
                    deadline += waited
                    if reading not in done:
                        continue
                else:
                    done, _ = await asyncio.wait({reading}, timeout=max(0.0, deadline - loop.time()))
                if not done:
                    if interrupted:  # SIGINT did not stop it: kill and start again
                        reading.cancel()  # before the kill ends it with an error nobody would retrieve
                        await self._restart()
                        return CellOutcome("", 0, "Timeout", None, (), timeout, timed_out=True, restarted=True)
                    interrupted = True
                    for task in serving:
                        task.cancel()
                    self._signal(signal.SIGINT)
                    deadline = loop.time() + INTERRUPT_GRACE_S
                    continue
                try:
                    message = reading.result()
                except ProtocolError as exc:  # alive but misbehaving: stop it rather than believe it
                    await self._restart()
                    return CellOutcome("", 0, "WorkerDied", None, (), 0.0, restarted=True, crash=f"sent a message the host refused ({exc}) and was stopped")
                except (EOFError, ConnectionError, asyncio.IncompleteReadError) as exc:
                    crash = await self._death_note(exc)
                    await self._restart()
                    return CellOutcome("", 0, "WorkerDied", None, (), 0.0, restarted=True, crash=crash)
                if isinstance(message, LlmRequest) and message.cell_id != cell_id:
                    refused = {"error": f"refused: a sub-call from cell {message.cell_id} arrived while cell {cell_id} runs"}
                    self._send(LlmReply(req_id=message.req_id, results=[refused] * len(message.prompts)))
                elif isinstance(message, LlmRequest):
                    task = asyncio.ensure_future(self._serve(message, on_llm))
                    serving.add(task)
                    task.add_done_callback(serving.discard)
                elif isinstance(message, ExecuteReply) and message.cell_id == cell_id:
                    self._busy = False
                    return CellOutcome(
                        output=message.output,
                        output_chars=message.output_chars,
                        error=message.error,
                        final=message.final,
                        final_json=message.final_json,
                        sources=None if message.sources is None else tuple(message.sources),
                        restored=tuple(message.restored),
                        duration_s=message.duration_s,
                        timed_out=interrupted,
                    )
                reading = asyncio.ensure_future(self._next_message())
        finally:
            if not reading.done():
                reading.cancel()
                self._cancelled_read = reading  # a later request waits for it to let go of the stream
            for task in serving:
                task.cancel()

    async def save_state(self, request: StateRequest, timeout: float) -> StateReply | None:
        """Have the worker pickle its variables (worker.state); a cell still running (the run
        was interrupted or timed out) is interrupted first. None when the worker cannot say
        within `timeout`: dead, misbehaving, or a cell that ignores the interrupt."""
        if self._busy:
            self._signal(signal.SIGINT)
        reply = await self._ask(request, StateReply, timeout)
        return reply if isinstance(reply, StateReply) else None

    async def restore_state(self, request: RestoreRequest, timeout: float) -> RestoreReply | None:
        """Have the worker restore the variables of an earlier run (worker.state); None as for save_state."""
        reply = await self._ask(request, RestoreReply, timeout)
        return reply if isinstance(reply, RestoreReply) else None

    async def _ask(self, request: Message, expected: type[Message], timeout: float) -> Message | None:
        """Send `request` between cells and wait for its reply; what a cell still sends first
        (its execute_reply, a sub-call, which is refused) is passed over. An interrupted cell
        gets INTERRUPT_GRACE_S to stop, as a timed-out one does, so Ctrl-C stays prompt."""
        try:
            async with asyncio.timeout(INTERRUPT_GRACE_S):
                if self._cancelled_read is not None:
                    await asyncio.wait({self._cancelled_read})
                    self._cancelled_read = None
                if self._busy:  # read up to the interrupted cell's reply, so the request finds the worker idle
                    while not isinstance(message := await self._next_message(), ExecuteReply):
                        self._refuse(message)
                    self._busy = False
            async with asyncio.timeout(timeout):
                self._send(request)
                while not isinstance(message := await self._next_message(), expected):
                    self._refuse(message)
                return message
        except (TimeoutError, EOFError, ConnectionError, asyncio.IncompleteReadError, ProtocolError, WorkerError):
            return None

    def _refuse(self, message: Message) -> None:
        if isinstance(message, LlmRequest):
            refused = {"error": "refused: the run is over"}
            self._send(LlmReply(req_id=message.req_id, results=[refused] * len(message.prompts)))

    async def close(self) -> None:
        """Stop the worker and everything it started; safe to call more than once."""
        starting = self._starting
        if starting is not None and not starting.done() and starting is not asyncio.current_task():
            starting.cancel()  # a start cut short kills what it spawned (asyncio's subprocess does)
            await asyncio.wait({starting})
        if starting is not None and starting.done() and not starting.cancelled():
            starting.exception()  # whoever wanted the start's error has had it
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._send(ShutdownRequest())
                self._writer.close()
        self._writer = self._reader = None
        if self._proc is not None and self._proc.returncode is None and not self._busy:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._proc.wait(), 1.0)
        self._busy = False
        self._kill_group()
        if self._proc is not None and self._proc.returncode is None:
            await self._proc.wait()
        self._proc = None
        if self._tail is not None:
            self._tail.close()
        if self._cgroup is not None:  # whatever escaped the process tree is still in the cgroup
            await asyncio.to_thread(self._cgroup.destroy)
            self._cgroup = None

    # -- internals ------------------------------------------------------------------------

    async def _serve(self, request: LlmRequest, on_llm: LlmHandler) -> None:
        try:
            results = await on_llm(request)
        except Exception as exc:  # a fault below must not leave the cell waiting for a reply
            results = [{"error": f"the host failed to make this sub-call ({type(exc).__name__}: {exc})"}] * len(request.prompts)
        with contextlib.suppress(ConnectionError, RuntimeError):
            self._send(LlmReply(req_id=request.req_id, results=results))

    def _send(self, message: Message) -> None:
        if self._writer is None:
            raise WorkerError("the worker is not running")
        self._writer.write(encode(message))

    async def _next_message(self) -> Message:
        if self._reader is None:
            raise EOFError("worker channel closed")
        header = await self._reader.readexactly(HEADER_SIZE)
        return decode(await self._reader.readexactly(frame_length(header)))

    def _signal(self, signum: int) -> None:
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._proc.pid, signum)

    def _kill_group(self) -> None:
        # The worker leads its own session and process group; kill_tree also reaches the
        # descendants that left the group (setsid) while their parents still live.
        if self._proc is None:
            return
        if self._proc.returncode is None:  # once reaped, its pid may be someone else's: group only
            kill_tree(self._proc.pid)
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)

    async def _death_note(self, exc: BaseException) -> str:
        """Say how the worker died: its exit status and the last lines it wrote."""
        code = None
        if self._proc is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                code = await asyncio.wait_for(self._proc.wait(), 2.0)
        if code is None:
            how = f"stopped answering ({type(exc).__name__})"
        elif code < 0:
            how = f"was killed by signal {signal.Signals(-code).name}"
        else:
            how = f"exited with status {code}"
        if self._tail is None:
            return how
        await self._tail.settle(0.5)  # what it wrote last may still be in the pipe
        tail = self._tail.last_lines()
        if tail:
            how += ": " + " | ".join(tail)[-300:]
        return how

    async def _restart(self) -> None:
        await self.close()
        await self.start()
