"""A scripted OpenAI-compatible chat-completions server for tests.

The test suite drives the real ``rlm`` CLI (and litellm under it) against this server instead of
a real provider. It listens on 127.0.0.1 on a free port, in a background thread, using only the
standard library; every request gets its own daemon thread, so dozens of requests can be in
flight at once, each sleeping for injected latency.

Requests whose ``model`` equals ``root_model`` ("root") are ROOT requests and are answered from a
script, in arrival order: a string is the reply's content; a callable gets the request's messages
and returns the content (``None`` means JSON null) or a Fault. Every other model is a SUB
request, answered by ``sub_answer(prompt)`` where the prompt is the last user message's text.
An exhausted root script answers HTTP 400 "scripted server: root script exhausted".
Misbehaviour is injected with :class:`Fault` objects: HTTP errors (with ``Retry-After``), empty
or null content, a hang before answering, a dropped connection, a truncated reply, a reply
trickled a byte at a time, a body that is not JSON. ``max_sub_in_flight=N`` makes the server
answer 429 at once to a sub request arriving while N are being served, as a provider's
concurrency limit does (``rejected()`` counts them).

Usage::

    with ScriptedServer(["```repl\\nFINAL(len(context))\\n```"]) as server:
        server.fail("sub", 429, count=2, retry_after=0.1)
        run_cli("ask", "file.txt", "q?", *server.cli_args())
        assert len(server.root_requests()) == 1

An exception raised by a callable from the script (say, a failed ``assert`` on the messages the
tool sent) is answered with HTTP 400 and re-raised by ``__exit__``, so the test fails on it.
"""

from __future__ import annotations

import itertools
import json
import math
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Kind = Literal["root", "sub"]
Messages = list[dict[str, Any]]


class _Normal:
    """Marker: the reply the request would have had without the fault."""

    def __repr__(self) -> str:
        return "NORMAL"


NORMAL: Any = _Normal()


@dataclass(frozen=True)
class Fault:
    """One request's misbehaviour; build it with the class methods.

    A fault comes from ``inject``/``fail`` (queued per kind, used before the script), from the
    root script itself, or from ``sub_answer``/a root callable returning one. A fault that still
    answers with the normal content (``hang(s)``, ``truncated()``) takes that content as usual:
    the next root script entry, or ``sub_answer(prompt)`` (for a fault that ``sub_answer``
    returned: ``default_sub_answer(prompt)``). A fault that does not answer (``http``, ``drop``)
    or brings its own content (``empty``) takes nothing else, so a queued HTTP error followed by
    the client's retry still gets the scripted reply.
    """

    status: int = 200
    retry_after: float | None = None
    body: str | None = None
    delay: float = 0.0
    disconnect: bool = False
    content: Any = NORMAL  # str, None (JSON null) or NORMAL
    finish_reason: str = "stop"
    truncate: bool = False
    no_choices: bool = False
    trickle: float = 0.0  # seconds between the bytes of the reply's body

    @classmethod
    def trickled(cls, seconds_per_byte: float) -> Fault:
        """Answer normally, but send the body one byte every ``seconds_per_byte``: no gap is
        long, the whole reply takes forever."""
        return cls(trickle=seconds_per_byte)

    @classmethod
    def invalid_json(cls, body: str = '{"id": "chatcmpl-cut", "choices": [') -> Fault:
        """A 200 reply whose body is not JSON."""
        return cls(body=body, content=None)

    @classmethod
    def http(cls, status: int, retry_after: float | None = None, body: str | None = None) -> Fault:
        """An HTTP error with OpenAI's error JSON (or ``body`` verbatim)."""
        return cls(status=status, retry_after=retry_after, body=body)

    @classmethod
    def empty(cls) -> Fault:
        """A 200 reply whose content is the empty string."""
        return cls(content="")

    @classmethod
    def empty_choices(cls) -> Fault:
        """A 200 reply whose ``choices`` list is empty."""
        return cls(content=None, no_choices=True)

    @classmethod
    def null_content(cls) -> Fault:
        """A 200 reply whose content is JSON null."""
        return cls(content=None)

    @classmethod
    def hang(cls, seconds: float, content: Any = NORMAL) -> Fault:
        """Sleep ``seconds`` (on top of latency), then answer normally (or with ``content``)."""
        return cls(delay=seconds, content=content)

    @classmethod
    def drop(cls, after: float = 0.0) -> Fault:
        """Close the connection without answering, after ``after`` seconds."""
        return cls(delay=after, disconnect=True)

    @classmethod
    def truncated(cls, content: str | None = None) -> Fault:
        """``finish_reason: "length"``; content is ``content`` or the first half of the normal reply."""
        if content is None:
            return cls(finish_reason="length", truncate=True)
        return cls(content=content, finish_reason="length")

    @property
    def needs_normal(self) -> bool:
        """Whether answering this fault consumes the normal reply."""
        return self.status < 400 and not self.disconnect and self.content is NORMAL


