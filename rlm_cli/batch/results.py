"""The results file of `rlm batch`: one JSON object a line, appended as each task ends.

A line is written and flushed the moment its task ends, so Ctrl-C, a crash or a killed driver
leave every finished task on record. Reading the file back is what makes a batch resumable:
a task whose last record is `ok` or `limit` is done and is not run again; one whose last record
is `error` is run again (errors are mostly transient — a provider down, a source not yet there —
and a rerun is how a user retries them). After a rerun, the file is compacted so each id keeps
only its last record.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rlm_cli.api import AskResult
from rlm_cli.errors import InputError, LimitError, ModelError, RlmError, UsageError, WorkerError
from rlm_cli.events import Usage

DONE = frozenset({"ok", "limit"})

# What kind of failure an error was; the CLI turns the kinds of a batch into its exit code.
_KINDS: tuple[tuple[type[RlmError], str], ...] = (
    (UsageError, "usage"),
    (InputError, "input"),
    (ModelError, "model"),
    (LimitError, "limit"),
    (WorkerError, "worker"),
)


def error_kind(exc: BaseException) -> str:
    for cls, kind in _KINDS:
        if isinstance(exc, cls):
            return kind
    return "internal"


@dataclass(frozen=True)
class TaskResult:
    """How one task ended: an `AskResult` with the task's id, and the kind of error, if any."""

    id: str
    status: str  # ok | limit | error
    answer: str | None = None
    model: str | None = None
    sub_model: str | None = None
    iterations: int = 0
    subcalls: int = 0
    usage: Usage = Usage()
    duration_s: float = 0.0
    trace_file: str | None = None
    error: str | None = None
    error_kind: str | None = None  # usage | input | model | worker | internal; None unless status is error

    @classmethod
    def of(cls, task_id: str, result: AskResult, exc: BaseException | None = None) -> TaskResult:
        data = result.as_json()
        return cls(
            id=task_id,
            status=result.status,
            answer=result.answer,
            model=result.model,
            sub_model=result.sub_model,
            iterations=result.iterations,
            subcalls=result.subcalls,
            usage=result.usage,
            duration_s=data["duration_s"],
            trace_file=data["trace_file"],
            error=result.error if exc is None else str(exc),
            error_kind=None if exc is None else error_kind(exc),
        )

    @classmethod
    def failed(cls, task_id: str, exc: BaseException, duration_s: float = 0.0) -> TaskResult:
        """A task that ended in an error before a run had anything to say (`exc.result` is None)."""
        if isinstance(exc, RlmError):
            message = str(exc)
        else:  # a bug: the message says so, and what it was
            message = f"internal error: {type(exc).__name__}: {exc}"
        return cls(task_id, "error", duration_s=round(duration_s, 3), error=message, error_kind=error_kind(exc))

    @property
    def cost(self) -> float | None:
        return self.usage.cost_usd

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "answer": self.answer,
            "model": self.model,
            "sub_model": self.sub_model,
            "iterations": self.iterations,
            "subcalls": self.subcalls,
            "usage": {
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
                "cost_usd": self.usage.cost_usd,
            },
            "cost_usd": self.usage.cost_usd,
            "duration_s": self.duration_s,
            "trace_file": self.trace_file,
            "error": self.error,
            "error_kind": self.error_kind,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskResult:
        usage = data.get("usage") or {}
        return cls(
            id=str(data["id"]),
            status=str(data["status"]),
            answer=data.get("answer"),
            model=data.get("model"),
            sub_model=data.get("sub_model"),
            iterations=int(data.get("iterations") or 0),
            subcalls=int(data.get("subcalls") or 0),
            usage=Usage(int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0), usage.get("cost_usd")),
            duration_s=float(data.get("duration_s") or 0.0),
            trace_file=data.get("trace_file"),
            error=data.get("error"),
            error_kind=data.get("error_kind"),
        )


class ResultsFile:
    """The results of earlier runs of the batch, and the file new ones are appended to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.previous: dict[str, TaskResult] = {}  # the last record of each id, in first-seen order
        self.unreadable = 0  # lines that are not records (a line cut short by a kill)
        self._records = 0
        self._file: IO[str] | None = None
        if path.exists():
            self._read()

    def _read(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise UsageError(f"cannot read --output {self.path}: {exc.strerror or exc}") from exc
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                record = TaskResult.from_json(json.loads(line))
            except (ValueError, KeyError, TypeError, AttributeError):
                self.unreadable += 1
                continue
            self._records += 1
            self.previous[record.id] = record

    def done(self, task_id: str) -> TaskResult | None:
        """The earlier result that makes a task done (ok or limit), if there is one."""
        record = self.previous.get(task_id)
        return record if record is not None and record.status in DONE else None

    def open(self) -> None:
        """Open for appending; a last line cut short by a kill is ended, so it stays one bad line."""
        try:
            self._file = open(self.path, "a+", encoding="utf-8")
            self._file.seek(0, os.SEEK_END)
            if self._file.tell() > 0:
                self._file.seek(self._file.tell() - 1)
                if self._file.read(1) != "\n":
                    self._file.write("\n")
        except OSError as exc:
            raise UsageError(f"cannot write --output {self.path}: {exc.strerror or exc}") from exc

    def append(self, result: TaskResult) -> None:
        assert self._file is not None, "open() first"
        self._file.write(json.dumps(result.as_json(), ensure_ascii=False) + "\n")
        self._file.flush()
        self._records += 1
        self.previous[result.id] = result

    def close(self) -> None:
        """Close, then rewrite the file with one record per id if a rerun left older ones."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._records > len(self.previous) or self.unreadable:
            self._compact()

    def _compact(self) -> None:
        temporary = self.path.with_name(self.path.name + ".tmp")
        with open(temporary, "w", encoding="utf-8") as f:
            for record in self.previous.values():
                f.write(json.dumps(record.as_json(), ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.path)
        self._records, self.unreadable = len(self.previous), 0
