"""The channel variables the engine and the dialplan share, by name (the
dialplan templates spell the same names)."""

from __future__ import annotations

__all__ = [
    "AGENT",
    "CALL_ID",
    "RECORDING",
    "RECORDING_AT",
    "RECORDING_DIR",
    "CONSULT_DIAL",
    "CONSULT_TARGET",
    "ENQUEUED_AT",
    "LEASE_UNTIL",
    "LINE",
    "POSITION",
    "QUEUE",
]

CALL_ID = "HOTLINE_CALL_ID"  # the call's id, set at intake (recording file name)
RECORDING = "HOTLINE_RECORDING"  # the call's raw recording (the mix), on the caller
RECORDING_AT = "HOTLINE_RECORDING_AT"  # when MixMonitor started on the caller (epoch s)
RECORDING_DIR = "HOTLINE_RECORDING_DIR"  # global: where the stack's Asterisk records
LINE = "HOTLINE_LINE"  # the hotline line (DID) the caller dialled
QUEUE = "HOTLINE_QUEUE"  # the queue the caller waits in (the engine moves it)
ENQUEUED_AT = "HOTLINE_ENQUEUED_AT"  # first queue entry (epoch s): the 15 s clock
AGENT = "HOTLINE_AGENT"  # the agent the caller was connected to
LEASE_UNTIL = "HOTLINE_LEASE_UNTIL"  # the engine's lease on a waiting caller (epoch s)
POSITION = "HOTLINE_POSITION"  # "position,minutes" to announce to a waiting caller
CONSULT_DIAL = "HOTLINE_CONSULT_DIAL"  # what a consultation dials
CONSULT_TARGET = "HOTLINE_CONSULT_TARGET"  # whom a consultation calls (for the UserEvent)
