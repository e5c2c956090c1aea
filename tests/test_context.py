"""`Context` checked against independent, slow computations on generated text."""

from __future__ import annotations

import random
import re
import subprocess
import sys
import time

import pytest

from rlm_cli.sources.context import LINE_CAP, Chunk, Context, Hit


def generated_log(lines: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "ERROR", "WARN", "timeout", "user"]
    return "".join(
        f"{i:07d} " + " ".join(rng.choice(words) for _ in range(rng.randint(3, 14))) + "\n"
        for i in range(lines)
    )


def fifty_megabytes() -> str:
    base = generated_log(20_000)
    return base * (50_000_000 // len(base) + 1)


def slow_grep(files: dict[str, str], pattern: str) -> list[tuple[str, int, str]]:
    """One hit per line whose text matches: the obvious, slow way."""
    regex = re.compile(pattern)
    return [
        (path, number, line)
        for path, text in files.items()
        for number, line in enumerate(text.split("\n"), start=1)
        if regex.search(line)
    ]


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


# --- text and files -------------------------------------------------------------------------


def test_one_file_is_its_text_unchanged() -> None:
    context = Context({"app.py": "def main():\n    pass"})
    assert context == "def main():\n    pass"
    assert isinstance(context, str)
    assert dict(context.files) == {"app.py": "def main():\n    pass"}
    assert context.splitlines() == ["def main():", "    pass"]
    assert type(context[:3]) is str


def test_one_file_keeps_a_single_copy() -> None:
    context = Context({"big.txt": "x" * 1000})
    assert context.files["big.txt"] is context


def test_several_files_get_headers_and_final_newlines() -> None:
    context = Context({"a.py": "one\ntwo", "b/c.md": "three\n", "empty.txt": "", "d": "four"})
    assert context == (
        "=== FILE: a.py ===\none\ntwo\n"
        "=== FILE: b/c.md ===\nthree\n"
        "=== FILE: empty.txt ===\n"
        "=== FILE: d ===\nfour\n"
    )
    assert list(context.files) == ["a.py", "b/c.md", "empty.txt", "d"]
    assert context.files["a.py"] == "one\ntwo"  # the file's own text, without the added newline
    assert re.findall(r"^=== FILE: (.*) ===$", context, re.MULTILINE) == list(context.files)


def test_files_is_read_only() -> None:
    context = Context({"a": "1", "b": "2"})
    with pytest.raises(TypeError):
        context.files["a"] = "changed"  # type: ignore[index]
    with pytest.raises(AttributeError):
        context.files = {}  # type: ignore[misc]


def test_repr_is_a_summary_not_the_text() -> None:
    context = Context({"a": "secret " * 1000, "b": "x"})
    assert "secret" not in repr(context)
    assert "2 files" in repr(context)
    assert str(context).startswith("=== FILE: a ===\nsecret")


def test_empty_context() -> None:
    context = Context({})
    assert context == ""
    assert dict(context.files) == {}
    assert context.grep("x") == []
    assert context.chunks() == []


def test_module_imports_only_the_standard_library() -> None:
    code = (
        "import sys; import rlm_cli.sources.context; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pathspec', 'platformdirs', 'typer', 'rich', 'litellm')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# --- grep -----------------------------------------------------------------------------------


def test_grep_line_numbers_match_an_independent_count_on_megabytes() -> None:
    text = generated_log(60_000)
    assert len(text) > 3_000_000
    context = Context({"log.txt": text})
    hits = context.grep(r"ERROR \w+ timeout", max_hits=10**9)
    expected = slow_grep({"log.txt": text}, r"ERROR \w+ timeout")
    assert len(expected) > 100
    assert [(h.path, h.line, h.text) for h in hits] == expected


def test_grep_over_several_files_counts_lines_per_file() -> None:
    files = {f"logs/part{i}.txt": generated_log(3_000, seed=i) for i in range(4)}
    files["notes.md"] = "no newline at the end, ERROR timeout"
    context = Context(files)
    hits = context.grep(r"ERROR timeout", max_hits=10**9)
    assert [(h.path, h.line, h.text) for h in hits] == slow_grep(files, r"ERROR timeout")


def test_grep_reports_one_hit_per_line_and_the_whole_line() -> None:
    context = Context({"a.py": "x = 1\ny = x + x + x\n", "b.py": "def main():\n    return x\n"})
    hits = context.grep(r"x")
    assert [(h.path, h.line) for h in hits] == [("a.py", 1), ("a.py", 2), ("b.py", 2)]
    assert hits[2].text == "    return x"
    assert str(Hit("app.py", 12, "def main():")) == "app.py:12: def main():"
    assert repr(hits[0]) == "a.py:1: x = 1"


def test_grep_multiline_patterns_anchor_at_line_starts() -> None:
    context = Context({"a.py": "import os\nx = 1\nimport re\n", "b.py": "  import sys\n"})
    assert [(h.path, h.line) for h in context.grep(r"^import \w+$")] == [("a.py", 1), ("a.py", 3)]


def test_grep_path_filter_exact_and_glob() -> None:
    context = Context({"src/a.py": "TODO a\n", "src/b.ts": "TODO b\n", "docs/c.md": "TODO c\n"})
    assert [h.path for h in context.grep("TODO", path="src/b.ts")] == ["src/b.ts"]
    assert [h.path for h in context.grep("TODO", path="src/*")] == ["src/a.py", "src/b.ts"]
    assert [h.path for h in context.grep("TODO", path="*.md")] == ["docs/c.md"]
    assert context.grep("TODO", path="*.rs") == []
    with pytest.raises(ValueError, match="no file 'src/missing.py'"):
        context.grep("TODO", path="src/missing.py")


def test_grep_stops_at_max_hits() -> None:
    context = Context({"a": "hit\n" * 50, "b": "hit\n" * 50})
    assert len(context.grep("hit", max_hits=7)) == 7
    assert len(context.grep("hit")) == 100
    assert [h.line for h in context.grep("hit", max_hits=3)] == [1, 2, 3]


def test_bad_regex_raises_re_error() -> None:
    with pytest.raises(re.error, match="unterminated character set"):
        Context({"a": "x"}).grep("[abc")


def test_long_lines_are_cut_around_the_match() -> None:
    line = "a" * 5_000 + "NEEDLE" + "b" * 5_000
    hit = Context({"min.js": "short\n" + line + "\n"}).grep("NEEDLE")[0]
    assert hit.line == 2
    assert "NEEDLE" in hit.text
    assert hit.text.startswith("…") and hit.text.endswith("…")
    assert len(hit.text) <= LINE_CAP + 2


def test_crlf_lines_lose_their_carriage_return() -> None:
    assert Context({"w.txt": "one\r\ntwo\r\n"}).grep("two")[0].text == "two"


def test_grep_is_fast_on_fifty_megabytes() -> None:
    context = Context({"big.log": fifty_megabytes()})
    assert len(context) > 50_000_000
    started = time.perf_counter()
    hits = context.grep(r"timeout \w+ ERROR user", max_hits=10**9)
    elapsed = time.perf_counter() - started
    assert len(hits) > 1000
    assert elapsed < 5.0, f"took {elapsed:.2f}s"


# --- chunks ---------------------------------------------------------------------------------


def check_chunks(context: Context, chunks: list[Chunk], max_chars: int) -> None:
    """Cover the text exactly, within max_chars, breaking only at line ends (unless a line is
    longer than max_chars), with start/end lines that match an independent count."""
    assert "".join(chunks) == context
    offsets = [0]
    for chunk in chunks:
        offsets.append(offsets[-1] + len(chunk))
    files = list(context.files)
    header_offsets = [m.start() for m in re.finditer(r"^=== FILE: .* ===\n", context, re.M)]
    for chunk, start in zip(chunks, offsets):
        assert isinstance(chunk, Chunk)
        assert 0 < len(chunk) <= max_chars
        end = start + len(chunk)
        if end < len(context) and not chunk.endswith("\n"):
            line_start = context.rfind("\n", 0, end) + 1
            line_end = context.find("\n", end)
            assert line_end - line_start > max_chars, "cut mid-line without need"
        if len(files) == 1:
            assert chunk.path == files[0]
            assert chunk.start_line == line_of(context, start)
            assert chunk.end_line == line_of(context, end - 1)
        else:
            first = max(i for i, h in enumerate(header_offsets) if h <= start)
            last = max(i for i, h in enumerate(header_offsets) if h <= end - 1)
            assert chunk.path == files[first]
            assert chunk.paths == tuple(files[first : last + 1])
            text_start = context.index("\n", header_offsets[first]) + 1
            expected = 1 if start < text_start else line_of(context[text_start:], start - text_start)
            assert chunk.start_line == expected


def test_chunks_of_one_file_break_at_line_ends() -> None:
    context = Context({"log.txt": generated_log(20_000)})
    for max_chars in (1_000, 7_777, 100_000):
        check_chunks(context, context.chunks(max_chars), max_chars)


def test_chunks_of_many_files_prefer_file_boundaries() -> None:
    rng = random.Random(3)
    files = {f"src/m{i}.py": generated_log(rng.randint(1, 120), seed=i) for i in range(300)}
    context = Context(files)
    max_chars = 20_000
    chunks = context.chunks(max_chars)
    check_chunks(context, chunks, max_chars)
    boundaries = {m.start() for m in re.finditer(r"^=== FILE: ", context, re.M)}
    position = 0
    for chunk in chunks[:-1]:
        end = position + len(chunk)
        in_second_half = [b for b in boundaries if position + max_chars // 2 <= b <= end]
        later = [b for b in boundaries if end < b <= position + max_chars]
        if in_second_half or later:
            assert end in boundaries, "a file boundary in the second half was passed over"
        position = end
    assert chunks[0].startswith("=== FILE: src/m0.py ===\n")


def test_line_longer_than_max_chars_is_split_hard() -> None:
    context = Context({"min.js": "head\n" + "x" * 2_500 + "\ntail\n"})
    chunks = context.chunks(1_000)
    check_chunks(context, chunks, 1_000)
    assert [len(c) for c in chunks] == [5, 1_000, 1_000, 506]  # the rest of line 2, and line 3
    assert [(c.start_line, c.end_line) for c in chunks] == [(1, 1), (2, 2), (2, 2), (2, 3)]


def test_chunk_repr_is_a_summary() -> None:
    chunk = Context({"a.py": "x\n" * 10, "b.py": "y\n"}).chunks()[0]
    assert repr(chunk) == "<Chunk a.py:1 .. b.py:1 (2 files), 60 chars>"


def test_chunks_reject_a_non_positive_size() -> None:
    with pytest.raises(ValueError):
        Context({"a": "x"}).chunks(0)


def test_chunks_are_fast_on_fifty_megabytes() -> None:
    context = Context({"big.log": fifty_megabytes()})
    assert len(context) > 50_000_000
    started = time.perf_counter()
    chunks = context.chunks()
    elapsed = time.perf_counter() - started
    assert sum(map(len, chunks)) == len(context)
    assert chunks[-1].end_line == context.count("\n")
    assert elapsed < 3.0, f"took {elapsed:.2f}s"
