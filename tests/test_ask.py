"""`rlm ask` end to end: the real CLI, a real worker, real litellm HTTP calls to a scripted server."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import run_rlm
from scripted_server import Fault, last_user_text

from rlm_cli.worker.sandbox import descendants


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def write_log(path: Path, lines: int, needle_at: int, needle: str) -> None:
    rng = random.Random(7)
    with open(path, "w") as f:
        for i in range(lines):
            if i == needle_at:
                f.write(needle + "\n")
            f.write(f"2026-11-21T09:{i % 60:02d}:00 worker-{rng.randint(1, 64)} INFO handled request id={rng.getrandbits(40):x}\n")


def test_needle_in_multi_megabyte_stdin_found_by_grep(scripted_server, tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    write_log(log, 80_000, needle_at=61_234, needle="2026-11-21T10:00:00 vault ERROR the secret code is 7481")
    assert log.stat().st_size > 4_000_000

    def second(messages: list[dict]) -> str:
        assert "the secret code is 7481" in last_user_text(messages)  # the grep output was fed back
        return repl("FINAL(re.search(r'code is (\\d+)', hits[0].text).group(1))")

    server = scripted_server([repl("import re\nhits = context.grep(r'secret code')\nprint(len(context), hits)"), second])
    trace = tmp_path / "run.jsonl"
    ran = run_rlm("ask", "-", "What is the secret code?", *server.cli_args(), "--trace", str(trace), input=log.read_bytes())

    assert ran.code == 0, ran.stderr
    assert ran.stdout == "7481\n"
    assert "iteration 1" in ran.stderr and "context.grep" in ran.stderr  # the trace is on stderr
    # The input never travels in a prompt: every root request is small.
    assert max(len(json.dumps(r.messages)) for r in server.root_requests()) < 20_000
    assert trace.stat().st_size < 100_000
    types = [json.loads(line)["type"] for line in trace.read_text().splitlines()]
    assert types[0] == "notice" and "run_start" in types and types[-2:] == ["final", "run_end"]
    assert types.count("cell") == 2 and types.count("root_response") == 2


def test_map_reduce_over_directory_runs_sub_calls_concurrently(scripted_server, tmp_path: Path) -> None:
    src = tmp_path / "shards"
    src.mkdir()
    counts = {f"shard{i:02d}.txt": (i * 37) % 101 for i in range(32)}
    for name, n in counts.items():
        (src / name).write_text(f"header\nitems counted: {n}\nfooter\n")

    def sub_answer(prompt: str) -> str:
        return re.search(r"items counted: (\d+)", prompt).group(1)

    code = (
        "prompts = [f'How many items were counted?\\n{text}' for text in context.files.values()]\n"
        "answers = llm_query_batched(prompts)\n"
        "total = sum(int(a) for a in answers)\n"
        "print(len(answers), total)"
    )
    server = scripted_server([repl(code), repl("FINAL(total)")], sub_answer=sub_answer, sub_latency=0.3)
    ran = run_rlm("ask", str(src), "How many items in all?", *server.cli_args(), "--concurrency", "8", "--max-concurrency", "8")

    assert ran.code == 0, ran.stderr
    assert ran.stdout.strip() == str(sum(counts.values()))
    assert len(server.sub_requests()) == 32
    assert server.max_in_flight("sub") == 8  # concurrent, and never above --max-concurrency
    assert "sub-calls 32/32" in ran.stderr


def test_final_var_returns_a_value_larger_than_any_model_output(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("abc\n")
    server = scripted_server([repl("big = '\\n'.join(f'row {i}' for i in range(400_000))\nFINAL_VAR('big')")])
    out = tmp_path / "answer.txt"
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "List every row", *server.cli_args(), "-o", str(out))

    assert ran.code == 0, ran.stderr
    assert ran.stdout == ""  # -o takes the answer off stdout
    text = out.read_text()
    assert len(text) > 3_000_000
    assert text.splitlines()[-1] == "row 399999"


def test_reply_without_code_gets_a_corrective_turn(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("the answer is 42\n")

    def after_correction(messages: list[dict]) -> str:
        assert "no ```repl code block" in last_user_text(messages)
        return repl("FINAL(context.split()[-1])")

    server = scripted_server(["I believe FINAL(41) is the answer.", after_correction])
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "What is the answer?", *server.cli_args())

    assert ran.code == 0, ran.stderr
    assert ran.stdout == "42\n"  # FINAL in prose did not end the run
    assert len(server.root_requests()) == 2


def test_a_cell_that_raises_is_shown_to_the_model_and_the_run_goes_on(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")

    def after_error(messages: list[dict]) -> str:
        assert "ZeroDivisionError" in last_user_text(messages)
        return repl("FINAL('recovered')")

    server = scripted_server([repl("ratio = 1 / 0"), after_error])
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args())

    assert ran.code == 0, ran.stderr
    assert ran.stdout == "recovered\n"
    assert "error: ZeroDivisionError" in ran.stderr


def test_overwritten_repl_names_are_restored(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("0123456789")

    def after(messages: list[dict]) -> str:
        text = last_user_text(messages)
        assert "`context`" in text and "`llm_query`" in text and "restored" in text
        return repl("FINAL(llm_query('say hi') + ' ' + str(len(context)))")

    server = scripted_server([repl("llm_query = None\ncontext = 'gone'\ndel FINAL"), after], sub_answer=lambda p: "hi")
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args())

    assert ran.code == 0, ran.stderr
    assert ran.stdout == "hi 10\n"


def test_cell_timeout_interrupts_the_cell_and_keeps_the_variables(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")

    def after(messages: list[dict]) -> str:
        text = last_user_text(messages)
        assert "cell time limit" in text and "KeyboardInterrupt" in text and "restarted" not in text
        return repl("FINAL(kept)")

    server = scripted_server([repl("kept = 'still here'\nimport time\ntime.sleep(60)"), after])
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--cell-timeout", "1")

    assert ran.code == 0, ran.stderr
    assert ran.stdout == "still here\n"
    assert ran.duration_s < 30


def test_time_a_cell_waits_for_its_sub_calls_does_not_count_against_the_cell_timeout(scripted_server, tmp_path: Path) -> None:
    """A slow sub-model (a local one reads a chunk in a minute) must not get a scan interrupted."""
    (tmp_path / "in.txt").write_text("x\n")
    code = "import time\nnotes = llm_query_batched(['a', 'b'])\nnotes += [llm_query('c')]\nprint(len(notes), 'done')"
    server = scripted_server([repl(code), lambda messages: repl(f"FINAL({last_user_text(messages).count('3 done')!r})")],
                             sub_answer=lambda p: "ok", sub_latency=1.5)
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--cell-timeout", "1", "--no-cache")

    assert ran.code == 0, ran.stderr
    assert ran.stdout == "1\n"  # the cell ran 3 s of sub-calls and finished


def test_a_cell_that_lives_on_sub_calls_is_still_interrupted(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")

    def after(messages: list[dict]) -> str:
        text = last_user_text(messages)
        assert "cell time limit" in text and "KeyboardInterrupt" in text
        return repl("FINAL(asked)")

    code = "asked = 0\nwhile True:\n    llm_query(f'again {asked}')\n    asked += 1"
    server = scripted_server([repl(code), after], sub_answer=lambda p: "ok", sub_latency=0.05)
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--cell-timeout", "0.2", "--no-cache")

    assert ran.code == 0, ran.stderr
    # It ran on while its sub-calls were answered, and was stopped by the ceiling (about 2 s of
    # 50 ms calls), not by its own time between calls (about a thousand calls later).
    assert 10 < int(ran.stdout) < 200


def test_a_cell_that_ignores_the_interrupt_gets_its_worker_restarted(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("0123456789")

    def after(messages: list[dict]) -> str:
        text = last_user_text(messages)
        assert "restarted" in text
        return repl("FINAL(f\"{'lost' not in dir()} {len(context)}\")")

    code = "lost = 1\nimport signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)"
    server = scripted_server([repl(code), after])
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--cell-timeout", "1")

    assert ran.code == 0, ran.stderr
    assert ran.stdout == "True 10\n"  # variables gone, context back


def test_no_model_configured_is_exit_4_with_the_ways_to_configure_one(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?")

    assert ran.code == 4
    assert ran.stdout == ""
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlm: error: no model configured")
    for way in ("--model", "RLM_MODEL", "config.toml", "--api-base"):
        assert way in lines[0]


def test_missing_path_is_exit_3(scripted_server, tmp_path: Path) -> None:
    server = scripted_server([])
    ran = run_rlm("ask", str(tmp_path / "nope"), "q?", *server.cli_args())

    assert ran.code == 3
    assert "Traceback" not in ran.stderr
    assert ran.stderr.strip().splitlines()[-1].startswith("rlm: error: no such file or directory")
    assert server.requests == []  # no model call for a run that cannot start


def test_json_output(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha\n")
    (tmp_path / "b.txt").write_text("beta\n")
    code = "parts = llm_query_batched(['one', 'two'])\nFINAL(' '.join(sorted(context.files)))"
    server = scripted_server([repl(code)])
    trace = tmp_path / "t.jsonl"
    ran = run_rlm("ask", str(tmp_path), "Which files?", *server.cli_args(), "--json", "--trace", str(trace))

    assert ran.code == 0, ran.stderr
    data = ran.json()
    assert data["answer"] == "a.txt b.txt"
    assert data["status"] == "ok" and data["error"] is None
    assert (data["model"], data["sub_model"]) == ("openai/root", "openai/sub")
    assert (data["iterations"], data["subcalls"]) == (1, 2)
    assert data["usage"]["input_tokens"] > 0 and data["usage"]["output_tokens"] > 0
    assert data["usage"]["cost_usd"] is None  # the scripted models have no price
    assert data["trace_file"] == str(trace) and trace.exists()
    assert 0 < data["duration_s"] < 60


def test_iteration_limit_asks_for_a_last_answer_then_exits_5(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")

    def last(messages: list[dict]) -> str:
        assert "used all your iterations" in last_user_text(messages)
        return "I could not finish; partial: maybe x"

    server = scripted_server([repl("a = 1"), repl("b = 2"), last])
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--max-iterations", "2", "--json")

    assert ran.code == 5
    data = ran.json()
    assert data["status"] == "limit" and "iteration limit" in data["error"]
    assert data["answer"] == "I could not finish; partial: maybe x"


def test_provider_5xx_is_retried_and_recorded(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    server = scripted_server([repl("FINAL(llm_query('q'))")], sub_answer=lambda p: "sub ok")
    server.fail("root", 500, count=2)
    server.fail("sub", 429, count=1, retry_after=0.2)
    trace = tmp_path / "t.jsonl"
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--trace", str(trace))

    assert ran.code == 0, ran.stderr
    assert ran.stdout == "sub ok\n"
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    root = next(r for r in records if r["type"] == "root_response")
    sub = next(r for r in records if r["type"] == "subcall")
    assert len(root["faults"]) == 2 and "500" in root["faults"][0]
    assert len(sub["faults"]) == 1 and "429" in sub["faults"][0]


def test_authentication_failure_is_exit_4_without_retries(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    server = scripted_server([repl("FINAL(1)")])
    server.fail("root", 401)
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args())

    assert ran.code == 4
    assert "authentication failed" in ran.stderr
    assert len(server.root_requests()) == 1


def test_empty_root_reply_is_retried(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    server = scripted_server([repl("FINAL('fine')")])
    server.inject("root", Fault.null_content())
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args())

    assert ran.code == 0, ran.stderr
    assert ran.stdout == "fine\n"


def test_question_from_stdin_and_quiet(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")

    def check(messages: list[dict]) -> str:
        assert "Question: what is in here?" in last_user_text(messages)
        return repl("FINAL('x')")

    server = scripted_server([check])
    ran = run_rlm("ask", str(tmp_path / "in.txt"), *server.cli_args(), "-q", input="what is in here?\n")

    assert ran.code == 0, ran.stderr
    assert ran.stdout == "x\n"
    assert ran.stderr == ""


def test_usage_errors_are_exit_2(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    server = scripted_server([])
    empty = run_rlm("ask", str(tmp_path / "in.txt"), "   ", *server.cli_args())
    no_question = run_rlm("ask", "-", *server.cli_args(), input="data")
    bad_option = run_rlm("ask", str(tmp_path / "in.txt"), "q", "--concurrency", "0")

    for ran in (empty, no_question, bad_option):
        assert ran.code == 2, ran.stderr
        assert "Traceback" not in ran.stderr
    assert "question is empty" in empty.stderr
    assert "question is missing" in no_question.stderr


def test_ctrl_c_stops_the_run_keeps_the_trajectory_and_leaves_no_worker(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    server = scripted_server([repl("import time\nprint('started', flush=True)\ntime.sleep(60)")])
    trace = tmp_path / "t.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlm_cli", "ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--trace", str(trace)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not server.root_requests():
        time.sleep(0.1)
    time.sleep(1.5)  # the cell is sleeping in the worker now
    workers = descendants(proc.pid)
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    stdout, stderr = proc.communicate(timeout=30)

    assert proc.returncode == 130, stderr.decode()
    assert time.monotonic() - sent < 15.0  # stops promptly, not after the 60 s cell (speed is for benchmarks)
    assert stdout == b""
    assert stderr.decode().strip().splitlines()[-1] == "rlm: interrupted"
    types = [json.loads(line)["type"] for line in trace.read_text().splitlines()]
    assert "run_start" in types and types[-1] == "run_end"
    assert workers and not any(Path(f"/proc/{pid}").exists() for pid in workers)


def test_version_and_help_do_not_import_litellm() -> None:
    for args in (["--version"], ["--help"], ["ask", "--help"]):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "rlm_cli", *args], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0
        assert "litellm" not in proc.stderr
        assert "openai" not in proc.stderr
    version = run_rlm("--version")
    assert re.fullmatch(r"rlm \d+\.\d+\.\d+\n", version.stdout)




def test_rlm_query_starts_a_sub_rlm_when_depth_allows(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")

    def sub_answer(prompt: str) -> str:  # the sub-RLM's root turn is driven by the sub-model
        if prompt.startswith("Question: How long?"):
            return repl("FINAL(f'{len(context)} chars seen by the sub-RLM')")
        return "plain answer"

    code = "deep = rlm_query('How long?', context='y' * 1234)\nflat = llm_query('hi')\nFINAL(deep + ' / ' + flat)"
    server = scripted_server([repl(code), repl(code)], sub_answer=sub_answer)
    deep = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--max-depth", "2", "--json")
    shallow = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--json")

    assert deep.code == 0, deep.stderr
    assert deep.json()["answer"] == "1234 chars seen by the sub-RLM / plain answer"
    assert shallow.code == 0, shallow.stderr
    assert shallow.json()["answer"] == "plain answer / plain answer"  # at the depth limit, an llm_query


def test_a_model_that_repeats_itself_is_asked_for_its_answer(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("the code is 31\n")

    def answer(messages: list[dict]) -> str:
        assert "You keep running code you already ran" in last_user_text(messages)
        return repl("FINAL('31')")

    same = repl("print(context.grep('code'))")
    server = scripted_server([same, same, same, answer])
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--json")

    assert ran.code == 0, ran.stderr
    assert ran.json()["answer"] == "31"
    assert "you already ran exactly this code" in last_user_text(server.root_requests()[2].messages)


def test_a_provider_model_without_its_key_is_exit_4_at_once(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    proc = subprocess.run(
        [sys.executable, "-m", "rlm_cli", "ask", str(tmp_path / "in.txt"), "q?", "--model", "gpt-4o-mini", "-q"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 4
    assert proc.stderr.strip() == "rlm: error: gpt-4o-mini: no API key: set OPENAI_API_KEY in the environment"
