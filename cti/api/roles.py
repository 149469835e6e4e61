"""Who may do what: the three roles, and what each sees of a caller."""

from __future__ import annotations

from enum import Enum

__all__ = ["Role", "mask_number"]


class Role(Enum):
    """An account's role. Supervisors and admins act on any agent; an agent
    only on itself and its own calls."""

    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"

    # Members are singletons compared by identity.
    __hash__ = object.__hash__

    @property
    def manages_agents(self) -> bool:
        return self is not Role.AGENT


def mask_number(number: str, *, visible: bool) -> str:
    """A caller number as a role may see it.

    Masked, a number keeps its first three and last four digits
    (``138****8000``); shorter numbers keep only their last two. Leaking a
    caller's number is a breach of the hotline contract (DOMAIN.md).
    """
    if visible or not number:
        return number
    if len(number) >= 8:
        return number[:3] + "*" * (len(number) - 7) + number[-4:]
    return "*" * max(len(number) - 2, 1) + number[-2:]
