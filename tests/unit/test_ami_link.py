"""Unit tests for the hardened AMI protocol and AMILink.

For each of the five known panoramisk 1.4 defects there is a test proving the
fix and a ``test_plain_panoramisk_*`` test running the same scenario against
plain panoramisk and asserting the defect is present, so every check is shown
able to fail. Synchronisation uses futures, events, the fake server's
condition and the link's own state changes (``tests.waiting.link_state``);
the only bounded waits are in negative checks, as noted. Tests assert on the link's state
(stats, ``retry_waits``, ``last_connect_error``...), never on the wording of
its log lines.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.manager import Manager
from panoramisk.message import Message

from common.backoff import Backoff
from cti.ami import (
    AMIActionTimeout,
    AMIDisconnected,
    AMIError,
    AMILink,
    AMILoginFailed,
    AmiMessage,
    AMINotConnected,
    AMIStats,
    EventBacklog,
    HardenedAMIProtocol,
    OversizeMessage,
    PendingAction,
    RetryWait,
)
from tests.waiting import link_state

try:  # tests/unit may or may not be a package
    from .ami_fake_server import BANNER, FakeAMIServer, block
except ImportError:
    from ami_fake_server import BANNER, FakeAMIServer, block  # type: ignore[no-redef]

CJK_NAME = "张三丰·市民热线"
CJK_EVENT = (
    "Event: Newchannel\r\n"
    "Privilege: call,all\r\n"
    "Channel: PJSIP/trunk-00000001\r\n"
    "CallerIDNum: 13800138000\r\n"
    f"CallerIDName: {CJK_NAME}\r\n"
    "ConnectedLineName: 北京市12345热线\r\n"
    "Exten: 12345\r\n"
    "\r\n"
).encode()
FAST_BACKOFF = Backoff(base_s=0.02, cap_s=1.0, factor=2.0, jitter=0.0)


# -- helpers ------------------------------------------------------------------------


class FakeTransport(asyncio.Transport):
    """Records what the protocol does to its transport."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closing = False
        self.aborted = False
        self.pauses = 0
        self.resumes = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True
        self.aborted = True

    def pause_reading(self) -> None:
        self.pauses += 1

    def resume_reading(self) -> None:
        self.resumes += 1


def make_protocol(**kwargs: Any) -> tuple[HardenedAMIProtocol, FakeTransport, SimpleNamespace]:
    state = SimpleNamespace(
        pending={}, events=EventBacklog(), stats=AMIStats(), booted=asyncio.Event(), lost=[]
    )
    protocol = HardenedAMIProtocol(
        name="unit",
        pending=state.pending,
        events=state.events,
        stats=state.stats,
        booted=state.booted,
        on_lost=lambda proto, reason: state.lost.append(reason),
        **kwargs,
    )
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport, state


def drain(queue: EventBacklog) -> list[AmiMessage]:
    return [queue.get_nowait() for _ in range(queue.qsize())]


def make_plain_protocol() -> tuple[AMIProtocol, list[Message]]:
    """Plain panoramisk protocol wired the way panoramisk's Manager wires it."""
    dispatched: list[Message] = []
    protocol = AMIProtocol()
    protocol.connection_made(FakeTransport())
    protocol.encoding = "utf8"
    protocol.factory = SimpleNamespace(dispatch=dispatched.append)
    return protocol, dispatched


def delays(link: AMILink) -> list[tuple[int, float]]:
    """(attempt, delay_s) of the link's waits in its current or latest outage."""
    return [(wait.attempt, wait.delay_s) for wait in link.retry_waits]


def levels(caplog: pytest.LogCaptureFixture, logger: logging.Logger) -> list[int]:
    """The levels of the records *logger* emitted (their wording is not tested)."""
    return [r.levelno for r in caplog.records if r.name == logger.name]


@pytest.fixture
def link_logger(request: pytest.FixtureRequest) -> Iterator[logging.Logger]:
    logger = logging.getLogger(f"tests.ami.{request.node.name}")
    logger.setLevel(logging.DEBUG)
    yield logger
    logger.setLevel(logging.NOTSET)


@pytest.fixture
async def server() -> AsyncIterator[FakeAMIServer]:
    async with FakeAMIServer() as fake:
        yield fake


@pytest.fixture
async def make_link(link_logger: logging.Logger) -> AsyncIterator[Callable[..., AMILink]]:
    links: list[AMILink] = []

    def factory(fake: FakeAMIServer | None = None, **kwargs: Any) -> AMILink:
        options: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": fake.port if fake is not None else 1,
            "username": "hotline",
            "secret": "s3cret",
            "name": "test",
            "backoff": FAST_BACKOFF,
            "action_timeout_s": 2.0,
            "ping_interval_s": 5.0,
            "connect_timeout_s": 2.0,
            "logger": link_logger,
        }
        options.update(kwargs)
        link = AMILink(**options)
        links.append(link)
        return link

    yield factory
    for link in links:
        await link.close()


