"""The wire format between the host and the worker process.

Every message is a JSON object framed by a 4-byte big-endian length. JSON, not pickle: the worker
runs code written by a model that read untrusted text, so nothing it sends may be able to run
code in the host. Each message carries `type` and the protocol version `v`.

    host -> worker                         worker -> host
    init_request     {context_fd}          init_reply     {isolation}
    execute_request  {cell_id, code,       execute_reply  {cell_id, output, output_chars,
                      max_output_chars}                    error, final, final_json, sources,
                                                           restored, duration_s}
    llm_reply        {req_id, results}     llm_request    {req_id, prompts, model,
                                                            recursive, contexts}
    state_request    {fd, max_bytes,       state_reply    {saved, skipped, nbytes}
                      max_variable_bytes}
    restore_request  {fd}                  restore_reply  {restored, skipped, error}
    shutdown_request {}

While a cell runs, the worker may send any number of `llm_request`s; each blocks the cell until
the host answers with the `llm_reply` of the same `req_id`. A result is `{"text": ...}` or
`{"error": ...}`, one per prompt, in order. An `llm_request` carries the `cell_id` of the cell it
was made for; the host refuses (with an error result per prompt) any other cell's request.

`decode` believes nothing: a body must be JSON (nested too deep for the parser's recursion limit,
it is refused like any other malformed body), of a known type and version, with
every field of the declared type (`bool` is not an `int`), no list or dict longer than
MAX_BATCH items (`restored` and `isolation`: MAX_NAMES), and `contexts`, when present, one per
prompt. Anything else is a ProtocolError; the host answers one from a live worker by stopping
and restarting it and telling the model, never by failing the run.

Version 2: the context travels as an inherited descriptor (`context_fd`), `init_reply` no
longer describes the context, `llm_request` carries `cell_id`. Version 3: `state_request` and
`restore_request` (worker.state): the worker pickles its variables into, or restores them from,
a file the host opened and the worker inherited (`fd`); the host never unpickles anything.
"""

from __future__ import annotations

import json
import socket
import struct
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Union

VERSION = 3
_HEADER = struct.Struct(">I")
MAX_MESSAGE_BYTES = 1 << 31  # a FINAL_VAR of a big value still fits; a corrupt header does not
MAX_BATCH = 10_000  # prompts in one llm_request; items in any list of a message
MAX_NAMES = 64  # items in `restored` and `isolation`


class ProtocolError(Exception):
    """The peer sent something that is not a message of this protocol."""


@dataclass(frozen=True)
class Message:
    type: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "v": VERSION, **asdict(self)}


@dataclass(frozen=True)
class InitRequest(Message):
    type: ClassVar[str] = "init_request"
    context_fd: int  # the inherited descriptor holding the hand-off blob (worker.handoff)


@dataclass(frozen=True)
class InitReply(Message):
    type: ClassVar[str] = "init_reply"
    isolation: dict[str, str] = field(default_factory=dict)  # sandbox.confine's report


@dataclass(frozen=True)
class ExecuteRequest(Message):
    type: ClassVar[str] = "execute_request"
    cell_id: int
    code: str
    max_output_chars: int


@dataclass(frozen=True)
class ExecuteReply(Message):
    type: ClassVar[str] = "execute_reply"
    cell_id: int
    output: str  # as shown to the model: head and tail kept when longer than the cap
    output_chars: int  # the true length of everything the cell printed
    error: str | None  # exception type name, e.g. "ZeroDivisionError", or "KeyboardInterrupt"
    final: str | None  # the answer, when the cell called FINAL or FINAL_VAR
    restored: list[str] = field(default_factory=list)  # reserved names the cell overwrote
    duration_s: float = 0.0
    final_json: str | None = None  # a dict or list answer, as JSON text (for --schema)
    sources: list[str | dict[str, str | int]] | None = None  # FINAL(answer, sources=[...]): "path:line quote" or {path, line, quote}


@dataclass(frozen=True)
class LlmRequest(Message):
    type: ClassVar[str] = "llm_request"
    req_id: int
    prompts: list[str]
    model: str | None = None
    recursive: bool = False  # from rlm_query: a sub-RLM while depth allows
    contexts: list[str | None] | None = None  # rlm_query's context argument, one per prompt
    cell_id: int | None = None  # the cell that asks; the host serves only the running cell


@dataclass(frozen=True)
class LlmReply(Message):
    type: ClassVar[str] = "llm_reply"
    req_id: int
    results: list[dict[str, str]]


@dataclass(frozen=True)
class StateRequest(Message):
    """Pickle the user's variables into the inherited file `fd` (from offset 0), within the limits."""

    type: ClassVar[str] = "state_request"
    fd: int
    max_bytes: int
    max_variable_bytes: int


