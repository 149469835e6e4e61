"""The work orders' configuration section ``[workorders]``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cti.config import ConfigError

from .calendar import Calendar, CalendarError, DeadlineRules

__all__ = ["WorkOrderConfig", "validate_workorders"]


def _guangdong() -> dict[str, Any]:
    return {
        "by_class": {"LIFE_SAFETY": {"minutes": 15}, "UTILITIES": {"minutes": 30}},
        "by_appeal": {
            "CONSULT": {"working_days": 2},
            "HELP": {"working_days": 10},
            "SUGGEST": {"working_days": 10},
            "COMPLAINT": {"working_days": 15},
            "REPORT": {"working_days": 15},
            "PRAISE": {"working_days": 10},
        },
        "default": {"working_days": 1},
    }


@dataclass(frozen=True)
class WorkOrderConfig:
    """Work orders and their sync with the city 12345 platform."""

    prefix: str = "GD"
    """Local order numbers: prefix + date + 6-digit day sequence."""
    city_adapter: str = "rest"
    """``rest`` (signed HTTPS + JSON, status pushed by webhook) or ``polling``
    (one endpoint per action, status pulled by time range)."""
    city_url: str = ""
    """The city platform's base URL; empty: no sync (orders stay local and
    the outbox waits, with an alarm)."""
    app_key: str = "district"
    secret: str = ""
    """Our HMAC secret at the city (``HOTLINE_CITY_SECRET``)."""
    token: str = ""
    """The polling platform's session token (``HOTLINE_CITY_TOKEN``)."""
    city_app_key: str = "city12345"
    city_secret: str = ""
    """The city's key for the webhooks it sends us (``HOTLINE_CITY_WEBHOOK_SECRET``)."""
    delivery_workers: int = 2
    """Outbox delivery tasks in the engine (0: only ``hotline workorders deliver``)."""
    lease_s: float = 30.0
    timeout_s: float = 10.0
    dead_after_h: float = 72.0
    """A message the city has not taken for this long becomes a dead letter."""
    dedup_window_h: float = 24.0
    """The city's de-duplication window: older CREATE retries look up first."""
    keep_delivered_days: int = 7
    poll_every_s: float = 30.0
    near_hours: float = 24.0
    """An open order this close to its deadline is near due (临期)."""
    holidays: tuple[str, ...] = ()
    """Public holidays, ``YYYY-MM-DD`` or ``A..B`` (the State Council's notice)."""
    workdays: tuple[str, ...] = ()
    """Make-up working days on weekends (调休)."""
    deadlines: Mapping[str, Any] = field(default_factory=_guangdong)
    """``{"by_class": {...}, "by_appeal": {...}, "default": {...}}``, each rule
    ``{"minutes": N}`` or ``{"working_days": N}``. Default: Guangdong's rules
    (consult 2 working days, help/suggest 10, complaint/report 15) with
    Tianjin-style minutes for life safety (15) and utilities (30)."""

    def calendar(self) -> Calendar:
        return Calendar.from_config(self.holidays, self.workdays)

    def rules(self) -> DeadlineRules:
        return DeadlineRules.from_config(self.deadlines, key="workorders.deadlines")


def validate_workorders(section: WorkOrderConfig) -> None:
    if not re.fullmatch(r"[A-Z]{1,8}", section.prefix):
        raise ConfigError("workorders.prefix", f"1 to 8 capital letters, got {section.prefix!r}")
    if section.city_adapter not in ("rest", "polling"):
        raise ConfigError(
            "workorders.city_adapter", f"expected 'rest' or 'polling', got {section.city_adapter!r}"
        )
    if section.city_url and not re.match(r"https?://", section.city_url):
        raise ConfigError(
            "workorders.city_url", f"expected an http(s) URL, got {section.city_url!r}"
        )
    if section.city_url and section.city_adapter == "rest" and not section.secret:
        raise ConfigError(
            "workorders.secret", "required for the rest adapter (HOTLINE_CITY_SECRET)"
        )
    if section.city_url and section.city_adapter == "polling" and not section.token:
        raise ConfigError(
            "workorders.token", "required for the polling adapter (HOTLINE_CITY_TOKEN)"
        )
    if section.delivery_workers > 32:
        raise ConfigError("workorders.delivery_workers", "at most 32")
    try:
        section.calendar()
    except CalendarError as exc:
        raise ConfigError("workorders.holidays", str(exc)) from None
    try:
        section.rules()
    except CalendarError as exc:
        raise ConfigError("workorders.deadlines", str(exc)) from None
