"""How many requests one provider gets at once: a limiter that learns it (AIMD).

`--concurrency` is where a provider starts, `--max-concurrency` the ceiling. Every attempt of
every model call (`RetryingClient`) waits for a slot and, when done, says how long it took and
whether it was a 429:

- slow start: while nothing has been refused, a limiter whose slots are all taken and has
  callers waiting doubles its limit every `ramp_s` (10 ms; one round trip is too slow a signal:
  a batch of 64 calls of 500 ms should not take three round trips to get going, and at 50 ms
  the doubling from 16 to 64 alone cost such a batch 0.1 s), and adds one per success whose
  latency stays near the best seen;
- a 429 takes one slot away per refused request (a burst of 16 against a server that takes 8
  loses 8) and ends slow start there; after it the limit grows by 1/limit per fast success,
  about one slot per round of replies; a success much slower than the best seen adds nothing,
  nor does one while the limit was not all in use.

A Retry-After is honoured by the refused request itself (`RetryingClient` sleeps it); the others
go on at the reduced limit. One limiter per provider (`Limiters`), shared by the root and sub
calls of every run an `Rlm` makes, so a batch of runs learns a provider once.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

SLOW = 2.0  # a success slower than SLOW x the best latency seen does not raise the limit


class AdaptiveLimiter:
    """Admission for one provider; `acquire()` before an attempt, `release()` after it.

    Waiters queue in order and a freed slot is handed to the first of them directly, so a
    release wakes one coroutine, not every waiting one.
    """

    def __init__(
        self, start: int, ceiling: int, *, ramp_s: float = 0.01, clock: Callable[[], float] = time.monotonic
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
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    async def acquire(self) -> None:
        if not self._waiters and self.in_flight < int(self.limit):
            self._take()
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._schedule_ramp()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # the slot was ours already: pass it on
                self.in_flight -= 1
                self._wake()
            else:
                self._waiters.remove(waiter)
            raise

    def release(self, latency: float, overloaded: bool = False) -> None:
        saturated = bool(self._waiters) or self.in_flight >= int(self.limit)  # only a used limit grows
        self.in_flight -= 1
        if overloaded:
            self.refused += 1
            self._slow_start = False
            self.limit = max(1.0, self.limit - 1.0)
        else:
            fast = self._best is None or latency <= SLOW * self._best + 0.01
            self._best = latency if self._best is None else min(self._best, latency)
            if fast and saturated:
                self.limit = min(float(self.ceiling), self.limit + (1.0 if self._slow_start else 1.0 / self.limit))
        self._wake()

    def rebound(self, start: int, ceiling: int) -> None:
        """A new request's options: its ceiling holds from now on; what was learned is kept."""
        self.ceiling = max(1, ceiling)
        self.limit = min(self.limit, float(self.ceiling))
        if self._slow_start:
            self.limit = max(self.limit, float(min(max(1, start), self.ceiling)))

    def _take(self) -> None:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)

    def _wake(self) -> None:
        while self._waiters and self.in_flight < int(self.limit):
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._take()
                waiter.set_result(None)

    def _schedule_ramp(self) -> None:
        """In slow start, with callers waiting, double the limit every `ramp_s`."""
        if self._timer is not None or not self._slow_start or self.limit >= self.ceiling:
            return
        delay = max(0.0, self._last_ramp + self._ramp_s - self._clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self._ramp)

    def _ramp(self) -> None:
        self._timer = None
        if not self._slow_start or not self._waiters:
            return
        self.limit = min(float(self.ceiling), self.limit * 2)
        self._last_ramp = self._clock()
        self._wake()
        self._schedule_ramp()


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
