"""The library API, the root loop, the sub-call runner and the budget, in process.

Objects enter through the seams, as httpx tests hand a transport to the client: a fake model
client (`Scripted`), a list sink, an environment mapping. The worker is the real one.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rlm_cli.api import AskRequest, Inputs, Limits, ModelFlags, Rlm
from rlm_cli.budget import Budget
from rlm_cli.errors import LimitError, ModelError, UsageError
from rlm_cli.events import Cell, Event, Notice, RootResponse, RunEnd, Subcall, Usage
from rlm_cli.loop.prompts import FRONTIER, SMALL, profile_for
from rlm_cli.model_client import Completion, ModelClient, ModelSettings
from rlm_cli.settings import ModelChoice, request_overrides, resolve, resolve_models
from rlm_cli.subcalls import Scope, SubcallRunner
from rlm_cli.units import format_size, parse_size
from rlm_cli.worker.protocol import LlmRequest


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


@dataclass
class ListSink:
    events: list[Event] = field(default_factory=list)

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


@dataclass
class Scripted:
    """A fake ModelClient: root replies from a script, sub answers from a function."""

    model: str
    replies: list[str | Exception] = field(default_factory=list)
    answer: Callable[[str], str] = lambda prompt: f"A({prompt[:20]})"
    cost: float | None = None
    window: int | None = None
    latency: float = 0.0
    seen: list[list[dict[str, str]]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    def context_window(self) -> int | None:
        return self.window

    async def complete(self, messages: list[dict[str, str]]) -> Completion:
        self.seen.append(list(messages))  # the loop goes on appending to its own list
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.latency)
        finally:
            self.in_flight -= 1
        if self.replies:
            reply = self.replies.pop(0)
            if isinstance(reply, Exception):
                raise reply
            text = reply
        else:
            text = self.answer(messages[-1]["content"])
        return Completion(text, len(str(messages)) // 4, len(text) // 4, self.cost, self.latency)


class Models:
    """A client factory handing out one fake per model name (root, sub), as Rlm's seam wants."""

    def __init__(self, root: Scripted, sub: Scripted | None = None) -> None:
        self.clients: dict[str, Scripted] = {root.model: root, **({sub.model: sub} if sub else {})}

    def __call__(self, settings: ModelSettings) -> ModelClient:
        return self.clients.setdefault(settings.model, Scripted(settings.model))


def rlm_with(models: Models, sink: ListSink, tmp_path: Path) -> Rlm:
    environ = {"RLM_CACHE_DIR": str(tmp_path / "cache"), "RLM_CONFIG": str(tmp_path / "none.toml")}
    return Rlm(sinks=[sink], environ=environ, make_client=models, local_available=lambda: False)


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("alpha\nthe code is 7481\nomega\n")
    return path


def ask(notes: Path, question: str = "What is the code?", **limits: object) -> AskRequest:
    return AskRequest(Inputs((str(notes),)), question, ModelFlags("root", "sub"), Limits(**limits))  # type: ignore[arg-type]


# -- the API and the loop ---------------------------------------------------------------------


def test_ask_returns_the_answer_from_executed_code_and_reports_every_turn(notes: Path, tmp_path: Path) -> None:
    root = Scripted("root", [repl("hits = context.grep('code is')\nprint(hits)"), repl("FINAL(hits[0].text.split()[-1])")])
    sink = ListSink()
    result = rlm_with(Models(root), sink, tmp_path).ask(ask(notes))

    assert (result.answer, result.status, result.iterations) == ("7481", "ok", 2)
    assert "the code is 7481" in root.seen[1][-1]["content"]  # the cell's output was fed back
    assert [e.iteration for e in sink.of(RootResponse)] == [1, 2]
    assert sink.of(Cell)[-1].final
    assert result.trace_file is not None and result.trace_file.exists()
    types = [json.loads(line)["type"] for line in result.trace_file.read_text().splitlines()]
    assert types[-2:] == ["final", "run_end"]


def test_a_model_error_mid_run_carries_the_true_iterations_usage_and_duration(notes: Path, tmp_path: Path) -> None:
    root = Scripted("root", [repl("x = 1"), ModelError("root: provider unreachable after 4 retries")], latency=0.05)
    sink = ListSink()
    with pytest.raises(ModelError) as caught:
        rlm_with(Models(root), sink, tmp_path).ask(ask(notes))

    result = caught.value.result
    assert result.status == "error" and result.iterations == 1
    assert result.usage.input_tokens > 0 and result.duration_s > 0.05
    end = sink.of(RunEnd)[-1]
    assert (end.status, end.iterations, end.usage) == ("error", 1, result.usage)


