"""What a run gives back: the answer, how it ended, and what it cost."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlm_cli.events import Usage


@dataclass(frozen=True)
class AskResult:
    """The outcome of `Rlm.ask`: status `ok` or `limit` when returned, `error` when carried by
    an `RlmError` (as `exc.result`)."""

    answer: str | None
    status: str  # ok | limit | error | interrupted
    model: str | None
    sub_model: str | None
    iterations: int = 0
    subcalls: int = 0
    usage: Usage = Usage()
    duration_s: float = 0.0
    trace_file: Path | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The `--json` object of DESIGN.md."""
        return {
            "answer": self.answer,
            "status": self.status,
            "model": self.model,
            "sub_model": self.sub_model,
            "iterations": self.iterations,
            "subcalls": self.subcalls,
            "usage": {
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
                "cost_usd": self.usage.cost_usd,
            },
            "duration_s": round(self.duration_s, 3),
            "trace_file": str(self.trace_file) if self.trace_file else None,
            "error": self.error,
        }
