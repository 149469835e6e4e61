"""Pure AMI framing and parsing: bytes in, messages out. No I/O, no asyncio.

AMI is a text protocol: after a one-line banner
(``Asterisk Call Manager/5.0.0\\r\\n``) every message is a block of
``Key: Value\\r\\n`` lines ended by an empty line. Three rules here fix what
panoramisk 1.4 gets wrong:

* framing works on BYTES and a message is decoded only once it is complete, so
  a multibyte UTF-8 character split across two TCP reads survives;
* a malformed message becomes a :class:`MalformedMessage` value, never an
  exception escaping into the transport, so its neighbours are not lost;
* an unterminated message cannot grow the buffer past ``max_message_bytes``.

The "is this reply complete" rules for list actions are plain functions here
too (:func:`starts_event_list`, :func:`ends_event_list`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from .message import AmiMessage, canonical_header

try:  # the C header loop; the same loops in Python below when it is not built
    from ._speedups import split_utf8_region
except ImportError:  # pragma: no cover - depends on the build
    split_utf8_region = None

__all__ = [
    "BANNER_PREFIX",
    "FrameBuffer",
    "MalformedMessage",
    "MessageParser",
    "OversizeMessage",
    "Region",
    "split_messages",
    "encode_action",
    "ends_event_list",
    "parse_message",
    "starts_event_list",
]

BANNER_PREFIX = b"Asterisk Call Manager/"

# Asterisk ends messages with CRLF CRLF; some proxies and old versions send
# bare LFs, so any mix of optional CR + LF twice is accepted.
_SEPARATOR = re.compile(rb"\r?\n\r?\n")
_STRICT_SEPARATOR = b"\r\n\r\n"
# A partial separator at the end of the buffer is at most 3 bytes long; the
# next search restarts there instead of rescanning the whole buffer.
_SEPARATOR_TAIL = 3
# Old Asterisk "Response: Follows" (Command) bodies are LF-separated CLI
# output that may contain blank lines, so only CRLF CRLF ends them.
_FOLLOWS_PREFIX = b"Response: Follows"
# Replies that may carry a body (Follows, Fail) never take the fast path.
_BODY_MARK = b"Response: F"
_UTF8_NAMES = frozenset({"utf-8", "utf8", "utf_8"})
# An empty message without running AmiMessage.__init__ (the parser fills it).
_new_message = dict.__new__

# A header key is printable ASCII without spaces or colon; the value follows
# "Key: " or "Key:" (both seen in the wild).
_HEADER = re.compile(r"^([!-9;-~]+)[ \t]*:[ \t]?(.*)$", re.DOTALL)
_HEADER_NAME = re.compile(r"[!-9;-~]+")
_BODY_RESPONSE = re.compile(r"^Response:[ \t]*(Follows|Fail)[ \t]*$", re.IGNORECASE)
_END_COMMAND = "--END COMMAND--"
# Headers that identify a message: a repeat makes routing ambiguous.
_UNIQUE_HEADERS = frozenset({"Event", "Response", "ActionID"})
_REPR_BYTES = 120


def _short_repr(raw: bytes) -> str:
    if len(raw) <= _REPR_BYTES:
        return repr(raw)
    return f"{raw[:_REPR_BYTES]!r}... ({len(raw)} bytes)"


class MalformedMessage(ValueError):
    """A framed message that cannot be used; it is skipped, never fatal.

    ``raw`` holds the offending bytes (for an oversize message, only its
    first bytes: keeping all of it would defeat the size bound) and
    ``reason`` says why it was rejected.
    """

    def __init__(self, reason: str, raw: bytes) -> None:
        super().__init__(f"{reason}: {_short_repr(raw)}")
        self.reason = reason
        self.raw = raw


class OversizeMessage(MalformedMessage):
    """A message that exceeded ``max_message_bytes`` and was dropped."""

    def __init__(self, reason: str, raw: bytes, size: int) -> None:
        super().__init__(reason, raw)
        self.size = size


@dataclass(frozen=True, slots=True)
class Region:
    """Complete CRLF-framed messages as received, for :meth:`MessageParser.split_region`."""

    raw: bytes
    encoding: str = "utf-8"

    def text(self) -> str:
        """The region decoded; one bad byte becomes U+FFFD, nothing else is lost."""
        return self.raw.decode(self.encoding, "replace")


class FrameBuffer:
    """Split an AMI byte stream into raw messages.

    ``feed()`` returns complete messages (bytes, trailing blank line removed)
    in stream order, and :class:`MalformedMessage` values for messages dropped
    for being too large. The banner line at stream start is consumed and
    exposed as :attr:`banner`. Memory stays bounded: after every ``feed()``
    at most ``max_message_bytes`` bytes are buffered.
    """

    def __init__(self, max_message_bytes: int = 1 << 20) -> None:
        if max_message_bytes < 64:
            raise ValueError(f"max_message_bytes must be >= 64, got {max_message_bytes!r}")
        self.max_message_bytes = max_message_bytes
        self.banner: str | None = None
        self.banner_checked = False
        self._buf = bytearray()
        self._scan_from = 0
        # After dropping an oversize message, bytes are discarded until the
        # next separator; only a possible partial separator is kept.
        self._discarding = False
        self._discard_tail = b""

    @property
    def buffered_bytes(self) -> int:
        """Bytes currently held (an incomplete message, or a separator tail)."""
        return len(self._buf) + len(self._discard_tail)

    def feed(self, data: bytes) -> list[bytes | MalformedMessage]:
        """Add received bytes; return the messages they completed, in order."""
        out: list[bytes | MalformedMessage] = []
        if self._discarding:
            data = self._skip_until_separator(data)
            if self._discarding:
                return out
        self._buf += data
        if not self.banner_checked and not self._take_banner():
            return out
        self._extract_messages(out)
        self._drop_oversize_tail(out)
        return out

    def feed_regions(
        self, data: bytes, encoding: str = "utf-8"
    ) -> list[Region | bytes | MalformedMessage]:
        """Like :meth:`feed`, but complete messages come in one piece when that is safe.

        The fast path of ingest: when the complete part of the buffer is plain
        CRLF-framed AMI (as many CRs as LFs, no ``Response: Follows``/``Fail``
        body, not oversize), it is returned as one :class:`Region`: complete
        messages separated by CRLF CRLF, for :meth:`MessageParser.split_region`.
        A multibyte character cannot straddle a message boundary, because the
        separator is ASCII. Anything else takes the careful path of
        :meth:`feed` and comes back as raw ``bytes`` per message for
        :func:`parse_message`.
        """
        if self._discarding or not self.banner_checked:
            return list(self.feed(data))
        buf = self._buf
        buf += data
        out: list[Region | bytes | MalformedMessage] = []
        end = buf.rfind(_STRICT_SEPARATOR)
        if end >= 0:
            region = bytes(buf[:end])
            # Every LF must end a CRLF (a bare LF could be a bare-LF separator):
            # two single-byte counts are several times cheaper than a two-byte search.
            if (
                len(region) <= self.max_message_bytes
                and region.count(b"\r") == region.count(b"\n")
                and _BODY_MARK not in region
            ):
                del buf[: end + len(_STRICT_SEPARATOR)]
                self._scan_from = max(0, len(buf) - _SEPARATOR_TAIL)
                out.append(Region(region, encoding))
                self._drop_oversize_tail(out)
                return out
        careful: list[bytes | MalformedMessage] = []
        self._extract_messages(careful)
        self._drop_oversize_tail(careful)
        out.extend(careful)
        return out

    def feed_texts(
        self, data: bytes, encoding: str = "utf-8"
    ) -> list[str | bytes | MalformedMessage]:
        """:meth:`feed_regions` with each region split into message texts."""
        out: list[str | bytes | MalformedMessage] = []
        for item in self.feed_regions(data, encoding):
            if isinstance(item, Region):
                out.extend(split_messages(item.text()))
            else:
                out.append(item)
        return out

    def _drop_oversize_tail(self, out: list[Any]) -> None:
        if len(self._buf) > self.max_message_bytes:
            size = len(self._buf)
            out.append(
                OversizeMessage(
                    f"message larger than {self.max_message_bytes} bytes without "
                    f"separator ({size} bytes so far); dropped, resynchronising at "
                    "the next blank line",
                    bytes(self._buf[:_REPR_BYTES]),
                    size,
                )
            )
            # The last bytes may be the start of the separator that ends it.
            self._discard_tail = bytes(self._buf[-_SEPARATOR_TAIL:])
            self._buf.clear()
            self._scan_from = 0
            self._discarding = True

    def _take_banner(self) -> bool:
        """Consume the banner line if present; False while it may still come."""
        buf = self._buf
        if buf.startswith(BANNER_PREFIX):
            end = buf.find(b"\n")
            if end < 0:
                if len(buf) <= self.max_message_bytes:
                    return False
                # Not a real banner: let the oversize rule deal with it.
                self.banner_checked = True
                return True
            self.banner = bytes(buf[:end]).decode("utf-8", "replace").strip()
            del buf[: end + 1]
            self.banner_checked = True
            return True
        if BANNER_PREFIX.startswith(bytes(buf)):
            return False
        # Some test doubles and proxies send no banner; that is not an error.
        self.banner_checked = True
        return True

    def _extract_messages(self, out: list[bytes | MalformedMessage]) -> None:
        buf = self._buf
        start = 0
        scan = self._scan_from
        while True:
            match = _SEPARATOR.search(buf, scan)
            if match is None:
                break
            if match.group() != _STRICT_SEPARATOR and self._is_follows(start):
                scan = match.end()
                continue
            raw = bytes(buf[start : match.start()]).lstrip(b"\r\n")
            start = scan = match.end()
            if not raw:
                continue
            if len(raw) > self.max_message_bytes:
                out.append(
                    OversizeMessage(
                        f"message of {len(raw)} bytes exceeds {self.max_message_bytes}"
                        " bytes; dropped",
                        raw[:_REPR_BYTES],
                        len(raw),
                    )
                )
                continue
            out.append(raw)
        del buf[:start]
        self._scan_from = max(0, len(buf) - _SEPARATOR_TAIL)

    def _is_follows(self, start: int) -> bool:
        head = bytes(self._buf[start : start + len(_FOLLOWS_PREFIX) + 4]).lstrip(b"\r\n")
        return head.startswith(_FOLLOWS_PREFIX)

    def _skip_until_separator(self, data: bytes) -> bytes:
        combined = self._discard_tail + data
        match = _SEPARATOR.search(combined)
        if match is None:
            self._discard_tail = combined[-_SEPARATOR_TAIL:]
            return b""
        self._discarding = False
        self._discard_tail = b""
        return combined[match.end() :]


def _header_key(raw_key: str) -> str:
    """The stored name of a header line's key, or ``""`` if it is not a header name.

    A header name is printable ASCII without spaces or colon (RFC-822 style
    token); spaces or tabs before the colon are tolerated and dropped.
    """
    key = raw_key.rstrip(" \t")
    if not key or " " in key or ":" in key or not key.isascii() or not key.isprintable():
        return ""
    return canonical_header(key)


def _add_header(store: AmiMessage, key: str, value: str, raw: bytes | str) -> None:
    previous = store.get(key)
    if previous is None:
        store[key] = value
    elif key in _UNIQUE_HEADERS:
        raise MalformedMessage(f"repeated {key} header", _as_bytes(raw))
    elif isinstance(previous, list):
        previous.append(value)
    else:
        store[key] = [previous, value]


def _as_bytes(raw: bytes | str) -> bytes:
    return raw if isinstance(raw, bytes) else raw.encode("utf-8", "replace")


def _finish(store: AmiMessage, raw: bytes | str) -> AmiMessage:
    if "Event" not in store and "Response" not in store:
        raise MalformedMessage("neither Event nor Response header", _as_bytes(raw))
    if "Result" in store:
        # Quoted like panoramisk does (AGI results come URL-encoded).
        result = store["Result"]
        store["Result"] = (
            [unquote(v).strip() for v in result]
            if isinstance(result, list)
            else unquote(result).strip()
        )
    return store


def parse_message(raw: bytes, encoding: str = "utf-8") -> AmiMessage:
    """Parse one complete raw AMI message into an :class:`AmiMessage`.

    The whole message is decoded at once with ``errors="replace"``: one bad
    byte becomes U+FFFD and the rest of the message is kept. Header names are
    stored canonically (:func:`canonical_header`). Repeated headers
    (``Variable``, ``ChanVariable``, ``Output``...) become lists. Raises
    :class:`MalformedMessage` for a message with neither ``Event`` nor
    ``Response``, or with a repeated ``Event``, ``Response`` or ``ActionID``
    (routing it would be a guess). ``Response: Follows``/``Fail`` bodies are
    kept in ``content`` like panoramisk does (without the
    ``--END COMMAND--`` marker).
    """
    text = raw.decode(encoding, "replace")
    stripped = text.strip("\r\n")
    if not stripped:
        raise MalformedMessage("empty message", raw)
    first_line = stripped.split("\n", 1)[0].rstrip("\r")
    content = ""
    if _BODY_RESPONSE.match(first_line):
        lines = stripped.split("\r\n") if "\r\n" in stripped else stripped.split("\n")
        header_count = 0
        for line in lines:
            if "\n" in line or not _HEADER.match(line):
                break
            header_count += 1
        body = lines[header_count:]
        if body and body[-1].rstrip().endswith(_END_COMMAND):
            body[-1] = body[-1].rstrip()[: -len(_END_COMMAND)].rstrip("\r\n")
        content = "\n".join(part for part in body if part)
        lines = lines[:header_count]
    else:
        lines = [line.rstrip("\r") for line in stripped.split("\n")]

    store = AmiMessage(content=content)
    for line in lines:
        raw_key, sep, rest = line.partition(":")
        if not sep:
            continue
        key = _header_key(raw_key)
        if not key:
            continue
        _add_header(store, key, rest[1:] if rest[:1] in (" ", "\t") else rest, raw)
    return _finish(store, raw)


def split_messages(region: str) -> list[str]:
    """The message texts of a decoded region (extra blank lines dropped)."""
    out = []
    for block in region.split("\r\n\r\n"):
        if block[:1] in ("\r", "\n"):
            block = block.lstrip("\r\n")
        if block:
            out.append(block)
    return out


def _unwanted(text: str, wanted: AbstractSet[str]) -> bool:
    """True for an event outside ``wanted`` that answers no action (read by
    name only, never parsed). Replies and list items always pass."""
    if not text.startswith("Event: "):
        return False
    end = text.find("\r\n")
    name = text[7:end] if end >= 0 else text[7:]
    return name not in wanted and "\r\nActionID: " not in text


def _with_repeats(lines: list[str], text: str) -> AmiMessage | None:
    """The fast loop again, keeping repeated headers as lists (a ``UserEvent``
    repeats ``Priority``); None if a line is not ``Key: value``."""
    store: AmiMessage = _new_message(AmiMessage)
    for line in lines:
        key, sep, value = line.partition(": ")
        if not sep:
            return None
        _add_header(store, key, value, text)
    return store


class MessageParser:
    """Parses the decoded messages of one connection, remembering header spellings.

    The hot path of ingest: one ``split`` per message and one ``partition``
    per line, and each distinct header spelling is validated and made
    canonical once per connection instead of once per line. At most
    ``max_known_keys`` spellings are remembered (a peer sending endless
    distinct headers costs time, never memory).
    """

    def __init__(self, max_known_keys: int = 4096, *, accelerated: bool = True) -> None:
        # Header names checked valid and canonical, each mapped to itself (the
        # C loop stores these objects as keys instead of fresh copies).
        self._known: dict[str, str] = {}
        self._max_known_keys = max_known_keys
        self._split_utf8 = split_utf8_region if accelerated else None

    @property
    def accelerated(self) -> bool:
        """True when UTF-8 regions are split and parsed in C (``cti.ami._speedups``)."""
        return self._split_utf8 is not None

    def split_region(
        self, region: Region | str, wanted: AbstractSet[str] | None
    ) -> tuple[list[AmiMessage], list[tuple[int, AmiMessage | str]], int]:
        """The messages of a region from :meth:`FrameBuffer.feed_regions` (or
        of such a region already decoded).

        Returns ``(events, others, filtered)``: ``events`` are the plain
        events (``Event``, no ``ActionID``, not ``FullyBooted``) in order;
        ``others`` are ``(number of events before it, item)`` for everything
        else in order, where the item is a parsed message (a reply, a list
        item, ``FullyBooted``) or a message text that needs :meth:`parse` (it
        may raise :class:`MalformedMessage`); ``filtered`` counts the events
        outside ``wanted`` (None: no filter) that were dropped unparsed.
        """
        if isinstance(region, Region):
            if self._split_utf8 is not None and region.encoding.lower() in _UTF8_NAMES:
                # In C on the bytes: only the values get decoded.
                return self._split_utf8(  # type: ignore[no-any-return]
                    region.raw, self._known, wanted, AmiMessage
                )
            region = region.text()
        # The Python twin of the C splitter (other encodings, or no C module).
        events: list[AmiMessage] = []
        others: list[tuple[int, AmiMessage | str]] = []
        filtered = 0
        for text in split_messages(region):
            if wanted is not None and _unwanted(text, wanted):
                filtered += 1
                continue
            message = self._quick(text)
            if message is None:
                others.append((len(events), text))
            elif (
                "Event" in message
                and "ActionID" not in message
                and (message["Event"] != "FullyBooted")
            ):
                events.append(message)
            else:
                others.append((len(events), message))
        return events, others, filtered

    def _quick(self, text: str) -> AmiMessage | None:
        """The Python twin of the C loop: None where it would refuse the message."""
        store: AmiMessage = _new_message(AmiMessage)
        lines = text.split("\r\n")
        for line in lines:
            key, _, value = line.partition(": ")
            store[key] = value
        if (
            len(store) != len(lines)
            or not store.keys() <= self._known.keys()
            or ("Event" not in store and "Response" not in store)
            or "Result" in store
        ):
            return None
        return store

    def parse(self, text: str) -> AmiMessage:
        """Parse one message decoded from the wire (CRLF lines, no trailing blank line).

        Same result and same :class:`MalformedMessage` rules as
        :func:`parse_message` for messages without a ``Response: Follows``
        body (:meth:`FrameBuffer.feed_texts` sends those the careful way).
        A message with a repeated header, a line that is not ``Key: value``,
        or a header name not yet known to be valid and canonical is parsed
        again the careful way.
        """
        store: AmiMessage = _new_message(AmiMessage)
        known = self._known
        lines = text.split("\r\n")
        for line in lines:
            key, _, value = line.partition(": ")
            store[key] = value
        # A repeated header leaves fewer keys than lines; a line without
        # ": " became a key of its own and fails the known-key check.
        plain = len(store) == len(lines) and store.keys() <= known.keys()
        if not plain:
            repeated = _with_repeats(text.split("\r\n"), text)
            if repeated is None or not repeated.keys() <= known.keys():
                return self._careful(text)
            store = repeated
        store.content = ""
        return _finish(store, text)

    def _careful(self, text: str) -> AmiMessage:
        store: AmiMessage = _new_message(AmiMessage)
        store.content = ""
        for line in text.split("\r\n"):
            raw_key, sep, rest = line.partition(":")
            if not sep:
                continue
            key = _header_key(raw_key)
            if not key:
                continue
            if key == raw_key and len(self._known) < self._max_known_keys:
                self._known.setdefault(key, key)  # valid and canonical as sent
            _add_header(store, key, rest[1:] if rest[:1] in (" ", "\t") else rest, text)
        return _finish(store, text)


def encode_action(action: Mapping[str, object], encoding: str = "utf-8") -> bytes:
    """Serialise an action to wire bytes; ``Action`` first, then insertion order.

    List or tuple values become repeated headers (``Variable``). Raises
    ``ValueError`` for a CR or LF in a key or value (header injection: a
    caller-supplied CallerID must never smuggle in a second action), a colon
    or space in a key, or a missing value.
    """
    items = list(action.items())
    items.sort(key=lambda item: item[0].lower() != "action")
    lines: list[str] = []
    for key, value in items:
        if not isinstance(key, str) or not _HEADER_NAME.fullmatch(key):
            raise ValueError(f"invalid AMI header name {key!r}")
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if item is None:
                raise ValueError(f"AMI header {key!r} has no value (None)")
            text = item if isinstance(item, str) else str(item)
            if "\r" in text or "\n" in text:
                raise ValueError(
                    f"CR/LF in the value of AMI header {key!r} (header injection): {text!r}"
                )
            lines.append(f"{key}: {text}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode(encoding)


def starts_event_list(response: AmiMessage) -> bool:
    """True when a Response opens a list (``EventList: start``, ``... will follow``).

    Mirrors panoramisk's ``Action.multi`` for list actions, but not its
    treatment of async Originate: that action completes with its Response, and
    the later ``OriginateResponse`` event is dispatched like any other event.
    """
    if str(response.get("Response", "")).lower() not in ("success", "follows"):
        return False
    if str(response.get("EventList", "")).lower() == "start":
        return True
    if str(response.get("SubEvent", "")).lower() == "start":
        return True
    return "will follow" in str(response.get("Message", "")).lower()


def ends_event_list(message: AmiMessage) -> bool:
    """True for the message closing a list (``...Complete`` event, ``EventList: Complete``)."""
    if str(message.get("Event", "")).lower().endswith("complete"):
        return True
    if str(message.get("EventList", "")).lower() == "complete":
        return True
    return str(message.get("SubEvent", "")).lower() == "end"
