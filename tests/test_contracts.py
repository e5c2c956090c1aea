"""DESIGN.md's contracts through the real CLI, a real worker and the scripted server: sizes,
limits, the truth after an error, visible sub-RLMs, and options checked before any model call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import run_rlm
from scripted_server import Fault


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_named_file_loads_whatever_its_size(scripted_server, tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    line = "2026-11-30T10:00:00 worker INFO handled request in 12 ms\n"
    log.write_text(line * (7_800_000 // len(line)) + "2026-11-30T11:00:00 db ERROR disk full\n")
    assert log.stat().st_size > 7_000_000  # beyond the default --max-file-size of 5M
    server = scripted_server([repl("FINAL(context.grep('ERROR')[0].text.split(' ', 1)[1])")])
    ran = run_rlm("ask", str(log), "What failed?", *server.cli_args())

    assert ran.code == 0, ran.stderr
    assert ran.stdout == "db ERROR disk full\n"


def test_max_file_size_still_applies_inside_a_directory(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "big.txt").write_text("x" * 2_000)
    (tmp_path / "src" / "small.txt").write_text("hello\n")
    server = scripted_server([repl("FINAL(sorted(context.files))")])
    ran = run_rlm("ask", str(tmp_path / "src"), "q?", *server.cli_args(), "--max-file-size", "1k")

    assert ran.code == 0, ran.stderr
    assert ran.stdout == "['small.txt']\n"
    assert "skipped 1 (larger than --max-file-size (2.0 kB > 1.0 kB)): big.txt" in ran.stderr


def test_max_subcalls_ends_the_run_as_a_limit_with_the_partial_answer(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    code = "answers = llm_query_batched([f'q{i}' for i in range(5)])\nprint(sum(a.startswith('ERROR: sub-call limit') for a in answers))"

    def last(messages: list[dict]) -> str:
        assert "sub-call budget (--max-subcalls) is spent" in messages[-1]["content"]
        return repl("FINAL('partial: 2 of 5')")

    server = scripted_server([repl(code), last])
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--max-subcalls", "2", "--json")

    assert ran.code == 5, ran.stderr
    data = ran.json()
    assert (data["status"], data["answer"], data["subcalls"]) == ("limit", "partial: 2 of 5", 2)
    assert "sub-call limit reached (--max-subcalls 2)" in data["error"]
    assert len(server.sub_requests()) == 2


def test_json_and_run_end_tell_the_truth_after_a_model_error(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    server = scripted_server([repl("print(len(context))")])  # the second root call finds the script exhausted
    trace = tmp_path / "t.jsonl"
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--json", "--trace", str(trace))

    assert ran.code == 4, ran.stderr
    data = ran.json()
    assert data["status"] == "error" and "request rejected" in data["error"]
    assert data["iterations"] == 1 and data["usage"]["input_tokens"] > 0 and data["duration_s"] > 0
    end = records(trace)[-1]
    assert end["type"] == "run_end" and end["status"] == "error"
    assert (end["iterations"], end["usage"]["input_tokens"]) == (data["iterations"], data["usage"]["input_tokens"])


def test_a_sub_rlm_is_in_the_trajectory_with_its_own_cells_under_it(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")

    def sub_answer(prompt: str) -> str:  # the sub-RLM's own root turns go to the sub-model
        return repl("FINAL(context.upper())")

    server = scripted_server([repl("r = rlm_query('Shout it', context='hello')\nFINAL(r)")], sub_answer=sub_answer)
    trace = tmp_path / "t.jsonl"
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--max-depth", "2", "--trace", str(trace))

    assert ran.code == 0, ran.stderr
    assert ran.stdout == "HELLO\n"
    rows = records(trace)
    (call,) = [r for r in rows if r["type"] == "subcall" and r["kind"] == "rlm"]
    assert (call["depth"], call["cell_id"], call["parent"]) == (1, 1, None)
    assert call["usage"]["input_tokens"] > 0 and "cost" in call and call["duration_s"] > 0
    inner = [r for r in rows if r["type"] in ("root_response", "cell") and r["depth"] == 1]
    assert {r["type"] for r in inner} == {"root_response", "cell"}
    assert all(r["parent"] == call["id"] for r in inner)


def test_timeout_covers_loading_the_sources(scripted_server, tmp_path: Path) -> None:
    fifo = tmp_path / "slow.fifo"
    os.mkfifo(fifo)

    def slow_writer() -> None:  # a writer that opens at once but takes 20 s to finish
        with open(fifo, "w") as f:
            f.write("first line\n")
            f.flush()
            time.sleep(20)

    threading.Thread(target=slow_writer, daemon=True).start()
    server = scripted_server([repl("FINAL(1)")])
    ran = run_rlm("ask", str(fifo), "q?", *server.cli_args(), "--timeout", "2", "--json", timeout=60)

    assert ran.code == 5, ran.stderr
    data = ran.json()
    assert data["status"] == "limit" and "while loading the sources" in data["error"]
    assert ran.duration_s < 15
    assert server.requests == []


def test_an_output_in_a_missing_directory_fails_before_any_model_call(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    server = scripted_server([repl("FINAL(1)")])
    for option in ("-o", "--trace"):
        ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), option, str(tmp_path / "nope" / "out"))
        assert ran.code == 2, ran.stderr
        assert f"cannot write {option}" in ran.stderr and "no such directory" in ran.stderr
        assert "Traceback" not in ran.stderr
    assert server.requests == []


def test_max_cost_zero_is_a_limit_not_a_crash(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    server = scripted_server([repl("FINAL(1)")])
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--max-cost", "0")

    assert ran.code == 5, ran.stderr
    assert "rlm: stopped: cost limit reached" in ran.stderr and "internal error" not in ran.stderr


def test_a_provider_answering_no_choices_is_a_model_error(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    server = scripted_server([])
    server.inject("root", Fault.empty_choices(), count=10)
    ran = run_rlm(
        "ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), env={"RLM_MAX_RETRIES": "2", "RLM_RETRY_BASE_DELAY": "0"}
    )

    assert ran.code == 4, ran.stderr
    assert "no choices" in ran.stderr
    assert len(server.root_requests()) == 3


def test_malformed_settings_are_usage_errors(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    server = scripted_server([repl("FINAL(1)")])
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), env={"RLM_MAX_RETRIES": "many"})
    assert ran.code == 2 and "RLM_MAX_RETRIES='many' is not a whole number" in ran.stderr

    config = tmp_path / "config.toml"
    config.write_text("model = [1, 2]\n")
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", env={"RLM_CONFIG": str(config)})
    assert ran.code == 2 and "model must be a string" in ran.stderr
    assert server.requests == []


def test_inspect_loads_no_model_stack(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("def main():\n    pass\n")
    code = (
        "import sys\nfrom rlm_cli.cli import main\n"
        "try:\n    main(['inspect', sys.argv[1]])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('litellm', 'openai', 'httpx')))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
