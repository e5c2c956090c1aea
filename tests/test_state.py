"""REPL state in process: the worker's pickling and restoring (worker.state), and a follow-up
through the library API with a fake model client and a list sink."""

from __future__ import annotations

import os
import pickle
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_api import ListSink, Models, Scripted, repl, rlm_with
from trajectories import write_run

from rlm_cli.api import AskRequest, Inputs, Limits, ModelFlags
from rlm_cli.errors import InputError, UsageError
from rlm_cli.events import Notice, StateSaved
from rlm_cli.runs.continuation import Earlier, resume_history, variables_note
from rlm_cli.runs.state import KEEP_STATES, prune_states
from rlm_cli.sources.context import Context
from rlm_cli.trace.trajectory import default_trace_path
from rlm_cli.worker import state


class Defined:  # stands for a class a cell defined: gone by the time the next worker loads
    pass


@pytest.fixture()
def fd() -> Iterator[int]:
    descriptor, path = tempfile.mkstemp()
    os.unlink(path)
    yield descriptor
    os.close(descriptor)


def _names(items: list) -> list[str]:
    return [str(item["name"]) for item in items]


def test_variables_come_back_and_context_is_the_new_workers_own(fd: int) -> None:
    old, new = Context({"a.txt": "old text"}), Context({"a.txt": "new text"})
    variables = {"counts": Counter("aab"), "pair": (old, 3), "f": lambda: 1, "big": "x" * 2000, "Cls": Defined}

    saved = state.save(fd, variables, {"context": old}, max_bytes=10_000, max_variable_bytes=1_000)

    assert _names(saved.saved) == ["counts", "pair"]
    assert {s["name"]: s["why"] for s in saved.skipped} == {
        "f": "defined in the REPL: define it again",
        "big": "larger than the 1.0 kB limit",
        "Cls": "defined in the REPL: define it again",
    }
    namespace: dict = {"context": new}
    restored = state.restore(fd, namespace, {"context": new})
    assert restored.error is None and _names(restored.restored) == ["counts", "pair"]
    assert namespace["counts"] == Counter("aab")
    assert namespace["pair"][0] is new  # a reference, not a copy of the old input


def test_the_total_limit_keeps_what_fits(fd: int) -> None:
    variables = {"a": "x" * 600, "b": "y" * 600, "c": "z"}
    saved = state.save(fd, variables, {}, max_bytes=1_000, max_variable_bytes=1_000)
    assert _names(saved.saved) == ["a", "c"]
    assert saved.skipped == [{"name": "b", "why": f"larger than the {1000 - int(saved.saved[0]['nbytes'])} bytes left of the 1.0 kB for all variables"}]


def test_a_corrupt_file_or_a_value_that_no_longer_loads_costs_only_itself(fd: int) -> None:
    os.pwrite(fd, b"not a pickle", 0)
    assert state.restore(fd, {}, {}).error is not None

    os.ftruncate(fd, 0)
    state.save(fd, {"ok": 1, "obj": Defined()}, {}, max_bytes=10_000, max_variable_bytes=10_000)
    blob = pickle.loads(os.pread(fd, 10_000, 0))
    blob["variables"]["obj"] = blob["variables"]["obj"].replace(b"Defined", b"Vanished")
    os.ftruncate(fd, 0)
    os.pwrite(fd, pickle.dumps(blob), 0)
    namespace: dict = {}
    restored = state.restore(fd, namespace, {})
    assert namespace == {"ok": 1}
    assert _names(restored.skipped) == ["obj"] and "does not load" in str(restored.skipped[0]["why"])


def test_the_note_names_what_came_back_and_what_did_not() -> None:
    assert variables_note(None) == "[The REPL holds no variables of the earlier run.]"
    restored = state.RestoreReply(restored=[{"name": "counts", "type": "Counter", "nbytes": 2048}], skipped=[{"name": "f", "why": "gone"}])
    assert variables_note(restored) == "[The REPL still holds the variables the earlier run left: counts (Counter, 2.0 kB). Not restored: f (gone).]"


