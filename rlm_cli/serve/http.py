"""The HTTP side of `rlm serve`: the standard library's ThreadingHTTPServer on loopback.

Each request is handled in its own thread; replies are computed on one asyncio loop running in
a thread of its own, so every request shares one `ModelSession` (a local model starts once).
A streamed reply (`"stream": true`) opens the SSE stream at once, sends keep-alive comments
while the run goes on, and cancels the run if the client goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hmac
import ipaddress
import json
import threading
import time
import uuid
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

from rlm_cli.api import Limits, ModelFlags, Rlm
from rlm_cli.errors import UsageError
from rlm_cli.serve.chat import ChatError, ChatService, Reply

SERVED_MODEL = "rlm"
CLOSE_TIMEOUT_S = 5.0  # to close the direct path's connections at shutdown
KEEPALIVE_S = 10.0
MAX_BODY_BYTES = 1 << 30


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8700
    api_key: str | None = None  # required (as `Authorization: Bearer KEY`) off loopback
    threshold: int = 200_000  # characters of message text above which the RLM loop answers
    limits: Limits = field(default_factory=Limits)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(rlm: Rlm, flags: ModelFlags, options: ServeOptions, log: TextIO) -> None:
    """Listen until interrupted; a port in use or a public address without a key is a UsageError."""
    if not is_loopback(options.host) and not options.api_key:
        raise UsageError(f"listening on {options.host} needs --api-key (only loopback is served without one)")
    try:
        httpd = _Server((options.host, options.port), _Handler)
    except OSError as exc:
        why = "the port is in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise UsageError(f"cannot listen on {options.host}:{options.port}: {why}") from None
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, name="rlm-serve-loop", daemon=True)
    try:
        with rlm.models(flags) as models:
            httpd.service = ChatService(rlm, models, options.limits, options.threshold)
            httpd.loop, httpd.api_key, httpd.log = loop, options.api_key, log
            runner.start()
            host, port = str(httpd.server_address[0]), int(httpd.server_address[1])
            log.write(
                f"rlm serve: listening on http://{host}:{port}/v1 (root model {models.choice.model};"
                f" the RLM loop above {options.threshold:,} characters)\n"
            )
            log.flush()
            try:
                httpd.serve_forever(poll_interval=0.2)
            finally:
                with contextlib.suppress(FutureTimeout):
                    asyncio.run_coroutine_threadsafe(httpd.service.aclose(), loop).result(timeout=CLOSE_TIMEOUT_S)
    finally:
        httpd.server_close()
        loop.call_soon_threadsafe(loop.stop)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    service: ChatService
    loop: asyncio.AbstractEventLoop
    api_key: str | None
    log: TextIO


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base signature
        """One line per completion is written by `_log`; no default request log."""

    # -- routes -------------------------------------------------------------------------------

    def do_GET(self) -> None:
        if not self._authorised():
            return
        if self._path() == "/v1/models":
            data = [{"id": SERVED_MODEL, "object": "model", "created": 0, "owned_by": "rlm"}]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._send_error(404, f"no route GET {self.path}")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send_error(413, f"the request body is over {MAX_BODY_BYTES:,} bytes")
            return
        raw = self.rfile.read(length)
        if not self._authorised():
            return
        if self._path() != "/v1/chat/completions":
            self._send_error(404, f"no route POST {self.path}")
            return
        try:
            body = json.loads(raw or b"null")
        except ValueError as exc:
            self._send_error(400, f"the body is not JSON: {exc}")
            return
        started = time.monotonic()
        future = asyncio.run_coroutine_threadsafe(self.server.service.reply(body), self.server.loop)
        model = body.get("model") if isinstance(body, dict) else None
        model = model if isinstance(model, str) else SERVED_MODEL
        if isinstance(body, dict) and body.get("stream"):
            self._stream(future, model, body, started)
            return
        try:
            reply = future.result()
        except ChatError as exc:
            self._log(str(exc.status), started, error=str(exc))
            self._send_error(exc.status, str(exc), exc.kind)
            return
        self._log(reply.strategy, started, reply)
        self._send_json(200, _completion(reply, model), headers=_rlm_headers(reply))

    # -- replies ------------------------------------------------------------------------------

    def _stream(self, future: Future[Reply], model: str, body: dict[str, Any], started: float) -> None:
        """SSE: the role at once, keep-alive comments while the reply is computed, then the
        content, the finish and (when asked) the usage; a client gone away cancels the run."""
        self.close_connection = True  # no chunked encoding: the end of the stream is the close
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        base = {"id": _id(), "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
        try:
            self._event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
            while True:
                try:
                    reply = future.result(timeout=KEEPALIVE_S)
                    break
                except FutureTimeout:
                    self.wfile.write(b": rlm is working\n\n")
                    self.wfile.flush()
                except ChatError as exc:
                    self._log(str(exc.status), started, error=str(exc))
                    self._event({"error": {"message": str(exc), "type": exc.kind, "code": str(exc.status)}})
                    self.wfile.write(b"data: [DONE]\n\n")
                    return
            self._log(reply.strategy, started, reply)
            self._event({**base, "choices": [{"index": 0, "delta": {"content": reply.text}, "finish_reason": None}]})
            self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": reply.finish_reason}]})
            if (body.get("stream_options") or {}).get("include_usage"):
                self._event({**base, "choices": [], "usage": _usage(reply)})
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            future.cancel()  # the run stops, and its worker with it
            self._log("gone", started, error="the client closed the connection")

    def _event(self, payload: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n")
        self.wfile.flush()

    def _authorised(self) -> bool:
        key = self.server.api_key
        if key is None:
            return True
        given = self.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
            return True
        self._send_error(401, "a valid API key is required (Authorization: Bearer KEY)", "authentication_error")
        return False

    def _path(self) -> str:
        return self.path.split("?")[0].rstrip("/")

    def _send_error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        self._send_json(status, {"error": {"message": message, "type": kind, "param": None, "code": str(status)}})

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _log(self, outcome: str, started: float, reply: Reply | None = None, error: str | None = None) -> None:
        detail = f"{reply.iterations} turns, {reply.subcalls} sub-calls" if reply and reply.strategy == "rlm" else ""
        line = f"rlm serve: {outcome} in {time.monotonic() - started:.1f} s" + (f" ({detail})" if detail else "")
        self.server.log.write(line + (f": {error}" if error else "") + "\n")
        self.server.log.flush()


def _id() -> str:
    return f"chatcmpl-rlm-{uuid.uuid4().hex[:24]}"


def _usage(reply: Reply) -> dict[str, int]:
    usage = reply.usage
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def _rlm_headers(reply: Reply) -> dict[str, str]:
    headers = {"X-RLM-Strategy": reply.strategy}
    if reply.trace_file is not None:
        headers["X-RLM-Trace"] = str(reply.trace_file)
    return headers


def _completion(reply: Reply, model: str) -> dict[str, Any]:
    return {
        "id": _id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text}, "finish_reason": reply.finish_reason}],
        "usage": _usage(reply),
        "rlm": {
            "strategy": reply.strategy,
            "iterations": reply.iterations,
            "subcalls": reply.subcalls,
            "trace_file": str(reply.trace_file) if reply.trace_file else None,
        },
    }
