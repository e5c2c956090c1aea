"""Turn the sources a user names (files, directories, git URLs, stdin) into path -> text.

This runs in the host. It decides what enters the context: ignore rules, --include/--exclude,
binary and size checks, decoding. Whatever it leaves out is reported as a `Skipped` entry with
a short reason, so `rlm inspect` can say why a file is missing. Problems with a file inside a
directory are never fatal; problems with a source the user named are an `InputError`, and so
is ending up with nothing to load.

Paths are relative to each source's root with '/' separators; with several sources each path is
prefixed by its source's name (`src/app.py`, `notes.txt`, `<stdin>`).
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pathspec

from rlm_cli.errors import InputError, UsageError
from rlm_cli.sources import git
from rlm_cli.sources.git import RepoInfo
from rlm_cli.units import DEFAULT_MAX_FILE_SIZE, format_size, parse_size

__all__ = ["LoadOptions", "LoadedSources", "RepoInfo", "Skipped", "load_sources"]

STDIN = "-"
STDIN_PATH = "<stdin>"
BINARY_SNIFF_BYTES = 8192
_BOM = b"\xef\xbb\xbf"

IGNORED = "ignored by .gitignore"
EXCLUDED = "excluded by --exclude"
NOT_INCLUDED = "not matched by --include"
BINARY = "binary"


@dataclass(frozen=True)
class LoadOptions:
    """What to keep from directory sources. Patterns are gitignore-style, on relative paths."""

    includes: tuple[str, ...] = ()  # if any, only matching files are kept
    excludes: tuple[str, ...] = ()
    use_gitignore: bool = True
    max_file_size: int = parse_size(DEFAULT_MAX_FILE_SIZE)  # bytes


@dataclass(frozen=True)
class Skipped:
    """A file or directory left out, and why (a short reason a person can read)."""

    path: str  # display path: relative, '/' separators; a directory ends with '/'
    reason: str


@dataclass(frozen=True)
class LoadedSources:
    """The texts to build a `Context` from, plus what was left out and where it came from."""

    files: dict[str, str]  # path -> text, in load order
    skipped: tuple[Skipped, ...]
    sources: tuple[str, ...]  # as given by the user ('-' for stdin)
    repository: RepoInfo | None  # when the first source is (in) a git work tree, or a git URL

    @property
    def chars(self) -> int:
        return sum(map(len, self.files.values()))

    def skipped_lines(self, examples: int = 3) -> list[str]:
        """One line per reason with a few examples, so a big tree does not flood the screen."""
        by_reason: dict[str, list[str]] = {}
        for item in self.skipped:
            by_reason.setdefault(item.reason, []).append(item.path)
        return [
            f"skipped {len(paths):,} ({reason}): {', '.join(paths[:examples])}{', ...' if len(paths) > examples else ''}"
            for reason, paths in sorted(by_reason.items(), key=lambda kv: -len(kv[1]))
        ]


@dataclass
class _Part:
    """One source, loaded: its own name (the prefix with several sources) and its members."""

    name: str
    is_directory: bool
    files: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    repository: RepoInfo | None = None


def load_sources(
    sources: Sequence[str],
    options: LoadOptions = LoadOptions(),
    stdin: BinaryIO | None = None,
) -> LoadedSources:
    """Load every source in order; raise `InputError` when a named source is unusable or
    nothing at all is left to load."""
    if not sources:
        raise UsageError("no source given")
    if list(sources).count(STDIN) > 1:
        raise UsageError("'-' (stdin) can be given only once")
    if options.max_file_size < 0:
        raise UsageError("--max-file-size must not be negative")
    filters = _Filters(options)
    parts = [
        _load_one(source, options, filters, stdin, want_repo=(index == 0))
        for index, source in enumerate(sources)
    ]
    if len(parts) > 1:
        for part, name in zip(parts, _unique_names([part.name for part in parts])):
            _prefix(part, name)
    files: dict[str, str] = {}
    skipped: list[Skipped] = []
    for part in parts:
        files.update(part.files)
        skipped.extend(part.skipped)
    _refuse_empty(sources, files, skipped)
    return LoadedSources(
        files=files,
        skipped=tuple(skipped),
        sources=tuple(sources),
        repository=parts[0].repository,
    )


def _load_one(
    source: str,
    options: LoadOptions,
    filters: _Filters,
    stdin: BinaryIO | None,
    want_repo: bool,
) -> _Part:
    if source == STDIN:
        text = _read_stdin(stdin if stdin is not None else sys.stdin.buffer)
        return _Part(name=STDIN_PATH, is_directory=False, files=[(STDIN_PATH, text)])
    if git.is_git_url(source):
        clone = git.clone_or_update(source)
        part = _load_directory(clone, source, options, filters)
        part.name = git.repo_name_from_url(source)
        if want_repo:
            part.repository = git.repo_info(clone, url=source)
        return part
    path = Path(source)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise _named_source_error(source, exc) from exc
    if stat.S_ISDIR(info.st_mode):
        part = _load_directory(path, source, options, filters)
        if want_repo:
            part.repository = git.repo_info(path)
    else:
        name = path.name or source
        text = _read_named_file(path, source, info)
        part = _Part(name=name, is_directory=False, files=[(name, text)])
        if want_repo:
            part.repository = git.repo_info(path.absolute().parent)
    return part


def _named_source_error(source: str, exc: OSError) -> InputError:
    if exc.errno == errno.ENOENT:
        hint = ""
        if source.lower().startswith(("http://", "https://")):
            hint = " (a git repository URL must end in .git)"
        return InputError(f"no such file or directory: {source}{hint}")
    if exc.errno == errno.ELOOP:
        return InputError(f"cannot read {source}: symlink loop")
    return InputError(f"cannot read {source}: {exc.strerror or exc}")


def _read_stdin(stream: BinaryIO) -> str:
    data = stream.read()
    if not data:
        raise InputError("stdin was empty")
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        raise InputError("stdin is binary (it holds NUL bytes)")
    return _decode(data)


def _read_named_file(path: Path, source: str, info: os.stat_result) -> str:
    """A file the user named: no filters apply, whatever its size (--max-file-size is for files
    found while walking a directory), and every refusal is an error, not a skip.

    FIFOs are read like stdin, so `rlm ask <(command)` works.
    """
    mode = info.st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        raise InputError(f"{source} is not a regular file ({_kind(mode)})")
    if stat.S_ISREG(mode):
        _refuse_beyond_memory(source, info.st_size)
    try:
        if stat.S_ISFIFO(mode):
            data = _read_fifo(path, source)
        else:
            with open(path, "rb") as handle:
                head = handle.read(BINARY_SNIFF_BYTES)  # a binary file is refused before it is read whole
                if b"\0" in head:
                    raise InputError(f"{source} is a binary file")
                data = head + handle.read()
    except OSError as exc:
        raise _named_source_error(source, exc) from exc
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        raise InputError(f"{source} is a binary file")
    return _decode(data)


FIFO_WRITER_WAIT_S = 3.0


def _read_fifo(path: Path, source: str) -> bytes:
    """A pipe such as `<(command)` is read to its end; a named FIFO nobody opens for writing
    within a few seconds is an error, not a wait forever."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    deadline = time.monotonic() + FIFO_WRITER_WAIT_S
    with os.fdopen(fd, "rb", buffering=0) as handle:
        while True:
            try:
                first = os.read(fd, 65536)
            except BlockingIOError:  # a writer is there and has not written yet
                first = None
            if first != b"":
                break
            if time.monotonic() > deadline:  # b"": no writer yet (or one that wrote nothing)
                raise InputError(f"{source} is a FIFO with nothing to read (no writer, or it wrote nothing)")
            time.sleep(0.05)
        os.set_blocking(fd, True)
        return (first or b"") + handle.readall()