def test_a_follow_up_through_the_api_restores_the_variables(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("alpha\nbeta\n")
    replies: list[str | Exception] = [repl("words = context.split()\nFINAL(len(words))"), repl("last = words[-1]\nFINAL(last)"), repl("FINAL(last.upper())")]
    root = Scripted("root", replies)
    models, sink = Models(root), ListSink()
    rlm = rlm_with(models, sink, tmp_path)

    first = rlm.ask(AskRequest(Inputs((str(notes),)), "How many words?", ModelFlags("root", "sub"), Limits()))
    second = rlm.ask(AskRequest(Inputs(()), "Which is the last?", follow_up=str(first.trace_file)))

    third = rlm.ask(AskRequest(Inputs(()), "Shout it.", follow_up=str(second.trace_file)))

    assert (first.answer, second.answer, third.answer) == ("2", "beta", "BETA")
    assert [_names(e.saved) for e in sink.of(StateSaved)] == [["words"], ["words", "last"], ["words", "last"]]
    assert "restored 1 variable(s) of the earlier run: words" in [e.message for e in sink.of(Notice)]
    follow_up_prompt = root.seen[1]
    assert [m["role"] for m in follow_up_prompt] == ["system", "user", "assistant", "user"]
    assert "How many words?" in follow_up_prompt[1]["content"] and "[The REPL still holds" in follow_up_prompt[1]["content"]
    assert follow_up_prompt[2]["content"] == "```repl\nFINAL('2')\n```"
    chain = [m["content"] for m in root.seen[2][1:5]]  # a follow-up of a follow-up: both earlier Q&As, oldest first
    assert "How many words?" in chain[0] and "FINAL('2')" in chain[1]
    assert "Which is the last?" in chain[2] and "FINAL('beta')" in chain[3]


def test_the_runs_directory_keeps_the_newest_states_of_runs_it_still_has(tmp_path: Path) -> None:
    for i in range(KEEP_STATES + 3):
        (tmp_path / f"run{i:02}.jsonl").write_text("{}\n")
        (tmp_path / f"run{i:02}.state").write_bytes(b"x")
        os.utime(tmp_path / f"run{i:02}.state", (1000 + i, 1000 + i))
    (tmp_path / "run12.jsonl").unlink()  # the newest state's trajectory was pruned
    stale, fresh = tmp_path / ".run00-a.state.tmp", tmp_path / ".run01-b.state.tmp"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(stale, (1000, 1000))

    prune_states(tmp_path)

    assert sorted(p.stem for p in tmp_path.glob("*.state")) == [f"run{i:02}" for i in range(2, KEEP_STATES + 2)]
    assert not stale.exists() and fresh.exists()


def test_a_killed_run_is_resumed_from_its_last_turn_and_one_without_prompts_is_refused(tmp_path: Path) -> None:
    write_run(tmp_path / "killed.jsonl", end=False, sub_rlm=True)
    earlier = Earlier.load(str(tmp_path / "killed.jsonl"))

    history = resume_history(earlier, earlier.resumable(), None, "iteration 1 of 5")

    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant", "user", "assistant", "user"]
    assert "Question: How many errors are in the log?" in history[0]["content"]
    last = history[-1]["content"]
    assert last.startswith("9\n\n[iteration 4 of 30] Continue.")  # the turn the killed run had sent
    assert "now goes on, with a fresh budget: iteration 1 of 5" in last and "holds no variables" in last
    assert not [m for m in history if "1234" in m["content"]]  # the sub-RLM's turns are not the root's

    write_run(tmp_path / "old.jsonl", end=False, prompts=False)
    with pytest.raises(InputError, match="does not hold the conversation"):
        Earlier.load(str(tmp_path / "old.jsonl")).resumable()
    write_run(tmp_path / "done.jsonl")
    with pytest.raises(UsageError, match="ended with an answer"):
        Earlier.load(str(tmp_path / "done.jsonl")).resumable()


def test_a_second_run_in_the_same_second_never_gets_the_first_ones_trajectory() -> None:
    first = default_trace_path()
    first.parent.mkdir(parents=True, exist_ok=True)
    first.write_text("{}\n")  # a follow-up opens its trajectory while the run it follows is on disk
    assert default_trace_path() != first
