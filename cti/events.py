"""Normalized AMI events: a header mapping in, a typed frozen dataclass out.

This is the only place that knows AMI header spellings. The call model and
everything above it work on the dataclasses below, so a header Asterisk renames
between versions is fixed here once.

Input is any mapping of header -> value: a panoramisk ``Message`` (a
case-insensitive dict) or a plain dict using Asterisk's exact header names. A
header Asterisk repeats arrives as a list of values in order. That happens in
practice: a ``UserEvent`` carries the channel snapshot (``Priority: 3``, the
dialplan priority) *and* the user's own headers (``Priority: 0``, the queue
priority), so snapshot fields read the first value and user-event fields the
last.

:func:`normalize` returns ``None`` for messages the model does not use
(responses, unknown events) and raises :class:`MalformedEvent` for a known
event it cannot use (no ``Uniqueid``, no time at all); callers log and skip it.

Times: with ``timestampevents = yes`` every event carries ``Timestamp:
<epoch>.<micro>``, the moment Asterisk raised it. All times come from there so
that replaying a transcript gives the same numbers as the live run; the
caller's receive time is only a fallback for messages without one
(``CoreShowChannel`` list items, older configurations).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AmiEvent",
    "AttendedTransfer",
    "BlindTransfer",
    "BridgeCreate",
    "BridgeDestroy",
    "BridgeEnter",
    "BridgeLeave",
    "ChannelInfo",
    "CoreShowChannel",
    "DialBegin",
    "DialEnd",
    "Hangup",
    "HangupRequest",
    "HotlineConnect",
    "HotlineDialResult",
    "HotlineEnqueue",
    "HotlineFallback",
    "KNOWN_EVENTS",
    "MalformedEvent",
    "MixMonitor",
    "MusicOnHold",
    "NewCallerid",
    "Newchannel",
    "Newstate",
    "Rename",
    "channel_endpoint",
    "channel_tech",
    "normalize",
    "parse_duration",
    "parse_timestamp",
]

# Asterisk prints this for an absent caller id / connected line.
UNKNOWN = "<unknown>"
# "PJSIP/1001-0000002a": the driver appends "-" and 8 hex digits to the endpoint.
_CHANNEL_SEQUENCE = re.compile(r"-[0-9a-fA-F]{8}$")
# Local channels are "Local/<exten>@<context>-<seq>;1" (or ";2").
_LOCAL_HALF = re.compile(r";[12]$")


class MalformedEvent(ValueError):
    """A known event that lacks what the model needs; it is logged and skipped."""

    def __init__(self, event: str, reason: str) -> None:
        super().__init__(f"{event}: {reason}")
        self.event = event
        self.reason = reason


def channel_tech(name: str) -> str:
    """The channel driver of a channel name: ``"PJSIP/1001-00000001"`` -> ``"PJSIP"``."""
    tech, sep, _ = name.partition("/")
    return tech if sep else ""


def channel_endpoint(name: str) -> str:
    """The endpoint (device) part of a channel name, the key agents and trunks use.

    ``"PJSIP/1001-00000001"`` -> ``"1001"``, ``"PJSIP/trunk-00000000"`` ->
    ``"trunk"``; a Local channel ``"Local/1001@hotline-agent-0000000a;2"`` ->
    ``"1001@hotline-agent"`` (a Local half is not the agent's phone, so it must
    never compare equal to ``"1001"``). Masquerade decorations (``<ZOMBIE>``,
    ``AsyncGoto/`` prefixes) are dropped. A name without a driver is returned as is.
    """
    name = name.split("<", 1)[0]
    if name.startswith("AsyncGoto/"):
        name = name[len("AsyncGoto/") :]
    _, sep, rest = name.partition("/")
    if not sep:
        return name
    rest = _LOCAL_HALF.sub("", rest)
    return _CHANNEL_SEQUENCE.sub("", rest)


def parse_timestamp(value: Any) -> float | None:
    """``"1795237408.414539"`` -> epoch seconds, or ``None`` when absent or unusable."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return None
    try:
        at = float(str(value).strip())
    except ValueError:
        return None
    return at if math.isfinite(at) and at >= 0 else None


def parse_duration(value: Any) -> int:
    """``CoreShowChannel`` ``Duration`` (``"HH:MM:SS"``; hours may exceed 99) -> seconds.

    0 when absent or unusable: an adopted channel then counts as brand new.
    """
    if isinstance(value, list):
        value = value[0] if value else ""
    parts = str(value or "").strip().split(":")
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        return 0
    seconds = 0
    for number in numbers:
        seconds = seconds * 60 + number
    return max(seconds, 0)


