"""Tests of the scripted OpenAI-compatible server, through real litellm and through raw HTTP."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_MODE", "PRODUCTION")

import litellm  # noqa: E402 - the environment above must be set first
import pytest  # noqa: E402
from litellm.exceptions import (  # noqa: E402
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    RateLimitError,
    ServiceUnavailableError,
    Timeout,
)
from scripted_server import Fault, Messages, ScriptedServer  # noqa: E402

litellm.suppress_debug_info = True  # litellm prints "Give Feedback" banners on errors otherwise


def ask(server: ScriptedServer, prompt: str, model: str = "openai/root", **kwargs: Any) -> Any:
    """One chat completion through litellm against ``server``."""
    return litellm.completion(model=model, api_base=server.url, api_key="x",
                              messages=[{"role": "user", "content": prompt}], **kwargs)


def content(response: Any) -> str | None:
    return response.choices[0].message.content  # type: ignore[no-any-return]


def post(server: ScriptedServer, body: dict[str, Any], path: str = "/v1/chat/completions",
         timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """A raw POST; returns status, lower-cased headers and body, also for HTTP errors."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}{path}", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def chat_body(model: str, prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": prompt}], **extra}


def test_root_replies_come_back_in_order_and_are_recorded() -> None:
    with ScriptedServer(["first", "second"]) as server:
        assert content(ask(server, "a")) == "first"
        assert content(ask(server, "b")) == "second"
        assert server.remaining_root_replies == 0
        roots = server.root_requests()
        assert [r.prompt for r in roots] == ["a", "b"]
        assert all(r.model == "root" and r.status == 200 and r.path == "/v1/chat/completions"
                   for r in roots)
        assert all(r.finished_at is not None and r.finished_at >= r.received_at for r in roots)
        assert roots[0].headers["authorization"] == "Bearer x"
        assert server.sub_requests() == []


def test_callable_reply_sees_the_messages() -> None:
    seen: list[Messages] = []

    def reply(messages: Messages) -> str:
        seen.append(messages)
        return f"you said {messages[-1]['content']}"

    with ScriptedServer([reply]) as server:
        assert content(ask(server, "hello")) == "you said hello"
    assert seen == [[{"role": "user", "content": "hello"}]]


def test_a_failing_callable_answers_400_and_is_reraised_on_exit() -> None:
    def reply(messages: Messages) -> str:
        raise AssertionError("the tool sent the wrong thing")

    server = ScriptedServer([reply])
    with pytest.raises(AssertionError, match="wrong thing"):
        with server:
            with pytest.raises(BadRequestError, match="callable raised AssertionError"):
                ask(server, "x", num_retries=0)


def test_exhausted_root_script_is_a_loud_400() -> None:
    with ScriptedServer(["only"]) as server:
        ask(server, "1")
        with pytest.raises(BadRequestError, match="root script exhausted"):
            ask(server, "2")
        assert len(server.requests) == 2  # not retried


def test_sub_answers_are_computed_from_the_prompt() -> None:
    with ScriptedServer(sub_answer=str.upper) as server:
        assert content(ask(server, "summarise", model="openai/sub")) == "SUMMARISE"
        assert content(ask(server, "other", model="openai/cheap")) == "OTHER"
        assert [r.model for r in server.sub_requests()] == ["sub", "cheap"]
    with ScriptedServer() as server:
        assert content(ask(server, "x" * 100, model="openai/sub")) == f"ANSWER({'x' * 40})"


def test_sub_answer_sees_the_last_user_message() -> None:
    with ScriptedServer(sub_answer=lambda prompt: prompt) as server:
        response = litellm.completion(
            model="openai/sub", api_base=server.url, api_key="x",
            messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": "one"},
                      {"role": "assistant", "content": "reply"}, {"role": "user", "content": "two"}])
        assert content(response) == "two"


@pytest.mark.parametrize(("status", "error"), [
    (500, InternalServerError),
    (429, RateLimitError),
    (503, ServiceUnavailableError),
    (401, AuthenticationError),
])
def test_http_faults_surface_as_litellm_exceptions(status: int, error: type[Exception]) -> None:
    with ScriptedServer(["after the fault"]) as server:
        server.fail("root", status)
        with pytest.raises(error):
            ask(server, "x", num_retries=0)
        assert content(ask(server, "x")) == "after the fault"  # a failed request eats no entry
        assert [r.status for r in server.requests] == [status, 200]


def test_429_retry_after_is_sent_and_honoured() -> None:
    with ScriptedServer() as server:
        server.fail("sub", 429, retry_after=0.4)
        status, headers, _ = post(server, chat_body("sub", "p"))
        assert (status, headers["retry-after"]) == (429, "0.4")
        server.fail("sub", 429, retry_after=0.4)
        started = time.monotonic()
        assert content(ask(server, "p", model="openai/sub")) == "ANSWER(p)"  # litellm retried
        assert time.monotonic() - started >= 0.35
        assert [r.status for r in server.requests] == [429, 429, 200]


def test_faults_apply_per_kind_and_count() -> None:
    with ScriptedServer(["r"]) as server:
        server.fail("sub", 500, count=2)
        assert content(ask(server, "q")) == "r"  # root is untouched
        codes = [post(server, chat_body("sub", "p"))[0] for _ in range(3)]
        assert codes == [500, 500, 200]


def test_error_bodies_follow_openai_schema_or_are_verbatim() -> None:
    with ScriptedServer() as server:
        server.fail("sub", 500)
        server.fail("sub", 502, body="<html>bad gateway</html>")
        _, _, body = post(server, chat_body("sub", "p"))
        error = json.loads(body)["error"]
        assert error["type"] == "server_error" and "injected HTTP 500" in error["message"]
        assert post(server, chat_body("sub", "p"))[2] == b"<html>bad gateway</html>"


