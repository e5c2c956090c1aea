"""`rlm runs`, `rlm show`, `rlm runs export` and `rlm ask --dry-run` through the real CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import Ran, run_rlm
from trajectories import write_run


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def _runs_dir() -> Path:
    return Path(os.environ["RLM_CACHE_DIR"]) / "runs"


def _ask(server, source: Path, question: str, *extra: str) -> Ran:  # type: ignore[no-untyped-def]
    ran = run_rlm("ask", str(source), question, *server.cli_args(), *extra)
    assert ran.code == 0, ran.stderr
    return ran


@pytest.fixture()
def two_runs(scripted_server, tmp_path: Path) -> tuple[Ran, Ran]:  # type: ignore[no-untyped-def]
    (tmp_path / "notes.txt").write_text("alpha\nbeta\n")
    code = "parts = llm_query_batched(['one', 'two'])\nprint(parts)"
    server = scripted_server(["Looking.\n" + repl(code), repl("FINAL('first answer')"), repl("FINAL('second answer')")])
    first = _ask(server, tmp_path / "notes.txt", "What is first?")
    second = _ask(server, tmp_path, "What is second?")
    return first, second


def test_runs_lists_what_was_asked_newest_first(two_runs: tuple[Ran, Ran]) -> None:
    listed = run_rlm("runs")
    assert listed.code == 0, listed.stderr
    header, newer, older = listed.stdout.splitlines()
    assert header.split()[:3] == ["ID", "WHEN", "STATUS"]
    assert "What is second?" in newer and "What is first?" in older
    assert " ok " in older and "openai/root / openai/sub" in older

    data = run_rlm("runs", "--json", "-n", "1").json()
    assert [r["question"] for r in data] == ["What is second?"]
    assert data[0]["answer"] == "second answer" and data[0]["iterations"] == 1 and data[0]["status"] == "ok"
    only = run_rlm("runs", "--json", "--source", "notes.txt").json()
    assert [r["question"] for r in only] == ["What is first?"] and only[0]["subcalls"] == 2
    assert run_rlm("runs", "--json", "--status", "limit").json() == []


def test_show_replays_the_trace_and_prints_the_answer(two_runs: tuple[Ran, Ran]) -> None:
    first, _ = two_runs
    first_id = run_rlm("runs", "--json").json()[1]["id"]

    shown = run_rlm("show", first_id)

    assert shown.code == 0, shown.stderr
    assert shown.stdout == first.stderr + "first answer\n"  # the live trace, then the answer
    assert run_rlm("show", "last").stdout.endswith("second answer\n")


def test_show_html_writes_one_page(two_runs: tuple[Ran, Ran], tmp_path: Path) -> None:
    page = tmp_path / "run.html"
    shown = run_rlm("show", "last", "--html", str(page))
    assert shown.code == 0, shown.stderr
    assert shown.stdout == "" and f"wrote {page}" in shown.stderr
    text = page.read_text()
    assert text.startswith("<!doctype html>") and "second answer" in text and "<script src" not in text


def test_bad_runs_are_one_line_and_exit_3(tmp_path: Path) -> None:
    write_run(_runs_dir() / "20261201-100000-1.jsonl")
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("not json at all\n")

    for args, message in (
        (("show", "nope"), "rlm: error: no run 'nope' in "),
        (("show", str(garbage)), "rlm: error: " + str(garbage) + " is not a trajectory"),
        (("show", str(tmp_path / "gone.jsonl")), "rlm: error: no trajectory file"),
    ):
        ran = run_rlm(*args)
        assert ran.code == 3, (args, ran.stderr)
        assert ran.stderr.count("\n") == 1 and ran.stderr.startswith(message), ran.stderr
    empty = run_rlm("show", "last", env={"RLM_CACHE_DIR": str(tmp_path / "fresh")})
    assert empty.code == 3 and "no runs yet" in empty.stderr


def test_bad_options_are_exit_2(tmp_path: Path) -> None:
    write_run(_runs_dir() / "a.jsonl")
    assert run_rlm("runs", "--status", "bogus").code == 2
    assert run_rlm("runs", "-n", "0").code == 2
    unwritable = run_rlm("show", "last", "--html", str(tmp_path / "no" / "such" / "dir.html"))
    assert unwritable.code == 2 and unwritable.stderr.startswith("rlm: error: cannot write --html")


def test_a_truncated_run_is_shown_with_a_warning(tmp_path: Path) -> None:
    path = write_run(_runs_dir() / "cut.jsonl", turns=3, subcalls=3, end=False)
    with open(path, "a") as f:
        f.write('{"type": "cell", "t": 9, "co')

    listed = run_rlm("runs", "--json").json()
    shown = run_rlm("show", "cut")

    assert listed[0]["status"] == "interrupted"
    assert shown.code == 0, shown.stderr
    assert "skipped 1 damaged line(s)" in shown.stderr and "incomplete" in shown.stderr
    assert "iteration 3" in shown.stdout


def test_export_writes_the_successful_runs(two_runs: tuple[Ran, Ran], tmp_path: Path) -> None:
    write_run(_runs_dir() / "limited.jsonl", status="limit", answer=None)
    out = tmp_path / "train.jsonl"

    ran = run_rlm("runs", "export", str(out), "--format", "chat")

    assert ran.code == 0, ran.stderr
    examples = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(examples) == 2 and "wrote 2 example(s)" in ran.stderr
    assert all(e["messages"][0]["role"] == "system" and e["messages"][-1]["role"] == "assistant" for e in examples)
    assert {e["messages"][1]["content"].splitlines()[0] for e in examples} == {"Question: What is first?", "Question: What is second?"}

    (second,) = [p for p in _runs_dir().glob("*.jsonl") if "second" in p.read_text() and p.name != "limited.jsonl"]
    with open(second, "a") as f:
        f.write(json.dumps({"type": "bench", "t": 99, "score": 1.0}) + "\n")
    scored = run_rlm("runs", "export", "-", "--min-score", "0.5")
    assert scored.code == 0, scored.stderr
    assert [json.loads(line)["messages"][1]["content"].splitlines()[0] for line in scored.stdout.splitlines()] == [
        "Question: What is second?"
    ]


def test_dry_run_calls_no_model(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("def main():\n    return 1\n")
    (tmp_path / "src" / "image.png").write_bytes(b"\x89PNG\x00\x00" * 10)
    server = scripted_server([], root_model="gpt-4o-mini")
    args = ("ask", str(tmp_path / "src"), "What does main return?", "--api-base", server.url,
            "--model", "openai/gpt-4o-mini", "--dry-run")

    text = run_rlm(*args)
    data = run_rlm(*args, "--json")

    assert text.code == 0 and data.code == 0, text.stderr + data.stderr
    assert server.requests == []
    assert "app.py" in text.stdout and "skipped 1 (" in text.stdout and "root prompt:" in text.stdout
    assert "estimated cost: root $" in text.stdout
    report = data.json()
    assert report["dry_run"] is True and [f["path"] for f in report["files"]] == ["app.py"]
    assert report["tokens"]["method"] == "o200k_base" and report["cost_usd"]["total"]["high"] > 0
    assert not list(_runs_dir().glob("*.jsonl"))  # no run, no trajectory
