"""Confinement of the worker: namespaces, Landlock, resource limits, and a pids cgroup.

The worker applies its own confinement (`confine`) first thing at start, while it is still
single-threaded and before it reads the context or runs a cell:

- a new user + network namespace (`unshare`), so a cell cannot open a socket to anywhere,
  loopback included; the socket to the host was inherited and keeps working;
- a new mount and IPC namespace (`_private_mounts`) holding only the system directories, the
  Python installation and the import path (bound back over an empty tmpfs that covers every
  other top-level directory: homes, /tmp, /var, /run's sockets), all read-only except a bind of
  the scratch directory and a private, size-limited tmpfs on /dev/shm: chmod, chown, utime and
  xattr changes outside scratch fail with EROFS, which Landlock alone cannot give (it does not
  cover metadata), and nothing a cell leaves in /dev/shm or SysV IPC outlives the worker;
- every capability the new user namespace gave us is dropped, so a cell cannot undo those
  mounts (mount_setattr has no LSM hook) or bring an interface up;
- Landlock: writes only under the scratch directory (and a few harmless devices); reads only of
  the Python installation, the worker's import path, the scratch directory and the system files
  the interpreter needs (`python_roots`, `SYSTEM_READ_ROOTS`); TCP bind/connect denied (a second
  net barrier); no mounts (Landlock denies them to any restricted process); no signals to
  processes outside the sandbox and no ptrace or /proc/<pid>/{environ,mem} of them;
- rlimits: address space, processes, CPU seconds, file size, open files, no core dumps;
- PR_SET_PDEATHSIG, so the worker dies with the host.

The host side (`Policy.for_context`, `prepare_host`, `PidsCgroup`, `kill_tree`) decides the
numbers, makes itself unreadable to the worker (`PR_SET_DUMPABLE` 0), puts the worker into a pids
cgroup where it can (the kernel does not apply RLIMIT_NPROC to root), and kills every process
the worker started. Each mechanism is best effort: `confine` reports what is in force, and the
host turns what is missing into warnings. Only Linux has any of it; elsewhere the report says so.

Environment knobs (host side): RLM_WORKER_MEMORY, RLM_WORKER_PROCS, RLM_WORKER_CPU_S,
RLM_WORKER_FILE_SIZE, RLM_WORKER_SHM (the private /dev/shm's size), and RLM_SANDBOX_DISABLE
(comma list of `network`, `mounts`, `files`, `limits`).
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

# <linux/sched.h>, <linux/prctl.h>, <linux/capability.h>
CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_CAPABILITY_VERSION_3 = 0x20080522

# <linux/mount.h>; mount_setattr is 442 on every architecture (the unified numbering from 5.1).
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 1 << 14, 1 << 18
_SYS_MOUNT_SETATTR = 442
_AT_FDCWD, _AT_RECURSIVE = -100, 0x8000
MOUNT_ATTR_RDONLY = 1
MNT_DETACH = 2

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

# Everything that changes the file system, by the ABI that introduced it, and the rights to read
# and run files: all of these are denied except under a rule.
_WRITE_RIGHTS_V1 = (
    FS_WRITE_FILE | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE_CHAR | FS_MAKE_DIR | FS_MAKE_REG
    | FS_MAKE_SOCK | FS_MAKE_FIFO | FS_MAKE_BLOCK | FS_MAKE_SYM
)
_READ_RIGHTS = FS_READ_FILE | FS_READ_DIR | FS_EXECUTE
_FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
# Devices a cell may write to (e.g. `open(os.devnull, "w")`); never a disk.
_WRITABLE_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty")
SHM = "/dev/shm"  # multiprocessing's semaphores; writable only when it is the worker's own tmpfs
# What the interpreter, the C libraries under it and the programs a cell may start need to read
# (binaries and shared libraries, the loader's cache, time zones, locales, user and host names,
# MIME types, CA certificates); nothing under /home, /root, /var or /tmp. The rest of /etc stays
# unreadable: it holds /etc/shadow, which a worker running as root could read otherwise.
SYSTEM_READ_ROOTS = (
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/timezone",
    "/etc/locale.alias", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/host.conf",
    "/etc/hosts", "/etc/mime.types", "/etc/ssl", "/etc/ca-certificates", "/etc/pki",
    "/etc/fonts", "/etc/os-release", "/etc/debian_version", "/etc/magic", "/etc/matplotlibrc",
    "/etc/alternatives", "/etc/services", "/etc/protocols", "/etc/gai.conf", "/etc/python3",
    f"/etc/python{sys.version_info.major}.{sys.version_info.minor}",  # Debian's sitecustomize
    "/sys/devices/system/cpu",  # NumPy's BLAS counts CPUs here
    # The worker's own /proc entries (not its children's: other processes' command lines can
    # hold secrets, and no ptrace rule guards them) and the machine-wide ones a library may read.
    "/proc/self", "/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/proc/loadavg", "/proc/uptime", "/proc/version",
)
# The top-level directories a worker's mount namespace leaves in place (NixOS and Guix keep their
# programs and libraries in /nix and /gnu); every other one, /etc included, is covered by an empty
# tmpfs, and of /etc only the entries in SYSTEM_READ_ROOTS come back.
_VISIBLE_TOP = frozenset({"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "proc", "sys", "dev", "nix", "gnu"})


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
    shm_bytes: int = 64 << 20  # the private /dev/shm's size
    network: bool = True  # isolate the network
    mounts: bool = True  # a mount namespace: only system, Python and scratch; read-only but scratch
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
            shm_bytes=_size_env(env, "RLM_WORKER_SHM", 64 << 20) or 64 << 20,
            network="network" not in disabled,
            mounts="mounts" not in disabled,
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
    if not sys.platform.startswith("linux"):
        reason = f"not available on {sys.platform}"
        return {"network": reason, "mounts": reason, "files": reason, "processes": reason, "limits": _set_rlimits(policy)}
    off = "disabled by RLM_SANDBOX_DISABLE"
    libc = _libc()
    failed = _enter_user_namespace(libc, policy.network) if policy.network or policy.mounts else off
    report = {"network": "isolated: new user+network namespace, no interfaces up"}
    if not policy.network or failed:
        report["network"] = f"not isolated: {off if not policy.network else failed}"
    shm_private = False
    if not policy.mounts or failed:
        report["mounts"] = f"not private: {off if not policy.mounts else failed}"
    else:
        report["mounts"], shm_private = _private_mounts(libc, policy)
    if not failed and not drop_capabilities() and not report["mounts"].startswith("not "):
        report["mounts"] = f"not private: cannot drop capabilities: {_errno_text()}"
    _die_with_host(libc, policy.host_pid)
    report["files"] = _landlock(libc, policy, shm_private) if policy.files else f"not limited: {off}"
    report["limits"] = _set_rlimits(policy) if policy.limits else f"not set: {off}"
    return report


def _enter_user_namespace(libc: Any, network: bool) -> str | None:
    """Enter a new user namespace (and network namespace); None when done, else why not."""
    uid, gid = os.geteuid(), os.getegid()
    if libc.unshare(CLONE_NEWUSER | (CLONE_NEWNET if network else 0)) != 0:
        return f"cannot create a user{'+network' if network else ''} namespace: {_errno_text()}"
    try:  # map our own ids, as `unshare -r` would, so files we create have an owner
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    except OSError as exc:
        return f"the user namespace's id map failed: {exc.strerror}"
    return None


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64), ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _private_mounts(libc: Any, policy: Policy) -> tuple[str, bool]:
    """A mount (and IPC) namespace holding only what the worker needs, all of it read-only
    except scratch and a private /dev/shm.

    Every top-level directory but the system's (`_VISIBLE_TOP`) is covered by an empty tmpfs, and
    the Python installation, the import path, the system files of /etc and scratch are bound
    back at their own paths: a user's home, other projects, /tmp, /var, the rest of /etc and the
    Unix sockets in /run are not there to read or connect to. Read-only mounts stop chmod, chown,
    utime and xattr writes (Landlock does not cover them). SysV shared memory and message queues
    die with the IPC namespace. Needs the capabilities of a fresh user namespace, so it runs
    before they are dropped. Returns the report line and whether /dev/shm is the worker's own.
    """

    def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> bool:
        def enc(text: str | None) -> bytes | None:
            return text.encode() if text is not None else None

        return libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) == 0

    def setattr_(path: str, flags: int, attr: _MountAttr) -> bool:
        at, size = ctypes.c_int(_AT_FDCWD), ctypes.c_size_t(ctypes.sizeof(attr))
        return libc.syscall(_SYS_MOUNT_SETATTR, at, path.encode(), ctypes.c_uint(flags), ctypes.byref(attr), size) == 0

    scratch = policy.scratch
    if libc.unshare(CLONE_NEWNS | CLONE_NEWIPC) != 0:
        return f"not private: cannot create a mount namespace: {_errno_text()}", False
    if not mount(None, "/", None, MS_REC | MS_PRIVATE):  # nothing we mount may reach the host
        return f"not private: cannot make the mounts private: {_errno_text()}", False
    covered: list[str] = []
    problem = _cover_and_bind_back(mount, scratch, covered)
    if problem:
        for path in reversed(covered):  # back to the host's view rather than half of one
            libc.umount2(path.encode(), MNT_DETACH)
        return f"not private: {problem}", False
    os.chdir(scratch)  # the working directory still pointed below the bind
    shm = os.path.isdir(SHM) and mount(
        "tmpfs", SHM, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, f"size={policy.shm_bytes},nr_inodes=4096,mode=1777"
    )
    if not setattr_("/", _AT_RECURSIVE, _MountAttr(attr_set=MOUNT_ATTR_RDONLY)):
        return f"not private: cannot make the mounts read-only: {_errno_text()}", False
    for path in (scratch, SHM) if shm else (scratch,):
        if not setattr_(path, 0, _MountAttr(attr_clr=MOUNT_ATTR_RDONLY)):
            return f"not private: cannot make {path} writable again: {_errno_text()}", False
    size = f"a private {policy.shm_bytes >> 20} MiB /dev/shm" if shm else "no /dev/shm"
    return f"private: only system directories, Python and scratch, all read-only but scratch; {size}", shm


def _cover_and_bind_back(mount: Any, scratch: str, covered: list[str]) -> str | None:
    """Cover the top level (appending each cover to `covered`) and bind back `_bound_back`'s
    paths; None when done, else what failed."""
    sources: dict[str, int] = {}
    try:
        for path in _bound_back(scratch):  # opened before covering: then their names lead nowhere
            sources[path] = os.open(path, os.O_PATH | os.O_CLOEXEC)
        for entry in os.scandir("/"):
            if entry.name in _VISIBLE_TOP or entry.is_symlink():
                continue
            done = (  # a directory by an empty tmpfs, a file (a swap file, say) by /dev/null
                mount("tmpfs", entry.path, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
                if entry.is_dir() else mount("/dev/null", entry.path, None, MS_BIND)
            )
            if not done:
                return f"cannot cover {entry.path}: {_errno_text()}"
            covered.append(entry.path)
        for path, fd in sources.items():  # ancestors first; scratch last, always its own mount
            if path != scratch and os.path.lexists(path):
                continue  # still visible: under a system directory
            if not os.path.lexists(path):  # a mount point in the covering tmpfs
                is_dir = os.path.isdir(f"/proc/self/fd/{fd}")
                os.makedirs(path if is_dir else os.path.dirname(path), exist_ok=True)
                if not is_dir:
                    open(path, "x").close()
            if not mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC):
                return f"cannot bind {path}: {_errno_text()}"
    except OSError as exc:
        return f"cannot make a mount point: {exc}"
    finally:
        for fd in sources.values():
            os.close(fd)
    return None


def _bound_back(scratch: str) -> list[str]:
    """The paths `_private_mounts` binds back after covering the top level: Python's roots and
    the system files, under both their given and their real names, then scratch; none below
    another."""
    wanted = [*python_roots(), *SYSTEM_READ_ROOTS]
    roots = {os.path.abspath(p) for p in wanted} | {os.path.realpath(p) for p in wanted}
    roots = {p for p in roots if os.path.exists(p)} - {"/"}
    kept = [p for p in sorted(roots) if not any(p.startswith(q.rstrip("/") + "/") for q in roots if q != p)]
    return [p for p in kept if p != scratch] + [scratch]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_capabilities() -> bool:
    """Give up every capability, now and across execve (a uid 0 process regains them there).

    In the worker they are capabilities over its new namespaces only, but with them a cell could
    make the read-only mounts writable again (mount_setattr passes no LSM hook Landlock could
    refuse). Tests use it to meet file modes as an ordinary user would, when they run as root.
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = _libc()
    for cap in range(64):  # EINVAL past the kernel's last capability
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    return libc.capset(ctypes.byref(_CapHeader(_CAPABILITY_VERSION_3, 0)), ctypes.byref((_CapData * 2)())) == 0


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


