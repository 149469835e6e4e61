"""Exponential backoff with jitter, and the one retry loop built on it.

The backoff is a pure value object: ``compute(failures)`` maps a failure count
to a delay, with the randomness injected, so tests pin it exactly. The retry
loop is shared by the AMI reconnect supervisor, outbox delivery and callback
retries, so every retrier in the engine backs off the same, documented way.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

__all__ = ["Backoff", "retry_forever"]


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with proportional jitter.

    The ceiling for the ``n``-th consecutive failure is
    ``min(cap_s, base_s * factor ** (n - 1))``. ``jitter`` is the fraction of
    that ceiling that is randomised: the delay is drawn uniformly from
    ``[ceiling * (1 - jitter), ceiling]``.

    * ``jitter=0``: deterministic delays (tests);
    * ``jitter=0.5`` (default): AWS "equal jitter" -- at least half the ceiling,
      so retries never collapse to zero, yet many clients restarting together
      (every agent desk after an Asterisk restart) are spread out;
    * ``jitter=1``: "full jitter", uniform in ``[0, ceiling]``.
    """

    base_s: float = 0.5
    cap_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.base_s < 0:
            raise ValueError(f"Backoff.base_s must be >= 0, got {self.base_s!r}")
        if self.cap_s < self.base_s:
            raise ValueError(f"Backoff.cap_s ({self.cap_s!r}) must be >= base_s ({self.base_s!r})")
        if self.factor < 1:
            raise ValueError(f"Backoff.factor must be >= 1, got {self.factor!r}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"Backoff.jitter must be within [0, 1], got {self.jitter!r}")

    def ceiling(self, failures: int) -> float:
        """The un-jittered delay for ``failures`` consecutive failures (>= 1)."""
        if failures < 1:
            raise ValueError(f"failures must be >= 1, got {failures!r}")
        if self.base_s == 0:
            return 0.0
        if self.factor == 1:
            return min(self.cap_s, self.base_s)
        # Compare exponents instead of computing factor ** n: after a long
        # outage n is large and the power would overflow a float.
        exponent_to_cap = math.log(self.cap_s / self.base_s, self.factor)
        if failures - 1 >= exponent_to_cap:
            return self.cap_s
        return min(self.cap_s, self.base_s * self.factor ** (failures - 1))

    def compute(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after ``failures`` consecutive failures (``failures >= 1``).

        Pure given ``rand`` (a callable returning a float in ``[0, 1)``).
        """
        ceiling = self.ceiling(failures)
        return ceiling * (1.0 - self.jitter * rand())


async def retry_forever(
    attempt: Callable[[], Awaitable[T]],
    *,
    backoff: Backoff,
    on_failure: Callable[[int, BaseException, float], None] | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> T:
    """Await ``attempt()`` until it returns, backing off between failures.

    After each failed attempt (any ``Exception``; cancellation and
    ``KeyboardInterrupt``/``SystemExit`` propagate at once) ``on_failure`` is
    called with ``(consecutive_failures, exception, delay_s)`` -- the place to
    log -- and then ``sleep(delay_s)`` is awaited. An exception raised by
    ``on_failure`` propagates: it is the caller's bug, not a transient fault.
    """
    failures = 0
    while True:
        try:
            return await attempt()
        except Exception as exc:
            failures += 1
            delay_s = backoff.compute(failures)
            if on_failure is not None:
                on_failure(failures, exc, delay_s)
            await sleep(delay_s)
