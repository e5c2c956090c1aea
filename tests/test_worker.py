"""The worker on its own: a real `python -m rlm_cli.worker` process driven through the protocol."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from rlm_cli.worker.handoff import Handoff
from rlm_cli.worker.process import WorkerProcess, worker_env
from rlm_cli.worker.protocol import ExecuteReply, LlmRequest, ProtocolError, decode, encode
from rlm_cli.worker.repl import CappedWriter


def start_worker(tmp_path: Path, files: dict[str, str]) -> WorkerProcess:
    return WorkerProcess(Handoff.of(files), tmp_path)


async def no_llm(request: LlmRequest) -> list[dict[str, str]]:
    raise AssertionError("no sub-call expected")


def test_cells_share_state_and_report_errors(tmp_path: Path) -> None:
    async def scenario() -> list:
        worker = start_worker(tmp_path, {"a.txt": "hello\n", "b.txt": "world\n"})
        try:
            await worker.start()
            run = lambda i, code: worker.execute(i, code, timeout=30, max_output_chars=1000, on_llm=no_llm)  # noqa: E731
            return [worker.summary, await run(1, "n = len(context.files)\nn"), await run(2, "print(n * 2)\nundefined_name")]
        finally:
            await worker.close()

    summary, first, second = asyncio.run(scenario())
    assert summary.files == 2 and "hello" not in str(summary)
    assert first.output.strip() == "2" and first.error is None  # the last expression is echoed, no Out[n]
    assert second.output.startswith("4\n") and second.error == "NameError"
    assert "undefined_name" in second.output


def test_sub_calls_travel_to_the_host_and_batches_keep_order(tmp_path: Path) -> None:
    seen: list[LlmRequest] = []

    async def on_llm(request: LlmRequest) -> list[dict[str, str]]:
        seen.append(request)
        return [{"error": "boom"} if p == "bad" else {"text": p.upper()} for p in request.prompts]

    async def scenario() -> tuple:
        worker = start_worker(tmp_path, {"x": "data"})
        try:
            await worker.start()
            batch = await worker.execute(1, "print(llm_query_batched(['a', 'bad', 'c']))", timeout=30, max_output_chars=1000, on_llm=on_llm)
            single = await worker.execute(2, "llm_query('bad')", timeout=30, max_output_chars=1000, on_llm=on_llm)
            joined = await worker.execute(3, "print(llm_query('q', context='ctx'))", timeout=30, max_output_chars=1000, on_llm=on_llm)
            return batch, single, joined
        finally:
            await worker.close()

    batch, single, joined = asyncio.run(scenario())
    assert batch.output.strip() == "['A', 'ERROR: boom', 'C']"
    assert single.error == "SubcallError" and "boom" in single.output
    assert joined.output.strip() == "Q\n\nCTX"
    assert [r.prompts for r in seen] == [["a", "bad", "c"], ["bad"], ["q\n\nctx"]]


def test_final_and_final_var(tmp_path: Path) -> None:
    async def scenario() -> list[ExecuteReply]:
        worker = start_worker(tmp_path, {"x": "data"})
        try:
            await worker.start()
            run = lambda i, code: worker.execute(i, code, timeout=30, max_output_chars=1000, on_llm=no_llm)  # noqa: E731
            return [
                await run(1, "FINAL(42)"),
                await run(2, "rows = list(range(3))\nFINAL_VAR('rows')"),
                await run(3, "FINAL_VAR('missing')"),
                await run(4, "s = 'FINAL(1)'"),
            ]
        finally:
            await worker.close()

    first, second, missing, prose = asyncio.run(scenario())
    assert first.final == "42"
    assert second.final == "[0, 1, 2]"
    assert missing.final is None and missing.error == "NameError" and "no variable named 'missing'" in missing.output
    assert prose.final is None


def test_a_worker_that_dies_is_restarted_with_its_context(tmp_path: Path) -> None:
    async def scenario() -> tuple:
        worker = start_worker(tmp_path, {"x": "0123456789"})
        try:
            await worker.start()
            first_pid = worker.pid
            died = await worker.execute(1, "import os\nos._exit(7)", timeout=30, max_output_chars=1000, on_llm=no_llm)
            after = await worker.execute(2, "print(len(context))", timeout=30, max_output_chars=1000, on_llm=no_llm)
            return first_pid, worker.pid, died, after
        finally:
            await worker.close()

    first_pid, second_pid, died, after = asyncio.run(scenario())
    assert died.restarted and "exited with status 7" in (died.crash or "")
    assert after.output.strip() == "10"
    assert first_pid != second_pid


def test_output_is_capped_keeping_head_and_tail(tmp_path: Path) -> None:
    async def scenario() -> ExecuteReply:
        worker = start_worker(tmp_path, {"x": "data"})
        try:
            await worker.start()
            code = "for i in range(100_000):\n    print(f'line {i}')"
            return await worker.execute(1, code, timeout=60, max_output_chars=2000, on_llm=no_llm)
        finally:
            await worker.close()

    reply = asyncio.run(scenario())
    assert reply.output_chars == sum(len(f"line {i}\n") for i in range(100_000))
    assert reply.output.startswith("line 0\nline 1\n")
    assert reply.output.rstrip().endswith("line 99999")
    assert f"the cell printed {reply.output_chars:,} in all" in reply.output
    assert len(reply.output) < 2300


def test_capped_writer_counts_everything() -> None:
    out = CappedWriter(10)
    for piece in ("abc", "defgh", "ijklmnop", "qrstuvwxyz"):
        out.write(piece)
    assert out.total == 26
    rendered = out.render()
    assert rendered.startswith("abcde") and rendered.endswith("vwxyz") and "16 characters omitted" in rendered


def test_the_worker_environment_is_an_allow_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = worker_env(tmp_path, {"PATH": "/usr/bin", "OPENAI_API_KEY": "sk-canary", "GITHUB_TOKEN": "t", "LANG": "C.UTF-8"})
    assert "OPENAI_API_KEY" not in env and "GITHUB_TOKEN" not in env
    assert env["PATH"] == "/usr/bin" and env["HOME"] == str(tmp_path)

    async def scenario() -> ExecuteReply:
        worker = WorkerProcess(Handoff.of({"x": "data"}), tmp_path)  # its env is built from the host's
        try:
            await worker.start()
            return await worker.execute(1, "import os\nprint(sorted(os.environ), os.getcwd())", timeout=30, max_output_chars=5000, on_llm=no_llm)
        finally:
            await worker.close()

    monkeypatch.setenv("RLM_TEST_CANARY", "canary-value")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary")
    reply = asyncio.run(scenario())
    assert "OPENAI_API_KEY" not in reply.output and "RLM_TEST_CANARY" not in reply.output
    assert str(tmp_path) in reply.output


def test_protocol_round_trip_and_rejects_garbage() -> None:
    message = LlmRequest(req_id=3, prompts=["a", "é"], model=None, recursive=True, contexts=["c", None], cell_id=2)
    assert decode(encode(message)[4:]) == message
    for garbage in (b"not json", b'{"type": "nope", "v": 1}', b'{"type": "llm_request", "v": 99, "req_id": 1, "prompts": []}'):
        with pytest.raises(ProtocolError):
            decode(garbage)


def test_a_leftover_thread_cannot_end_a_later_cell(tmp_path: Path) -> None:
    async def scenario() -> list[ExecuteReply]:
        worker = start_worker(tmp_path, {"x": "data"})
        try:
            await worker.start()
            run = lambda i, code: worker.execute(i, code, timeout=30, max_output_chars=1000, on_llm=no_llm)  # noqa: E731
            leftover = (
                "import threading, time\nrefusals = []\nanswer = 'stale'\n"
                "def loop():\n"
                "    while True:\n"
                "        for end in (lambda: FINAL('stale'), lambda: FINAL_VAR('answer')):\n"
                "            try:\n                end()\n"
                "            except Exception as exc:\n                refusals.append(str(exc))\n"
                "        time.sleep(0.01)\n"
                "threading.Thread(target=loop, daemon=True).start()\ntime.sleep(0.05)"
            )
            return [await run(1, leftover), await run(2, "time.sleep(0.3)"), await run(3, "print(refusals[-1])")]
        finally:
            await worker.close()

    first, later, seen = asyncio.run(scenario())
    assert first.final == "stale"  # during its own cell, a thread the cell started may answer
    assert later.final is None and later.error is None
    assert "outlived the cell" in seen.output


def test_class_and_builtin_patches_last_only_until_the_cell_ends(tmp_path: Path) -> None:
    async def scenario() -> list[ExecuteReply]:
        worker = start_worker(tmp_path, {"x": "0123456789"})
        try:
            await worker.start()
            run = lambda i, code: worker.execute(i, code, timeout=30, max_output_chars=1000, on_llm=no_llm)  # noqa: E731
            patch = (
                "import builtins\n"
                "type(context).grep = lambda self, *a, **k: ['forged']\n"
                "type(context).mine = 1\n"
                "builtins.print = lambda *a, **k: None\n"
                "builtins.len = lambda x: -1\n"
                "builtins.planted = True\n"
            )
            check = "import builtins\nprint(len(context), context.grep('5'), hasattr(type(context), 'mine'), hasattr(builtins, 'planted'))"
            return [await run(1, patch), await run(2, check)]
        finally:
            await worker.close()

    patched, check = asyncio.run(scenario())
    assert {"Context.grep", "Context.mine", "builtins.print", "builtins.len", "builtins.planted"} <= set(patched.restored)
    assert check.output.strip() == "10 [x:1: 0123456789] False False"
    assert check.restored == ()
