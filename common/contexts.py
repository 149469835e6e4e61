"""The dialplan contexts the Python code names, spelled once.

Each is defined in ``config/asterisk/extensions.conf.tmpl`` (the entry
context of a line is chosen in ``extensions_line.conf.tmpl``); the comments
here say what the context does for the engine, the template says how.
"""

from __future__ import annotations

__all__ = [
    "AFTER_CALL",
    "AFTER_CALL_CONTEXTS",
    "AGENT_HOLD",
    "APP_QUEUE",
    "APP_QUEUE_CONTEXTS",
    "CALLBACK",
    "CONFERENCE",
    "CONNECT",
    "CONSULT",
    "FALLBACK",
    "HOLD",
    "HOLD_CONTEXTS",
    "INTAKE",
    "MOVED_CONTEXTS",
    "RELEASE",
    "REQUEUE",
    "TRANSFER_OUT",
]

# -- the caller's way to an agent --------------------------------------------------

# First queue entry after the greeting: starts the 15 s clock and the first lease.
INTAKE = "hotline-intake"
# Music on hold while the engine chooses; falls back when the engine's lease runs out.
HOLD = "hotline-hold"
# The engine missed its lease or the hard cap: Asterisk's app_queue takes the caller.
FALLBACK = "hotline-fallback"
# Entry of a line routed by app_queue instead of the engine (the benchmark's peer).
APP_QUEUE = "hotline-appqueue"
# The engine chose an agent (the extension is the agent): record and ring it.
CONNECT = "hotline-connect"
# The estimated wait is too long: the caller is offered a callback and let go.
CALLBACK = "hotline-callback"
# The agent hung up first and the caller is still there: the post-call survey.
AFTER_CALL = "hotline-after-call"

# -- call control from the agent's desktop -----------------------------------------

# The call's ConfBridge, entered at the first hold, consultation or three-way call.
CONFERENCE = "hotline-conference"
# The agent's leg while the caller is on hold: silence, with a deadline.
AGENT_HOLD = "hotline-agent-hold"
# The agent's leg dials a consultation target while the caller waits in the conference.
CONSULT = "hotline-consult"
# A leg the engine is done with (the agent after completing a transfer): hung up.
RELEASE = "hotline-release"
# Blind transfer out through the trunk; unanswered, back to the queue.
TRANSFER_OUT = "hotline-transfer-out"
# Back to the queue (HOTLINE_QUEUE) with a fresh lease, keeping the first entry time.
REQUEUE = "hotline-requeue"

# -- groups ------------------------------------------------------------------------

# Where a caller waiting for a human sits (the call model and resync read it).
HOLD_CONTEXTS = frozenset({INTAKE, HOLD, FALLBACK})
# Where a caller sits after the talk.
AFTER_CALL_CONTEXTS = frozenset({AFTER_CALL})
# Where call control parks an agent's leg away from the caller (on hold, in a
# consultation): still the agent's call.
MOVED_CONTEXTS = frozenset({AGENT_HOLD, CONSULT})
# Where Asterisk's app_queue, not the engine, is serving the caller.
APP_QUEUE_CONTEXTS = frozenset({FALLBACK, APP_QUEUE})