def _refuse_beyond_memory(source: str, size: int) -> None:
    """Refuse, with a message, a file the host could not hold a few times over in memory."""
    try:
        with open("/proc/meminfo") as f:
            available = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return
    if size * 3 > available:
        raise InputError(
            f"{source} is {format_size(size)}; loading it takes about {format_size(size * 3)} of memory and only"
            f" {format_size(available)} is available (ask about a part of it, e.g. split it or pipe a slice through stdin)"
        )


def _decode(data: bytes) -> str:
    """UTF-8 with U+FFFD for bad bytes: a stray Latin-1 byte must not lose a whole file."""
    if data.startswith(_BOM):
        return str(memoryview(data)[len(_BOM):], "utf-8", "replace")
    return data.decode("utf-8", "replace")


def _spec(patterns: tuple[str, ...]) -> pathspec.GitIgnoreSpec | None:
    return pathspec.GitIgnoreSpec.from_lines(patterns) if patterns else None


class _Filters:
    """--include/--exclude as gitignore-style specs, matched on paths relative to a source."""

    def __init__(self, options: LoadOptions) -> None:
        self.include = _spec(options.includes)
        self.exclude = _spec(options.excludes)

    def excluded(self, rel: str) -> bool:
        return self.exclude is not None and self.exclude.match_file(rel)

    def included(self, rel: str) -> bool:
        return self.include is None or self.include.match_file(rel)


