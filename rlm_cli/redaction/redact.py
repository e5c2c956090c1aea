"""Redact the loaded files: every secret `detectors` finds becomes a `[REDACTED:kind]` marker.

The marker replaces the value only, so the line stays readable (`password = "[REDACTED:password]"`,
`https://user:[REDACTED:password]@host`); a private key's whole block becomes one marker and its
other lines are emptied, so line numbers (grep hits, citations) still match the file.

Scan results are cached by content hash in `<cache>/secrets/` (a `BlobCache`, like the code
graph's parse cache): a second run scans only the files that changed. The cache holds line and
column numbers and kinds, never a value. Uncached files are scanned in a process pool when there
are enough of them to pay for it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path

from rlm_cli.blobcache import BlobCache
from rlm_cli.codegraph.build import available_cores, balanced_batches, pool_context
from rlm_cli.redaction.detectors import Span, gated_lines, quick_gate, scan_text

__all__ = ["Finding", "Redaction", "apply_spans", "redact", "scanner_version"]

_GUESSES = frozenset({"secret", "password", "high-entropy"})
POOL_MIN_CHARS = 4_000_000  # below this a pool's start-up costs more than it saves
_BATCHES_PER_WORKER = 4


@dataclass(frozen=True)
class Finding:
    """One secret that was replaced: what kind, where. Never the value."""

    kind: str
    path: str
    line: int  # 1-based


@dataclass(frozen=True)
class Redaction:
    files: dict[str, str]  # the texts with markers, in the order given
    findings: tuple[Finding, ...]
    scanned: int  # files scanned this time; the others came from the cache
    duration_s: float

    def summary(self) -> str:
        """'redacted 3 secrets in 2 files (2 aws-key, 1 private-key)', for stderr."""
        if not self.findings:
            return f"no secrets found in {len(self.files):,} file(s)"
        return "redacted " + self.described()

    def described(self) -> str:
        """'3 secrets in 2 files (2 aws-key, 1 private-key)'."""
        kinds = Counter(finding.kind for finding in self.findings)
        paths = len({finding.path for finding in self.findings})
        count = len(self.findings)
        detail = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
        return f"{count:,} secret{'s' if count != 1 else ''} in {paths:,} file{'s' if paths != 1 else ''} ({detail})"

    def records(self) -> list[dict[str, object]]:
        return [{"kind": f.kind, "path": f.path, "line": f.line} for f in self.findings]


def redact(files: Mapping[str, str], cache_dir: Path | None = None, processes: int | None = None) -> Redaction:
    """Scan `files` (cached results reused), replace what was found, say what and where."""
    started = time.perf_counter()
    cache = BlobCache(cache_dir, "scan", scanner_version()) if cache_dir is not None else None
    try:
        keys = {path: _key(path, text) for path, text in files.items()}
        stored = cache.get_many(set(keys.values())) if cache is not None else {}
        spans = {path: _decode(stored[key]) for path, key in keys.items() if key in stored}
        todo = [(keys[path], path, text) for path, text in files.items() if path not in spans]
        fresh = dict(_scan_all(todo, processes))
        spans.update(fresh)
        if cache is not None and fresh:
            cache.put_many((keys[path], _encode(found)) for path, found in fresh.items())
    finally:
        if cache is not None:
            cache.close()
    texts: dict[str, str] = {}
    findings: list[Finding] = []
    for path, text in files.items():
        found = spans[path]
        texts[path] = apply_spans(text, found) if found else text
        findings.extend(_findings(path, found))
    return Redaction(texts, tuple(findings), len(todo), time.perf_counter() - started)


def apply_spans(text: str, spans: list[Span]) -> str:
    """Replace each span by its marker (an unmarked span by nothing); overlapping spans merge."""
    lines = text.split("\n")
    for number, merged in _merged_by_line(spans).items():
        line, out, position = lines[number], [], 0
        for span in merged:
            out.append(line[position : span.start])
            if span.marker:
                out.append(f"[REDACTED:{span.kind}]")
            position = span.end
        out.append(line[position:])
        lines[number] = "".join(out)
    return "\n".join(lines)


def _merged_by_line(spans: list[Span]) -> dict[int, list[Span]]:
    """Per line, the spans with overlaps merged, in column order. The first span's kind wins; at
    the same column a vendor's kind (`aws-key`) wins over a guess (`secret`, `high-entropy`)."""
    merged: dict[int, list[Span]] = {}
    for span in sorted(spans, key=lambda s: (s.line, s.start, -s.end, s.kind in _GUESSES)):
        row = merged.setdefault(span.line, [])
        if row and span.start < row[-1].end:
            last = row[-1]
            row[-1] = Span(last.line, last.start, max(last.end, span.end), last.kind, last.marker or span.marker)
        else:
            row.append(span)
    return merged


