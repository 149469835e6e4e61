"""Normalized AMI events: a header mapping in, a typed dataclass out.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from types import MappingProxyType
from typing import Any, NamedTuple

from cti.ami.message import SNAPSHOT_PREFIXES

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
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_SEQUENCE_LENGTH = 8
# Local channels are "Local/<exten>@<context>-<seq>;1" (or ";2").
_LOCAL_HALVES = (";1", ";2")


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
    if "<" in name:
        name = name.split("<", 1)[0]
    if name.startswith("AsyncGoto/"):
        name = name[len("AsyncGoto/") :]
    _, sep, rest = name.partition("/")
    if not sep:
        return name
    if rest.endswith(_LOCAL_HALVES):
        rest = rest[:-2]
    head, dash, sequence = rest.rpartition("-")
    if dash and len(sequence) == _SEQUENCE_LENGTH and _HEX_DIGITS.issuperset(sequence):
        return head
    return rest


def parse_timestamp(value: Any) -> float | None:
    """``"1795237408.414539"`` -> epoch seconds, or ``None`` when absent or unusable."""
    if value.__class__ is not str:
        if isinstance(value, list):
            value = value[0] if value else None
        if value is None:
            return None
        value = str(value)
    try:
        at = float(value)  # surrounding whitespace is accepted
    except ValueError:
        return None
    # NaN fails both comparisons; infinity fails the second.
    return at if 0 <= at < math.inf else None


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


class ChannelInfo(NamedTuple):
    """The channel snapshot Asterisk attaches to channel events (optionally prefixed,
    e.g. ``Dest*`` in ``DialBegin``).

    A named tuple rather than a frozen dataclass: it is built once or twice
    per AMI event, and a frozen dataclass's ``__init__`` costs four times as much.
    For the same reason :attr:`endpoint` is derived from the name on demand.
    """

    # In the order of _SNAPSHOT_HEADERS: built straight from the header tuple.
    uniqueid: str
    name: str
    linkedid: str
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

    @property
    def endpoint(self) -> str:
        """The device part of the name (:func:`channel_endpoint`)."""
        return channel_endpoint(self.name)


# The snapshot headers _channel reads, in its order, for each prefix it is used with.
_SNAPSHOT_HEADERS = (
    "Uniqueid",
    "Channel",
    "Linkedid",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Context",
    "Exten",
)
_SNAPSHOT_KEYS = {
    prefix: tuple(prefix + header for header in _SNAPSHOT_HEADERS) for prefix in SNAPSHOT_PREFIXES
}


_SNAPSHOT_READERS = {prefix: itemgetter(*keys) for prefix, keys in _SNAPSHOT_KEYS.items()}
# ChannelInfo from a tuple already in field order, without NamedTuple's
# Python-level __new__ (a third of the cost of building one).
_new_tuple = tuple.__new__


def _channel(
    message: Mapping[str, Any], event: str, prefix: str = "", *, required: bool = True
) -> ChannelInfo | None:
    # The hot path of ingest (one or two per event): the ten headers are read
    # in one C call and become the ChannelInfo as they are; absent, repeated
    # (a list) or "<unknown>" values are the exception, fixed on the side.
    try:
        values: tuple[Any, ...] = _SNAPSHOT_READERS[prefix](message)
    except KeyError:
        get = message.get
        values = tuple([get(key, "") for key in _SNAPSHOT_KEYS[prefix]])
    if list in map(type, values):
        values = tuple([_first_of(value) for value in values])
    uniqueid = values[0]
    if not uniqueid:
        if required:
            raise MalformedEvent(event, f"no {prefix}Uniqueid")
        return None
    if UNKNOWN in values or not values[2]:
        _, name, linkedid, state, number, caller, connected_number, connected, context, exten = (
            values
        )
        values = (
            uniqueid,
            name,
            # A channel without a Linkedid is the first of its own group.
            linkedid or uniqueid,
            state,
            "" if number == UNKNOWN else number,
            "" if caller == UNKNOWN else caller,
            "" if connected_number == UNKNOWN else connected_number,
            "" if connected == UNKNOWN else connected,
            context,
            exten,
        )
    return _new_tuple(ChannelInfo, values)


def _first_of(value: Any) -> str:
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return "" if value is None else str(value)


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


@dataclass(slots=True)
class AmiEvent:
    """Base of every normalized event: ``at`` is Asterisk's ``Timestamp`` (epoch s).

    Values, never changed after :func:`normalize` built them; not ``frozen``
    only because a frozen dataclass costs three times as much to build, and
    one is built per AMI event.
    """

    at: float


@dataclass(slots=True)
class Newchannel(AmiEvent):
    """A channel was created (``Exten`` of an inbound trunk channel is the dialled DID)."""

    channel: ChannelInfo


@dataclass(slots=True)
class Newstate(AmiEvent):
    """The channel's state changed (``Ringing``, ``Up``...)."""

    channel: ChannelInfo


