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
from scripted_server import Fault, last_user_text


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def _runs() -> Path:
    return Path(os.environ["RLM_CACHE_DIR"]) / "runs"


def _records(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def _ask(server: Any, *args: str) -> Ran:
    return run_rlm("ask", *args, *server.cli_args(), "--json", env=FAST)


def test_a_follow_up_uses_a_variable_of_the_first_run_and_sees_its_answer(scripted_server, tmp_path: Path) -> None:
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

    second = run_rlm("ask", "-c", "Which error is most common?", *server.cli_args(), env=FAST)

    assert second.code == 0, second.stderr
    assert second.stdout == "2 of 3\n"
    sent = seen[0]
    assert "How many kinds of error?" in sent and "My answer was: 2" in sent  # the earlier Q&A
    assert "counts (Counter" in sent  # the model is told what came back
    assert "Which error is most common?" in sent
    records = _records(run_rlm("runs", "--json").json()[0]["path"])
    origin = of_type(records, "origin")[0]
    assert origin["follows"] == first.json()["trace_file"]
    assert origin["request"]["inputs"]["sources"] == [str(tmp_path / "log.txt")]
