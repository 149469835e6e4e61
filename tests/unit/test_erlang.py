"""Unit tests for acd.erlang: Erlang B/C staffing arithmetic."""

from __future__ import annotations

import math

import pytest

from acd.erlang import (
    agents_needed,
    average_speed_of_answer,
    erlang_b,
    erlang_c,
    service_level,
    traffic_erlangs,
)


def test_domain_figures_200_calls_per_hour_need_29_agents() -> None:
    # A = 200 * 400 / 3600 = 22.22 erlangs. Computed: 28 agents -> 86.03 %, 29 -> 90.70 %.
    assert agents_needed(200, 400, 15, 0.90) == 29
    assert service_level(28, 200, 400, 15) == pytest.approx(0.8603, abs=0.001)
    assert service_level(29, 200, 400, 15) == pytest.approx(0.9070, abs=0.001)


def test_domain_figures_1000_calls_per_hour_need_124_and_one_less_costs_2_points() -> None:
    # A = 1000 * 400 / 3600 = 111.11 erlangs. Computed with the Erlang B recursion:
    # 124 agents -> C = 0.1602, SL = 90.12 %; 123 agents -> C = 0.1896, SL = 87.86 %.
    assert agents_needed(1000, 400, 15, 0.90) == 124
    assert service_level(124, 1000, 400, 15) == pytest.approx(0.901, abs=0.001)
    assert service_level(123, 1000, 400, 15) == pytest.approx(0.879, abs=0.001)
    assert erlang_c(124, traffic_erlangs(1000, 400)) == pytest.approx(0.1602, abs=0.0005)


def test_small_systems_match_closed_forms() -> None:
    # M/M/2 at 1 erlang: B = 0.2, C = 1/3. M/M/1: C = utilisation.
    assert erlang_b(2, 1.0) == pytest.approx(0.2)
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(1, 0.5) == pytest.approx(0.5)
    # M/M/1, 6 calls/h of 300 s (rho = 0.5): SL(t) = 1 - rho * exp(-(1 - rho) t / aht).
    assert service_level(1, 6, 300, 60) == pytest.approx(1 - 0.5 * math.exp(-0.5 * 60 / 300))
    # ASA = rho * aht / (1 - rho) = 300 s.
    assert average_speed_of_answer(1, 6, 300) == pytest.approx(300.0)


def test_unstable_or_empty_queues() -> None:
    assert erlang_c(10, 10.0) == 1.0
    assert erlang_c(5, 7.5) == 1.0
    assert erlang_c(0, 0.0) == 1.0
    assert erlang_c(3, 0.0) == 0.0
    assert service_level(111, 1000, 400, 15) == 0.0  # 111 agents < 111.1 erlangs
    assert service_level(0, 0, 400, 15) == 1.0
    assert average_speed_of_answer(111, 1000, 400) == math.inf
    assert average_speed_of_answer(5, 0, 400) == 0.0
    assert agents_needed(0, 400, 15, 0.9) == 0


def test_asa_at_1000_calls_per_hour() -> None:
    # C(124, 111.11) * 400 / (124 - 111.11) = 0.1602 * 31.03 = 4.97 s.
    assert average_speed_of_answer(124, 1000, 400) == pytest.approx(4.97, abs=0.01)


def test_stable_for_thousands_of_agents() -> None:
    # 1,500-seat centre: 12,000 calls/h at 400 s is 1,333 erlangs; A^N / N! would overflow.
    needed = agents_needed(12_000, 400, 15, 0.90)
    assert 1_334 <= needed <= 1_400
    assert service_level(needed, 12_000, 400, 15) >= 0.90
    assert service_level(needed - 1, 12_000, 400, 15) < 0.90
    probability = erlang_c(5_000, 4_900.0)
    assert 0.0 < probability < 1.0


@pytest.mark.parametrize("calls_per_hour", [10, 60, 200, 450, 1000, 3000])
def test_agents_needed_is_the_smallest_that_meets_the_target(calls_per_hour: float) -> None:
    needed = agents_needed(calls_per_hour, 400, 15, 0.90)
    assert service_level(needed, calls_per_hour, 400, 15) >= 0.90
    assert service_level(needed - 1, calls_per_hour, 400, 15) < 0.90


def test_service_level_rises_with_agents_and_target_time() -> None:
    levels = [service_level(n, 1000, 400, 15) for n in range(112, 140)]
    assert levels == sorted(levels)
    assert service_level(124, 1000, 400, 30) > service_level(124, 1000, 400, 15)


def test_invalid_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        agents_needed(100, 400, 15, 1.0)
    with pytest.raises(ValueError):
        erlang_c(-1, 2.0)
    with pytest.raises(ValueError):
        service_level(3, -5, 400, 15)
    with pytest.raises(ValueError):
        service_level(3, 5, 400, -1)
