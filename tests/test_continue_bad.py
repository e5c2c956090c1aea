"""Bad input to `rlm ask -c` and `rlm resume`: one line on stderr, the documented exit code, nothing lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST, Ran, of_type, run_rlm


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def _one_line(ran: Ran, code: int, text: str) -> None:
    assert ran.code == code, ran.stderr
    lines = ran.stderr.strip().splitlines()
    assert "Traceback" not in ran.stderr
    assert lines[-1].startswith("rlm: ") and text in lines[-1], ran.stderr
    assert ran.stdout == ""


def _records(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


@pytest.fixture()
def earlier(scripted_server: Any, tmp_path: Path) -> tuple[Any, Path, Path]:
    """One finished run over log.txt that left `counts`; its server, source and trajectory."""
    source = tmp_path / "log.txt"
    source.write_text("error a\nok\n")
    server = scripted_server([repl("counts = {'error a': 1}\nFINAL('1')")])
    trace = tmp_path / "first.jsonl"
    ran = run_rlm("ask", str(source), "How many errors?", *server.cli_args(), "--trace", str(trace), env=FAST)
    assert ran.code == 0, ran.stderr
    return server, source, trace


def test_unknown_or_unreadable_runs_are_exit_3(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("not json\n{\"half\": ")
    headless = tmp_path / "headless.jsonl"
    headless.write_text(json.dumps({"type": "notice", "t": 0, "message": "loaded", "level": "info"}) + "\n")
    for args, message in (
        (("ask", "-c", "nope", "q?"), "no run 'nope' in "),
        (("ask", "-c", "q?"), "no runs yet in "),
        (("resume", "nope"), "no run 'nope' in "),
        (("ask", "-c", str(garbage), "q?"), "is not a trajectory"),
        (("resume", str(headless)), "holds no run_start record"),
    ):
        _one_line(run_rlm(*args), 3, message)


def test_usage_errors_are_exit_2(earlier: tuple[Any, Path, Path], tmp_path: Path) -> None:
    server, source, trace = earlier
    _one_line(run_rlm("ask", str(source), "q?", "extra"), 2, "unexpected argument 'extra'")
    _one_line(run_rlm("ask", "-c", "--add", str(source), "q?"), 2, "give SOURCE again")
    _one_line(run_rlm("resume", str(trace), *server.cli_args()), 2, "ended with an answer (status ok)")


def test_changed_sources_are_said_and_used_vanished_ones_are_exit_3(earlier: tuple[Any, Path, Path]) -> None:
    server, source, trace = earlier
    source.write_text("error a\nerror b\nok\n")
    server.add_root_replies(repl("FINAL(str(len(context.splitlines())))"))

    changed = run_rlm("ask", "-c", str(trace), "And now?", *server.cli_args(), env=FAST)

    assert changed.code == 0, changed.stderr
    assert changed.stdout == "3\n"  # the sources as they are now
    assert [line for line in changed.stderr.splitlines() if "have changed since it ran" in line]

    source.unlink()
    gone = run_rlm("ask", "-c", str(trace), "And now?", *server.cli_args(), env=FAST)
    _one_line(gone, 3, f"{source}, a source of run first, is gone")
    assert of_type(_records(trace), "state") and trace.with_suffix(".state").exists()  # nothing lost


def test_a_corrupt_or_missing_state_file_goes_on_without_the_variables(earlier: tuple[Any, Path, Path]) -> None:
    server, _, trace = earlier
    state = trace.with_suffix(".state")
    kept = state.read_bytes()
    told: list[str] = []

    def check(messages: list[dict]) -> str:
        told.append(json.dumps(messages))
        return repl("FINAL(str('counts' in dir()))")

    server.add_root_replies(check, check)
    state.write_bytes(kept[: len(kept) // 2])
    corrupt = run_rlm("ask", "-c", str(trace), "Still there?", *server.cli_args(), env=FAST)
    state.unlink()
    missing = run_rlm("ask", "-c", str(trace), "Still there?", *server.cli_args(), env=FAST)

    for ran in (corrupt, missing):
        assert ran.code == 0, ran.stderr
        assert ran.stdout == "False\n"
    assert "could not be restored" in corrupt.stderr and "could not be restored" in told[0]
    assert "is missing or too large; going on without its variables" in missing.stderr
    assert "holds no variables of the earlier run" in told[1]


def test_resume_of_a_truncated_trajectory_goes_on_from_what_it_holds(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    # The second reply is the last turn a limit leaves; the third is the resumed run's.
    server = scripted_server([repl("step = 1\nprint('one')"), "Still looking.", repl("FINAL(step + 1)")])
    trace = tmp_path / "first.jsonl"
    first = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--trace", str(trace), "--max-iterations", "1", env=FAST)
    assert first.code == 5, first.stderr
    text = trace.read_text()
    trace.write_text(text[: len(text) - 30])  # the run_end record cut in half, as a crash leaves it

    ran = run_rlm("resume", str(trace), *server.cli_args(), env=FAST)

    assert ran.code == 0, ran.stderr
    assert ran.stdout == "2\n"  # `step` came back
    assert "skipped 1 damaged line(s)" in ran.stderr


def test_a_follow_up_on_a_run_that_read_stdin_needs_the_source_again(scripted_server: Any) -> None:
    server = scripted_server([repl("FINAL(len(context))")])
    first = run_rlm("ask", "-", "How long?", *server.cli_args(), input="abc\n", env=FAST)
    assert first.code == 0, first.stderr

    _one_line(run_rlm("ask", "-c", "Longer?", *server.cli_args()), 3, "read its input from stdin, which cannot be read again")


def test_ctrl_c_in_a_cell_that_ignores_it_keeps_no_state_and_says_so(scripted_server: Any, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    stubborn = "lost = 1\nimport signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('in', flush=True)\ntime.sleep(60)"
    server = scripted_server([repl(stubborn), repl("FINAL(str('lost' in dir()))")])
    trace = tmp_path / "first.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlm_cli", "ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--trace", str(trace)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **FAST},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (trace.exists() and of_type(_records(trace), "root_response")):
        time.sleep(0.05)
    time.sleep(1.5)  # the cell ignores SIGINT and sleeps now
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 130, stderr.decode()
    assert time.monotonic() - sent < 15.0  # stops promptly (how fast is for benchmarks)
    assert "could not be kept for a follow-up" in stderr.decode()
    assert not of_type(_records(trace), "state") and _records(trace)[-1]["type"] == "run_end"

    ran = run_rlm("ask", "-c", str(trace), "Still there?", *server.cli_args(), env=FAST)
    assert ran.code == 0, ran.stderr
    assert ran.stdout == "False\n" and "left no REPL state" in ran.stderr