def _load_directory(root: Path, source: str, options: LoadOptions, filters: _Filters) -> _Part:
    """Choose the members (git's list, or our own walk) then read them."""
    try:
        with os.scandir(root):
            pass
    except OSError as exc:
        raise _named_source_error(source, exc) from exc
    part = _Part(name=_directory_name(root, source), is_directory=True)
    listing = git.list_files(root) if options.use_gitignore else None
    if listing == [] and git.is_ignored(root.absolute()):
        listing = None  # the user named an ignored directory: its parents' rules do not apply
    if listing is not None:
        candidates = _select_from_git(root, listing, filters, part.skipped)
    else:
        candidates = _walk(root, filters, options.use_gitignore, part.skipped)
    boundary = os.path.realpath(root)
    for rel in sorted(candidates, key=_walk_key):
        result = _read_member(os.path.join(root, rel), boundary, options.max_file_size)
        if isinstance(result, str):
            part.files.append((rel, result))
        elif result is not None:
            shown = rel + "/" if result.directory and not rel.endswith("/") else rel
            part.skipped.append(Skipped(shown, result.reason))
    part.skipped.sort(key=lambda item: _walk_key(item.path))
    return part


def _directory_name(root: Path, source: str) -> str:
    return os.path.basename(os.path.abspath(root)) or source


def _walk_key(rel: str) -> tuple[tuple[int, str], ...]:
    """Sort like a sorted top-down walk: a directory's files first, then its subdirectories."""
    parts = rel.rstrip("/").split("/")
    last = (1 if rel.endswith("/") else 0, parts[-1])
    return tuple((1, part) for part in parts[:-1]) + (last,)


def _select_from_git(
    root: Path, listing: Iterable[str], filters: _Filters, skipped: list[Skipped]
) -> list[str]:
    """Apply --include/--exclude to git's list; report what git ignored."""
    excluded_dirs: dict[str, bool] = {}
    reported: set[str] = set()
    kept: list[str] = []
    for rel in listing:
        excluded_dir = _excluded_ancestor(rel, filters, excluded_dirs)
        if excluded_dir is not None:
            if excluded_dir not in reported:
                reported.add(excluded_dir)
                skipped.append(Skipped(excluded_dir, EXCLUDED))
        elif filters.excluded(rel):
            skipped.append(Skipped(rel, EXCLUDED))
        elif not filters.included(rel):
            skipped.append(Skipped(rel, NOT_INCLUDED))
        else:
            kept.append(rel)
    skipped.extend(Skipped(rel, IGNORED) for rel in git.list_ignored(root))
    return kept


def _excluded_ancestor(rel: str, filters: _Filters, cache: dict[str, bool]) -> str | None:
    """The outermost directory of `rel` that --exclude drops ('dir/'), so it is reported once."""
    if filters.exclude is None:
        return None
    end = rel.find("/")
    while end != -1:
        directory = rel[: end + 1]
        if directory not in cache:
            cache[directory] = filters.excluded(directory)
        if cache[directory]:
            return directory
        end = rel.find("/", end + 1)
    return None


_IgnoreStack = tuple[tuple[str, pathspec.GitIgnoreSpec], ...]


def _walk(root: Path, filters: _Filters, use_gitignore: bool, skipped: list[Skipped]) -> list[str]:
    """Walk without following directory links, honouring each .gitignore relative to its own
    directory, and pruning ignored or excluded directories (one Skipped entry each)."""
    kept: list[str] = []
    stack: list[tuple[str, _IgnoreStack]] = [("", ())]
    while stack:
        rel_dir, ignores = stack.pop()
        try:
            with os.scandir(os.path.join(root, rel_dir)) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError as exc:
            skipped.append(Skipped(rel_dir, f"unreadable: {exc.strerror or exc}"))
            continue
        if use_gitignore and any(entry.name == ".gitignore" for entry in entries):
            spec = _read_gitignore(os.path.join(root, rel_dir, ".gitignore"))
            if spec is not None:
                ignores = ignores + ((rel_dir, spec),)
        subdirs: list[str] = []
        for entry in entries:
            if entry.name == ".git":
                continue
            rel = rel_dir + entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            shown = rel + "/" if is_dir else rel
            if _ignored(ignores, shown):
                skipped.append(Skipped(shown, IGNORED))
            elif filters.excluded(shown):
                skipped.append(Skipped(shown, EXCLUDED))
            elif is_dir:
                subdirs.append(shown)
            elif not filters.included(rel):
                skipped.append(Skipped(rel, NOT_INCLUDED))
            else:
                kept.append(rel)
        stack.extend((subdir, ignores) for subdir in reversed(subdirs))
    return kept


