"""The run's limits and the one shared account every model call is charged to.

Root calls, sub-calls and recursive sub-RLMs all draw on the same `Budget`, so `--max-cost`
and `--max-subcalls` hold for the whole run, whatever the depth.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rlm_cli.errors import LimitError
from rlm_cli.events import Usage


@dataclass(frozen=True)
class Limits:
    max_iterations: int = 30
    max_depth: int = 1
    max_subcalls: int | None = None
    max_cost: float | None = None
    timeout: float | None = None  # the whole run, seconds
    cell_timeout: float = 300.0
    concurrency: int = 16


@dataclass
class Budget:
    limits: Limits
    started: float = field(default_factory=time.monotonic)
    usage: Usage = field(default_factory=Usage)
    subcalls: int = 0

    def charge(self, usage: Usage) -> None:
        self.usage = self.usage + usage

    def take_subcall(self) -> None:
        """Count one sub-call, or refuse it when --max-subcalls is spent."""
        if self.limits.max_subcalls is not None and self.subcalls >= self.limits.max_subcalls:
            raise LimitError(f"sub-call limit reached (--max-subcalls {self.limits.max_subcalls})")
        self.subcalls += 1

    def cost_exceeded(self) -> bool:
        return self.limits.max_cost is not None and (self.usage.cost_usd or 0.0) >= self.limits.max_cost

    def check_cost(self) -> None:
        if self.cost_exceeded():
            raise LimitError(f"cost limit reached: ${self.usage.cost_usd:.4f} of --max-cost ${self.limits.max_cost}")

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining_time(self) -> float | None:
        if self.limits.timeout is None:
            return None
        return max(0.0, self.limits.timeout - self.elapsed())

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
