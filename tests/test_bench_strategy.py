"""`--strategy auto|rlm|direct` through the real CLI against the scripted server, and the choice itself.

The scripted root is named like a model whose window litellm knows (gpt-4o-mini, 128k tokens),
so `auto` has a window to compare the input with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import run_rlm
from scripted_server import Fault

from rlm_cli.errors import UsageError
from rlm_cli.strategy import choose, window_chars

FACT = "The vault code is 4417-KESTREL."


def test_auto_answers_directly_only_when_the_input_fits_comfortably() -> None:
    room = window_chars(8_192)  # what --strategy direct keeps of a longer input
    assert room is not None and 15_000 < room < 25_000
    assert choose("auto", 5_000, "q?", 8_192) == "direct"
    assert choose("auto", 18_000, "q?", 8_192) == "direct"  # e.g. the README: ~5k tokens
    assert choose("auto", 25_000, "q?", 8_192) == "rlm"  # might fit, but not comfortably
    assert choose("auto", 5_000, "q?", None) == "rlm"  # an unknown window is never assumed big enough
    assert choose("rlm", 10, "q?", 8_192) == "rlm" and choose("direct", 10**9, "q?", 8_192) == "direct"
    with pytest.raises(UsageError, match="--strategy"):
        choose("sometimes", 1, "q?", 8_192)


def reader(messages: list[dict[str, Any]]) -> str:
    """A direct prompt is one user message holding the text: answer from it."""
    assert len(messages) == 1 and "Answer the question using the text below" in messages[0]["content"]
    return "4417-KESTREL" if FACT in messages[0]["content"] else "not in what I was shown"


def notes(path: Path, lines: int, at: int) -> Path:
    body = [f"Entry {i}: the harbor office reviewed the quarry report." for i in range(lines)]
    body.insert(at, FACT)
    path.write_text("\n".join(body) + "\n")
    return path


def ask(server: Any, source: Path, *extra: str) -> Any:
    return run_rlm("ask", str(source), "What is the vault code?", "--api-base", server.url, "--model", "openai/gpt-4o-mini",
                   "--json", *extra)


def test_auto_on_a_small_input_is_one_prompt_with_the_whole_text_and_no_worker(scripted_server: Any, tmp_path: Path) -> None:
    server = scripted_server([reader], root_model="gpt-4o-mini")
    trace = tmp_path / "t.jsonl"
    ran = ask(server, notes(tmp_path / "small.txt", 200, 150), "--trace", str(trace))

    assert ran.code == 0, ran.stderr
    data = ran.json()
    assert (data["answer"], data["status"], data["iterations"], data["subcalls"]) == ("4417-KESTREL", "ok", 1, 0)
    assert len(server.root_requests()) == 1
    kinds = [json.loads(line)["type"] for line in trace.read_text().splitlines()]
    assert kinds[kinds.index("run_start"):] == ["run_start", "notice", "root_response", "final", "run_end"]


def test_auto_on_an_input_past_the_window_runs_the_rlm_loop(scripted_server: Any, tmp_path: Path) -> None:
    code = "```repl\nFINAL(context.grep('vault code')[0].text.split(' is ')[1].rstrip('.'))\n```"
    server = scripted_server([code], root_model="gpt-4o-mini")
    ran = ask(server, notes(tmp_path / "big.txt", 9_000, 4_000))  # ~510k characters, ~145k tokens

    assert ran.code == 0, ran.stderr
    assert ran.json()["answer"] == "4417-KESTREL"
    assert "```repl" in server.root_requests()[0].messages[0]["content"]  # the RLM system prompt


def test_auto_turns_to_the_loop_when_the_model_refuses_the_prompt_as_too_long(scripted_server: Any, tmp_path: Path) -> None:
    refusal = json.dumps({"error": {"message": "This model's maximum context length is 128000 tokens.",
                                    "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}})
    code = "```repl\nFINAL('from the loop')\n```"
    server = scripted_server([Fault.http(400, body=refusal), code], root_model="gpt-4o-mini")
    ran = ask(server, notes(tmp_path / "small.txt", 200, 150))

    assert ran.code == 0, ran.stderr
    assert ran.json()["answer"] == "from the loop"
    assert "did not fit the root model's window after all" in ran.stderr


def test_direct_past_the_window_keeps_the_head_and_tail(scripted_server: Any, tmp_path: Path) -> None:
    server = scripted_server([reader, reader], root_model="gpt-4o-mini")
    big = notes(tmp_path / "big.txt", 12_000, 5)

    ran = ask(server, big, "--strategy", "direct")
    assert ran.code == 0, ran.stderr
    assert ran.json()["answer"] == "4417-KESTREL"  # near the head: kept
    prompt = server.root_requests()[0].prompt
    assert "characters omitted" in prompt and len(prompt) < big.stat().st_size


def test_an_unknown_strategy_is_a_usage_error_before_any_model_call(scripted_server: Any, tmp_path: Path) -> None:
    server = scripted_server([], root_model="gpt-4o-mini")
    ran = ask(server, notes(tmp_path / "n.txt", 5, 1), "--strategy", "sometimes")
    assert ran.code == 2 and "--strategy must be one of auto, rlm, direct" in ran.stderr
    assert "Traceback" not in ran.stderr and not server.requests
