"""What happens during a run, as small frozen events the engine emits and sinks render.

The engine never prints. The live Rich view, the plain-text view and the trajectory file are all
`Sink`s; a test can be one too. Events whose `type` is in `TRAJECTORY_TYPES` are written to the
trajectory file (DESIGN.md); the others (`cell_start`, `subcall_start`, `notice`) exist for live
display, and notices are kept in the trajectory too so faults and skips are on record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, ClassVar, Protocol

from rlm_cli.sources.summary import ContextSummary


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
    context: ContextSummary  # sizes and paths, never the text; a JSON object in the trajectory
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
    # The head of the prompt and of the reply, for viewers (`rlm show`); never the whole context.
    prompt_preview: str = ""
    response_preview: str = ""
    split_into: int | None = None  # a prompt over the window, asked in this many pieces and combined


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


@dataclass(frozen=True)
class Redacted(Event):
    """Secrets replaced by markers before the context reached the worker: kind, path, line each, never a value."""

    type: ClassVar[str] = "redaction"
    summary: str
    findings: list[dict[str, Any]]


# -- runs: reading trajectories back (owned by the `runs` branch) -----------------------------


@dataclass(frozen=True)
class Message(Event):
    """A message the root model was sent (the system prompt, each user turn), as sent.

    With `root_response` texts these make the whole conversation, so a run can be exported as
    training data or continued without re-deriving its prompts.
    """

    type: ClassVar[str] = "message"
    role: str  # system | user (| assistant: the earlier turns a follow-up or a resumed run starts from)
    content: str
    iteration: int  # the turn this message is input to
    depth: int = 0
    parent: int | None = None  # as for RootResponse: the sub-RLM this conversation belongs to


@dataclass(frozen=True)
class Origin(Event):
    """How a run was asked for, so it can be followed up (`rlm ask -c`) or resumed (`rlm resume`).

    `request`: the sources (local paths made absolute), their filters, the model flags as given
    and the answer options; `digest`: a hash of the loaded files, to tell whether they changed
    since; `follows` / `resumes`: the trajectory of the run this one follows up or resumes.
    """

    type: ClassVar[str] = "origin"
    request: dict[str, Any]
    digest: str
    follows: str | None = None
    resumes: str | None = None


@dataclass(frozen=True)
class StateSaved(Event):
    """The REPL variables the run left, pickled by its worker into `file` (next to the trajectory)."""

    type: ClassVar[str] = "state"
    file: str
    nbytes: int
    saved: list[dict[str, Any]]  # {name, type, nbytes}
    skipped: list[dict[str, Any]]  # {name, why}


_BY_TYPE: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        RunStart, Notice, Redacted, RootResponse, CellStart, Cell, SubcallStart, Subcall, Final, RunEnd, Message, Origin, StateSaved,
    )
}


def from_record(record: Mapping[str, Any]) -> Event | None:
    """The event a trajectory record was written from; None for a type this version does not know.

    Fields the event lacks (`t`, ones a later version added) are dropped and missing optional ones
    take their defaults, so older and newer trajectories both read; a record missing a required
    field raises ValueError.
    """
    cls = _BY_TYPE.get(str(record.get("type")))
    if cls is None:
        return None
    values: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in record:
            if f.default is MISSING:
                raise ValueError(f"a {cls.type} record without `{f.name}`")
            continue
        value = record[f.name]
        if f.name == "usage" and isinstance(value, Mapping):
            value = Usage(int(value.get("input_tokens") or 0), int(value.get("output_tokens") or 0), value.get("cost_usd"))
        elif f.name == "faults" and isinstance(value, list):
            value = tuple(value)
        elif f.name == "context" and isinstance(value, Mapping):
            from rlm_cli.sources.summary import ContextSummary  # sources stay off events' import path

            value = ContextSummary.from_record(value)
        values[f.name] = value
    return cls(**values)


# -- end of the runs part -----------------------------------------------------------------------

TRAJECTORY_TYPES = frozenset(
    {"run_start", "notice", "redaction", "root_response", "cell", "subcall", "final", "run_end", "message", "origin", "state"}
)


class Sink(Protocol):
    def emit(self, event: Event) -> None: ...


class Fanout:
    """Hands every event to several sinks, in order."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = list(sinks)

    def emit(self, event: Event) -> None:
        for sink in self.sinks:
            sink.emit(event)