async def started(link: AMILink) -> AMILink:
    await link.start()
    await link.wait_connected(5)
    return link


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def plain_manager(fake: FakeAMIServer, **attributes: Any) -> tuple[Manager, SimpleNamespace]:
    """A plain panoramisk Manager logged in to ``fake`` (FullyBooted received)."""
    loop = asyncio.get_running_loop()
    state = SimpleNamespace(booted=loop.create_future(), disconnected=loop.create_future())

    def on_disconnect(manager: Manager, exc: BaseException | None) -> None:
        if not state.disconnected.done():
            state.disconnected.set_result(exc)

    manager = Manager(
        host="127.0.0.1",
        port=fake.port,
        username="hotline",
        secret="s3cret",
        loop=loop,
        on_disconnect=on_disconnect,
    )
    for key, value in attributes.items():
        setattr(manager, key, value)  # panoramisk int()-casts its delays in __init__

    def on_booted(manager: Manager, event: Message) -> None:
        if not state.booted.done():
            state.booted.set_result(event)

    manager.register_event("FullyBooted", on_booted)
    manager.connect()
    await asyncio.wait_for(state.booted, 5)
    return manager, state


# == 1. whole-message decoding ========================================================


async def test_split_utf8_survives_every_offset() -> None:
    stream = BANNER + CJK_EVENT
    for cut in range(len(BANNER), len(stream)):
        protocol, _, state = make_protocol()
        protocol.data_received(stream[:cut])
        protocol.data_received(stream[cut:])
        (event,) = drain(state.events)
        assert event["CallerIDName"] == CJK_NAME, cut
        assert event["ConnectedLineName"] == "北京市12345热线", cut
        assert protocol.version == "5.0.0"


def test_plain_panoramisk_drops_split_utf8() -> None:
    stream = BANNER + CJK_EVENT
    garbled = []
    for cut in range(len(BANNER), len(stream)):
        protocol, dispatched = make_plain_protocol()
        protocol.data_received(stream[:cut])
        protocol.data_received(stream[cut:])
        if [e["CallerIDName"] for e in dispatched] != [CJK_NAME] or dispatched[0][
            "ConnectedLineName"
        ] != "北京市12345热线":
            garbled.append(cut)
    # Every cut inside one of the 3-byte CJK characters loses that character.
    assert len(garbled) >= 2 * len("张三丰市民热线北京市热线")


# == 2. malformed messages are skipped, neighbours survive ============================


MALFORMED_READ = (
    b"Event: Before\r\nSeq: 1\r\n\r\n"
    b"Event: Hangup\r\nEvent: Hangup\r\nChannel: PJSIP/1-1\r\n\r\n"
    b"this is not an AMI message\r\n\r\n"
    b"\xff\xfe\x00\x81\x9c binary garbage\r\n\r\n"
    b"Event: BadByte\r\nCallerIDName: \xe5\xbc\xa0\xff\r\nSeq: 2\r\n\r\n"
    b"Event: After\r\nSeq: 3\r\n\r\n"
)


async def test_malformed_messages_are_skipped_and_neighbours_dispatched(
    caplog: pytest.LogCaptureFixture,
) -> None:
    protocol, transport, state = make_protocol()
    protocol.data_received(MALFORMED_READ)  # one read: must not raise
    events = drain(state.events)
    assert [e.event for e in events] == ["Before", "BadByte", "After"]
    assert events[1]["CallerIDName"] == "张\ufffd"
    assert state.stats.malformed_skipped == 3
    assert state.stats.messages_received == 3
    assert not transport.closing
    skipped = list(protocol.recent_skips)
    assert len(skipped) == 3
    assert any(s.reason == "repeated Event header" and b"Hangup" in s.raw for s in skipped)
    # Each skip's description (quoted in its warning) stays short, whatever it skipped.
    assert all(len(str(s)) < 250 for s in skipped), skipped
    # One WARNING per skipped message (from the protocol's default logger).
    assert levels(caplog, logging.getLogger("cti.ami.protocol")) == [logging.WARNING] * 3


def test_plain_panoramisk_loses_events_after_duplicate_event_header() -> None:
    protocol, dispatched = make_plain_protocol()
    with pytest.raises(AttributeError):
        protocol.data_received(MALFORMED_READ.decode("latin-1").encode("utf-8"))
    # Raised inside data_received: asyncio closes the connection and the
    # events after the duplicate in the same read are never dispatched.
    assert [e.event for e in dispatched] == ["Before"]


async def test_malformed_messages_over_tcp_keep_the_link(
    server: FakeAMIServer, make_link: Callable[..., AMILink]
) -> None:
    link = make_link(server)
    seen: list[str] = []
    after = asyncio.Event()

    def handler(event: Message) -> None:
        seen.append(event.event)
        if event.event == "After":
            after.set()

    link.add_event_handler(handler)
    await started(link)
    await server.current.push(MALFORMED_READ)
    await asyncio.wait_for(after.wait(), 5)
    assert [e for e in seen if e != "FullyBooted"] == ["Before", "BadByte", "After"]
    assert link.connected
    assert link.stats.malformed_skipped == 3
    assert len(server.connections) == 1


