"""The ACD's effects in the switch: its decisions performed with AMI actions.

:class:`SwitchEffects` implements :class:`acd.service.AcdEffects` (connect a
caller to an agent, offer a callback, move a caller to another queue, keep
app_queue's members in step) and the two duties that keep the dialplan's
safety net from taking callers the engine is serving: each waiting caller's
lease, renewed on the heartbeat, and its position announcement.

It sends without waiting through an injected ``send`` (the runtime posts on
the AMI link and checks the reply) and reads the call model through
:class:`acd.service.CallView`; timers come from an injected ``call_later``.
The ACD runner (:mod:`acd.runner`) feeds it the switch's hold events
(:meth:`SwitchEffects.entered_hold`, :meth:`SwitchEffects.left_hold`).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping
from functools import partial
from typing import Protocol

from acd.agents import AgentState
from acd.core import Acd
from acd.service import CallView
from common import ami_actions as ami
from common import channel_vars as var
from common.ami_actions import ActionSender
from common.call_changes import CallPhase
from common.contexts import CALLBACK, CONNECT

__all__ = [
    "DEFER_CAP_S",
    "CallLater",
    "SwitchEffects",
    "TimerHandle",
]

log = logging.getLogger(__name__)

DEFER_CAP_S = 1.5
"""Longest wait for the caller's hold music before a deferred Redirect is sent anyway."""
_APP_QUEUE = "app_queue"
"""``Call.routed_by`` of a caller Asterisk's app_queue serves (no lease)."""


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


CallLater = Callable[[float, Callable[[], None]], TimerHandle]


def _loop_call_later(delay: float, callback: Callable[[], None]) -> TimerHandle:
    return asyncio.get_running_loop().call_later(delay, callback)


