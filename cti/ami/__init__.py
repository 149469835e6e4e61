"""Hardened Asterisk Manager Interface link, built on panoramisk.

``AMILink`` is what the engine uses; the framing functions are pure and
reusable (transcript replay, tests); ``HardenedAMIProtocol`` is panoramisk's
``AMIProtocol`` with the five known defects of panoramisk 1.4 fixed (split
UTF-8, fatal malformed messages, unchecked pings, unordered fire-and-forget
callbacks, actions without timeout that are resent after a reconnect).
"""

from __future__ import annotations

from .errors import (
    AMIActionTimeout,
    AMIDisconnected,
    AMIError,
    AMILoginFailed,
    AMINotConnected,
)
from .framing import (
    BANNER_PREFIX,
    FrameBuffer,
    MalformedMessage,
    MessageParser,
    OversizeMessage,
    encode_action,
    ends_event_list,
    parse_message,
    starts_event_list,
)
from .link import (
    AMILink,
    ConnectHandler,
    DisconnectHandler,
    EventHandler,
    HandlerFailure,
    RetryWait,
)
from .message import AmiMessage
from .protocol import AMIStats, EventBacklog, HardenedAMIProtocol, PendingAction

__all__ = [
    "BANNER_PREFIX",
    "AmiMessage",
    "AMIActionTimeout",
    "AMIDisconnected",
    "AMIError",
    "AMILink",
    "AMILoginFailed",
    "AMINotConnected",
    "AMIStats",
    "ConnectHandler",
    "DisconnectHandler",
    "EventBacklog",
    "EventHandler",
    "FrameBuffer",
    "HandlerFailure",
    "HardenedAMIProtocol",
    "MalformedMessage",
    "MessageParser",
    "OversizeMessage",
    "PendingAction",
    "RetryWait",
    "encode_action",
    "ends_event_list",
    "parse_message",
    "starts_event_list",
]
