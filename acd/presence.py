"""Which agent softphones are registered (pure).

Live from ``ContactStatus`` events; rebuilt on (re)connect from a
``DeviceStateList`` reply, where an endpoint whose device state is
``UNAVAILABLE`` has no registered contact.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

_UP = {"Created", "Reachable", "Updated", "NonQualified", "Unknown"}
_DOWN = {"Removed", "Unreachable"}


class Presence:
    def __init__(self, agents: Collection[str]) -> None:
        self.agents = set(agents)
        self.registered: set[str] = set()

    def contact_status(self, aor: str, status: str) -> bool:
        """A PJSIP contact of *aor* changed (``ContactStatus``); True if the
        registered set changed."""
        if aor not in self.agents:
            return False
        before = aor in self.registered
        if status in _UP:
            self.registered.add(aor)
        elif status in _DOWN:
            self.registered.discard(aor)
        return before != (aor in self.registered)

    def resync(self, device_states: Iterable[tuple[str, str]]) -> None:
        """Rebuild from the (device, state) pairs of a DeviceStateList reply."""
        registered = set()
        for device, state in device_states:
            if not device.startswith("PJSIP/"):
                continue
            endpoint = device[len("PJSIP/") :]
            if endpoint in self.agents and state not in ("UNAVAILABLE", "INVALID", "UNKNOWN"):
                registered.add(endpoint)
        # In place: whoever holds the set (the ACD service's presence check) sees it.
        self.registered.clear()
        self.registered.update(registered)
