"""`rlm mcp` through the MCP SDK's own client over stdio, against the scripted model server: the
tools listed, an answer with progress, a cancelled call that leaves no worker, a missing source
as a tool error."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

pytest.importorskip("mcp")

from mcp import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters  # noqa: E402
from scripted_server import ScriptedServer  # noqa: E402


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


@asynccontextmanager
async def connected(server: ScriptedServer) -> AsyncIterator[Client]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "rlm_cli", "mcp", *server.cli_args()], env=dict(os.environ))
    async with Client(params) as client:
        yield client


def descendants(pid: int, marker: bytes) -> list[int]:
    """`pid`'s descendants whose command line holds `marker`."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found = []
    for child in parents:
        ancestor = parents.get(child)
        while ancestor and ancestor != pid:
            ancestor = parents.get(ancestor)
        if ancestor == pid:
            try:
                if marker in (Path("/proc") / str(child) / "cmdline").read_bytes():
                    found.append(child)
            except OSError:
                continue
    return found


def workers_under(pid: int) -> list[int]:
    return descendants(pid, b"rlm_cli.worker")


def cgroups_of(host: int) -> list[Path]:
    """The pids cgroups a host made for its workers (where it may: as root on Linux)."""
    return list(Path("/sys/fs/cgroup/pids").glob(f"rlm-worker-{host}-*")) + list(Path("/sys/fs/cgroup").glob(f"rlm-worker-{host}-*"))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "config.py").write_text("def load_config(path):\n    return open(path).read()\n")
    (tmp_path / "repo" / "main.py").write_text("from config import load_config\n")
    return tmp_path / "repo"


def test_tools_are_listed_and_ask_answers_with_progress(scripted_server, repo: Path) -> None:
    server = scripted_server([
        repl("notes = llm_query_batched(['a', 'b'])\nprint(len(notes))"),
        repl("FINAL(context.symbols('load_config')[0].path)"),
    ])
    progress: list[tuple[float, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, message))

    async def session() -> None:
        async with connected(server) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            assert set(tools) == {"ask", "inspect", "runs", "show"}
            assert {"source", "question", "model", "max_iterations", "schema", "cite"} <= set(tools["ask"].input_schema["properties"])
            result = await client.call_tool("ask", {"source": str(repo), "question": "Where is load_config?"}, progress_callback=on_progress)
            assert not result.is_error, result.content
            assert result.content[0].text == "config.py"
            assert result.structured_content is not None and result.structured_content["status"] == "ok"
            listed = await client.call_tool("runs", {})
            assert listed.structured_content is not None
            assert [r["question"] for r in listed.structured_content["runs"]] == ["Where is load_config?"]
            shown = await client.call_tool("show", {"run": "last"})
            assert shown.structured_content is not None and not shown.is_error
            assert (shown.structured_content["answer"], len(shown.structured_content["cells"])) == ("config.py", 2)

    asyncio.run(session())
    assert [done for done, _ in progress] == sorted({done for done, _ in progress}), "progress only goes up"
    assert progress[-1][1] == "turn 2/30, sub-calls 2/2 done"
    assert "turn 1/30, sub-calls 0/2 done" in [message for _, message in progress]


def test_a_missing_source_is_a_tool_error(scripted_server, tmp_path: Path) -> None:
    server = scripted_server([])

    async def session() -> None:
        async with connected(server) as client:
            result = await client.call_tool("ask", {"source": str(tmp_path / "nope"), "question": "q?"})
            assert result.is_error
            assert result.content[0].text == f"rlm: error: no such file or directory: {tmp_path / 'nope'}"
            inspected = await client.call_tool("inspect", {"source": str(tmp_path / "nope")})
            assert inspected.is_error
            assert (await client.call_tool("show", {"run": "nope"})).is_error
            assert len((await client.list_tools()).tools) == 4  # the server is still there

    asyncio.run(session())


def test_a_cancelled_call_stops_its_run_and_leaves_nothing_behind(scripted_server, repo: Path) -> None:
    server = scripted_server([repl("import time\nprint('working')\ntime.sleep(120)")])
    me = os.getpid()

    async def session() -> None:
        async with connected(server) as client:
            started = asyncio.Event()

            async def on_progress(done: float, total: float | None, message: str | None) -> None:
                started.set()

            call = asyncio.ensure_future(
                client.call_tool("ask", {"source": str(repo), "question": "q?"}, progress_callback=on_progress)
            )
            await asyncio.wait_for(started.wait(), 60)  # the first turn is in: its cell is running
            deadline = time.monotonic() + 30
            while not workers_under(me) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert workers_under(me), "the run's worker is running"
            (host,) = descendants(me, b"rlm_cli\0mcp")
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            deadline = time.monotonic() + 30
            while workers_under(me) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert workers_under(me) == []
            assert cgroups_of(host) == [], "the worker's cgroup is removed"
            assert len((await client.list_tools()).tools) == 4  # the server goes on serving

    asyncio.run(session())
    assert len(server.root_requests()) == 1


def test_progress_never_repeats_a_count_when_a_wake_up_comes_after_its_report() -> None:
    """The event that announces a change can be set after the pump already reported that change
    (emit runs on another thread); MCP wants every notification's progress to grow."""
    from rlm_cli.events import SubcallStart
    from rlm_cli.mcp_server import Progress

    sent: list[float] = []

    async def report(done: float, total: float | None, message: str | None) -> None:
        sent.append(done)

    async def scenario() -> None:
        progress = Progress(report, max_turns=5)
        start = SubcallStart(id=1, cell_id=1, depth=1, model="m", prompt_chars=1)
        progress.emit(start)  # its wake-up is queued first
        pump = asyncio.ensure_future(progress.pump())
        progress.emit(start)  # counted before the pump runs, its wake-up queued after it
        for _ in range(5):
            await asyncio.sleep(0)
        pump.cancel()

    asyncio.run(scenario())
    assert sent == [2.0]
