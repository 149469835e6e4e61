"""One parsed AMI message: a plain dict of header -> value, canonical header names.

Asterisk spells a header the same way every time, but not always the same way
across versions and events (``Uniqueid`` / ``UniqueID``, ``AOR`` / ``Aor``,
``ActionID`` / ``ActionId``). panoramisk answers that with a case-insensitive
dict whose every lookup lowercases the key: at tens of thousands of events a
second, that lookup was the largest single cost of ingest. Here the spelling is
fixed once, when the message is parsed: a header whose name matches one of
:data:`CANONICAL_HEADERS` case-insensitively is stored under that spelling, any
other header as sent. Lookups are then plain ``dict`` lookups with the
canonical name (``message.get("Uniqueid")``).

A header that appears more than once (``Variable``, a ``UserEvent``'s own
``Priority`` after the channel's) has a list of its values, in order.

The attribute API of panoramisk's ``Message`` is kept for the code and tests
that use it: ``.event``, ``.action_id``, ``.success``, ``.content`` (the body
of a ``Response: Follows``), and ``message.<header>`` for any header (compared
without case; ``""`` when absent).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["AmiMessage", "CANONICAL_HEADERS", "SNAPSHOT_PREFIXES", "canonical_header"]

# Replies that mean the action worked (as panoramisk counts them).
_SUCCESS_RESPONSES = frozenset({"Success", "Follows", "Goodbye"})

# The channel snapshot Asterisk attaches to channel events, unprefixed and with
# the prefixes of two-channel events (DialBegin's Dest*, transfers' roles).
# cti.events reads snapshots under the same prefixes.
_SNAPSHOT_FIELDS = (
    "Channel",
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Language",
    "AccountCode",
    "Context",
    "Exten",
    "Priority",
    "Uniqueid",
    "Linkedid",
)
SNAPSHOT_PREFIXES = (
    "",
    "Dest",
    "Transferer",
    "Transferee",
    "OrigTransferer",
    "SecondTransferer",
    "TransferTarget",
)
_OTHER_HEADERS = (
    "Action",
    "Event",
    "Response",
    "ActionID",
    "Message",
    "EventList",
    "ListItems",
    "SubEvent",
    "Privilege",
    "Timestamp",
    "SystemName",
    "UserEvent",
    "Ping",
    "Cause",
    "Cause-txt",
    "DialStatus",
    "DialString",
    "Forward",
    "BridgeUniqueid",
    "BridgeType",
    "BridgeTechnology",
    "BridgeCreator",
    "BridgeName",
    "BridgeNumChannels",
    "BridgeVideoSourceMode",
    "BridgeId",
    "Newname",
    "Class",
    "Result",
    "Extension",
    "IsExternal",
    "DestType",
    "DestApp",
    "DestBridgeUniqueid",
    "Application",
    "ApplicationData",
    "Duration",
    "Variable",
    "ChanVariable",
    "Device",
    "State",
    "AOR",
    "URI",
    "ContactStatus",
    "EndpointName",
    "Agent",
    "Line",
    "Queue",
    "Reason",
    "Status",
    "Output",
)

CANONICAL_HEADERS: Mapping[str, str] = MappingProxyType(
    {
        name.lower(): name
        for name in (
            *(prefix + field for prefix in SNAPSHOT_PREFIXES for field in _SNAPSHOT_FIELDS),
            *_OTHER_HEADERS,
        )
    }
)


def canonical_header(name: str) -> str:
    """The spelling a header is stored under: the canonical one if known, else ``name``."""
    return CANONICAL_HEADERS.get(name.lower(), name)


class AmiMessage(dict[str, Any]):
    """An AMI event or reply: canonical header name -> str, or list of str if repeated."""

    __slots__ = ("_content",)

    def __init__(
        self,
        headers: Mapping[str, Any] | Iterable[tuple[str, Any]] = (),
        content: str = "",
    ) -> None:
        super().__init__()
        items = headers.items() if isinstance(headers, Mapping) else headers
        for key, value in items:
            self[canonical_header(key)] = value
        if content:
            self._content = content

    @property
    def content(self) -> str:
        """The body of a ``Response: Follows`` (``""`` for any other message)."""
        try:
            return self._content
        except AttributeError:  # never set: the parsers leave it unset when empty
            return ""

    @content.setter
    def content(self, value: str) -> None:
        self._content = value

    @property
    def event(self) -> str:
        """The event name, ``""`` for a reply."""
        value = self.get("Event", "")
        return str(value[0] if isinstance(value, list) else value)

    @property
    def action_id(self) -> str | None:
        value = self.get("ActionID")
        return None if value is None else str(value)

    @property
    def success(self) -> bool:
        """True for any event and for a ``Success``/``Follows``/``Goodbye`` reply."""
        return "Event" in self or self.get("Response") in _SUCCESS_RESPONSES

    def header(self, name: str, default: Any = None) -> Any:
        """Look ``name`` up without regard to case (slow; for rare, unknown headers)."""
        if name in self:
            return self[name]
        wanted = name.lower()
        for key, value in self.items():
            if key.lower() == wanted:
                return value
        return default

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal attribute lookup fails: message.ping, message.message.
        if name.startswith("_"):
            raise AttributeError(name)
        return self.header(name, "")

    def __repr__(self) -> str:
        headers = " ".join(f"{key}={value!r}" for key, value in self.items())
        body = f" content={self.content!r}" if self.content else ""
        return f"<AmiMessage {headers}{body}>"