async def test_plain_panoramisk_connection_closes_on_duplicate_event_header(
    server: FakeAMIServer,
) -> None:
    manager, state = await plain_manager(server, reconnect_timeout=3600)
    seen: list[str] = []
    manager.register_event("*", lambda manager, event: seen.append(event.event))
    try:
        await server.current.push(MALFORMED_READ)
        await asyncio.wait_for(state.disconnected, 5)
        assert "After" not in seen
    finally:
        manager.close()


# == 3. ping watchdog =================================================================


async def test_ping_watchdog_detects_silent_peer_within_two_intervals(
    server: FakeAMIServer, make_link: Callable[..., AMILink]
) -> None:
    interval = 0.2
    loop = asyncio.get_running_loop()
    lost: asyncio.Future[tuple[float, BaseException | None]] = loop.create_future()

    def on_disconnect(reason: BaseException | None) -> None:
        if not lost.done():
            lost.set_result((loop.time(), reason))

    link = make_link(server, ping_interval_s=interval)
    link.add_disconnect_handler(on_disconnect)
    await started(link)
    # Answered pings keep the link up.
    await server.wait_for_actions("Ping", 2)
    assert link.connected and link.stats.ping_timeouts == 0

    server.answer_pings = False
    silent_since = loop.time()
    detected_at, reason = await asyncio.wait_for(lost, 5)
    assert detected_at - silent_since < 2 * interval + 0.15
    assert isinstance(reason, TimeoutError) and str(reason) == "no Pong within 0.20 s"
    assert link.stats.ping_timeouts == 1
    assert link.stats.connections_lost == 1

    server.answer_pings = True
    await server.wait_for_connections(2)
    await link.wait_connected(5)
    assert link.stats.reconnects == 1
    assert link.retry_waits[0] == RetryWait(1, 0.02, reason)


async def test_plain_panoramisk_ignores_missing_pongs(server: FakeAMIServer) -> None:
    server.answer_pings = False
    manager, state = await plain_manager(
        server, ping_delay=0.05, ping_interval=0.05, reconnect_timeout=3600
    )
    try:
        # Three unanswered pings = three intervals: a bounded negative check.
        await server.wait_for_actions("Ping", 3)
        assert manager._connected
        assert not manager.protocol.closed
        assert not state.disconnected.done()
    finally:
        manager.close()


# == 4. ordered dispatch, owned tasks ===================================================


class OrderProbe:
    """A coroutine handler whose first event awaits longest (50 loop turns)."""

    def __init__(self, last: str) -> None:
        self.finished: list[str] = []
        self.done = asyncio.Event()
        self.max_active = 0
        self._active = 0
        self._last = last

    async def __call__(self, event: Message) -> None:
        if event.event != "Seq":
            return
        self._active += 1
        self.max_active = max(self.max_active, self._active)
        if event["N"] == "1":
            for _ in range(50):
                await asyncio.sleep(0)
        self.finished.append(event["N"])
        self._active -= 1
        if event["N"] == self._last:
            self.done.set()


async def test_events_are_dispatched_in_order_one_at_a_time(
    server: FakeAMIServer, make_link: Callable[..., AMILink]
) -> None:
    probe = OrderProbe(last="4")
    sync_seen: list[str] = []
    link = make_link(server)
    link.add_event_handler(probe)

    def failing(event: Message) -> None:
        if event.get("N") == "3":
            raise RuntimeError("handler bug")

    link.add_event_handler(failing)
    link.add_event_handler(lambda event: sync_seen.append(event.get("N", "")))
    await started(link)
    await server.current.push(b"".join(block("Event: Seq", f"N: {n}") for n in "1234"))
    await asyncio.wait_for(probe.done.wait(), 5)

    assert probe.finished == ["1", "2", "3", "4"]
    assert probe.max_active == 1  # one event at a time
    assert [n for n in sync_seen if n] == ["1", "2", "3", "4"]  # continued after the bug
    assert link.stats.handler_failures == 1
    failure = link.last_handler_failure
    assert failure is not None
    assert (failure.handler, failure.event) == (failing, "Seq")
    assert isinstance(failure.error, RuntimeError) and str(failure.error) == "handler bug"
    assert link.stats.events_dispatched >= 4


async def test_plain_panoramisk_dispatch_is_unordered() -> None:
    probe = OrderProbe(last="1")
    manager = Manager(loop=asyncio.get_running_loop())
    manager.register_event("Seq", lambda manager, event: probe(event))
    for n in "12":
        manager.dispatch(Message({"Event": "Seq", "N": n}))
    await asyncio.wait_for(probe.done.wait(), 5)
    # ensure_future runs both at once: the later event's handler finishes first.
    assert probe.finished == ["2", "1"]
    assert probe.max_active == 2


