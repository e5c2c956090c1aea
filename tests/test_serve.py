"""`rlm serve` as a real process, spoken to with httpx, its models the scripted server: a big
request answered by the RLM loop, a small one passed through, streaming, the key, bad starts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from conftest import run_rlm
from scripted_server import ScriptedServer


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


@contextmanager
def rlm_serve(server: ScriptedServer, *extra: str) -> Iterator[str]:
    """A running `rlm serve` on a free port; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlm_cli", "serve", "--port", "0", "--threshold", "100k", *server.cli_args(), *extra],
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if "listening on " in line:
                threading.Thread(target=proc.stderr.read, daemon=True).start()  # a full pipe would block it
                yield line.split("listening on ", 1)[1].split()[0]
                return
        raise AssertionError(f"rlm serve did not start: {''.join(seen)}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_big_message_is_answered_by_the_rlm_loop_and_a_small_one_passes_through(scripted_server) -> None:
    server = scripted_server([
        repl("import re\nprint(len(context))"),
        repl("FINAL(re.search(r'door code is (\\d+)', context).group(1))"),
        "hello back",
    ])
    line = "2026-12-01T10:00:00 gate INFO badge accepted at the north entrance\n"
    big = line * (2_000_000 // len(line)) + "2026-12-01T11:00:00 gate NOTE the door code is 4711\n"
    assert len(big) > 2_000_000
    with rlm_serve(server) as url, httpx.Client(base_url=url, timeout=120) as client:
        models = client.get("/models").json()
        assert [m["id"] for m in models["data"]] == ["rlm"]

        answered = client.post("/chat/completions", json={"model": "rlm", "messages": [
            {"role": "system", "content": "You read logs."},
            {"role": "user", "content": big + "\nWhat is the door code?"},
        ]})
        assert answered.status_code == 200, answered.text
        body = answered.json()
        assert body["choices"][0]["message"] == {"role": "assistant", "content": "4711"}
        assert answered.headers["X-RLM-Strategy"] == "rlm" and body["rlm"]["iterations"] == 2
        records = [json.loads(r) for r in Path(answered.headers["X-RLM-Trace"]).read_text().splitlines()]
        assert [r["code"].splitlines()[-1] for r in records if r["type"] == "cell"][0] == "print(len(context))"
        assert all(sum(len(m["content"]) for m in r.messages) < 100_000 for r in server.root_requests())

        small = client.post("/chat/completions", json={"model": "rlm", "messages": [{"role": "user", "content": "hi"}]})
        assert small.status_code == 200, small.text
        assert small.json()["choices"][0]["message"]["content"] == "hello back"
        assert small.headers["X-RLM-Strategy"] == "direct"
        assert server.root_requests()[-1].messages == [{"role": "user", "content": "hi"}]


def test_a_streamed_reply_arrives_as_server_sent_events(scripted_server) -> None:
    server = scripted_server(["streamed reply"])
    with rlm_serve(server) as url, httpx.Client(base_url=url, timeout=120) as client:
        request = {"model": "m", "stream": True, "stream_options": {"include_usage": True}, "messages": [{"role": "user", "content": "hi"}]}
        with client.stream("POST", "/chat/completions", json=request) as response:
            assert response.headers["content-type"] == "text/event-stream"
            events = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "streamed reply"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] > 0


def test_with_an_api_key_a_request_without_it_is_refused(scripted_server) -> None:
    with rlm_serve(scripted_server([]), "--api-key", "s3cret") as url:
        assert httpx.get(f"{url}/models").status_code == 401
        assert httpx.get(f"{url}/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_a_port_in_use_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ran = run_rlm("serve", "--port", str(port), "--model", "openai/x", "--api-base", "http://127.0.0.1:9/v1")
    assert ran.code == 2
    assert ran.stderr == f"rlm: error: cannot listen on 127.0.0.1:{port}: the port is in use\n"


def test_listening_beyond_loopback_needs_an_api_key() -> None:
    ran = run_rlm("serve", "--host", "0.0.0.0", "--port", "0", "--model", "openai/x")
    assert ran.code == 2
    assert ran.stderr == "rlm: error: listening on 0.0.0.0 needs --api-key (only loopback is served without one)\n"


def test_the_direct_paths_client_is_closed_when_the_service_closes(tmp_path: Path) -> None:
    """In process, through the seams: the server's shutdown closes the connections of the client
    the small-request path made."""
    import asyncio
    from dataclasses import dataclass

    from test_api import ListSink, Models, Scripted, rlm_with

    from rlm_cli.api import Limits, ModelFlags
    from rlm_cli.serve import ChatService

    @dataclass
    class Closing(Scripted):
        closed: int = 0

        async def aclose(self) -> None:
            self.closed += 1

    root = Closing("root", ["hello back"])
    rlm = rlm_with(Models(root), ListSink(), tmp_path)

    async def talk(service: ChatService) -> str:
        reply = await service.reply({"messages": [{"role": "user", "content": "hello"}]})
        await service.aclose()
        await service.aclose()  # a second close has nothing left to close
        return reply.text

    with rlm.models(ModelFlags("root")) as models:
        assert asyncio.run(talk(ChatService(rlm, models, Limits(), threshold=1_000))) == "hello back"
    assert root.closed == 1