def python_roots() -> list[str]:
    """The Python installation and the worker's import path (PYTHONPATH and site-packages
    included, and the rlm_cli package); computed in the worker, whose sys.path it is."""
    python = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, str(Path(__file__).resolve().parent.parent)}
    python.update(p for p in sys.path if os.path.isabs(p))
    return sorted(python)


def _landlock(libc: Any, policy: Policy, shm_private: bool) -> str:
    abi = landlock_abi()
    if abi < 1:
        return "not limited: the kernel has no Landlock"
    handled = _WRITE_RIGHTS_V1 | _READ_RIGHTS | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0)
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
        # /dev/shm only when it is our own tmpfs: the host's would outlive the run, outside every limit.
        rules = [(policy.scratch, handled), *([(SHM, handled)] if shm_private else [])]
        rules += [(dev, handled) for dev in _WRITABLE_DEVICES]
        rules += [(root, _READ_RIGHTS) for root in (*python_roots(), *SYSTEM_READ_ROOTS)]
        for path, access in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # e.g. no /dev/tty in a container, no /lib32
            try:
                if not os.path.isdir(f"/proc/self/fd/{fd}"):  # a file takes only a file's rights
                    access &= _FILE_RIGHTS
                rule = _PathBeneathAttr(allowed_access=access, parent_fd=fd)
                added = libc.syscall(
                    _SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(rule), ctypes.c_uint32(0)
                )
                if added != 0 and path == policy.scratch:  # anything else we could not allow stays denied
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
    return (
        "limited: writes only under the scratch directory, reads only of it, the Python installation"
        f" and system files (Landlock ABI {abi}{extras})"
    )


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
    if report.get("mounts", "").startswith("not "):
        out.append(
            f"worker isolation: mounts {report['mounts']}; model-written code can change the permissions,"
            " owners and times of files outside its scratch directory"
        )
    if report.get("files", "").startswith("not "):
        out.append(
            f"worker isolation: file access {report['files']}; model-written code can write outside its"
            " scratch directory and read any file the user can"
        )
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