def _findings(path: str, spans: list[Span]) -> Iterator[Finding]:
    """One finding per marker: a private key is one finding, however many lines it spans."""
    for number, merged in sorted(_merged_by_line(spans).items()):
        for span in merged:
            if span.marker:
                yield Finding(span.kind, path, number + 1)


@lru_cache(maxsize=1)
def scanner_version() -> str:
    """A digest of what shapes a scan: detect-secrets, Hyperscan and the detector code."""
    digest = hashlib.sha256()
    for distribution in ("detect-secrets", "hyperscan"):
        try:
            digest.update(metadata.version(distribution).encode())
        except metadata.PackageNotFoundError:
            digest.update(b"?")
    digest.update(resources.files("rlm_cli.redaction").joinpath("detectors.py").read_bytes())
    return digest.hexdigest()[:16]


def _key(path: str, text: str) -> bytes:
    """The text and the file name (which picks detect-secrets' rules for its type)."""
    digest = hashlib.sha256(scanner_version().encode())  # SHA-256 has CPU instructions: the fastest here
    digest.update(path.rsplit("/", 1)[-1].encode("utf-8", "surrogatepass"))
    digest.update(b"\0")
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.digest()


def _encode(spans: list[Span]) -> bytes:
    """A clean file (nearly all of them) is an empty blob; others a JSON list of spans."""
    return json.dumps([[s.line, s.start, s.end, s.kind, s.marker] for s in spans]).encode() if spans else b""


def _decode(blob: bytes) -> list[Span]:
    return [Span(line, start, end, kind, marker) for line, start, end, kind, marker in json.loads(blob)] if blob else []


def _scan_all(todo: list[tuple[bytes, str, str]], processes: int | None) -> Iterator[tuple[str, list[Span]]]:
    """(path, spans) of every file to scan, from a pool when they are many and large."""
    workers = available_cores() if processes is None else max(1, processes)
    done: set[str] = set()
    if workers > 1 and len(todo) > 1 and sum(len(text) for _, _, text in todo) >= POOL_MIN_CHARS:
        gated_lines("")  # compile the gate here, once, so forked workers inherit it
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=pool_context()) as pool:
                futures = [
                    pool.submit(_scan_batch, [(path, text) for _, path, text in batch])
                    for batch in balanced_batches(todo, workers * _BATCHES_PER_WORKER)
                ]
                for future in as_completed(futures):
                    for path, spans in future.result():
                        done.add(path)
                        yield path, spans
        except (OSError, BrokenProcessPool):
            pass  # no processes to be had (a sandbox's limits): scan the rest here
    quick = quick_gate(sum(len(text) for _, _, text in todo))
    for _, path, text in todo:
        if path not in done:
            yield path, scan_text(path, text, quick=quick)


def _scan_batch(batch: list[tuple[str, str]]) -> list[tuple[str, list[Span]]]:
    """Runs in a worker process."""
    return [(path, scan_text(path, text)) for path, text in batch]