RootReply = str | Fault | Callable[[Messages], "str | Fault | None"]
SubAnswer = Callable[[str], "str | Fault | None"]


@dataclass
class Recorded:
    """One request as the server saw it; times are ``time.monotonic()``."""

    kind: Kind
    model: str
    messages: Messages
    body: dict[str, Any]
    raw: bytes  # the request body exactly as it arrived
    path: str
    headers: dict[str, str]  # names lower-cased
    received_at: float
    finished_at: float | None = None
    status: int | None = None  # None: still in flight, or dropped without an answer
    content: str | None = None  # the reply's content, when one was sent
    fault: Fault | None = None

    @property
    def prompt(self) -> str:
        """The text of the last user message (a sub-call's prompt)."""
        return last_user_text(self.messages)


def message_text(message: dict[str, Any]) -> str:
    """The text of a message whose content is a string, null, or a list of parts."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def last_user_text(messages: Messages) -> str:
    """The text of the last ``user`` message, or "" when there is none."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message)
    return ""


def estimate_tokens(text: str) -> int:
    """The usual four-characters-a-token estimate."""
    return math.ceil(len(text) / 4)


def default_sub_answer(prompt: str) -> str:
    """A short deterministic answer derived from the prompt."""
    return f"ANSWER({prompt[:40]})"


@dataclass
class _Plan:
    """What one request will be answered with, decided when it arrives."""

    status: int = 200
    content: str | None = ""
    finish_reason: str = "stop"
    delay: float = 0.0
    disconnect: bool = False
    retry_after: float | None = None
    error_body: str | None = None
    fault: Fault | None = None


