"""Budgets end a run with exit 5 and say which limit did it: cost, sub-calls, time."""

from __future__ import annotations

from pathlib import Path

from conftest import run_rlm


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def test_max_cost_stops_the_run(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    # A priced model name (served by the scripted server) so litellm computes a real cost.
    server = scripted_server([repl("a = 1"), repl("FINAL('too late')")], root_model="gpt-4o-mini")
    ran = run_rlm(
        "ask", str(tmp_path / "in.txt"), "q?", "--api-base", server.url, "--model", "openai/gpt-4o-mini", "--strategy", "rlm",
        "--max-cost", "0.0000001", "--json",
    )

    assert ran.code == 5, ran.stderr
    data = ran.json()
    assert data["status"] == "limit" and "cost limit reached" in data["error"]
    assert data["usage"]["cost_usd"] > 0
    assert len(server.root_requests()) == 1  # no model call once the budget is spent


def test_max_subcalls_leaves_errors_in_the_slots_over_budget(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    code = "answers = llm_query_batched([f'q{i}' for i in range(5)])\nFINAL(sum(a.startswith('ERROR: sub-call limit') for a in answers))"
    server = scripted_server([repl(code)])
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--max-subcalls", "2", "--json")

    assert ran.code == 5, ran.stderr  # FINAL in the cell that ran out: the best partial answer
    assert ran.json()["answer"] == "3"
    assert (ran.json()["status"], ran.json()["subcalls"]) == ("limit", 2)
    assert len(server.sub_requests()) == 2


def test_timeout_ends_the_run_with_exit_5(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    server = scripted_server([repl("import time\ntime.sleep(30)")])
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--timeout", "3", "--json")

    assert ran.code == 5, ran.stderr
    data = ran.json()
    assert data["status"] == "limit" and "time limit reached (--timeout 3 s)" in data["error"]
    assert ran.duration_s < 25
