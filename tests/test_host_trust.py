"""The host trusts nothing the worker controls: cells that turn the scratch directory or the
channel to the host against it.

Once a worker runs, the host never opens, reads or follows a path inside the scratch directory
(issue 9, rule 1). Those tests are cells that plant something there — a symlink where a log
used to be, a forged context file — then crash the worker, and check through the real CLI
against the scripted server that the host's files, prompts and memory are as they were. The
others write well-framed but hostile messages on the host socket, through a real worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Ran, run_rlm
from scripted_server import last_user_text

from rlm_cli.worker.handoff import Handoff
from rlm_cli.worker.process import CellOutcome, WorkerProcess
from rlm_cli.worker.protocol import VERSION, LlmRequest

CANARY = "sk-canary-host-trust-5d1e"

# Where the first version logged the worker's output, reading it back when the worker died.
_CLEAR = "import os\nif os.path.lexists('worker.log'):\n    os.remove('worker.log')\n"


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def _trace_and_prompts(trace: Path, server) -> str:
    """Everything the run wrote to the trajectory and sent to any model, as one text."""
    return trace.read_text() + "".join(json.dumps(r.body) for r in server.requests)


def test_a_log_symlinked_to_a_host_file_is_neither_appended_to_nor_read(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    victim = tmp_path / "victim.pth"
    victim.write_text("# VICTIM-ORIGINAL\n")
    plant = _CLEAR + f"os.symlink({str(victim)!r}, 'worker.log')\nos._exit(3)"
    chatter = "import os\nos.write(1, b'PLANTED to stdout\\n')\nos.write(2, b'PLANTED to stderr\\n')\nos._exit(4)"

    def after_second_crash(messages: list[dict]) -> str:
        said = last_user_text(messages)
        assert "exited with status 4" in said and "PLANTED to stderr" in said  # the pipe's tail is quoted
        return repl("FINAL('done')")

    server = scripted_server([repl(plant), repl(chatter), after_second_crash])
    trace = tmp_path / "t.jsonl"
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--trace", str(trace))
    assert ran.code == 0, ran.stderr
    assert victim.read_text() == "# VICTIM-ORIGINAL\n"
    assert "VICTIM-ORIGINAL" not in _trace_and_prompts(trace, server)


def test_a_log_symlinked_to_the_hosts_environ_leaks_no_key(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    plant = _CLEAR + "os.symlink('/proc/self/environ', 'worker.log')\nos._exit(3)"
    server = scripted_server([repl(plant), repl("FINAL('done')")])
    trace = tmp_path / "t.jsonl"
    ran = run_rlm(
        "ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--trace", str(trace),
        env={"OPENAI_API_KEY": CANARY, "RLM_TEST_SECRET": CANARY},
    )
    assert ran.code == 0, ran.stderr
    assert CANARY not in ran.stderr and CANARY not in ran.stdout
    assert CANARY not in _trace_and_prompts(trace, server).replace(f"Bearer {CANARY}", "")


def _run_capped(args: list[str], address_space: int) -> Ran:
    """The real CLI with its address space (and its worker's) capped, so a runaway read fails fast."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    proc = subprocess.run(
        [sys.executable, "-m", "rlm_cli", *args], input=b"", capture_output=True, timeout=120, preexec_fn=cap
    )
    return Ran(proc.returncode, proc.stdout.decode(), proc.stderr.decode(), 0.0)


