"""The plainest sink: notices (skipped files, isolation warnings) as lines on a stream.

What `rlm repl` shows of the run machinery; a person there wants the REPL, not a trace.
"""

from __future__ import annotations

from typing import TextIO

from rlm_cli.events import Event, Notice


class NoticeLines:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def emit(self, event: Event) -> None:
        if isinstance(event, Notice):
            self._stream.write(("warning: " if event.level == "warning" else "") + event.message + "\n")
