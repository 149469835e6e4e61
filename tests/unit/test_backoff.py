"""Unit tests for common.backoff: the pure Backoff and the shared retry loop."""

from __future__ import annotations

import asyncio

import pytest

from common.backoff import Backoff, retry_forever


def test_delays_double_up_to_the_cap_without_jitter() -> None:
    backoff = Backoff(base_s=0.5, cap_s=30.0, factor=2.0, jitter=0.0)
    delays = [backoff.compute(n) for n in range(1, 10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_jitter_is_a_fraction_of_the_ceiling() -> None:
    backoff = Backoff(base_s=1.0, cap_s=100.0, factor=2.0, jitter=0.5)
    # rand() == 0 -> the ceiling itself; rand() -> 1 -> ceiling * (1 - jitter).
    assert backoff.compute(3, rand=lambda: 0.0) == 4.0
    assert backoff.compute(3, rand=lambda: 0.5) == 3.0
    assert backoff.compute(3, rand=lambda: 0.999999) == pytest.approx(2.0, abs=1e-5)


def test_full_jitter_spans_zero_to_ceiling() -> None:
    backoff = Backoff(base_s=1.0, cap_s=8.0, jitter=1.0)
    assert backoff.compute(4, rand=lambda: 0.0) == 8.0
    assert backoff.compute(4, rand=lambda: 0.75) == 2.0


def test_compute_is_pure_given_rand() -> None:
    backoff = Backoff()
    values = iter([0.1, 0.9, 0.1, 0.9])
    first = [backoff.compute(2, rand=lambda: next(values)) for _ in range(2)]
    second = [backoff.compute(2, rand=lambda: next(values)) for _ in range(2)]
    assert first == second


def test_default_random_delays_stay_within_bounds() -> None:
    backoff = Backoff(base_s=0.5, cap_s=30.0, jitter=0.5)
    for failures in range(1, 20):
        ceiling = backoff.ceiling(failures)
        for _ in range(50):
            assert ceiling * 0.5 <= backoff.compute(failures) <= ceiling


def test_huge_failure_count_does_not_overflow() -> None:
    backoff = Backoff(base_s=0.5, cap_s=30.0, jitter=0.0)
    assert backoff.compute(10_000) == 30.0
    assert backoff.compute(10**9) == 30.0


def test_factor_one_and_zero_base() -> None:
    assert Backoff(base_s=2.0, factor=1.0, jitter=0.0).compute(50) == 2.0
    assert Backoff(base_s=0.0, cap_s=0.0, jitter=0.0).compute(3) == 0.0


@pytest.mark.parametrize("failures", [0, -1])
def test_failures_must_be_positive(failures: int) -> None:
    with pytest.raises(ValueError, match="failures"):
        Backoff().compute(failures)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_s": -1.0},
        {"base_s": 5.0, "cap_s": 1.0},
        {"factor": 0.5},
        {"jitter": 1.5},
        {"jitter": -0.1},
    ],
)
def test_invalid_parameters_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


def test_backoff_is_frozen() -> None:
    backoff = Backoff()
    with pytest.raises(AttributeError):
        backoff.base_s = 1.0  # type: ignore[misc]


class FakeSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay_s: float) -> None:
        self.delays.append(delay_s)


async def test_retry_forever_returns_first_success_and_reports_failures() -> None:
    outcomes: list[BaseException | str] = [OSError("refused"), TimeoutError("slow"), "ok"]
    failures: list[tuple[int, str, float]] = []
    sleep = FakeSleep()

    async def attempt() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    result = await retry_forever(
        attempt,
        backoff=Backoff(base_s=0.1, cap_s=10.0, jitter=0.0),
        on_failure=lambda n, exc, delay: failures.append((n, str(exc), delay)),
        sleep=sleep,
    )
    assert result == "ok"
    assert failures == [(1, "refused", 0.1), (2, "slow", 0.2)]
    assert sleep.delays == [0.1, 0.2]


async def test_retry_forever_without_failures_never_sleeps() -> None:
    sleep = FakeSleep()

    async def attempt() -> int:
        return 42

    assert await retry_forever(attempt, backoff=Backoff(), sleep=sleep) == 42
    assert sleep.delays == []


async def test_retry_forever_lets_cancellation_through() -> None:
    calls: list[int] = []
    sleep = FakeSleep()

    async def attempt() -> None:
        calls.append(1)
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await retry_forever(
            attempt,
            backoff=Backoff(),
            on_failure=lambda *args: pytest.fail("cancellation is not a failure"),
            sleep=sleep,
        )
    assert calls == [1]
    assert sleep.delays == []


async def test_retry_forever_is_cancellable_while_sleeping() -> None:
    started = asyncio.Event()

    async def attempt() -> None:
        raise OSError("down")

    async def sleep(delay_s: float) -> None:
        started.set()
        await asyncio.Future()  # never completes: only cancellation ends it

    task = asyncio.create_task(retry_forever(attempt, backoff=Backoff(), sleep=sleep))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_retry_forever_uses_the_backoff_jitter_by_default() -> None:
    sleep = FakeSleep()
    remaining = [OSError()] * 5

    async def attempt() -> str:
        if remaining:
            raise remaining.pop()
        return "done"

    backoff = Backoff(base_s=1.0, cap_s=4.0, jitter=0.5)
    await retry_forever(attempt, backoff=backoff, sleep=sleep)
    ceilings = [1.0, 2.0, 4.0, 4.0, 4.0]
    assert len(sleep.delays) == 5
    for delay, ceiling in zip(sleep.delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