async def test_close_leaves_no_tasks_and_fails_pending_actions(
    make_link: Callable[..., AMILink],
) -> None:
    before = asyncio.all_tasks()
    fake = await FakeAMIServer().start()
    fake.silent_actions = {"originate"}
    link = make_link(fake)
    disconnects: list[BaseException | None] = []
    link.add_disconnect_handler(disconnects.append)
    await started(link)
    pending = asyncio.create_task(link.send_action({"Action": "Originate"}))
    await fake.wait_for_actions("Originate")

    await asyncio.gather(link.close(), link.close())  # concurrent and idempotent
    await link.close()
    with pytest.raises(AMIDisconnected, match="link closed"):
        await pending
    assert disconnects == [None]
    assert not link.connected
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("ami-")]
    with pytest.raises(AMINotConnected):
        await link.send_action({"Action": "Ping"})
    with pytest.raises(RuntimeError):
        await link.start()
    await fake.stop()
    assert asyncio.all_tasks() <= before


async def test_close_while_reconnecting_leaves_no_tasks(
    make_link: Callable[..., AMILink],
) -> None:
    before = asyncio.all_tasks()
    link = make_link(port=free_port())
    await link.start()
    await link_state(link, lambda: len(link.retry_waits) >= 2, 5)
    await link.close()
    assert asyncio.all_tasks() <= before


async def test_close_from_an_event_handler(
    server: FakeAMIServer, make_link: Callable[..., AMILink]
) -> None:
    before = asyncio.all_tasks()
    link = make_link(server)
    link.add_event_handler(lambda event: link.close() if event.event == "Stop" else None)
    await started(link)
    await server.current.push(block("Event: Stop"))
    await server.wait_until(lambda: server.current.closed.is_set())
    await link.close()
    assert not link.connected
    assert asyncio.all_tasks() <= before


# == 5. actions: timeouts, no resend ====================================================


async def test_action_times_out(server: FakeAMIServer, make_link: Callable[..., AMILink]) -> None:
    server.silent_actions = {"originate"}
    link = await started(make_link(server, action_timeout_s=0.1))
    with pytest.raises(AMIActionTimeout) as info:
        await link.send_action({"Action": "Originate", "ActionID": "orig-1"})
    text = str(info.value)
    assert "Originate" in text and "orig-1" in text and "0.10 s" in text
    assert info.value.action_id == "orig-1"
    assert link.stats.actions_timed_out == 1
    assert link.connected  # a slow action does not drop the link
    reply = await link.send_action({"Action": "Ping"}, timeout_s=2)
    assert isinstance(reply, AmiMessage) and reply.ping == "Pong"


async def test_pending_action_fails_on_disconnect_and_is_not_resent(
    server: FakeAMIServer, make_link: Callable[..., AMILink]
) -> None:
    server.silent_actions = {"originate"}
    link = await started(make_link(server))
    originate = asyncio.create_task(
        link.send_action({"Action": "Originate", "Channel": "PJSIP/1001", "Exten": "12345"})
    )
    await server.wait_for_actions("Originate")
    action_id = server.received("Originate")[0].action_id
    server.current.drop()

    with pytest.raises(AMIDisconnected) as info:
        await originate
    text = str(info.value)
    assert "Originate" in text and action_id in text and "NOT resent" in text
    assert "check the state" in text
    assert info.value.action_id == action_id

    await server.wait_for_connections(2)
    await link.wait_connected(5)
    assert await link.wait_fully_booted(5)
    # Any resend would be written before this Ping on the same TCP stream.
    await link.send_action({"Action": "Ping"})
    assert len(server.received("Originate")) == 1


async def test_plain_panoramisk_resends_originate_after_reconnect(
    server: FakeAMIServer,
) -> None:
    server.silent_actions = {"originate"}
    manager, _ = await plain_manager(server, reconnect_timeout=0.01)
    try:
        future = manager.send_action({"Action": "Originate", "Channel": "PJSIP/1001"})
        await server.wait_for_actions("Originate")
        server.current.drop()
        await server.wait_for_actions("Originate", 2)
        first, second = server.received("Originate")
        assert first.connection == 0 and second.connection == 1
        assert first.action_id == second.action_id  # the same action, silently resent
        assert not future.done()  # and it still has no timeout
    finally:
        manager.close()


async def test_send_action_when_not_connected_raises_at_once(
    make_link: Callable[..., AMILink],
) -> None:
    link = make_link(port=free_port())
    with pytest.raises(AMINotConnected, match="not logged in"):
        await link.send_action({"Action": "Ping"})
    assert issubclass(AMINotConnected, AMIError)


async def test_replies_single_error_and_list(
    server: FakeAMIServer, make_link: Callable[..., AMILink]
) -> None:
    server.channels = [
        {"Channel": "PJSIP/trunk-00000001", "CallerIDName": CJK_NAME},
        {"Channel": "PJSIP/1001-00000002", "CallerIDName": "坐席1001"},
    ]
    dispatched: list[str] = []
    link = make_link(server)
    link.add_event_handler(lambda event: dispatched.append(event.event))
    await started(link)

    pong = await link.send_action({"Action": "Ping"})
    assert isinstance(pong, AmiMessage) and pong.success and pong.ping == "Pong"
    assert pong.action_id.startswith("test-")

    error = await link.send_action({"Action": "NoSuchAction"})
    assert isinstance(error, AmiMessage) and not error.success
    assert error.message == "Invalid/unknown command"

    listing = await link.send_action({"Action": "CoreShowChannels", "ActionID": "mine-7"})
    assert isinstance(listing, list)
    assert [m.event or m.response for m in listing] == [
        "Success",
        "CoreShowChannel",
        "CoreShowChannel",
        "CoreShowChannelsComplete",
    ]
    assert listing[1]["CallerIDName"] == CJK_NAME
    assert all(m.action_id == "mine-7" for m in listing)
    await link.send_action({"Action": "Ping"})  # flush: dispatcher saw everything before
    assert "CoreShowChannel" not in dispatched
    ids = [a.action_id for a in server.actions]
    assert len(ids) == len(set(ids))


