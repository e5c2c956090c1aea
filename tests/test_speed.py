"""The fixed cost around model calls: which transport is loaded, deadlines, fault labels, the
adaptive limiter, the cross-run sub-call cache and split prompts.

Timings are benchmarks' business (benchmarks/bench_vs_rlms.py); these tests check behaviour:
what is imported, what the server saw, what the trajectory says.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import Ran, run_rlm
from scripted_server import Fault

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


def test_an_openai_compatible_endpoint_never_imports_litellm(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    server = scripted_server([repl("FINAL(llm_query('q'))")], sub_answer=lambda p: "sub ok")
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "rlm_cli", "ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "-q"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == "sub ok\n"
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "httpx" in imported and "rlm_cli.openai_client" in imported
    assert not {m for m in imported if m.split(".")[0] in ("litellm", "openai")}


def test_the_answer_is_printed_and_the_exit_code_kept_by_the_fast_exit(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    server = scripted_server([repl("FINAL('done')")])
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--json", "--max-iterations", "1")
    assert ran.code == 0 and ran.json()["answer"] == "done"
    limited = scripted_server(["no code", "still none"])
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *limited.cli_args(), "--max-iterations", "1")
    assert ran.code == 5 and ran.stderr.strip().splitlines()[-1].startswith("rlm: stopped:")


# -- per-request deadline and fault labels (issue 9, items 10 and 11) ---------------------------

FAST = {"RLM_RETRY_BASE_DELAY": "0.01"}


def ask_traced(server: Any, tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[Ran, list[dict]]:
    source = tmp_path / "in.txt"
    if not source.exists():
        source.write_text("0123456789\n")
    trace = tmp_path / "t.jsonl"
    ran = run_rlm("ask", str(source), "q?", *server.cli_args(), "--trace", str(trace), *extra, env={**FAST, **(env or {})})
    records = [json.loads(line) for line in trace.read_text().splitlines()] if trace.exists() else []
    return ran, records


def of_type(records: list[dict], kind: str) -> list[dict]:
    return [r for r in records if r["type"] == kind]


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
