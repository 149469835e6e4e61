"""The ACD service: what the engine does with each call change and each ACD
command.

It turns the call model's changes into ACD inputs, KPI inputs and event-log
rows, and the ACD's commands into effects through a small port (``AcdEffects``)
that the engine implements with AMI actions. No I/O here: the effects port, the
event-log sink and the snapshot publisher are injected.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, Protocol

from acd import log_events as E
from acd.agents import AgentSpec, AgentState
from acd.alarms import CLEARED, RAISED, Alarm, AlarmBook
from acd.commands import (
    AgentStateChanged,
    CallOverflowed,
    ConnectCall,
    OfferCallback,
    ReservationExpired,
)
from acd.core import Acd
from acd.dial_outcomes import DialOutcome, SkipPolicy, classify_dial
from acd.errors import AcdError
from acd.log_events import LogEvent
from acd.sla import ServiceLevelTracker
from acd.switch_guard import GuardSettings, GuardTransition, SwitchGuard
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
    CallQueued,
    CallTransferred,
)
from common.contexts import APP_QUEUE_CONTEXTS

log = logging.getLogger(__name__)

SWITCH_DEGRADED = "SWITCH_DEGRADED"
SWITCH_GUARD_EVENT = "switch guard"
REPORT_FAILURES_IN_A_ROW = 3
"""A phone whose rings failed this many times in a row is reported (WARNING)."""


class CallView(Protocol):
    """What the service reads of the call model (``cti.calls.CallModel``):
    live calls and channels by id, and the calls ended lately."""

    @property
    def calls(self) -> Mapping[str, Any]: ...
    @property
    def channels(self) -> Mapping[str, Any]: ...
    @property
    def ended(self) -> Any: ...


class AcdEffects(Protocol):
    """What the ACD's decisions need done in the switch (AMI, in the engine)."""

    def connect(self, call_id: str, agent: str) -> None: ...
    def offer_callback(self, call_id: str) -> None: ...
    def move_queue(self, call_id: str, queue: str) -> None: ...
    def agent_in_fallback_queues(
        self, agent: str, *, member: bool, paused: bool, reason: str | None
    ) -> None: ...


@dataclass
class CallFacts:
    """What the service remembers of a call beyond the model: its KPI attribution."""

    line: str | None
    queue: str | None
    skill: str | None
    caller_number: str
    priority: int = 0
    answered: bool = False
    outcome_logged: bool = False
    requeues: int = 0
    no_answers: int = 0
    agents_connected: int = 0
    transfer_to: str | None = None
    """The agent a blind transfer is taking the call to (until it is requeued)."""


@dataclass
class WrapUp:
    call_id: str | None
    since: float


