"""Everything rlm asks of git: recognise and clone repository URLs, list a work tree's files.

Git is the authority on what a repository holds: `git ls-files --exclude-standard` applies nested
.gitignore files, .git/info/exclude and the user's global excludes exactly as git does, which no
reimplementation matches. Every function here that reads a local work tree returns None when git
is missing or refuses (not a work tree, "dubious ownership"...), so the loader can fall back to
walking the directory itself. Only cloning a URL, which cannot work without git, raises.

Clones live in `<cache>/repos/<sha256(url)[:16]>`, where `<cache>` is `$RLM_CACHE_DIR` or the
platform's user cache directory for "rlm". A clone is made in a temporary directory and renamed
into place, so two rlm processes cloning the same URL cannot leave a half-made clone behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from rlm_cli.errors import InputError
from rlm_cli.paths import cache_dir

__all__ = [
    "RepoInfo",
    "clone_or_update",
    "is_git_url",
    "is_ignored",
    "list_files",
    "list_ignored",
    "redact_url",
    "repo_info",
    "repo_name_from_url",
    "work_tree_root",
]

# scp-like syntax `user@host:path`; the `@` keeps it apart from a relative path such as `a:b`.
_SCP_URL = re.compile(r"^[\w.+-]+@[\w.-]+:(?!//)\S+$")
_URL_SCHEMES = ("ssh://", "git://", "file://", "git+ssh://", "ssh+git://")


@dataclass(frozen=True)
class RepoInfo:
    """What the root prompt and the trajectory say about the repository being read."""

    name: str  # the work tree root's directory name, or the repository name in a URL
    commit: str | None  # full sha of HEAD; None in a repository without commits
    remote_url: str | None  # origin's URL without credentials, or the URL that was cloned


def is_git_url(source: str) -> bool:
    """True for sources rlm clones rather than reads from disk."""
    lowered = source.lower()
    if lowered.startswith(_URL_SCHEMES):
        return True
    if lowered.startswith(("https://", "http://")):
        return lowered.rstrip("/").endswith(".git")
    return bool(_SCP_URL.match(source))


def repo_name_from_url(url: str) -> str:
    """`https://host/owner/name.git` -> `name`: the name git itself would give the clone."""
    tail = re.split(r"[/:]", url.rstrip("/"))[-1]
    name = tail[:-4] if tail.endswith(".git") else tail
    return name or "repository"


def redact_url(url: str) -> str:
    """Drop `user:token@` from an http(s) URL: a remote URL ends up in prompts and trace files."""
    if not url.lower().startswith(("https://", "http://")):
        return url
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[bytes] | None:
    """Run git; None when git is not installed. stdin is closed so git never eats ours."""
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None


def _ok_stdout(result: subprocess.CompletedProcess[bytes] | None) -> str | None:
    if result is None or result.returncode != 0:
        return None
    return os.fsdecode(result.stdout).strip()


def _git_complaint(result: subprocess.CompletedProcess[bytes] | None) -> str:
    """The useful part of git's stderr: the lines up to its first 'fatal:' (what failed, and
    often the cause just before it, e.g. ssh's 'Permission denied'), not the closing advice."""
    if result is None:
        return "git is not installed"
    lines = [line.strip() for line in os.fsdecode(result.stderr).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("hint:", "warning:"))]
    fatal = next((i for i, line in enumerate(lines) if line.startswith("fatal:")), None)
    if fatal is not None:
        lines = lines[: fatal + 1]
    if not lines:
        return f"git exited with status {result.returncode}"
    return "; ".join(line.removeprefix("fatal: ").removeprefix("error: ") for line in lines[-2:])


def clone_or_update(url: str) -> Path:
    """Return a local shallow clone of `url`, cloning it or refreshing the cached one.

    A refresh that fails (offline, server down) is not an error when a clone exists: reading
    a slightly old copy beats refusing to answer.
    """
    repos = cache_dir() / "repos"
    target = repos / hashlib.sha256(url.encode()).hexdigest()[:16]
    if (target / ".git").is_dir():
        _refresh(target)
        return target
    if target.exists():  # a leftover that is not a clone: make room for a fresh one
        shutil.rmtree(target, ignore_errors=True)
    try:
        repos.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=repos))
    except OSError as exc:
        raise InputError(f"cannot create the clone cache {repos}: {exc.strerror}") from exc
    clone = scratch / "clone"
    result = _run(["clone", "--depth", "1", "--quiet", "--", url, str(clone)])
    if result is None or result.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        raise InputError(f"cannot clone {redact_url(url)}: {_git_complaint(result)}")
    try:
        clone.rename(target)
    except OSError:  # another rlm process put its clone there first; use that one
        if not (target / ".git").is_dir():
            shutil.rmtree(scratch, ignore_errors=True)
            raise InputError(f"cannot store the clone of {redact_url(url)} in {target}")
    shutil.rmtree(scratch, ignore_errors=True)
    return target


def _refresh(clone: Path) -> None:
    fetched = _run(["fetch", "--depth", "1", "--quiet", "origin", "HEAD"], cwd=clone)
    if fetched is None or fetched.returncode != 0:
        return
    if _ok_stdout(_run(["reset", "--hard", "--quiet", "FETCH_HEAD"], cwd=clone)) is not None:
        _run(["clean", "-ffdxq"], cwd=clone)


def work_tree_root(path: Path) -> Path | None:
    """The top of the git work tree holding the directory `path`, or None."""
    top = _ok_stdout(_run(["rev-parse", "--show-toplevel"], cwd=path))
    return Path(top) if top else None


def _split_z(output: bytes) -> list[str]:
    return [os.fsdecode(item) for item in output.split(b"\0") if item]


def list_files(directory: Path) -> list[str] | None:
    """Tracked and untracked-but-not-ignored files under `directory`, relative to it.

    Paths use '/' and may name files deleted from disk, or submodule directories.
    None when git cannot answer.
    """
    result = _run(
        ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=directory
    )
    if result is None or result.returncode != 0:
        return None
    return list(dict.fromkeys(_split_z(result.stdout)))  # a conflicted file is listed per stage


def list_ignored(directory: Path) -> list[str]:
    """Ignored files under `directory`; a wholly ignored directory is one entry ending in '/'."""
    result = _run(
        ["ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory"],
        cwd=directory,
    )
    if result is None or result.returncode != 0:
        return []
    return _split_z(result.stdout)


def is_ignored(path: Path) -> bool:
    """True when git's ignore rules exclude `path` (a directory the user may still name)."""
    result = _run(["check-ignore", "-q", "--", path.name], cwd=path.parent)
    return result is not None and result.returncode == 0


def repo_info(path: Path, url: str | None = None) -> RepoInfo | None:
    """Name, HEAD and remote of the work tree holding `path` (a directory), or None."""
    root = work_tree_root(path)
    if root is None:
        return None
    commit = _ok_stdout(_run(["rev-parse", "--verify", "--quiet", "HEAD"], cwd=root)) or None
    remote = url or _ok_stdout(_run(["config", "--get", "remote.origin.url"], cwd=root)) or None
    name = repo_name_from_url(url) if url else root.name
    return RepoInfo(name=name, commit=commit, remote_url=redact_url(remote) if remote else None)
