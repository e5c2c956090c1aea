"""The bench's baselines, runner and report, in-process with a fake model client and real files.

The fake model reads its prompt like a perfect reader with a small window: it answers with the
magic number the prompt shows for the key the question names, and refuses prompts longer than
its real window, so truncation, retrieval, summarising and the retry on a refusal all show.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from rlm_cli.bench.methods import Direct, Retrieval, Summary
from rlm_cli.bench.plot import plot
from rlm_cli.bench.report import as_json, summarise, table
from rlm_cli.bench.runner import JobFinished, JobStarted, run_bench
from rlm_cli.bench.tasks.base import INPUT_FILE, Task
from rlm_cli.errors import ContextWindowError
from rlm_cli.model_client import Completion
from rlm_cli.strategy import head_and_tail


class Reader:
    """A ModelClient that finds magic numbers in what it is shown."""

    model = "fake"

    def __init__(self, window: int = 5_000, refuse_over: int | None = None) -> None:
        self.window = window
        self.refuse_over = refuse_over
        self.prompts: list[str] = []
        self.closed = 0

    async def aclose(self) -> None:
        self.closed += 1

    def context_window(self) -> int:
        return self.window

    async def complete(self, messages: list[dict[str, str]]) -> Completion:
        prompt = messages[-1]["content"]
        self.prompts.append(prompt)
        if self.refuse_over is not None and len(prompt) > self.refuse_over:
            raise ContextWindowError("fake: the prompt is larger than the model's context window")
        key = re.search(r"magic number for (\S+) mentioned", prompt).group(1)  # type: ignore[union-attr]
        found = re.search(rf"magic number for {key} is: (\d+)", prompt)
        if prompt.rstrip().endswith("Notes:"):
            text = found.group(0) if found else "NONE"
        else:
            text = found.group(1) if found else "not found"
        return Completion(text, len(prompt) // 4, 5, 0.001, 0.0)


def needle_task(name: str, at: float, lines: int = 1_000) -> Task:
    filler = [f"Line {i}: the harbor office reviewed the quarry report as usual." for i in range(lines)]
    filler.insert(int(lines * at), "The special magic number for amber-otter is: 7654321.")
    return Task(name, "niah", 60_000, 1, "What is the special magic number for amber-otter mentioned in the text?",
                "7654321", "exact", files={INPUT_FILE: "\n".join(filler) + "\n"})


def test_head_and_tail_keeps_both_ends_within_the_limit() -> None:
    text = "".join(f"{i:05d}" for i in range(2_000))
    cut = head_and_tail(text, 1_000)
    assert len(cut) <= 1_000 and cut.startswith("00000") and cut.endswith("01999")
    assert "characters omitted" in cut and head_and_tail("short", 1_000) == "short"


async def run(tasks: list[Task], client: Reader, tmp_path: Path, methods: tuple[str, ...] = ("direct", "retrieval", "summary")):
    made = {"direct": Direct, "retrieval": Retrieval, "summary": Summary}
    events: list[object] = []
    outcomes = await run_bench(tasks, [made[m](client) for m in methods], jobs=3, workdir=tmp_path,
                               results_dir=tmp_path / "results", on_event=events.append)
    return outcomes, events


def test_direct_loses_a_needle_in_the_cut_middle_that_retrieval_and_summary_find(tmp_path: Path) -> None:
    outcomes, events = asyncio.run(run([needle_task("middle", 0.5), needle_task("start", 0.001)], Reader(), tmp_path))
    scores = {(o.task.id, o.method): o.score for o in outcomes}
    assert scores == {("middle", "direct"): 0.0, ("middle", "retrieval"): 1.0, ("middle", "summary"): 1.0,
                      ("start", "direct"): 1.0, ("start", "retrieval"): 1.0, ("start", "summary"): 1.0}
    summary = next(o for o in outcomes if o.method == "summary")
    assert summary.result.calls > 2 and summary.result.extra["rounds"] >= 1
    assert len([e for e in events if isinstance(e, JobStarted)]) == len([e for e in events if isinstance(e, JobFinished)]) == 6
    assert [e.done for e in events if isinstance(e, JobFinished)] == [1, 2, 3, 4, 5, 6]
    saved = json.loads((tmp_path / "results" / "middle.retrieval.json").read_text())
    assert saved["score"] == 1.0 and saved["answer"] == "7654321" and saved["task"]["gold"] == "7654321"
    assert (tmp_path / "inputs" / "middle" / INPUT_FILE).exists()


def test_the_bench_closes_each_baselines_client_once_every_task_has_run(tmp_path: Path) -> None:
    client = Reader()
    asyncio.run(run([needle_task("a", 0.5), needle_task("b", 0.001)], client, tmp_path))
    assert client.closed == 3  # one client per baseline, each closed once


def test_a_prompt_the_model_refuses_as_too_long_is_cut_down_and_sent_again(tmp_path: Path) -> None:
    client = Reader(window=5_000, refuse_over=6_000)
    outcomes, _ = asyncio.run(run([needle_task("start", 0.001)], client, tmp_path, ("direct",)))
    [outcome] = outcomes
    assert outcome.score == 1.0 and outcome.result.status == "ok"
    assert len(client.prompts) > 1 and len(client.prompts[-1]) <= 6_000 < len(client.prompts[0])


def test_an_error_is_a_result_scored_zero_not_a_crash(tmp_path: Path) -> None:
    outcomes, _ = asyncio.run(run([needle_task("start", 0.001)], Reader(window=5_000, refuse_over=10), tmp_path, ("direct",)))
    [outcome] = outcomes
    assert outcome.score == 0.0 and outcome.result.status == "error" and "context window" in (outcome.result.error or "")


def test_the_report_has_a_row_per_family_size_and_method_and_a_plot(tmp_path: Path) -> None:
    outcomes, _ = asyncio.run(run([needle_task("a", 0.5), needle_task("b", 0.001)], Reader(), tmp_path, ("direct", "retrieval")))
    rows = summarise(outcomes)
    assert [(r.family, r.method, r.tasks, r.score) for r in rows] == [("niah", "direct", 2, 0.5), ("niah", "retrieval", 2, 1.0)]
    text = table(rows)
    assert text.splitlines()[0].split() == ["family", "size", "method", "n", "score", "median", "s", "p90", "s",
                                            "tokens", "cost", "$", "errors"]
    assert text.splitlines()[1].split()[:5] == ["niah", "60k", "direct", "2", "0.50"]
    data = as_json(rows, outcomes)
    assert data["summary"][1]["score"] == 1.0 and len(data["tasks"]) == 4
    pytest.importorskip("matplotlib")
    png = plot(rows, tmp_path / "bench.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
