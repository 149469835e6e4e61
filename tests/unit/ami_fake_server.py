"""A scriptable fake Asterisk manager (AMI) server for the link tests.

Listens on 127.0.0.1 (port 0 unless told otherwise), speaks the Asterisk 16
dialect for the handful of actions the tests need, records every action it
receives, and lets a test push raw bytes, silence pings, refuse logins or drop
the connection. Tests synchronise on :meth:`FakeAMIServer.wait_until` (an
``asyncio.Condition``), never on sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

CRLF = "\r\n"
BANNER = b"Asterisk Call Manager/5.0.0\r\n"
FULLY_BOOTED = (
    b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 5\r\n"
    b"LastReload: 5\r\nStatus: Fully Booted\r\n\r\n"
)


def block(*lines: str) -> bytes:
    """Build one wire message from header lines."""
    return (CRLF.join(lines) + CRLF + CRLF).encode("utf-8")


@dataclass
class ReceivedAction:
    connection: int
    headers: dict[str, str | list[str]]

    @property
    def name(self) -> str:
        return str(self.headers.get("Action", ""))

    @property
    def action_id(self) -> str:
        return str(self.headers.get("ActionID", ""))


@dataclass
class FakeConnection:
    index: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    task: asyncio.Task[None] | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def push(self, data: bytes, chunks: list[int] | None = None) -> None:
        """Write ``data``, optionally as separate writes of the given sizes."""
        if not chunks:
            self.writer.write(data)
        else:
            offset = 0
            for size in chunks:
                self.writer.write(data[offset : offset + size])
                await self.writer.drain()
                offset += size
            if offset < len(data):
                self.writer.write(data[offset:])
        await self.writer.drain()

    def drop(self, *, abort: bool = False) -> None:
        """Close (FIN) or abort (RST) the connection from the server side."""
        if abort:
            self.writer.transport.abort()
        else:
            self.writer.close()


class FakeAMIServer:
    """Fake AMI server; configure the public attributes at any time.

    * ``accept_logins``: answer Login with success (and FullyBooted) or with
      "Authentication failed" and close, like Asterisk;
    * ``close_on_connect``: accept the TCP connection and close it at once;
    * ``answer_pings``: False makes Ping go unanswered (half-open link);
    * ``silent_actions``: lower-case action names that get no reply at all;
    * ``channels``: the list CoreShowChannels answers with.
    """

    def __init__(
        self,
        *,
        username: str = "hotline",
        secret: str = "s3cret",
        port: int = 0,
        banner: bytes = BANNER,
    ) -> None:
        self.username = username
        self.secret = secret
        self.banner = banner
        self.accept_logins = True
        self.close_on_connect = False
        self.answer_pings = True
        self.send_fully_booted = True
        self.silent_actions: set[str] = set()
        self.channels: list[dict[str, str]] = []
        self.actions: list[ReceivedAction] = []
        self.connections: list[FakeConnection] = []
        self._port = port
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Condition()

    @property
    def port(self) -> int:
        return self._port

    @property
    def current(self) -> FakeConnection:
        return self.connections[-1]

    async def start(self) -> FakeAMIServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self._port)
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening, drop every connection and wait for their handlers."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for conn in self.connections:
            conn.drop(abort=True)
        tasks = [c.task for c in self.connections if c.task is not None]
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task

    async def __aenter__(self) -> FakeAMIServer:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- synchronisation --------------------------------------------------------

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s):
            async with self._changed:
                await self._changed.wait_for(predicate)

    async def wait_for_actions(self, name: str, count: int = 1, timeout_s: float = 5.0) -> None:
        await self.wait_until(lambda: len(self.received(name)) >= count, timeout_s)

    async def wait_for_connections(self, count: int, timeout_s: float = 5.0) -> None:
        await self.wait_until(lambda: len(self.connections) >= count, timeout_s)

    def received(self, name: str) -> list[ReceivedAction]:
        return [a for a in self.actions if a.name.lower() == name.lower()]

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- protocol -------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = FakeConnection(len(self.connections), reader, writer, asyncio.current_task())
        self.connections.append(conn)
        await self._notify()
        try:
            if self.close_on_connect:
                return
            writer.write(self.banner)
            await writer.drain()
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                action = ReceivedAction(conn.index, _parse(raw))
                self.actions.append(action)
                keep_open = await self._answer(conn, action)
                await self._notify()
                if not keep_open:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()
            conn.closed.set()
            await self._notify()

    async def _answer(self, conn: FakeConnection, action: ReceivedAction) -> bool:
        name = action.name.lower()
        aid = f"ActionID: {action.action_id}"
        if name in self.silent_actions:
            return True
        if name == "login":
            ok = (
                self.accept_logins
                and action.headers.get("Username") == self.username
                and action.headers.get("Secret") == self.secret
            )
            if not ok:
                await conn.push(block("Response: Error", aid, "Message: Authentication failed"))
                return False
            data = block("Response: Success", aid, "Message: Authentication accepted")
            if self.send_fully_booted:
                data += FULLY_BOOTED
            await conn.push(data)
        elif name == "ping":
            if self.answer_pings:
                await conn.push(
                    block("Response: Success", aid, "Ping: Pong", "Timestamp: 1700000000.000000")
                )
        elif name == "coreshowchannels":
            data = block(
                "Response: Success", aid, "EventList: start", "Message: Channels will follow"
            )
            for channel in self.channels:
                data += block(
                    "Event: CoreShowChannel", aid, *(f"{k}: {v}" for k, v in channel.items())
                )
            data += block(
                "Event: CoreShowChannelsComplete",
                aid,
                "EventList: Complete",
                f"ListItems: {len(self.channels)}",
            )
            await conn.push(data)
        elif name == "originate":
            queued = "Message: Originate successfully queued"
            await conn.push(block("Response: Success", aid, queued))
        elif name == "logoff":
            await conn.push(block("Response: Goodbye", aid, "Message: Thanks for all the fish."))
            return False
        else:
            await conn.push(block("Response: Error", aid, "Message: Invalid/unknown command"))
        return True


def _parse(raw: bytes) -> dict[str, str | list[str]]:
    headers: dict[str, str | list[str]] = {}
    for line in raw.decode("utf-8", "replace").split("\r\n"):
        if ":" not in line:
            continue
        key, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if key in headers:
            existing = headers[key]
            headers[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            headers[key] = value
    return headers
