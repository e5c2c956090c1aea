"""The wire format between the host and the worker process.

Every message is a JSON object framed by a 4-byte big-endian length. JSON, not pickle: the worker
runs code written by a model that read untrusted text, so nothing it sends may be able to run
code in the host. Each message carries `type` and the protocol version `v`.

    host -> worker                         worker -> host
    init_request     {context_file}        init_reply     {describe, isolation}
    execute_request  {cell_id, code,       execute_reply  {cell_id, output, output_chars,
                      max_output_chars}                    error, final, final_json, sources,
                                                           restored, duration_s}
    llm_reply        {req_id, results}     llm_request    {req_id, prompts, model,
                                                            recursive, contexts}
    shutdown_request {}

While a cell runs, the worker may send any number of `llm_request`s; each blocks the cell until
the host answers with the `llm_reply` of the same `req_id`. A result is `{"text": ...}` or
`{"error": ...}`, one per prompt, in order.
"""

from __future__ import annotations

import json
import socket
import struct
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

VERSION = 1
_HEADER = struct.Struct(">I")
MAX_MESSAGE_BYTES = 1 << 31  # a FINAL_VAR of a big value still fits; a corrupt header does not


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
    context_file: str
    code_index_file: str | None = None  # the parsed code graph, for code sources


@dataclass(frozen=True)
class InitReply(Message):
    type: ClassVar[str] = "init_reply"
    describe: dict[str, Any]
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
    sources: list[Any] | None = None  # FINAL(answer, sources=[...]): str or {path, line, quote}


@dataclass(frozen=True)
class LlmRequest(Message):
    type: ClassVar[str] = "llm_request"
    req_id: int
    prompts: list[str]
    model: str | None = None
    recursive: bool = False  # from rlm_query: a sub-RLM while depth allows
    contexts: list[str | None] | None = None  # rlm_query's context argument, one per prompt


@dataclass(frozen=True)
class LlmReply(Message):
    type: ClassVar[str] = "llm_reply"
    req_id: int
    results: list[dict[str, str]]


@dataclass(frozen=True)
class ShutdownRequest(Message):
    type: ClassVar[str] = "shutdown_request"


_TYPES: dict[str, type[Message]] = {
    cls.type: cls
    for cls in (InitRequest, InitReply, ExecuteRequest, ExecuteReply, LlmRequest, LlmReply, ShutdownRequest)
}


def encode(message: Message) -> bytes:
    body = json.dumps(message.to_dict(), ensure_ascii=False).encode("utf-8", "surrogatepass")
    return _HEADER.pack(len(body)) + body


def decode(body: bytes) -> Message:
    try:
        data = json.loads(body.decode("utf-8", "surrogatepass"))
        cls = _TYPES[data.pop("type")]
        version = data.pop("v")
    except (ValueError, KeyError, AttributeError, TypeError) as exc:
        raise ProtocolError(f"malformed message: {exc}") from exc
    if version != VERSION:
        raise ProtocolError(f"protocol version {version}, expected {VERSION}")
    names = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError as exc:
        raise ProtocolError(f"malformed {cls.type}: {exc}") from exc


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