async def test_header_injection_is_rejected_before_sending(
    server: FakeAMIServer, make_link: Callable[..., AMILink]
) -> None:
    link = await started(make_link(server))
    with pytest.raises(ValueError, match="header injection"):
        await link.send_action(
            {"Action": "Originate", "CallerID": "x\r\nAction: Command\r\nCommand: core stop now"}
        )
    with pytest.raises(ValueError, match="Action"):
        await link.send_action({"Channel": "PJSIP/1001"})
    await link.send_action({"Action": "Ping"})
    assert {a.name for a in server.actions} <= {"Login", "Ping"}


async def test_protocol_routes_replies_and_list_events_by_action_id() -> None:
    protocol, _, state = make_protocol()
    loop = asyncio.get_running_loop()
    listing = PendingAction("CoreShowChannels", "L1", protocol, loop.create_future())
    state.pending["L1"] = listing
    protocol.data_received(
        block("Response: Success", "ActionID: L1", "EventList: start")
        + block("Event: CoreShowChannel", "ActionID: L1", "Channel: A")
        + block("Event: Newchannel", "Channel: B")  # unrelated, interleaved
        + block("Event: OriginateResponse", "ActionID: other", "Response: Success")
        + block("Response: Success", "ActionID: late", "Message: nobody waits")
        + block("Event: CoreShowChannelsComplete", "ActionID: L1", "EventList: Complete")
        + block("Event: FullyBooted")
    )
    result = listing.future.result()
    assert [m.event or m.response for m in result] == [
        "Success",
        "CoreShowChannel",
        "CoreShowChannelsComplete",
    ]
    assert "L1" not in state.pending
    assert [e.event for e in drain(state.events)] == [
        "Newchannel",
        "OriginateResponse",
        "FullyBooted",
    ]
    assert state.booted.is_set()


async def test_event_carrying_a_pending_action_id_before_its_response_is_dispatched() -> None:
    protocol, _, state = make_protocol()
    pending = PendingAction("Originate", "O1", protocol, asyncio.get_running_loop().create_future())
    state.pending["O1"] = pending
    protocol.data_received(
        block("Event: OriginateResponse", "ActionID: O1", "Response: Failure")
        + block("Response: Success", "ActionID: O1", "Message: Originate successfully queued")
    )
    reply = pending.future.result()
    assert isinstance(reply, AmiMessage) and reply.message == "Originate successfully queued"
    assert [e.event for e in drain(state.events)] == ["OriginateResponse"]


# == 6. bounded receive buffer ==========================================================


async def test_oversize_message_is_dropped_and_the_next_event_arrives(
    server: FakeAMIServer, make_link: Callable[..., AMILink]
) -> None:
    got = asyncio.get_running_loop().create_future()
    link = make_link(server, max_message_bytes=1 << 20)
    link.add_event_handler(
        lambda event: got.set_result(event) if event.event == "AfterJunk" else None
    )
    await started(link)
    await server.current.push(b"J" * (5 << 20) + b"\r\n\r\n" + block("Event: AfterJunk", "N: 1"))
    event = await asyncio.wait_for(got, 10)
    assert event["N"] == "1"
    assert link.stats.oversize_dropped == 1
    assert link.connected
    protocol = link._protocol
    assert protocol is not None
    (skipped,) = protocol.recent_skips
    assert isinstance(skipped, OversizeMessage)


async def test_protocol_buffer_stays_bounded() -> None:
    limit = 1 << 20
    protocol, transport, state = make_protocol(max_message_bytes=limit)
    protocol.data_received(BANNER)
    for _ in range(80):
        protocol.data_received(b"X" * 65536)
        assert protocol._frames.buffered_bytes <= limit
    protocol.data_received(b"\r\n\r\nEvent: Next\r\n\r\n")
    assert [e.event for e in drain(state.events)] == ["Next"]
    assert state.stats.oversize_dropped == 1
    assert not transport.closing


# == 7. reconnect with backoff ===========================================================


