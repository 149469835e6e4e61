"""Call control's configuration section ``[control]``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cti.config import ConfigError

__all__ = ["ControlConfig", "validate_control"]


@dataclass(frozen=True)
class ControlConfig:
    """Call control from the agent desktop: transfers, consultations, holds."""

    transfer_ring_s: int = 30
    """How long a transfer, consultation or three-way leg rings before it
    counts as unanswered (the caller then comes back)."""
    agent_hold_max_s: int = 3600
    """The agent's leg is let go after this long on hold (the caller, alone,
    then goes on to the after-call step)."""
    conference_max_s: int = 7200
    """The dialplan's own deadline for a caller in the call's conference (hold,
    consultation, three-way call): without the engine, no caller stays there
    longer than this."""
    city_center_number: str = "12345"
    """Where "transfer to the city 12345 centre" (电话互转) dials, through the trunk."""
    external_number_pattern: str = r"1[3-9]\d{9}|0[1-9]\d{8,10}|[1-9]\d{4,7}"
    """Outside numbers an agent may transfer to or add to a call (full match):
    mobiles, numbers with an area code (no international 00), local numbers. Guards against
    toll fraud from a stolen desktop session."""
    transfer_prefer_s: float = 20.0
    """A call transferred to a busy agent waits this long for that agent."""


def validate_control(control: ControlConfig) -> None:
    """Raise ConfigError naming the bad key of ``[control]``."""
    if not control.transfer_ring_s > 0:
        raise ConfigError(
            "control.transfer_ring_s", f"must be > 0, got {control.transfer_ring_s!r}"
        )
    if not control.conference_max_s > 0:
        raise ConfigError(
            "control.conference_max_s", f"must be > 0, got {control.conference_max_s!r}"
        )
    if not control.agent_hold_max_s > 0:
        raise ConfigError(
            "control.agent_hold_max_s", f"must be > 0, got {control.agent_hold_max_s!r}"
        )
    if not control.city_center_number.isdigit():
        raise ConfigError(
            "control.city_center_number",
            f"must be digits, got {control.city_center_number!r}",
        )
    try:
        re.compile(control.external_number_pattern)
    except re.error as exc:
        raise ConfigError(
            "control.external_number_pattern", f"not a regular expression: {exc}"
        ) from None
