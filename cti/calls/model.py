"""The pure call model: normalized AMI events -> channels, bridges and citizen calls.

Feed every AMI message to :meth:`CallModel.apply`; it returns the
:mod:`~common.call_changes` the message caused. No I/O happens here: times come
from the events' ``Timestamp`` header, so replaying a recorded transcript
gives exactly the numbers of the live run.

How a citizen's call is recognised and followed (see
``config/asterisk/extensions*.conf.tmpl`` for the dialplan that produces the
events):

* A *call* is created by the ``Newchannel`` of an inbound trunk channel (a
  trunk endpoint, created ringing rather than ``Down``: our own dial-outs
  through the trunk are created ``Down``) whose ``Linkedid`` is not already a
  call. Its id is that ``Linkedid``. Other channels join the call when they
  share its ``Linkedid``, are dialled by one of its legs, or enter a bridge
  with one of its legs (an attended-transfer target has a ``Linkedid`` of its
  own). Channels of agent-to-agent or other internal calls are tracked but
  make no call.
* An *agent leg* is a leg of the call that is neither the caller's channel,
  nor a trunk, nor an Asterisk pseudo-channel (``Local``, ``Snoop``...).
* ``UserEvent(HotlineEnqueue)`` on the caller's channel -> QUEUED;
  ``DialBegin`` of an agent leg -> RINGING; ``DialEnd`` ANSWER -> CONNECTED.
  The answer is taken at ``DialEnd`` ANSWER: it is the earliest event that
  says *this* agent took *this* call (the agent leg's ``Newstate Up`` is
  ~0.1 ms earlier but does not say which dial it ends), and the bridge
  follows at once (``BridgeEnter`` of the caller 0.2-0.5 ms later in the
  transcripts). A ``BridgeEnter`` that puts the caller with an agent not yet
  connected (attended transfer, an engine ``Bridge`` action) also counts.
* A failed ring (NOANSWER, BUSY, CHANUNAVAIL, CONGESTION...) is
  ``AgentNoAnswer`` with how long it rang; a dial that failed before the
  agent's channel existed is reported by ``HotlineDialResult``. A failed ring
  with nothing else ringing puts the caller back to QUEUED (the dialplan
  returns it to hold);
  ``queued_at`` keeps the first entry, as the 15 s clock requires.
* An agent leg that leaves the caller's bridge (or hangs up) while the caller
  stays is ``AgentLeft``; the caller then goes to AFTER_CALL (post-call
  survey), unless the agent was transferring the call away, in which case the
  call stays CONNECTED until the transfer target rings.
* The caller's ``Hangup`` ends the call (ENDED) and moves it to :attr:`CallModel.ended`.

Talk time runs from the first answer to the moment the caller stops being
bridged with any agent for the last time (the caller leaving the bridge, or
the last agent leaving it), or to the caller's hangup when no bridge was seen;
the gap of a blind transfer counts as talk.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from common.call_changes import (
    AgentConnected,
    AgentLeft,
    AgentNoAnswer,
    AgentRinging,
    CallAnswered,
    CallArrived,
    CallChange,
    CallEnded,
    CallLost,
    CallPhase,
    CallQueued,
    CallTransferred,
)
from common.contexts import AFTER_CALL_CONTEXTS, HOLD_CONTEXTS, MOVED_CONTEXTS
from cti import events as ev

__all__ = [
    "AFTER_CALL_CONTEXTS",
    "HOLD_CONTEXTS",
    "LOST_REASON",
    "MOVED_CONTEXTS",
    "NOT_FAILURES",
    "Bridge",
    "Call",
    "CallModel",
    "CallPhase",
    "Channel",
]

log = logging.getLogger(__name__)

# DialEnd statuses that mean "the agent did not take it". CANCEL is the
# caller (or the engine) giving up, not the agent; any other status is a
# failed ring (acd.dial_outcomes classifies it).
NOT_FAILURES = frozenset({"ANSWER", "CANCEL", ""})
# Channel drivers that are Asterisk internals, never an agent's phone.
PSEUDO_TECHS = frozenset(
    {
        "Local",
        "Snoop",
        "Announcer",
        "Recorder",
        "CBAnn",
        "CBRec",
        "Message",
        "Multicast",
        "MulticastRTP",
        "UnicastRTP",
        "AudioSocket",
        "ConfBridge",
        "Bridge",
    }
)
LOST_REASON = "lost during disconnect"
ENDED_CALLS_KEPT = 1000
# The dial is still in progress on an agent leg in these states (resync).
_NOT_ANSWERED_STATES = frozenset({"Down", "Rsrvd", "OffHook", "Dialing", "Ring", "Ringing"})
_RESYNC = "CoreShowChannels"


@dataclass
class Channel:
    """One live Asterisk channel.

    The model drops a channel on its ``Hangup``; ``hungup_at`` and
    ``hangup_cause`` are filled in just before, for whoever still holds it.
    """

    uniqueid: str
    linkedid: str
    name: str
    endpoint: str  # "1001" for PJSIP/1001-00000001, "trunk" for PJSIP/trunk-...
    state: str  # ChannelStateDesc
    caller_number: str
    caller_name: str
    exten: str  # current dialplan position, not the dialled number
    context: str
    created_at: float
    answered_at: float | None = None
    hungup_at: float | None = None
    hangup_cause: str | None = None
    bridge_id: str | None = None
    # Set by a non-soft HangupRequest (the far end hung up): from then on this
    # side is leaving, so the other side leaving the bridge is not "left first".
    hangup_requested_at: float | None = None

    @property
    def tech(self) -> str:
        """Channel driver (``PJSIP``, ``Local``...)."""
        return ev.channel_tech(self.name)


@dataclass
class Bridge:
    """A live bridge and the uniqueids of the channels in it."""

    bridge_id: str
    channels: set[str] = field(default_factory=set)


@dataclass(kw_only=True)
class Call:
    """A citizen's call, identified by the ``Linkedid`` of the caller's trunk channel."""

    call_id: str
    caller_channel: str
    caller_number: str
    caller_name: str
    dialled: str  # the DID (Exten of the trunk channel's Newchannel)
    line: str | None  # from the DID, overridden by HotlineEnqueue's Line
    queue: str | None = None
    phase: CallPhase = CallPhase.ARRIVED
    arrived_at: float
    queued_at: float | None = None  # FIRST queue entry: the 15 s clock starts here
    ringing_at: float | None = None  # first DialBegin of an agent leg
    answered_at: float | None = None  # first DialEnd ANSWER (or bridge with an agent)
    ended_at: float | None = None
    agent: str | None = None  # agent currently / last connected
    agents_tried: list[str] = field(default_factory=list)
    no_answers: list[str] = field(default_factory=list)
    transfers: list[tuple[str | None, str]] = field(default_factory=list)
    hangup_cause: str | None = None
    abandoned: bool = False
    # Beyond the summary: the model's working state, public for inspection.
    talk_ended_at: float | None = None  # caller last stopped being bridged with an agent
    legs: set[str] = field(default_factory=set)  # live channels of the call, caller's included
    ringing_legs: dict[str, str] = field(default_factory=dict)  # uniqueid -> agent
    ring_began: dict[str, float] = field(default_factory=dict)  # uniqueid -> DialBegin time
    # Agents the dialplan is about to dial for the caller (HotlineConnect) whose
    # dial has produced no leg yet: agent -> time. A dial that fails before
    # its channel exists is only reported by HotlineDialResult.
    dial_pending: dict[str, float] = field(default_factory=dict)
    connected_legs: dict[str, str] = field(default_factory=dict)  # uniqueid -> agent
    # Legs an agent's leg dialled (a consultation): uniqueid -> endpoint; the
    # uniqueids of those that answered.
    consult_legs: dict[str, str] = field(default_factory=dict)
    consult_answered: set[str] = field(default_factory=set)
    ivr_choices: tuple[str, ...] = ()  # what the caller chose in the IVR, in order
    transferring: bool = False  # an agent transferred it; the target has not rung yet
    adopted: bool = False  # found by a resync, times estimated from Duration
    routed_by: str = "engine"  # "app_queue": a line Asterisk's Queue() routes
    history: list[tuple[float, CallPhase, str]] = field(default_factory=list)  # (at, phase, event)

    @property
    def wait_s(self) -> float | None:
        """Queue wait: first entry to first answer, or to the hangup of an abandoned call."""
        if self.queued_at is None:
            return None
        if self.answered_at is not None:
            return self.answered_at - self.queued_at
        if self.abandoned and self.ended_at is not None:
            return self.ended_at - self.queued_at
        return None

    @property
    def talk_s(self) -> float | None:
        """First answer to the caller's last moment with an agent (None while talking)."""
        if self.answered_at is None:
            return None
        end = self.talk_ended_at if self.talk_ended_at is not None else self.ended_at
        return None if end is None else end - self.answered_at


