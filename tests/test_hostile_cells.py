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
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
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
    assert hog.error == "MemoryError" and not hog.restarted  # not an OOM kill
    assert after.output.strip() == "10"


@pytest.mark.parametrize("disabled", ["", "limits"])
def test_one_allocation_past_the_memory_limit_is_refused(tmp_path: Path, disabled: str) -> None:
    # 2 GiB of calloc'd pages, never touched: any machine gives them without the 1 GiB limit.
    env = {"RLM_WORKER_MEMORY": "1G", "RLM_SANDBOX_DISABLE": disabled}
    (big, after), _ = run_cells(tmp_path, "x = bytes(2 * 2**30)\ndel x", "print('fine')", env=env)
    assert big.error == (None if disabled else "MemoryError") and not big.restarted
    assert after.output.strip() == "fine"


def test_fork_bomb_is_capped_and_leaves_no_process(tmp_path: Path) -> None:
    bomb = "import os\nwhile True:\n    os.fork()"
    seen: list[set[int]] = []
    (boom, after), _ = run_cells(
        tmp_path, bomb, "print('still here', len(context))",
        env={"RLM_WORKER_PROCS": "48"}, timeout=20,
        after=lambda w: seen.append(descendants(w.pid or 0) | {w.pid or 0}),
    )
    assert boom.error == "BlockingIOError" and not boom.timed_out  # capped, not merely cut short
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
@needs_netns
@pytest.mark.parametrize(("disabled", "errnos"), [("", [2, 2, 30]), ("mounts", [13, 13, 13]), ("files", [2, 2, 30])])
def test_writing_outside_the_scratch_directory_fails(tmp_path: Path, disabled: str, errnos: list[int]) -> None:
    # Each layer alone holds: the mount namespace (the source is not even there: ENOENT; /tmp is
    # an empty read-only tmpfs: EROFS) and Landlock (EACCES).
    source = tmp_path / "source"
    source.mkdir()
    (source / "keep.txt").write_text("original")
    code = (
        f"import os\nfor path in [{str(source / 'keep.txt')!r}, {str(source / 'new.txt')!r}, '/tmp/rlm-escape.txt']:\n"
        "    try:\n        open(path, 'w').write('pwned'); print('wrote', path)\n"
        "    except OSError as e:\n        print('denied', e.errno)\n"
        "open('mine.txt', 'w').write('ok'); print(open('mine.txt').read())"
    )
    (tried,), _ = run_cells(tmp_path, code, env={"RLM_SANDBOX_DISABLE": disabled})
    assert tried.output.split("\n")[:4] == [f"denied {e}" for e in errnos] + ["ok"]
    assert (source / "keep.txt").read_text() == "original" and not (source / "new.txt").exists()
    assert not Path("/tmp/rlm-escape.txt").exists()


_ATTEMPT = (  # a cell prelude: run each attempt, print "name done" or "name <errno>"
    "import os, ctypes\n"
    "def attempt(name, fn):\n"
    "    try:\n        fn(); print(name, 'done')\n"
    "    except OSError as e:\n        print(name, e.errno)\n"
)


def _attempts(output: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in output.strip().splitlines())


def _snapshot(root: Path) -> dict[str, tuple[int, int, int, int, bytes, tuple[str, ...]]]:
    """Everything a cell could change about the files under `root`: mode, owner, times, bytes, xattrs."""
    found = {}
    for path in sorted([root, *root.rglob("*")]):
        st = path.lstat()
        data = path.read_bytes() if path.is_file() else b""
        found[str(path)] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, data, tuple(sorted(os.listxattr(path))))
    return found


@pytest.fixture
def fake_home() -> Iterator[Path]:
    """A user's home with tokens in it, outside every root the worker may read (not under /tmp,
    where pytest's tmp_path and the scratch directory live); it must be exactly as it was after."""
    home = Path(tempfile.mkdtemp(prefix="rlm-fake-home-", dir="/var/tmp"))
    (home / ".config" / "gh").mkdir(parents=True)
    (home / ".config" / "gh" / "hosts.yml").write_text(f"github.com:\n  oauth_token: {CANARY}-gh\n")
    (home / "project").mkdir()
    (home / "project" / ".env").write_text(f"OPENAI_API_KEY={CANARY}-env\n")
    tool = home / "bin" / "tool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    before = _snapshot(home)
    yield home
    try:
        assert _snapshot(home) == before
    finally:
        shutil.rmtree(home)