def test_empty_null_and_truncated_content() -> None:
    with ScriptedServer(["full reply", "```repl\nFINAL(1)\n```"]) as server:
        server.inject("root", Fault.empty())
        server.inject("root", Fault.null_content())
        server.inject("root", Fault.truncated())
        server.inject("root", Fault.truncated("cut"))
        assert content(ask(server, "x")) == ""
        assert content(ask(server, "x")) is None
        response = ask(server, "x")
        assert (content(response), response.choices[0].finish_reason) == ("full ", "length")
        response = ask(server, "x")
        assert (content(response), response.choices[0].finish_reason) == ("cut", "length")
        assert content(ask(server, "x")) == "```repl\nFINAL(1)\n```"


def test_faults_inside_the_script_and_from_sub_answer() -> None:
    def sub(prompt: str) -> str | Fault:
        return Fault.http(500) if "bad" in prompt else "fine"

    with ScriptedServer(["a", Fault.empty(), Fault.http(500), "b"], sub_answer=sub) as server:
        assert [content(ask(server, "x")) for _ in range(2)] == ["a", ""]
        with pytest.raises(InternalServerError):
            ask(server, "x", num_retries=0)
        assert content(ask(server, "x")) == "b"
        with pytest.raises(InternalServerError):
            ask(server, "bad prompt", model="openai/sub", num_retries=0)
        assert content(ask(server, "good prompt", model="openai/sub")) == "fine"


def test_usage_fields_are_present_and_estimated() -> None:
    with ScriptedServer(["r" * 40]) as server:
        usage = ask(server, "p" * 40).usage
        assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (10, 10, 20)
        _, _, body = post(server, chat_body("sub", "q" * 7))
        payload = json.loads(body)
        assert payload["object"] == "chat.completion" and payload["model"] == "sub"
        assert payload["id"].startswith("chatcmpl-")
        assert payload["choices"][0]["message"]["role"] == "assistant"
        assert payload["usage"]["prompt_tokens"] == 2


def test_hang_then_answer_and_client_timeout() -> None:
    with ScriptedServer(["late", "on time"]) as server:
        server.inject("root", Fault.hang(0.3))
        started = time.monotonic()
        assert content(ask(server, "x")) == "late"
        assert time.monotonic() - started >= 0.3
        server.inject("root", Fault.hang(5))
        with pytest.raises(Timeout):
            ask(server, "x", timeout=0.3, num_retries=0)
        assert server.remaining_root_replies == 0  # a hang that answers takes its entry


def test_dropped_connection_then_retry() -> None:
    with ScriptedServer(["after drop"]) as server:
        server.inject("root", Fault.drop())
        # litellm reports a connection closed without an answer as InternalServerError.
        with pytest.raises((InternalServerError, APIConnectionError)):
            ask(server, "x", num_retries=0)
        assert content(ask(server, "x")) == "after drop"
        assert [r.status for r in server.requests] == [None, 200]


def test_stop_does_not_wait_for_requests_in_flight() -> None:
    def post_and_ignore_the_hang_up() -> None:
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            post(server, chat_body("sub", "p"))

    server = ScriptedServer(latency=30).start()
    threading.Thread(target=post_and_ignore_the_hang_up, daemon=True).start()
    while not server.requests:
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2


def test_max_in_flight_with_concurrent_litellm_calls() -> None:
    with ScriptedServer(latency=0.3) as server:
        threads = [threading.Thread(target=ask, args=(server, f"p{i}"), kwargs={"model": "openai/sub"})
                   for i in range(16)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert time.monotonic() - started < 3
        assert len(server.sub_requests()) == 16
        assert server.max_in_flight("sub") >= 12
        assert server.max_in_flight("root") == 0


def test_many_raw_requests_at_once() -> None:
    with ScriptedServer(sub_latency=0.5) as server:
        results: list[int] = []
        threads = [threading.Thread(target=lambda i=i: results.append(
            post(server, chat_body("sub", f"p{i}"))[0])) for i in range(64)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == [200] * 64
        assert server.max_in_flight("sub") >= 48


def test_streaming_reply() -> None:
    with ScriptedServer(["streamed reply"]) as server:
        chunks = list(ask(server, "x", stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == "streamed reply"
        _, headers, raw = post(server, chat_body("sub", "p", stream=True,
                                                 stream_options={"include_usage": True}))
        assert headers["content-type"] == "text/event-stream"
        events = [line[6:] for line in raw.decode().splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        assert json.loads(events[-2])["usage"]["completion_tokens"] > 0


def test_other_routes() -> None:
    with ScriptedServer() as server:
        for path in ("/health", "/v1/models"):
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as r:
                assert r.status == 200 and json.loads(r.read())
        assert post(server, chat_body("sub", "p"), path="/chat/completions")[0] == 200
        assert post(server, chat_body("sub", "p"), path="/v1/embeddings")[0] == 404
        status, _, body = post(server, {"no": "messages"})
        assert status == 400 and b"bad request body" in body


def test_each_server_gets_its_own_port() -> None:
    with ScriptedServer(["one"]) as first, ScriptedServer(["two"]) as second:
        assert first.port != second.port
        assert (content(ask(first, "x")), content(ask(second, "x"))) == ("one", "two")


def test_fixture_factory_starts_servers(scripted_server: Any) -> None:
    server = scripted_server(["from the fixture"])
    assert content(ask(server, "x")) == "from the fixture"


def test_a_callable_may_read_the_server_while_answering() -> None:
    server = ScriptedServer([lambda messages: f"{len(server.requests)} so far"])
    with server:
        assert content(ask(server, "x")) == "1 so far"
