"""asyncio protocol for one AMI TCP connection, built on panoramisk's.

The protocol only feeds bytes to :class:`~cti.ami.framing.FrameBuffer`,
parses complete messages, and routes them: replies (and the events of a list
reply) to the pending action they answer, every other event to the link's
dispatch queue. It owns no tasks and makes no decisions about reconnecting;
that is :class:`~cti.ami.link.AMILink`'s job.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from panoramisk.ami_protocol import AMIProtocol

from .framing import (
    FrameBuffer,
    MalformedMessage,
    MessageParser,
    OversizeMessage,
    Region,
    encode_action,
    ends_event_list,
    parse_message,
    starts_event_list,
)
from .message import AmiMessage

__all__ = ["AMIStats", "EventBacklog", "HardenedAMIProtocol", "PendingAction"]

PAUSE_WARNING_INTERVAL_S = 60.0
RECENT_SKIPS = 8
"""How many skipped messages a connection keeps for inspection (each ``raw``
is bounded by ``max_message_bytes``)."""


class EventBacklog:
    """Events read but not yet dispatched, in arrival order.

    The protocol appends the events of a whole read, then sets ``ready`` once;
    the link's dispatcher drains them in a loop. Cheaper than an
    ``asyncio.Queue``, whose ``put``/``get`` pair costs a coroutine per event.
    """

    def __init__(self) -> None:
        self.items: deque[AmiMessage] = deque()
        self.ready = asyncio.Event()

    def put_nowait(self, message: AmiMessage) -> None:
        self.items.append(message)
        self.ready.set()

    def get_nowait(self) -> AmiMessage:
        """The oldest event; ``IndexError`` when empty."""
        return self.items.popleft()

    def qsize(self) -> int:
        return len(self.items)


@dataclass
class AMIStats:
    """Counters of one link, over all its connections.

    ``messages_received`` counts well-formed messages (replies and events);
    skipped ones are in ``malformed_skipped`` / ``oversize_dropped``, and
    events dropped unparsed by the link's event filter in ``events_filtered``.

    ``logins`` counts sessions (``reconnects`` is all of them but the first);
    ``connect_failures`` every failed connect or login attempt, of which
    ``login_failures`` were refused by Asterisk; ``connections_lost`` the
    sessions that ended other than by ``close()``; ``handler_failures`` the
    event handler calls that raised or were cancelled.
    """

    messages_received: int = 0
    events_dispatched: int = 0
    events_filtered: int = 0
    malformed_skipped: int = 0
    oversize_dropped: int = 0
    reconnects: int = 0
    ping_timeouts: int = 0
    actions_timed_out: int = 0
    logins: int = 0
    connect_failures: int = 0
    login_failures: int = 0
    connections_lost: int = 0
    handler_failures: int = 0


ActionOutcome = AmiMessage | list[AmiMessage] | Exception


@dataclass(eq=False)
class PendingAction:
    """An action waiting for its reply, keyed by ActionID in the link's table.

    Completion mirrors panoramisk's ``Action``: a single Response completes
    it, unless it opens an event list, which a ``...Complete`` event closes;
    the result is then the list [Response, events..., Complete event].

    The outcome (that reply, or the error that ended the wait) goes to
    ``future`` for an awaited action, or straight to ``on_done`` for a posted
    one (no future, no callback scheduling: the routing path).
    """

    action: str
    action_id: str
    protocol: HardenedAMIProtocol
    future: asyncio.Future[AmiMessage | list[AmiMessage]] | None = None
    on_done: Callable[[ActionOutcome], None] | None = None
    deadline: float = math.inf
    replies: list[AmiMessage] = field(default_factory=list)
    done: bool = False

    def offer(self, message: AmiMessage) -> bool:
        """Take ``message`` if it belongs to this reply; True when taken."""
        if self.done or (self.future is not None and self.future.done()):
            return False
        if not self.replies:
            # Only a Response starts a reply: an event carrying the ActionID
            # (OriginateResponse even has a Response header) is a normal event.
            if "Response" not in message or "Event" in message:
                return False
            self.replies.append(message)
            if not starts_event_list(message):
                self.settle(message)
            return True
        self.replies.append(message)
        if ends_event_list(message):
            self.settle(list(self.replies))
        return True

    def settle(self, outcome: ActionOutcome) -> None:
        """Complete with the reply or an error; later calls change nothing."""
        if self.done:
            return
        self.done = True
        future = self.future
        if future is not None and not future.done():
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        if self.on_done is not None:
            try:
                self.on_done(outcome)
            except Exception:
                logging.getLogger(__name__).exception(
                    "AMI: reply handler of %s %s failed", self.action, self.action_id
                )


class HardenedAMIProtocol(AMIProtocol):  # type: ignore[misc]  # panoramisk is untyped
    """panoramisk's ``AMIProtocol`` with the five known defects fixed.

    * bytes are framed, and decoded per complete message (split UTF-8 safe);
    * a malformed message is logged, counted and skipped, never raised;
    * the receive buffer is bounded (``max_message_bytes``);
    * nothing is requeued on connection loss (the link fails pending actions);
    * reading pauses while the dispatch queue is above ``high_watermark``.

    With an ``event_filter``, events whose name is not in it are counted and
    dropped before they are parsed (``FullyBooted``, replies and the events of
    a list reply always pass).

    ``connection_lost`` reports to ``on_lost(protocol, reason)``; ``reason``
    is the transport's exception, or the reason passed to :meth:`abort`, or
    None when the peer closed the connection.

    ``recent_skips`` holds the errors of the last messages skipped on this
    connection (at most :data:`RECENT_SKIPS`, oldest first); each is also
    counted in the stats and logged.
    """

    def __init__(
        self,
        *,
        name: str,
        pending: MutableMapping[str, PendingAction],
        events: EventBacklog,
        stats: AMIStats,
        booted: asyncio.Event,
        on_lost: Callable[[HardenedAMIProtocol, BaseException | None], None],
        encoding: str = "utf-8",
        max_message_bytes: int = 1 << 20,
        high_watermark: int = 1_000,
        event_filter: frozenset[str] | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__()
        # FullyBooted is the protocol's own business (resync waits for it).
        self._event_filter = None if event_filter is None else event_filter | {"FullyBooted"}
        self.name = name
        self.encoding = encoding
        self._pending = pending
        self._events = events
        self._stats = stats
        self._booted = booted
        self._on_lost = on_lost
        self._high_watermark = high_watermark
        self._logger = logger or logging.getLogger(__name__)
        self._frames = FrameBuffer(max_message_bytes)
        self._parser = MessageParser()
        self._abort_reason: BaseException | None = None
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reading_paused = False
        self.pause_count = 0
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._outgoing: list[bytes] = []
        self._pause_warned_at = -math.inf
        self.recent_skips: deque[MalformedMessage] = deque(maxlen=RECENT_SKIPS)
        # Resolved with the banner line (None if the peer sent none) as soon
        # as the first bytes show whether there is one.
        self.banner_received: asyncio.Future[str | None] = loop.create_future()
        # Resolved with the loss reason when the connection is gone.
        self.lost: asyncio.Future[BaseException | None] = loop.create_future()
        # Nobody awaits banner_received after a failed connect: mark its
        # exception retrieved so asyncio does not log it as forgotten.
        self.banner_received.add_done_callback(lambda fut: fut.cancelled() or fut.exception())

    def set_event_filter(self, event_filter: frozenset[str] | None) -> None:
        """The event names to let through from the next read on (None: all)."""
        self._event_filter = None if event_filter is None else event_filter | {"FullyBooted"}

    # -- asyncio.Protocol -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # panoramisk's connection_made installs its own logger; keep ours.
        self.log = self._logger

    def data_received(self, data: bytes) -> None:
        events = self._events
        queued = len(events.items)
        wanted = self._event_filter
        for item in self._frames.feed_regions(data, self.encoding):
            if isinstance(item, Region):
                self._take_region(item, wanted)
            elif isinstance(item, MalformedMessage):
                self._skip(item)
            else:
                # The careful path (first read, bare LFs, bodies): parsed
                # before the filter can look at it.
                try:
                    message = parse_message(item, self.encoding)
                except MalformedMessage as exc:
                    self._skip(exc)
                    continue
                if (
                    wanted is not None
                    and "ActionID" not in message
                    and "Event" in message
                    and message["Event"] not in wanted
                ):
                    self._stats.events_filtered += 1
                    continue
                self._route(message)
        if len(events.items) != queued:
            events.ready.set()
        if (
            len(events.items) != queued
            and not self.reading_paused
            and len(events.items) >= self._high_watermark
        ):
            self.pause_reading()
        if self._frames.banner_checked and not self.banner_received.done():
            banner = self._frames.banner
            if banner is not None:
                self.version = banner.partition("/")[2].strip() or None
            self.banner_received.set_result(banner)

    def _take_region(self, region: Region, wanted: frozenset[str] | None) -> None:
        """The messages of one decoded region: plain events straight into the
        backlog in one step; replies and the rest routed one by one, in order."""
        plain, others, filtered = self._parser.split_region(region, wanted)
        stats = self._stats
        stats.events_filtered += filtered
        stats.messages_received += len(plain)
        backlog = self._events.items
        if not others:
            backlog.extend(plain)
            return
        done = 0
        for position, other in others:
            backlog.extend(plain[done:position])
            done = position
            if isinstance(other, str):
                try:
                    other = self._parser.parse(other)
                except MalformedMessage as exc:
                    self._skip(exc)
                    continue
            self._route(other)
        backlog.extend(plain[done:])

    def _route(self, message: AmiMessage) -> None:
        self._stats.messages_received += 1
        try:
            self.handle_message(message)
        except Exception:
            # A routing bug must not kill the connection and the rest of
            # this read with it (panoramisk defect 2).
            self.log.exception("AMI %s: failed to route message %r", self.name, message)

    def eof_received(self) -> bool | None:
        return None  # close the transport: AMI has no half-closed use

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        reason: BaseException | None = exc if exc is not None else self._abort_reason
        if not self.banner_received.done():
            self.banner_received.set_exception(
                ConnectionError("connection closed before the AMI banner")
            )
        if not self.lost.done():
            self.lost.set_result(reason)
        self._on_lost(self, reason)

    # -- routing ------------------------------------------------------------

    def handle_message(self, message: AmiMessage) -> None:
        """Route a reply to its pending action, anything else to the event backlog."""
        action_id = message.get("ActionID")
        if action_id:
            pending = self._pending.get(action_id)
            if pending is not None and pending.protocol is self and pending.offer(message):
                if pending.done:
                    del self._pending[action_id]
                return
        event = message.get("Event")
        if event is None:
            self.log.debug(
                "AMI %s: ignoring reply for ActionID %r with no waiting action "
                "(timed out or cancelled)",
                self.name,
                action_id,
            )
            return
        if event == "FullyBooted":
            self._booted.set()
        self._events.put_nowait(message)

    def _skip(self, exc: MalformedMessage) -> None:
        self.recent_skips.append(exc)
        if isinstance(exc, OversizeMessage):
            self._stats.oversize_dropped += 1
            self.log.warning("AMI %s: dropped oversize message: %s", self.name, exc)
        else:
            self._stats.malformed_skipped += 1
            self.log.warning("AMI %s: skipped malformed message: %s", self.name, exc)

    # -- writing and transport control ----------------------------------------

    def send(self, data: Mapping[str, Any], as_list: bool | None = None) -> None:
        """Write one action. Reply tracking belongs to the link, not here."""
        self.write_payload(encode_action(data, self.encoding))

    def write_payload(self, payload: bytes) -> None:
        """Queue one encoded action; the actions of one loop iteration go out
        in a single write (one system call instead of one per Redirect)."""
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("AMI transport is closed")
        if not self._outgoing:
            self._loop.call_soon(self.flush)
        self._outgoing.append(payload)

    def flush(self) -> None:
        """Write what :meth:`write_payload` queued, in order."""
        if not self._outgoing:
            return
        data = b"".join(self._outgoing)
        self._outgoing.clear()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def is_closing(self) -> bool:
        return self.closed or self.transport is None or self.transport.is_closing()

    def pause_reading(self) -> None:
        """Stop reading from the socket (dispatch queue above high watermark)."""
        if self.reading_paused or self.is_closing():
            return
        assert self.transport is not None
        self.transport.pause_reading()
        self.reading_paused = True
        self.pause_count += 1
        # A burst pauses and resumes many times a second: warn once a minute.
        now = self._loop.time()
        if now - self._pause_warned_at >= PAUSE_WARNING_INTERVAL_S:
            self.log.warning(
                "AMI %s: %d events waiting for dispatch; pausing reads from Asterisk "
                "(%d pauses on this connection so far; warned at most once a minute)",
                self.name,
                self._events.qsize(),
                self.pause_count,
            )
            self._pause_warned_at = now

    def resume_reading(self) -> None:
        """Read again (dispatch queue back under the low watermark)."""
        if not self.reading_paused:
            return
        self.reading_paused = False
        if self.is_closing():
            return
        assert self.transport is not None
        self.transport.resume_reading()
        self.log.debug("AMI %s: dispatch caught up; resuming reads", self.name)

    def close(self) -> None:
        """Close gracefully (flush writes); never requeues pending actions."""
        self.flush()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self, reason: BaseException | None = None) -> None:
        """Drop the connection now, without flushing: a half-open link never flushes."""
        if reason is not None and self._abort_reason is None:
            self._abort_reason = reason
        if self.transport is not None:
            self.transport.abort()