Handler = Callable[[Any, list[CallChange]], None]


class CallModel:
    """Channels, bridges and citizen calls, driven by AMI events.

    ``lines`` maps a dialled number (DID) to its hotline line name;
    ``trunk_endpoints`` are the endpoints citizens' calls arrive on.
    """

    def __init__(
        self,
        *,
        lines: Mapping[str, str],
        trunk_endpoints: Collection[str] = ("trunk",),
        hold_contexts: Collection[str] = HOLD_CONTEXTS,
        after_call_contexts: Collection[str] = AFTER_CALL_CONTEXTS,
        ended_kept: int = ENDED_CALLS_KEPT,
    ) -> None:
        self._lines = dict(lines)
        self._trunks = frozenset(trunk_endpoints)
        self._hold_contexts = frozenset(hold_contexts)
        self._after_call_contexts = frozenset(after_call_contexts)
        self.calls: dict[str, Call] = {}
        self.ended: deque[Call] = deque(maxlen=ended_kept)
        self.channels: dict[str, Channel] = {}
        self.bridges: dict[str, Bridge] = {}
        self._call_of: dict[str, str] = {}  # uniqueid -> call_id (active calls)
        self._by_endpoint: dict[str, set[str]] = {}  # endpoint -> live uniqueids
        # Fallback time for a message without Timestamp: the last event's, so
        # that a replay stays deterministic.
        self._last_at = 0.0
        self.skipped = 0
        """Messages skipped as malformed or unreadable (each is logged)."""
        self._handlers: dict[type[ev.AmiEvent], Handler] = {
            ev.Newchannel: self._on_newchannel,
            ev.Newstate: self._on_newstate,
            ev.NewCallerid: self._on_newcallerid,
            ev.Rename: self._on_rename,
            ev.HangupRequest: self._on_hangup_request,
            ev.Hangup: self._on_hangup,
            ev.DialBegin: self._on_dial_begin,
            ev.DialEnd: self._on_dial_end,
            ev.BridgeCreate: self._on_bridge_create,
            ev.BridgeEnter: self._on_bridge_enter,
            ev.BridgeLeave: self._on_bridge_leave,
            ev.BridgeDestroy: self._on_bridge_destroy,
            ev.BlindTransfer: self._on_blind_transfer,
            ev.AttendedTransfer: self._on_attended_transfer,
            ev.HotlineEnqueue: self._on_enqueue,
            ev.HotlineConnect: self._on_hotline_connect,
            ev.HotlineDialResult: self._on_dial_result,
            ev.HotlineFallback: self._on_channel_event,
            ev.MusicOnHold: self._on_channel_event,
            ev.MixMonitor: self._on_channel_event,
        }

    # -- public API ---------------------------------------------------------

    def apply(
        self, event: Mapping[str, Any], *, received_at: float | None = None
    ) -> list[CallChange]:
        """Apply one raw AMI message (header mapping); return the changes it caused.

        Responses, unknown events and ``CoreShowChannel`` items (see
        :meth:`resync`) change nothing. A malformed message is logged and
        skipped; this never raises. ``received_at`` is used only when the
        message has no ``Timestamp`` (default: the last event's time).
        """
        try:
            normalized = ev.normalize(
                event, received_at=self._last_at if received_at is None else received_at
            )
        except ev.MalformedEvent as exc:
            self.skipped += 1
            log.warning("call model: skipping malformed AMI event: %s", exc)
            return []
        except Exception:  # not even header-shaped: the caller's bug, still not fatal
            self.skipped += 1
            log.warning("call model: cannot read AMI message %r", event, exc_info=True)
            return []
        if normalized is None:
            return []
        return self.apply_event(normalized)

    def apply_event(self, event: ev.AmiEvent) -> list[CallChange]:
        """Apply one already normalized event (see :func:`cti.events.normalize`)."""
        handler = self._handlers.get(type(event))
        if handler is None:
            return []
        self._last_at = max(self._last_at, event.at)
        changes: list[CallChange] = []
        try:
            handler(event, changes)
        except Exception:
            # A model bug must not take the engine down; the changes made so far stand.
            log.exception("call model: failed to apply %r", event)
        return changes

    @property
    def last_event_at(self) -> float:
        """Asterisk's time of the latest event applied (0.0 before any)."""
        return self._last_at

    def call_for_channel(self, uniqueid: str) -> Call | None:
        """The active call the channel is a leg of, if any."""
        call_id = self._call_of.get(uniqueid)
        return self.calls.get(call_id) if call_id is not None else None

    def agent_busy(self, endpoint: str) -> bool:
        """True while the endpoint has any live channel (being dialled, ringing or up),
        whether in a citizen's call or not: its phone is in use either way."""
        return bool(self._by_endpoint.get(endpoint))

    def resync(self, snapshot: list[Mapping[str, Any]], *, now: float) -> list[CallChange]:
        """Rebuild from a ``CoreShowChannels`` reply (its ``CoreShowChannel`` items).

        Calls whose caller channel is gone end with :class:`CallLost`; channels
        that vanished are dropped (an agent leg that vanished from a live call is
        ``AgentLeft``); channels that appeared are adopted, and a new inbound
        trunk channel becomes a call whose times are ``now - Duration``.
        Adopted calls report ``CallArrived`` and then what the snapshot shows
        (``CallQueued``, ``AgentRinging``, ``CallAnswered``); kept calls report
        only what changed, at ``now``. Bridges are rebuilt from ``BridgeId``.
        """
        items: dict[str, ev.CoreShowChannel] = {}
        for message in snapshot:
            try:
                item = ev.normalize(message, received_at=now)
            except ev.MalformedEvent as exc:
                log.warning("call model resync: skipping %s", exc)
                continue
            if isinstance(item, ev.CoreShowChannel):
                items[item.channel.uniqueid] = item
        changes: list[CallChange] = []
        self._last_at = max(self._last_at, now)
        for call in list(self.calls.values()):
            if call.caller_channel not in items:
                self._lose(call, now, changes)
        for uniqueid in [uid for uid in self.channels if uid not in items]:
            self._drop_channel(uniqueid)
        # Oldest first, so that the first channel of a Linkedid is the one adopted as caller.
        ordered = sorted(items.values(), key=lambda item: -item.duration_s)
        for item in ordered:
            self._adopt_channel(item, now)
        self._rebuild_bridges(items)
        adopted: set[str] = set()
        for item in ordered:
            new_call = self._adopt_call(item)
            if new_call is not None:
                adopted.add(new_call.call_id)
        for item in ordered:
            uniqueid = item.channel.uniqueid
            if uniqueid not in self._call_of:
                owner = self.calls.get(item.channel.linkedid) or self._call_in_bridge(
                    self.bridges.get(item.bridge_id)
                )
                if owner is not None:
                    self._join(owner, uniqueid)
        for call in list(self.calls.values()):
            self._reconcile(call, items[call.caller_channel], now, call.call_id in adopted, changes)
        return changes

    # -- channel bookkeeping ------------------------------------------------

    def _add_channel(self, channel: Channel) -> None:
        self.channels[channel.uniqueid] = channel
        self._by_endpoint.setdefault(channel.endpoint, set()).add(channel.uniqueid)

    def _drop_channel(self, uniqueid: str) -> None:
        channel = self.channels.pop(uniqueid, None)
        if channel is None:
            return
        same_endpoint = self._by_endpoint.get(channel.endpoint)
        if same_endpoint is not None:
            same_endpoint.discard(uniqueid)
            if not same_endpoint:
                del self._by_endpoint[channel.endpoint]
        if channel.bridge_id is not None and channel.bridge_id in self.bridges:
            self.bridges[channel.bridge_id].channels.discard(uniqueid)
        call_id = self._call_of.pop(uniqueid, None)
        if call_id is not None and call_id in self.calls:
            self.calls[call_id].legs.discard(uniqueid)

    def _touch(self, info: ev.ChannelInfo, at: float) -> Channel | None:
        """Refresh a known channel from an event's snapshot; None if unknown."""
        channel = self.channels.get(info.uniqueid)
        if channel is None:
            log.debug("event for unknown channel %s (%s)", info.uniqueid, info.name)
            return None
        if info.state:
            channel.state = info.state
            if info.state == "Up" and channel.answered_at is None:
                channel.answered_at = at
        channel.context = info.context or channel.context
        channel.exten = info.exten
        return channel

    def _new_channel(self, info: ev.ChannelInfo, created_at: float) -> Channel:
        channel = Channel(
            uniqueid=info.uniqueid,
            linkedid=info.linkedid,
            name=info.name,
            endpoint=info.endpoint,
            state=info.state,
            caller_number=info.caller_number,
            caller_name=info.caller_name,
            exten=info.exten,
            context=info.context,
            created_at=created_at,
        )
        self._add_channel(channel)
        return channel

    def _join(self, call: Call, uniqueid: str) -> None:
        call.legs.add(uniqueid)
        self._call_of[uniqueid] = call.call_id

    def _is_agent_leg(self, call: Call, channel: Channel) -> bool:
        return (
            channel.uniqueid != call.caller_channel
            and bool(channel.endpoint)
            and channel.endpoint not in self._trunks
            and channel.tech not in PSEUDO_TECHS
        )

    def _call_in_bridge(self, bridge: Bridge | None) -> Call | None:
        if bridge is None:
            return None
        for uniqueid in bridge.channels:
            call = self.call_for_channel(uniqueid)
            if call is not None:
                return call
        return None

    def _caller_leaving(self, call: Call) -> bool:
        caller = self.channels.get(call.caller_channel)
        return caller is None or caller.hangup_requested_at is not None

    # -- call transitions ---------------------------------------------------

    def _transition(self, call: Call, phase: CallPhase, at: float, event: str) -> None:
        if call.phase is phase:
            return
        log.debug("call %s: %s -[%s]-> %s", call.call_id, call.phase.name, event, phase.name)
        call.phase = phase
        call.history.append((at, phase, event))

    def _enqueue(
        self,
        call: Call,
        at: float,
        event: str,
        out: list[CallChange],
        *,
        line: str = "",
        queue: str = "",
    ) -> None:
        requeued = call.queued_at is not None
        if not requeued:
            call.queued_at = at
        call.line = line or call.line
        call.queue = queue or call.queue
        call.transferring = False
        self._transition(call, CallPhase.QUEUED, at, event)
        out.append(
            CallQueued(
                call.call_id,
                at,
                line=call.line,
                queue=call.queue,
                requeued=requeued,
                app_queue=call.routed_by == "app_queue",
            )
        )

    def _ring(
        self, call: Call, channel: Channel, at: float, event: str, out: list[CallChange]
    ) -> None:
        agent = channel.endpoint
        call.ringing_legs[channel.uniqueid] = agent
        call.ring_began[channel.uniqueid] = at
        call.dial_pending.pop(agent, None)
        call.agents_tried.append(agent)
        if call.ringing_at is None:
            call.ringing_at = at
        call.transferring = False
        if not call.connected_legs:
            self._transition(call, CallPhase.RINGING, at, event)
        out.append(AgentRinging(call.call_id, at, agent=agent))

    def _connect(
        self, call: Call, uniqueid: str, agent: str, at: float, event: str, out: list[CallChange]
    ) -> None:
        call.ringing_legs.pop(uniqueid, None)
        call.ring_began.pop(uniqueid, None)
        call.connected_legs[uniqueid] = agent
        call.agent = agent
        call.talk_ended_at = None
        call.transferring = False
        first = call.answered_at is None
        if first:
            call.answered_at = at
        self._transition(call, CallPhase.CONNECTED, at, event)
        if first:
            out.append(CallAnswered(call.call_id, at, agent=agent, wait_s=call.wait_s))
        else:
            out.append(AgentConnected(call.call_id, at, agent=agent))

    def _ring_over(self, call: Call, at: float, event: str, out: list[CallChange]) -> None:
        """A ring ended without an answer: with nothing else ringing or connected,
        the dialplan has put the caller back on hold."""
        if (
            call.phase is CallPhase.RINGING
            and not call.ringing_legs
            and not call.connected_legs
            and not self._caller_leaving(call)
        ):
            self._enqueue(call, at, event, out)

    def _agent_left(
        self, call: Call, uniqueid: str, at: float, event: str, out: list[CallChange]
    ) -> None:
        agent = call.connected_legs.pop(uniqueid)
        if self._caller_leaving(call):
            return  # the caller hung up first: CallEnded reports it
        out.append(AgentLeft(call.call_id, at, agent=agent))
        if not call.connected_legs:
            if call.talk_ended_at is None:
                call.talk_ended_at = at
            if not call.transferring and call.phase is CallPhase.CONNECTED:
                self._transition(call, CallPhase.AFTER_CALL, at, event)

    def _retire(self, call: Call) -> None:
        self.calls.pop(call.call_id, None)
        for uniqueid in call.legs:
            self._call_of.pop(uniqueid, None)
        call.legs.clear()
        self.ended.append(call)

    def _lose(self, call: Call, now: float, out: list[CallChange]) -> None:
        call.ended_at = now
        call.hangup_cause = LOST_REASON
        self._transition(call, CallPhase.ENDED, now, _RESYNC)
        out.append(CallLost(call.call_id, now, reason=LOST_REASON))
        self._retire(call)

    # -- event handlers -----------------------------------------------------

    def _on_newchannel(self, event: ev.Newchannel, out: list[CallChange]) -> None:
        info = event.channel
        if info.uniqueid in self.channels:
            log.debug("duplicate Newchannel for %s", info.uniqueid)
            self._touch(info, event.at)
            return
        channel = self._new_channel(info, event.at)
        call = self.calls.get(info.linkedid)
        if call is not None:
            self._join(call, channel.uniqueid)
            return
        # Our own dial-outs through the trunk start "Down"; a citizen's call starts ringing.
        if channel.endpoint not in self._trunks or info.state == "Down":
            return
        call = Call(
            call_id=info.linkedid,
            caller_channel=info.uniqueid,
            caller_number=info.caller_number,
            caller_name=info.caller_name,
            dialled=info.exten,
            line=self._lines.get(info.exten),
            arrived_at=event.at,
        )
        self.calls[call.call_id] = call
        self._join(call, channel.uniqueid)
        log.debug("call %s: - -[Newchannel]-> %s", call.call_id, call.phase.name)
        call.history.append((event.at, call.phase, "Newchannel"))
        out.append(
            CallArrived(
                call.call_id,
                event.at,
                line=call.line,
                caller_number=call.caller_number,
                caller_name=call.caller_name,
                dialled=call.dialled,
            )
        )

    def _on_newstate(self, event: ev.Newstate, out: list[CallChange]) -> None:
        self._touch(event.channel, event.at)

    def _on_newcallerid(self, event: ev.NewCallerid, out: list[CallChange]) -> None:
        channel = self._touch(event.channel, event.at)
        if channel is not None:
            channel.caller_number = event.channel.caller_number
            channel.caller_name = event.channel.caller_name

    def _on_rename(self, event: ev.Rename, out: list[CallChange]) -> None:
        channel = self.channels.get(event.uniqueid)
        if channel is None:
            return
        same_endpoint = self._by_endpoint.get(channel.endpoint, set())
        same_endpoint.discard(channel.uniqueid)
        if not same_endpoint:
            self._by_endpoint.pop(channel.endpoint, None)
        channel.name = event.new_name
        channel.endpoint = ev.channel_endpoint(event.new_name)
        self._by_endpoint.setdefault(channel.endpoint, set()).add(channel.uniqueid)

    def _on_hangup_request(self, event: ev.HangupRequest, out: list[CallChange]) -> None:
        channel = self._touch(event.channel, event.at)
        # Only the far end's request: Asterisk also soft-hangs-up a bridged
        # channel it redirects (AsyncGoto), which is not a hangup.
        if channel is not None and not event.soft and channel.hangup_requested_at is None:
            channel.hangup_requested_at = event.at

    def _on_hangup(self, event: ev.Hangup, out: list[CallChange]) -> None:
        uniqueid = event.channel.uniqueid
        channel = self._touch(event.channel, event.at)
        if channel is None:
            return
        channel.hungup_at = event.at
        channel.hangup_cause = event.cause_txt or (
            str(event.cause) if event.cause is not None else None
        )
        call = self.call_for_channel(uniqueid)
        if call is not None and uniqueid == call.caller_channel:
            self._drop_channel(uniqueid)
            call.ended_at = event.at
            call.hangup_cause = channel.hangup_cause
            call.abandoned = call.answered_at is None and call.queued_at is not None
            self._transition(call, CallPhase.ENDED, event.at, "Hangup")
            out.append(
                CallEnded(
                    call.call_id,
                    event.at,
                    abandoned=call.abandoned,
                    wait_s=call.wait_s,
                    talk_s=call.talk_s,
                    cause=call.hangup_cause,
                )
            )
            self._retire(call)
            return
        if call is not None and uniqueid in call.ringing_legs:
            # DialEnd normally comes first; this covers a leg that just vanished.
            call.ringing_legs.pop(uniqueid)
            call.ring_began.pop(uniqueid, None)
            self._drop_channel(uniqueid)
            self._ring_over(call, event.at, "Hangup", out)
            return
        if call is not None and uniqueid in call.connected_legs:
            self._agent_left(call, uniqueid, event.at, "Hangup", out)
        if call is not None:
            call.consult_legs.pop(uniqueid, None)
            call.consult_answered.discard(uniqueid)
        self._drop_channel(uniqueid)

    def _on_dial_begin(self, event: ev.DialBegin, out: list[CallChange]) -> None:
        dest = self._touch(event.dest, event.at)
        if dest is None:  # the dest's Newchannel was missed: its snapshot is complete
            dest = self._new_channel(event.dest, event.at)
        if event.caller is None:
            return
        call = self.call_for_channel(event.caller.uniqueid)
        if call is None:
            return
        self._touch(event.caller, event.at)
        if dest.uniqueid not in call.legs:
            self._join(call, dest.uniqueid)
        if event.caller.uniqueid != call.caller_channel:
            # An agent's leg dialling out (a consultation): the target talks to
            # the agent, not yet to the caller, and is no offer of the call.
            call.consult_legs[dest.uniqueid] = dest.endpoint
            return
        if self._is_agent_leg(call, dest):
            self._ring(call, dest, event.at, "DialBegin", out)

    def _on_dial_end(self, event: ev.DialEnd, out: list[CallChange]) -> None:
        self._touch(event.dest, event.at)
        uniqueid = event.dest.uniqueid
        call = self.call_for_channel(uniqueid)
        if call is not None and uniqueid in call.consult_legs:
            if event.dial_status.upper() == "ANSWER":
                call.consult_answered.add(uniqueid)
            return
        if call is None or uniqueid not in call.ringing_legs:
            return
        status = event.dial_status.upper()
        if status == "ANSWER":
            self._connect(call, uniqueid, call.ringing_legs[uniqueid], event.at, "DialEnd", out)
            return
        agent = call.ringing_legs.pop(uniqueid)
        began = call.ring_began.pop(uniqueid, None)
        if status not in NOT_FAILURES:
            call.no_answers.append(agent)
            rang_s = None if began is None else max(0.0, event.at - began)
            out.append(
                AgentNoAnswer(
                    call.call_id, event.at, agent=agent, dial_status=status, rang_s=rang_s
                )
            )
        self._ring_over(call, event.at, "DialEnd", out)

    def _on_bridge_create(self, event: ev.BridgeCreate, out: list[CallChange]) -> None:
        self.bridges.setdefault(event.bridge_id, Bridge(event.bridge_id))

    def _on_bridge_enter(self, event: ev.BridgeEnter, out: list[CallChange]) -> None:
        bridge = self.bridges.setdefault(event.bridge_id, Bridge(event.bridge_id))
        channel = self._touch(event.channel, event.at)
        if channel is None:
            return
        if channel.bridge_id not in (None, event.bridge_id) and channel.bridge_id in self.bridges:
            self.bridges[channel.bridge_id].channels.discard(channel.uniqueid)  # missed leave
        bridge.channels.add(channel.uniqueid)
        channel.bridge_id = event.bridge_id
        call = self.call_for_channel(channel.uniqueid) or self._call_in_bridge(bridge)
        if call is None:
            return
        # Whoever shares a bridge with the call's legs is part of it (an
        # attended-transfer target arrives with a Linkedid of its own).
        for uniqueid in bridge.channels:
            if uniqueid not in self._call_of:
                self._join(call, uniqueid)
        if call.caller_channel not in bridge.channels:
            return
        if any(leg in call.connected_legs for leg in bridge.channels):
            call.talk_ended_at = None  # back together after a hold or a move
        for uniqueid in sorted(bridge.channels):
            member = self.channels.get(uniqueid)
            if (
                member is not None
                and uniqueid not in call.connected_legs
                and self.call_for_channel(uniqueid) is call
                and self._is_agent_leg(call, member)
            ):
                self._connect(call, uniqueid, member.endpoint, event.at, "BridgeEnter", out)

    def _on_bridge_leave(self, event: ev.BridgeLeave, out: list[CallChange]) -> None:
        bridge = self.bridges.get(event.bridge_id)
        channel = self._touch(event.channel, event.at)
        uniqueid = event.channel.uniqueid
        if bridge is not None:
            bridge.channels.discard(uniqueid)
        if channel is not None and channel.bridge_id == event.bridge_id:
            channel.bridge_id = None
        call = self.call_for_channel(uniqueid)
        if call is None or bridge is None:
            return
        if uniqueid == call.caller_channel:
            if call.talk_ended_at is None and any(
                leg in call.connected_legs for leg in bridge.channels
            ):
                call.talk_ended_at = event.at
        elif uniqueid in call.connected_legs and call.caller_channel in bridge.channels:
            if channel is not None and channel.hangup_requested_at is None:
                # Moved, not gone: the engine put the agent's leg on hold, in
                # a consultation or in the call's conference, or a transfer
                # is taking it away. It stays the agent's call until it hangs up.
                return
            self._agent_left(call, uniqueid, event.at, "BridgeLeave", out)

    def _on_bridge_destroy(self, event: ev.BridgeDestroy, out: list[CallChange]) -> None:
        bridge = self.bridges.pop(event.bridge_id, None)
        if bridge is None:
            return
        for uniqueid in bridge.channels:
            channel = self.channels.get(uniqueid)
            if channel is not None and channel.bridge_id == event.bridge_id:
                channel.bridge_id = None

    def _transfer(
        self,
        call: Call,
        transferer: ev.ChannelInfo | None,
        target: str,
        kind: str,
        at: float,
        out: list[CallChange],
    ) -> None:
        from_agent = None
        if transferer is not None:
            channel = self.channels.get(transferer.uniqueid)
            if channel is not None and self._is_agent_leg(call, channel):
                from_agent = channel.endpoint
        call.transfers.append((from_agent, target))
        # Until the target answers the caller is in transit, not in the survey;
        # if the target is already talking to the caller (an attended transfer
        # reported after its bridge merge) there is nothing left to wait for.
        transferer_leg = transferer.uniqueid if transferer is not None else None
        call.transferring = not any(leg != transferer_leg for leg in call.connected_legs)
        log.debug("call %s: %s transfer by %s to %s", call.call_id, kind, from_agent, target)
        out.append(
            CallTransferred(call.call_id, at, from_agent=from_agent, target=target, kind=kind)
        )

    def transfer_started(
        self, call_id: str, *, from_agent: str | None, target: str, kind: str, at: float
    ) -> list[CallChange]:
        """The engine is moving the caller on (a transfer it performs with
        Redirect, which Asterisk reports as no transfer event): until the
        target answers the caller is in transit, not in the survey."""
        call = self.calls.get(call_id)
        if call is None:
            return []
        call.transfers.append((from_agent, target))
        call.transferring = True
        return [CallTransferred(call_id, at, from_agent=from_agent, target=target, kind=kind)]

    def connected_leg(self, call_id: str, agent: str) -> Channel | None:
        """The live channel of ``agent`` on the call, if it is connected to it."""
        call = self.calls.get(call_id)
        if call is None:
            return None
        for uniqueid, endpoint in call.connected_legs.items():
            if endpoint == agent:
                return self.channels.get(uniqueid)
        return None

    def _call_of_parties(self, parties: list[ev.ChannelInfo | None]) -> Call | None:
        for party in parties:
            if party is not None:
                call = self.call_for_channel(party.uniqueid)
                if call is not None:
                    return call
        return None

    def _on_blind_transfer(self, event: ev.BlindTransfer, out: list[CallChange]) -> None:
        if event.result != "Success":
            log.debug("blind transfer failed: %s", event.result)
            return
        parties = [event.transferee, event.transferer]
        call = self._call_of_parties(parties)
        if call is not None:
            self._transfer(call, event.transferer, event.extension, "blind", event.at, out)

    def _on_attended_transfer(self, event: ev.AttendedTransfer, out: list[CallChange]) -> None:
        if event.result != "Success":
            log.debug("attended transfer failed: %s", event.result)
            return
        parties = [event.transferee, event.orig_transferer, event.second_transferer, event.target]
        call = self._call_of_parties(parties)
        if call is None:
            return
        target = event.target.endpoint if event.target is not None else event.dest_app
        self._transfer(call, event.orig_transferer, target, "attended", event.at, out)

    def _on_enqueue(self, event: ev.HotlineEnqueue, out: list[CallChange]) -> None:
        self._touch(event.channel, event.at)
        call = self.call_for_channel(event.channel.uniqueid)
        if call is None or call.caller_channel != event.channel.uniqueid:
            log.debug(
                "HotlineEnqueue on a channel that is not a caller: %s", event.channel.uniqueid
            )
            return
        if event.ivr:
            call.ivr_choices = event.ivr
        call.routed_by = event.routed_by
        self._enqueue(call, event.at, "HotlineEnqueue", out, line=event.line, queue=event.queue)

    def _on_hotline_connect(self, event: ev.HotlineConnect, out: list[CallChange]) -> None:
        self._touch(event.channel, event.at)
        call = self.call_for_channel(event.channel.uniqueid)
        if call is not None and call.caller_channel == event.channel.uniqueid and event.agent:
            call.dial_pending[event.agent] = event.at

    def _on_dial_result(self, event: ev.HotlineDialResult, out: list[CallChange]) -> None:
        """The dialplan's word on a dial: only news when the dial never made a
        leg (no DialBegin, so no DialEnd): the phone is unregistered, or the
        switch could not create the channel (no RTP port)."""
        self._touch(event.channel, event.at)
        call = self.call_for_channel(event.channel.uniqueid)
        if call is None or call.caller_channel != event.channel.uniqueid:
            return
        if call.dial_pending.pop(event.agent, None) is None:
            return
        status = event.dial_status.strip().upper()
        if status in NOT_FAILURES:
            return
        call.no_answers.append(event.agent)
        out.append(AgentNoAnswer(call.call_id, event.at, agent=event.agent, dial_status=status))

    def _on_channel_event(self, event: Any, out: list[CallChange]) -> None:
        # Hotline* dialplan markers, MOH, MixMonitor: nothing the call phase
        # depends on (DialBegin/DialEnd say more, and say it first).
        self._touch(event.channel, event.at)

    # -- resync -------------------------------------------------------------

    def _adopt_channel(self, item: ev.CoreShowChannel, now: float) -> None:
        info = item.channel
        channel = self.channels.get(info.uniqueid)
        if channel is None:
            self._new_channel(info, now - item.duration_s)
        else:
            self._touch(info, now)

    def _rebuild_bridges(self, items: Mapping[str, ev.CoreShowChannel]) -> None:
        self.bridges = {}
        for uniqueid, item in items.items():
            channel = self.channels[uniqueid]
            channel.bridge_id = item.bridge_id or None
            if item.bridge_id:
                self.bridges.setdefault(item.bridge_id, Bridge(item.bridge_id)).channels.add(
                    uniqueid
                )

    def _adopt_call(self, item: ev.CoreShowChannel) -> Call | None:
        channel = self.channels[item.channel.uniqueid]
        if channel.uniqueid in self._call_of:
            return None
        known = self.calls.get(channel.linkedid)
        if known is not None:
            self._join(known, channel.uniqueid)
            return None
        if channel.endpoint not in self._trunks:
            return None
        # The DID is only visible while the caller is still in the inbound
        # context (Exten = DID); later the engine can read HOTLINE_LINE itself.
        dialled = channel.exten if channel.exten in self._lines else ""
        call = Call(
            call_id=channel.linkedid,
            caller_channel=channel.uniqueid,
            caller_number=channel.caller_number,
            caller_name=channel.caller_name,
            dialled=dialled,
            line=self._lines.get(dialled),
            arrived_at=channel.created_at,
            adopted=True,
        )
        self.calls[call.call_id] = call
        self._join(call, channel.uniqueid)
        return call

    def _reconcile(
        self,
        call: Call,
        caller_item: ev.CoreShowChannel,
        now: float,
        adopted: bool,
        out: list[CallChange],
    ) -> None:
        """Make a call's phase agree with the snapshot, reporting what changed."""
        caller = self.channels[call.caller_channel]
        agent_legs = [
            self.channels[uid]
            for uid in sorted(call.legs)
            if uid in self.channels and self._is_agent_leg(call, self.channels[uid])
        ]
        bridged = {
            leg.uniqueid: leg
            for leg in agent_legs
            if (caller.bridge_id is not None and leg.bridge_id == caller.bridge_id)
            or (leg.context in MOVED_CONTEXTS and leg.state == "Up")
        }
        ringing = {
            leg.uniqueid: leg
            for leg in agent_legs
            if leg.uniqueid not in bridged
            and leg.bridge_id is None
            and leg.state in _NOT_ANSWERED_STATES
            and caller_item.application == "Dial"
        }
        holding = caller.context in self._hold_contexts or caller_item.application == "MusicOnHold"

        def leg_time(leg: Channel) -> float:
            # Adopted: all we know is when each channel was created. Kept: the
            # change happened while we were away; "now" never flatters the KPIs.
            return leg.created_at if adopted else now

        if adopted:
            self._adopted_arrival(call, out, queued=bool(bridged or ringing or holding))
        for uniqueid in [uid for uid in call.ringing_legs if uid not in ringing]:
            agent = call.ringing_legs.pop(uniqueid)
            if uniqueid not in bridged:
                out.append(AgentLeft(call.call_id, now, agent=agent))
        for uniqueid in [uid for uid in call.connected_legs if uid not in bridged]:
            self._agent_left(call, uniqueid, now, _RESYNC, out)
        for uniqueid, leg in bridged.items():
            if uniqueid not in call.connected_legs:
                if adopted:
                    call.agents_tried.append(leg.endpoint)
                    call.ringing_at = call.ringing_at or leg.created_at
                self._connect(call, uniqueid, leg.endpoint, leg_time(leg), _RESYNC, out)
        for uniqueid, leg in ringing.items():
            if uniqueid not in call.ringing_legs:
                self._ring(call, leg, leg_time(leg), _RESYNC, out)
        if call.connected_legs or call.ringing_legs:
            return
        if holding:
            if call.phase is not CallPhase.QUEUED:
                self._enqueue(call, now, _RESYNC, out)
        elif caller.context in self._after_call_contexts or (
            call.phase is CallPhase.CONNECTED and not call.transferring
        ):
            self._transition(call, CallPhase.AFTER_CALL, now, _RESYNC)
        elif call.phase is CallPhase.RINGING:
            self._enqueue(call, now, _RESYNC, out)

    def _adopted_arrival(self, call: Call, out: list[CallChange], *, queued: bool) -> None:
        call.history.append((call.arrived_at, call.phase, _RESYNC))
        out.append(
            CallArrived(
                call.call_id,
                call.arrived_at,
                line=call.line,
                caller_number=call.caller_number,
                caller_name=call.caller_name,
                dialled=call.dialled,
            )
        )
        if queued:
            # The queue entry is not in the snapshot: the channel's age is the
            # best bound we have (it includes the greeting, so it overstates the wait).
            self._enqueue(call, call.arrived_at, _RESYNC, out)