@dataclass(slots=True)
class NewCallerid(AmiEvent):
    """The channel's caller id changed."""

    channel: ChannelInfo


@dataclass(slots=True)
class Rename(AmiEvent):
    """The channel got a new name (masquerades)."""

    uniqueid: str
    new_name: str


@dataclass(slots=True)
class HangupRequest(AmiEvent):
    """Someone asked the channel to hang up: the far end (``soft=False``,
    ``HangupRequest``) or Asterisk itself (``soft=True``, ``SoftHangupRequest``)."""

    channel: ChannelInfo
    cause: int | None
    soft: bool


@dataclass(slots=True)
class Hangup(AmiEvent):
    """The channel is gone."""

    channel: ChannelInfo
    cause: int | None
    cause_txt: str


@dataclass(slots=True)
class DialBegin(AmiEvent):
    """``caller`` (absent for an Originate) started dialling ``dest``."""

    caller: ChannelInfo | None
    dest: ChannelInfo
    dial_string: str


@dataclass(slots=True)
class DialEnd(AmiEvent):
    """A dial finished: ``dial_status`` ANSWER, NOANSWER, BUSY, CHANUNAVAIL,
    CONGESTION, CANCEL..."""

    caller: ChannelInfo | None
    dest: ChannelInfo
    dial_status: str


@dataclass(slots=True)
class BridgeCreate(AmiEvent):
    """A bridge was created."""

    bridge_id: str


@dataclass(slots=True)
class BridgeEnter(AmiEvent):
    """``channel`` joined the bridge."""

    bridge_id: str
    channel: ChannelInfo


@dataclass(slots=True)
class BridgeLeave(AmiEvent):
    """``channel`` left the bridge."""

    bridge_id: str
    channel: ChannelInfo


@dataclass(slots=True)
class BridgeDestroy(AmiEvent):
    """The bridge is gone."""

    bridge_id: str


@dataclass(slots=True)
class BlindTransfer(AmiEvent):
    """``transferer`` sent the other party of its bridge (``transferee``) to
    ``extension@context``."""

    result: str
    transferer: ChannelInfo | None
    transferee: ChannelInfo | None
    extension: str
    context: str
    bridge_id: str


@dataclass(slots=True)
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


@dataclass(slots=True)
class MusicOnHold(AmiEvent):
    """Music on hold started or stopped on the channel."""

    channel: ChannelInfo
    started: bool
    moh_class: str


@dataclass(slots=True)
class MixMonitor(AmiEvent):
    """Recording of the channel started or stopped."""

    channel: ChannelInfo
    started: bool


@dataclass(slots=True)
class HotlineEnqueue(AmiEvent):
    """Dialplan ``[hotline-intake]``: the caller entered the queue for a human."""

    channel: ChannelInfo
    line: str
    queue: str
    priority: int
    ivr: tuple[str, ...] = ()
    """The caller's IVR choices on the way in, in order (``Ivr: a|b``)."""
    routed_by: str = "engine"
    """"app_queue": ``HotlineAppQueueEnqueue`` of a line Asterisk's Queue() routes."""


@dataclass(slots=True)
class HotlineConnect(AmiEvent):
    """Dialplan ``[hotline-connect]``: about to ring ``agent`` for the caller."""

    channel: ChannelInfo
    agent: str
    line: str


@dataclass(slots=True)
class HotlineDialResult(AmiEvent):
    """Dialplan ``[hotline-connect]``: the ring of ``agent`` ended with ``dial_status``."""

    channel: ChannelInfo
    agent: str
    dial_status: str


@dataclass(slots=True)
class HotlineFallback(AmiEvent):
    """Dialplan ``[hotline-fallback]``: the engine did not connect the caller in time."""

    channel: ChannelInfo
    line: str
    queue: str


@dataclass(slots=True)
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
    if name in ("HotlineEnqueue", "HotlineAppQueueEnqueue"):
        return HotlineEnqueue(
            at,
            channel,
            line=_last(message, "Line") or "",
            queue=_last(message, "Queue") or "",
            priority=_int(_last(message, "Priority")),
            ivr=tuple(c for c in (_last(message, "Ivr") or "").split("|") if c),
            routed_by="engine" if name == "HotlineEnqueue" else "app_queue",
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
    {
        "HotlineEnqueue",
        "HotlineAppQueueEnqueue",
        "HotlineConnect",
        "HotlineDialResult",
        "HotlineFallback",
    }
)


# One small builder per event name, looked up in a table (a chain of ifs
# cost up to twenty string comparisons per event). Each takes the event name,
# the headers and the time.
Builder = Callable[[str, Mapping[str, Any], float], AmiEvent | None]