@needs_netns
@pytest.mark.parametrize("disabled", ["", "files"])
def test_metadata_changes_outside_scratch_fail(tmp_path: Path, fake_home: Path, disabled: str) -> None:
    # Landlock does not cover chmod, chown, utime or xattrs: the mount namespace does, alone too
    # ("files" off). A file the worker can see (the interpreter) gets changes that would change
    # nothing, were they let through (same mode, owner, times): they must fail with EROFS, even
    # through a descriptor. The fake home's tool, a real target, is not even there (ENOENT).
    tool = fake_home / "bin" / "tool"
    code = _ATTEMPT + (
        "import sys\n"
        "def meta(tag, p):\n"
        "    st = os.stat(p)\n"
        "    attempt(tag + 'chmod', lambda: os.chmod(p, st.st_mode))\n"
        "    attempt(tag + 'chown', lambda: os.chown(p, st.st_uid, st.st_gid))\n"
        "    attempt(tag + 'utime', lambda: os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns)))\n"
        "    attempt(tag + 'removexattr', lambda: os.removexattr(p, 'user.rlm-none'))\n"  # ENODATA, were it writable
        "python = os.path.realpath(sys.executable)\n"
        "meta('', python)\n"
        "fd = os.open(python, os.O_RDONLY)\n"
        "meta('f', fd)\n"
        "attempt('dir-chmod', lambda: os.chmod(os.path.dirname(python), os.stat(os.path.dirname(python)).st_mode))\n"
        "attempt('link', lambda: os.link(python, 'python'))\n"
        f"p = {str(tool)!r}\n"
        "attempt('home-chmod', lambda: os.chmod(p, 0o4755))\n"
        "attempt('home-chown', lambda: os.chown(p, 65534, 65534))\n"
        "attempt('home-utime', lambda: os.utime(p, (0, 0)))\n"
        "attempt('home-setxattr', lambda: os.setxattr(p, 'user.rlm', b'1'))\n"
        "open('mine', 'w').close()\n"
        "attempt('scratch-chmod', lambda: os.chmod('mine', 0o600))\n"
        "attempt('scratch-utime', lambda: os.utime('mine', (0, 0)))\n"
    )
    (tried, after), _ = run_cells(tmp_path, code, "print(len(context))", env={"RLM_SANDBOX_DISABLE": disabled})
    found = _attempts(tried.output)
    assert {k: found.pop(k) for k in ("scratch-chmod", "scratch-utime")} == {"scratch-chmod": "done", "scratch-utime": "done"}
    assert {k: found.pop(k) for k in list(found) if k.startswith("home-")} == dict.fromkeys(
        ("home-chmod", "home-chown", "home-utime", "home-setxattr"), "2"
    )
    assert found.pop("link") == "18"  # EXDEV: scratch is its own mount, so no hard link into it
    tried_here = ("chmod", "chown", "utime", "removexattr", "fchmod", "fchown", "futime", "fremovexattr", "dir-chmod")
    assert found == dict.fromkeys(tried_here, "30")
    assert after.output.strip() == "10"


@needs_netns
def test_capabilities_are_gone_and_the_mounts_cannot_be_undone(tmp_path: Path) -> None:
    code = _ATTEMPT + (
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "def check(rc):\n    if rc != 0:\n        raise OSError(ctypes.get_errno(), 'failed')\n"
        "class Attr(ctypes.Structure):\n"
        "    _fields_ = [('set', ctypes.c_uint64), ('clr', ctypes.c_uint64), ('prop', ctypes.c_uint64), ('ns', ctypes.c_uint64)]\n"
        "attempt('rw-again', lambda: check(libc.syscall(442, -100, b'/', 0x8000, ctypes.byref(Attr(clr=1)), 32)))\n"
        "attempt('remount', lambda: check(libc.mount(None, b'/', None, 32 | 4096, None)))\n"
        "attempt('umount', lambda: check(libc.umount2(b'/dev/shm', 2)))\n"
        "attempt('tmpfs', lambda: check(libc.mount(b'tmpfs', b'/tmp', b'tmpfs', 0, None)))\n"
        f"attempt('write', lambda: open({str(tmp_path / 'undone.txt')!r}, 'w').close())\n"
        "print('caps', [l.split()[1] for l in open('/proc/self/status') if l.startswith(('CapEff', 'CapBnd'))])\n"
    )
    (tried,), _ = run_cells(tmp_path, code, env={"RLM_SANDBOX_DISABLE": "files"})  # without Landlock's mount ban
    found = _attempts(tried.output)
    assert found.pop("caps") == "['0000000000000000', '0000000000000000']"
    assert found.pop("write") == "30"
    assert set(found.values()) == {"1"}, found  # EPERM
    assert not (tmp_path / "undone.txt").exists()


