"""Which agent softphones are registered (pure).

Live from ``ContactStatus`` events; rebuilt on (re)connect from a
``DeviceStateList`` reply, where an endpoint whose device state is
``UNAVAILABLE`` has no registered contact.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

_UP = {"Created", "Reachable", "Updated", "NonQualified", "Unknown"}
_DOWN = {"Removed", "Unreachable"}


class Presence:
    def __init__(self, agents: Collection[str]) -> None:
        self.agents = set(agents)
        self.registered: set[str] = set()

    def apply(self, event: Mapping[str, Any]) -> bool:
        """Apply one AMI event; True if the registered set changed."""
        if event.get("Event") != "ContactStatus":
            return False
        aor = str(event.get("AOR") or event.get("Aor") or "")
        status = str(event.get("ContactStatus", ""))
        if aor not in self.agents:
            return False
        before = aor in self.registered
        if status in _UP:
            self.registered.add(aor)
        elif status in _DOWN:
            self.registered.discard(aor)
        return before != (aor in self.registered)

    def resync(self, device_states: Iterable[Mapping[str, Any]]) -> None:
        """Rebuild from ``DeviceStateChange`` rows of a DeviceStateList reply."""
        registered = set()
        for row in device_states:
            device = str(row.get("Device", ""))
            if not device.startswith("PJSIP/"):
                continue
            endpoint = device[len("PJSIP/") :]
            if endpoint in self.agents and row.get("State") not in (
                "UNAVAILABLE",
                "INVALID",
                "UNKNOWN",
            ):
                registered.add(endpoint)
        # In place: whoever holds the set (the ACD service's presence check) sees it.
        self.registered.clear()
        self.registered.update(registered)
