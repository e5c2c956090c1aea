"""The run's limits and the one shared account every model call is charged to.

Root calls, sub-calls and recursive sub-RLMs all draw on the same `Budget`, so `--max-cost`
and `--max-subcalls` hold for the whole run, whatever the depth. The clock starts when the
request does (`started`), so `--timeout` covers loading, cloning and local-server start too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rlm_cli.errors import LimitError
from rlm_cli.events import Usage


@dataclass(frozen=True)
class Limits:
    """Every budget of a run; these defaults are the CLI's defaults too."""

    max_iterations: int = 30
    max_depth: int = 1
    max_subcalls: int | None = None
    max_cost: float | None = None  # USD
    timeout: float | None = None  # the whole run, seconds
    cell_timeout: float = 300.0
    concurrency: int = 16


@dataclass
class Budget:
    limits: Limits
    started: float = field(default_factory=time.monotonic)
    usage: Usage = field(default_factory=Usage)
    subcalls: int = 0
    subcalls_refused: int = 0  # calls asked for after --max-subcalls was spent
    warn: Callable[[str], None] = lambda message: None  # told once per model that has no price
    _unpriced: set[str] = field(default_factory=set)

    def charge(self, usage: Usage, model: str) -> None:
        self.usage = self.usage + usage
        if self.limits.max_cost is not None and usage.cost_usd is None and model not in self._unpriced:
            self._unpriced.add(model)
            self.warn(f"--max-cost cannot count {model}: it has no known price; its tokens are counted, not its cost")

    def take_subcall(self) -> None:
        """Count one sub-call, or refuse it when --max-subcalls is spent."""
        if self.limits.max_subcalls is not None and self.subcalls >= self.limits.max_subcalls:
            self.subcalls_refused += 1
            raise LimitError(self.subcall_limit_text())
        self.subcalls += 1

    def subcall_limit_text(self) -> str:
        return f"sub-call limit reached (--max-subcalls {self.limits.max_subcalls})"

    def check_cost(self) -> None:
        cap = self.limits.max_cost
        spent = self.usage.cost_usd or 0.0
        if cap is not None and spent >= cap:
            raise LimitError(f"cost limit reached: ${spent:.4f} of --max-cost ${cap:g}")

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining_time(self) -> float | None:
        if self.limits.timeout is None:
            return None
        return max(0.0, self.limits.timeout - self.elapsed())

    def timeout_text(self) -> str:
        return f"time limit reached (--timeout {self.limits.timeout:g} s)"

    def summary(self, iteration: int) -> str:
        """The budget as the root model is shown it each turn."""
        parts = [f"iteration {iteration} of {self.limits.max_iterations}"]
        cap = f" of {self.limits.max_subcalls}" if self.limits.max_subcalls is not None else ""
        parts.append(f"sub-calls used: {self.subcalls}{cap}")
        if self.limits.max_cost is not None:
            parts.append(f"cost: ${self.usage.cost_usd or 0:.4f} of ${self.limits.max_cost:.2f}")
        remaining = self.remaining_time()
        if remaining is not None:
            parts.append(f"time left: {remaining:.0f} s")
        return "; ".join(parts)