def test_the_last_turn_in_prose_is_a_partial_answer_with_status_limit(notes: Path, tmp_path: Path) -> None:
    root = Scripted("root", [repl("x = 1"), "I think the code is 7481."])
    result = rlm_with(Models(root), ListSink(), tmp_path).ask(ask(notes, max_iterations=1))

    assert (result.status, result.answer) == ("limit", "I think the code is 7481.")
    assert "iteration limit" in (result.error or "")


def test_final_after_the_sub_call_budget_is_spent_is_a_limit_with_the_partial_answer(notes: Path, tmp_path: Path) -> None:
    code = "answers = llm_query_batched([f'q{i}' for i in range(5)])\nprint(sum(a.startswith('ERROR') for a in answers))"


    root = Scripted("root", [repl(code), repl("FINAL('partial')")])
    sub = Scripted("sub")
    sink = ListSink()
    result = rlm_with(Models(root, sub), sink, tmp_path).ask(ask(notes, max_subcalls=2))

    assert (result.status, result.answer, result.subcalls) == ("limit", "partial", 2)
    assert "sub-call limit reached" in (result.error or "")
    assert "sub-call budget (--max-subcalls) is spent" in root.seen[1][-1]["content"]
    assert len(sub.seen) == 2
    assert sum(1 for e in sink.of(Subcall) if e.error) == 3  # the refused ones are on record too


def test_max_cost_zero_is_a_limit_before_any_call(notes: Path, tmp_path: Path) -> None:
    root = Scripted("root", [repl("FINAL(1)")], cost=0.01)
    result = rlm_with(Models(root), ListSink(), tmp_path).ask(ask(notes, max_cost=0.0))
    assert (result.status, result.answer, result.error) == ("limit", None, "cost limit reached: $0.0000 of --max-cost $0")
    assert root.seen == []


def test_an_unpriced_model_under_max_cost_is_one_warning(notes: Path, tmp_path: Path) -> None:
    root = Scripted("root", [repl("x = 1"), repl("FINAL(llm_query('a') + llm_query('b'))")])
    sink = ListSink()
    result = rlm_with(Models(root, Scripted("sub")), sink, tmp_path).ask(ask(notes, max_cost=1.0))

    assert result.status == "ok"
    warnings = [n.message for n in sink.of(Notice) if "--max-cost cannot count" in n.message]
    assert warnings == ["--max-cost cannot count root: it has no known price; its tokens are counted, not its cost",
                        "--max-cost cannot count sub: it has no known price; its tokens are counted, not its cost"]


def test_timeout_counts_from_the_request_not_from_the_first_model_call(notes: Path, tmp_path: Path) -> None:
    root = Scripted("root", [repl("import time\ntime.sleep(0.2)"), repl("FINAL(1)")], latency=0.4)
    started = time.monotonic()
    result = rlm_with(Models(root), ListSink(), tmp_path).ask(ask(notes, timeout=0.5))
    assert (result.status, result.error) == ("limit", "time limit reached (--timeout 0.5 s)")
    assert time.monotonic() - started < 10


def test_a_sub_rlm_is_a_subcall_record_and_its_events_name_it_as_parent(notes: Path, tmp_path: Path) -> None:
    root = Scripted("root", [repl("r = rlm_query('What is the code?', context='the code is 99')\nFINAL(r)")])
    sub = Scripted("sub", [repl("FINAL(context.split()[-1])")], cost=0.002)
    sink = ListSink()
    result = rlm_with(Models(root, sub), sink, tmp_path).ask(ask(notes, max_depth=2))

    assert result.answer == "99"
    (rlm_call,) = [e for e in sink.of(Subcall) if e.kind == "rlm"]
    assert (rlm_call.depth, rlm_call.cell_id, rlm_call.error) == (1, 1, None)
    assert rlm_call.cost == pytest.approx(0.002) and rlm_call.usage.output_tokens > 0
    inner = [e for e in sink.of(Cell) if e.depth == 1]
    assert inner and all(e.parent == rlm_call.id for e in inner)
    assert [e.parent for e in sink.of(RootResponse)] == [None, rlm_call.id]


def test_a_sub_rlm_that_ends_in_prose_gives_its_parent_an_error_not_an_answer(notes: Path, tmp_path: Path) -> None:
    code = "try:\n    r = rlm_query('q', context='text')\nexcept Exception as exc:\n    r = f'failed: {exc}'\nFINAL(r)"
    root = Scripted("root", [repl(code)])
    sub = Scripted("sub", ["I believe it is 5.", "Still 5, I think."])
    result = rlm_with(Models(root, sub), ListSink(), tmp_path).ask(ask(notes, max_depth=2, max_iterations=1))

    assert result.answer is not None and result.answer.startswith("failed:")
    assert "partial answer: Still 5" in result.answer


