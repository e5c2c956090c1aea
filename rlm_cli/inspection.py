"""`rlm inspect`: what the context would hold, with no model call.

Takes the sources loaded exactly as `rlm ask` loads them, builds the code graph (parallel, cached) and
summarises: files kept and skipped (and why), size and a token estimate, repository, languages
and symbols by kind. The CLI prints `as_text()` or `as_json()`; `outline()` is the graph's tree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from rlm_cli.codegraph import CodeIndex, build_code_index
from rlm_cli.sources.loader import LoadedSources
from rlm_cli.units import estimate_tokens


@dataclass(frozen=True)
class Inspection:
    loaded: LoadedSources
    index: CodeIndex

    def as_json(self) -> dict[str, Any]:
        code = self.index.summary()
        return {
            "sources": list(self.loaded.sources),
            "files": len(self.loaded.files),
            "skipped": [asdict(s) for s in self.loaded.skipped],
            "chars": self.loaded.chars,
            "tokens_estimate": estimate_tokens(self.loaded.chars),
            "repository": asdict(self.loaded.repository) if self.loaded.repository else None,
            "languages": code["languages"],
            "symbols_by_kind": code["symbols_by_kind"],
            "code": {k: v for k, v in code.items() if k not in ("languages", "symbols_by_kind")},
        }

    def as_text(self) -> str:
        data = self.as_json()
        code = data["code"]
        lines = [f"sources: {', '.join(data['sources'])}"]
        repo = data["repository"]
        if repo:
            commit = (repo["commit"] or "no commits")[:12]
            lines.append(f"repository: {repo['name']} at {commit}" + (f" ({repo['remote_url']})" if repo["remote_url"] else ""))
        lines.append(f"files: {data['files']:,} loaded, {len(data['skipped']):,} skipped")
        lines.extend(f"  {line}" for line in self.loaded.skipped_lines())
        lines.append(f"size: {data['chars']:,} characters (~{data['tokens_estimate']:,} tokens)")
        languages = ", ".join(f"{lang} {n:,}" for lang, n in data["languages"].items())
        lines.append(f"languages: {languages or 'none parsed'}")
        kinds = ", ".join(f"{n:,} {kind}" for kind, n in data["symbols_by_kind"].items())
        lines.append(f"symbols: {kinds or 'none'}")
        if code["text_only"]:
            lines.append("text only: " + ", ".join(f"{n:,} {why}" for why, n in code["text_only"].items()))
        if code["parsed_with_errors"]:
            lines.append(f"parsed with errors: {code['parsed_with_errors']:,} files")
        cache = code["cache"]
        lines.append(f"code graph: {code['index_time_s']:.2f} s, {cache['hits']:,} files from cache, {cache['parsed']:,} parsed")
        return "\n".join(lines)


def inspect_sources(loaded: LoadedSources) -> Inspection:
    return Inspection(loaded, build_code_index(loaded.files))