def _shm_entries() -> dict[str, tuple[int, int]]:
    return {e.name: (e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir("/dev/shm")}


@needs_netns
@pytest.mark.parametrize("disabled", ["", "mounts"])
def test_dev_shm_is_the_workers_own_and_gone_after_the_run(tmp_path: Path, disabled: str) -> None:
    # Other processes on this machine may use /dev/shm meanwhile, so the check is on what this
    # test put there or could have: another process's file stays as it was, the cell's are gone.
    other = Path("/dev/shm") / f"rlm-test-other-{uuid.uuid4().hex}"
    other.write_text("someone else's")
    mine = f"rlm-test-mine-{uuid.uuid4().hex}"
    before = _shm_entries()
    code = _ATTEMPT + (
        f"attempt('create', lambda: open('/dev/shm/{mine}', 'w').write('x'))\n"
        f"attempt('tamper', lambda: open({str(other)!r}, 'r+').write('mine now'))\n"
        f"attempt('delete', lambda: os.unlink({str(other)!r}))\n"
        f"attempt('fill', lambda: open('/dev/shm/{mine}.big', 'wb').write(b'x' * (200 << 20)))\n"
        f"attempt('free', lambda: os.unlink('/dev/shm/{mine}.big'))\n"
        "import multiprocessing\n"
        "attempt('semaphore', lambda: multiprocessing.Lock().acquire())\n"
    )
    try:
        (tried, after), _ = run_cells(tmp_path, code, "print(len(context))", env={"RLM_SANDBOX_DISABLE": disabled})
        now = _shm_entries()
        assert other.read_text() == "someone else's"
    finally:  # a failing run must not leave its files behind either
        for path in (other, Path("/dev/shm") / mine, Path("/dev/shm") / f"{mine}.big"):
            path.unlink(missing_ok=True)
    found = _attempts(tried.output)
    if disabled:  # no private tmpfs: Landlock denies /dev/shm, and multiprocessing's locks with it
        assert found.pop("free") == "2" and set(found.values()) == {"13"}, found
    else:  # the worker's own, size-limited tmpfs, where the host's files are not even visible
        assert found == {"create": "done", "tamper": "2", "delete": "2", "fill": "28", "free": "done", "semaphore": "done"}
    assert after.output.strip() == "10"
    assert not [name for name in now if name.startswith(mine)]
    assert {k: v for k, v in now.items() if k in before} == {k: v for k, v in before.items() if k in now}


@needs_landlock
@needs_netns
@pytest.mark.parametrize(("disabled", "list_root"), [("", "13"), ("mounts", "13"), ("files", "done")])
def test_reading_the_users_home_and_other_files_fails(tmp_path: Path, fake_home: Path, disabled: str, list_root: str) -> None:
    # The mount namespace leaves the home, other projects and most of /etc out (ENOENT) but shows
    # the root directory; Landlock alone denies them all (EACCES). /etc/shadow: a root worker
    # could read it otherwise.
    elsewhere = tmp_path / "other-project" / "notes.txt"  # under /tmp, next to the scratch directory
    elsewhere.parent.mkdir()
    elsewhere.write_text("private")
    code = _ATTEMPT + "".join(
        f"attempt({name!r}, lambda: print(open({str(path)!r}).read()[:0], end=''))\n"
        for name, path in [
            ("token", fake_home / ".config/gh/hosts.yml"), ("env", fake_home / "project/.env"),
            ("project", elsewhere), ("shadow", "/etc/shadow"), ("hostname", "/etc/hostname"),
        ]
    ) + f"attempt('list', lambda: os.listdir({str(fake_home)!r}))\nattempt('list-root', lambda: os.listdir('/'))\n"
    normal = (  # what a cell usually does still works: the standard library, IPython, a subprocess
        "import os, re, json, collections, shutil, subprocess, tempfile, datetime\n"
        "from IPython.display import display\n"
        "os.mkdir('src')\nopen('src/a.txt', 'w').write(context)\nshutil.copy('src/a.txt', 'b.txt')\n"
        "with tempfile.TemporaryDirectory() as d:\n    shutil.copytree('src', d + '/copy')\n    shutil.copy2(d + '/copy/a.txt', 'c.txt')\n"
        "display(json.dumps(collections.Counter(re.findall(r'[0-4]', open('c.txt').read()))))\n"
        "print(subprocess.run(['cat', 'b.txt'], capture_output=True, text=True).stdout, datetime.datetime.now().year > 2000)"
    )
    (tried, worked), _ = run_cells(tmp_path, code, normal, env={"RLM_SANDBOX_DISABLE": disabled})
    found = _attempts(tried.output)
    denied = "13" if disabled == "mounts" else "2"
    assert found == dict.fromkeys(("token", "env", "project", "shadow", "hostname", "list"), denied) | {"list-root": list_root}
    assert worked.error is None, worked.output
    assert worked.output.splitlines() == ["'{\"0\": 1, \"1\": 1, \"2\": 1, \"3\": 1, \"4\": 1}'", "0123456789 True"]


@needs_landlock
def test_secrets_in_the_users_home_never_reach_the_model(scripted_server, tmp_path: Path, fake_home: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    code = (
        "import os\nloot = []\n"
        f"home = {str(fake_home)!r}\n"  # os.walk would find nothing: the directory is unreadable too
        "for p in [os.path.join(os.environ['HOME'], '.env'), home + '/.config/gh/hosts.yml', home + '/project/.env']:\n"
        "    try:\n        loot.append(open(p).read())\n"
        "    except OSError as e:\n        loot.append(str(e))\n"
        "print(loot)\nllm_query(str(loot))"
    )
    server = scripted_server([repl(code), repl("FINAL('done')")])
    trace = tmp_path / "t.jsonl"
    ran = run_rlm(
        "ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--trace", str(trace), env={"HOME": str(fake_home)}
    )
    assert ran.code == 0, ran.stderr
    _assert_no_canary(ran, server, trace)
    assert "hosts.yml" in json.dumps(server.requests[1].body)  # the cell did try


@needs_netns
@pytest.mark.parametrize("disabled", ["", "files"])
def test_unix_sockets_outside_scratch_cannot_be_reached(tmp_path: Path, disabled: str) -> None:
    # A Docker, systemd or ssh-agent socket is a way out that no namespace for the network closes:
    # the mount namespace leaves /run, /tmp, /var and homes out, so their sockets are not there.
    paths = [tmp_path / "agent.sock", Path(tempfile.mkdtemp(dir="/var/tmp")) / "x.sock"]
    if Path("/run").is_dir():
        paths.append(Path(f"/run/rlm-test-{uuid.uuid4().hex[:8]}.sock"))
    abstract = f"\0rlm-test-{uuid.uuid4().hex}"
    listeners = []
    for address in [*map(str, paths), abstract]:
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(address)
        listener.listen()
        listeners.append(listener)
    code = _ATTEMPT + "import socket\n" + "".join(
        f"attempt({name!r}, lambda: socket.socket(socket.AF_UNIX).connect({address!r}))\n"
        for name, address in [*((f"file{i}", str(p)) for i, p in enumerate(paths)), ("abstract", abstract)]
    )
    try:
        (tried,), _ = run_cells(tmp_path, code, env={"RLM_SANDBOX_DISABLE": disabled})
    finally:
        for listener in listeners:
            listener.close()
        for path in paths:
            path.unlink(missing_ok=True)
        shutil.rmtree(paths[1].parent)
    found = _attempts(tried.output)
    assert found.pop("abstract") in ("1", "111")  # EPERM (Landlock scope) or ECONNREFUSED (network namespace)
    assert found == {f"file{i}": "2" for i in range(len(paths))}


@needs_landlock
def test_other_processes_command_lines_cannot_be_read(tmp_path: Path) -> None:
    # `mysql -pPASSWORD` or `curl -H "Authorization: ..."` in another process's argv is a secret
    # that no ptrace rule guards: the worker may read only its own /proc entries.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", CANARY])
    code = _ATTEMPT + (
        f"attempt('other', lambda: open('/proc/{other.pid}/cmdline').read())\n"
        "attempt('self', lambda: open('/proc/self/status').read())\n"
        "attempt('cpu', lambda: open('/proc/cpuinfo').read())\n"
        "def scan():\n"
        "    for name in os.listdir('/proc'):\n"
        "        try:\n"
        f"            if {CANARY!r} in open(f'/proc/{{name}}/cmdline').read():\n"
        "                raise OSError(0, 'found')\n"
        "        except (FileNotFoundError, NotADirectoryError, PermissionError):\n"
        "            pass\n"
        "attempt('scan', scan)\n"
    )
    try:
        (tried,), _ = run_cells(tmp_path, code)
    finally:
        other.kill()
        other.wait()
    assert _attempts(tried.output) == {"other": "13", "self": "done", "cpu": "done", "scan": "13"}  # not even a list


def _sysv_segments(size: int) -> list[str]:
    lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return [line.split()[1] for line in lines if line.split()[3] == str(size)]


@needs_netns
def test_sysv_shared_memory_does_not_outlive_the_worker(tmp_path: Path) -> None:
    # Like files in /dev/shm, a SysV segment stays after its process exits, in RAM outside every
    # limit; the worker's own IPC namespace takes it along when it dies.
    size = 1_234_567
    code = (
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        f"print(libc.shmget(0, {size}, 0o1000 | 0o600) >= 0, libc.msgget(0, 0o1000 | 0o600) >= 0)"
    )
    try:
        (made, after), _ = run_cells(tmp_path, code, "print(len(context))")
        assert made.output.split() == ["True", "True"]
        assert after.output.strip() == "10"
        assert _sysv_segments(size) == []
    finally:
        for shmid in _sysv_segments(size):
            subprocess.run(["ipcrm", "-m", shmid], check=False)


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


@pytest.mark.parametrize(("part", "phrase"), [("network", "network not isolated"), ("mounts", "mounts not private")])
def test_missing_isolation_is_one_warning_on_stderr_and_in_the_trajectory(
    scripted_server, tmp_path: Path, part: str, phrase: str
) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    server = scripted_server([repl("FINAL('ok')")])
    trace = tmp_path / "t.jsonl"
    ran = run_rlm(
        "ask", str(tmp_path / "in.txt"), "q?", *server.cli_args(), "--trace", str(trace),
        env={"RLM_SANDBOX_DISABLE": part},
    )
    assert ran.code == 0, ran.stderr
    assert ran.stderr.count(phrase) == 1 and ran.stderr.count("worker isolation") == 1
    notices = [json.loads(line) for line in trace.read_text().splitlines() if '"notice"' in line]
    assert [n["level"] for n in notices if phrase in n["message"]] == ["warning"]
    clean = run_rlm("ask", str(tmp_path / "in.txt"), "q?", *scripted_server([repl("FINAL('ok')")]).cli_args())
    if NETNS and LANDLOCK:
        assert "worker isolation" not in clean.stderr


_HOST = """
import subprocess, sys
sys.path.insert(0, sys.argv[3])
from pathlib import Path
from test_hostile_cells import run_cells
sentinel = subprocess.Popen(['sleep', '60'])  # in the host's process group, as the user's shell would be
(died, after), _ = run_cells(Path(sys.argv[1]), 'import os, signal\\nos.killpg(0, signal.SIGKILL)', "print('back')",
                             env={'RLM_SANDBOX_DISABLE': sys.argv[2]})
print(died.restarted, after.output.strip(), sentinel.poll())
sentinel.kill()
"""


@pytest.mark.parametrize("disabled", ["", "files"])
def test_signal_module_cannot_kill_the_host_process_group(tmp_path: Path, disabled: str) -> None:
    # The worker leads its own session, so killpg(0) reaches only it and its children; Landlock's
    # signal scoping is a second barrier, switched off in one case so the first is tried alone.
    # The host runs in a child process group of its own, so a failure fails the test, not pytest.
    host = subprocess.run(
        [sys.executable, "-c", _HOST, str(tmp_path), disabled, str(Path(__file__).parent)],
        capture_output=True, text=True, timeout=120, start_new_session=True,
    )
    assert host.returncode == 0, host.stderr
    assert host.stdout.split() == ["True", "back", "None"]  # the worker restarted; host and sentinel lived
