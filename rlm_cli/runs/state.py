"""The host's side of REPL state: the file a run leaves next to its trajectory, and the one it restores.

At the end of a run (an answer, a limit, an error, Ctrl-C) the depth-0 worker pickles its
variables (rlm_cli.worker.state) into a temporary file the host opened in the runs directory and
the worker inherited; the host checks its size, renames it to `<trajectory stem>.state`, and
records a `state` record naming it. A follow-up or a resume opens that file read-only, before
anything else can prune it, and hands the descriptor to its own first worker, which restores the
variables. The host moves bytes and never unpickles them; it never reads the worker's scratch
directory either. Only the newest KEEP_STATES state files of the runs directory are kept: they
can be large, and a follow-up is asked soon after.

The worker holds the descriptor of the file it will write for its whole life, so a cell could
write there too; the host truncates the file before asking for the snapshot and checks its size
after. Whatever the file holds, only a sandboxed worker ever loads it.

Snapshots cost nothing per turn: one at the end of the run (benchmarks/bench_state.py measures it).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rlm_cli.events import Notice, Sink, StateSaved
from rlm_cli.paths import runs_dir
from rlm_cli.worker.process import WorkerProcess
from rlm_cli.worker.protocol import RestoreReply, RestoreRequest, StateRequest

MAX_STATE_BYTES = 50_000_000  # all variables of a run, pickled
MAX_VARIABLE_BYTES = 20_000_000  # one variable, pickled
SLACK_BYTES = 1_000_000  # the file's own framing around the variables
SAVE_TIMEOUT_S = 10.0  # an interrupted cell's SIGINT, then the pickling
RESTORE_TIMEOUT_S = 30.0
KEEP_STATES = 10
TMP_SUFFIX = ".state.tmp"  # a file being written; one a killed run left is removed after STALE_S
STALE_S = 24 * 3600

History = Callable[[RestoreReply | None], list[dict[str, str]]]


def state_path(trajectory: Path) -> Path:
    return trajectory.with_suffix(".state")


class RunState:
    """What one run keeps of its REPL, and what it takes from an earlier run: the variables
    (restored into the depth-0 worker as it starts) and the conversation to go on from.

    `keep` is the trajectory whose state file this run leaves (None: none); `restore` an open
    descriptor of an earlier run's state file (owned from now on); `history` builds the earlier
    turns of the conversation once the restore has said which variables came back.
    """

    def __init__(self, keep: Path | None, restore: int | None = None, history: History | None = None) -> None:
        self._target = state_path(keep) if keep is not None else None
        self._restore_fd = restore
        self._history = history
        self._restored: RestoreReply | None = None
        self._out_fd: int | None = None
        self._out_tmp: str | None = None
        if self._target is not None:
            with contextlib.suppress(OSError):  # an unwritable directory: no state kept, the run goes on
                self._out_fd, self._out_tmp = tempfile.mkstemp(dir=self._target.parent, prefix=f".{self._target.stem}-", suffix=TMP_SUFFIX)

    @property
    def continues(self) -> bool:
        """The run goes on from an earlier one (it has a conversation to start from)."""
        return self._history is not None

    def fds(self) -> tuple[int, ...]:
        """The descriptors the depth-0 worker inherits."""
        return tuple(fd for fd in (self._out_fd, self._restore_fd) if fd is not None)

    async def restore(self, worker: WorkerProcess, sink: Sink) -> None:
        if self._restore_fd is None:
            return
        reply = await worker.restore_state(RestoreRequest(fd=self._restore_fd), RESTORE_TIMEOUT_S)
        os.close(self._restore_fd)
        self._restore_fd = None
        if reply is None or reply.error is not None:
            why = reply.error if reply is not None else "the worker did not answer"
            sink.emit(Notice(f"the earlier run's REPL state could not be restored ({why}); going on without its variables", level="warning"))
            reply = RestoreReply(restored=[], skipped=[], error=why)
        else:
            names = ", ".join(str(v["name"]) for v in reply.restored) or "none"
            skipped = f"; not restored: {', '.join(str(s['name']) for s in reply.skipped)}" if reply.skipped else ""
            sink.emit(Notice(f"restored {len(reply.restored)} variable(s) of the earlier run: {names}{skipped}"))
        self._restored = reply

    def history(self) -> list[dict[str, str]] | None:
        return self._history(self._restored) if self._history is not None else None

    async def keep(self, worker: WorkerProcess, sink: Sink) -> None:
        """Have the worker pickle its variables into the state file; a failure is one warning."""
        if self._out_fd is None or self._target is None or self._out_tmp is None or not worker.started:
            return  # nothing to keep into, or no worker to ask (it failed to start, or no cell ran before the end)
        try:
            os.ftruncate(self._out_fd, 0)
            request = StateRequest(fd=self._out_fd, max_bytes=MAX_STATE_BYTES, max_variable_bytes=MAX_VARIABLE_BYTES)
            reply = await worker.save_state(request, SAVE_TIMEOUT_S)
            size = os.fstat(self._out_fd).st_size
            if reply is None or size != reply.nbytes or size > MAX_STATE_BYTES + SLACK_BYTES:
                sink.emit(Notice("the REPL variables could not be kept for a follow-up (the worker did not save them)", level="warning"))
                return
            os.replace(self._out_tmp, self._target)
            self._out_tmp = None
        except OSError as exc:
            sink.emit(Notice(f"the REPL variables could not be kept for a follow-up ({exc.strerror or exc})", level="warning"))
            return
        sink.emit(StateSaved(self._target.name, size, list(reply.saved), list(reply.skipped)))
        if self._target.parent == runs_dir():  # prune only our own directory, never a user's
            prune_states(self._target.parent)

    def close(self) -> None:
        for fd in (self._out_fd, self._restore_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._out_fd = self._restore_fd = None
        if self._out_tmp is not None:
            Path(self._out_tmp).unlink(missing_ok=True)
            self._out_tmp = None


def open_state(path: Path) -> int | None:
    """A read-only descriptor of a state file, or None when it is gone or over the size limit."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    if os.fstat(fd).st_size > MAX_STATE_BYTES + SLACK_BYTES:
        os.close(fd)
        return None
    return fd


def prune_states(directory: Path) -> None:
    """Keep the newest KEEP_STATES state files, none whose trajectory is gone, and no stale temporary one."""
    with contextlib.suppress(OSError):
        states = sorted(directory.glob("*.state"), key=lambda p: p.stat().st_mtime, reverse=True)
        orphans = [path for path in states if not path.with_suffix(".jsonl").exists()]
        kept = [path for path in states if path not in orphans]
        for path in orphans + kept[KEEP_STATES:]:
            path.unlink(missing_ok=True)
        for path in directory.glob(f".*{TMP_SUFFIX}"):
            if time.time() - path.stat().st_mtime > STALE_S:
                path.unlink(missing_ok=True)
