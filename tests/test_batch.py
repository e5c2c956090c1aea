"""`rlm batch`: the task file, the results file and resuming, the runner's sharing and budget.

In process, a fake model client enters through `Rlm(make_client=...)` (as in test_api.py) and a
list sink sees the batch's events; the workers are real. Through the real CLI, the scripted
server answers and the exit codes, stderr lines and results file are checked.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import run_rlm
from rich.console import Console
from test_api import ListSink, Models, Scripted, repl

from rlm_cli.api import Limits, ModelFlags, Rlm
from rlm_cli.batch.events import BadLine, BatchEnd, BatchNotice, BatchStart, Summary, TaskEnd, TaskStart
from rlm_cli.batch.results import ResultsFile, TaskResult
from rlm_cli.batch.runner import Batch, LocalRunner, Plan, trace_path
from rlm_cli.batch.tasks import Defaults, Problem, read_tasks
from rlm_cli.errors import InputError
from rlm_cli.events import Usage
from rlm_cli.trace.batch import BatchProgress

FIND_CODE = repl("FINAL(context.grep('code is')[0].text.split()[-1])")


def write_tasks(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def notes(tmp_path: Path, count: int) -> list[dict[str, Any]]:
    """`count` files, each with its own code, and a task asking for it."""
    tasks = []
    for i in range(count):
        (tmp_path / f"n{i}.txt").write_text(f"alpha\nthe code is {1000 + i}\nomega\n")
        tasks.append({"id": f"t{i}", "source": f"n{i}.txt", "question": "What is the code?"})
    return tasks


def results(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- the task file ------------------------------------------------------------------------


def test_a_bad_line_is_a_problem_with_its_number_and_the_other_lines_are_tasks(tmp_path: Path) -> None:
    path = write_tasks(
        tmp_path / "tasks.jsonl",
        [
            {"id": "a", "source": "n.txt", "question": "q?", "max_iterations": 3, "model": "m"},
            "{not json",
            {"id": "b", "sources": ["/abs/x", "https://example.com/r.git"], "question": "q?", "colour": "red"},
            {"id": "a", "source": "n.txt", "question": "again?"},
            {"source": "n.txt", "question": ""},
            {"source": "n.txt", "question": "no id", "max_cost": -1},
            "",
            {"source": "-", "question": "stdin?"},
            {"source": "n.txt", "question": "ok", "include": "*.py"},
        ],
    )
    tasks, problems = read_tasks(path, Defaults(models=ModelFlags(sub_model="s"), limits=Limits(max_iterations=7)))

    assert [(t.id, t.line) for t in tasks] == [("a", 1), ("line-9", 9)]
    first = tasks[0].request
    assert first.inputs.sources == (str(tmp_path / "n.txt"),)  # relative to the task file
    assert (first.models.model, first.models.sub_model, first.limits.max_iterations) == ("m", "s", 3)
    assert tasks[1].request.limits.max_iterations == 7 and tasks[1].request.inputs.include == ("*.py",)
    assert [(p.line, p.message.split(" (")[0].split(";")[0]) for p in problems] == [
        (2, "not JSON"),
        (3, "unknown key(s) colour"),
        (4, "id 'a' is used by an earlier line"),
        (5, "question must be a non-empty string"),
        (6, "max_cost must be a number of at least 0"),
        (8, "a task cannot read stdin"),
    ]
    assert problems[0].text("tasks.jsonl").startswith("tasks.jsonl:2: not JSON")


def test_a_missing_task_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_tasks(tmp_path / "none.jsonl")


def test_trace_names_are_safe_and_distinct(tmp_path: Path) -> None:
    assert trace_path(tmp_path, "svc-a.1") == tmp_path / "svc-a.1.jsonl"
    odd = {trace_path(tmp_path, name).name for name in ("a/b", "a:b", "../x")}
    assert len(odd) == 3 and all("/" not in name and not name.startswith(".") for name in odd)


# -- the results file -----------------------------------------------------------------------


def test_done_is_ok_or_limit_the_last_record_wins_and_close_compacts(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    lines = [TaskResult("a", "error", error="down", error_kind="model"), TaskResult("b", "limit"), TaskResult("a", "ok", answer="1")]
    path.write_text("".join(json.dumps(r.as_json()) + "\n" for r in lines) + '{"id": "c", "sta')  # cut short by a kill
    file = ResultsFile(path)
    assert (file.done("a"), file.done("b") is not None, file.done("c"), file.unreadable) == (lines[2], True, None, 1)

    file.open()
    file.append(TaskResult("c", "error", error="again", error_kind="input"))
    file.close()
    assert [(r["id"], r["status"]) for r in results(path)] == [("a", "ok"), ("b", "limit"), ("c", "error")]


# -- the runner, in process ------------------------------------------------------------------


def run_batch(
    tmp_path: Path, models: Models, lines: list[Any], jobs: int = 3, concurrency: int = 16, max_cost: float | None = None
) -> tuple[Summary, ListSink, Path]:
    tasks, problems = read_tasks(write_tasks(tmp_path / "tasks.jsonl", lines), Defaults(models=ModelFlags("root", "sub")))
    environ = {"RLM_CACHE_DIR": str(tmp_path / "cache"), "RLM_CONFIG": str(tmp_path / "none.toml")}
    out = tmp_path / "results.jsonl"
    sink = ListSink()
    batch = Batch(Plan(tasks, problems, "tasks.jsonl", tmp_path / "traces", max_cost), ResultsFile(out), sink)
    runner = LocalRunner(lambda sinks: Rlm(sinks, environ=environ, make_client=models, local_available=lambda: False), jobs, concurrency)
    return asyncio.run(runner.run(batch)), sink, out


def test_tasks_run_concurrently_each_gets_its_answer_and_trajectory(tmp_path: Path) -> None:
    root = Scripted("root", answer=lambda prompt: FIND_CODE, latency=0.2)
    summary, sink, out = run_batch(tmp_path, Models(root), notes(tmp_path, 6), jobs=3)

    assert (summary.ok, summary.failed, summary.total) == (6, 0, 6)
    got = {r["id"]: r for r in results(out)}
    assert {k: r["answer"] for k, r in got.items()} == {f"t{i}": str(1000 + i) for i in range(6)}
    assert all(Path(r["trace_file"]) == tmp_path / "traces" / f"{k}.jsonl" for k, r in got.items())
    assert all(json.loads(Path(r["trace_file"]).read_text().splitlines()[-1])["type"] == "run_end" for r in got.values())
    assert 2 <= root.max_in_flight <= 3  # --jobs 3: runs overlap, never more than three
    assert len(sink.of(TaskStart)) == len(sink.of(TaskEnd)) == 6 and sink.of(BatchEnd)


def test_every_task_shares_one_sub_call_limiter_per_provider(tmp_path: Path) -> None:
    # Prompts of their own per task (the question is in them), so the cross-run sub-call cache
    # that the tasks share does not answer any of them.
    code = repl("FINAL(str(len(llm_query_batched([f'{context.split()[4]} p{i}' for i in range(8)]))))")
    root = Scripted("root", answer=lambda prompt: code)
    sub = Scripted("sub", latency=0.1)
    summary, _, _ = run_batch(tmp_path, Models(root, sub), notes(tmp_path, 4), jobs=4, concurrency=3)

    assert summary.ok == 4 and len(sub.seen) == 32
    assert sub.max_in_flight == 3  # not 3 per task: the four tasks share the provider's three slots


def test_a_failing_task_never_stops_the_batch(tmp_path: Path) -> None:
    def answer(prompt: str) -> str:
        if "boom" in prompt:
            raise RuntimeError("a bug in the model client")
        return FIND_CODE

    lines = notes(tmp_path, 3)
    lines[1]["question"] = "boom?"
    lines.append({"id": "gone", "source": "nowhere.txt", "question": "q?"})
    lines.append({"id": "short", "source": "n0.txt", "question": "short?", "max_iterations": 1})
    root = Scripted("root", answer=lambda prompt: answer(prompt) if "short?" not in prompt else "prose, no code")
    summary, sink, out = run_batch(tmp_path, Models(root), [*lines, "[1, 2]"])

    got = {r["id"]: r for r in results(out)}
    assert (got["t0"]["status"], got["t2"]["status"]) == ("ok", "ok")
    assert (got["t1"]["status"], got["t1"]["error_kind"]) == ("error", "internal")
    assert "RuntimeError: a bug in the model client" in got["t1"]["error"]
    assert (got["gone"]["error_kind"], got["gone"]["error"]) == ("input", f"no such file or directory: {tmp_path / 'nowhere.txt'}")
    assert summary.errors == {"internal": 1, "input": 1} and summary.bad_lines == 1
    assert [e.problem.line for e in sink.of(BadLine)] == [6]


def test_a_rerun_skips_done_tasks_and_retries_failed_ones(tmp_path: Path) -> None:
    lines = notes(tmp_path, 3)
    (tmp_path / "n2.txt").unlink()
    root = Scripted("root", answer=lambda prompt: FIND_CODE)
    first, _, out = run_batch(tmp_path, Models(root), lines)
    assert (first.ok, first.errors) == (2, {"input": 1})

    (tmp_path / "n2.txt").write_text("the code is 1002\n")
    second, sink, _ = run_batch(tmp_path, Models(root), lines)
    assert (second.resumed, second.ok) == (2, 1)
    assert [e.id for e in sink.of(TaskStart)] == ["t2"]
    assert sorted((r["id"], r["status"]) for r in results(out)) == [("t0", "ok"), ("t1", "ok"), ("t2", "ok")]


def test_the_batch_max_cost_stops_starting_tasks(tmp_path: Path) -> None:
    root = Scripted("root", answer=lambda prompt: FIND_CODE, cost=0.01)
    summary, sink, out = run_batch(tmp_path, Models(root), notes(tmp_path, 6), jobs=1, max_cost=0.025)

    assert (summary.ok, summary.not_started) == (3, 3)
    assert len(results(out)) == 3 and summary.usage.cost_usd == pytest.approx(0.03)
    assert any("--max-cost $0.025 was reached" in n.message for n in sink.of(BatchNotice))


def test_summary_counts_kinds() -> None:
    summary = Summary()
    for result in (TaskResult("a", "ok", usage=Usage(1, 2, 0.5)), TaskResult("b", "error", error_kind="model"), TaskResult("c", "limit")):
        summary.count(result)
    assert (summary.ok, summary.limit, summary.errors, summary.usage) == (1, 1, {"model": 1}, Usage(1, 2, 0.5))


# -- the real CLI against the scripted server -------------------------------------------------


def test_the_cli_runs_a_batch_and_reports_bad_input_with_line_numbers(scripted_server, tmp_path: Path) -> None:
    lines = notes(tmp_path, 3)
    lines.insert(1, "{oops")
    lines.append({"id": "gone", "source": "nowhere.txt", "question": "q?"})
    server = scripted_server([FIND_CODE] * 3)
    tasks = write_tasks(tmp_path / "tasks.jsonl", lines)
    ran = run_rlm("batch", str(tasks), *server.cli_args(), "--jobs", "2")

    assert ran.code == 3, ran.stderr
    assert ran.stdout == ""
    assert f"error: {tasks}:2: not JSON" in ran.stderr
    assert "rlm: batch: 1 task(s) failed (input 1); 1 line(s) of the task file are not tasks" in ran.stderr
    got = {r["id"]: r for r in results(tmp_path / "tasks.results.jsonl")}
    assert {k: r["answer"] for k, r in got.items()} == {"t0": "1000", "t1": "1001", "t2": "1002", "gone": None}
    assert len(server.root_requests()) == 3


def test_the_cli_exit_code_says_a_limit_or_a_model_error(scripted_server, tmp_path: Path) -> None:
    lines = notes(tmp_path, 2)
    lines[1]["max_iterations"] = 1
    server = scripted_server([FIND_CODE, "prose", "still prose"])
    ran = run_rlm("batch", str(write_tasks(tmp_path / "tasks.jsonl", lines)), *server.cli_args(), "--jobs", "1", "-o", str(tmp_path / "o.jsonl"))
    assert ran.code == 5, ran.stderr
    assert "rlm: batch: 1 task(s) ended on a limit" in ran.stderr

    dead = {"id": "dead", "source": "n0.txt", "question": "q?", "api_base": "http://127.0.0.1:9/v1"}
    ran = run_rlm(
        "batch", str(write_tasks(tmp_path / "t2.jsonl", [dead])), *server.cli_args(), "-o", str(tmp_path / "o2.jsonl"),
        env={"RLM_MAX_RETRIES": "0"},
    )
    assert ran.code == 4, ran.stderr
    assert results(tmp_path / "o2.jsonl")[0]["error_kind"] == "model"


def test_ctrl_c_keeps_finished_results_and_the_rerun_does_not_redo_them(scripted_server, tmp_path: Path) -> None:
    server = scripted_server([FIND_CODE] * 12, root_latency=2.0)  # the other tasks take 10 s: time to interrupt
    tasks = write_tasks(tmp_path / "tasks.jsonl", notes(tmp_path, 6))
    out = tmp_path / "tasks.results.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlm_cli", "batch", str(tasks), *server.cli_args(), "--jobs", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy(),
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and (not out.exists() or not out.read_text().strip()):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 130, stderr.decode()
    finished = [r["id"] for r in results(out)]
    assert 1 <= len(finished) < 6 and all(r["status"] == "ok" for r in results(out))
    before = len(server.root_requests())

    ran = run_rlm("batch", str(tasks), *server.cli_args(), "--jobs", "3")
    assert ran.code == 0, ran.stderr
    assert f"{6 - len(finished)} task(s) to run ({len(finished)} done earlier)" in ran.stderr
    assert len(server.root_requests()) - before == 6 - len(finished)
    assert sorted(r["id"] for r in results(out)) == [f"t{i}" for i in range(6)]


def test_the_plain_progress_prints_each_task_that_ends_and_a_closing_line() -> None:
    out = io.StringIO()
    view = BatchProgress(Console(file=out, width=200, no_color=True), live=False)
    summary = Summary(total=3, ok=1, errors={"input": 1}, bad_lines=1, usage=Usage(100, 20, None), duration_s=2.0)
    for event in (
        BatchStart(2, 2, 4, "this machine"),
        BadLine(Problem(3, "not JSON (Expecting value, column 1)"), "tasks.jsonl"),
        BatchNotice("sandbox: no network namespace", "warning"),
        BatchNotice("sandbox: no network namespace", "warning"),
        TaskStart("a"),
        TaskEnd(TaskResult("a", "ok", answer="1", usage=Usage(100, 20, None), duration_s=1.5)),
        TaskEnd(TaskResult("b", "error", error="no such file or directory: x", error_kind="input")),
        BatchEnd(summary),
    ):
        view.emit(event)
    assert out.getvalue().splitlines() == [
        "rlm batch · 2 task(s) to run · 4 at a time on this machine",
        "error: tasks.jsonl:3: not JSON (Expecting value, column 1)",
        "warning: sandbox: no network namespace",
        "[1/2] a · ok · 1.5 s · 120 tok",
        "[2/2] b · error · 0.0 s · 0 tok · no such file or directory: x",
        "batch: 1 ok · 0 limit · 1 failed · 1 bad line(s) · 120 tok · 2.0 s · 1.00 tasks/s",
    ]
