"""How many requests one provider gets at once: a limiter that learns it (AIMD).

`--concurrency` is where a provider starts, `--max-concurrency` the ceiling. Every attempt of
every model call (`RetryingClient`) waits for a slot and, when done, says how long it took and
whether it was a 429:

- slow start: while nothing has been refused, a limiter whose slots are all taken and has
  callers waiting doubles its limit every `ramp_s` (one round trip is too slow a signal: a batch
  of 64 calls of 500 ms should not take three round trips to get going), and adds one per
  success whose latency stays near the best seen;
- a 429 takes one slot away per refused request (a burst of 16 against a server that takes 8
  loses 8) and ends slow start there; after it the limit grows by 1/limit per fast success,
  about one slot per round of replies, and a success much slower than the best seen adds nothing.

A Retry-After is honoured by the refused request itself (`RetryingClient` sleeps it); the others
go on at the reduced limit. One limiter per provider (`Limiters`), shared by the root and sub
calls of every run an `Rlm` makes, so a batch of runs learns a provider once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

SLOW = 2.0  # a success slower than SLOW x the best latency seen does not raise the limit


class AdaptiveLimiter:
    """Admission for one provider; `acquire()` before an attempt, `release()` after it."""

    def __init__(
        self, start: int, ceiling: int, *, ramp_s: float = 0.05, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ceiling = max(1, ceiling)
        self.limit = float(min(max(1, start), self.ceiling))
        self.in_flight = 0
        self.peak = 0  # the most attempts in flight at once, for benchmarks and tests
        self.refused = 0  # 429s seen
        self._slow_start = True
        self._ramp_s = ramp_s
        self._clock = clock
        self._last_ramp = clock()
        self._best: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed = asyncio.Event()

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # shared across `asyncio.run`s: an Event belongs to one loop
            self._loop, self._changed = loop, asyncio.Event()
        while self.in_flight >= int(self.limit):
            self._changed.clear()
            wait = None
            if self._slow_start and self.limit < self.ceiling:
                wait = max(0.0, self._last_ramp + self._ramp_s - self._clock())
                if wait == 0.0:
                    self._ramp()
                    continue
            try:
                await asyncio.wait_for(self._changed.wait(), wait)
            except TimeoutError:
                pass
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)

    def release(self, latency: float, overloaded: bool = False) -> None:
        self.in_flight -= 1
        if overloaded:
            self.refused += 1
            self._slow_start = False
            self.limit = max(1.0, self.limit - 1.0)
        else:
            fast = self._best is None or latency <= SLOW * self._best + 0.01
            self._best = latency if self._best is None else min(self._best, latency)
            if fast:
                self.limit = min(float(self.ceiling), self.limit + (1.0 if self._slow_start else 1.0 / self.limit))
        self._changed.set()

    def _ramp(self) -> None:
        self.limit = min(float(self.ceiling), self.limit * 2)
        self._last_ramp = self._clock()

    def rebound(self, start: int, ceiling: int) -> None:
        """A new request's options: its ceiling holds from now on; what was learned is kept."""
        self.ceiling = max(1, ceiling)
        self.limit = min(self.limit, float(self.ceiling))
        if self._slow_start:
            self.limit = max(self.limit, float(min(max(1, start), self.ceiling)))


class Limiters:
    """One `AdaptiveLimiter` per provider (an API base, or a provider prefix); hand one
    `Limiters` to several `Rlm`s, or keep one `Rlm`, to share what was learned across runs."""

    def __init__(self) -> None:
        self._by_key: dict[str, AdaptiveLimiter] = {}

    def get(self, key: str, start: int, ceiling: int) -> AdaptiveLimiter:
        limiter = self._by_key.get(key)
        if limiter is None:
            limiter = self._by_key[key] = AdaptiveLimiter(start, ceiling)
        else:
            limiter.rebound(start, ceiling)
        return limiter