async def test_login_failure_is_logged_and_retried_with_growing_delays(
    server: FakeAMIServer,
    make_link: Callable[..., AMILink],
    link_logger: logging.Logger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.accept_logins = False
    link = make_link(server)
    await link.start()
    await server.wait_for_actions("Login", 3)
    server.accept_logins = True
    await link.wait_connected(5)

    assert link.stats.login_failures >= 3
    assert link.stats.connect_failures == link.stats.login_failures
    error = link.last_connect_error
    assert isinstance(error, AMILoginFailed)
    assert (error.username, error.host, error.port) == ("hotline", "127.0.0.1", server.port)
    assert "check manager.conf secret / HOTLINE_AMI_SECRET" in str(error)
    assert all(isinstance(wait.cause, AMILoginFailed) for wait in link.retry_waits)
    # Every refusal is an ERROR; nothing else is.
    errors = [level for level in levels(caplog, link_logger) if level >= logging.ERROR]
    assert errors == [logging.ERROR] * link.stats.login_failures
    assert delays(link)[:3] == [(2, 0.02), (3, 0.04), (4, 0.08)]
    assert link.stats.reconnects == 0  # first successful login
    assert link.stats.logins == 1


async def test_retry_waits_start_again_with_each_outage(
    server: FakeAMIServer, make_link: Callable[..., AMILink]
) -> None:
    server.accept_logins = False
    link = make_link(server)
    await link.start()
    await link_state(link, lambda: link.stats.login_failures >= 2, 5)
    server.accept_logins = True
    await link.wait_connected(5)
    assert delays(link)[:2] == [(2, 0.02), (3, 0.04)]  # still there once logged in
    server.current.drop()
    await link_state(link, lambda: delays(link) == [(1, 0.02)], 5)
    assert link.stats.connections_lost == 1


async def test_login_failed_error_carries_context() -> None:
    exc = AMILoginFailed.for_credentials(
        link="pbx1", username="hotline", host="10.0.0.5", port=5038, detail="Authentication failed"
    )
    assert isinstance(exc, AMIError)
    assert (exc.username, exc.host, exc.port) == ("hotline", "10.0.0.5", 5038)
    assert "10.0.0.5:5038" in str(exc) and "HOTLINE_AMI_SECRET" in str(exc)


async def test_refused_then_server_comes_back(
    make_link: Callable[..., AMILink],
) -> None:
    port = free_port()
    link = make_link(port=port)
    await link.start()
    await link_state(link, lambda: len(link.retry_waits) >= 3, 5)
    assert link.stats.connect_failures >= 3 and link.stats.login_failures == 0
    assert link.endpoint == f"127.0.0.1:{port}"
    assert all(isinstance(wait.cause, ConnectionRefusedError) for wait in link.retry_waits)
    assert isinstance(link.last_connect_error, ConnectionRefusedError)
    async with FakeAMIServer(port=port) as fake:
        await link.wait_connected(5)
        assert link.connected and fake.received("Login")
        assert [delay for _, delay in delays(link)][:3] == [0.02, 0.04, 0.08]
        await link.close()


async def test_accept_then_close_counts_as_failure(
    server: FakeAMIServer, make_link: Callable[..., AMILink]
) -> None:
    server.close_on_connect = True
    link = make_link(server)
    await link.start()
    await server.wait_for_connections(3)
    server.close_on_connect = False
    await link.wait_connected(5)
    # Closed before the banner: a plain ConnectionError (a refused or reset
    # connection would be one of its subclasses).
    closed_early = [w for w in link.retry_waits if type(w.cause) is ConnectionError]
    assert len(closed_early) >= 2
    assert link.stats.connect_failures >= 2 and link.stats.logins == 1


async def test_reconnect_after_drop_runs_handlers_again(
    server: FakeAMIServer, make_link: Callable[..., AMILink]
) -> None:
    link = make_link(server)
    connects: list[int] = []
    reasons: list[BaseException | None] = []
    second_login = asyncio.Event()

    async def on_connect() -> None:
        connects.append(len(server.connections))
        if len(connects) == 2:
            second_login.set()

    link.add_connect_handler(on_connect)
    link.add_disconnect_handler(reasons.append)
    await started(link)
    server.current.drop()
    await asyncio.wait_for(second_login.wait(), 5)
    assert connects == [1, 2]
    assert reasons == [None]
    assert link.stats.reconnects == 1
    assert link.stats.connections_lost == 1
    assert link.retry_waits[0] == RetryWait(1, 0.02, None)  # None: closed by the peer


async def test_no_banner_is_a_connect_failure(
    make_link: Callable[..., AMILink],
) -> None:
    async with FakeAMIServer(banner=b"") as fake:
        link = make_link(fake, connect_timeout_s=0.1)
        await link.start()
        await link_state(link, lambda: link.stats.connect_failures >= 1, 5)
        # The TCP connection was accepted: what timed out is the banner.
        assert fake.connections
        assert isinstance(link.last_connect_error, TimeoutError)
        assert not link.connected
        await link.close()


# == 8. transport flow control ==========================================================


async def test_protocol_pauses_reading_at_high_watermark() -> None:
    protocol, transport, state = make_protocol(high_watermark=5)
    protocol.data_received(b"".join(block("Event: Flow", f"N: {n}") for n in range(20)))
    assert state.events.qsize() == 20
    assert transport.pauses == 1 and protocol.reading_paused
    protocol.resume_reading()
    assert transport.resumes == 1 and not protocol.reading_paused


async def test_link_pauses_and_resumes_reading(
    server: FakeAMIServer, make_link: Callable[..., AMILink]
) -> None:
    gate = asyncio.Event()
    all_seen = asyncio.Event()
    received: list[int] = []

    async def handler(event: Message) -> None:
        if event.event != "Flow":
            return
        received.append(int(event["N"]))
        if event["N"] == "0":
            await gate.wait()
        if len(received) == 30:
            all_seen.set()

    link = make_link(server, queue_high_watermark=5, queue_low_watermark=2)
    link.add_event_handler(handler)
    await started(link)
    protocol = link._protocol
    assert protocol is not None
    paused, resumed = asyncio.Event(), asyncio.Event()
    original_pause, original_resume = protocol.pause_reading, protocol.resume_reading

    def pause() -> None:
        original_pause()
        paused.set()

    def resume() -> None:
        original_resume()
        resumed.set()

    protocol.pause_reading = pause  # type: ignore[method-assign]
    protocol.resume_reading = resume  # type: ignore[method-assign]

    await server.current.push(b"".join(block("Event: Flow", f"N: {n}") for n in range(30)))
    await asyncio.wait_for(paused.wait(), 5)
    assert protocol.transport is not None and not protocol.transport.is_reading()
    gate.set()
    await asyncio.wait_for(all_seen.wait(), 5)
    assert resumed.is_set()
    assert received == list(range(30))
    assert not protocol.reading_paused and protocol.transport.is_reading()
    assert link.connected


# == 9. logging and connect handlers =======================================================


async def test_connect_and_login_state_version_and_no_secret_in_logs(
    server: FakeAMIServer, make_link: Callable[..., AMILink], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    link = make_link(server)
    lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
    link.add_disconnect_handler(lambda reason: lost.done() or lost.set_result(reason))
    await started(link)
    assert link.version == "5.0.0"
    assert link.connected
    assert link.endpoint == f"127.0.0.1:{server.port}"
    assert (link.stats.logins, link.stats.connect_failures, link.stats.reconnects) == (1, 0, 0)
    assert link.last_connect_error is None and not link.retry_waits
    (login,) = server.received("Login")
    assert login.headers["Username"] == "hotline"
    assert login.headers["Events"] == "on"
    server.current.drop()
    assert await asyncio.wait_for(lost, 5) is None  # closed by the peer
    assert link.stats.connections_lost == 1 and not link.connected
    assert caplog.records
    assert all("s3cret" not in r.getMessage() for r in caplog.records)


async def test_connect_handler_resyncs_while_dispatcher_runs(
    server: FakeAMIServer, make_link: Callable[..., AMILink]
) -> None:
    server.channels = [{"Channel": "PJSIP/trunk-00000001", "CallerIDName": CJK_NAME}]
    done = asyncio.get_running_loop().create_future()
    link = make_link(server)

    async def resync() -> None:
        assert await link.wait_fully_booted(5)
        done.set_result(await link.send_action({"Action": "CoreShowChannels"}))

    async def broken() -> None:
        raise RuntimeError("resync bug")

    link.add_connect_handler(broken)
    link.add_connect_handler(resync)
    await link.start()
    listing = await asyncio.wait_for(done, 5)
    assert [m.event or m.response for m in listing][-1] == "CoreShowChannelsComplete"
    assert listing[1]["CallerIDName"] == CJK_NAME


async def test_fully_booted_is_per_connection(
    server: FakeAMIServer, make_link: Callable[..., AMILink]
) -> None:
    link = await started(make_link(server))
    assert await link.wait_fully_booted(5)
    server.send_fully_booted = False
    server.current.drop()
    await server.wait_for_connections(2)
    await link.wait_connected(5)
    # Bounded negative wait: the new connection never sends FullyBooted.
    assert not await link.wait_fully_booted(0.1)


async def test_constructor_validates_settings() -> None:
    common: dict[str, Any] = {"host": "127.0.0.1", "port": 5038, "username": "u", "secret": "s"}
    with pytest.raises(ValueError, match="action_timeout_s"):
        AMILink(**common, action_timeout_s=0)
    with pytest.raises(ValueError, match="port"):
        AMILink(**{**common, "port": 0})
    with pytest.raises(ValueError, match="watermark"):
        AMILink(**common, queue_high_watermark=5, queue_low_watermark=5)
    link = AMILink(**common)
    assert not link.connected and link.version is None
    assert link.stats == AMIStats()


# == 9. the ingest fast path: filter, posted actions, batched writes and dispatch =========


async def test_event_filter_drops_unused_events_unparsed_but_never_replies() -> None:
    protocol, _, state = make_protocol(event_filter=frozenset({"Newchannel"}))
    loop = asyncio.get_running_loop()
    listing = PendingAction("Status", "S1", protocol, loop.create_future())
    state.pending["S1"] = listing
    protocol.data_received(
        block("Event: NewConnectedLine", "Channel: A")  # not wanted: dropped
        + block("Event: Newchannel", "Channel: B")
        + block("Response: Success", "ActionID: S1", "EventList: start")
        + block("Event: Status", "ActionID: S1", "Channel: C")  # a list item: kept
        + block("Event: StatusComplete", "ActionID: S1", "EventList: Complete")
        + block("Event: DialState", "Channel: D")  # not wanted: dropped
        + block("Event: FullyBooted")  # the link always needs it
    )
    assert [e.event for e in drain(state.events)] == ["Newchannel", "FullyBooted"]
    assert [m.event or m["Response"] for m in listing.future.result()] == [
        "Success",
        "Status",
        "StatusComplete",
    ]
    assert state.stats.events_filtered == 2
    assert state.booted.is_set()


async def test_filtered_link_still_dispatches_wanted_events(
    server: FakeAMIServer, make_link: Callable[..., AMILink]
) -> None:
    seen: list[str] = []
    done = asyncio.Event()
    link = make_link(server, event_filter={"Hangup"})

    def on_event(event: AmiMessage) -> None:
        seen.append(event["Channel"])
        if event["Channel"] == "last":
            done.set()

    link.add_event_handler(on_event)
    await started(link)
    await server.current.push(
        block("Event: Newstate", "Channel: x")
        + block("Event: Hangup", "Channel: first")
        + block("Event: VarSet", "Channel: y")
        + block("Event: Hangup", "Channel: last")
    )
    await asyncio.wait_for(done.wait(), 5)
    assert seen == ["first", "last"]
    assert link.stats.events_filtered == 2


async def test_post_action_reports_reply_timeout_and_refusal(
    server: FakeAMIServer, make_link: Callable[..., AMILink]
) -> None:
    link = await started(make_link(server, action_timeout_s=0.2))
    loop = asyncio.get_running_loop()
    pong: asyncio.Future[object] = loop.create_future()
    link.post_action({"Action": "Ping"}, on_done=pong.set_result)
    reply = await asyncio.wait_for(pong, 5)
    assert isinstance(reply, AmiMessage) and reply.ping == "Pong"

    server.silent_actions = {"originate"}
    late: asyncio.Future[object] = loop.create_future()
    link.post_action({"Action": "Originate", "ActionID": "o-9"}, on_done=late.set_result)
    error = await asyncio.wait_for(late, 5)
    assert isinstance(error, AMIActionTimeout) and error.action_id == "o-9"
    assert link.stats.actions_timed_out == 1
    assert "o-9" not in link._pending  # nothing left behind

    with pytest.raises(ValueError, match="header injection"):
        link.post_action({"Action": "Redirect", "Channel": "x\r\nAction: Command"})
    assert not any(a.name == "Command" for a in server.actions)


async def test_post_action_fails_on_disconnect_and_refuses_when_not_connected(
    server: FakeAMIServer, make_link: Callable[..., AMILink]
) -> None:
    link = await started(make_link(server))
    server.silent_actions = {"redirect"}
    outcome: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    link.post_action({"Action": "Redirect", "Channel": "PJSIP/1"}, on_done=outcome.set_result)
    await server.wait_for_actions("Redirect")
    server.current.drop()
    assert isinstance(await asyncio.wait_for(outcome, 5), AMIDisconnected)
    await server.wait_until(lambda: not link.connected)
    with pytest.raises(AMINotConnected):
        link.post_action({"Action": "Redirect", "Channel": "PJSIP/1"})


async def test_actions_of_one_loop_iteration_go_out_in_one_write() -> None:
    protocol, transport, _ = make_protocol()
    protocol.write_payload(b"Action: A\r\n\r\n")
    protocol.write_payload(b"Action: B\r\n\r\n")
    assert transport.written == []  # not yet: at the end of this iteration
    await asyncio.sleep(0)
    assert transport.written == [b"Action: A\r\n\r\nAction: B\r\n\r\n"]
    protocol.write_payload(b"Action: C\r\n\r\n")
    protocol.close()  # a graceful close flushes first
    assert transport.written[-1] == b"Action: C\r\n\r\n" and transport.closing


async def test_a_long_backlog_does_not_starve_the_loop(
    server: FakeAMIServer, make_link: Callable[..., AMILink]
) -> None:
    # While thousands of events wait, a timer due now still runs long before
    # the backlog is drained: the dispatcher yields every DISPATCH_SLICE events.
    from cti.ami.link import DISPATCH_SLICE

    total = DISPATCH_SLICE * 8
    dispatched_when_timer_ran: list[int] = []
    done = asyncio.Event()
    count = 0

    def on_event(event: AmiMessage) -> None:
        nonlocal count
        count += 1
        if count == 1:
            asyncio.get_running_loop().call_soon(lambda: dispatched_when_timer_ran.append(count))
        if count == total:
            done.set()

    link = make_link(server)
    link.add_event_handler(on_event)
    await started(link)
    await server.current.push(b"".join(block("Event: Burst", f"N: {n}") for n in range(total)))
    await asyncio.wait_for(done.wait(), 10)
    assert dispatched_when_timer_ran and dispatched_when_timer_ran[0] <= DISPATCH_SLICE + 1
