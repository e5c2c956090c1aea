"""Workers in flight are bounded per depth (RLM_MAX_WORKERS), through the `Run.worker` seam."""

from __future__ import annotations

import asyncio

import pytest

from rlm_cli.engine import Run, RunConfig
from rlm_cli.errors import UsageError
from rlm_cli.model_client import ModelClient, ModelSettings
from rlm_cli.worker.process import DEFAULT_MAX_WORKERS, max_workers


class _Sink:
    def __init__(self) -> None:
        self.events: list[object] = []

    def emit(self, event: object) -> None:
        self.events.append(event)


def _no_client(settings: ModelSettings) -> ModelClient:
    raise AssertionError("no model call expected")


def test_sub_rlm_workers_wait_for_a_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLM_MAX_WORKERS", "2")
    run = Run(RunConfig("q?", ModelSettings("m"), ModelSettings("m")), _Sink(), _no_client)
    running: list[int] = []
    most = 0

    async def one(i: int) -> None:
        nonlocal most
        async with run.worker({"<context>": f"piece {i}"}, depth=1) as worker:
            running.append(i)
            most = max(most, len(running))
            assert worker.pid is not None
            await asyncio.sleep(0.3)
            running.remove(i)

    async def scenario() -> None:
        await asyncio.gather(*(one(i) for i in range(5)))

    asyncio.run(scenario())
    assert most == 2


def test_the_limit_comes_from_the_environment_or_memory() -> None:
    assert max_workers({"RLM_MAX_WORKERS": "7"}) == 7
    assert 1 <= max_workers({}) <= DEFAULT_MAX_WORKERS
    for bad in ("0", "-1", "many"):
        with pytest.raises(UsageError, match="RLM_MAX_WORKERS"):
            max_workers({"RLM_MAX_WORKERS": bad})