def _newchannel(name: str, m: Mapping[str, Any], at: float) -> AmiEvent:
    return Newchannel(at, _must(_channel(m, name)))


def _newstate(name: str, m: Mapping[str, Any], at: float) -> AmiEvent:
    return Newstate(at, _must(_channel(m, name)))


def _new_callerid(name: str, m: Mapping[str, Any], at: float) -> AmiEvent:
    return NewCallerid(at, _must(_channel(m, name)))


def _rename(name: str, m: Mapping[str, Any], at: float) -> AmiEvent:
    return Rename(
        at, uniqueid=_required(m, name, "Uniqueid"), new_name=_required(m, name, "Newname")
    )


def _hangup_request(name: str, m: Mapping[str, Any], at: float) -> AmiEvent:
    return HangupRequest(
        at, _must(_channel(m, name)), cause=_cause(m), soft=name == "SoftHangupRequest"
    )


def _hangup(name: str, m: Mapping[str, Any], at: float) -> AmiEvent:
    return Hangup(at, _must(_channel(m, name)), cause=_cause(m), cause_txt=_text(m, "Cause-txt"))


def _dial_begin(name: str, m: Mapping[str, Any], at: float) -> AmiEvent:
    return DialBegin(
        at,
        _channel(m, name, required=False),
        _must(_channel(m, name, "Dest")),
        dial_string=_text(m, "DialString"),
    )


def _dial_end(name: str, m: Mapping[str, Any], at: float) -> AmiEvent:
    return DialEnd(
        at,
        _channel(m, name, required=False),
        _must(_channel(m, name, "Dest")),
        dial_status=_text(m, "DialStatus"),
    )


def _bridge_create(name: str, m: Mapping[str, Any], at: float) -> AmiEvent:
    return BridgeCreate(at, _required(m, name, "BridgeUniqueid"))


def _bridge_enter(name: str, m: Mapping[str, Any], at: float) -> AmiEvent:
    return BridgeEnter(at, _required(m, name, "BridgeUniqueid"), _must(_channel(m, name)))


def _bridge_leave(name: str, m: Mapping[str, Any], at: float) -> AmiEvent:
    return BridgeLeave(at, _required(m, name, "BridgeUniqueid"), _must(_channel(m, name)))


def _bridge_destroy(name: str, m: Mapping[str, Any], at: float) -> AmiEvent:
    return BridgeDestroy(at, _required(m, name, "BridgeUniqueid"))


def _blind_transfer(name: str, m: Mapping[str, Any], at: float) -> AmiEvent:
    return BlindTransfer(
        at,
        result=_text(m, "Result"),
        transferer=_channel(m, name, "Transferer", required=False),
        transferee=_channel(m, name, "Transferee", required=False),
        extension=_text(m, "Extension"),
        context=_text(m, "Context"),
        bridge_id=_text(m, "BridgeUniqueid"),
    )


def _attended_transfer(name: str, m: Mapping[str, Any], at: float) -> AmiEvent:
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


def _music_on_hold(name: str, m: Mapping[str, Any], at: float) -> AmiEvent:
    return MusicOnHold(
        at,
        _must(_channel(m, name)),
        started=name == "MusicOnHoldStart",
        moh_class=_text(m, "Class"),
    )


def _mix_monitor(name: str, m: Mapping[str, Any], at: float) -> AmiEvent:
    return MixMonitor(at, _must(_channel(m, name)), started=name == "MixMonitorStart")


def _user_event_of(name: str, m: Mapping[str, Any], at: float) -> AmiEvent | None:
    return _user_event(m, at)


def _core_show_channel(name: str, m: Mapping[str, Any], at: float) -> AmiEvent:
    return CoreShowChannel(
        at,
        _must(_channel(m, name)),
        bridge_id=_text(m, "BridgeId"),
        application=_text(m, "Application"),
        application_data=_text(m, "ApplicationData"),
        duration_s=parse_duration(m.get("Duration")),
        account_code=_text(m, "AccountCode"),
    )


_BUILDERS: Mapping[str, Builder] = MappingProxyType(
    {
        "Newchannel": _newchannel,
        "Newstate": _newstate,
        "NewCallerid": _new_callerid,
        "Rename": _rename,
        "HangupRequest": _hangup_request,
        "SoftHangupRequest": _hangup_request,
        "Hangup": _hangup,
        "DialBegin": _dial_begin,
        "DialEnd": _dial_end,
        "BridgeCreate": _bridge_create,
        "BridgeEnter": _bridge_enter,
        "BridgeLeave": _bridge_leave,
        "BridgeDestroy": _bridge_destroy,
        "BlindTransfer": _blind_transfer,
        "AttendedTransfer": _attended_transfer,
        "MusicOnHoldStart": _music_on_hold,
        "MusicOnHoldStop": _music_on_hold,
        "MixMonitorStart": _mix_monitor,
        "MixMonitorStop": _mix_monitor,
        "UserEvent": _user_event_of,
        "CoreShowChannel": _core_show_channel,
    }
)


