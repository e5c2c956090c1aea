"""Cells that attack the worker, the host or the machine, each named for what it tries.

Most run against a real confined worker (`WorkerProcess`, the same one a run uses); the ones about
what reaches the model, the user or the provider run the real CLI against the scripted server.
The kernel features (user+network namespaces, Landlock) are probed, and a test that needs one is
skipped where it is missing, so the module also runs on a laptop.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import run_rlm
from scripted_server import last_user_text

from rlm_cli.worker.handoff import Handoff
from rlm_cli.worker.process import CellOutcome, WorkerProcess
from rlm_cli.worker.protocol import LlmRequest
from rlm_cli.worker.sandbox import Policy, descendants, landlock_abi

CANARY = "sk-canary-7f3a9c1e5b"


def _userns_available() -> bool:
    import subprocess

    probe = "import ctypes,sys; sys.exit(ctypes.CDLL(None).unshare(0x10000000 | 0x40000000) != 0)"
    return subprocess.run(["python3", "-c", probe], check=False).returncode == 0


NETNS = _userns_available()
LANDLOCK = landlock_abi()
needs_netns = pytest.mark.skipif(not NETNS, reason="no user+network namespaces on this kernel")
needs_landlock = pytest.mark.skipif(LANDLOCK < 1, reason="no Landlock on this kernel")
needs_landlock_v6 = pytest.mark.skipif(LANDLOCK < 6, reason="Landlock ABI < 6: no signal scoping")


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


async def _echo(request: LlmRequest) -> list[dict[str, str]]:
    return [{"text": f"echo:{p}"} for p in request.prompts]


def run_cells(
    tmp_path: Path,
    *codes: str,
    timeout: float = 30,
    env: dict[str, str] | None = None,
    after: Callable[[WorkerProcess], None] | None = None,
) -> tuple[list[CellOutcome], WorkerProcess]:
    """Run `codes` one after another in one confined worker; returns their outcomes."""
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    policy = Policy.for_context(scratch, 10, environ=env or {})

    async def scenario() -> tuple[list[CellOutcome], WorkerProcess]:
        worker = WorkerProcess(Handoff.of({"in.txt": "0123456789"}), scratch, policy=policy)
        outcomes = []
        try:
            await worker.start()
            for i, code in enumerate(codes, 1):
                outcomes.append(await worker.execute(i, code, timeout=timeout, max_output_chars=4000, on_llm=_echo))
            if after is not None:
                after(worker)
        finally:
            await worker.close()
        return outcomes, worker

    return asyncio.run(scenario())


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


# -- resources --------------------------------------------------------------------------------


def test_unbounded_allocation_gets_memory_error_and_the_worker_lives_on(tmp_path: Path) -> None:
    grow = "hog = []\nwhile True:\n    hog.append(bytearray(50_000_000))"
    (hog, after), _ = run_cells(tmp_path, grow, "del hog\nprint(len(context))", env={"RLM_WORKER_MEMORY": "1G"})
    assert hog.error == "MemoryError" or hog.restarted
    assert after.output.strip() == "10"


def test_one_huge_allocation_is_refused(tmp_path: Path) -> None:
    (big, after), _ = run_cells(tmp_path, "x = bytearray(64 * 2**30)", "print('fine')", env={"RLM_WORKER_MEMORY": "1G"})
    assert big.error == "MemoryError" and not big.restarted
    assert after.output.strip() == "fine"


def test_fork_bomb_is_capped_and_leaves_no_process(tmp_path: Path) -> None:
    bomb = "import os\nwhile True:\n    os.fork()"
    seen: list[set[int]] = []
    (boom, after), _ = run_cells(
        tmp_path, bomb, "print('still here', len(context))",
        env={"RLM_WORKER_PROCS": "48"}, timeout=20,
        after=lambda w: seen.append(descendants(w.pid or 0) | {w.pid or 0}),
    )
    assert boom.error in ("BlockingIOError", "OSError") or boom.timed_out
    assert after.output.strip() == "still here 10"
    time.sleep(0.2)
    assert not [pid for pid in seen[0] if _alive(pid)]


def test_background_processes_and_setsid_daemons_are_gone_after_the_run(tmp_path: Path) -> None:
    code = (
        "import subprocess\n"
        "p1 = subprocess.Popen(['sleep', '300'])\n"
        "p2 = subprocess.Popen(['setsid', 'sleep', '301'])\n"
        "import time; time.sleep(0.3)\n"
        "print(p1.pid, p2.pid)"
    )
    (started,), _ = run_cells(tmp_path, code)
    pids = [int(p) for p in started.output.split()]
    time.sleep(0.3)
    assert pids and not [p for p in pids if _alive(p)]


def test_printing_gigabytes_is_capped(tmp_path: Path) -> None:
    code = "chunk = 'x' * 10**8\nfor _ in range(25):\n    print(chunk)"
    (printed,), _ = run_cells(tmp_path, code, timeout=60)
    assert printed.output_chars == 25 * (10**8 + 1)
    assert len(printed.output) < 5000 and "characters omitted" in printed.output


def test_writing_a_file_past_the_size_limit_fails_in_the_cell(tmp_path: Path) -> None:
    code = "with open('big.bin', 'wb') as f:\n    f.write(b'x' * (3 * 2**20))"
    (wrote, after), _ = run_cells(tmp_path, code, "print('alive')", env={"RLM_WORKER_FILE_SIZE": "1M"})
    assert wrote.error == "OSError" and "File too large" in wrote.output
    assert after.output.strip() == "alive"


def test_spinning_past_the_cpu_limit_restarts_the_worker(tmp_path: Path) -> None:
    (spin, after), _ = run_cells(tmp_path, "while True:\n    pass", "print(len(context))", env={"RLM_WORKER_CPU_S": "1"})
    assert spin.restarted and ("SIGXCPU" in (spin.crash or "") or "SIGKILL" in (spin.crash or ""))
    assert after.output.strip() == "10"


# -- ways to die ------------------------------------------------------------------------------


def test_sys_exit_is_caught_and_the_variables_survive(tmp_path: Path) -> None:
    (_, ended, after), _ = run_cells(tmp_path, "kept = 5", "import sys\nsys.exit(3)", "print(kept)")
    assert ended.error == "SystemExit" and not ended.restarted
    assert after.output.strip() == "5"


def test_os_exit_restarts_the_worker_with_context(tmp_path: Path) -> None:
    (died, after), _ = run_cells(tmp_path, "import os\nos._exit(0)", "print(len(context), 'lost' in dir())")
    assert died.restarted and "exited with status 0" in (died.crash or "")
    assert after.output.strip() == "10 False"


def test_sigkill_to_itself_restarts_the_worker(tmp_path: Path) -> None:
    (died, after), _ = run_cells(tmp_path, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "print(len(context))")
    assert died.restarted and "SIGKILL" in (died.crash or "")
    assert after.output.strip() == "10"


def test_ctypes_segfault_restarts_the_worker(tmp_path: Path) -> None:
    (died, after), _ = run_cells(tmp_path, "import ctypes\nctypes.string_at(0)", "print(len(context))")
    assert died.restarted and "SIGSEGV" in (died.crash or "")
    assert after.output.strip() == "10"


_HOST_FD = (  # the inherited socket to the host: the only socket a fresh worker holds
    "import os, stat\n"
    "def _is_sock(n):\n    try:\n        return stat.S_ISSOCK(os.fstat(n).st_mode)\n    except OSError:\n        return False\n"
    "fd = next(n for n in range(3, 256) if _is_sock(n))\n"
)


def test_closing_the_host_socket_restarts_the_worker(tmp_path: Path) -> None:
    (died, after), _ = run_cells(tmp_path, _HOST_FD + "os.close(fd)", "print(len(context))")
    assert died.restarted and died.error == "WorkerDied"
    assert after.output.strip() == "10"


def test_writing_garbage_to_the_host_socket_restarts_the_worker(tmp_path: Path) -> None:
    garbage = _HOST_FD + "os.write(fd, b'\\x00\\x00\\x00\\x10not a message at all')"
    (died, after), _ = run_cells(tmp_path, garbage, "print(len(context))", timeout=10)
    assert died.restarted
    assert after.output.strip() == "10"


def test_a_thread_that_outlives_its_cell_cannot_make_sub_calls_and_is_gone_at_the_end(tmp_path: Path) -> None:
    code = (
        "import threading, time\nerrors, served = [], []\n"
        "def loop():\n"
        "    while True:\n"
        "        time.sleep(0.05)\n"
        "        try:\n            served.append(llm_query('from a thread'))\n"
        "        except Exception as exc:\n            errors.append(str(exc))\n"
        "threading.Thread(target=loop).start()"
    )
    pids: list[int] = []
    started = time.monotonic()
    (_, later, last), _ = run_cells(
        tmp_path, code, "import time\ntime.sleep(0.5)", "print(llm_query('main'), served, any('outlived' in e for e in errors))",
        after=lambda w: pids.append(w.pid or 0),
    )
    assert later.error is None
    assert last.output.strip() == "echo:main [] True"  # not one of the thread's calls was served
    assert time.monotonic() - started < 15  # close did not wait on the thread
    time.sleep(0.2)
    assert not _alive(pids[0])


# -- network, files, signals ------------------------------------------------------------------


@needs_netns
def test_connecting_to_a_loopback_server_fails(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        code = f"import socket\ns = socket.socket()\ns.settimeout(3)\nprint(s.connect_ex(('127.0.0.1', {port})))"
        (tried,), _ = run_cells(tmp_path, code)
    finally:
        listener.close()
    assert tried.output.strip() not in ("0", "")  # ENETUNREACH (namespace) or EACCES (Landlock)


@needs_netns
def test_connecting_out_fails_even_without_landlock(tmp_path: Path) -> None:
    code = (
        "import socket\nprint(socket.socket().connect_ex(('127.0.0.1', 1)))\n"
        "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "try:\n    u.sendto(b'x', ('1.1.1.1', 53)); print('sent')\nexcept OSError as e:\n    print(e.errno)\n"
        "print(open('/proc/net/dev').read().count(':'))"
    )
    (tried,), _ = run_cells(tmp_path, code, env={"RLM_SANDBOX_DISABLE": "files"})
    refused, udp, interfaces = tried.output.split()
    assert refused == "101" and udp == "101"  # ENETUNREACH: no interface is up
    assert interfaces == "1"  # only lo, down


@needs_landlock
def test_writing_outside_the_scratch_directory_fails(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "keep.txt").write_text("original")
    code = (
        f"import os\nfor path in [{str(source / 'keep.txt')!r}, {str(source / 'new.txt')!r}, '/tmp/rlm-escape.txt']:\n"
        "    try:\n        open(path, 'w').write('pwned'); print('wrote', path)\n"
        "    except OSError as e:\n        print('denied', e.errno)\n"
        "open('mine.txt', 'w').write('ok'); print(open('mine.txt').read())"
    )
    (tried,), _ = run_cells(tmp_path, code)
    assert tried.output.split("\n")[:4] == ["denied 13", "denied 13", "denied 13", "ok"]
    assert (source / "keep.txt").read_text() == "original" and not (source / "new.txt").exists()
    assert not Path("/tmp/rlm-escape.txt").exists()


@needs_landlock_v6
def test_killing_the_host_is_not_permitted(tmp_path: Path) -> None:
    (tried,), _ = run_cells(tmp_path, "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)")
    assert tried.error == "PermissionError"


# -- secrets, through the real CLI ------------------------------------------------------------


def _secret_env() -> dict[str, str]:
    return {"OPENAI_API_KEY": CANARY, "ANTHROPIC_API_KEY": CANARY + "-a", "GITHUB_TOKEN": CANARY + "-g"}


def _assert_no_canary(ran, server, trace: Path) -> None:
    assert CANARY not in ran.stdout and CANARY not in ran.stderr
    assert CANARY not in trace.read_text()
    for request in server.requests:  # the key may ride in the Authorization header, never in a body
        assert CANARY not in json.dumps(request.body)
        assert all(CANARY not in v for k, v in request.headers.items() if k != "authorization")


def test_dumping_os_environ_shows_no_keys(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    code = "import os\nenv = dict(os.environ)\nprint(env)\nllm_query(str(env))"

    def check(messages: list[dict]) -> str:
        assert "PATH" in last_user_text(messages)  # the dump did reach the model
        return repl("FINAL('done')")

    server = scripted_server([repl(code), check])
    trace = tmp_path / "t.jsonl"
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--trace", str(trace), env=_secret_env())
    assert ran.code == 0, ran.stderr
    _assert_no_canary(ran, server, trace)


def test_reading_the_hosts_proc_environ_maps_and_mem_leaks_nothing(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    code = (
        "import os\nhost = os.getppid()\nfound = []\n"
        "for name in ('environ', 'maps', 'mem', 'cmdline'):\n"
        "    try:\n"
        "        with open(f'/proc/{host}/{name}', 'rb') as f:\n"
        "            data = f.read(1 << 20)\n"
        "        found.append((name, len(data)))\n"
        "        print(name, data[:4000])\n"
        "    except OSError as e:\n"
        "        found.append((name, e.errno))\n"
        "print(found)\nllm_query(str(found))"
    )
    server = scripted_server([repl(code), repl("FINAL('done')")])
    trace = tmp_path / "t.jsonl"
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--trace", str(trace), env=_secret_env())
    assert ran.code == 0, ran.stderr
    _assert_no_canary(ran, server, trace)
    cells = [json.loads(line) for line in trace.read_text().splitlines() if '"type": "cell"' in line]
    assert "('environ', 13)" in cells[0]["output"]  # denied, not just empty


def test_a_crash_is_reported_to_the_model_and_the_run_goes_on(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("0123456789")

    def after(messages: list[dict]) -> str:
        text = last_user_text(messages)
        assert "SIGSEGV" in text and "restarted" in text
        return repl("FINAL(len(context))")

    server = scripted_server([repl("import ctypes\nctypes.string_at(0)"), after])
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *server.cli_args())
    assert ran.code == 0, ran.stderr
    assert ran.stdout == "10\n"


def test_missing_isolation_is_one_warning_on_stderr_and_in_the_trajectory(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    server = scripted_server([repl("FINAL('ok')")])
    trace = tmp_path / "t.jsonl"
    ran = run_rlm(
        "ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--trace", str(trace),
        env={"RLM_SANDBOX_DISABLE": "network"},
    )
    assert ran.code == 0, ran.stderr
    assert ran.stderr.count("network not isolated") == 1
    notices = [json.loads(line) for line in trace.read_text().splitlines() if '"notice"' in line]
    assert [n["level"] for n in notices if "network" in n["message"]] == ["warning"]
    clean = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *scripted_server([repl("FINAL('ok')")]).cli_args())
    if NETNS and LANDLOCK:
        assert "worker isolation" not in clean.stderr


def test_signal_module_cannot_kill_the_host_process_group(tmp_path: Path) -> None:
    # The worker is its own session leader: killpg(0) reaches only the worker and its children.
    host_pid = os.getpid()
    (died, after), _ = run_cells(tmp_path, "import os, signal\nos.killpg(0, signal.SIGKILL)", "print('back')")
    assert os.getpid() == host_pid and died.restarted
    assert after.output.strip() == "back"
    assert signal.getsignal(signal.SIGINT) is not None
