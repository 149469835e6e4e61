from __future__ import annotations

from acd.presence import Presence
from cti import events as ev
from cti.call_printer import mask_number


def test_presence_from_contact_status_and_device_state_list():
    presence = Presence(["1001", "1002"])
    assert (
        presence.contact_status(
            *ev.contact_status(
                {"Event": "ContactStatus", "AOR": "1001", "ContactStatus": "Created"}
            )
        )
        is True
    )
    assert (
        presence.contact_status(
            *ev.contact_status(
                {"Event": "ContactStatus", "AOR": "9999", "ContactStatus": "Created"}
            )
        )
        is False
    )
    assert presence.registered == {"1001"}
    assert (
        presence.contact_status(
            *ev.contact_status(
                {"Event": "ContactStatus", "AOR": "1001", "ContactStatus": "Removed"}
            )
        )
        is True
    )
    held = presence.registered  # the ACD service's presence check holds the set
    presence.resync(
        ev.device_state(row)
        for row in [
            {"Device": "PJSIP/1001", "State": "NOT_INUSE"},
            {"Device": "PJSIP/1002", "State": "UNAVAILABLE"},
            {"Device": "Queue:x", "State": "NOT_INUSE"},
        ]
    )
    assert presence.registered == {"1001"}
    assert held is presence.registered  # rebuilt in place, never replaced


def test_mask_number_keeps_prefix_and_last_four():
    assert mask_number("13800138000") == "138****8000"
    assert mask_number("057112345678") == "057*****5678"
    assert mask_number("12345") == "*****"
