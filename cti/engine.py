"""The engine: one AMI link feeding the call model, agent presence and the
router; routing decisions become AMI actions. The composition root builds it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from acd.first_free import FirstFreeRouter, WaitingCaller
from acd.presence import Presence
from cti.ami import AMIError, AMILink
from cti.calls import (
    AgentLeft,
    AgentNoAnswer,
    AgentRinging,
    CallChange,
    CallEnded,
    CallModel,
    CallPhase,
)
from cti.config import EngineConfig
from cti.resync import ResyncReport, resync

log = logging.getLogger(__name__)

CONNECT_CONTEXT = "hotline-connect"
Listener = Callable[[CallChange], Awaitable[None] | None]


class Engine:
    def __init__(
        self,
        config: EngineConfig,
        *,
        link: AMILink | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.clock = clock
        agents = [a.extension for a in config.agents]
        self.link = link or AMILink(
            host=config.ami.host,
            port=config.ami.port,
            username=config.ami.username,
            secret=config.ami.secret,
            name="asterisk",
            action_timeout_s=config.ami.action_timeout_s,
            ping_interval_s=config.ami.ping_interval_s,
        )
        self.model = CallModel(lines=config.lines_by_did)
        self.presence = Presence(agents)
        self.router = FirstFreeRouter(agents=agents)
        self.reservation_timeout_s = 5.0
        self._listeners: list[Listener] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reservation_timers: dict[str, asyncio.TimerHandle] = {}
        self._resynced = asyncio.Condition()
        self.resyncs: list[ResyncReport] = []
        self._held: list[Any] | None = None
        self.link.add_event_handler(self._on_event)
        self.link.add_connect_handler(self._on_connect)
        self.link.add_disconnect_handler(self._on_disconnect)

    def add_listener(self, listener: Listener) -> None:
        """Called with every call change, in order."""
        self._listeners.append(listener)

    async def start(self) -> None:
        await self.link.start()

    async def stop(self) -> None:
        for handle in self._reservation_timers.values():
            handle.cancel()
        self._reservation_timers.clear()
        await self.link.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def wait_resynced(self, count: int = 1, timeout_s: float = 30.0) -> ResyncReport:
        """Until at least *count* resyncs have completed; returns the latest report."""
        async with asyncio.timeout(timeout_s):
            async with self._resynced:
                await self._resynced.wait_for(lambda: len(self.resyncs) >= count)
        return self.resyncs[-1]

    # -- AMI side -------------------------------------------------------------

    async def _on_connect(self) -> None:
        # Live events keep arriving while the snapshot is taken. Applied before
        # model.resync() they would be judged against a snapshot that predates
        # them (a call that just arrived would be declared lost), so they are
        # held and applied, in order, on top of the rebuilt state.
        self._held = []
        try:
            report, changes = await resync(
                self.link,
                self.model,
                self.presence,
                fully_booted_timeout_s=self.config.resync_fully_booted_timeout_s,
                clock=self.clock,
            )
            for change in changes:
                await self._publish(change)
            async with self._resynced:
                self.resyncs.append(report)
                self._resynced.notify_all()
        finally:
            await self._release_held()
        self._route()

    async def _release_held(self) -> None:
        held = self._held
        while held:
            await self._apply(held.pop(0))
        # Only once empty: an event that arrived during the replay was appended
        # to the same list and has just been applied in its turn.
        self._held = None

    def _on_disconnect(self, exc: BaseException | None) -> None:
        # Reservations were promises made over the lost link; resync decides again.
        self.router.reserved.clear()
        for handle in self._reservation_timers.values():
            handle.cancel()
        self._reservation_timers.clear()

    async def _on_event(self, event: Any) -> None:
        if self._held is not None:
            self._held.append(event)
            return
        await self._apply(event)

    async def _apply(self, event: Any) -> None:
        changes = self.model.apply(event)
        self.presence.apply(event)
        for change in changes:
            self._track(change)
            await self._publish(change)
        # After every event, not only call changes: an agent leg's Hangup that
        # follows its call's end frees the agent without changing any call.
        self._route()

    async def _publish(self, change: CallChange) -> None:
        for listener in self._listeners:
            try:
                result = listener(change)
                if result is not None:
                    await result
            except Exception:
                log.exception("listener %r failed on %s", listener, change)

    def _track(self, change: CallChange) -> None:
        if isinstance(change, AgentRinging):
            self._release(change.agent)
        elif isinstance(change, AgentNoAnswer):
            self._release(change.agent)
            self.router.agent_freed(change.agent, change.at)
        elif isinstance(change, AgentLeft):
            self.router.agent_freed(change.agent, change.at)
        elif isinstance(change, CallEnded):
            for agent, call_id in list(self.router.reserved.items()):
                if call_id == change.call_id:
                    self._release(agent)
            call = self._ended_call(change.call_id)
            if call is not None and call.agent:
                self.router.agent_freed(call.agent, change.at)

    def _ended_call(self, call_id: str) -> Any:
        for call in reversed(self.model.ended):
            if call.call_id == call_id:
                return call
        return self.model.calls.get(call_id)

    def _release(self, agent: str) -> None:
        self.router.release(agent)
        handle = self._reservation_timers.pop(agent, None)
        if handle is not None:
            handle.cancel()

    # -- routing ----------------------------------------------------------------

    def _route(self) -> None:
        if not self.link.connected:
            return
        waiting = [
            WaitingCaller(c.call_id, c.queued_at or c.arrived_at, frozenset(c.no_answers))
            for c in self.model.calls.values()
            if c.phase is CallPhase.QUEUED
        ]
        if not waiting:
            return
        for assignment in self.router.assign(
            waiting, registered=self.presence.registered, busy=self.model.agent_busy
        ):
            call = self.model.calls[assignment.call_id]
            channel = self.model.channels.get(call.caller_channel)
            if channel is None:
                self._release(assignment.agent)
                continue
            self._reservation_timers[assignment.agent] = asyncio.get_running_loop().call_later(
                self.reservation_timeout_s,
                self._reservation_expired,
                assignment.agent,
                assignment.call_id,
            )
            log.info("call %s: routing to agent %s", call.call_id, assignment.agent)
            self._spawn(self._connect(call.call_id, channel.name, assignment.agent))

    def _reservation_expired(self, agent: str, call_id: str) -> None:
        self._reservation_timers.pop(agent, None)
        if self.router.reserved.get(agent) == call_id:
            log.warning(
                "call %s: agent %s did not start ringing within %.0f s; releasing",
                call_id,
                agent,
                self.reservation_timeout_s,
            )
            self.router.release(agent)
            self._route()

    async def _connect(self, call_id: str, caller_channel: str, agent: str) -> None:
        try:
            reply = await self.link.send_action(
                {
                    "Action": "Redirect",
                    "Channel": caller_channel,
                    "Context": CONNECT_CONTEXT,
                    "Exten": agent,
                    "Priority": "1",
                }
            )
        except AMIError as exc:
            log.error("call %s: redirect to agent %s failed: %s", call_id, agent, exc)
            self._release(agent)
            return
        if not getattr(reply, "success", False):
            log.error(
                "call %s: Asterisk refused redirect to agent %s: %s",
                call_id,
                agent,
                reply.get("Message", reply),
            )
            self._release(agent)
            self._route()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("engine task failed", exc_info=task.exception())