Variable = dict[str, str | int]  # {"name", "type", "nbytes"} of a saved or restored variable
Skipped = dict[str, str]  # {"name", "why"} of one that was not


@dataclass(frozen=True)
class StateReply(Message):
    type: ClassVar[str] = "state_reply"
    saved: list[Variable]
    skipped: list[Skipped]
    nbytes: int  # what was written to the file


@dataclass(frozen=True)
class RestoreRequest(Message):
    """Restore the variables an earlier run's worker pickled, from the inherited file `fd`."""

    type: ClassVar[str] = "restore_request"
    fd: int


@dataclass(frozen=True)
class RestoreReply(Message):
    type: ClassVar[str] = "restore_reply"
    restored: list[Variable]
    skipped: list[Skipped]
    error: str | None = None  # the file as a whole could not be read (then nothing was restored)


@dataclass(frozen=True)
class ShutdownRequest(Message):
    type: ClassVar[str] = "shutdown_request"


_TYPES: dict[str, type[Message]] = {
    cls.type: cls
    for cls in (
        InitRequest, InitReply, ExecuteRequest, ExecuteReply, LlmRequest, LlmReply,
        StateRequest, StateReply, RestoreRequest, RestoreReply, ShutdownRequest,
    )
}


# Each message class's fields and their declared types, resolved once.
_FIELD_TYPES: dict[type[Message], dict[str, Any]] = {
    cls: {f.name: typing.get_type_hints(cls)[f.name] for f in fields(cls)} for cls in _TYPES.values()
}


def encode(message: Message) -> bytes:
    body = json.dumps(message.to_dict(), ensure_ascii=False).encode("utf-8", "surrogatepass")
    return _HEADER.pack(len(body)) + body


def decode(body: bytes) -> Message:
    """The message in `body`, checked against its class; ProtocolError for anything else."""
    try:
        data = json.loads(body.decode("utf-8", "surrogatepass"))
        cls = _TYPES[data.pop("type")]
        version = data.pop("v")
    except (ValueError, KeyError, AttributeError, TypeError, RecursionError) as exc:
        raise ProtocolError(f"malformed message: {type(exc).__name__}") from exc
    if version != VERSION:
        raise ProtocolError(f"protocol version {version!r:.20}, expected {VERSION}")
    hints = _FIELD_TYPES[cls]
    values = {k: v for k, v in data.items() if k in hints}
    for name, value in values.items():
        limit = MAX_NAMES if name in ("restored", "isolation") else MAX_BATCH
        if not _conforms(value, hints[name], limit):
            raise ProtocolError(f"malformed {cls.type}: {name} is not {_shown(hints[name], limit)}")
    try:
        message = cls(**values)
    except TypeError as exc:
        raise ProtocolError(f"malformed {cls.type}: {exc}") from exc
    if isinstance(message, LlmRequest) and message.contexts is not None and len(message.contexts) != len(message.prompts):
        raise ProtocolError("malformed llm_request: contexts must hold one entry per prompt")
    return message


def _conforms(value: Any, hint: Any, limit: int) -> bool:
    """Whether the decoded JSON `value` is of the declared type `hint`."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_conforms(value, arg, limit) for arg in typing.get_args(hint))
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and len(value) <= limit and all(_conforms(v, item, limit) for v in value)
    if origin is dict:
        _, item = typing.get_args(hint)
        return isinstance(value, dict) and len(value) <= limit and all(_conforms(v, item, limit) for v in value.values())
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(hint, type) and isinstance(value, hint)


def _shown(hint: Any, limit: int) -> str:
    if isinstance(hint, type):
        return hint.__name__
    text = str(hint).replace("typing.", "")
    return f"{text} of at most {limit:,} items" if "[" in text else text


def frame_length(header: bytes) -> int:
    (length,) = _HEADER.unpack(header)
    if length > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {length} bytes is over the limit")
    return length


HEADER_SIZE = _HEADER.size


class BlockingChannel:
    """The worker's end: plain blocking socket I/O, since the worker runs one cell at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def send(self, message: Message) -> None:
        self._sock.sendall(encode(message))

    def receive(self) -> Message:
        length = frame_length(self._read_exactly(HEADER_SIZE))
        return decode(self._read_exactly(length))

    def _read_exactly(self, n: int) -> bytes:
        view = bytearray(n)
        got = 0
        while got < n:
            read = self._sock.recv_into(memoryview(view)[got:], n - got)
            if read == 0:
                raise EOFError("host closed the channel")
            got += read
        return bytes(view)
