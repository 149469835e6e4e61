"""Erlang C staffing arithmetic (pure).

The M/M/N queue behind every call-centre staffing table: Poisson arrivals,
exponential handling times, N identical agents, callers wait without giving up.
Erlang C is computed from the Erlang B recursion

    B(0) = 1,   B(n) = A·B(n-1) / (n + A·B(n-1))
    C(N) = N·B(N) / (N - A·(1 - B(N)))

which stays within [0, 1] at every step, so it is exact enough and cannot
overflow for thousands of agents (the textbook formula with A^N / N! overflows a
float near N = 170).

Units: ``calls_per_hour`` arrivals, ``aht_s`` average handling time (talk +
wrap-up) in seconds, ``target_s`` the answer-time target (15 s on 12345 lines).
The offered traffic in erlangs is ``A = calls_per_hour * aht_s / 3600``.
"""

from __future__ import annotations

import math

SECONDS_PER_HOUR = 3600.0


def traffic_erlangs(calls_per_hour: float, aht_s: float) -> float:
    """Offered traffic A in erlangs (agent-hours of work arriving per hour)."""
    if calls_per_hour < 0 or aht_s < 0:
        raise ValueError(f"calls_per_hour and aht_s must be >= 0, got {calls_per_hour}, {aht_s}")
    return calls_per_hour * aht_s / SECONDS_PER_HOUR


def erlang_b(agents: int, traffic_erlangs: float) -> float:
    """Blocking probability of an M/M/N/N system, by the stable recursion."""
    if agents < 0 or traffic_erlangs < 0:
        raise ValueError(f"agents and traffic must be >= 0, got {agents}, {traffic_erlangs}")
    blocking = 1.0
    for n in range(1, agents + 1):
        blocking = traffic_erlangs * blocking / (n + traffic_erlangs * blocking)
    return blocking


def _erlang_c_from_b(agents: int, traffic: float, blocking: float) -> float:
    return agents * blocking / (agents - traffic * (1.0 - blocking))


def erlang_c(agents: int, traffic_erlangs: float) -> float:
    """Probability that a caller has to wait (Erlang C).

    1.0 when ``agents <= traffic_erlangs``: the queue is unstable and in the
    steady state every caller waits.
    """
    if agents < 0 or traffic_erlangs < 0:
        raise ValueError(f"agents and traffic must be >= 0, got {agents}, {traffic_erlangs}")
    if agents <= traffic_erlangs:
        return 1.0
    if traffic_erlangs == 0:
        return 0.0
    return _erlang_c_from_b(agents, traffic_erlangs, erlang_b(agents, traffic_erlangs))


def _service_level_from_c(
    agents: int, traffic: float, wait_probability: float, aht_s: float, target_s: float
) -> float:
    return 1.0 - wait_probability * math.exp(-(agents - traffic) * target_s / aht_s)


def service_level(agents: int, calls_per_hour: float, aht_s: float, target_s: float) -> float:
    """P(a caller is answered within ``target_s``) with ``agents`` agents (Erlang C).

    ``1 - C(N, A) * exp(-(N - A) * target_s / aht_s)``. 0.0 when
    ``agents <= A`` (the queue grows without bound, so in the steady state nobody
    is answered in time); 1.0 when no calls arrive.
    """
    if target_s < 0:
        raise ValueError(f"target_s must be >= 0, got {target_s}")
    traffic = traffic_erlangs(calls_per_hour, aht_s)
    if traffic == 0:
        return 1.0
    if agents <= traffic:
        return 0.0
    return _service_level_from_c(agents, traffic, erlang_c(agents, traffic), aht_s, target_s)


def agents_needed(calls_per_hour: float, aht_s: float, target_s: float, target_rate: float) -> int:
    """Fewest agents whose Erlang C service level within ``target_s`` is >= ``target_rate``.

    0 when no calls arrive. The Erlang B value is carried from one candidate N
    to the next, so the search costs O(N) in total, not O(N^2).
    """
    if not 0.0 <= target_rate < 1.0:
        # 100 % is never reached by Erlang C with any finite staff.
        raise ValueError(f"target_rate must be in [0, 1), got {target_rate}")
    if target_s < 0:
        raise ValueError(f"target_s must be >= 0, got {target_s}")
    traffic = traffic_erlangs(calls_per_hour, aht_s)
    if traffic == 0:
        return 0
    agents = math.floor(traffic) + 1  # the smallest stable staff
    blocking = erlang_b(agents, traffic)
    while True:
        wait_probability = _erlang_c_from_b(agents, traffic, blocking)
        level = _service_level_from_c(agents, traffic, wait_probability, aht_s, target_s)
        if level >= target_rate:
            return agents
        agents += 1
        blocking = traffic * blocking / (agents + traffic * blocking)


def average_speed_of_answer(agents: int, calls_per_hour: float, aht_s: float) -> float:
    """Expected wait over all callers (ASA), ``C(N, A) * aht_s / (N - A)``, in seconds.

    ``math.inf`` when ``agents <= A``; 0.0 when no calls arrive.
    """
    traffic = traffic_erlangs(calls_per_hour, aht_s)
    if traffic == 0:
        return 0.0
    if agents <= traffic:
        return math.inf
    return erlang_c(agents, traffic) * aht_s / (agents - traffic)