class SwitchEffects:
    """The :class:`acd.service.AcdEffects` port over AMI.

    ``agent_queues``: agent -> the app_queue queues it is a member of (its
    fallback queues); ``queue_of``: the queue the ACD service attributes a
    call to (None when it routes none); ``connected``: whether the AMI link
    is up (member sync and leases are skipped while it is down: the resync
    after the reconnect sends them); ``engine_grace_s``: how far ahead each
    renewal pushes a waiting caller's lease.
    """

    def __init__(
        self,
        *,
        send: ActionSender,
        calls: CallView,
        acd: Acd,
        agent_queues: Mapping[str, tuple[str, ...]],
        queue_of: Callable[[str], str | None],
        clock: Callable[[], float],
        connected: Callable[[], bool],
        engine_grace_s: float,
        call_later: CallLater | None = None,
    ) -> None:
        self._send = send
        self._calls = calls
        self._acd = acd
        self._agent_queues = agent_queues
        self._queue_of = queue_of
        self._clock = clock
        self._connected = connected
        self._engine_grace_s = engine_grace_s
        self._call_later = call_later or _loop_call_later
        self._on_hold: set[str] = set()
        """Caller channels now in MusicOnHold: the safe moment for a Redirect."""
        self._deferred: dict[str, tuple[str, str, TimerHandle]] = {}
        """Caller channel -> (call, agent, cap timer) of a Redirect waiting for the music."""
        self._positions: dict[str, tuple[int, int]] = {}
        """Call -> the (position, minutes) last announced to it."""

    # -- the AcdEffects port ---------------------------------------------------------

    def connect(self, call_id: str, agent: str) -> None:
        """Redirect the caller to the agent: at once when its channel is in
        MusicOnHold, else when the music starts again or after DEFER_CAP_S."""
        call = self._calls.calls.get(call_id)
        if call is None or self._caller_channel(call_id) is None:
            log.error("call %s: no caller channel to connect to agent %s", call_id, agent)
            return
        uniqueid = call.caller_channel
        if uniqueid not in self._on_hold:
            # Between dialplan steps (walking back to hold after a ring, or an
            # announcement's jump): a Redirect that lands on a Goto can lose the
            # channel on Asterisk 16. Send it when the music starts again, or
            # after a short cap (a Playback in progress is safe to interrupt).
            self._cancel_deferred(uniqueid)
            handle = self._call_later(DEFER_CAP_S, partial(self._send_deferred, uniqueid))
            self._deferred[uniqueid] = (call_id, agent, handle)
            return
        self._redirect_to_agent(call_id, agent)

    def offer_callback(self, call_id: str) -> None:
        channel = self._caller_channel(call_id)
        if channel is not None:
            log.info("call %s: estimated wait too long; offering a callback", call_id)
            self._send(
                ami.redirect(channel, CALLBACK, "s"),
                what=f"call {call_id}: redirect to callback",
                refusal_ok=False,
            )

    def move_queue(self, call_id: str, queue: str) -> None:
        channel = self._caller_channel(call_id)
        if channel is not None:
            self._send(
                ami.setvar(channel, var.QUEUE, queue),
                what=f"call {call_id}: overflow to {queue}",
                refusal_ok=False,
            )

    def agent_in_fallback_queues(
        self, agent: str, *, member: bool, paused: bool, reason: str | None
    ) -> None:
        """Keep app_queue's members and pauses in step with the ACD, so that the
        dialplan's fallback rings the same agents the engine would. Asterisk
        runs one session's actions in order: QueueAdd lands before QueuePause."""
        if not self._connected():
            return
        interface = f"PJSIP/{agent}"
        for queue in self._agent_queues.get(agent, ()):
            what = f"agent {agent}: app_queue member sync for {queue}"
            if not member:
                self._send(ami.queue_remove(queue, interface), what=what, refusal_ok=True)
                continue
            self._send(
                ami.queue_add(queue, interface, member_name=agent, paused=paused),
                what=what,
                refusal_ok=True,
            )
            self._send(
                ami.queue_pause(queue, interface, paused=paused, reason=reason or ""),
                what=what,
                refusal_ok=False,
            )

    # -- inputs from the switch --------------------------------------------------------

    def entered_hold(self, uniqueid: str) -> None:
        """MusicOnHoldStart on *uniqueid*: a deferred Redirect goes now."""
        self._on_hold.add(uniqueid)
        if uniqueid in self._deferred:
            self._send_deferred(uniqueid)

    def left_hold(self, uniqueid: str, *, hung_up: bool = False) -> None:
        """MusicOnHoldStop, or the channel's Hangup (which also drops a
        Redirect still waiting for it)."""
        self._on_hold.discard(uniqueid)
        if hung_up:
            self._cancel_deferred(uniqueid)

    def sync_fallback_members(self) -> None:
        """Every agent's app_queue membership and pause, as the ACD has them
        (after a resync: the switch may have missed changes meanwhile)."""
        for agent_id, agent in self._acd.agents.items():
            self.agent_in_fallback_queues(
                agent_id,
                member=agent.state is not AgentState.LOGGED_OUT,
                paused=agent.state is AgentState.PAUSED,
                reason=agent.pause_reason,
            )

    def renew_leases(self) -> None:
        """Renew each waiting caller's lease and tell it its position and
        expected wait. Without renewals the dialplan hands the caller to its
        fallback."""
        if not self._connected():
            return
        lease_until = str(int(self._clock() + self._engine_grace_s))
        waiting = [
            c
            for c in self._calls.calls.values()
            if c.phase is CallPhase.QUEUED and c.routed_by != _APP_QUEUE
        ]
        for call in waiting:
            channel = self._caller_channel(call.call_id)
            if channel is None:
                continue
            self._setvar(channel, var.LEASE_UNTIL, lease_until, call.call_id)
            announced = self._announcement(call.call_id)
            if announced is not None and self._positions.get(call.call_id) != announced:
                self._positions[call.call_id] = announced
                # One variable, "position,minutes": the dialplan CUTs it apart.
                self._setvar(channel, var.POSITION, f"{announced[0]},{announced[1]}", call.call_id)
        for call_id in list(self._positions):
            if call_id not in self._calls.calls:
                del self._positions[call_id]

    def close(self) -> None:
        """Drop every Redirect still waiting for its caller's hold music."""
        for uniqueid in list(self._deferred):
            self._cancel_deferred(uniqueid)

    # -- helpers -----------------------------------------------------------------------

    def _cancel_deferred(self, uniqueid: str) -> None:
        deferred = self._deferred.pop(uniqueid, None)
        if deferred is not None:
            deferred[2].cancel()

    def _send_deferred(self, uniqueid: str) -> None:
        deferred = self._deferred.pop(uniqueid, None)
        if deferred is None:
            return
        call_id, agent, handle = deferred
        handle.cancel()
        acd_agent = self._acd.agents.get(agent)
        if acd_agent is None or acd_agent.call_id != call_id:
            return  # the ACD changed its mind meanwhile (reservation expired, caller left)
        self._redirect_to_agent(call_id, agent)

    def _redirect_to_agent(self, call_id: str, agent: str) -> None:
        channel = self._caller_channel(call_id)
        if channel is None:
            return
        log.info("call %s: routing to agent %s", call_id, agent)
        self._send(
            ami.redirect(channel, CONNECT, agent),
            what=f"call {call_id}: redirect to agent {agent}",
            refusal_ok=False,
        )

    def _caller_channel(self, call_id: str) -> str | None:
        """The name of the call's caller channel, while both are live."""
        call = self._calls.calls.get(call_id)
        if call is None:
            return None
        channel = self._calls.channels.get(call.caller_channel)
        return str(channel.name) if channel is not None else None

    def _announcement(self, call_id: str) -> tuple[int, int] | None:
        """(position, expected wait in whole minutes; 0 when unknown)."""
        position = self._acd.position(call_id)
        queue = self._queue_of(call_id)
        if position is None or queue is None:
            return None
        ewt = self._acd.estimated_wait_s(queue, position)
        minutes = max(1, math.ceil(ewt / 60)) if math.isfinite(ewt) else 0
        return position, minutes

    def _setvar(self, channel: str, name: str, value: str, call_id: str) -> None:
        self._send(
            ami.setvar(channel, name, value), what=f"call {call_id}: {name}", refusal_ok=False
        )