def _must(channel: ChannelInfo | None) -> ChannelInfo:
    # _channel(required=True) raises instead of returning None; this only narrows the type.
    assert channel is not None
    return channel


KNOWN_EVENTS = frozenset(_BUILDERS)


def normalize(message: Mapping[str, Any], *, received_at: float | None = None) -> AmiEvent | None:
    """Turn one AMI message into a typed event.

    Returns ``None`` for responses and events outside :data:`KNOWN_EVENTS` (and
    user events other than the ``Hotline*`` ones). ``received_at`` is used only
    when the message has no usable ``Timestamp``. Raises :class:`MalformedEvent`
    when a known event misses a header the model needs, or has no time at all.
    """
    name = message.get("Event")
    if name.__class__ is not str:
        name = _first_of(name)
    builder = _BUILDERS.get(name)
    if builder is None:
        return None
    stamp = message.get("Timestamp")
    try:  # the usual case inline; parse_timestamp for anything else
        at: float | None = float(stamp) if stamp.__class__ is str else parse_timestamp(stamp)
    except ValueError:
        at = None
    if at is not None and not 0 <= at < math.inf:
        at = None
    if at is None:
        if received_at is None:
            raise MalformedEvent(name, "no Timestamp and no receive time")
        at = received_at
    return builder(name, message, at)


# -- header readers for the bus's raw AMI subscribers ---------------------------------
# Everything outside this module reads AMI headers through these.


EVENT_HEADER = "Event"
"""The header naming an AMI event (the bus reads it on every event)."""


def event_name(message: Mapping[str, Any]) -> str:
    return str(message.get(EVENT_HEADER, ""))


def user_event_name(message: Mapping[str, Any]) -> str:
    return str(message.get("UserEvent", ""))


def uniqueid(message: Mapping[str, Any]) -> str:
    return str(message.get("Uniqueid", ""))


def channel_name(message: Mapping[str, Any]) -> str:
    return str(message.get("Channel", ""))


def event_time(message: Mapping[str, Any], default: float) -> float:
    """Asterisk's ``Timestamp`` of the event, else *default*."""
    try:
        return float(message.get("Timestamp") or default)
    except (TypeError, ValueError):
        return default


def contact_status(message: Mapping[str, Any]) -> tuple[str, str]:
    """(AOR, status) of a ``ContactStatus`` event."""
    aor = message.get("AOR") or message.get("Aor") or ""
    return str(aor), str(message.get("ContactStatus", ""))


def device_state(row: Mapping[str, Any]) -> tuple[str, str]:
    """(device, state) of a ``DeviceStateChange`` row."""
    return str(row.get("Device", "")), str(row.get("State", ""))


def feature_code(message: Mapping[str, Any]) -> tuple[str, str, str]:
    """(code, agent, reason) of an agent's ``HotlineAgent*`` UserEvent."""
    return user_event_name(message), str(message.get("Agent", "")), str(message.get("Reason") or "")


def header(message: Mapping[str, Any], name: str) -> str:
    """One header of a UserEvent a feature defined itself (its own fields)."""
    return str(message.get(name, ""))


def originate_succeeded(message: Mapping[str, Any]) -> bool:
    """An ``OriginateResponse`` saying the channel answered."""
    return message.get("Response") == "Success"


def consult_target(message: Mapping[str, Any]) -> str:
    """Whom a consultation called (``HotlineConsult*`` UserEvents)."""
    return str(message.get("Target", ""))


def dial_status(message: Mapping[str, Any]) -> str:
    """``DialStatus`` of a UserEvent the dialplan raises after a Dial."""
    return str(message.get("DialStatus", ""))


def originate_reason(message: Mapping[str, Any]) -> str:
    """Why an ``OriginateResponse`` failed (Asterisk's reason code)."""
    return str(message.get("Reason", ""))


def reply_message(reply: Mapping[str, Any]) -> str:
    """The ``Message`` of an action's reply (why Asterisk refused)."""
    return str(reply.get("Message", ""))


def status_variables(status_row: Mapping[str, Any]) -> dict[str, str]:
    """``Variable: NAME=value`` headers of a Status event as a dict."""
    raw = status_row.get("Variable", [])
    values = raw if isinstance(raw, list) else [raw]
    out = {}
    for item in values:
        name, sep, value = str(item).partition("=")
        if sep:
            out[name] = value
    return out
