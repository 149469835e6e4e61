"""Robot agents: real SIP user agents (pyVoIP) that register like an agent's
softphone and answer the calls the engine sends them.

pyVoIP is thread-based; each robot reports what happens on its calls back to
the asyncio loop through ``call_soon_threadsafe``, so the engine side can await
"ringing", "answered" and "ended" instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass

from pyVoIP.VoIP import CallState, InvalidStateError, PhoneStatus, VoIPCall, VoIPPhone

from cti.stack.ports import free_udp_port, free_udp_range

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentBehaviour:
    """How a robot handles a ringing call."""

    answers: bool = True
    talk_s: float | None = 5.0
    """Hang up this long after answering; None waits for the caller to hang up."""


@dataclass(frozen=True)
class PhoneEvent:
    kind: str  # "ringing" | "answered" | "ended"
    call_id: str
    at: float  # time.time()


def _no_finalizer(call: object) -> None:
    """Replaces pyVoIP's ``VoIPCall.__del__`` (see :class:`RobotAgent`)."""


class RobotAgent:
    """One registered softphone for one agent extension."""

    def __init__(
        self,
        *,
        extension: str,
        password: str,
        asterisk_sip: tuple[str, int],
        behaviour: AgentBehaviour | None = None,
        local_host: str = "127.0.0.1",
    ) -> None:
        # pyVoIP's VoIPCall.__del__ releases the call's RTP ports from the
        # garbage collector and calls Thread.is_alive() there, which can
        # deadlock inside CPython's thread start-up (seen: a whole test run
        # hung, every pyVoIP thread waiting on another). The robot releases
        # each call's ports itself when the call ends, outside the collector.
        VoIPCall.__del__ = _no_finalizer  # type: ignore[method-assign]
        self.extension = extension
        self.behaviour = behaviour or AgentBehaviour()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.events: asyncio.Queue[PhoneEvent] = asyncio.Queue()
        self.answered = 0
        self._stopping = threading.Event()
        rtp_low, rtp_high = free_udp_range(40, local_host)
        host, port = asterisk_sip
        self.phone = VoIPPhone(
            host,
            port,
            extension,
            password,
            myIP=local_host,
            callCallback=self._on_call,
            sipPort=free_udp_port(local_host),
            rtpPortLow=rtp_low,
            rtpPortHigh=rtp_high,
        )

    async def start(self, timeout_s: float = 10.0) -> None:
        """Register with Asterisk; returns once registered."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.phone.start)
        deadline = time.monotonic() + timeout_s
        while self.phone.get_status() != PhoneStatus.REGISTERED:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"agent {self.extension} did not register within {timeout_s} s "
                    f"(status {self.phone.get_status().name})"
                )
            await asyncio.sleep(0.05)  # pyVoIP offers no awaitable for its register thread

    async def stop(self) -> None:
        self._stopping.set()
        await asyncio.to_thread(self.phone.stop)

    async def dial(self, number: str, *, timeout_s: float = 15.0) -> str:
        """Place a call (e.g. a feature code such as ``*21``) and wait until the
        far end hangs up; returns how it ended: "ended" or "timeout"."""
        return await asyncio.to_thread(self._dial_blocking, number, timeout_s)

    def _dial_blocking(self, number: str, timeout_s: float) -> str:
        call = self.phone.call(number)
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if call.state == CallState.ENDED:
                    return "ended"
                time.sleep(0.02)
            if call.state == CallState.ANSWERED:
                try:
                    call.hangup()
                except InvalidStateError:
                    pass
            return "timeout"
        finally:
            self.phone.release_ports(call=call)

    async def next_event(self, kind: str | None = None, timeout_s: float = 30.0) -> PhoneEvent:
        """The next event (of *kind*, if given), skipping others."""
        async with asyncio.timeout(timeout_s):
            while True:
                event = await self.events.get()
                if kind is None or event.kind == kind:
                    return event

    def _report(self, kind: str, call_id: str) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(
                self.events.put_nowait, PhoneEvent(kind, call_id, time.time())
            )

    def _on_call(self, call: VoIPCall) -> None:
        """Runs in a pyVoIP thread for each incoming call."""
        try:
            self._handle(call)
        finally:
            self.phone.release_ports(call=call)

    def _handle(self, call: VoIPCall) -> None:
        call_id = call.call_id
        self._report("ringing", call_id)
        if not self.behaviour.answers:
            while call.state == CallState.RINGING and not self._stopping.is_set():
                time.sleep(0.05)
            self._report("ended", call_id)
            return
        try:
            call.answer()
        except InvalidStateError:
            self._report("ended", call_id)
            return
        self.answered += 1
        self._report("answered", call_id)
        started = time.monotonic()
        talk_s = self.behaviour.talk_s
        while call.state == CallState.ANSWERED and not self._stopping.is_set():
            if talk_s is not None and time.monotonic() - started >= talk_s:
                try:
                    call.hangup()
                except InvalidStateError:
                    pass
                break
            time.sleep(0.02)
        self._report("ended", call_id)