def test_a_log_symlinked_to_dev_zero_and_a_chatty_worker_leave_the_host_bounded(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("0123456789")
    chatty = "import os\nblock = b'y' * (1 << 20)\nfor _ in range(300):\n    os.write(1, block)\nprint('said a lot')"
    plant = _CLEAR + "os.symlink('/dev/zero', 'worker.log')\nos._exit(3)"

    def after_crash(messages: list[dict]) -> str:
        assert "exited with status 3" in last_user_text(messages)
        return repl("FINAL(len(context))")

    server = scripted_server([repl(chatty), repl(plant), after_crash])
    ran = _run_capped(["ask", str(tmp_path / "in.txt"), "q?", *server.cli_args()], 3 << 30)
    assert ran.code == 0, ran.stderr[-2000:]
    assert ran.stdout == "10\n"


@pytest.mark.parametrize("attack", ["rewrite", "delete"])
def test_the_context_after_a_restart_is_the_hosts_own(scripted_server, tmp_path: Path, attack: str) -> None:
    (tmp_path / "in.txt").write_text("ORIGINAL-TEXT")
    forge = (
        "import marshal, os\n"
        "for name in os.listdir('.'):\n"
        "    if os.path.isfile(name):\n"
        + (
            "        open(name, 'wb').write(marshal.dumps([('in.txt', 'FORGED')]))\n"
            if attack == "rewrite"
            else "        os.remove(name)\n"
        )
        + "marshal.dump([('in.txt', 'FORGED')], open('context.marshal', 'wb'))\n" * (attack == "rewrite")
        + "os._exit(1)"
    )

    def after_restart(messages: list[dict]) -> str:
        assert "restarted" in last_user_text(messages)
        return repl("print(context)")

    def check(messages: list[dict]) -> str:
        assert "ORIGINAL-TEXT" in last_user_text(messages)
        return repl("FINAL(context)")

    server = scripted_server([repl(forge), after_restart, check])
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args())
    assert ran.code == 0, ran.stderr
    assert ran.stdout == "ORIGINAL-TEXT\n"


def test_cleanup_removes_the_scratch_directory_without_following_links(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    keep = tmp_path / "keep"
    (keep / "sub").mkdir(parents=True)
    (keep / "sub" / "file.txt").write_text("kept")
    (keep / "top.txt").write_text("kept")
    plant = (
        "import os\n"
        f"os.symlink({str(keep)!r}, 'dir-link')\n"
        f"os.symlink({str(keep / 'top.txt')!r}, 'file-link')\n"
        "os.makedirs('deep/er')\n"
        f"os.symlink({str(keep / 'sub')!r}, 'deep/er/sub-link')\n"
        "print(os.getcwd())"
    )
    seen: list[str] = []

    def finish(messages: list[dict]) -> str:
        seen.append(last_user_text(messages).split()[0])
        return repl("FINAL('done')")

    server = scripted_server([repl(plant), finish])
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args())
    assert ran.code == 0, ran.stderr
    scratch = Path(seen[0])
    assert scratch.name.startswith("rlm-depth0-") and not os.path.lexists(scratch)
    assert (keep / "top.txt").read_text() == "kept" and (keep / "sub" / "file.txt").read_text() == "kept"


# -- hostile messages on the host socket ---------------------------------------------------------

_SEND = (  # the inherited socket to the host is the worker's only socket; frame `body` onto it
    "import os, socket, stat, struct, time\n"
    "def _is_sock(n):\n    try:\n        return stat.S_ISSOCK(os.fstat(n).st_mode)\n    except OSError:\n        return False\n"
    "fd = next(n for n in range(3, 256) if _is_sock(n))\n"
    "socket.socket(fileno=os.dup(fd)).sendall(struct.pack('>I', len(body)) + body)\n"
    "time.sleep(20)\n"
)


def _request(**fields: object) -> bytes:
    return json.dumps({"type": "llm_request", "v": VERSION, "req_id": 1, "cell_id": 1, **fields}).encode()


