"""Robot agents: real SIP user agents (pyVoIP) that register like an agent's
softphone and answer the calls the engine sends them.

pyVoIP is thread-based; each robot reports what happens on its calls back to
the asyncio loop through ``call_soon_threadsafe``, so the engine side can await
"ringing", "answered" and "ended" instead of sleeping.

Stopping is bounded whatever pyVoIP's threads do. pyVoIP's blocking calls
run in daemon threads of the robot's own, never in an executor: ``asyncio.run()``
joins the default executor at exit without a timeout (Python 3.11 has no
``shutdown_default_executor(timeout)``), and any executor's workers are joined
at interpreter exit. A thread inherits the daemon flag of the thread starting
it, so every thread pyVoIP starts for a robot is a daemon too: a phone stuck in
pyVoIP is left behind with one warning and ends with the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, cast

from pyVoIP.VoIP import CallState, InvalidStateError, PhoneStatus, VoIPCall, VoIPPhone

from cti.stack.ports import free_udp_port, free_udp_range

log = logging.getLogger(__name__)

T = TypeVar("T")

STOP_SIP_TIMEOUT_S = 2
"""How long the un-REGISTER waits for each answer (pyVoIP's default is 30 s)."""


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


def _in_daemon_thread(name: str, work: Callable[[], T]) -> asyncio.Future[T]:
    """*work* run in a new daemon thread; its outcome as a future of the running
    loop. A caller that stops waiting cancels the future: the thread then ends
    unobserved, its error (if any) logged at DEBUG."""
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: Exception | None) -> None:
        if outcome.done():
            if error is not None:
                log.debug("%s failed after it was given up on", name, exc_info=error)
        elif error is not None:
            outcome.set_exception(error)
        else:
            outcome.set_result(cast(T, result))

    def run() -> None:
        try:
            result, error = work(), None
        except Exception as exc:
            result, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the loop is closed: nobody is waiting
            if error is not None:
                log.debug("%s failed after its loop closed", name, exc_info=error)

    threading.Thread(target=run, name=name, daemon=True).start()
    return outcome


def _stop_media(call: VoIPCall) -> None:
    """Ends a call's RTP threads; pyVoIP does so only when a call it answered
    is hung up, never for a call still ringing or whose answer failed."""
    for media in call.RTPClients:
        media.NSD = False
        with contextlib.suppress(AttributeError):  # never started: no socket
            media.stop()


class RobotAgent:
    """One registered softphone for one agent extension.

    After :meth:`stop`, ``phone_left_stopping`` is True when pyVoIP's stop was
    still running at the bound (the phone is left to end with the process),
    and ``stop_error`` holds the exception of a stop that failed. While the
    robot is not stopping, a call or SIP receive loop that fails is counted in
    ``failures`` (each one is logged with its traceback).
    """

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
        self.failures = 0
        self._failures_lock = threading.Lock()
        self.phone_left_stopping = False
        self.stop_error: BaseException | None = None
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
        self._pyvoip_receive_sip = self.phone.sip.recv_loop
        self.phone.sip.recv_loop = self._receive_sip  # type: ignore[method-assign]

    async def start(self, timeout_s: float = 10.0) -> None:
        """Register with Asterisk; returns once registered."""
        self._loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                await _in_daemon_thread(f"robot {self.extension} start", self.phone.start)
                while self.phone.get_status() != PhoneStatus.REGISTERED:
                    await asyncio.sleep(0.05)  # pyVoIP offers no awaitable for its register thread
        except TimeoutError:
            raise TimeoutError(
                f"agent {self.extension} did not register within {timeout_s} s "
                f"(status {self.phone.get_status().name})"
            ) from None

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Hang up, unregister and close the phone; returns within *timeout_s*
        whatever pyVoIP does. Never raises: a stop that fails or is still
        running by then is one WARNING line (details at DEBUG)."""
        self._stopping.set()
        stopping = _in_daemon_thread(f"robot {self.extension} stop", self._stop_phone)
        try:
            await asyncio.wait({stopping}, timeout=timeout_s)
        finally:
            abandoned = stopping.cancel()
        if abandoned:
            self.phone_left_stopping = True
            log.warning(
                "robot agent %s: pyVoIP still stopping after %.0f s; left to end with the process",
                self.extension,
                timeout_s,
            )
        elif (error := stopping.exception()) is not None:
            self.stop_error = error
            log.warning(
                "robot agent %s: pyVoIP stop failed (%s: %s); its socket and media are closed",
                self.extension,
                type(error).__name__,
                error,
            )
            log.debug("robot agent %s: pyVoIP stop failed", self.extension, exc_info=error)

    def _stop_phone(self) -> None:
        """Runs in the stop thread. pyVoIP's own stop ends the media of answered
        calls only, and an exception part-way through it (a call removed under
        its loop by another thread, the un-REGISTER failing) leaves its receive
        loop and socket open; here nothing is left running either way."""
        sip = self.phone.sip
        sip.register_timeout = min(sip.register_timeout, STOP_SIP_TIMEOUT_S)
        try:
            for call in list(self.phone.calls.values()):
                if call.state == CallState.ANSWERED:
                    with contextlib.suppress(InvalidStateError, KeyError):
                        call.hangup()
                else:
                    _stop_media(call)
            self.phone.stop()
        finally:
            sip.NSD = False
            for sock in (getattr(sip, "s", None), getattr(sip, "out", None)):
                if sock is not None:
                    sock.close()
            for call in list(self.phone.calls.values()):
                _stop_media(call)

    def _receive_sip(self) -> None:
        """pyVoIP's SIP receive loop (it fails when its socket is closed under it)."""
        try:
            self._pyvoip_receive_sip()
        except Exception:
            if self._stopping.is_set():
                log.debug("robot agent %s: SIP receive loop ended", self.extension, exc_info=True)
            else:
                self._count_failure()
                log.exception("robot agent %s: SIP receive loop failed", self.extension)

    async def dial(self, number: str, *, timeout_s: float = 15.0) -> str:
        """Place a call (e.g. a feature code such as ``*21``) and wait until the
        far end hangs up; returns how it ended: "ended" or "timeout"."""
        return await _in_daemon_thread(
            f"robot {self.extension} dial", lambda: self._dial_blocking(number, timeout_s)
        )

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
        """Runs in a pyVoIP thread for each incoming call. Nothing escapes it:
        threading.excepthook would print the traceback on the terminal."""
        try:
            self._handle(call)
        except Exception:
            self._call_failed(call)
        if self._stopping.is_set():
            _stop_media(call)
        try:
            self.phone.release_ports(call=call)
        except Exception:
            self._call_failed(call)

    def _call_failed(self, call: VoIPCall) -> None:
        # While stopping this is expected: pyVoIP closes its socket under a
        # call being answered (OSError EBADF), and the loop may be closed.
        if self._stopping.is_set():
            log.debug(
                "robot agent %s: call %s cut by the stop",
                self.extension,
                call.call_id,
                exc_info=True,
            )
        else:
            self._count_failure()
            log.exception("robot agent %s: call %s failed", self.extension, call.call_id)

    def _count_failure(self) -> None:
        with self._failures_lock:  # pyVoIP threads: one per call, plus the receive loop
            self.failures += 1

    def _handle(self, call: VoIPCall) -> None:
        call_id = call.call_id
        self._report("ringing", call_id)
        if not self.behaviour.answers or self._stopping.is_set():
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
