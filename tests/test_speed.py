"""The fixed cost around model calls: which transport is loaded, deadlines, fault labels, the
adaptive limiter, the cross-run sub-call cache and split prompts.

Timings are benchmarks' business (benchmarks/bench_vs_rlms.py); these tests check behaviour:
what is imported, what the server saw, what the trajectory says.
"""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

from conftest import FAST, Ran, ask_traced, of_type, run_rlm
from scripted_server import Fault

from rlm_cli.api import AskRequest, Inputs, ModelFlags, Rlm
from rlm_cli.concurrency import AdaptiveLimiter
from rlm_cli.http11 import Http11Client

MODEL_STACK = ("litellm", "openai", "httpx", "rlm_cli.model_client", "rlm_cli.openai_client", "rlm_cli.clients")


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def loaded_after(*argv: str) -> list[str]:
    """The model-stack modules a CLI invocation in a fresh interpreter has imported."""
    code = (
        "import sys\nfrom rlm_cli.cli import main\n"
        f"try:\n    main({list(argv)!r})\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in sys.modules if m in {MODEL_STACK!r} or m.split('.')[0] in ('litellm', 'openai', 'httpx')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1].replace("'", '"'))


def test_version_and_help_import_no_model_client() -> None:
    for argv in (["--version"], ["--help"], ["ask", "--help"]):
        assert loaded_after(*argv) == [], argv


def test_a_plain_http_endpoint_imports_neither_litellm_nor_httpx(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    server = scripted_server([repl("FINAL(llm_query('q'))")], sub_answer=lambda p: "sub ok")
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "rlm_cli", "ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "-q"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == "sub ok\n"
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert {"h11", "rlm_cli.http11", "rlm_cli.openai_client"} <= imported
    assert not {m for m in imported if m.split(".")[0] in ("litellm", "openai", "httpx", "httpcore")}


def test_the_answer_is_printed_and_the_exit_code_kept_by_the_fast_exit(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    server = scripted_server([repl("FINAL('done')")])
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--json", "--max-iterations", "1")
    assert ran.code == 0 and ran.json()["answer"] == "done"
    limited = scripted_server(["no code", "still none"])
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *limited.cli_args(), "--max-iterations", "1")
    assert ran.code == 5 and ran.stderr.strip().splitlines()[-1].startswith("rlm: stopped:")


# -- start-up and shutdown: the worker starts while the first root request is out -------------


def test_a_worker_that_fails_to_start_ends_the_run_while_the_first_root_request_is_out(
    scripted_server, tmp_path: Path
) -> None:
    # 5 MB of address space: the worker dies mapping its context, long before the 60 s reply.
    server = scripted_server([repl("FINAL('never')")], root_latency=60)
    ran, records = ask_traced(server, tmp_path, env={"RLM_WORKER_MEMORY": "5M"})

    assert ran.code == 1, ran.stderr
    lines = [line for line in ran.stderr.splitlines() if line.startswith("rlm:")]
    assert lines == [lines[-1]] and lines[-1].startswith("rlm: error: the worker failed to start: it exited with status")
    assert "Traceback" not in ran.stderr.split("the worker failed to start")[0]
    assert len(server.root_requests()) == 1  # it went out before the worker was up
    assert ran.duration_s < 50  # the start's failure ended the run, not the model's reply
    assert of_type(records, "run_end")[0]["status"] == "error"


def test_a_run_closes_the_connections_it_opened(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    server = scripted_server([repl("FINAL(llm_query('q'))")], sub_answer=lambda p: "sub ok")
    request = AskRequest(Inputs((str(tmp_path / "in.txt"),)), "q?", ModelFlags("openai/root", "openai/sub", server.url))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = Rlm().ask(request)
        gc.collect()  # an unclosed socket says so when it is collected

    assert result.answer == "sub ok"
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


# -- per-request deadline and fault labels (issue 9, items 10 and 11) ---------------------------

def test_a_trickled_reply_is_cut_at_the_request_deadline_and_retried(scripted_server, tmp_path: Path) -> None:
    # One byte every 0.2 s: no gap reaches the 1 s timeout, the whole reply would take minutes.
    server = scripted_server([repl("FINAL('lost')"), repl("FINAL('after the trickle')")])
    server.inject("root", Fault.trickled(0.2))
    ran, records = ask_traced(server, tmp_path, env={"RLM_REQUEST_TIMEOUT": "1"})

    assert ran.code == 0, ran.stderr
    assert ran.stdout == "after the trickle\n"
    assert ran.duration_s < 30
    assert "no complete reply within 1 s" in of_type(records, "root_response")[0]["faults"][0]


def test_connection_refused_is_named(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "in.txt").write_text("x\n")
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", "--api-base", f"http://127.0.0.1:{port}/v1", "--model", "m", env=FAST)

    assert ran.code == 4
    last = ran.stderr.strip().splitlines()[-1]
    assert "connection refused" in last and "500" not in last


def test_a_cut_connection_and_invalid_json_are_named(scripted_server, tmp_path: Path) -> None:
    server = scripted_server([repl("FINAL(llm_query('q'))")], sub_answer=lambda p: "sub ok")
    server.inject("sub", Fault.drop())
    server.inject("sub", Fault.invalid_json())
    ran, records = ask_traced(server, tmp_path)

    assert ran.code == 0, ran.stderr
    assert ran.stdout == "sub ok\n"
    cut, garbled = of_type(records, "subcall")[0]["faults"]
    assert cut.startswith("connection cut") and garbled.startswith("invalid JSON")
    assert not any("500" in fault for fault in (cut, garbled))


# -- adaptive concurrency ----------------------------------------------------------------------


def _against_cap(cap: int | None, calls: int = 64) -> tuple[AdaptiveLimiter, int]:
    """`calls` attempts through one limiter against a fake provider refusing above `cap`."""
    limiter = AdaptiveLimiter(16, 128)
    serving = refused = 0

    async def call() -> None:
        nonlocal serving, refused
        while True:
            await limiter.acquire()
            await asyncio.sleep(0.001)
            if cap is not None and serving >= cap:
                refused += 1
                limiter.release(0.001, overloaded=True)
                continue
            serving += 1
            await asyncio.sleep(0.3)
            serving -= 1
            limiter.release(0.3)
            return

    async def main() -> None:
        await asyncio.gather(*[call() for _ in range(calls)])

    asyncio.run(main())
    return limiter, refused


def test_the_limiter_raises_the_number_in_flight_while_nothing_is_refused() -> None:
    limiter, refused = _against_cap(None)
    assert refused == 0 and limiter.peak == 64  # from 16, without waiting for replies
    assert limiter.limit >= 64


def test_the_limiter_backs_off_to_what_the_provider_takes() -> None:
    limiter, refused = _against_cap(8)
    assert refused >= 8  # the start of 16 found the cap
    assert 8 <= limiter.limit < 10  # and stays near it


def test_a_batch_against_a_concurrency_cap_loses_no_sub_call(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("".join(f"record {i}\n" for i in range(64)))
    code = "out = llm_query_batched([f'Echo: {line}' for line in context.splitlines()])\nFINAL(sum(not o.startswith('ERROR') for o in out))"
    server = scripted_server([repl(code)], sub_latency=0.2, max_sub_in_flight=8)
    ran, records = ask_traced(server, tmp_path)

    assert ran.code == 0, ran.stderr
    assert ran.stdout == "64\n"
    assert server.rejected() > 0 and server.max_in_flight("sub") == 8
    assert not any(s["error"] for s in of_type(records, "subcall"))


def test_concurrency_is_a_starting_point_not_a_cap(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("".join(f"record {i}\n" for i in range(48)))
    code = "out = llm_query_batched([f'Echo: {line}' for line in context.splitlines()])\nFINAL(len(out))"
    server = scripted_server([repl(code)], sub_latency=1.0)
    ran, _ = ask_traced(server, tmp_path, "--concurrency", "4")

    assert ran.code == 0, ran.stderr
    assert server.max_in_flight("sub") > 4


# -- the sub-call cache across runs ------------------------------------------------------------


def test_a_repeated_ask_makes_no_sub_call_it_made_before(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("".join(f"record {i}\n" for i in range(6)))
    code = "out = llm_query_batched([f'Echo: {line}' for line in context.splitlines()])\nFINAL(' | '.join(out))"

    def once(*extra: str) -> tuple[Any, Ran, list[dict]]:
        server = scripted_server([repl(code)])
        ran, records = ask_traced(server, tmp_path, *extra)
        assert ran.code == 0, ran.stderr
        return server, ran, records

    first, ran1, records1 = once()
    again, ran2, records2 = once()
    fresh, ran3, _ = once("--no-cache")

    assert len(first.sub_requests()) == 6 and not any(s["cached"] for s in of_type(records1, "subcall"))
    assert again.sub_requests() == []  # every answer came from the cache
    assert ran2.stdout == ran1.stdout
    assert [s["cached"] for s in of_type(records2, "subcall")] == [True] * 6
    assert "6 cached" in ran2.stderr
    assert len(fresh.sub_requests()) == 6  # --no-cache asks again


def test_the_cache_key_holds_the_model_and_the_whole_prompt(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    long_prompt = "p" * 5000
    for code in (f"FINAL(llm_query({long_prompt!r}))", f"FINAL(llm_query({long_prompt + 'q'!r}))"):
        server = scripted_server([repl(code)])
        ran, _ = ask_traced(server, tmp_path)
        assert ran.code == 0 and len(server.sub_requests()) == 1  # one character more is another prompt
    other_model = scripted_server([repl(f"FINAL(llm_query({long_prompt!r}))")])
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *other_model.cli_args(sub="openai/sub2"))
    assert ran.code == 0 and len(other_model.sub_requests()) == 1


# -- oversized sub-call prompts --------------------------------------------------------------


def test_a_sub_prompt_over_the_window_is_split_not_refused(scripted_server, tmp_path: Path) -> None:
    # gpt-4o-mini's window is 128,000 tokens in litellm's table: ~600,000 characters do not fit.
    (tmp_path / "in.txt").write_text("x\n")
    code = "big = ''.join(f'line {i:06d} of the log\\n' for i in range(30_000))\nFINAL(llm_query(big))"

    def sub_answer(prompt: str) -> str:
        return "all parts combined" if prompt.startswith("A prompt too long") else "part answer"

    server = scripted_server([repl(code)], sub_answer=sub_answer)
    ran, records = ask_traced(server, tmp_path, "--sub-model", "openai/gpt-4o-mini")

    assert ran.code == 0, ran.stderr
    assert ran.stdout == "all parts combined\n"
    prompts = [r.prompt for r in server.sub_requests()]
    assert len(prompts) == 3 and all(len(p) < 128_000 * 4 for p in prompts)
    (subcall,) = of_type(records, "subcall")
    assert subcall["split_into"] == 2 and subcall["error"] is None
    assert any("split into 2 pieces" in n["message"] for n in of_type(records, "notice"))


def test_a_proxy_in_the_environment_is_honoured_for_plain_http(scripted_server, tmp_path: Path) -> None:
    with socket.socket() as s:  # a proxy address with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = scripted_server([repl("FINAL('direct')")])
    ran, _ = ask_traced(server, tmp_path, env={"HTTP_PROXY": f"http://127.0.0.1:{port}", "RLM_MAX_RETRIES": "0"})

    assert ran.code == 4  # through the proxy (httpx), which refused: not straight to the server
    assert "connection refused" in ran.stderr.strip().splitlines()[-1]
    assert server.root_requests() == []


def test_a_kept_connection_the_server_closed_meanwhile_is_not_reused() -> None:
    # Servers close idle keep-alive connections (llama-server and uvicorn after 5 s): the next
    # request must take a new connection, not fail on the closed one.
    async def main() -> list[bytes]:
        connections = 0

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(2)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n" + f"reply {connections}".encode())
            await writer.drain()
            writer.close()  # an idle timeout, right after the reply: no Connection: close said

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        client = Http11Client("127.0.0.1", server.sockets[0].getsockname()[1])
        try:
            first = await client.post("/v1/chat/completions", {}, b"{}")
            await asyncio.sleep(0.1)  # the server's FIN arrives
            second = await client.post("/v1/chat/completions", {}, b"{}")
        finally:
            await client.aclose()
            server.close()
        return [first.content, second.content]

    assert asyncio.run(main()) == [b"reply 1", b"reply 2"]
