"""One console line of live KPIs (the demo's and serve's view of acd.sla)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from acd.runner import AcdRunner


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100.0 * value:.1f} %"


def _secs(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def kpi_line(acd: AcdRunner, *, window: str = "15m") -> str:
    """15 s rate both ways, answer/abandon rates, ASA, waiting now, agents by state."""
    now = acd.clock()
    w = acd.tracker.window(window, now=now)
    waiting, longest = acd.tracker.waiting_now(now=now)
    states = acd.acd.agents_by_state()
    agents = ", ".join(f"{state.name.lower()} {count}" for state, count in states.items() if count)
    return (
        f"KPI {window}: offered {w.offered}, answered {w.answered}, "
        f"15s rate {_pct(w.rate_15s)} (÷offered-short) / {_pct(w.rate_15s_of_answered)} "
        f"(÷answered), answer {_pct(w.answer_rate)}, abandon {_pct(w.abandon_rate)}, "
        f"ASA {_secs(w.asa_s)}, avg talk {_secs(w.avg_talk_s)} (target {w.talk_target_s:.0f} s); "
        f"waiting {waiting} (longest {longest:.0f} s); agents: {agents or 'none'}"
    )