def _first(message: Mapping[str, Any], key: str) -> str | None:
    value = message.get(key)
    if isinstance(value, list):
        return str(value[0]) if value else None
    return None if value is None else str(value)


def _last(message: Mapping[str, Any], key: str) -> str | None:
    value = message.get(key)
    if isinstance(value, list):
        return str(value[-1]) if value else None
    return None if value is None else str(value)


def _text(message: Mapping[str, Any], key: str) -> str:
    return _first(message, key) or ""


def _callerid(message: Mapping[str, Any], key: str) -> str:
    value = _text(message, key)
    return "" if value == UNKNOWN else value


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """The channel snapshot Asterisk attaches to channel events (optionally prefixed,
    e.g. ``Dest*`` in ``DialBegin``)."""

    name: str
    uniqueid: str
    linkedid: str
    endpoint: str
    state: str  # ChannelStateDesc: Down, Ring, Ringing, Up, Busy...
    caller_number: str
    caller_name: str
    connected_number: str
    connected_name: str
    context: str
    exten: str

    @property
    def tech(self) -> str:
        """Channel driver (``PJSIP``, ``Local``...)."""
        return channel_tech(self.name)


def _channel(
    message: Mapping[str, Any], event: str, prefix: str = "", *, required: bool = True
) -> ChannelInfo | None:
    uniqueid = _text(message, f"{prefix}Uniqueid")
    name = _text(message, f"{prefix}Channel")
    if not uniqueid:
        if required:
            raise MalformedEvent(event, f"no {prefix}Uniqueid")
        return None
    return ChannelInfo(
        name=name,
        uniqueid=uniqueid,
        # A channel without a Linkedid is the first of its own group.
        linkedid=_text(message, f"{prefix}Linkedid") or uniqueid,
        endpoint=channel_endpoint(name),
        state=_text(message, f"{prefix}ChannelStateDesc"),
        caller_number=_callerid(message, f"{prefix}CallerIDNum"),
        caller_name=_callerid(message, f"{prefix}CallerIDName"),
        connected_number=_callerid(message, f"{prefix}ConnectedLineNum"),
        connected_name=_callerid(message, f"{prefix}ConnectedLineName"),
        context=_text(message, f"{prefix}Context"),
        exten=_text(message, f"{prefix}Exten"),
    )


def _required(message: Mapping[str, Any], event: str, key: str) -> str:
    value = _text(message, key)
    if not value:
        raise MalformedEvent(event, f"no {key}")
    return value


def _cause(message: Mapping[str, Any]) -> int | None:
    try:
        return int(_text(message, "Cause"))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class AmiEvent:
    """Base of every normalized event: ``at`` is Asterisk's ``Timestamp`` (epoch s)."""

    at: float


@dataclass(frozen=True, slots=True)
class Newchannel(AmiEvent):
    """A channel was created (``Exten`` of an inbound trunk channel is the dialled DID)."""

    channel: ChannelInfo


@dataclass(frozen=True, slots=True)
class Newstate(AmiEvent):
    """The channel's state changed (``Ringing``, ``Up``...)."""

    channel: ChannelInfo


@dataclass(frozen=True, slots=True)
class NewCallerid(AmiEvent):
    """The channel's caller id changed."""

    channel: ChannelInfo


@dataclass(frozen=True, slots=True)
class Rename(AmiEvent):
    """The channel got a new name (masquerades)."""

    uniqueid: str
    new_name: str


@dataclass(frozen=True, slots=True)
class HangupRequest(AmiEvent):
    """Someone asked the channel to hang up: the far end (``soft=False``,
    ``HangupRequest``) or Asterisk itself (``soft=True``, ``SoftHangupRequest``)."""

    channel: ChannelInfo
    cause: int | None
    soft: bool


@dataclass(frozen=True, slots=True)
class Hangup(AmiEvent):
    """The channel is gone."""

    channel: ChannelInfo
    cause: int | None
    cause_txt: str


@dataclass(frozen=True, slots=True)
class DialBegin(AmiEvent):
    """``caller`` (absent for an Originate) started dialling ``dest``."""

    caller: ChannelInfo | None
    dest: ChannelInfo
    dial_string: str


@dataclass(frozen=True, slots=True)
class DialEnd(AmiEvent):
    """A dial finished: ``dial_status`` ANSWER, NOANSWER, BUSY, CHANUNAVAIL,
    CONGESTION, CANCEL..."""

    caller: ChannelInfo | None
    dest: ChannelInfo
    dial_status: str


@dataclass(frozen=True, slots=True)
class BridgeCreate(AmiEvent):
    """A bridge was created."""

    bridge_id: str


