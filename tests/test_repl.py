"""`rlm repl`: a person at the same REPL as the root model, through the real CLI and worker."""

from __future__ import annotations

from pathlib import Path

from conftest import run_rlm


def test_repl_runs_statements_and_sub_calls(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("alpha\nbeta\n")
    server = scripted_server([], sub_answer=lambda prompt: f"<{prompt}>")
    typed = "n = len(context)\nprint(n)\nfor i in range(2):\n    print(i)\n\nprint(llm_query('hi'))\ncontext.grep('beta')\n"
    ran = run_rlm("repl", str(tmp_path / "notes.txt"), *server.cli_args(), input=typed)

    assert ran.code == 0, ran.stderr
    assert ran.stdout == "11\n0\n1\n<hi>\n[notes.txt:2: beta]\n"
    assert ">>> " in ran.stderr and "... " in ran.stderr  # prompts stay off stdout
    assert len(server.sub_requests()) == 1


def test_repl_without_a_model_still_runs_code_and_says_why_llm_query_fails(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("alpha\n")
    ran = run_rlm("repl", str(tmp_path / "notes.txt"), input="print(context.upper())\nllm_query('hi')\n")

    assert ran.code == 0, ran.stderr
    assert ran.stdout.startswith("ALPHA\n")
    assert "SubcallError" in ran.stdout and "no model configured" in ran.stdout
    assert "llm_query needs a model" in ran.stderr


def test_repl_refuses_stdin_as_source() -> None:
    ran = run_rlm("repl", "-")
    assert ran.code == 2 and "stdin is the keyboard" in ran.stderr
