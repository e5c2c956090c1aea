"""Provider faults and interruptions, through the real CLI against the scripted server.

Retry delays are shortened with RLM_RETRY_BASE_DELAY (a Retry-After from the server still
rules), so a scenario that exhausts its retries ends in a second or two.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST, of_type, run_rlm
from conftest import ask_traced as ask
from scripted_server import Fault, _error_json, last_user_text

from rlm_cli.worker.sandbox import descendants


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def test_429_waits_for_retry_after(scripted_server, tmp_path: Path) -> None:
    server = scripted_server([repl("FINAL('ok')")])
    server.fail("root", 429, count=1, retry_after=1.0)
    ran, records = ask(server, tmp_path)

    assert ran.code == 0, ran.stderr
    first, second = server.root_requests()[:2]
    assert second.received_at - first.finished_at >= 0.9  # not the 10 ms backoff
    assert "429" in of_type(records, "root_response")[0]["faults"][0]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried_and_recorded(scripted_server, tmp_path: Path, status: int) -> None:
    server = scripted_server([repl("FINAL(llm_query('q'))")], sub_answer=lambda p: "sub ok")
    server.fail("root", status, count=2)
    server.fail("sub", status, count=1)
    ran, records = ask(server, tmp_path)

    assert ran.code == 0, ran.stderr
    assert ran.stdout == "sub ok\n"
    assert [str(status) in f for f in of_type(records, "root_response")[0]["faults"]] == [True, True]
    assert str(status) in of_type(records, "subcall")[0]["faults"][0]


def test_connection_refused_is_exit_4_after_quick_retries(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "in.txt").write_text("x\n")
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", "--api-base", f"http://127.0.0.1:{port}/v1", "--model", "m", env=FAST)

    assert ran.code == 4
    assert "Traceback" not in ran.stderr
    assert "unreachable after 4 retries" in ran.stderr.strip().splitlines()[-1]
    assert ran.duration_s < 20


def test_read_timeout_is_retried(scripted_server, tmp_path: Path) -> None:
    # The hung request takes the first script entry with it; the retry gets the second.
    server = scripted_server([repl("FINAL('lost')"), repl("FINAL('after the hang')")])
    server.inject("root", Fault.hang(30))
    ran, records = ask(server, tmp_path, env={"RLM_REQUEST_TIMEOUT": "1"})

    assert ran.code == 0, ran.stderr
    assert ran.stdout == "after the hang\n"
    assert ran.duration_s < 20
    assert "Timeout" in of_type(records, "root_response")[0]["faults"][0]


def test_dropped_connection_is_retried(scripted_server, tmp_path: Path) -> None:
    server = scripted_server([repl("FINAL(llm_query('q'))")], sub_answer=lambda p: "sub ok")
    server.inject("sub", Fault.drop())
    ran, records = ask(server, tmp_path)

    assert ran.code == 0, ran.stderr
    assert ran.stdout == "sub ok\n"
    assert len(of_type(records, "subcall")[0]["faults"]) == 1


def test_empty_and_null_sub_replies_are_retried_then_fail_in_their_slot(scripted_server, tmp_path: Path) -> None:
    def sub_answer(prompt: str) -> Any:
        return Fault.null_content() if prompt == "always empty" else "fine"

    code = "print(llm_query_batched(['once empty', 'always empty', 'x']))"
    server = scripted_server([repl(code), repl("FINAL('done')")], sub_answer=sub_answer)
    server.inject("sub", Fault.empty())
    ran, records = ask(server, tmp_path, env={"RLM_MAX_RETRIES": "2"})

    assert ran.code == 0, ran.stderr
    cell = of_type(records, "cell")[0]["output"]
    assert "'fine'" in cell and "'ERROR: " in cell and "empty reply" in cell
    subcalls = of_type(records, "subcall")
    assert sum(1 for s in subcalls if s["error"]) == 1
    assert any("empty reply" in f for s in subcalls for f in s["faults"])


def test_truncated_root_reply_is_told_to_the_model(scripted_server, tmp_path: Path) -> None:
    def after(messages: list[dict]) -> str:
        assert "cut off at the output limit" in last_user_text(messages)
        return repl("FINAL('short now')")

    server = scripted_server([Fault.truncated("```repl\nx = [i for i in range(10"), after])
    ran, records = ask(server, tmp_path)

    assert ran.code == 0, ran.stderr
    assert "truncated" in of_type(records, "root_response")[0]["faults"][0]


def test_truncated_sub_reply_is_marked_for_the_model(scripted_server, tmp_path: Path) -> None:
    server = scripted_server([repl("FINAL(llm_query('long story'))")], sub_answer=lambda p: Fault.truncated("once upon a"))
    ran, records = ask(server, tmp_path)

    assert ran.code == 0, ran.stderr
    assert ran.stdout.startswith("once upon a\n[rlm: this answer was cut off")
    assert "truncated" in of_type(records, "subcall")[0]["faults"][0]


def test_sub_prompt_larger_than_the_window_is_a_clear_error_in_the_cell(scripted_server, tmp_path: Path) -> None:
    too_long = _error_json(
        "This model's maximum context length is 8192 tokens. However, your messages resulted in 250000 tokens.", 400
    ).replace('"code": "400"', '"code": "context_length_exceeded"')

    def sub_answer(prompt: str) -> Any:
        return Fault.http(400, body=too_long) if len(prompt) > 100_000 else "small ok"

    def after(messages: list[dict]) -> str:
        text = last_user_text(messages)
        assert "SubcallError" in text and "context window" in text and "Traceback (most recent call last)" in text
        assert "litellm" not in text.split("SubcallError", 1)[1][:300]
        return repl("FINAL(llm_query('small'))")

    server = scripted_server([repl("llm_query('x' * 1_000_000)"), after], sub_answer=sub_answer)
    ran, records = ask(server, tmp_path)

    assert ran.code == 0, ran.stderr
    assert ran.stdout == "small ok\n"
    assert len([r for r in server.sub_requests() if len(r.prompt) > 100_000]) == 1  # not retried
    assert "context window" in of_type(records, "subcall")[0]["error"]


def test_authentication_failure_is_exit_4_at_once(scripted_server, tmp_path: Path) -> None:
    server = scripted_server([repl("FINAL(1)")])
    server.fail("root", 403)
    ran, records = ask(server, tmp_path)

    assert ran.code == 4
    assert len(server.root_requests()) == 1
    assert ran.stderr.strip().splitlines()[-1].startswith("rlm: error:") and "Traceback" not in ran.stderr
    assert of_type(records, "run_end")[0]["error"]


def test_failures_in_a_batch_stay_in_their_slots(scripted_server, tmp_path: Path) -> None:
    def sub_answer(prompt: str) -> Any:
        return Fault.http(500) if prompt.startswith("bad") else prompt.upper()

    code = "out = llm_query_batched(['a', 'bad1', 'b', 'bad2', 'c'])\nprint(out)\nFINAL('|'.join(o[:6] for o in out))"
    server = scripted_server([repl(code)], sub_answer=sub_answer)
    ran, records = ask(server, tmp_path, env={"RLM_MAX_RETRIES": "1"})

    assert ran.code == 0, ran.stderr
    assert ran.stdout == "A|ERROR:|B|ERROR:|C\n"
    errors = [s for s in of_type(records, "subcall") if s["error"]]
    assert len(errors) == 2 and all("500" in s["error"] for s in errors)


def test_root_failing_for_good_mid_run_is_exit_4_with_a_full_trajectory(scripted_server, tmp_path: Path) -> None:
    server = scripted_server([repl("x = 1")])
    server.add_root_replies(*[Fault.http(503)] * 10)
    ran, records = ask(server, tmp_path)

    assert ran.code == 4
    assert "unreachable after 4 retries" in ran.stderr
    assert [r["type"] for r in records][-2:] == ["final", "run_end"]
    assert of_type(records, "cell")  # the first iteration is on record


# -- interruption -----------------------------------------------------------------------------


def _interrupt(server: Any, tmp_path: Path, ready: Any) -> tuple[subprocess.Popen[bytes], float, bytes, list[dict]]:
    (tmp_path / "in.txt").write_text("x\n")
    trace = tmp_path / "t.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlm_cli", "ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--trace", str(trace)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **FAST},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not ready():
        time.sleep(0.05)
    time.sleep(0.5)
    tree = descendants(proc.pid)
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, stderr = proc.communicate(timeout=30)
    took = time.monotonic() - sent
    time.sleep(0.2)
    assert not [p for p in tree if Path(f"/proc/{p}").exists() and b"rlm_cli.worker" in Path(f"/proc/{p}/cmdline").read_bytes()]
    return proc, took, stderr, [json.loads(line) for line in trace.read_text().splitlines()]


def test_ctrl_c_during_a_root_model_call(scripted_server, tmp_path: Path) -> None:
    server = scripted_server([Fault.hang(60)])
    proc, took, stderr, records = _interrupt(server, tmp_path, lambda: server.root_requests())

    assert proc.returncode == 130, stderr.decode()
    assert took < 15.0  # stops promptly, not after the 60 s hang (how fast is for benchmarks)
    assert records[-1]["type"] == "run_end" and records[-1]["status"] == "interrupted"


def test_ctrl_c_during_a_batch_of_sub_calls(scripted_server, tmp_path: Path) -> None:
    server = scripted_server([repl("llm_query_batched([f'q{i}' for i in range(8)])")], sub_latency=60)
    proc, took, stderr, records = _interrupt(server, tmp_path, lambda: len(server.sub_requests()) >= 8)

    assert proc.returncode == 130, stderr.decode()
    assert took < 15.0  # stops promptly, not after the 60 s hang (how fast is for benchmarks)
    assert "run_start" in [r["type"] for r in records] and records[-1]["type"] == "run_end"