@dataclass(frozen=True, slots=True)
class BridgeEnter(AmiEvent):
    """``channel`` joined the bridge."""

    bridge_id: str
    channel: ChannelInfo


@dataclass(frozen=True, slots=True)
class BridgeLeave(AmiEvent):
    """``channel`` left the bridge."""

    bridge_id: str
    channel: ChannelInfo


@dataclass(frozen=True, slots=True)
class BridgeDestroy(AmiEvent):
    """The bridge is gone."""

    bridge_id: str


@dataclass(frozen=True, slots=True)
class BlindTransfer(AmiEvent):
    """``transferer`` sent the other party of its bridge (``transferee``) to
    ``extension@context``."""

    result: str
    transferer: ChannelInfo | None
    transferee: ChannelInfo | None
    extension: str
    context: str
    bridge_id: str


@dataclass(frozen=True, slots=True)
class AttendedTransfer(AmiEvent):
    """``orig_transferer`` (talking to ``transferee``) consulted ``target`` on its
    ``second_transferer`` leg and joined them."""

    result: str
    orig_transferer: ChannelInfo | None
    second_transferer: ChannelInfo | None
    transferee: ChannelInfo | None
    target: ChannelInfo | None
    dest_type: str
    dest_bridge_id: str
    dest_app: str


@dataclass(frozen=True, slots=True)
class MusicOnHold(AmiEvent):
    """Music on hold started or stopped on the channel."""

    channel: ChannelInfo
    started: bool
    moh_class: str


@dataclass(frozen=True, slots=True)
class MixMonitor(AmiEvent):
    """Recording of the channel started or stopped."""

    channel: ChannelInfo
    started: bool


@dataclass(frozen=True, slots=True)
class HotlineEnqueue(AmiEvent):
    """Dialplan ``[hotline-intake]``: the caller entered the queue for a human."""

    channel: ChannelInfo
    line: str
    queue: str
    priority: int


@dataclass(frozen=True, slots=True)
class HotlineConnect(AmiEvent):
    """Dialplan ``[hotline-connect]``: about to ring ``agent`` for the caller."""

    channel: ChannelInfo
    agent: str
    line: str


@dataclass(frozen=True, slots=True)
class HotlineDialResult(AmiEvent):
    """Dialplan ``[hotline-connect]``: the ring of ``agent`` ended with ``dial_status``."""

    channel: ChannelInfo
    agent: str
    dial_status: str


@dataclass(frozen=True, slots=True)
class HotlineFallback(AmiEvent):
    """Dialplan ``[hotline-fallback]``: the engine did not connect the caller in time."""

    channel: ChannelInfo
    line: str
    queue: str


@dataclass(frozen=True, slots=True)
class CoreShowChannel(AmiEvent):
    """One item of a ``CoreShowChannels`` reply (``at`` is the receive time: list
    items are not timestamped)."""

    channel: ChannelInfo
    bridge_id: str
    application: str
    application_data: str
    duration_s: int
    account_code: str


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value or "")
    except ValueError:
        return default


def _user_event(message: Mapping[str, Any], at: float) -> AmiEvent | None:
    name = _last(message, "UserEvent") or ""
    if name not in _USER_EVENTS:
        return None
    channel = _must(_channel(message, name))
    if name == "HotlineEnqueue":
        return HotlineEnqueue(
            at,
            channel,
            line=_last(message, "Line") or "",
            queue=_last(message, "Queue") or "",
            priority=_int(_last(message, "Priority")),
        )
    if name == "HotlineConnect":
        return HotlineConnect(
            at, channel, agent=_last(message, "Agent") or "", line=_last(message, "Line") or ""
        )
    if name == "HotlineDialResult":
        return HotlineDialResult(
            at,
            channel,
            agent=_last(message, "Agent") or "",
            dial_status=_last(message, "DialStatus") or "",
        )
    return HotlineFallback(
        at, channel, line=_last(message, "Line") or "", queue=_last(message, "Queue") or ""
    )


_USER_EVENTS = frozenset(
    {"HotlineEnqueue", "HotlineConnect", "HotlineDialResult", "HotlineFallback"}
)


