"""Confinement of the worker: namespaces, Landlock, resource limits, and a pids cgroup.

The worker applies its own confinement (`confine`) first thing at start, while it is still
single-threaded and before it reads the context or runs a cell:

- a new user + network namespace (`unshare`), so a cell cannot open a socket to anywhere,
  loopback included; the socket to the host was inherited and keeps working;
- Landlock: writes only under the scratch directory (and a few harmless devices); reads stay
  allowed; TCP bind/connect denied (a second net barrier); no signals to processes outside the
  sandbox and no ptrace or /proc/<pid>/{environ,mem} of them (Landlock's own ptrace rule);
- rlimits: address space, processes, CPU seconds, file size, open files, no core dumps;
- PR_SET_PDEATHSIG, so the worker dies with the host.

The host side (`Policy.for_context`, `prepare_host`, `PidsCgroup`, `kill_tree`) decides the
numbers, makes itself unreadable to the worker (`PR_SET_DUMPABLE` 0), puts the worker into a pids
cgroup where it can (the kernel does not apply RLIMIT_NPROC to root), and kills every process
the worker started. Each mechanism is best effort: `confine` reports what is in force, and the
host turns what is missing into warnings. Only Linux has any of it; elsewhere the report says so.

Environment knobs (host side): RLM_WORKER_MEMORY, RLM_WORKER_PROCS, RLM_WORKER_CPU_S,
RLM_WORKER_FILE_SIZE, and RLM_SANDBOX_DISABLE (comma list of `network`, `files`, `limits`).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rlm_cli.errors import UsageError
from rlm_cli.units import parse_size

GIB = 1 << 30

# <linux/sched.h>, <linux/prctl.h>
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38

# <linux/landlock.h>; the syscall numbers are the same on every architecture that has them.
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_REMOVE_DIR, FS_REMOVE_FILE, FS_MAKE_CHAR, FS_MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
FS_MAKE_REG, FS_MAKE_SOCK, FS_MAKE_FIFO, FS_MAKE_BLOCK = 1 << 8, 1 << 9, 1 << 10, 1 << 11
FS_MAKE_SYM, FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 12, 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

# Everything that changes the file system, by the ABI that introduced it. Reads are not handled,
# so they stay allowed everywhere.
_WRITE_RIGHTS_V1 = (
    FS_WRITE_FILE | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE_CHAR | FS_MAKE_DIR | FS_MAKE_REG
    | FS_MAKE_SOCK | FS_MAKE_FIFO | FS_MAKE_BLOCK | FS_MAKE_SYM
)
_FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
# Devices a cell may write to (e.g. `open(os.devnull, "w")`); never a disk.
_WRITABLE_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty")
_WRITABLE_DIRS = ("/dev/shm",)  # multiprocessing's semaphores


@dataclass(frozen=True)
class Policy:
    """What the worker is to confine itself to; travels to it as JSON on its command line."""

    scratch: str
    host_pid: int
    memory_bytes: int | None = 4 * GIB  # RLIMIT_AS
    max_processes: int = 128  # RLIMIT_NPROC (and pids.max where the host can make a cgroup)
    cpu_seconds: int = 3600  # RLIMIT_CPU, over the worker's life
    file_bytes: int = GIB  # RLIMIT_FSIZE, per file written
    open_files: int = 1024
    network: bool = True  # isolate the network
    files: bool = True  # Landlock
    limits: bool = True

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Policy:
        return cls(**json.loads(text))

    @classmethod
    def for_context(cls, scratch: Path, context_bytes: int, environ: dict[str, str] | None = None) -> Policy:
        """Defaults sized to the context, overridden by the RLM_WORKER_* environment variables."""
        env = os.environ if environ is None else environ
        disabled = {p.strip() for p in env.get("RLM_SANDBOX_DISABLE", "").split(",") if p.strip()}
        # The context lives in the worker a few times over (file bytes, str, files dict, the
        # model's own splitlines()), so the address-space limit grows with it.
        memory = max(4 * GIB, 2 * GIB + 6 * context_bytes)
        return cls(
            scratch=str(scratch),
            host_pid=os.getpid(),
            memory_bytes=_size_env(env, "RLM_WORKER_MEMORY", memory),
            max_processes=int(env.get("RLM_WORKER_PROCS", "128")),
            cpu_seconds=int(env.get("RLM_WORKER_CPU_S", "3600")),
            file_bytes=_size_env(env, "RLM_WORKER_FILE_SIZE", GIB) or GIB,
            network="network" not in disabled,
            files="files" not in disabled,
            limits="limits" not in disabled,
        )


def _size_env(env: Any, name: str, default: int) -> int | None:
    """A size from the environment in the one size grammar (`units.parse_size`); `none`,
    `unlimited` or `0` lift the limit."""
    text = env.get(name)
    if not text:
        return default
    if text.strip().lower() in ("none", "unlimited", "0"):
        return None
    try:
        return parse_size(text)
    except ValueError as exc:
        raise UsageError(f"{name}: {exc}") from None


# -- worker side -----------------------------------------------------------------------------


def _libc() -> Any:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def _errno_text() -> str:
    err = ctypes.get_errno()
    return f"{os.strerror(err)} (errno {err})"


def confine(policy: Policy) -> dict[str, str]:
    """Apply `policy` to this process; returns what is in force: mechanism -> description.

    A value starting with "not " means that part is missing, and says why.
    """
    report: dict[str, str] = {}
    if not sys.platform.startswith("linux"):
        reason = f"not available on {sys.platform}"
        return {"network": reason, "files": reason, "processes": reason, "limits": _set_rlimits(policy)}
    libc = _libc()
    report["network"] = _new_namespaces(libc) if policy.network else "not isolated: disabled by RLM_SANDBOX_DISABLE"
    _die_with_host(libc, policy.host_pid)
    report["files"] = _landlock(libc, policy) if policy.files else "not limited: disabled by RLM_SANDBOX_DISABLE"
    report["limits"] = _set_rlimits(policy) if policy.limits else "not set: disabled by RLM_SANDBOX_DISABLE"
    return report


def _new_namespaces(libc: Any) -> str:
    uid, gid = os.geteuid(), os.getegid()
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        return f"not isolated: cannot create a user+network namespace: {_errno_text()}"
    try:  # map our own ids, as `unshare -r` would, so files we create have an owner
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    except OSError as exc:
        return f"isolated (user+network namespace), but the id map failed: {exc.strerror}"
    return "isolated: new user+network namespace, no interfaces up"


def _die_with_host(libc: Any, host_pid: int) -> None:
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != host_pid:  # the host died before the line above
        os._exit(1)


def landlock_abi() -> int:
    """The Landlock ABI version the kernel offers, 0 when none."""
    if not sys.platform.startswith("linux"):
        return 0
    libc = _libc()
    abi = libc.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(0, int(abi))


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _landlock(libc: Any, policy: Policy) -> str:
    abi = landlock_abi()
    if abi < 1:
        return "not limited: the kernel has no Landlock"
    handled = _WRITE_RIGHTS_V1 | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0)
    handled |= FS_IOCTL_DEV if abi >= 5 else 0
    attr = _RulesetAttr(
        handled_access_fs=handled,
        handled_access_net=(NET_BIND_TCP | NET_CONNECT_TCP) if abi >= 4 else 0,
        scoped=(SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if abi >= 6 else 0,
    )
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        return f"not limited: landlock_create_ruleset failed: {_errno_text()}"
    try:
        rules = [(policy.scratch, handled), *((d, handled) for d in _WRITABLE_DIRS)]
        rules += [(dev, handled & _FILE_RIGHTS) for dev in _WRITABLE_DEVICES]
        for path, access in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # e.g. no /dev/tty in a container
            try:
                rule = _PathBeneathAttr(allowed_access=access, parent_fd=fd)
                added = libc.syscall(
                    _SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(rule), ctypes.c_uint32(0)
                )
                if added != 0 and path == policy.scratch:  # a device we could not allow stays read-only
                    return f"not limited: landlock_add_rule failed: {_errno_text()}"
            finally:
                os.close(fd)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return f"not limited: PR_SET_NO_NEW_PRIVS failed: {_errno_text()}"
        if libc.syscall(_SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            return f"not limited: landlock_restrict_self failed: {_errno_text()}"
    finally:
        os.close(ruleset)
    extras = ", TCP denied" if abi >= 4 else ""
    extras += ", no signals out of the sandbox" if abi >= 6 else ""
    return f"limited: writes only under the scratch directory (Landlock ABI {abi}{extras})"


def _set_rlimits(policy: Policy) -> str:
    # A file-size overrun should be an OSError in the cell, not a SIGXFSZ that kills the worker.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    wanted: list[tuple[str, int, int]] = [
        ("core", resource.RLIMIT_CORE, 0),
        ("cpu", resource.RLIMIT_CPU, policy.cpu_seconds),
        ("fsize", resource.RLIMIT_FSIZE, policy.file_bytes),
        ("nofile", resource.RLIMIT_NOFILE, policy.open_files),
        ("nproc", resource.RLIMIT_NPROC, policy.max_processes),
    ]
    if policy.memory_bytes is not None:
        wanted.append(("as", resource.RLIMIT_AS, policy.memory_bytes))
    done, failed = [], []
    for name, which, value in wanted:
        try:
            _, hard = resource.getrlimit(which)
            cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(which, (cap, cap))
            done.append(name)
        except (ValueError, OSError):
            failed.append(name)
    text = "set: " + ", ".join(done)
    if os.geteuid() == 0:
        text += " (nproc is not enforced by the kernel for root)"
    return text + (f"; failed: {', '.join(failed)}" if failed else "")


# -- host side -------------------------------------------------------------------------------


def prepare_host() -> None:
    """Make the host's memory and environment unreadable through /proc by a same-uid worker."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            _libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def warnings_for(report: dict[str, str]) -> list[str]:
    """The parts of a `confine` report that are missing, as lines a user can act on."""
    out = []
    if report.get("network", "").startswith("not "):
        out.append(f"worker isolation: network {report['network']}; model-written code can reach the network")
    if report.get("files", "").startswith("not "):
        out.append(f"worker isolation: file writes {report['files']}; model-written code can write outside its scratch directory")
    if report.get("processes", "").startswith("not "):
        out.append(f"worker isolation: process count {report['processes']}")
    return out


