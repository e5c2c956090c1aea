"""The trajectory file: one JSON object per line, flushed as it happens.

Written line by line, so a run that is interrupted or crashes still leaves what happened up to
that point. It never stores the whole `context`: no event carries the input's text. A write that
fails mid-run (a full disk) is one warning, and the run goes on without its trajectory.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from rlm_cli.errors import UsageError
from rlm_cli.events import TRAJECTORY_TYPES, Event
from rlm_cli.paths import runs_dir

KEEP_TRAJECTORIES = 50


def default_trace_path() -> Path:
    """A new file in the runs directory; a second run of one process within the same second
    (a script's asks, a follow-up) gets `-2`, `-3`..., never the earlier run's file."""
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    path = runs_dir() / f"{stem}.jsonl"
    n = 1
    while path.exists():
        n += 1
        path = path.with_name(f"{stem}-{n}.jsonl")
    return path


class TrajectoryWriter:
    """A sink writing trajectory records to `path`; `warn` hears about a failed write, once;
    `clock` (seconds) is a seam for tests."""

    def __init__(
        self, path: Path, warn: Callable[[str], None] = lambda message: None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = path
        self._warn = warn
        self._clock = clock
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[str] | None = open(path, "w", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write --trace {path}: {exc.strerror or exc}") from exc
        self._t0 = clock()
        if path.parent == runs_dir():  # prune only our own directory, never a user's
            _prune(path.parent)

    def emit(self, event: Event) -> None:
        if self._file is None or event.type not in TRAJECTORY_TYPES:
            return
        record = {"type": event.type, "t": round(self._clock() - self._t0, 4), **event.record()}
        try:
            self._file.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            self._file.flush()
        except OSError as exc:
            self.close()
            self._warn(f"the trajectory {self.path} could not be written ({exc.strerror or exc}); the run goes on without it")

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass  # a full disk again: already reported by emit
            self._file = None


def _prune(runs: Path) -> None:
    old = sorted(runs.glob("*.jsonl"), key=lambda p: p.stat().st_mtime)[:-KEEP_TRAJECTORIES]
    for stale in old:
        stale.unlink(missing_ok=True)