def _build(name: str, m: Mapping[str, Any], at: float) -> AmiEvent | None:
    # One branch per event: explicit beats a table of lambdas for a reader
    # looking for "where does DialEnd come from".
    if name == "Newchannel":
        return Newchannel(at, _must(_channel(m, name)))
    if name == "Newstate":
        return Newstate(at, _must(_channel(m, name)))
    if name == "NewCallerid":
        return NewCallerid(at, _must(_channel(m, name)))
    if name == "Rename":
        return Rename(
            at, uniqueid=_required(m, name, "Uniqueid"), new_name=_required(m, name, "Newname")
        )
    if name in ("HangupRequest", "SoftHangupRequest"):
        return HangupRequest(
            at, _must(_channel(m, name)), cause=_cause(m), soft=name == "SoftHangupRequest"
        )
    if name == "Hangup":
        return Hangup(
            at, _must(_channel(m, name)), cause=_cause(m), cause_txt=_text(m, "Cause-txt")
        )
    if name == "DialBegin":
        return DialBegin(
            at,
            _channel(m, name, required=False),
            _must(_channel(m, name, "Dest")),
            dial_string=_text(m, "DialString"),
        )
    if name == "DialEnd":
        return DialEnd(
            at,
            _channel(m, name, required=False),
            _must(_channel(m, name, "Dest")),
            dial_status=_text(m, "DialStatus"),
        )
    if name == "BridgeCreate":
        return BridgeCreate(at, _required(m, name, "BridgeUniqueid"))
    if name == "BridgeEnter":
        return BridgeEnter(at, _required(m, name, "BridgeUniqueid"), _must(_channel(m, name)))
    if name == "BridgeLeave":
        return BridgeLeave(at, _required(m, name, "BridgeUniqueid"), _must(_channel(m, name)))
    if name == "BridgeDestroy":
        return BridgeDestroy(at, _required(m, name, "BridgeUniqueid"))
    if name == "BlindTransfer":
        return BlindTransfer(
            at,
            result=_text(m, "Result"),
            transferer=_channel(m, name, "Transferer", required=False),
            transferee=_channel(m, name, "Transferee", required=False),
            extension=_text(m, "Extension"),
            context=_text(m, "Context"),
            bridge_id=_text(m, "BridgeUniqueid"),
        )
    if name == "AttendedTransfer":
        return AttendedTransfer(
            at,
            result=_text(m, "Result"),
            orig_transferer=_channel(m, name, "OrigTransferer", required=False),
            second_transferer=_channel(m, name, "SecondTransferer", required=False),
            transferee=_channel(m, name, "Transferee", required=False),
            target=_channel(m, name, "TransferTarget", required=False),
            dest_type=_text(m, "DestType"),
            dest_bridge_id=_text(m, "DestBridgeUniqueid"),
            dest_app=_text(m, "DestApp"),
        )
    if name in ("MusicOnHoldStart", "MusicOnHoldStop"):
        return MusicOnHold(
            at,
            _must(_channel(m, name)),
            started=name == "MusicOnHoldStart",
            moh_class=_text(m, "Class"),
        )
    if name in ("MixMonitorStart", "MixMonitorStop"):
        return MixMonitor(at, _must(_channel(m, name)), started=name == "MixMonitorStart")
    if name == "UserEvent":
        return _user_event(m, at)
    if name == "CoreShowChannel":
        return CoreShowChannel(
            at,
            _must(_channel(m, name)),
            bridge_id=_text(m, "BridgeId"),
            application=_text(m, "Application"),
            application_data=_text(m, "ApplicationData"),
            duration_s=parse_duration(m.get("Duration")),
            account_code=_text(m, "AccountCode"),
        )
    return None


def _must(channel: ChannelInfo | None) -> ChannelInfo:
    # _channel(required=True) raises instead of returning None; this only narrows the type.
    assert channel is not None
    return channel


KNOWN_EVENTS = frozenset(
    {
        "Newchannel",
        "Newstate",
        "NewCallerid",
        "Rename",
        "HangupRequest",
        "SoftHangupRequest",
        "Hangup",
        "DialBegin",
        "DialEnd",
        "BridgeCreate",
        "BridgeEnter",
        "BridgeLeave",
        "BridgeDestroy",
        "BlindTransfer",
        "AttendedTransfer",
        "MusicOnHoldStart",
        "MusicOnHoldStop",
        "MixMonitorStart",
        "MixMonitorStop",
        "UserEvent",
        "CoreShowChannel",
    }
)


def normalize(message: Mapping[str, Any], *, received_at: float | None = None) -> AmiEvent | None:
    """Turn one AMI message into a typed event.

    Returns ``None`` for responses and events outside :data:`KNOWN_EVENTS` (and
    user events other than the ``Hotline*`` ones). ``received_at`` is used only
    when the message has no usable ``Timestamp``. Raises :class:`MalformedEvent`
    when a known event misses a header the model needs, or has no time at all.
    """
    name = _first(message, "Event")
    if not name or name not in KNOWN_EVENTS:
        return None
    at = parse_timestamp(message.get("Timestamp"))
    if at is None:
        if received_at is None:
            raise MalformedEvent(name, "no Timestamp and no receive time")
        at = received_at
    return _build(name, message, at)
