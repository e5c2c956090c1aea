"""The fixed cost around model calls: which transport is loaded, deadlines, fault labels, the
adaptive limiter, the cross-run sub-call cache and split prompts.

Timings are benchmarks' business (benchmarks/bench_vs_rlms.py); these tests check behaviour:
what is imported, what the server saw, what the trajectory says.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import run_rlm

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
