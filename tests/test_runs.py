"""Reading runs back: summaries, the index, RUN resolution, damaged files, replay, export."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from conftest import run_rlm
from rich.console import Console
from trajectories import write_run

from rlm_cli.errors import InputError
from rlm_cli.runs.export import chat_messages, export_chat
from rlm_cli.runs.index import INDEX_NAME
from rlm_cli.runs.records import read_run
from rlm_cli.runs.replay import events
from rlm_cli.runs.store import list_runs, resolve, select
from rlm_cli.runs.summary import TAIL_BYTES, summarise, summarise_file
from rlm_cli.trace.console import ConsoleTrace


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def _aged(path: Path, seconds_ago: float) -> Path:
    stamp = 1_800_000_000 - seconds_ago
    os.utime(path, (stamp, stamp))
    return path


def test_runs_are_listed_newest_first_with_what_the_trajectory_holds(tmp_path: Path) -> None:
    _aged(write_run(tmp_path / "old.jsonl", question="first?", turns=2, subcalls=3), 300)
    _aged(write_run(tmp_path / "mid.jsonl", question="second?", status="limit", answer=None), 200)
    _aged(write_run(tmp_path / "new.jsonl", question="third?", end=False, turns=4, subcalls=8, sources=("repo",)), 100)

    runs = list_runs(tmp_path)

    assert [r.id for r in runs] == ["new", "mid", "old"]
    old = runs[2]
    assert (old.status, old.question, old.sources, old.model, old.sub_model) == ("ok", "first?", ["app.log"], "openai/root", "openai/sub")
    assert (old.iterations, old.subcalls, old.answer) == (2, 3, "42 errors")
    assert old.input_tokens == 1001 + 1002 + 3 * 200 and old.output_tokens == 2 * 50 + 3 * 20
    assert old.cost_usd == pytest.approx(5 * 0.0001)
    assert old.duration_s > 2 and old.started == pytest.approx(1_800_000_000 - 300 - old.duration_s, abs=1)
    assert runs[1].status == "limit" and runs[1].answer is None
    killed = runs[0]  # no run_end: counted from what was recorded
    assert killed.status == "interrupted" and "no run_end" in (killed.error or "")
    assert (killed.iterations, killed.subcalls) == (4, 8)
    assert killed.input_tokens == sum(1000 + i for i in range(1, 5)) + 8 * 200


def test_a_long_run_is_summarised_from_its_head_and_tail_alike(tmp_path: Path) -> None:
    path = write_run(tmp_path / "long.jsonl", turns=10, subcalls=500)
    assert path.stat().st_size > 4 * TAIL_BYTES
    assert summarise_file(path) == summarise(read_run(path))


def test_damaged_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    path = write_run(tmp_path / "cut.jsonl", turns=2, subcalls=2, end=False)
    with open(path, "a") as f:
        f.write('[1, 2]\nnot json\n{"type": "cell", "t": 9, "cell_id": 3, "code": "pri')  # killed mid-line
    run = summarise_file(path)
    assert run.status == "interrupted" and run.damaged == 3 and run.iterations == 2
    assert len(read_run(path).records) == len(path.read_text().splitlines()) - 3

    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(b"\x00\xff not a trajectory\n")
    assert summarise_file(garbage).status == "unreadable"  # listed, not fatal
    with pytest.raises(InputError, match="not a trajectory"):
        read_run(garbage)


def test_the_index_answers_while_a_file_is_unchanged(tmp_path: Path) -> None:
    path = write_run(tmp_path / "a.jsonl")
    write_run(tmp_path / "b.jsonl")
    list_runs(tmp_path)
    index = json.loads((tmp_path / INDEX_NAME).read_text())
    assert set(index["runs"]) == {"a.jsonl", "b.jsonl"}

    index["runs"]["a.jsonl"]["summary"]["question"] = "from the index"
    (tmp_path / INDEX_NAME).write_text(json.dumps(index))
    assert {r.id: r.question for r in list_runs(tmp_path)}["a"] == "from the index"

    with open(path, "a") as f:  # changed: read again; a bench score after run_end counts
        f.write(json.dumps({"type": "bench", "t": 99, "score": 0.75}) + "\n")
    (tmp_path / "b.jsonl").unlink()
    runs = list_runs(tmp_path)
    assert [(r.id, r.question, r.score) for r in runs] == [("a", "How many errors are in the log?", 0.75)]
    assert set(json.loads((tmp_path / INDEX_NAME).read_text())["runs"]) == {"a.jsonl"}


def test_an_index_that_is_not_json_is_rebuilt(tmp_path: Path) -> None:
    write_run(tmp_path / "a.jsonl")
    (tmp_path / INDEX_NAME).write_text("{broken")
    assert [r.id for r in list_runs(tmp_path)] == ["a"]
    assert "a.jsonl" in json.loads((tmp_path / INDEX_NAME).read_text())["runs"]


def test_filters(tmp_path: Path) -> None:
    write_run(tmp_path / "ok1.jsonl", sources=("./repo",))
    write_run(tmp_path / "ok2.jsonl", sources=("notes.txt",))
    write_run(tmp_path / "lim.jsonl", status="limit", sources=("./repo",))
    with open(tmp_path / "ok1.jsonl", "a") as f:
        f.write(json.dumps({"type": "bench", "t": 9, "score": 1.0}) + "\n")
    runs = list_runs(tmp_path)
    ids = lambda **kw: sorted(r.id for r in select(runs, **kw))  # noqa: E731
    assert ids(status="ok") == ["ok1", "ok2"]
    assert ids(source="repo") == ["lim", "ok1"]
    assert ids(status="ok", min_score=0.5) == ["ok1"]


def test_run_resolution(tmp_path: Path) -> None:
    _aged(write_run(tmp_path / "20261201-100000-1.jsonl"), 20)
    _aged(write_run(tmp_path / "20261201-110000-2.jsonl"), 10)
    elsewhere = write_run(tmp_path / "sub" / "mine.jsonl")

    assert resolve("last", tmp_path).name == "20261201-110000-2.jsonl"
    assert resolve("20261201-100000-1", tmp_path).name == "20261201-100000-1.jsonl"
    assert resolve("20261201-10", tmp_path).name == "20261201-100000-1.jsonl"  # a unique start
    assert resolve(str(elsewhere), tmp_path) == elsewhere
    with pytest.raises(InputError, match="ambiguous"):
        resolve("20261201", tmp_path)
    with pytest.raises(InputError, match="no run 'nope'"):
        resolve("nope", tmp_path)
    with pytest.raises(InputError, match="no trajectory file"):
        resolve(str(tmp_path / "gone.jsonl"), tmp_path)
    with pytest.raises(InputError, match="no runs yet"):
        resolve("last", tmp_path / "empty")


def test_replay_prints_what_the_live_trace_printed(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("alpha\nbeta\n")
    code = "parts = llm_query_batched(['one', 'two', 'three'])\nprint(parts)\nboom = 1 / 0"
    server = scripted_server(["Looking first.\n" + repl(code), repl("FINAL('done')")])
    trace = tmp_path / "t.jsonl"
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--trace", str(trace))
    assert ran.code == 0, ran.stderr

    out = io.StringIO()
    sink = ConsoleTrace(Console(file=out, soft_wrap=True), live=False)
    for event in events(read_run(trace).records):
        sink.emit(event)

    assert "sub-calls 3/3" in out.getvalue() and "ZeroDivisionError" in out.getvalue()
    assert out.getvalue() == ran.stderr


def test_export_is_the_conversation_the_root_model_had(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("the code is 7\n")
    server = scripted_server(["no code here", repl("print(context.grep('code'))"), repl("FINAL('7')")])
    trace = tmp_path / "t.jsonl"
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "What is the code?", *server.cli_args(), "--trace", str(trace))
    assert ran.code == 0, ran.stderr

    messages = chat_messages(read_run(trace))

    sent = server.root_requests()[-1].messages
    assert messages == [{"role": m["role"], "content": m["content"]} for m in sent] + [
        {"role": "assistant", "content": repl("FINAL('7')")}
    ]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user", "assistant"]


def test_export_writes_one_example_per_run_and_counts_the_rest(tmp_path: Path) -> None:
    write_run(tmp_path / "a.jsonl", turns=2)
    write_run(tmp_path / "old.jsonl", prompts=False)
    out = io.StringIO()
    report = export_chat(list_runs(tmp_path), out)

    assert report.written == 1 and report.without_prompts == ["old"]
    (example,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert list(example) == ["messages"]
    assert [m["role"] for m in example["messages"]] == ["system", "user", "assistant", "user", "assistant"]
    assert "FINAL('42 errors')" in example["messages"][-1]["content"]


def _record(type_: str, t: float, **fields: object) -> dict[str, object]:
    """A record as the engine writes it, with the fields these tests do not care about filled in."""
    kind = type_
    usage = {"input_tokens": 10, "output_tokens": 2, "cost_usd": None}
    base: dict[str, object] = {"type": kind, "t": t}
    if kind in ("root_response", "subcall"):
        base |= {"usage": usage, "duration_s": 0.1}
    if kind == "root_response":
        base |= {"text": "```repl\nx\n```", "faults": []}
    if kind == "cell":
        base |= {"output": "", "output_chars": 0, "duration_s": 0.1, "error": None, "iteration": 1}
    if kind == "subcall":
        base |= {"model": "m", "prompt_chars": 1, "response_chars": 1, "cached": False, "error": None, "faults": []}
    return base | fields


def test_concurrent_sub_rlms_nest_under_their_own_sub_call_by_parent_id(tmp_path: Path) -> None:
    """Two sub-RLMs started by one batch interleave in the file; `parent` ids tell them apart."""
    from rlm_cli.runs.html import view_data

    top = {"parent": None, "depth": 0}
    records = [
        _record("run_start", 0, sources=["a"], model="m", sub_model="m", question="q?", depth=0),
        _record("root_response", 1, iteration=1, **top),
        _record("root_response", 2, iteration=1, depth=1, parent=1),
        _record("root_response", 2.1, iteration=1, depth=1, parent=2),
        _record("subcall", 2.2, id=3, cell_id=1, depth=2, parent=2),  # made by sub-RLM 2's cell 1
        _record("cell", 2.3, cell_id=1, code="print(2)", depth=1, parent=2),
        _record("cell", 2.4, cell_id=1, code="print(1)", depth=1, parent=1, final=True),
        _record("subcall", 2.5, id=1, cell_id=1, depth=1, kind="rlm", parent=None),
        _record("cell", 2.6, cell_id=1, code="print(2b)", depth=1, parent=2, final=True),
        _record("subcall", 2.7, id=2, cell_id=1, depth=1, kind="rlm", parent=None),
        _record("cell", 3, cell_id=1, code="rlm_query_batched(...)", final=True, **top),
        _record("final", 3.1, answer="a", status="ok", depth=0),
        _record("run_end", 3.2, status="ok", iterations=1, subcalls=3, usage={}, duration_s=3.2, depth=0),
    ]
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))

    data = view_data(read_run(path))

    (turn,) = data["turns"]
    (cell,) = turn["cells"]
    assert [data["subcalls"][i]["id"] for i in cell["subcalls"]] == [1, 2]
    groups = {g["id"]: g["turns"] for g in cell["children"]}
    assert [c["code"].count("print") for c in groups[1][0]["cells"]] == [1]
    second = groups[2][0]["cells"]
    assert len(second) == 2 and [data["subcalls"][i]["id"] for i in second[0]["subcalls"]] == [3]
    assert data["unfinished"] == {"subcalls": [], "children": []}

    shown = [(type(e).__name__, getattr(e, "code", None)) for e in events(read_run(path).records)]
    names = [name for name, _ in shown]
    # the replay starts sub-RLM 2's cell before the sub-call that cell made
    assert names.index("SubcallStart") == names.index("CellStart") + 1 and shown[names.index("CellStart")][1] == "print(2)"


def test_an_interrupted_run_shows_the_cell_that_did_not_finish(tmp_path: Path) -> None:
    from rlm_cli.runs.html import view_data

    path = write_run(tmp_path / "cut.jsonl", turns=2, subcalls=6, end=False)
    lines = path.read_text().splitlines()
    last_cell = max(i for i, line in enumerate(lines) if json.loads(line)["type"] == "cell")
    path.write_text("\n".join(lines[:last_cell]) + "\n")  # killed while cell 2 ran its sub-calls

    data = view_data(read_run(path))

    assert [len(t["cells"]) for t in data["turns"]] == [1, 0]
    assert len(data["unfinished"]["subcalls"]) == 3 and data["run"]["status"] == "interrupted"
    out = io.StringIO()
    sink = ConsoleTrace(Console(file=out, soft_wrap=True), live=False)
    for event in events(read_run(path).records):
        sink.emit(event)
    assert "iteration 2" in out.getvalue() and "cell 1" in out.getvalue()
