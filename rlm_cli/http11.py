"""A small HTTP/1.1 client for plain-http servers: asyncio streams, with h11 for the protocol.

The OpenAI-compatible servers rlm talks to most often are plain http on this machine or the
local network: the bundled llama-server, an `--api-base http://...` of vLLM or Ollama. For them
httpx's stack (httpx, httpcore, anyio, and trio where it is installed) costs ~0.3 s to import
and ~1 ms of CPU per request, which is most of a turn's overhead and most of the time a batch of
64 sub-calls spends before its requests leave. h11 (which httpcore itself speaks HTTP/1.1 with)
parses the protocol: chunked and sized bodies, keep-alive, `Connection: close`. TLS and proxies
stay with httpx (`rlm_cli.openai_client` chooses).

One request per connection at a time; an idle connection is kept for the next request unless
the server has closed it meanwhile (checked before reuse, as httpcore does). A connection a
request was cancelled on (a deadline, Ctrl-C) is closed, never reused. Errors are the standard
library's (`ConnectionRefusedError`, `ConnectionResetError`, other `OSError`s) and h11's
`RemoteProtocolError`: a reply cut short by the server closing the connection, or not HTTP.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import h11

READ_SIZE = 1 << 16
MAX_IDLE = 128  # connections kept open between requests (the limiter's default ceiling)


@dataclass(frozen=True)
class Response:
    """A whole reply; `headers` has lower-cased names."""

    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.state = h11.Connection(h11.CLIENT)

    def reusable(self) -> bool:
        """Both sides done with the last exchange, and the server has not closed it since."""
        s = self.state
        return s.our_state is h11.IDLE and s.their_state is h11.IDLE and not self.reader.at_eof() and not self.writer.is_closing()

    async def exchange(self, request: h11.Request, body: bytes) -> Response:
        s = self.state
        self.writer.write(s.send(request) + s.send(h11.Data(data=body)) + s.send(h11.EndOfMessage()))
        status, headers, chunks = 0, {}, []
        while True:
            event = s.next_event()
            if event is h11.NEED_DATA:
                s.receive_data(await self.reader.read(READ_SIZE))  # b"" at EOF: h11 judges it
            elif isinstance(event, h11.Response):
                status = event.status_code
                headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in event.headers}
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                if s.our_state is h11.DONE and s.their_state is h11.DONE:
                    s.start_next_cycle()
                return Response(status, headers, b"".join(chunks))
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionResetError("the server closed the connection before a whole reply")
            # h11.InformationalResponse (100 Continue): nothing to do

    def close(self) -> None:
        self.writer.close()


class Http11Client:
    """Keep-alive connections to one `host:port`; POST a body, get the whole `Response`."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        name = f"[{host}]" if ":" in host else host  # an IPv6 address is bracketed in Host
        self._authority = name if port == 80 else f"{name}:{port}"
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()

    async def post(self, target: str, headers: dict[str, str], body: bytes) -> Response:
        connection = self._idle_connection() or _Connection(*await asyncio.open_connection(self._host, self._port))
        self._busy.add(connection)
        request = h11.Request(
            method="POST",
            target=target,
            headers=[("Host", self._authority), ("Content-Length", str(len(body))), *headers.items()],
        )
        try:
            response = await connection.exchange(request, body)
        except BaseException:
            connection.close()  # half an exchange (a deadline, a cut): never reused
            raise
        finally:
            self._busy.discard(connection)
        if connection.reusable() and len(self._idle) < MAX_IDLE:
            self._idle.append(connection)
        else:
            connection.close()
        return response

    def _idle_connection(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if connection.reusable():
                return connection
            connection.close()
        return None

    async def aclose(self) -> None:
        """Close every connection, idle or in use; waits for the transports to let go."""
        connections = [*self._idle, *self._busy]
        self._idle, self._busy = [], set()
        for connection in connections:
            connection.close()
        for connection in connections:
            try:
                await connection.writer.wait_closed()
            except OSError:
                pass  # a connection the server had reset: closed all the same
