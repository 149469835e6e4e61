"""AMILink: one supervised, logged-in AMI connection to one Asterisk.

The link owns exactly two long-lived tasks:

* the *supervisor* connects, logs in, runs the connect handlers and the ping
  watchdog for the session, and reconnects with :class:`~common.backoff.Backoff`
  when the connection is lost;
* the *dispatcher* hands every event to every handler, one event at a time,
  in arrival order.

Actions are futures keyed by ActionID, each with a timeout, failed with
:class:`~cti.ami.errors.AMIDisconnected` when the connection drops and never
resent: after a reconnect only the caller knows whether retrying is safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import inspect
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple
from uuid import uuid4

from common.backoff import Backoff, retry_forever

from .errors import (
    AMIActionTimeout,
    AMIDisconnected,
    AMILoginFailed,
    AMINotConnected,
)
from .framing import encode_action
from .message import AmiMessage, canonical_header
from .protocol import AMIStats, EventBacklog, HardenedAMIProtocol, PendingAction

__all__ = [
    "AMILink",
    "AMIStats",
    "ConnectHandler",
    "DisconnectHandler",
    "EventHandler",
    "HandlerFailure",
    "RetryWait",
]

EventHandler = Callable[[AmiMessage], Awaitable[None] | None]
# Events dispatched in a row before the dispatcher yields to the event loop.
DISPATCH_SLICE = 256

ConnectHandler = Callable[[], Awaitable[None]]
DisconnectHandler = Callable[[BaseException | None], Awaitable[None] | None]

RETRY_WAITS_KEPT = 64
"""How many waits of one outage :attr:`AMILink.retry_waits` keeps (the latest)."""


class RetryWait(NamedTuple):
    """One wait of the supervisor before it tries to connect again."""

    attempt: int
    """The attempt the wait precedes: 1 after a lost session, ``n + 1`` after
    the ``n``-th failed attempt in a row."""
    delay_s: float
    cause: BaseException | None
    """The failed attempt's error, or the lost session's reason (None: the
    peer closed the connection)."""


@dataclass(frozen=True)
class HandlerFailure:
    """An event handler call that raised, or was cancelled."""

    handler: EventHandler
    event: str
    """The name of the event it failed on."""
    error: BaseException


def _describe(reason: BaseException | None) -> str:
    if reason is None:
        return "closed by peer"
    text = str(reason)
    return text if text else type(reason).__name__


class AMILink:
    """A supervised AMI connection: login, reconnect, actions, ordered events.

    Create it, register handlers, ``await start()``; ``await close()`` on
    shutdown. See the module docstring for the task model.

    ``queue_high_watermark`` / ``queue_low_watermark``: when more events than
    the high mark wait for dispatch, reading from Asterisk pauses (TCP then
    pushes back on Asterisk) until the queue drains below the low mark. The
    marks are low on purpose: an event parsed long before it is dispatched
    has left the CPU caches (1,000 instead of 10,000 measured 7 % more
    events/s in ``bench/bench_ingest.py``); the kernel's socket buffer holds
    the rest of a burst.

    ``event_filter``: the names of the events the handlers need. Any other
    event is read by name, counted (``stats.events_filtered``) and dropped
    without being parsed; ``FullyBooted``, action replies and the events of a
    list reply always pass. None (the default) passes everything.

    Besides ``stats``, the link keeps what an operator (or a test) asks about
    its connection: ``last_connect_error`` (the error of the latest failed
    connect or login attempt, an :class:`AMILoginFailed` when Asterisk
    refused the credentials; kept after a later success), ``retry_waits``
    (the waits of the current or latest outage, oldest first) and
    ``last_handler_failure``; :meth:`add_state_listener` is told when they change.
    Every fact is also logged.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str,
        secret: str,
        name: str = "ami",
        action_timeout_s: float = 10.0,
        ping_interval_s: float = 5.0,
        connect_timeout_s: float = 5.0,
        backoff: Backoff | None = None,
        max_message_bytes: int = 1 << 20,
        events: str = "on",
        encoding: str = "utf-8",
        logger: logging.Logger | None = None,
        queue_high_watermark: int = 1_000,
        queue_low_watermark: int = 100,
        event_filter: Collection[str] | None = None,
    ) -> None:
        if not host:
            raise ValueError("AMILink host must not be empty")
        if not 0 < port < 65536:
            raise ValueError(f"AMILink port must be within 1..65535, got {port!r}")
        for key, value in (
            ("action_timeout_s", action_timeout_s),
            ("ping_interval_s", ping_interval_s),
            ("connect_timeout_s", connect_timeout_s),
        ):
            if not value > 0:
                raise ValueError(f"AMILink {key} must be > 0, got {value!r}")
        if not 0 <= queue_low_watermark < queue_high_watermark:
            raise ValueError(
                "AMILink needs 0 <= queue_low_watermark < queue_high_watermark, got "
                f"{queue_low_watermark!r} and {queue_high_watermark!r}"
            )
        self.name = name
        self.host = host
        self.port = port
        self._username = username
        self._secret = secret
        self._action_timeout_s = action_timeout_s
        self._ping_interval_s = ping_interval_s
        self._connect_timeout_s = connect_timeout_s
        self._backoff = backoff if backoff is not None else Backoff()
        self._max_message_bytes = max_message_bytes
        self._events_mask = events
        self._encoding = encoding
        self._log = logger if logger is not None else logging.getLogger(__name__)
        self._high_watermark = queue_high_watermark
        self._low_watermark = queue_low_watermark
        self._event_filter = None if event_filter is None else frozenset(event_filter)

        self.stats = AMIStats()
        self.version: str | None = None
        self.last_connect_error: BaseException | None = None
        self.retry_waits: deque[RetryWait] = deque(maxlen=RETRY_WAITS_KEPT)
        self.last_handler_failure: HandlerFailure | None = None
        # Set, then replaced, on every change of the connection state.
        self._state_listeners: list[Callable[[], None]] = []
        self._event_handlers: list[EventHandler] = []
        self._connect_handlers: list[ConnectHandler] = []
        self._disconnect_handlers: list[DisconnectHandler] = []
        self._pending: dict[str, PendingAction] = {}
        # Posted actions by deadline, and the one timer that expires them.
        self._deadlines: list[tuple[float, int, PendingAction]] = []
        self._expiry: asyncio.TimerHandle | None = None
        self._deadline_seq = itertools.count()
        self._events = EventBacklog()
        self._protocol: HardenedAMIProtocol | None = None
        self._logged_in = asyncio.Event()
        self._fully_booted = asyncio.Event()
        self._action_id_prefix = f"{name}-{uuid4().hex[:8]}"
        self._action_seq = itertools.count(1)
        self._supervisor: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._close_task: asyncio.Task[None] | None = None
        self._closing = False
        self._logged_in_once = False

    # -- public API ---------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        """True while logged in on a connection that is not closing."""
        protocol = self._protocol
        return self._logged_in.is_set() and protocol is not None and not protocol.is_closing()

    def set_event_filter(self, event_filter: Collection[str] | None) -> None:
        """The event names to let through from now on (None: all), on the
        current connection and the next ones."""
        self._event_filter = None if event_filter is None else frozenset(event_filter)
        protocol = self._protocol
        if protocol is not None:
            protocol.set_event_filter(self._event_filter)

    def add_event_handler(self, handler: EventHandler) -> None:
        """Receive every event that is not part of an action's reply.

        Handlers run one event at a time, in arrival order, in the link's
        dispatcher task; a coroutine result is awaited before the next event.
        A handler exception is logged with the event name and dispatching
        continues. Filtering by event name is the handler's business.
        """
        self._event_handlers.append(handler)

    def add_connect_handler(self, handler: ConnectHandler) -> None:
        """Await ``handler()`` after every successful login (first and reconnects).

        It runs under the supervisor while the dispatcher and the ping
        watchdog keep running, so it may send actions and wait for events
        (e.g. :meth:`wait_fully_booted` then a CoreShowChannels resync). It is
        cancelled if the connection drops meanwhile; exceptions are logged.
        """
        self._connect_handlers.append(handler)

    def add_disconnect_handler(self, handler: DisconnectHandler) -> None:
        """Call ``handler(reason)`` when a logged-in session ends.

        ``reason`` is the loss exception (e.g. ``TimeoutError`` from the ping
        watchdog) or None (peer closed, or :meth:`close`). Exceptions are logged.
        """
        self._disconnect_handlers.append(handler)

    async def start(self) -> None:
        """Start the supervisor and dispatcher tasks; returns without waiting for login."""
        if self._closing:
            raise RuntimeError(f"AMI {self.name}: start() after close()")
        if self._supervisor is not None:
            return
        self._dispatcher = asyncio.create_task(
            self._dispatch_events(), name=f"ami-{self.name}-dispatcher"
        )
        self._dispatcher.add_done_callback(self._report_task_death)
        self._supervisor = asyncio.create_task(
            self._supervise(), name=f"ami-{self.name}-supervisor"
        )
        self._supervisor.add_done_callback(self._report_task_death)

    async def wait_connected(self, timeout_s: float | None = None) -> None:
        """Wait until logged in; raises ``TimeoutError`` after ``timeout_s``."""
        await asyncio.wait_for(self._logged_in.wait(), timeout_s)

    def add_state_listener(self, listener: Callable[[], None]) -> None:
        """Called after every change of the connection state: a login, a
        failed connect or login attempt, a retry wait, a lost connection, a
        failed event handler, the end of :meth:`close`. The state is in
        :attr:`stats`, :attr:`retry_waits`, :attr:`last_connect_error`,
        :attr:`last_handler_failure` and :attr:`connected`."""
        self._state_listeners.append(listener)

    async def wait_fully_booted(self, timeout_s: float) -> bool:
        """True once ``FullyBooted`` was received on the current connection.

        The flag is reset on every new connection. False after ``timeout_s``.
        """
        try:
            await asyncio.wait_for(self._fully_booted.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def send_action(
        self, action: Mapping[str, Any], *, timeout_s: float | None = None
    ) -> AmiMessage | list[AmiMessage]:
        """Send one action and wait for its complete reply.

        An ActionID is assigned when absent. A list action (``EventList:
        start``) returns [Response, events..., ``...Complete`` event]; any
        other returns its Response, including ``Response: Error`` (inspect
        ``.success``). Raises :class:`AMINotConnected` at once when not logged
        in, :class:`AMIActionTimeout` after ``timeout_s`` (default
        ``action_timeout_s``), :class:`AMIDisconnected` if the connection
        drops first, ``ValueError`` for an unsendable action (CR/LF in a
        value, no ``Action``). An action is never resent after a reconnect.
        """
        protocol, timeout = self._ready_to_send(action, timeout_s)
        return await self._request(protocol, action, timeout)

    async def close(self) -> None:
        """Stop both tasks, fail pending actions, close the connection.

        Idempotent and safe to call concurrently or from a handler: the
        shutdown runs once in its own task that every caller awaits.
        """
        if self._close_task is None:
            self._closing = True
            self._close_task = asyncio.create_task(self._shutdown(), name=f"ami-{self.name}-close")
            self._close_task.add_done_callback(self._report_task_death)
        await asyncio.shield(self._close_task)

    # -- actions ------------------------------------------------------------------

    def _next_action_id(self) -> str:
        return f"{self._action_id_prefix}-{next(self._action_seq)}"

    def post_action(
        self,
        action: Mapping[str, Any],
        *,
        on_done: Callable[[AmiMessage | list[AmiMessage] | Exception], None] | None = None,
        timeout_s: float | None = None,
    ) -> None:
        """Send one action without waiting for its reply (the routing path).

        ``on_done`` is called later with the reply, or with the
        :class:`AMIActionTimeout` / :class:`AMIDisconnected` that ended the
        wait, straight from the code that read the reply. Cheaper than
        ``send_action``: no task, no future, no timer of its own (one timer
        serves all posted actions).
        Raises :class:`AMINotConnected` and ``ValueError`` at once, like
        :meth:`send_action`.
        """
        protocol, timeout = self._ready_to_send(action, timeout_s)
        loop = asyncio.get_running_loop()
        pending = self._submit(protocol, action, on_done=on_done)
        pending.deadline = loop.time() + timeout
        # One timer for all posted actions, at the earliest deadline.
        heapq.heappush(self._deadlines, (pending.deadline, next(self._deadline_seq), pending))
        if self._expiry is None or pending.deadline < self._expiry.when():
            if self._expiry is not None:
                self._expiry.cancel()
            self._expiry = loop.call_at(pending.deadline, self._expire_posted)

    def _ready_to_send(
        self, action: Mapping[str, Any], timeout_s: float | None
    ) -> tuple[HardenedAMIProtocol, float]:
        """The connection to send on and the timeout; raises when there is none."""
        timeout = self._action_timeout_s if timeout_s is None else timeout_s
        if not timeout > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        protocol = self._protocol
        if protocol is None or not self.connected:
            raise AMINotConnected.for_action(
                link=self.name, endpoint=self.endpoint, action=str(action.get("Action", "?"))
            )
        return protocol, timeout

    def _expire_posted(self) -> None:
        """Fail the posted actions whose deadline passed; re-arm for the next."""
        self._expiry = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadlines = self._deadlines
        while deadlines and (deadlines[0][2].done or deadlines[0][0] <= now):
            deadline, _, pending = heapq.heappop(deadlines)
            if pending.done:
                continue
            if self._pending.get(pending.action_id) is pending:
                del self._pending[pending.action_id]
            self.stats.actions_timed_out += 1
            pending.settle(
                AMIActionTimeout.for_action(
                    link=self.name,
                    action=pending.action,
                    action_id=pending.action_id,
                    timeout_s=self._action_timeout_s,
                )
            )
        if deadlines:
            self._expiry = loop.call_at(deadlines[0][0], self._expire_posted)

    def _submit(
        self,
        protocol: HardenedAMIProtocol,
        action: Mapping[str, Any],
        *,
        on_done: Callable[[AmiMessage | list[AmiMessage] | Exception], None] | None = None,
    ) -> PendingAction:
        """Validate, register and write one action. Its outcome goes to
        ``on_done`` when given (a posted action), else to ``.future``."""
        fields = {canonical_header(key): value for key, value in action.items()}
        name = fields.get("Action")
        if not isinstance(name, str) or not name:
            raise ValueError(f"an AMI action needs an 'Action' field, got {dict(action)!r}")
        if "ActionID" not in fields:
            fields["ActionID"] = self._next_action_id()
        action_id = str(fields["ActionID"])
        # Validate and encode before registering anything: a rejected action
        # (header injection) must leave no trace.
        payload = encode_action(fields, self._encoding)
        if action_id in self._pending:
            raise ValueError(f"AMI {self.name}: ActionID {action_id!r} is already waiting")
        pending = PendingAction(
            action=name,
            action_id=action_id,
            protocol=protocol,
            future=None if on_done is not None else asyncio.get_running_loop().create_future(),
            on_done=on_done,
        )
        try:
            protocol.write_payload(payload)
        except ConnectionError as exc:
            raise AMINotConnected.for_action(
                link=self.name, endpoint=self.endpoint, action=name
            ) from exc
        self._pending[action_id] = pending
        return pending

    async def _request(
        self,
        protocol: HardenedAMIProtocol,
        action: Mapping[str, Any],
        timeout_s: float,
        *,
        count_timeout: bool = True,
    ) -> AmiMessage | list[AmiMessage]:
        pending = self._submit(protocol, action)
        assert pending.future is not None  # no on_done: awaited
        try:
            return await asyncio.wait_for(pending.future, timeout_s)
        except TimeoutError:
            if count_timeout:
                self.stats.actions_timed_out += 1
            raise AMIActionTimeout.for_action(
                link=self.name,
                action=pending.action,
                action_id=pending.action_id,
                timeout_s=timeout_s,
            ) from None
        finally:
            if self._pending.get(pending.action_id) is pending:
                del self._pending[pending.action_id]

    def _fail_pending(self, protocol: HardenedAMIProtocol | None, reason: str) -> None:
        """Fail the actions sent on ``protocol`` (all of them when None)."""
        for action_id, pending in list(self._pending.items()):
            if protocol is not None and pending.protocol is not protocol:
                continue
            del self._pending[action_id]
            pending.settle(
                AMIDisconnected.for_action(
                    link=self.name,
                    action=pending.action,
                    action_id=action_id,
                    reason=reason,
                )
            )

    # -- supervisor ---------------------------------------------------------------

    async def _supervise(self) -> None:
        while True:
            protocol = await retry_forever(
                self._connect_and_login,
                backoff=self._backoff,
                on_failure=self._on_connect_failure,
            )
            reason = await self._run_session(protocol)
            await self._run_disconnect_handlers(reason)
            # Wait before reconnecting even after a session that worked, so a
            # server that accepts and then drops us is not hammered.
            self.retry_waits.clear()  # a new outage
            wait = RetryWait(1, self._backoff.compute(1), reason)
            self._note_retry_wait(wait)
            await asyncio.sleep(wait.delay_s)

    def _on_connect_failure(self, failures: int, exc: BaseException, delay_s: float) -> None:
        self.stats.connect_failures += 1
        self.last_connect_error = exc
        if isinstance(exc, AMILoginFailed):
            self.stats.login_failures += 1
            self._log.error("%s", exc)
        else:
            self._log.warning(
                "AMI %s cannot connect to %s: %s", self.name, self.endpoint, _describe(exc)
            )
        self._note_retry_wait(RetryWait(failures + 1, delay_s, exc))

    def _note_retry_wait(self, wait: RetryWait) -> None:
        self.retry_waits.append(wait)
        self._log.info(
            "AMI %s reconnecting in %.2f s (attempt %d)", self.name, wait.delay_s, wait.attempt
        )
        self._state_change()

    def _state_change(self) -> None:
        for listener in self._state_listeners:
            try:
                listener()
            except Exception:
                self._log.exception("AMI %s: state listener failed", self.name)

    def _make_protocol(self) -> HardenedAMIProtocol:
        return HardenedAMIProtocol(
            name=self.name,
            pending=self._pending,
            events=self._events,
            stats=self.stats,
            booted=self._fully_booted,
            on_lost=self._on_connection_lost,
            encoding=self._encoding,
            max_message_bytes=self._max_message_bytes,
            high_watermark=self._high_watermark,
            event_filter=self._event_filter,
            logger=self._log,
        )

    async def _connect_and_login(self) -> HardenedAMIProtocol:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, protocol = await loop.create_connection(
                    self._make_protocol, self.host, self.port
                )
        except TimeoutError:
            raise TimeoutError(
                f"no TCP connection within {self._connect_timeout_s:.2f} s"
            ) from None
        try:
            try:
                async with asyncio.timeout(self._connect_timeout_s):
                    banner = await protocol.banner_received
            except TimeoutError:
                raise TimeoutError(
                    f"no AMI banner within {self._connect_timeout_s:.2f} s "
                    "(is this an Asterisk manager port?)"
                ) from None
            self.version = protocol.version
            self._log.info(
                "AMI %s connected to %s (%s)", self.name, self.endpoint, banner or "no banner"
            )
            # FullyBooted follows the login reply at once, often in the same
            # read: clear the flag before sending Login, never after.
            self._fully_booted.clear()
            self._protocol = protocol
            reply = await self._request(
                protocol,
                {
                    "Action": "Login",
                    "Username": self._username,
                    "Secret": self._secret,
                    "Events": self._events_mask,
                },
                self._action_timeout_s,
            )
            if not isinstance(reply, AmiMessage) or not reply.success:
                detail = (
                    reply.get("Message", "")
                    if isinstance(reply, AmiMessage)
                    else "unexpected list reply"
                )
                raise AMILoginFailed.for_credentials(
                    link=self.name,
                    username=self._username,
                    host=self.host,
                    port=self.port,
                    detail=detail or "no reason given",
                )
            if protocol.is_closing() or self._protocol is not protocol:
                # Lost between the login reply and now: not a session.
                raise ConnectionError("connection lost right after login")
        except BaseException:
            if self._protocol is protocol:
                self._protocol = None
            protocol.abort()
            raise
        if self._logged_in_once:
            self.stats.reconnects += 1
        self._logged_in_once = True
        self.stats.logins += 1
        self._logged_in.set()
        self._log.info("AMI %s logged in", self.name)
        self._state_change()
        return protocol

    async def _run_session(self, protocol: HardenedAMIProtocol) -> BaseException | None:
        watchdog = asyncio.create_task(
            self._watch_pings(protocol), name=f"ami-{self.name}-ping-watchdog"
        )
        on_connect = asyncio.create_task(
            self._run_connect_handlers(), name=f"ami-{self.name}-connect-handlers"
        )
        try:
            return await asyncio.shield(protocol.lost)
        finally:
            for task in (on_connect, watchdog):
                task.cancel()
            for task in (on_connect, watchdog):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _on_connection_lost(
        self, protocol: HardenedAMIProtocol, reason: BaseException | None
    ) -> None:
        text = "link closed" if self._closing else _describe(reason)
        self._fail_pending(protocol, text)
        if protocol is not self._protocol:
            return
        self._protocol = None
        was_logged_in = self._logged_in.is_set()
        self._logged_in.clear()
        self._fully_booted.clear()
        if self._closing:
            self._log.info("AMI %s closed", self.name)
        elif was_logged_in:
            self.stats.connections_lost += 1
            self._log.warning("AMI %s connection lost: %s", self.name, text)
        self._state_change()

    async def _watch_pings(self, protocol: HardenedAMIProtocol) -> None:
        """Ping every interval; drop the connection when a Pong is late.

        A half-open TCP link (Asterisk host gone, NAT entry expired) never
        errors by itself: this bounds its detection to two ping intervals.
        """
        interval = self._ping_interval_s
        while not protocol.is_closing():
            await asyncio.sleep(interval)
            if protocol.is_closing():
                return
            pauses_before = protocol.pause_count
            try:
                await self._request(protocol, {"Action": "Ping"}, interval, count_timeout=False)
            except AMIActionTimeout:
                if protocol.reading_paused or protocol.pause_count != pauses_before:
                    # We stopped reading ourselves (dispatch backlog): the
                    # Pong may be waiting in the socket; not the peer's fault.
                    continue
                self.stats.ping_timeouts += 1
                self._log.error(
                    "AMI %s: no Pong within %.2f s from %s; dropping the connection",
                    self.name,
                    interval,
                    self.endpoint,
                )
                protocol.abort(TimeoutError(f"no Pong within {interval:.2f} s"))
                return
            except (AMIDisconnected, AMINotConnected):
                return
            except Exception:
                self._log.exception("AMI %s: ping watchdog failed", self.name)
                return

    async def _run_connect_handlers(self) -> None:
        for handler in list(self._connect_handlers):
            try:
                result = handler()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self._log.exception("AMI %s: connect handler %r failed", self.name, handler)

    async def _run_disconnect_handlers(self, reason: BaseException | None) -> None:
        for handler in list(self._disconnect_handlers):
            try:
                result = handler(reason)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self._log.exception("AMI %s: disconnect handler %r failed", self.name, handler)

    # -- dispatcher ---------------------------------------------------------------

    async def _dispatch_events(self) -> None:
        backlog = self._events
        items = backlog.items
        low_watermark = self._low_watermark
        while True:
            await backlog.ready.wait()
            backlog.ready.clear()
            slice_left = DISPATCH_SLICE
            while items:
                if not slice_left:
                    # A long backlog must not starve action replies and timers.
                    await asyncio.sleep(0)
                    slice_left = DISPATCH_SLICE
                    continue
                slice_left -= 1
                event = items.popleft()
                if len(items) <= low_watermark:
                    protocol = self._protocol
                    if protocol is not None and protocol.reading_paused:
                        protocol.resume_reading()
                for handler in self._event_handlers:
                    try:
                        result = handler(event)
                        if result is not None and inspect.isawaitable(result):
                            await result
                    except asyncio.CancelledError as exc:
                        task = asyncio.current_task()
                        if task is not None and task.cancelling():
                            raise
                        # A handler awaited something that was cancelled: its
                        # failure, not a request to stop dispatching.
                        self._handler_failed(handler, event, exc)
                        self._log.error(
                            "AMI %s: event handler %r was cancelled on %s event",
                            self.name,
                            handler,
                            event.event,
                        )
                    except Exception as exc:
                        self._handler_failed(handler, event, exc)
                        self._log.exception(
                            "AMI %s: event handler %r failed on %s event",
                            self.name,
                            handler,
                            event.event,
                        )
                self.stats.events_dispatched += 1

    def _handler_failed(
        self, handler: EventHandler, event: AmiMessage, error: BaseException
    ) -> None:
        self.stats.handler_failures += 1
        self.last_handler_failure = HandlerFailure(handler, event.event, error)
        self._state_change()

    # -- shutdown -----------------------------------------------------------------

    async def _shutdown(self) -> None:
        was_connected = self.connected
        for task in (self._supervisor,):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        protocol = self._protocol
        if protocol is not None:
            protocol.close()
            try:
                await asyncio.wait_for(asyncio.shield(protocol.lost), self._connect_timeout_s)
            except TimeoutError:
                protocol.abort()
        self._fail_pending(None, "link closed")
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self._deadlines.clear()
        self._protocol = None
        self._logged_in.clear()
        self._fully_booted.clear()
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        if was_connected:
            await self._run_disconnect_handlers(None)
        self._state_change()

    def _report_task_death(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._log.error("AMI %s: task %s died", self.name, task.get_name(), exc_info=exc)