class PidsCgroup:
    """A pids cgroup for one worker: caps its process count and finds every process it started.

    Root only (the kernel ignores RLIMIT_NPROC for root, and only root can make one here);
    cgroup v1's `pids` hierarchy, or v2 when the root cgroup delegates `pids`.
    """

    _counter = 0

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, max_pids: int) -> PidsCgroup | None:
        if not sys.platform.startswith("linux") or os.geteuid() != 0:
            return None
        base = Path("/sys/fs/cgroup/pids")
        if not (base / "cgroup.procs").exists():
            base = Path("/sys/fs/cgroup")
            try:
                if "pids" not in (base / "cgroup.subtree_control").read_text().split():
                    return None
            except OSError:
                return None
        cls._sweep(base)
        cls._counter += 1
        path = base / f"rlm-worker-{os.getpid()}-{cls._counter}"
        try:
            path.mkdir()
            (path / "pids.max").write_text(str(max_pids))
        except OSError:
            with contextlib.suppress(OSError):
                path.rmdir()
            return None
        return cls(path)

    @staticmethod
    def _sweep(base: Path) -> None:
        """Remove empty cgroups left by hosts that died without cleaning up (rmdir fails if in use)."""
        for stale in base.glob("rlm-worker-*-*"):
            host = stale.name.split("-")[2]
            if host.isdigit() and not os.path.exists(f"/proc/{host}"):
                with contextlib.suppress(OSError):
                    stale.rmdir()

    def add(self, pid: int) -> bool:
        try:
            (self.path / "cgroup.procs").write_text(str(pid))
            return True
        except OSError:
            return False

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def destroy(self) -> None:
        """Kill everything in the cgroup, then remove it."""
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)
        while time.monotonic() < deadline:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:  # EBUSY until the last zombie is reaped
                time.sleep(0.02)


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` in the process tree, read from /proc (Linux), else empty."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return set()
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL `pid`'s process group and every descendant, including ones that left the group."""
    for _ in range(3):
        targets = descendants(pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        for target in targets:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(target, signal.SIGKILL)
        if not targets:
            return
