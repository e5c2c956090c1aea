"""Checks on the answer a run ends with: `--schema` (typed answers) and `--cite` (verified sources).

The root loop hands each FINAL to an `AnswerCheck` and gets a `Verdict` back. With a schema, the
value FINAL carried (a dict or list, sent by the worker as JSON, or JSON text) must validate
(jsonschema); a verdict with `errors` gets one corrective turn naming them, then ends the run as
a limit. With citations, each `file:line` reference FINAL gave in `sources=[...]` is checked
against the loaded context (the file, the line, the quoted fragment on it); one that fails is
kept and marked unverified, never dropped. Nothing here prints or picks an exit code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlm_cli.errors import UsageError

MAX_ERRORS_SHOWN = 5

SCHEMA_INSTRUCTIONS = """\
The answer must be JSON satisfying this JSON Schema:
```json
{schema}
```
Call FINAL with the value itself (a dict or a list; JSON text works too), e.g. FINAL(result)."""

CITE_INSTRUCTIONS = """\
Support the answer with sources: call FINAL(answer, sources=[...]) where each source is \
"path:line" (or "path:start-end") followed by a short fragment quoted verbatim from that line, e.g. \
FINAL(answer, sources=['src/app.py:42 "def parse_config("']). Paths are those of context.files; \
lines are 1-based, as context.grep reports them. Every source is checked against the context."""

CORRECTION_TURN = """\
FINAL was called, but its value does not satisfy the JSON Schema:
{errors}
Reply with one ```repl block that calls FINAL with a corrected value."""


def load_schema(text: str) -> dict[str, Any]:
    """`--schema`'s value: inline JSON (it starts with `{`) or the path of a JSON file."""
    inline = text.lstrip().startswith("{")
    if inline:
        raw, where = text, "--schema"
    else:
        try:
            raw, where = Path(text).read_text(encoding="utf-8"), f"--schema {text}"
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise UsageError(f"--schema: cannot read {text}: {reason}") from None
    try:
        schema = json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"{where}: not JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise UsageError(f"{where}: a JSON Schema is an object, not {type(schema).__name__}")
    return schema


@dataclass(frozen=True)
class FinalAnswer:
    """What a cell's FINAL carried: its text, its JSON form (dict/list values), its sources."""

    text: str
    json: str | None = None
    sources: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class Source:
    """One reference of the answer, and whether the context bears it out (`reason` if not)."""

    ref: str  # as the model gave it
    path: str | None
    line: int | None
    end_line: int | None
    quote: str | None
    verified: bool
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "path": self.path,
            "line": self.line,
            "end_line": self.end_line,
            "quote": self.quote,
            "verified": self.verified,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Verdict:
    """A checked answer: the text to print (JSON text when typed), the value, the sources."""

    text: str
    value: Any = None  # the validated JSON value, when `typed`
    typed: bool = False
    sources: tuple[Source, ...] | None = None  # with citations
    errors: tuple[str, ...] = ()  # why the value does not satisfy the schema

    def correction(self) -> str:
        """The corrective turn for a value that does not validate."""
        return CORRECTION_TURN.format(errors="\n".join(f"- {e}" for e in self.errors))


@dataclass(frozen=True)
class AnswerCheck:
    """What the answer of a run must satisfy: a JSON Schema, citations in `files`, or both."""

    schema: Mapping[str, Any] | None = None
    cite: bool = False
    files: Mapping[str, str] = field(default_factory=dict)  # the loaded context, for citations

    def __post_init__(self) -> None:
        if self.schema is not None:
            _validator(self.schema)  # an invalid schema is a usage error before any work

    def instructions(self) -> str:
        """What the root model is told in its first turn."""
        parts = []
        if self.schema is not None:
            parts.append(SCHEMA_INSTRUCTIONS.format(schema=json.dumps(self.schema, indent=2, ensure_ascii=False)))
        if self.cite:
            parts.append(CITE_INSTRUCTIONS)
        return "\n\n".join(parts)

    def check(self, final: FinalAnswer) -> Verdict:
        sources = tuple(verify(ref, self.files) for ref in final.sources or ()) if self.cite else None
        if self.schema is None:
            return Verdict(final.text, sources=sources)
        value, errors = self._typed(final)
        if errors:
            return Verdict(final.text, sources=sources, errors=errors)
        return Verdict(json.dumps(value, ensure_ascii=False), value, True, sources)

    def _typed(self, final: FinalAnswer) -> tuple[Any, tuple[str, ...]]:
        """The first reading of FINAL's value that validates, or the errors of the first reading.

        A dict or list arrives as JSON; a str is read as JSON text, else taken as a JSON string.
        """
        assert self.schema is not None
        readings: list[Any] = []
        if final.json is not None:
            readings.append(json.loads(final.json))
        else:
            try:
                readings.append(json.loads(final.text))
            except ValueError:
                pass
            readings.append(final.text)
        validator = _validator(self.schema)
        first: tuple[str, ...] = ()
        for value in readings:
            errors = tuple(_describe(e) for e in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path)))
            if not errors:
                return value, ()
            first = first or errors
        shown = first[:MAX_ERRORS_SHOWN]
        more = len(first) - len(shown)
        return None, shown + ((f"... and {more} more",) if more else ())


def _validator(schema: Mapping[str, Any]) -> Any:
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the top level"
        raise UsageError(f"--schema is not a valid JSON Schema (at {where}): {exc.message}") from None
    return cls(schema)


def _describe(error: Any) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"at ${path}: {error.message}"


# -- citations ------------------------------------------------------------------------------------

_REF = re.compile(r"^\s*(?P<path>.+?):(?P<start>\d+)(?:\s*-\s*(?P<end>\d+))?(?:\s*[:,]?\s+(?P<quote>.*?))?\s*$", re.S)
_QUOTES = ('"', "'", "`", "\u201c\u201d")


def verify(ref: Any, files: Mapping[str, str]) -> Source:
    """Check one reference (a "path:line quote" string or a {path, line, quote} dict) in `files`."""
    text, path, start, end, quote = _parse(ref)
    if path is None or start is None:
        return Source(text, path, start, end, quote, False, "not a path:line reference")
    found = _find(path, files)
    if found is None:
        return Source(text, path, start, end, quote, False, f"no file {path} in the context")
    path = found
    lines = files[path].splitlines()
    last = end if end is not None else start
    if not 1 <= start <= last <= len(lines):
        return Source(text, path, start, end, quote, False, f"{path} has {len(lines):,} lines")
    if not quote:
        return Source(text, path, start, end, quote, False, "no quoted fragment to check")
    wanted = _squash(quote)
    if wanted in _squash(" ".join(lines[start - 1 : last])):
        return Source(text, path, start, end, quote, True)
    elsewhere = next((n for n, line in enumerate(lines, 1) if wanted in _squash(line)), None)
    where = f" (it is on line {elsewhere})" if elsewhere else ""
    return Source(text, path, start, end, quote, False, f"the quote is not on the cited line{where}")


def _parse(ref: Any) -> tuple[str, str | None, int | None, int | None, str | None]:
    if isinstance(ref, dict):
        path = ref.get("path") or ref.get("file")
        line = ref.get("line") or ref.get("start_line")
        end = ref.get("end_line")
        quote = ref.get("quote")
        text = f"{path}:{line}" + (f"-{end}" if end else "") + (f' "{quote}"' if quote else "")
        return text, str(path) if path else None, _int(line), _int(end), str(quote) if quote else None
    text = str(ref)
    match = _REF.match(text)
    if match is None:
        return text, None, None, None, None
    end = match["end"]
    return text, match["path"].strip(), int(match["start"]), int(end) if end else None, _unquote(match["quote"])


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _unquote(quote: str | None) -> str | None:
    quote = (quote or "").strip()
    for mark in _QUOTES:
        opening, closing = (mark[0], mark[-1])
        if len(quote) >= 2 and quote[0] == opening and quote[-1] == closing:
            quote = quote[1:-1]
            break
    return quote or None


def _find(path: str, files: Mapping[str, str]) -> str | None:
    """The context's name for `path`: exact, without a leading ./, or the one file ending in it."""
    for name in (path, path.removeprefix("./")):
        if name in files:
            return name
    suffix = "/" + path.removeprefix("./")
    ends = [name for name in files if name.endswith(suffix)]
    return ends[0] if len(ends) == 1 else None


def _squash(text: str) -> str:
    return " ".join(text.split())


def render_sources(sources: tuple[Source, ...]) -> str:
    """The sources block printed after the answer: every reference, verified or not."""
    if not sources:
        return "Sources: none given"
    rows = ["Sources:"]
    for source in sources:
        mark = "verified  " if source.verified else "unverified"
        why = f"  ({source.reason})" if source.reason else ""
        rows.append(f"  [{mark}] {source.ref}{why}")
    return "\n".join(rows)