@dataclass
class AcdService:
    acd: Acd
    tracker: ServiceLevelTracker
    model: CallView
    effects: AcdEffects
    sink: Callable[[LogEvent], None]
    """The event log (EventLogWriter.append, or a list's append in tests)."""
    publish: Callable[[Any], None] = lambda item: None
    """Every command and alarm (dataclasses); the engine turns them into pub/sub
    messages only when a snapshot store is attached."""
    line_priority: Mapping[str, int] = field(default_factory=dict)
    """DID -> priority of the line."""
    priority_callers: Mapping[str, int] = field(default_factory=dict)
    queue_skill: Mapping[str, str | None] = field(default_factory=dict)
    agent_queues: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    clock: Callable[[], float] = time.time
    transfer_prefer_s: float = 20.0
    """How long a call transferred to a busy agent waits for that agent."""
    registered: Callable[[str], bool] = lambda agent: True
    """Presence: is the agent's phone registered (an unregistered phone's
    failed dial is presence's business, not a back-off)."""
    skip_policy: SkipPolicy = field(default_factory=SkipPolicy)
    guard: SwitchGuard = field(default_factory=SwitchGuard)
    count_app_queue: bool = False
    """Count callers Asterisk's app_queue serves (a line routed by it) in the KPIs."""
    calls: dict[str, CallFacts] = field(default_factory=dict)
    alarms: list[Alarm] = field(default_factory=list)
    switch_alarms: AlarmBook = field(default_factory=AlarmBook)
    """SWITCH_DEGRADED while the guard is tripped (merged into the console's alarms)."""
    _wrapups: dict[str, WrapUp] = field(default_factory=dict)
    _ring_failed_requeued: set[str] = field(default_factory=set)
    """Calls whose failed ring the ACD has already put back in the queue: the
    model's CallQueued(requeued) that follows is not a requeue of its own."""
    _failures_in_a_row: dict[str, int] = field(default_factory=dict)
    _agent_seq: dict[tuple[str, str], int] = field(default_factory=dict)

    # -- agent actions (service API) -----------------------------------------------

    def login(self, agent: str, at: float) -> None:
        self._run(self.acd.login(agent, at), at)

    def logout(self, agent: str, at: float) -> None:
        self._run(self.acd.logout(agent, at), at)

    def pause(self, agent: str, reason: str, at: float) -> None:
        self._run(self.acd.pause(agent, reason, at), at)

    def resume(self, agent: str, at: float) -> None:
        self._run(self.acd.resume(agent, at), at)

    def wrapup_done(self, agent: str, at: float) -> None:
        self._run(self.acd.wrapup_done(agent, at), at)

    def tick(self, now: float) -> None:
        self._run(self.acd.tick(now), now)

    def agent_action_from_dialplan(self, code: str, agent: str, reason: str, at: float) -> None:
        """Feature codes (*21..*24) arrive as UserEvents naming the agent."""
        action = AGENT_FEATURE_CODES.get(code)
        if action is None:
            return
        try:
            action(self, agent, reason, at)
        except AcdError as exc:
            log.warning("agent %s feature code %s refused: %s", agent, code, exc)

    # -- call changes ---------------------------------------------------------------

    def on_change(self, change: CallChange) -> None:
        handler = _HANDLERS.get(type(change))
        if handler is not None:
            handler(self, change)

    def _arrived(self, c: CallArrived) -> None:
        self.calls[c.call_id] = CallFacts(
            line=c.line, queue=None, skill=None, caller_number=c.caller_number
        )
        self._log(
            E.CALL_ARRIVED,
            c.at,
            c.call_id,
            caller_number=c.caller_number,
            data={"dialled": c.dialled, "caller_name": c.caller_name},
        )

    def _queued(self, c: CallQueued) -> None:
        if c.app_queue:
            self._app_queue_queued(c)
            return
        facts = self.calls.get(c.call_id)
        call = self.model.calls.get(c.call_id)
        if facts is None:
            facts = CallFacts(
                line=c.line,
                queue=None,
                skill=None,
                caller_number=call.caller_number if call else "",
            )
            self.calls[c.call_id] = facts
        if c.requeued:
            facts.requeues += 1
            self._log(E.CALL_REQUEUED, c.at, c.call_id, seq=facts.requeues)
            if c.call_id in self._ring_failed_requeued:
                self._ring_failed_requeued.discard(c.call_id)  # the ACD put it back already
            else:
                prefer, facts.transfer_to = facts.transfer_to, None
                queue = c.queue if c.queue in self.acd.queues else None
                self._run(
                    self.acd.requeue(
                        c.call_id, c.at, queue=queue, prefer=prefer, prefer_s=self.transfer_prefer_s
                    ),
                    c.at,
                )
            return
        queue = c.queue or (call.queue if call else None)
        if queue not in self.acd.queues:
            if queue:
                log.error(
                    "call %s: queue %r is not configured; the dialplan fallback will take it",
                    c.call_id,
                    queue,
                )
            else:  # a caller Asterisk's app_queue serves (a line routed by app_queue)
                log.debug("call %s: not queued by the engine; left to app_queue", c.call_id)
            return
        facts.line = c.line or facts.line
        facts.queue = queue
        facts.skill = self.queue_skill.get(queue)
        queued_at = (call.queued_at if call and call.queued_at else None) or c.at
        facts.priority = max(
            self.line_priority.get(call.dialled if call else "", 0),
            self.priority_callers.get(facts.caller_number, 0),
        )
        self.tracker.call_queued(
            c.call_id, at=queued_at, line=facts.line or "", queue=queue, skill=facts.skill
        )
        self._log(E.CALL_QUEUED, queued_at, c.call_id, data={"priority": facts.priority})
        if call is not None and call.adopted:
            self._adopt_waiting(c.call_id, call, facts, queue, queued_at)
            return
        self._run(
            self.acd.enqueue(
                c.call_id,
                queue=queue,
                line=facts.line or "",
                caller_number=facts.caller_number,
                priority=facts.priority,
                at=queued_at,
            ),
            c.at,
        )

    def _app_queue_queued(self, c: CallQueued) -> None:
        """A caller Asterisk's app_queue serves: never routed by the engine;
        counted in the KPIs (offered now, answered or abandoned later) when
        ``count_app_queue`` is set."""
        facts = self.calls.get(c.call_id)
        if not self.count_app_queue or c.requeued or facts is None or not c.queue:
            return
        call = self.model.calls.get(c.call_id)
        facts.line = c.line or facts.line
        facts.queue = c.queue
        facts.skill = self.queue_skill.get(c.queue)
        queued_at = (call.queued_at if call and call.queued_at else None) or c.at
        self.tracker.call_queued(
            c.call_id, at=queued_at, line=facts.line or "", queue=c.queue, skill=facts.skill
        )
        self._log(E.CALL_QUEUED, queued_at, c.call_id, data={"routed_by": "app_queue"})

    def _adopt_waiting(
        self, call_id: str, call: Any, facts: CallFacts, queue: str, queued_at: float
    ) -> None:
        """A caller found waiting after an engine restart. One already in
        app_queue's hands (the fallback) stays there; one still in the engine's
        hold is taken back, keeping its place by first queue entry. Decisions
        are made at the present, not at the (past) time the call queued."""
        now = self.clock()
        channel = self.model.channels.get(call.caller_channel)
        if channel is not None and channel.context in APP_QUEUE_CONTEXTS:
            log.info("call %s: found in app_queue (%s); leaving it there", call_id, channel.context)
            self.fallback_took(call_id, now)
            return
        log.info("call %s: adopted, waiting since %.1f s", call_id, now - queued_at)
        self._run(
            self.acd.adopt_call(
                call_id,
                queue=queue,
                line=facts.line or "",
                caller_number=facts.caller_number,
                priority=facts.priority,
                queued_at=queued_at,
                at=now,
            ),
            now,
        )

    def _ringing(self, c: AgentRinging) -> None:
        self._ring_failed_requeued.discard(c.call_id)
        self._log(
            E.AGENT_RINGING,
            c.at,
            c.call_id,
            agent=c.agent,
            seq=self._next_agent_seq(c.call_id, E.AGENT_RINGING),
        )
        self._run(self.acd.ringing(c.call_id, c.agent, c.at), c.at)

    def _answered(self, c: CallAnswered) -> None:
        self._ring_failed_requeued.discard(c.call_id)
        self._dial_answered(c.agent, c.at)
        facts = self.calls.get(c.call_id)
        if facts is not None:
            facts.answered = True
            facts.outcome_logged = True
            facts.agents_connected += 1
        self._log(E.CALL_ANSWERED, c.at, c.call_id, agent=c.agent, wait_s=c.wait_s)
        if c.wait_s is not None:
            self._alarms(
                self.tracker.call_answered(c.call_id, at=c.at, wait_s=c.wait_s, agent=c.agent)
            )
        self._run(self.acd.answered(c.call_id, c.agent, c.at), c.at)

    def _connected(self, c: AgentConnected) -> None:
        self._dial_answered(c.agent, c.at)
        facts = self.calls.get(c.call_id)
        seq = 0
        if facts is not None:
            facts.agents_connected += 1
            seq = facts.agents_connected
        self._log(E.AGENT_CONNECTED, c.at, c.call_id, agent=c.agent, seq=seq)
        # A transfer target (or a third party who is an agent) now talks to
        # the caller: the call is that agent's until its leg hangs up.
        self._run(self.acd.answered(c.call_id, c.agent, c.at), c.at)

    def _no_answer(self, c: AgentNoAnswer) -> None:
        """A ring the ACD asked for failed. Whose fault it was decides the
        cost: a ring-out pauses the agent (RONA), unless the switch-fault
        guard holds; anything else skips the agent for a short back-off. The
        caller goes to the next agent at once, at the head of its band."""
        agent = self.acd.agents.get(c.agent)
        if agent is None or agent.call_id != c.call_id:
            # app_queue's ring (a line it routes, the dialplan fallback), or a
            # ring the ACD already gave up on: not the engine's decision.
            log.debug("call %s: failed ring of %s not offered by the ACD", c.call_id, c.agent)
            return
        outcome = classify_dial(
            c.dial_status,
            rang_s=c.rang_s,
            ring_timeout_s=self.acd.settings.ring_timeout_s,
            registered=self.registered(c.agent),
        )
        in_a_row = self._failures_in_a_row.get(c.agent, 0) + 1
        self._failures_in_a_row[c.agent] = in_a_row
        if in_a_row == REPORT_FAILURES_IN_A_ROW:
            log.warning(
                "agent %s: %d rings in a row failed (last: %s); the phone needs a look "
                "(the agent is skipped, with a growing back-off, not paused)",
                c.agent,
                in_a_row,
                outcome.value,
            )
        self._guard(self.guard.dial_failed(c.agent, outcome.name, c.at))
        pause = outcome.agents_fault and self.guard.may_pause
        skip_s = 0.0 if pause else self.skip_policy.skip_s(outcome, in_a_row)
        facts = self.calls.get(c.call_id)
        seq = 0
        if facts is not None:
            facts.no_answers += 1
            seq = facts.no_answers
        self._log(
            E.AGENT_NO_ANSWER,
            c.at,
            c.call_id,
            agent=c.agent,
            seq=seq,
            data={
                "dial_status": c.dial_status,
                "outcome": outcome.value,
                "rang_s": c.rang_s,
                "paused": pause,
                "skip_s": skip_s,
            },
        )
        if pause:
            log.info(
                "call %s: agent %s let it ring %.1f s (%s): RONA",
                c.call_id,
                c.agent,
                c.rang_s or 0.0,
                c.dial_status,
            )
            self.guard.agent_paused_for_no_answer(c.agent, c.at)
            commands = self.acd.no_answer(c.call_id, c.agent, c.at)
        else:
            log.info(
                "call %s: agent %s %s (%s%s): not paused, skipped %.0f s; caller to the next agent",
                c.call_id,
                c.agent,
                outcome.value,
                c.dial_status,
                "" if outcome is not DialOutcome.NO_ANSWER else ", switch fault guard on",
                skip_s,
            )
            commands = []
            if outcome is DialOutcome.OFFLINE:  # first, so the call is not offered back
                commands += self.acd.set_offline(c.agent, True, c.at)
            commands += self.acd.ring_failed(
                c.call_id, c.agent, c.at, outcome=outcome.value, skip_s=skip_s
            )
        if c.rang_s is not None:
            # A leg existed: the model puts the caller back in the queue next.
            self._ring_failed_requeued.add(c.call_id)
        self._run(commands, c.at)

    def _dial_answered(self, agent: str, at: float) -> None:
        self._failures_in_a_row.pop(agent, None)
        self._guard(self.guard.dial_answered(agent, at))

    def _guard(self, transition: GuardTransition | None) -> None:
        """The switch-fault guard tripped or cleared: alarm, and on a trip
        resume the agents it paused during the burst."""
        if transition is None:
            return
        failing, dialled = transition.failing, transition.dialled
        alarm = Alarm(
            kind=SWITCH_DEGRADED,
            state=RAISED if transition.tripped else CLEARED,
            scope="all",
            window=None,
            value=failing / dialled if dialled else 0.0,
            target=self.guard.settings.share,
            at=transition.at,
            message=(
                "交换机/网络故障 / switch degraded: " + transition.describe()
                if transition.tripped
                else "交换机恢复 / switch recovered: " + transition.describe()
            ),
        )
        recorded = self.switch_alarms.record(alarm)
        if recorded is not None:
            self._alarms([recorded])
        rona = self.acd.settings.rona_pause_reason
        for agent_id in transition.resume:
            agent = self.acd.agents.get(agent_id)
            if agent is None or agent.state is not AgentState.PAUSED or agent.pause_reason != rona:
                continue
            log.warning("agent %s: RONA pause undone (switch fault, not the agent)", agent_id)
            self._run(
                self.acd.resume(agent_id, transition.at, event=SWITCH_GUARD_EVENT), transition.at
            )

    def _agent_left(self, c: AgentLeft) -> None:
        self._run(self.acd.agent_released(c.agent, c.at), c.at)

    def _transferred(self, c: CallTransferred) -> None:
        self._log(
            E.CALL_TRANSFERRED,
            c.at,
            c.call_id,
            agent=c.from_agent,
            seq=self._next_agent_seq(c.call_id, E.CALL_TRANSFERRED),
            data={"target": c.target, "kind": c.kind},
        )

    def _ended(self, c: CallEnded) -> None:
        facts = self.calls.get(c.call_id)
        self._ring_failed_requeued.discard(c.call_id)
        if c.abandoned and facts is not None and facts.queue and not facts.outcome_logged:
            self._log(E.CALL_ABANDONED, c.at, c.call_id, wait_s=c.wait_s)
            if c.wait_s is not None:
                self._alarms(self.tracker.call_abandoned(c.call_id, at=c.at, wait_s=c.wait_s))
        self._log(
            E.CALL_ENDED,
            c.at,
            c.call_id,
            wait_s=c.wait_s,
            talk_s=c.talk_s,
            data={"cause": c.cause, "abandoned": c.abandoned},
        )
        if c.talk_s is not None:
            self.tracker.call_ended(c.call_id, at=c.at, talk_s=c.talk_s)
        call = self._ended_call(c.call_id)
        if call is not None and call.agent:
            agent = self.acd.agents.get(call.agent)
            if (
                agent is not None
                and agent.call_id == c.call_id
                and agent.state in (AgentState.ON_CALL, AgentState.RINGING, AgentState.RESERVED)
            ):
                self._run(self.acd.agent_released(call.agent, c.at), c.at)
        self._run(self.acd.caller_left(c.call_id, c.at), c.at)
        self.calls.pop(c.call_id, None)

    def _lost(self, c: CallLost) -> None:
        facts = self.calls.get(c.call_id)
        self._log(E.CALL_LOST, c.at, c.call_id, data={"reason": c.reason})
        if facts is not None and not facts.outcome_logged:
            self._alarms(self.tracker.call_lost(c.call_id, at=c.at))
        self._run(self.acd.caller_left(c.call_id, c.at), c.at)
        self.calls.pop(c.call_id, None)

    def fallback_took(self, call_id: str, at: float) -> None:
        """The dialplan safety net took the caller: app_queue serves it now."""
        self._log(E.CALL_FALLBACK, at, call_id)
        self._run(self.acd.caller_left(call_id, at), at)

    def presence_changed(self, agent: str, registered: bool, at: float) -> None:
        """The agent's softphone registered or lost its registration: routable
        or not, without a pause (presence is not the agent's choice)."""
        if agent in self.acd.agents:
            self._run(self.acd.set_offline(agent, not registered, at), at)

    def agent_busy_changed(self, agent: str, busy: bool, at: float) -> None:
        if agent in self.acd.agents:
            self._run(self.acd.set_busy_external(agent, busy, at), at)

    # -- ACD commands ---------------------------------------------------------------

    def _run(self, commands: list[Any], at: float) -> None:
        for command in commands:
            if isinstance(command, ConnectCall):
                self._log(
                    E.CALL_OFFERED_TO_AGENT,
                    command.at,
                    command.call_id,
                    agent=command.agent,
                    seq=self._next_agent_seq(command.call_id, E.CALL_OFFERED_TO_AGENT),
                )
                self.effects.connect(command.call_id, command.agent)
            elif isinstance(command, AgentStateChanged):
                self._agent_state(command)
            elif isinstance(command, OfferCallback):
                facts = self.calls.get(command.call_id)
                if facts is not None:
                    facts.outcome_logged = True
                call = self.model.calls.get(command.call_id)
                wait_s = command.at - call.queued_at if call and call.queued_at else None
                self._log(
                    E.CALL_OVERFLOWED,
                    command.at,
                    command.call_id,
                    wait_s=wait_s,
                    data={"to": "callback", "estimated_wait_s": command.estimated_wait_s},
                )
                self.tracker.call_overflowed_to_callback(
                    command.call_id, at=command.at, wait_s=wait_s or 0.0
                )
                self.effects.offer_callback(command.call_id)
            elif isinstance(command, CallOverflowed):
                self._log(
                    E.CALL_OVERFLOWED,
                    command.at,
                    command.call_id,
                    data={
                        "from_queue": command.from_queue,
                        "to_queue": command.to_queue,
                        "estimated_wait_s": command.estimated_wait_s,
                    },
                )
                self.tracker.call_moved(command.call_id, queue=command.to_queue)
                self.effects.move_queue(command.call_id, command.to_queue)
            elif isinstance(command, ReservationExpired):
                log.warning(
                    "call %s: agent %s never started ringing; offered again",
                    command.call_id,
                    command.agent,
                )
            self.publish(command)

    def _agent_state(self, c: AgentStateChanged) -> None:
        old, new = c.old, c.new
        self._log(
            E.AGENT_STATE,
            c.at,
            agent=c.agent,
            seq=self._next_agent_seq(c.agent, E.AGENT_STATE),
            data={"old": old.name, "new": new.name, "reason": c.reason, "event": c.event},
        )
        if old is AgentState.LOGGED_OUT:
            self._log(
                E.AGENT_LOGIN, c.at, agent=c.agent, seq=self._next_agent_seq(c.agent, E.AGENT_LOGIN)
            )
        if new is AgentState.LOGGED_OUT:
            self._log(
                E.AGENT_LOGOUT,
                c.at,
                agent=c.agent,
                seq=self._next_agent_seq(c.agent, E.AGENT_LOGOUT),
            )
        if new is AgentState.PAUSED:
            self._log(
                E.AGENT_PAUSED,
                c.at,
                agent=c.agent,
                seq=self._next_agent_seq(c.agent, E.AGENT_PAUSED),
                data={"reason": c.reason},
            )
        if old is AgentState.PAUSED and new not in (AgentState.LOGGED_OUT, AgentState.PAUSED):
            self._log(
                E.AGENT_RESUMED,
                c.at,
                agent=c.agent,
                seq=self._next_agent_seq(c.agent, E.AGENT_RESUMED),
            )
        if new is AgentState.WRAP_UP:
            agent = self.acd.agents.get(c.agent)
            self._wrapups[c.agent] = WrapUp(agent.call_id if agent else None, c.at)
        if old is AgentState.WRAP_UP:
            wrap = self._wrapups.pop(c.agent, None)
            if wrap is not None and wrap.call_id is not None:
                wrap_s = c.at - wrap.since
                self._log(E.WRAPUP_ENDED, c.at, wrap.call_id, agent=c.agent, wrap_s=wrap_s)
                self.tracker.wrapup_ended(wrap.call_id, at=c.at, wrap_s=wrap_s)
        self.tracker.agent_state(
            c.agent, new.name, at=c.at, queues=self.agent_queues.get(c.agent, ())
        )
        if (
            old is AgentState.LOGGED_OUT
            or new in (AgentState.LOGGED_OUT, AgentState.PAUSED)
            or old is AgentState.PAUSED
        ):
            self.effects.agent_in_fallback_queues(
                c.agent,
                member=new is not AgentState.LOGGED_OUT,
                paused=new is AgentState.PAUSED,
                reason=c.reason,
            )

    # -- helpers --------------------------------------------------------------------

    def _ended_call(self, call_id: str) -> Any:
        for call in reversed(self.model.ended):
            if call.call_id == call_id:
                return call
        return self.model.calls.get(call_id)

    def _next_agent_seq(self, subject: str, kind: str) -> int:
        key = (subject, kind)
        self._agent_seq[key] = self._agent_seq.get(key, -1) + 1
        return self._agent_seq[key]

    def raise_alarms(self, alarms: list[Alarm]) -> None:
        """Log and publish alarm transitions found outside an outcome."""
        self._alarms(alarms)

    def _alarms(self, alarms: list[Alarm]) -> None:
        for alarm in alarms:
            self.alarms.append(alarm)
            level = logging.WARNING if alarm.state == "RAISED" else logging.INFO
            log.log(level, "ALARM %s %s: %s", alarm.kind, alarm.state, alarm.message)
            self.publish(alarm)

    def _log(
        self,
        kind: str,
        at: float,
        call_id: str | None = None,
        *,
        agent: str | None = None,
        wait_s: float | None = None,
        talk_s: float | None = None,
        wrap_s: float | None = None,
        seq: int = 0,
        caller_number: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        facts = self.calls.get(call_id) if call_id else None
        # Positional, in LogEvent's field order: about 100,000 of these per
        # 240,000 AMI events, and keyword passing was a third of their cost.
        if facts is None:
            event = LogEvent(
                at, kind, call_id, None, None, None, agent, caller_number,
                wait_s, talk_s, wrap_s, dict(data) if data else {}, seq,
            )  # fmt: skip
        else:
            event = LogEvent(
                at, kind, call_id, facts.line, facts.queue, facts.skill, agent,
                caller_number or facts.caller_number, wait_s, talk_s, wrap_s,
                dict(data) if data else {}, seq,
            )  # fmt: skip
        self.sink(event)


def payload(obj: Any) -> dict[str, Any]:
    """A dataclass (slotted or not) as a JSON-able dict; enums by name."""
    out = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        out[f.name] = value.name if isinstance(value, Enum) else value
    return out


AGENT_FEATURE_CODES: Mapping[str, Callable[[AcdService, str, str, float], None]] = {
    "HotlineAgentLogin": lambda svc, agent, reason, at: svc.login(agent, at),
    "HotlineAgentLogout": lambda svc, agent, reason, at: svc.logout(agent, at),
    "HotlineAgentPause": lambda svc, agent, reason, at: svc.pause(
        agent, reason or "feature code", at
    ),
    "HotlineAgentResume": lambda svc, agent, reason, at: svc.resume(agent, at),
}
"""The UserEvents of the agents' feature codes (*21..*24) and what each does."""

_HANDLERS: dict[type, Callable[[AcdService, Any], None]] = {
    CallArrived: AcdService._arrived,
    CallQueued: AcdService._queued,
    AgentRinging: AcdService._ringing,
    CallAnswered: AcdService._answered,
    AgentConnected: AcdService._connected,
    AgentNoAnswer: AcdService._no_answer,
    AgentLeft: AcdService._agent_left,
    CallTransferred: AcdService._transferred,
    CallEnded: AcdService._ended,
    CallLost: AcdService._lost,
}


def dial_policies(acd: Any) -> tuple[SkipPolicy, SwitchGuard]:
    """The skip policy and the switch-fault guard from the ``[acd]`` section."""
    skip = SkipPolicy(
        busy_skip_s=acd.busy_skip_s,
        unavailable_backoff_s=acd.unavailable_backoff_s,
        unavailable_backoff_max_s=acd.unavailable_backoff_max_s,
    )
    guard = SwitchGuard(
        GuardSettings(
            window_s=acd.switch_guard_window_s,
            min_agents=acd.switch_guard_min_agents,
            share=acd.switch_guard_share,
            clear_answers=acd.switch_guard_clear_answers,
        )
    )
    return skip, guard


def agent_specs(config: Any) -> list[AgentSpec]:
    """ACD agent specs from the engine configuration."""
    return [
        AgentSpec(
            agent_id=a.extension,
            name=a.name,
            skills=dict(a.skills),
            queues=config.agent_queues(a),
            mobile=a.mobile or None,
        )
        for a in config.agents
    ]