class ScriptedServer:
    """An OpenAI-compatible server answering from a script; a context manager that runs it.

    ``latency`` is added to every request (``root_latency``/``sub_latency`` override it per kind).
    Root callables run under the server's lock, in arrival order; ``sub_answer`` runs in the
    request's own thread, concurrently with others, so it must be thread-safe.
    """

    def __init__(
        self,
        root_replies: Sequence[RootReply] = (),
        sub_answer: SubAnswer | None = None,
        latency: float = 0.0,
        *,
        root_latency: float | None = None,
        sub_latency: float | None = None,
        root_model: str = "root",
        max_sub_in_flight: int | None = None,
        cap_retry_after: float | None = None,
    ) -> None:
        self.root_model = root_model
        self.max_sub_in_flight = max_sub_in_flight
        self.cap_retry_after = cap_retry_after
        self._rejected = 0
        self.sub_answer: SubAnswer = sub_answer or default_sub_answer
        self.latency: dict[Kind, float] = {
            "root": latency if root_latency is None else root_latency,
            "sub": latency if sub_latency is None else sub_latency,
        }
        self.errors: list[BaseException] = []
        self._script: deque[RootReply] = deque(root_replies)
        self._faults: dict[Kind, deque[Fault]] = {"root": deque(), "sub": deque()}
        self._requests: list[Recorded] = []
        self._in_flight: dict[Kind, int] = {"root": 0, "sub": 0}
        self._max_in_flight: dict[Kind, int] = {"root": 0, "sub": 0}
        self._lock = threading.RLock()  # script callables may read server.requests
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> ScriptedServer:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread."""
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.scripted = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"scripted-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests still sleeping are abandoned, not waited for."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.stop()
        if exc_type is None and self.errors:
            raise self.errors[0]

    @property
    def port(self) -> int:
        """The port the server listens on."""
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The API base to hand to litellm or ``--api-base``: ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def cli_args(self, root: str = "openai/root", sub: str = "openai/sub") -> list[str]:
        """``rlm ask`` options that point root and sub models at this server."""
        return ["--api-base", self.url, "--model", root, "--sub-model", sub]

    # -- scripting ---------------------------------------------------------------------------

    def add_root_replies(self, *replies: RootReply) -> None:
        """Append entries to the root script."""
        with self._lock:
            self._script.extend(replies)

    def inject(self, kind: Kind, fault: Fault, count: int = 1) -> None:
        """Apply ``fault`` to the next ``count`` requests of ``kind``, before the script."""
        with self._lock:
            self._faults[kind].extend([fault] * count)

    def fail(
        self,
        kind: Kind,
        status: int,
        count: int = 1,
        retry_after: float | None = None,
        body: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests of ``kind`` with HTTP ``status``."""
        self.inject(kind, Fault.http(status, retry_after, body), count)

    @property
    def remaining_root_replies(self) -> int:
        """How many root script entries no request has consumed yet."""
        with self._lock:
            return len(self._script)

    # -- observation -------------------------------------------------------------------------

    @property
    def requests(self) -> list[Recorded]:
        """Every chat-completions request so far, in arrival order (a copy of the list)."""
        with self._lock:
            return list(self._requests)

    def root_requests(self) -> list[Recorded]:
        """The ROOT requests, in arrival order."""
        return [r for r in self.requests if r.kind == "root"]

    def sub_requests(self) -> list[Recorded]:
        """The SUB requests, in arrival order."""
        return [r for r in self.requests if r.kind == "sub"]

    def max_in_flight(self, kind: Kind = "sub") -> int:
        """The most requests of ``kind`` that were being served at the same moment."""
        with self._lock:
            return self._max_in_flight[kind]

    # -- serving (called from handler threads) -----------------------------------------------

    def rejected(self) -> int:
        """How many sub requests the concurrency cap answered with 429."""
        with self._lock:
            return self._rejected

    def _begin(self, record: Recorded) -> _Plan | None:
        """Record an arriving request and decide its answer, under the lock (arrival order);
        None: refused by the concurrency cap (not recorded as a request)."""
        with self._lock:
            cap = self.max_sub_in_flight
            if record.kind == "sub" and cap is not None and self._in_flight["sub"] >= cap:
                self._rejected += 1
                return None
            self._requests.append(record)
            self._in_flight[record.kind] += 1
            self._max_in_flight[record.kind] = max(
                self._max_in_flight[record.kind], self._in_flight[record.kind]
            )
            queued = self._faults[record.kind]
            fault = queued.popleft() if queued else None
            if record.kind == "root":  # the script is consumed in arrival order
                plan = self._plan(record, fault, lambda: self._normal(record))
        if record.kind == "sub":  # outside the lock: a slow sub_answer must not serialise calls
            plan = self._plan(record, fault, lambda: self._normal(record))
        record.fault = plan.fault
        return plan

    def _finish(self, record: Recorded, status: int | None, content: str | None) -> None:
        with self._lock:
            self._in_flight[record.kind] -= 1
            record.finished_at = time.monotonic()
            record.status = status
            record.content = content

    def _normal(self, record: Recorded) -> str | Fault | None:
        """The unfaulted reply: the next root script entry, or ``sub_answer(prompt)``."""
        if record.kind == "sub":
            return self._call(self.sub_answer, record.prompt)
        if not self._script:
            return Fault.http(400, body=_error_json("scripted server: root script exhausted", 400))
        entry = self._script.popleft()
        if isinstance(entry, str | Fault):
            return entry
        return self._call(entry, record.messages)

    def _call(self, fn: Callable[[Any], str | Fault | None], arg: Any) -> str | Fault | None:
        """Run a test's callable; its exception becomes a loud 400 and is kept for ``__exit__``."""
        try:
            return fn(arg)
        except Exception as exc:  # noqa: BLE001 - handed back to the test by __exit__
            self.errors.append(exc)
            message = f"scripted server: callable raised {type(exc).__name__}: {exc}"
            return Fault.http(400, body=_error_json(message, 400))

    def _plan(
        self, record: Recorded, fault: Fault | None, normal: Callable[[], str | Fault | None]
    ) -> _Plan:
        """Turn a fault (or none) plus, when it needs one, the normal reply into an answer."""
        if fault is not None and not fault.needs_normal:
            return _Plan(status=fault.status, content=fault.content, finish_reason=fault.finish_reason,
                         delay=fault.delay, disconnect=fault.disconnect,
                         retry_after=fault.retry_after, error_body=fault.body, fault=fault)
        reply = normal()
        if isinstance(reply, Fault):
            # A fault from the script or from sub_answer. Its own normal reply is the next
            # script entry (root) or the default answer (sub: sub_answer would loop).
            if record.kind == "sub":
                plan = self._plan(record, reply, lambda: default_sub_answer(record.prompt))
            else:
                plan = self._plan(record, reply, normal)
            plan.delay += fault.delay if fault is not None else 0.0
            return plan
        if fault is None:
            return _Plan(content=reply)
        if fault.truncate and reply is not None:
            reply = reply[: len(reply) // 2]
        return _Plan(content=reply, finish_reason=fault.finish_reason, delay=fault.delay, fault=fault)

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless the server stops first; True when it is stopping."""
        if seconds > 0:
            return self._stopping.wait(seconds)
        return self._stopping.is_set()

    def _next_id(self) -> str:
        return f"chatcmpl-scripted-{next(self._ids)}"


def _error_json(message: str, status: int) -> str:
    kinds = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
             429: "rate_limit_exceeded"}
    error_type = kinds.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return json.dumps({"error": {"message": message, "type": error_type, "param": None,
                                 "code": str(status)}})


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256  # 64+ clients connect at once; the default backlog of 5 stalls them
    scripted: ScriptedServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that hung up; report anything else."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError) or (
            isinstance(exc, OSError) and self.scripted._stopping.is_set()
        ):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The headers and the body leave in two writes: with Nagle's algorithm the body waits for
    # the client's delayed ACK of the headers, 40 ms on Linux, as no real provider's server does.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        """No request log on stderr."""

    # -- routes ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path in ("/health", "/v1/health"):
            self._send_json(200, {"status": "ok"})
        elif path in ("/v1/models", "/models"):
            scripted = self.server.scripted
            models = [scripted.root_model, "sub"]
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "scripted"} for m in models]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._send_raw(404, _error_json(f"scripted server: no route GET {self.path}", 404))

    def do_POST(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        raw = self._read_body()
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self._send_raw(404, _error_json(f"scripted server: no route POST {self.path}", 404))
            return
        try:
            body = json.loads(raw or b"null")
            messages = body["messages"]
            model = str(body["model"])
        except (ValueError, KeyError, TypeError) as exc:
            self._send_raw(400, _error_json(f"scripted server: bad request body: {exc}", 400))
            return
        self._chat(path, body, model, messages, raw)

    def _chat(self, path: str, body: dict[str, Any], model: str, messages: Messages, raw: bytes) -> None:
        scripted = self.server.scripted
        kind: Kind = "root" if model == scripted.root_model else "sub"
        record = Recorded(kind=kind, model=model, messages=messages, body=body, raw=raw, path=path,
                          headers={k.lower(): v for k, v in self.headers.items()}, received_at=time.monotonic())
        plan = scripted._begin(record)
        if plan is None:
            self._send_raw(429, _error_json("scripted server: too many requests in flight", 429),
                           retry_after=scripted.cap_retry_after)
            return
        finished = False

        def finish(status: int | None, content: str | None = None) -> None:
            # Bookkeeping happens before the reply leaves: once a client holds its answer, the
            # record is final and the request no longer counts as in flight.
            nonlocal finished
            finished = True
            scripted._finish(record, status, content)

        try:
            if scripted._sleep(scripted.latency[kind] + plan.delay) or plan.disconnect:
                finish(None)
                self._drop()
            elif plan.status < 400 and plan.error_body is not None:
                finish(plan.status)
                self._send_raw(plan.status, plan.error_body)
            elif plan.status >= 400:
                finish(plan.status)
                self._send_raw(plan.status, plan.error_body or _error_json(
                    f"scripted server: injected HTTP {plan.status}", plan.status),
                    retry_after=plan.retry_after)
            else:
                completion = _completion(scripted._next_id(), model, messages, plan)
                finish(200, plan.content)
                if body.get("stream"):
                    self._send_stream(completion, body)
                elif plan.fault is not None and plan.fault.trickle:
                    self._send_trickle(json.dumps(completion).encode(), plan.fault.trickle)
                else:
                    self._send_json(200, completion)
        finally:
            if not finished:
                finish(None)

    # -- wire --------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        self._send_raw(status, json.dumps(payload))

    def _send_raw(self, status: int, text: str, retry_after: float | None = None) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if retry_after is not None:
            self.send_header("Retry-After", f"{retry_after:g}")
        self.end_headers()
        self.wfile.write(data)

    def _send_trickle(self, data: bytes, interval: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        for i in range(len(data)):
            if self.server.scripted._sleep(interval):
                return
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()

    def _send_stream(self, completion: dict[str, Any], body: dict[str, Any]) -> None:
        self.close_connection = True  # no chunked encoding: the end of the stream is the close
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for chunk in _stream_chunks(completion, body):
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _completion(completion_id: str, model: str, messages: Messages, plan: _Plan) -> dict[str, Any]:
    prompt_tokens = sum(estimate_tokens(message_text(m)) for m in messages)
    completion_tokens = estimate_tokens(plan.content or "")
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [] if plan.fault is not None and plan.fault.no_choices else [{
            "index": 0,
            "message": {"role": "assistant", "content": plan.content},
            "finish_reason": plan.finish_reason,
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _stream_chunks(completion: dict[str, Any], body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The completion as ``chat.completion.chunk`` objects: role, content, finish, usage."""
    base = {"id": completion["id"], "object": "chat.completion.chunk",
            "created": completion["created"], "model": completion["model"]}
    choice = completion["choices"][0]
    content = choice["message"]["content"]
    yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                "finish_reason": None}]}
    if content:
        yield {**base, "choices": [{"index": 0, "delta": {"content": content},
                                    "finish_reason": None}]}
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]}
    if (body.get("stream_options") or {}).get("include_usage"):
        yield {**base, "choices": [], "usage": completion["usage"]}


def scripted_server_fixture() -> Iterator[Callable[..., ScriptedServer]]:
    """Generator behind the ``scripted_server`` pytest fixture: a factory of started servers.

    Each call ``make(root_replies, sub_answer=..., latency=...)`` starts a server; all are
    stopped at teardown, and an exception from a script callable fails the test there.
    """
    servers: list[ScriptedServer] = []

    def make(*args: Any, **kwargs: Any) -> ScriptedServer:
        server = ScriptedServer(*args, **kwargs).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
    for server in servers:
        if server.errors:
            raise server.errors[0]
