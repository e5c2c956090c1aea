"""The trajectory file: one JSON object per line, flushed as it happens.

Written line by line, so a run that is interrupted or crashes still leaves what happened up to
that point. It never stores the whole `context`: no event carries the input's text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from rlm_cli.events import TRAJECTORY_TYPES, Event


class TrajectoryWriter:
    """A sink writing trajectory records to `path`; `clock` (seconds) is a seam for tests."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = open(path, "w", encoding="utf-8")
        self._clock = clock
        self._t0 = clock()

    def emit(self, event: Event) -> None:
        if self._file is None or event.type not in TRAJECTORY_TYPES:
            return
        record = {"type": event.type, "t": round(self._clock() - self._t0, 4), **event.record()}
        self._file.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
