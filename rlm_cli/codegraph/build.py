"""Build a ``CodeIndex`` from a mapping of path -> text: cache look-ups, then parallel parsing.

The steps, and who pays for them:
1. the language of each file (extension or shebang) and the key of its cache entry (SHA-256 of
   engine version, language and text) -- in this process;
2. one SQLite query for all keys; hits are decoded, misses are parsed;
3. misses are parsed by ``parse_source`` in a process pool with one worker per core when there
   are at least ``POOL_MIN_FILES`` of them (a pool costs more than it saves on a few files),
   serially otherwise. Work is sent in batches of similar total size, largest files first, and
   comes back as serialised ``FileIndex`` blobs, which are exactly what the cache stores;
4. new entries are written to the cache in one transaction.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path

from rlm_cli.codegraph.cache import ParseCache, default_cache_dir, entry_key
from rlm_cli.codegraph.index import BuildStats, CodeIndex
from rlm_cli.codegraph.languages import language_for
from rlm_cli.codegraph.model import SKIP_TOO_LARGE, SKIP_UNKNOWN_LANGUAGE, FileIndex
from rlm_cli.codegraph.parse import DEFAULT_MAX_FILE_CHARS, count_lines, parse_source

#: Below this many files to parse, parsing is serial.
POOL_MIN_FILES = 50
_BATCHES_PER_WORKER = 6

# (path, language, text) of a file to parse
_Job = tuple[str, str, str]


def build_code_index(
    files: Mapping[str, str],
    *,
    cache_dir: Path | None = None,
    processes: int | None = None,
    max_file_chars: int = DEFAULT_MAX_FILE_CHARS,
    use_cache: bool = True,
) -> CodeIndex:
    """Parse every file whose language is known and return the queryable index.

    ``cache_dir`` holds the parse cache (default: ``default_cache_dir()``); ``processes`` caps
    the worker processes (default: the cores this process may use; 1 parses serially).
    """
    started = time.perf_counter()
    stats = BuildStats()
    entries: dict[str, FileIndex] = {}
    jobs: dict[bytes, list[_Job]] = {}  # key -> files with that key (equal texts share one)
    for path, text in files.items():
        language = language_for(path, text)
        if language is None:
            entries[path] = FileIndex(None, SKIP_UNKNOWN_LANGUAGE, count_lines(text))
        elif len(text) > max_file_chars:
            entries[path] = FileIndex(language, SKIP_TOO_LARGE, count_lines(text))
        else:
            key = entry_key(language, text.encode("utf-8", "surrogatepass"))
            jobs.setdefault(key, []).append((path, language, text))
    stats.hash_s = time.perf_counter() - started

    cache = ParseCache(cache_dir or default_cache_dir()) if use_cache else None
    try:
        mark = time.perf_counter()
        cached = cache.get_many(jobs) if cache is not None else {}
        for key, blob in cached.items():
            group = jobs.pop(key)
            entry = FileIndex.from_bytes(blob)
            for path, _language, _text in group:
                entries[path] = entry
            stats.cached_files += len(group)
        stats.cache_read_s = time.perf_counter() - mark

        mark = time.perf_counter()
        stats.processes = _workers(processes, len(jobs))
        new_entries: list[tuple[bytes, bytes]] = []
        for key, entry, blob in _parse_all(jobs, stats.processes):
            new_entries.append((key, blob))
            for path, _language, _text in jobs[key]:
                entries[path] = entry
                stats.parsed_files += 1
        stats.parse_s = time.perf_counter() - mark

        mark = time.perf_counter()
        if cache is not None:
            if new_entries:
                cache.put_many(new_entries)
            stats.cache_path = str(cache.path)
            stats.cache_error = cache.error
        stats.cache_write_s = time.perf_counter() - mark
    finally:
        if cache is not None:
            cache.close()
    # keep the order of `files`
    ordered = {path: entries[path] for path in files}
    stats.total_s = time.perf_counter() - started
    return CodeIndex(files, ordered, stats)


def available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _workers(processes: int | None, jobs: int) -> int:
    wanted = available_cores() if processes is None else max(1, processes)
    if jobs < POOL_MIN_FILES:
        return 1
    return min(wanted, jobs)


def _parse_all(
    jobs: Mapping[bytes, list[_Job]], workers: int
) -> Iterator[tuple[bytes, FileIndex, bytes]]:
    """(key, FileIndex, its serialised form) of every job, from a pool when ``workers`` > 1.

    Results are yielded as batches finish, so this process decodes them while workers parse.
    """
    work = [(key, group[0][1], group[0][2]) for key, group in jobs.items()]
    done: set[bytes] = set()
    if workers > 1:
        try:
            for key, blob in _parse_in_pool(work, workers):
                done.add(key)
                yield key, FileIndex.from_bytes(blob), blob
        except (OSError, BrokenProcessPool):
            pass  # no processes to be had (a sandbox's limits): parse the rest here
    with _gc_paused():
        for key, language, text in work:
            if key not in done:
                entry = parse_source(text, language)
                yield key, entry, entry.to_bytes()


def _parse_in_pool(
    work: list[tuple[bytes, str, str]], workers: int
) -> Iterator[tuple[bytes, bytes]]:
    with ProcessPoolExecutor(max_workers=workers, mp_context=pool_context()) as pool:
        futures: list[Future[list[tuple[bytes, bytes]]]] = [
            pool.submit(_parse_batch, batch)
            for batch in balanced_batches(work, workers * _BATCHES_PER_WORKER)
        ]
        for future in as_completed(futures):
            yield from future.result()


def _parse_batch(batch: list[tuple[bytes, str, str]]) -> list[tuple[bytes, bytes]]:
    """Runs in a worker process."""
    with _gc_paused():
        return [(key, parse_source(text, language).to_bytes()) for key, language, text in batch]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Parsing allocates many small tuples and no reference cycles: the cyclic collector
    would only scan them (about 7% of the parse time of a large repository)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def balanced_batches(
    work: list[tuple[bytes, str, str]], count: int
) -> list[list[tuple[bytes, str, str]]]:
    """Split into ``count`` batches of similar total size, the batch with the largest files first.

    Greedy: each file, largest first, goes to the lightest batch so far.
    """
    count = max(1, min(count, len(work)))
    batches: list[list[tuple[bytes, str, str]]] = [[] for _ in range(count)]
    sizes = [0] * count
    for item in sorted(work, key=lambda item: -len(item[2])):
        lightest = min(range(count), key=sizes.__getitem__)
        batches[lightest].append(item)
        sizes[lightest] += len(item[2]) + 200  # a file costs something even when empty
    order = sorted(range(count), key=lambda i: -max((len(t) for _, _, t in batches[i]), default=0))
    return [batches[i] for i in order if batches[i]]


def pool_context() -> multiprocessing.context.BaseContext:
    """``fork`` where it is the platform default and safe (Linux, no other threads running).

    Forking is the cheapest start (workers inherit the loaded grammars), but forking a process
    that runs other threads can deadlock the child; then ``forkserver``/``spawn`` is used.
    """
    import threading

    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
