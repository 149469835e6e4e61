"""The channel variables the engine and the dialplan share, by name (the
dialplan templates spell the same names)."""

from __future__ import annotations

__all__ = [
    "AGENT",
    "CALL_ID",
    "CONSULT_DIAL",
    "CONSULT_TARGET",
    "ENQUEUED_AT",
    "LEASE_UNTIL",
    "LINE",
    "POSITION",
    "QUEUE",
]

CALL_ID = "HOTLINE_CALL_ID"  # the call's id, set at intake (recording file name)
LINE = "HOTLINE_LINE"  # the hotline line (DID) the caller dialled
QUEUE = "HOTLINE_QUEUE"  # the queue the caller waits in (the engine moves it)
ENQUEUED_AT = "HOTLINE_ENQUEUED_AT"  # first queue entry (epoch s): the 15 s clock
AGENT = "HOTLINE_AGENT"  # the agent the caller was connected to
LEASE_UNTIL = "HOTLINE_LEASE_UNTIL"  # the engine's lease on a waiting caller (epoch s)
POSITION = "HOTLINE_POSITION"  # "position,minutes" to announce to a waiting caller
CONSULT_DIAL = "HOTLINE_CONSULT_DIAL"  # what a consultation dials
CONSULT_TARGET = "HOTLINE_CONSULT_TARGET"  # whom a consultation calls (for the UserEvent)