def _read_gitignore(path: str) -> pathspec.GitIgnoreSpec | None:
    try:
        with open(path, "rb") as handle:
            lines = _decode(handle.read()).splitlines()
    except OSError:
        return None
    return pathspec.GitIgnoreSpec.from_lines(lines)


def _ignored(ignores: _IgnoreStack, shown: str) -> bool:
    """Git's rule: the deepest .gitignore with a matching pattern (or negation) decides."""
    for base, spec in reversed(ignores):
        verdict = spec.check_file(shown[len(base):]).include
        if verdict is not None:
            return verdict
    return False


@dataclass(frozen=True)
class _Skip:
    reason: str
    directory: bool = False


def _read_member(path: str, boundary: str, max_file_size: int) -> str | _Skip | None:
    """Read one directory member. None: it vanished (git lists deleted tracked files)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return _Skip(f"unreadable: {exc.strerror or exc}")
    if stat.S_ISLNK(info.st_mode):
        try:
            info = os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return _Skip("symlink loop")
            if exc.errno == errno.ENOENT:
                return _Skip("dangling symlink")
            return _Skip(f"unreadable: {exc.strerror or exc}")
        target = os.path.realpath(path)
        # A repository from elsewhere could link to ~/.ssh or ~/.aws; its text would go to a model.
        if os.path.commonpath([boundary, target]) != boundary:
            return _Skip(f"symlink to outside the source ({target})")
        if stat.S_ISDIR(info.st_mode):
            return _Skip("symlink to a directory (not followed)")
    if stat.S_ISDIR(info.st_mode):
        return _Skip("submodule or nested repository (not loaded)", directory=True)
    if not stat.S_ISREG(info.st_mode):
        return _Skip(f"not a regular file ({_kind(info.st_mode)})")
    if info.st_size > max_file_size:
        return _Skip(_too_large(info.st_size, max_file_size))
    try:
        with open(path, "rb", buffering=0) as handle:
            data = _read_at_most(handle, info.st_size, max_file_size)
    except OSError as exc:
        return _Skip(f"unreadable: {exc.strerror or exc}")
    if len(data) > max_file_size:
        return _Skip(_too_large(len(data), max_file_size))
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        return _Skip(BINARY)
    return _decode(data)


def _read_at_most(handle: BinaryIO, expected: int, limit: int) -> bytes:
    """Read up to limit + 1 bytes, asking for the stat size first: one right-sized read for
    the usual file, and a file that grew past the limit since the stat is still caught."""
    want = min(expected, limit) + 1
    data = handle.read(want)
    if len(data) == want and want <= limit:
        data += handle.read(limit + 1 - want)
    return data


def _too_large(size: int, limit: int) -> str:
    return f"larger than --max-file-size ({format_size(size)} > {format_size(limit)})"


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISDIR, "directory"),
    )
    return next((name for test, name in kinds if test(mode)), "special file")


def _unique_names(names: list[str]) -> list[str]:
    """`src`, `src` -> `src`, `src~2`, so every source keeps its own prefix."""
    seen: Counter[str] = Counter()
    taken = set(names)
    unique: list[str] = []
    for name in names:
        seen[name] += 1
        candidate = name
        if seen[name] > 1:
            number = seen[name]
            while f"{name}~{number}" in taken:
                number += 1
            candidate = f"{name}~{number}"
            taken.add(candidate)
        unique.append(candidate)
    return unique


def _prefix(part: _Part, name: str) -> None:
    if part.is_directory:
        part.files = [(f"{name}/{rel}", text) for rel, text in part.files]
        part.skipped = [Skipped(f"{name}/{item.path}", item.reason) for item in part.skipped]
    else:
        part.files = [(name, text) for _, text in part.files]


def _refuse_empty(sources: Sequence[str], files: dict[str, str], skipped: list[Skipped]) -> None:
    named = ", ".join(sources)
    if not files:
        if not skipped:
            raise InputError(f"nothing to load from {named}: no files found")
        reasons = Counter(_category(item.reason) for item in skipped)
        summary = ", ".join(f"{count} {reason}" for reason, count in reasons.most_common())
        raise InputError(f"nothing to load from {named}: 0 files kept ({summary})")
    if not any(files.values()):
        count = len(files)
        what = "the file is empty" if count == 1 else f"all {count} files are empty"
        raise InputError(f"nothing to load from {named}: {what}")


def _category(reason: str) -> str:
    """'larger than --max-file-size (12.3 MB > 5.0 MB)' -> 'larger than --max-file-size'."""
    return reason.split(" (", 1)[0].split(":", 1)[0]