HOSTILE = {
    "deep": b'{"type": "llm_request", "v": %d, "req_id": 1, "prompts": ' % VERSION + b"[" * 200_000 + b"]" * 200_000 + b"}",
    "prompts-not-a-list": _request(prompts=5),
    "prompts-not-strings": _request(prompts=[1, {"a": 2}]),
    "huge-batch": _request(prompts=[""] * 1_000_000),
    "contexts-a-string": _request(prompts=["a"], contexts="x"),
    "contexts-too-few": _request(prompts=["a", "b"], contexts=[None]),
    "model-a-dict": _request(prompts=["a"], model={"x": 1}),
    "final-a-dict": json.dumps(
        {"type": "execute_reply", "v": VERSION, "cell_id": 1, "output": "", "output_chars": 0, "error": None, "final": {"a": 1}}
    ).encode(),
    "cell-id-a-bool": json.dumps(
        {"type": "execute_reply", "v": VERSION, "cell_id": True, "output": "", "output_chars": 0, "error": None, "final": "x"}
    ).encode(),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_message_restarts_the_worker_and_the_run_goes_on(tmp_path: Path, name: str) -> None:
    served: list[LlmRequest] = []

    async def on_llm(request: LlmRequest) -> list[dict[str, str]]:
        served.append(request)
        return [{"text": "served"} for _ in request.prompts]

    async def scenario() -> tuple[CellOutcome, CellOutcome]:
        worker = WorkerProcess(Handoff.of({"in.txt": "0123456789"}), tmp_path)
        try:
            await worker.start()
            code = f"body = {HOSTILE[name]!r}\n{_SEND}"
            hostile = await worker.execute(1, code, timeout=60, max_output_chars=1000, on_llm=on_llm)
            after = await worker.execute(2, "print(len(context))", timeout=30, max_output_chars=1000, on_llm=on_llm)
            return hostile, after
        finally:
            await worker.close()

    hostile, after = asyncio.run(scenario())
    assert hostile.restarted and hostile.final is None and not hostile.timed_out
    assert "refused" in (hostile.crash or "")
    assert not served
    assert after.output.strip() == "10"


def test_a_sub_call_stamped_with_another_cell_is_refused(tmp_path: Path) -> None:
    async def on_llm(request: LlmRequest) -> list[dict[str, str]]:
        raise AssertionError("a request for another cell was served")

    forged = _request(prompts=["a"], cell_id=7)
    reply = (
        "import json\nn = struct.unpack('>I', socket.socket(fileno=os.dup(fd)).recv(4))[0]\n"
        "print(socket.socket(fileno=os.dup(fd)).recv(n).decode())"
    )
    code = f"body = {forged!r}\n" + _SEND.replace("time.sleep(20)\n", reply)

    async def scenario() -> CellOutcome:
        worker = WorkerProcess(Handoff.of({"in.txt": "x"}), tmp_path)
        try:
            await worker.start()
            return await worker.execute(1, code, timeout=30, max_output_chars=2000, on_llm=on_llm)
        finally:
            await worker.close()

    outcome = asyncio.run(scenario())
    assert not outcome.restarted and outcome.error is None, outcome.output
    assert "refused: a sub-call from cell 7 arrived while cell 1 runs" in outcome.output


def test_a_200000_deep_message_is_told_to_the_model_and_the_run_answers(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("0123456789")
    code = f"body = b'{{\"type\": \"llm_request\", \"v\": {VERSION}, \"prompts\": ' + b'[' * 200_000 + b']' * 200_000 + b'}}'\n"

    def after(messages: list[dict]) -> str:
        said = last_user_text(messages)
        assert "refused" in said and "restarted" in said
        return repl("FINAL(len(context))")

    server = scripted_server([repl(code + _SEND), after])
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args())
    assert ran.code == 0, ran.stderr
    assert ran.stdout == "10\n"


def test_a_cell_that_ignores_its_timeout_is_killed_without_a_traceback(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("0123456789")
    stubborn = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.1)"
    server = scripted_server([repl(stubborn), repl("FINAL(len(context))")])
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--cell-timeout", "1")
    assert ran.code == 0 and ran.stdout == "10\n", ran.stderr
    assert "error: Timeout" in ran.stderr
    assert "Traceback" not in ran.stderr and "never retrieved" not in ran.stderr


def test_a_process_left_holding_the_output_pipe_cannot_stall_a_restart(tmp_path: Path) -> None:
    orphan = "import subprocess\nsubprocess.run(['sh', '-c', 'setsid sleep 60 &'])"  # reparented, keeps stdout
    stubborn = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.1)"

    async def no_llm(request: LlmRequest) -> list[dict[str, str]]:
        return []

    async def scenario() -> list[CellOutcome]:
        worker = WorkerProcess(Handoff.of({"in.txt": "0123456789"}), tmp_path)
        try:
            await worker.start()
            outcomes = []
            for i, code in enumerate((orphan, stubborn, "print(len(context))"), 1):
                outcomes.append(await asyncio.wait_for(worker.execute(i, code, timeout=1, max_output_chars=100, on_llm=no_llm), 30))
            return outcomes
        finally:
            await asyncio.wait_for(worker.close(), 30)

    _, stuck, after = asyncio.run(scenario())
    assert stuck.timed_out and stuck.restarted
    assert after.output.strip() == "10"
