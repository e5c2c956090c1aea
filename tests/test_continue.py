"""Follow-ups (`rlm ask -c`) and `rlm resume` through the real CLI, worker and scripted server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import FAST, Ran, of_type, run_rlm
from scripted_server import Fault


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def _runs() -> Path:
    return Path(os.environ["RLM_CACHE_DIR"]) / "runs"


def _records(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def _ask(server: Any, *args: str) -> Ran:
    return run_rlm("ask", *args, *server.cli_args(), "--json", env=FAST)


def test_ask_runs_show_then_a_follow_up_that_uses_a_variable_of_the_first_run(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "log.txt").write_text("error a\nok\nerror b\nerror a\n")
    seen: list[str] = []

    def follow_up(messages: list[dict]) -> str:
        seen.append(json.dumps(messages))
        return repl("FINAL(f\"{counts['error a']} of {sum(counts.values())}\")")

    count = "from collections import Counter\ncounts = Counter(l for l in context.splitlines() if l.startswith('error'))\nhelper = lambda: 1"
    server = scripted_server([repl(count + "\nFINAL(len(counts))"), follow_up])
    first = _ask(server, str(tmp_path / "log.txt"), "How many kinds of error?")
    assert first.code == 0, first.stderr
    assert first.json()["answer"] == "2"

    listed = run_rlm("runs")
    assert listed.code == 0 and "How many kinds of error?" in listed.stdout
    page = tmp_path / "run.html"
    assert run_rlm("show", "last", "--html", str(page)).code == 0 and "How many kinds of error?" in page.read_text()

    second = run_rlm("ask", "-c", "Which error is most common?", *server.cli_args(), env=FAST)

    assert second.code == 0, second.stderr
    assert second.stdout == "2 of 3\n"
    sent = seen[0]
    assert "How many kinds of error?" in sent and "FINAL('2')" in sent  # the earlier Q&A, as the block that answered
    assert "counts (Counter" in sent  # the model is told what came back
    assert "Which error is most common?" in sent
    newest = json.loads(run_rlm("runs", "--json").stdout)[0]
    assert newest["follows"] == Path(first.json()["trace_file"]).stem
    origin = of_type(_records(newest["path"]), "origin")[0]
    assert origin["follows"] == first.json()["trace_file"]
    assert origin["request"]["inputs"]["sources"] == [str(tmp_path / "log.txt")]


def _start(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "rlm_cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **FAST}
    )


def _wait_for(check: Any, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not check():
        time.sleep(0.05)
    assert check(), "timed out"


def test_resume_after_ctrl_c_in_a_batch_gets_the_finished_sub_calls_from_the_cache(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    hung: set[str] = set()

    def sub_answer(prompt: str) -> str | Fault:
        if int(prompt[1:]) >= 4 and prompt not in hung:  # the second half hangs, the first time
            hung.add(prompt)
            return Fault.hang(60)
        return f"a{prompt[1:]}"

    batch = "answers = llm_query_batched([f'q{i}' for i in range(8)])"
    seen: list[str] = []

    def resumed(messages: list[dict]) -> str:
        seen.append(json.dumps(messages))
        return repl(f"{batch}\nFINAL(before + ' ' + ','.join(answers))")

    server = scripted_server([repl(f"before = 'kept'\n{batch}\nprint(answers)"), resumed], sub_answer=sub_answer)
    trace = tmp_path / "first.jsonl"
    proc = _start(["ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--trace", str(trace)])
    _wait_for(lambda: trace.exists() and len(of_type(_records(trace), "subcall")) == 4 and len(hung) == 4)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr.decode()
    first = _records(trace)
    assert of_type(first, "state")[0]["saved"][0]["name"] == "before"  # kept on Ctrl-C, mid-cell

    ran = run_rlm("resume", str(trace), *server.cli_args(), "--json", env=FAST)

    assert ran.code == 0, ran.stderr
    assert ran.json()["answer"] == "kept a0,a1,a2,a3,a4,a5,a6,a7"
    records = _records(ran.json()["trace_file"])
    cached = {r["prompt_preview"]: r["cached"] for r in of_type(records, "subcall")}
    assert cached == {f"q{i}": i < 4 for i in range(8)}  # the finished ones are not paid for twice
    assert len(server.sub_requests()) == 12
    assert of_type(records, "origin")[0]["resumes"] == str(trace)
    assert json.loads(run_rlm("runs", "--json").stdout)[0]["resumes"] == "first"
    assert "did not finish" in seen[0] and "before (str" in seen[0]
    assert "q?" in seen[0]  # the conversation, rebuilt: the first turn is in it


def test_a_follow_up_on_other_sources_keeps_the_variables(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("one\ntwo\n")
    (tmp_path / "new.txt").write_text("one\ntwo\nthree\n")
    server = scripted_server([repl("before = len(context.splitlines())\nFINAL(before)"), repl("FINAL(f'{before} -> {len(context.splitlines())}')")])
    first = _ask(server, str(tmp_path / "old.txt"), "How many lines?")
    assert first.code == 0, first.stderr

    ran = run_rlm("ask", "-c", "last", str(tmp_path / "new.txt"), "And in the new file?", *server.cli_args(), env=FAST)

    assert ran.code == 0, ran.stderr
    assert ran.stdout == "2 -> 3\n"
    assert "have changed since" not in ran.stderr  # other sources, asked for: no warning about them