def test_an_empty_question_and_a_bad_size_are_usage_errors(notes: Path, tmp_path: Path) -> None:
    rlm = rlm_with(Models(Scripted("root")), ListSink(), tmp_path)
    with pytest.raises(UsageError, match="empty"):
        rlm.ask(ask(notes, question="  "))
    bad = AskRequest(Inputs((str(notes),), max_file_size="lots"), "q?", ModelFlags("root"))
    with pytest.raises(UsageError, match="--max-file-size: not a size"):
        rlm.ask(bad)


# -- the sub-call runner and the budget ----------------------------------------------------


def runner_for(client: Scripted, sink: ListSink, **limits: object) -> SubcallRunner:
    return SubcallRunner(lambda model: client, Budget(Limits(**limits)), sink)  # type: ignore[arg-type]


def test_a_batch_runs_concurrently_up_to_the_limit_and_keeps_its_order() -> None:
    client = Scripted("sub", latency=0.05)
    sink = ListSink()
    prompts = [f"p{i}" for i in range(12)]
    results = asyncio.run(runner_for(client, sink, max_concurrency=4).handle(LlmRequest(1, prompts), Scope(1)))

    assert [r.text for r in results] == [f"A(p{i})" for i in range(12)]
    assert client.max_in_flight == 4
    assert len(sink.of(Subcall)) == 12


def test_identical_prompts_in_a_run_are_one_model_call() -> None:
    client = Scripted("sub")
    sink = ListSink()
    results = asyncio.run(runner_for(client, sink).handle(LlmRequest(1, ["same"] * 5), Scope(1)))

    assert {r.text for r in results} == {"A(same)"} and len(client.seen) == 1
    assert sum(e.cached for e in sink.of(Subcall)) == 4


def test_a_failed_prompt_stays_in_its_slot() -> None:
    client = Scripted("sub", replies=["ok", ModelError("sub: provider unreachable"), "ok too"])
    results = asyncio.run(runner_for(client, ListSink(), concurrency=1).handle(LlmRequest(1, ["a", "b", "c"]), Scope(1)))
    assert [r.wire() for r in results] == [{"text": "ok"}, {"error": "sub: provider unreachable"}, {"text": "ok too"}]


def test_a_prompt_beyond_the_window_is_split_at_lines_and_the_answers_combined() -> None:
    client = Scripted("sub", window=1000, answer=lambda prompt: "combined" if prompt.startswith("A prompt too long") else "part")
    sink = ListSink()
    prompt = "".join(f"line {i:05d}\n" for i in range(2000))  # 22,000 characters, ~5,500 tokens
    (result,) = asyncio.run(runner_for(client, sink).handle(LlmRequest(1, [prompt]), Scope(1)))

    assert result.text == "combined"
    *pieces, combine = [seen[-1]["content"] for seen in client.seen]
    assert len(pieces) == 8 and all(p.endswith("\n") and len(p) < 1000 * 4 for p in pieces)
    assert "".join(p.split("\n\n", 1)[1] for p in pieces) == prompt  # every line, once, in order
    assert combine.count("part") >= 8
    (subcall,) = sink.of(Subcall)
    assert subcall.split_into == 8 and subcall.error is None
    assert any("split into 8 pieces" in n.message for n in sink.of(Notice))


def test_budget_counts_refusals_and_says_which_limit() -> None:
    budget = Budget(Limits(max_subcalls=1, max_cost=0.5))
    budget.take_subcall()
    with pytest.raises(LimitError, match=r"--max-subcalls 1"):
        budget.take_subcall()
    assert (budget.subcalls, budget.subcalls_refused) == (1, 1)
    budget.charge(Usage(10, 5, 0.6), "m")
    with pytest.raises(LimitError, match=r"\$0\.6000 of --max-cost \$0\.5"):
        budget.check_cost()


# -- settings ---------------------------------------------------------------------------------


def env(tmp_path: Path, config: str | None = None, **names: str) -> dict[str, str]:
    path = tmp_path / "config.toml"
    if config is not None:
        path.write_text(config)
    return {"RLM_CONFIG": str(path), **names}


def test_models_come_from_option_then_environment_then_config_file(tmp_path: Path) -> None:
    environ = env(tmp_path, 'model = "from-file"\nsub_model = "sub-file"\napi_base = "http://file"', RLM_MODEL="from-env")
    never = lambda: False  # noqa: E731
    assert resolve_models(ModelFlags(model="from-option"), environ, never) == ModelChoice(
        "from-option", "sub-file", "http://file", "http://file"
    )
    assert resolve_models(ModelFlags(), environ, never).model == "from-env"
    assert resolve_models(ModelFlags(), env(tmp_path, 'model = "from-file"'), never) == ModelChoice(
        "from-file", "from-file", None, None
    )
    assert resolve_models(ModelFlags(), env(tmp_path, ""), lambda: True).model == "local"
    with pytest.raises(ModelError, match="no model configured"):
        resolve_models(ModelFlags(), env(tmp_path, "", RLM_LOCAL_DEFAULT="0"), lambda: True)


