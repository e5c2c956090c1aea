"""What happens during a run, as small frozen events the engine emits and sinks render.

The engine never prints. The live Rich view, the plain-text view and the trajectory file are all
`Sink`s; a test can be one too. Events whose `type` is in `TRAJECTORY_TYPES` are written to the
trajectory file (DESIGN.md); the others (`cell_start`, `subcall_start`, `notice`) exist for live
display, and notices are kept in the trajectory too so faults and skips are on record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Protocol


@dataclass(frozen=True)
class Event:
    type: ClassVar[str]

    def record(self) -> dict[str, Any]:
        return {"type": self.type, **asdict(self)}


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None

    def __add__(self, other: Usage) -> Usage:
        cost = None if self.cost_usd is None and other.cost_usd is None else (self.cost_usd or 0) + (other.cost_usd or 0)
        return Usage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens, cost)


@dataclass(frozen=True)
class RunStart(Event):
    type: ClassVar[str] = "run_start"
    sources: list[str]
    model: str
    sub_model: str
    limits: dict[str, Any]
    version: str
    context: dict[str, Any]  # describe(): sizes and paths, never the text
    question: str
    depth: int = 0


@dataclass(frozen=True)
class Notice(Event):
    """Something the user should know that is not an error: skipped files, faults, restarts."""

    type: ClassVar[str] = "notice"
    message: str
    level: str = "info"  # info | warning


@dataclass(frozen=True)
class RootResponse(Event):
    type: ClassVar[str] = "root_response"
    iteration: int
    text: str
    usage: Usage
    duration_s: float
    faults: tuple[str, ...] = ()
    depth: int = 0
    parent: int | None = None  # the `subcall` id of the sub-RLM this turn belongs to (None at depth 0)


@dataclass(frozen=True)
class CellStart(Event):
    type: ClassVar[str] = "cell_start"
    cell_id: int
    iteration: int
    code: str
    depth: int = 0
    parent: int | None = None


@dataclass(frozen=True)
class Cell(Event):
    type: ClassVar[str] = "cell"
    cell_id: int
    iteration: int
    code: str
    output: str  # as shown to the model
    output_chars: int  # the full length the cell printed
    duration_s: float
    error: str | None
    final: bool = False
    truncated: bool = False  # the model was shown only the head and tail
    depth: int = 0
    parent: int | None = None


@dataclass(frozen=True)
class SubcallStart(Event):
    type: ClassVar[str] = "subcall_start"
    id: int
    cell_id: int | None
    depth: int
    model: str
    prompt_chars: int
    kind: str = "llm"  # llm: one model call; rlm: a recursive sub-RLM with its own REPL
    parent: int | None = None


@dataclass(frozen=True)
class Subcall(Event):
    type: ClassVar[str] = "subcall"
    id: int
    cell_id: int | None  # the cell that made it, within the loop at `depth - 1`
    depth: int
    model: str
    prompt_chars: int
    response_chars: int
    usage: Usage  # a sub-RLM's usage is its whole subtree: its own turns and every call under it
    duration_s: float
    cost: float | None = None  # USD, None where the model has no known price
    cached: bool = False
    error: str | None = None
    faults: tuple[str, ...] = ()
    kind: str = "llm"
    parent: int | None = None  # the sub-RLM whose cell made this call (None at the top)


@dataclass(frozen=True)
class Final(Event):
    type: ClassVar[str] = "final"
    answer: str | None
    status: str  # ok | limit | error
    depth: int = 0


@dataclass(frozen=True)
class RunEnd(Event):
    type: ClassVar[str] = "run_end"
    status: str
    iterations: int
    subcalls: int
    usage: Usage
    duration_s: float
    error: str | None = None
    depth: int = 0


TRAJECTORY_TYPES = frozenset({"run_start", "notice", "root_response", "cell", "subcall", "final", "run_end"})


class Sink(Protocol):
    def emit(self, event: Event) -> None: ...


class Fanout:
    """Hands every event to several sinks, in order."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = list(sinks)

    def emit(self, event: Event) -> None:
        for sink in self.sinks:
            sink.emit(event)