@pytest.mark.parametrize(
    ("config", "message"),
    [("model = ", "config file"), ('colour = "red"', "unknown key"), ("model = 3", "must be a string")],
)
def test_a_malformed_config_file_is_a_usage_error(tmp_path: Path, config: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        resolve(ModelFlags(model="m"), env(tmp_path, config), lambda: False)


def test_request_settings_are_read_once_and_checked(tmp_path: Path) -> None:
    assert request_overrides({"RLM_MAX_RETRIES": "2", "RLM_REQUEST_TIMEOUT": "1.5"}) == {"max_retries": 2, "request_timeout": 1.5}
    with pytest.raises(UsageError, match="RLM_MAX_RETRIES='many' is not a whole number"):
        request_overrides({"RLM_MAX_RETRIES": "many"})
    settings = resolve(ModelFlags(model="m"), env(tmp_path, "", RLM_PROMPT_PROFILE="small"), lambda: False)
    assert settings.profile == "small"


@pytest.mark.parametrize(
    ("model", "profile"),
    [("local", SMALL), ("local:/m/x.gguf", SMALL), ("ollama/qwen2.5-coder:1.5b", SMALL), ("llama-3.2-3b-instruct", SMALL),
     ("gpt-4o-mini", FRONTIER), ("openai/llama-3.1-70b", FRONTIER), ("claude-sonnet-4", FRONTIER)],
)
def test_the_prompt_profile_follows_the_model_size(model: str, profile: object) -> None:
    assert profile_for(model) is profile


def test_a_profile_override_must_exist() -> None:
    assert profile_for("gpt-4o", "small") is SMALL
    with pytest.raises(UsageError, match="unknown prompt profile 'tiny'"):
        profile_for("gpt-4o", "tiny")


def test_one_size_grammar() -> None:
    assert [parse_size(t) for t in ("5000", "500k", "5M", "1.5GB", "4GiB", "2Mi")] == [
        5000, 500_000, 5_000_000, 1_500_000_000, 4 * 2**30, 2 * 2**20,
    ]
    assert format_size(parse_size("5M")) == "5.0 MB"
    with pytest.raises(ValueError, match="not a size"):
        parse_size("five")
    assert re.fullmatch(r"12\.3 MB", format_size(12_300_000))


def test_worker_limits_from_the_environment_use_the_same_grammar(tmp_path: Path) -> None:
    from rlm_cli.worker.sandbox import Policy

    policy = Policy.for_context(tmp_path, 0, {"RLM_WORKER_MEMORY": "2GiB", "RLM_WORKER_FILE_SIZE": "5M"})
    assert (policy.memory_bytes, policy.file_bytes) == (2 * 2**30, 5_000_000)
    assert Policy.for_context(tmp_path, 0, {"RLM_WORKER_MEMORY": "unlimited"}).memory_bytes is None
    with pytest.raises(UsageError, match="RLM_WORKER_MEMORY: not a size"):
        Policy.for_context(tmp_path, 0, {"RLM_WORKER_MEMORY": "lots"})


def test_llm_map_without_items_is_one_question(notes: Path, tmp_path: Path) -> None:
    """Small models write llm_map(question + text) when they mean llm_query; that must not stall."""
    root = Scripted("root", [repl("FINAL(llm_map('What is the code? the code is 7481'))")])
    sub = Scripted("sub", answer=lambda prompt: "7481" if "code is 7481" in prompt else "?")
    result = rlm_with(Models(root, sub), ListSink(), tmp_path).ask(ask(notes))
    assert (result.answer, result.subcalls) == ("7481", 1)


def test_a_sub_call_that_fails_in_the_host_is_an_error_string_not_a_hung_cell(notes: Path, tmp_path: Path) -> None:
    """A fault below the sub-call handler (here a client raising IndexError) reaches the cell as
    ERROR strings in the failed slots; before, the reply never came and the cell waited out its timeout."""

    def answer(prompt: str) -> str:
        return ["7481"][int("boom" in prompt)]

    root = Scripted("root", [repl("print(llm_query_batched(['ok', 'boom']))"), repl("FINAL('done')")])
    sink = ListSink()
    request = AskRequest(Inputs((str(notes),)), "What is the code?", ModelFlags("root", "sub"), Limits(cell_timeout=60))
    result = rlm_with(Models(root, Scripted("sub", answer=answer)), sink, tmp_path).ask(request)

    [cell] = [c for c in sink.of(Cell) if "boom" in c.code]
    assert "ERROR: the host failed to make this sub-call (IndexError" in cell.output and cell.duration_s < 30
    assert result.answer == "done"
