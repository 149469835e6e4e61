"""The ACD core (pure): agents, queues, routing, RONA, wrap-up, overflow and
repeat callers.

No I/O, no clock, no asyncio: every input carries its time (``at``/``now``,
epoch seconds) and returns the :mod:`acd.commands` it produced; the engine
performs them. Timers (wrap-up end, reservation timeout, repeat-caller window)
fire in :meth:`Acd.tick`; :meth:`Acd.next_deadline` says when to call it.

Routing never scans all agents. Per queue the core keeps

* a heap of the available agents serving it, ordered by the policy's key,
  with lazy deletion: an entry is live while its token is the agent's current
  "available" token, so an agent leaving AVAILABLE costs O(1) and its stale
  entries are dropped when they reach the top (or when the heap is compacted);
* the waiting calls in service order (a sorted list; see :meth:`Acd.position`
  for why not a heap), plus the repeat callers reserved for one agent, kept
  apart so that other agents never look at them (no head-of-line blocking).

Only queues that may have a new match (an agent became available in them, a
call entered them) are looked at after an input, so one routing decision is
O(k log n) for k = the queues involved.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import logging
import math
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import Any

from acd.agents import CALL_STATES, STAFFED_STATES, Agent, AgentSpec, AgentState
from acd.commands import (
    AgentStateChanged,
    CallOverflowed,
    Command,
    ConnectCall,
    OfferCallback,
    ReservationExpired,
)
from acd.errors import InvalidAgentAction, UnknownAgent, UnknownQueue
from acd.queues import AcdSettings, CallKey, QueueSpec, WaitingCall
from acd.routing import RoutingPolicy, default_policy

__all__ = ["Acd", "LastAgentLookup"]

log = logging.getLogger(__name__)

LastAgentLookup = Callable[[str, float], str | None]
"""(caller_number, now) -> the agent who last handled that number within the
repeat-caller window, or None (history from the database)."""

# (policy key, availability token, agent id); the token is unique, so agent
# ids are never compared and equal keys go to the agent available first.
_AgentEntry = tuple[tuple[float, ...], int, str]
# (deadline, sequence, kind, agent id or call id)
_Timer = tuple[float, int, str, str]
_WRAPUP = "wrap-up"
_RESERVATION = "reservation"
_PREFERENCE = "preference"
_SKIP = "skip"
# A heap holding this many more stale than live entries is rebuilt.
_COMPACT_SLACK = 64
_DAY_S = 86400.0

_ON_A_CALL = (AgentState.RESERVED, AgentState.RINGING)


class Acd:
    """Automatic call distribution for one engine.

    Service API (agent actions: :meth:`login`, :meth:`logout`, :meth:`pause`,
    :meth:`resume`, :meth:`wrapup_done`) checks its preconditions and raises
    :class:`~acd.errors.UnknownAgent` or :class:`~acd.errors.InvalidAgentAction`
    before changing anything. Call events from the engine never raise for ids
    they do not know (logged at DEBUG, nothing happens). Every input routes
    afterwards and returns the commands it produced, in order.

    ``agents``, ``queues`` and the objects in them are for reading only.
    """

    def __init__(
        self,
        *,
        queues: Iterable[QueueSpec],
        agents: Iterable[AgentSpec],
        settings: AcdSettings = AcdSettings(),  # noqa: B008 - frozen, shared safely
        policy: RoutingPolicy | None = None,
        last_agent_for: LastAgentLookup | None = None,
    ) -> None:
        self.settings = settings
        self.policy: RoutingPolicy = (
            policy if policy is not None else default_policy(level_first=settings.level_first)
        )
        self._last_agent_for = last_agent_for
        self.queues: dict[str, QueueSpec] = {}
        for queue in queues:
            if queue.name in self.queues:
                raise ValueError(f"queue {queue.name!r} is configured twice")
            self.queues[queue.name] = queue
        for queue in self.queues.values():
            if queue.overflow_queue is not None and queue.overflow_queue not in self.queues:
                raise UnknownQueue(queue.overflow_queue, f"overflow_queue of queue {queue.name}")
        self.agents: dict[str, Agent] = {}
        for spec in agents:
            if spec.agent_id in self.agents:
                raise ValueError(f"agent {spec.agent_id!r} is configured twice")
            for name in spec.queues:
                if name not in self.queues:
                    raise UnknownQueue(name, f"home queue of agent {spec.agent_id}")
            self.agents[spec.agent_id] = Agent(spec)

        # Who serves what, fixed by the configuration.
        self._serves: dict[str, tuple[str, ...]] = {
            agent_id: tuple(q.name for q in self.queues.values() if q.served_by(agent.spec))
            for agent_id, agent in self.agents.items()
        }
        self._counts: dict[str, dict[AgentState, int]] = {
            name: dict.fromkeys(AgentState, 0) for name in self.queues
        }
        for served in self._serves.values():
            for name in served:
                self._counts[name][AgentState.LOGGED_OUT] += 1
        self._counts_all = dict.fromkeys(AgentState, 0)
        self._counts_all[AgentState.LOGGED_OUT] = len(self.agents)

        # Available agents per queue (heaps with lazy deletion).
        self._available: dict[str, list[_AgentEntry]] = {name: [] for name in self.queues}
        self._available_live: dict[str, int] = dict.fromkeys(self.queues, 0)
        self._route_token: dict[str, int] = {}
        self._tokens = itertools.count(1)

        # Calls: waiting (in a sorted list) or offered (reserved for an agent).
        self._calls: dict[str, WaitingCall] = {}
        self._general: dict[str, list[CallKey]] = {name: [] for name in self.queues}
        self._preferred: dict[str, list[CallKey]] = {name: [] for name in self.queues}
        self._preferred_of: dict[str, set[str]] = {}
        self._seq = itertools.count(1)
        self._answered: OrderedDict[str, WaitingCall] = OrderedDict()
        self._agents_of_call: dict[str, set[str]] = {}

        # Repeat callers: number -> (agent, answered at), oldest answer first.
        self._last_answer: OrderedDict[str, tuple[str, float]] = OrderedDict()

        # Handle times (answer to end of wrap-up) per queue, for the estimated wait.
        self._handle_times: dict[str, deque[float]] = {
            name: deque(maxlen=settings.aht_samples) for name in self.queues
        }
        self._aht: dict[str, float] = dict.fromkeys(self.queues, settings.default_aht_s)

        self._timers: list[_Timer] = []
        self._timer_seq = itertools.count()

        # Work left for the end of the current input.
        self._dirty_queues: set[str] = set()
        self._dirty_agents: set[str] = set()
        self._wait_checks: set[str] = set()
        self._limited = frozenset(
            q.name
            for q in self.queues.values()
            if q.callback_wait_s is not None
            or (q.overflow_queue is not None and q.overflow_wait_s is not None)
        )

    # -- service API: agent actions ---------------------------------------------

    def login(self, agent_id: str, at: float) -> list[Command]:
        """LOGGED_OUT -> AVAILABLE."""
        agent = self._agent(agent_id)
        if agent.state is not AgentState.LOGGED_OUT:
            raise InvalidAgentAction(
                f"agent {agent_id} is already logged in ({agent.state.name}); "
                "log out first to log in again"
            )
        out: list[Command] = []
        self._set_state(agent, AgentState.AVAILABLE, at, "login", out, idle_since=at)
        return self._settle(at, out)

    def logout(self, agent_id: str, at: float) -> list[Command]:
        """Any state -> LOGGED_OUT, except RINGING and ON_CALL (finish the call
        first). A RESERVED agent's call goes back to the head of its queue;
        callers waiting for this agent (repeat callers) are routed normally."""
        agent = self._agent(agent_id)
        if agent.state is AgentState.LOGGED_OUT:
            raise InvalidAgentAction(f"agent {agent_id} is already logged out")
        if agent.state in (AgentState.RINGING, AgentState.ON_CALL):
            raise InvalidAgentAction(
                f"agent {agent_id} is {agent.state.name} with call {agent.call_id}: "
                "finish the call first, then log out"
            )
        out: list[Command] = []
        if agent.state is AgentState.RESERVED:
            self._unreserve(agent)
        elif agent.state is AgentState.WRAP_UP:
            self._record_handle_time(agent, at)
        self._detach(agent)
        agent.pending_pause = None
        self._set_state(agent, AgentState.LOGGED_OUT, at, "logout", out)
        self._drop_preferences_for(agent_id)
        return self._settle(at, out)

    def pause(self, agent_id: str, reason: str, at: float) -> list[Command]:
        """Stop receiving calls (示忙) with a reason.

        AVAILABLE / WRAP_UP (ends it) / PAUSED (new reason) -> PAUSED now.
        RESERVED / RINGING / ON_CALL: the pause is remembered and applied when
        the call and its wrap-up end (returns no command now).
        """
        agent = self._agent(agent_id)
        if not reason:
            raise InvalidAgentAction(f"agent {agent_id}: a pause needs a reason")
        if agent.state is AgentState.LOGGED_OUT:
            raise InvalidAgentAction(f"agent {agent_id} is LOGGED_OUT: log in before pausing")
        if agent.state in (AgentState.RESERVED, AgentState.RINGING, AgentState.ON_CALL):
            agent.pending_pause = reason
            log.info(
                "agent %s: pause %r asked while %s; applied when the call ends",
                agent_id,
                reason,
                agent.state.name,
            )
            return []
        out: list[Command] = []
        if agent.state is AgentState.WRAP_UP:
            self._record_handle_time(agent, at)
            self._detach(agent)
        agent.pending_pause = None
        self._set_state(agent, AgentState.PAUSED, at, "pause", out, reason=reason)
        return self._settle(at, out)

    def resume(self, agent_id: str, at: float, *, event: str = "resume") -> list[Command]:
        """PAUSED -> AVAILABLE. During a call, cancels a pause asked for it.
        ``event`` names who resumed (the switch-fault guard undoing a RONA)."""
        agent = self._agent(agent_id)
        if agent.state is AgentState.PAUSED:
            out: list[Command] = []
            self._set_state(agent, AgentState.AVAILABLE, at, event, out, idle_since=at)
            return self._settle(at, out)
        if agent.pending_pause is not None:
            log.info("agent %s: pending pause %r cancelled", agent_id, agent.pending_pause)
            agent.pending_pause = None
            return []
        raise InvalidAgentAction(
            f"agent {agent_id} is {agent.state.name}, not PAUSED: nothing to resume"
        )

    def wrapup_done(self, agent_id: str, at: float) -> list[Command]:
        """End wrap-up early: WRAP_UP -> AVAILABLE (or the pause asked during the call)."""
        agent = self._agent(agent_id)
        if agent.state is not AgentState.WRAP_UP:
            raise InvalidAgentAction(
                f"agent {agent_id} is {agent.state.name}, not in WRAP_UP: nothing to finish"
            )
        out: list[Command] = []
        self._end_wrapup(agent, at, "wrapup_done", out)
        return self._settle(at, out)

    # -- call events from the engine ----------------------------------------------

    def enqueue(
        self,
        call_id: str,
        *,
        queue: str,
        line: str,
        caller_number: str,
        priority: int,
        at: float,
    ) -> list[Command]:
        """A caller entered ``queue`` for the first time (``at`` = first entry).

        A repeat caller (the number was answered by agent A within
        ``repeat_caller_days``, A logged in and serving the queue) is kept for
        A for ``repeat_caller_wait_s``. Raises :class:`UnknownQueue` for a
        queue that is not configured (an engine configuration error).
        """
        if queue not in self.queues:
            raise UnknownQueue(queue, f"call {call_id}")
        if call_id in self._calls:
            log.debug("call %s: already in queue %s; enqueue ignored", call_id, queue)
            return []
        if call_id in self._answered:
            return self.requeue(call_id, at, queue=queue)
        call = WaitingCall(
            call_id=call_id,
            queue=queue,
            line=line,
            caller_number=caller_number,
            priority=priority,
            queued_at=at,
            enqueued_seq=next(self._seq),
        )
        preferred = self._repeat_agent(caller_number, queue, at)
        if preferred is not None and self.settings.repeat_caller_wait_s > 0:
            call.preferred_agent = preferred
            call.preferred_until = at + self.settings.repeat_caller_wait_s
            self._push_timer(call.preferred_until, _PREFERENCE, call_id)
            log.info(
                "call %s: repeat caller, kept for agent %s until %.3f",
                call_id,
                preferred,
                call.preferred_until,
            )
        self._calls[call_id] = call
        self._insert_waiting(call)
        log.debug("call %s: queued in %s (priority %d)", call_id, queue, priority)
        return self._settle(at, [])

    def requeue(
        self,
        call_id: str,
        at: float,
        *,
        queue: str | None = None,
        prefer: str | None = None,
        prefer_s: float = 0.0,
    ) -> list[Command]:
        """The caller is back in the queue: a ring ended unanswered (without a
        RONA), or an agent transferred the call to a queue (``queue``, default
        the call's own). The call keeps its first ``queued_at`` and priority,
        so it goes back to the head of its priority band. An agent ringing
        with it is released (idle time restarts). An agent only RESERVED for
        it keeps the reservation: the ring that ended was an earlier one, and
        the engine's Redirect to this agent is still on its way (releasing it
        would offer the call again and interrupt that ring in turn); the
        reservation timeout covers a Redirect that never lands.

        ``prefer``: an answered call transferred to a given agent waits up to
        ``prefer_s`` for that agent (offered at once if free), then goes to
        whoever is free, like a repeat caller's preference."""
        if queue is not None and queue not in self.queues:
            raise UnknownQueue(queue, f"requeue of call {call_id}")
        out: list[Command] = []
        call = self._calls.get(call_id)
        if call is not None:
            offered = self.agents[call.offered_to] if call.offered_to is not None else None
            if offered is not None and offered.state is AgentState.RESERVED:
                log.debug(
                    "call %s: requeue of an earlier ring; %s stays reserved",
                    call_id,
                    offered.agent_id,
                )
            elif offered is not None:
                agent = offered
                self._unreserve(agent)
                state, reason = self._after_work(agent)
                self._set_state(agent, state, at, "ring ended", out, reason=reason, idle_since=at)
            if queue is not None and queue != call.queue:
                self._move(call, queue)
            return self._settle(at, out)
        answered = self._answered.pop(call_id, None)
        if answered is None:
            log.debug("call %s: requeue of an unknown call ignored", call_id)
            return []
        answered.queue = queue or answered.queue
        answered.offered_to = None
        answered.preferred_agent = answered.preferred_until = None
        if prefer is not None and prefer in self.agents and prefer_s > 0:
            answered.preferred_agent = prefer
            answered.preferred_until = at + prefer_s
            answered.skip_agents.discard(prefer)
            self._push_timer(answered.preferred_until, _PREFERENCE, call_id)
        self._calls[call_id] = answered
        self._insert_waiting(answered)
        log.debug("call %s: back in queue %s", call_id, answered.queue)
        return self._settle(at, out)

    def ringing(self, call_id: str, agent_id: str, at: float) -> list[Command]:
        """The agent's phone rings for the call: RESERVED -> RINGING.

        A ring the ACD did not ask for (app_queue fallback, a stale event) is
        ignored here; the engine reports such a busy phone with
        :meth:`set_busy_external`.
        """
        agent = self.agents.get(agent_id)
        if agent is None or agent.call_id != call_id or agent.state not in _ON_A_CALL:
            log.debug(
                "ringing of call %s on agent %s not expected (%s); ignored",
                call_id,
                agent_id,
                "unknown agent" if agent is None else agent.state.name,
            )
            return []
        if agent.state is AgentState.RINGING:
            return []
        out: list[Command] = []
        self._set_state(agent, AgentState.RINGING, at, "ringing", out)
        return self._settle(at, out)

    def answered(self, call_id: str, agent_id: str, at: float) -> list[Command]:
        """The agent answered: -> ON_CALL; the call leaves the queue and the
        number is remembered for repeat callers.

        The switch is the truth: if another agent than the one reserved
        answers, that agent is ON_CALL and the reserved one is released; an
        agent that was reserved for another call gives it back to its queue.
        An answer by an agent logged out or already on another call only takes
        the call out of the queue (logged as a warning).
        """
        agent = self.agents.get(agent_id)
        if agent is not None and agent.state is AgentState.ON_CALL and agent.call_id == call_id:
            return []
        out: list[Command] = []
        call = self._calls.pop(call_id, None)
        if call is not None:
            self._leave_queue(call, at, "answered elsewhere", out, answered_by=agent_id)
        else:
            call = self._answered.get(call_id)
        if agent is None:
            log.debug("call %s answered by %s, not an agent of the ACD", call_id, agent_id)
        elif agent.state is AgentState.LOGGED_OUT or agent.state is AgentState.ON_CALL:
            log.warning(
                "call %s answered by agent %s while %s%s; the agent is left as it is",
                call_id,
                agent_id,
                agent.state.name,
                f" with call {agent.call_id}" if agent.call_id else "",
            )
        else:
            if agent.call_id is not None and agent.call_id != call_id:
                if agent.state in _ON_A_CALL:
                    self._unreserve(agent)
            if agent.state is AgentState.WRAP_UP:
                self._record_handle_time(agent, at)
            if agent.state is AgentState.PAUSED:
                # A paused agent taking a call (a transfer) goes back to the pause after it.
                agent.pending_pause = agent.pause_reason
            self._detach(agent)
            self._attach(agent, call_id, call.queue if call is not None else None)
            agent.answered_at = at
            agent.calls_handled += 1
            self._set_state(agent, AgentState.ON_CALL, at, "answered", out)
            if call is not None:
                self._remember_number(call.caller_number, agent_id, at)
        if call is not None:
            self._remember_answered(call)
        return self._settle(at, out)

    def no_answer(self, call_id: str, agent_id: str, at: float) -> list[Command]:
        """RONA (ring no answer): the agent -> PAUSED with ``rona_pause_reason``;
        the call goes back to the head of its band, never offered to this agent
        again, and is routed at once."""
        agent = self.agents.get(agent_id)
        if agent is None or agent.call_id != call_id or agent.state not in _ON_A_CALL:
            log.debug("no answer of call %s on agent %s not expected; ignored", call_id, agent_id)
            return []
        out: list[Command] = []
        call = self._unreserve(agent)
        if call is not None:
            call.skip_agents.add(agent_id)
        agent.pending_pause = None
        self._set_state(
            agent,
            AgentState.PAUSED,
            at,
            "no_answer",
            out,
            reason=self.settings.rona_pause_reason,
        )
        return self._settle(at, out)

    def ring_failed(
        self, call_id: str, agent_id: str, at: float, *, outcome: str, skip_s: float
    ) -> list[Command]:
        """A ring that failed through no fault of the agent (busy, refused at
        once, unreachable, congestion; or a ring-no-answer while the switch-
        fault guard holds): the agent is NOT paused. It goes back to AVAILABLE
        (or to a pause asked meanwhile), keeping its idle time, and is skipped
        for ``skip_s`` seconds; the call goes back to the head of its priority
        band and is offered to the next agent at once. ``outcome`` names the
        cause in the state change (``busy``, ``unavailable``...)."""
        agent = self.agents.get(agent_id)
        if agent is None or agent.call_id != call_id or agent.state not in _ON_A_CALL:
            log.debug("failed ring of call %s on agent %s not expected; ignored", call_id, agent_id)
            return []
        out: list[Command] = []
        self._unreserve(agent)
        if skip_s > 0:
            agent.skip_until = at + skip_s
            self._push_timer(agent.skip_until, _SKIP, agent_id)
        state, reason = self._after_work(agent)
        self._set_state(agent, state, at, outcome, out, reason=reason)
        return self._settle(at, out)

    def set_offline(self, agent_id: str, offline: bool, at: float) -> list[Command]:
        """Presence: the agent's phone is (or is again) unregistered. An
        offline agent keeps its state (logged in, paused...) and is simply
        never offered a call; registering again makes it routable at once."""
        agent = self.agents.get(agent_id)
        if agent is None:
            log.debug("presence of unknown agent %s ignored", agent_id)
            return []
        if agent.offline == offline:
            return []
        agent.offline = offline
        log.info("agent %s: phone %s", agent_id, "offline" if offline else "registered")
        self._refresh_routable(agent)
        return self._settle(at, [])

    def agent_released(self, agent_id: str, at: float) -> list[Command]:
        """The agent's call leg ended: ON_CALL -> WRAP_UP (for ``wrapup_s``;
        straight to AVAILABLE when it is 0). Ignored in any other state."""
        agent = self.agents.get(agent_id)
        if agent is None or agent.state is not AgentState.ON_CALL:
            log.debug(
                "agent %s released while %s; ignored",
                agent_id,
                "unknown" if agent is None else agent.state.name,
            )
            return []
        out: list[Command] = []
        self._end_call(agent, at, "agent_released", out)
        return self._settle(at, out)

    def caller_left(self, call_id: str, at: float) -> list[Command]:
        """The caller is gone (abandoned, hung up, lost, taken by the fallback):
        the call leaves the queue; an agent reserved for or ringing with it is
        released to AVAILABLE (keeping its idle time: it did nothing wrong);
        an agent still talking on it goes to wrap-up."""
        out: list[Command] = []
        call = self._calls.pop(call_id, None)
        if call is not None:
            self._leave_queue(call, at, "caller left", out)
        answered = self._answered.pop(call_id, None)
        for agent_id in sorted(self._agents_of_call.get(call_id, ())):
            agent = self.agents[agent_id]
            if agent.state is AgentState.ON_CALL:
                self._end_call(agent, at, "caller left", out)
        if call is None and answered is None and not out:
            log.debug("call %s: caller left, not known to the ACD", call_id)
        return self._settle(at, out)

    def set_busy_external(self, agent_id: str, busy: bool, at: float) -> list[Command]:
        """The agent's phone has (or no longer has) a live channel the ACD did
        not give it; a busy agent is never offered a call. Becoming free while
        AVAILABLE restarts its idle time (it was working)."""
        agent = self.agents.get(agent_id)
        if agent is None:
            log.debug("busy state of unknown agent %s ignored", agent_id)
            return []
        if agent.busy_external == busy:
            return []
        agent.busy_external = busy
        if not busy and agent.state is AgentState.AVAILABLE:
            agent.idle_since = at
        self._refresh_routable(agent)
        log.debug("agent %s: phone %s", agent_id, "busy" if busy else "free")
        return self._settle(at, [])

    def tick(self, now: float) -> list[Command]:
        """Fire the timers due at ``now`` (each at its own deadline): wrap-up
        end, reservation timeout (the call waits again, the agent is
        AVAILABLE, ``ReservationExpired``), end of a repeat caller's wait for
        its agent, end of an agent's back-off after a failed ring; then the
        overflow / callback checks of every queue, then route."""
        out: list[Command] = []
        while self._timers and self._timers[0][0] <= now:
            timer = heapq.heappop(self._timers)
            if not self._timer_live(timer):
                continue
            deadline, _, kind, subject = timer
            if kind == _WRAPUP:
                self._end_wrapup(self.agents[subject], deadline, "wrap-up timeout", out)
            elif kind == _SKIP:
                agent = self.agents[subject]
                agent.skip_until = None
                log.debug("agent %s: back-off over", subject)
                self._refresh_routable(agent)
            elif kind == _RESERVATION:
                agent = self.agents[subject]
                out.append(ReservationExpired(agent.call_id or "", subject, deadline))
                log.warning(
                    "call %s: agent %s did not start ringing within %.1f s; released",
                    agent.call_id,
                    subject,
                    self.settings.reservation_timeout_s,
                )
                self._unreserve(agent)
                state, reason = self._after_work(agent)
                self._set_state(
                    agent,
                    state,
                    deadline,
                    "reservation expired",
                    out,
                    reason=reason,
                    idle_since=deadline,
                )
            else:
                call = self._calls[subject]
                log.info(
                    "call %s: agent %s did not become free in time; routed normally",
                    subject,
                    call.preferred_agent,
                )
                self._end_preference(call)
        self._wait_checks.update(self._limited)
        return self._settle(now, out)

    def next_deadline(self) -> float | None:
        """The earliest pending timer: call :meth:`tick` then. None: no timer."""
        while self._timers and not self._timer_live(self._timers[0]):
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    # -- restart helpers ------------------------------------------------------------

    def restore_agent(
        self,
        agent_id: str,
        state: AgentState,
        *,
        at: float,
        pause_reason: str | None = None,
    ) -> list[Command]:
        """Rebuild an agent's state after an engine restart (from the event log):
        LOGGED_OUT, AVAILABLE or PAUSED only (calls: :meth:`adopt_call`).

        Emits nothing (the state is not new) and does not route now: the next
        input (any event, or :meth:`tick`) does. Always returns ``[]``.
        """
        agent = self._agent(agent_id)
        if state not in (AgentState.LOGGED_OUT, AgentState.AVAILABLE, AgentState.PAUSED):
            raise InvalidAgentAction(
                f"agent {agent_id} cannot be restored to {state.name}: only LOGGED_OUT, "
                "AVAILABLE or PAUSED (a call in progress is adopted with adopt_call)"
            )
        if agent.call_id is not None:
            raise InvalidAgentAction(
                f"agent {agent_id} is {agent.state.name} with call {agent.call_id}: "
                "restore agents before adopting calls"
            )
        agent.pending_pause = None
        reason = (pause_reason or "restored") if state is AgentState.PAUSED else None
        self._set_state(agent, state, at, "restore", [], reason=reason, idle_since=at)
        if state is AgentState.LOGGED_OUT:
            self._drop_preferences_for(agent_id)
        return []

    def adopt_call(
        self,
        call_id: str,
        *,
        queue: str,
        line: str,
        caller_number: str,
        priority: int,
        queued_at: float,
        at: float,
        agent: str | None = None,
        agent_state: AgentState = AgentState.ON_CALL,
        answered_at: float | None = None,
    ) -> list[Command]:
        """Register a call found in the switch after an engine restart.

        Without ``agent``: a caller already waiting since ``queued_at``.
        With ``agent`` and ``agent_state`` ON_CALL (answered at
        ``answered_at``, default ``at``) or RINGING: the agent, restored
        AVAILABLE or PAUSED, is bound to the call (a paused agent returns to
        its pause afterwards). An agent logged out or already on a call is
        left alone (warning); the call is then only remembered (ON_CALL) or
        waits (RINGING). Routes afterwards.
        """
        if queue not in self.queues:
            raise UnknownQueue(queue, f"adopted call {call_id}")
        if agent_state not in (AgentState.ON_CALL, AgentState.RINGING):
            raise ValueError(
                f"adopt_call: agent_state must be ON_CALL or RINGING, not {agent_state}"
            )
        if call_id in self._calls or call_id in self._answered:
            log.debug("call %s: already known; adopt ignored", call_id)
            return []
        call = WaitingCall(
            call_id=call_id,
            queue=queue,
            line=line,
            caller_number=caller_number,
            priority=priority,
            queued_at=queued_at,
            enqueued_seq=next(self._seq),
        )
        out: list[Command] = []
        target = self.agents.get(agent) if agent is not None else None
        if agent is not None and (
            target is None or target.state is AgentState.LOGGED_OUT or target.call_id is not None
        ):
            log.warning(
                "call %s: adopted without agent %s (%s)",
                call_id,
                agent,
                "unknown" if target is None else target.state.name,
            )
            target = None
        if target is not None:
            if target.state is AgentState.PAUSED:
                target.pending_pause = target.pause_reason
            if agent_state is AgentState.ON_CALL:
                self._attach(target, call_id, queue)
                target.answered_at = answered_at if answered_at is not None else at
                self._set_state(target, AgentState.ON_CALL, at, "adopted", out)
                self._remember_answered(call)
            else:
                self._calls[call_id] = call
                call.offered_to = target.agent_id
                self._attach(target, call_id, queue)
                self._set_state(target, AgentState.RINGING, at, "adopted", out)
        elif agent is not None and agent_state is AgentState.ON_CALL:
            self._remember_answered(call)
        else:
            self._calls[call_id] = call
            self._insert_waiting(call)
        return self._settle(at, out)

    # -- queries --------------------------------------------------------------------

    def waiting(self, queue: str | None = None) -> list[WaitingCall]:
        """Callers waiting (not yet offered to an agent), in service order
        (across all queues when ``queue`` is None)."""
        if queue is not None:
            self._queue(queue)
            keys = list(heapq.merge(self._general[queue], self._preferred[queue]))
        else:
            keys = sorted(itertools.chain(*self._general.values(), *self._preferred.values()))
        return [self._calls[key[3]] for key in keys]

    def agent_on_call(self, call_id: str) -> str | None:
        """The agent talking on *call_id* (the one whose desktop controls it)."""
        for agent_id, agent in self.agents.items():
            if agent.call_id == call_id and agent.state is AgentState.ON_CALL:
                return agent_id
        return None

    def position(self, call_id: str) -> int | None:
        """1-based place of a waiting call in its queue; None if not waiting
        (unknown, or offered to an agent).

        O(log n): this is why waiting calls are kept in sorted lists rather
        than heaps (an insertion shifts pointers in C, which is cheaper than
        a heap's Python-level comparisons for any realistic queue length).
        """
        call = self._calls.get(call_id)
        if call is None or call.offered_to is not None:
            return None
        key = call.key
        return (
            bisect.bisect_left(self._general[call.queue], key)
            + bisect.bisect_left(self._preferred[call.queue], key)
            + 1
        )

    def estimated_wait_s(self, queue: str, position: int | None = None) -> float:
        """Estimated wait (EWT) of the caller at ``position`` (default: one
        more caller, i.e. waiting + 1)::

            EWT = position * AHT / serving

        ``serving`` = agents serving the queue who are logged in and not
        PAUSED (whatever they are doing now); AHT = mean handle time (answer
        to end of wrap-up) of the last ``aht_samples`` (50) calls of this
        queue, ``default_aht_s`` before the first. With nobody serving, EWT
        is ``math.inf``. (``ceil(position / serving) * AHT`` would quote a full
        handle time to the first caller in line, and overflow everyone.)
        """
        self._queue(queue)
        if position is None:
            position = len(self._general[queue]) + len(self._preferred[queue]) + 1
        if position < 1:
            raise ValueError(f"position must be >= 1, got {position}")
        serving = self._serving(queue)
        if serving == 0:
            return math.inf
        # With every serving agent busy, one frees up every AHT / serving
        # seconds on average; the caller at `position` needs `position` of them.
        return position * self._aht[queue] / serving

    def average_handle_time_s(self, queue: str) -> float:
        """The AHT used by :meth:`estimated_wait_s`."""
        self._queue(queue)
        return self._aht[queue]

    def agents_by_state(self, queue: str | None = None) -> dict[AgentState, int]:
        """How many agents are in each state (every state is present), among
        those serving ``queue`` or all agents."""
        if queue is None:
            return dict(self._counts_all)
        self._queue(queue)
        return dict(self._counts[queue])

    def snapshot(self, now: float) -> dict[str, Any]:
        """JSON-able picture of queues and agents at ``now``."""
        longest: dict[str, float] = {}
        offered = dict.fromkeys(self.queues, 0)
        for call in self._calls.values():
            # From the caller's side, ringing an agent is still waiting.
            longest[call.queue] = max(longest.get(call.queue, 0.0), now - call.queued_at)
            if call.offered_to is not None:
                offered[call.queue] += 1
        queues: dict[str, Any] = {}
        for name, spec in self.queues.items():
            ewt = self.estimated_wait_s(name)
            queues[name] = {
                "line": spec.line,
                "skill": spec.skill,
                "waiting": len(self._general[name]) + len(self._preferred[name]),
                "offered": offered[name],
                "longest_wait_s": longest.get(name),
                "estimated_wait_s": None if math.isinf(ewt) else ewt,
                "aht_s": self._aht[name],
                "agents": {state.name: n for state, n in self._counts[name].items()},
            }
        agents = {
            agent_id: {
                "name": agent.spec.name,
                "state": agent.state.name,
                "since": agent.state_since,
                "pause_reason": agent.pause_reason,
                "pending_pause": agent.pending_pause,
                "call_id": agent.call_id,
                "queue": agent.queue,
                "busy_external": agent.busy_external,
                "offline": agent.offline,
                "skip_until": agent.skip_until,
                "idle_since": agent.idle_since,
                "calls_handled": agent.calls_handled,
                "deadline": agent.deadline,
            }
            for agent_id, agent in self.agents.items()
        }
        return {"at": now, "queues": queues, "agents": agents}

    def audit(self) -> list[str]:
        """Check every internal index against the agents and calls; returns
        what is inconsistent (empty when all is well). O(agents + calls):
        for tests and an occasional self-check, not for every event."""
        problems: list[str] = []
        for agent_id, agent in self.agents.items():
            bound = agent.state in (AgentState.RESERVED, AgentState.RINGING, AgentState.ON_CALL)
            if bound and agent.call_id is None:
                problems.append(f"agent {agent_id} is {agent.state.name} without a call")
            if agent.state not in CALL_STATES and agent.call_id is not None:
                problems.append(f"agent {agent_id} is {agent.state.name} with call {agent.call_id}")
            if agent.state in _ON_A_CALL:
                call = self._calls.get(agent.call_id or "")
                if call is None or call.offered_to != agent_id:
                    problems.append(
                        f"agent {agent_id} is {agent.state.name} for a call not offered"
                    )
            if (agent_id in self._route_token) != agent.routable:
                problems.append(f"agent {agent_id}: availability index out of date")
            if agent.call_id is not None and agent_id not in self._agents_of_call.get(
                agent.call_id, ()
            ):
                problems.append(f"agent {agent_id}: call index out of date")
        for call_id, agent_ids in self._agents_of_call.items():
            for agent_id in agent_ids:
                if self.agents[agent_id].call_id != call_id:
                    problems.append(f"call index: {agent_id} is not on {call_id}")
        listed: dict[str, int] = {}
        for lists in (self._general, self._preferred):
            for name, keys in lists.items():
                if keys != sorted(keys):
                    problems.append(f"queue {name}: waiting list out of order")
                for key in keys:
                    listed[key[3]] = listed.get(key[3], 0) + 1
                    call = self._calls.get(key[3])
                    if call is None or call.queue != name or call.key != key:
                        problems.append(f"queue {name}: stale entry for call {key[3]}")
        for call_id, call in self._calls.items():
            if call.offered_to is None and listed.get(call_id) != 1:
                problems.append(
                    f"call {call_id} waits but is listed {listed.get(call_id, 0)} times"
                )
            if call.offered_to is not None:
                if call_id in listed:
                    problems.append(f"call {call_id} is offered and still listed")
                holder = self.agents[call.offered_to]
                if holder.call_id != call_id or holder.state not in _ON_A_CALL:
                    problems.append(
                        f"call {call_id} offered to {call.offered_to}, who is not on it"
                    )
        for agent_id, call_ids in self._preferred_of.items():
            for call_id in call_ids:
                preferred = self._calls.get(call_id)
                if preferred is None or preferred.preferred_agent != agent_id:
                    problems.append(f"preference index: {call_id} is not kept for {agent_id}")
        counts = {name: dict.fromkeys(AgentState, 0) for name in self.queues}
        live = dict.fromkeys(self.queues, 0)
        for agent_id, agent in self.agents.items():
            for name in self._serves[agent_id]:
                counts[name][agent.state] += 1
                live[name] += agent.routable
        if counts != self._counts:
            problems.append("per-queue state counts out of date")
        if live != self._available_live:
            problems.append("per-queue available counts out of date")
        for name, heap in self._available.items():
            listed_agents = {e[2] for e in heap if self._route_token.get(e[2]) == e[1]}
            expected = {a for a in self._route_token if name in self._serves[a]}
            if listed_agents != expected:
                problems.append(f"queue {name}: available agents heap out of date")
        return problems

    # -- internals: agents ------------------------------------------------------------

    def _agent(self, agent_id: str) -> Agent:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise UnknownAgent(agent_id)
        return agent

    def _queue(self, queue: str) -> QueueSpec:
        spec = self.queues.get(queue)
        if spec is None:
            raise UnknownQueue(queue)
        return spec

    def _set_state(
        self,
        agent: Agent,
        new: AgentState,
        at: float,
        event: str,
        out: list[Command],
        *,
        reason: str | None = None,
        idle_since: float | None = None,
    ) -> None:
        """The one place an agent's state changes: counts, availability index,
        the log line and the AgentStateChanged command follow it."""
        old = agent.state
        agent_id = agent.agent_id
        if old is not new:
            served = self._serves[agent_id]
            for name in served:
                counts = self._counts[name]
                counts[old] -= 1
                counts[new] += 1
            self._counts_all[old] -= 1
            self._counts_all[new] += 1
            if old in STAFFED_STATES and new not in STAFFED_STATES:
                # Fewer agents serving: the estimated waits of these queues grew.
                self._wait_checks.update(q for q in served if q in self._limited)
        agent.state = new
        agent.state_since = at
        agent.pause_reason = reason if new is AgentState.PAUSED else None
        agent.deadline = None
        if idle_since is not None:
            if agent_id in self._route_token and idle_since != agent.idle_since:
                self._unlist(agent_id)  # re-listed below under its new key
            agent.idle_since = idle_since
        self._refresh_routable(agent)
        if agent.pause_reason is not None:
            log.info(
                "agent %s: %s -[%s]-> %s (%s)",
                agent_id,
                old.name,
                event,
                new.name,
                agent.pause_reason,
            )
        else:
            log.info("agent %s: %s -[%s]-> %s", agent_id, old.name, event, new.name)
        out.append(AgentStateChanged(agent_id, old, new, at, agent.pause_reason, event))

    def _refresh_routable(self, agent: Agent) -> None:
        agent_id = agent.agent_id
        listed = agent_id in self._route_token
        if agent.routable and not listed:
            token = next(self._tokens)
            self._route_token[agent_id] = token
            for name in self._serves[agent_id]:
                heap = self._available[name]
                heapq.heappush(
                    heap, (self.policy.agent_key(agent, self.queues[name]), token, agent_id)
                )
                self._available_live[name] += 1
                if len(heap) > 2 * self._available_live[name] + _COMPACT_SLACK:
                    self._compact(name)
                if self._general[name]:
                    self._dirty_queues.add(name)
            if self._preferred_of.get(agent_id):
                self._dirty_agents.add(agent_id)
        elif listed and not agent.routable:
            self._unlist(agent_id)

    def _unlist(self, agent_id: str) -> None:
        """Out of the availability heaps: its entries are stale from now on."""
        del self._route_token[agent_id]
        for name in self._serves[agent_id]:
            self._available_live[name] -= 1

    def _compact(self, queue: str) -> None:
        tokens = self._route_token
        heap = [entry for entry in self._available[queue] if tokens.get(entry[2]) == entry[1]]
        heapq.heapify(heap)
        self._available[queue] = heap

    def _attach(self, agent: Agent, call_id: str, queue: str | None) -> None:
        agent.call_id = call_id
        agent.queue = queue
        self._agents_of_call.setdefault(call_id, set()).add(agent.agent_id)

    def _detach(self, agent: Agent) -> None:
        call_id = agent.call_id
        if call_id is None:
            return
        holders = self._agents_of_call.get(call_id)
        if holders is not None:
            holders.discard(agent.agent_id)
            if not holders:
                del self._agents_of_call[call_id]
        agent.call_id = None
        agent.queue = None
        agent.answered_at = None

    def _after_work(self, agent: Agent) -> tuple[AgentState, str | None]:
        """Where an agent goes when a call (or a reservation) is over."""
        reason = agent.pending_pause
        agent.pending_pause = None
        return (AgentState.AVAILABLE, None) if reason is None else (AgentState.PAUSED, reason)

    def _end_call(self, agent: Agent, at: float, event: str, out: list[Command]) -> None:
        if self.settings.wrapup_s > 0:
            self._set_state(agent, AgentState.WRAP_UP, at, event, out)
            agent.deadline = at + self.settings.wrapup_s
            self._push_timer(agent.deadline, _WRAPUP, agent.agent_id)
        else:
            self._end_wrapup(agent, at, event, out)

    def _end_wrapup(self, agent: Agent, at: float, event: str, out: list[Command]) -> None:
        self._record_handle_time(agent, at)
        self._detach(agent)
        state, reason = self._after_work(agent)
        self._set_state(agent, state, at, event, out, reason=reason, idle_since=at)

    def _record_handle_time(self, agent: Agent, at: float) -> None:
        queue = agent.queue
        if agent.answered_at is None or queue is None:
            return
        samples = self._handle_times[queue]
        samples.append(max(0.0, at - agent.answered_at))
        self._aht[queue] = sum(samples) / len(samples)
        agent.answered_at = None
        if queue in self._limited:
            self._wait_checks.add(queue)

    # -- internals: calls ---------------------------------------------------------------

    def _insert_waiting(self, call: WaitingCall) -> None:
        key = call.key
        if call.preferred_agent is not None:
            bisect.insort(self._preferred[call.queue], key)
            self._preferred_of.setdefault(call.preferred_agent, set()).add(call.call_id)
            if self.agents[call.preferred_agent].routable:
                self._dirty_agents.add(call.preferred_agent)
        else:
            bisect.insort(self._general[call.queue], key)
            self._dirty_queues.add(call.queue)
        if call.queue in self._limited:
            self._wait_checks.add(call.queue)

    def _remove_waiting(self, call: WaitingCall) -> None:
        key = call.key
        if call.preferred_agent is not None:
            keys = self._preferred[call.queue]
            kept = self._preferred_of[call.preferred_agent]
            kept.discard(call.call_id)
            if not kept:
                del self._preferred_of[call.preferred_agent]
        else:
            keys = self._general[call.queue]
        index = bisect.bisect_left(keys, key)
        if index < len(keys) and keys[index] == key:
            del keys[index]
        else:  # an index bug, not a caller's mistake: say so loudly, keep going
            log.error("call %s: not found in queue %s's waiting list", call.call_id, call.queue)

    def _move(self, call: WaitingCall, queue: str) -> None:
        self._remove_waiting(call)
        call.queue = queue
        call.preferred_agent = call.preferred_until = None
        self._insert_waiting(call)

    def _unreserve(self, agent: Agent) -> WaitingCall | None:
        """Detach a RESERVED/RINGING agent from its call, which waits again at
        the head of its priority band (any repeat-caller preference ends)."""
        call = self._calls.get(agent.call_id) if agent.call_id is not None else None
        self._detach(agent)
        if call is None or call.offered_to != agent.agent_id:
            return None
        call.offered_to = None
        call.preferred_agent = call.preferred_until = None
        self._insert_waiting(call)
        return call

    def _leave_queue(
        self,
        call: WaitingCall,
        at: float,
        event: str,
        out: list[Command],
        *,
        answered_by: str | None = None,
    ) -> None:
        """Take a call (already popped from ``_calls``) out of its queue; the
        agent holding it, unless it is the one answering, is released."""
        if call.offered_to is None:
            self._remove_waiting(call)
            return
        holder = self.agents[call.offered_to]
        call.offered_to = None
        if holder.agent_id == answered_by:
            return
        if holder.call_id == call.call_id and holder.state in _ON_A_CALL:
            self._detach(holder)
            state, reason = self._after_work(holder)
            self._set_state(holder, state, at, event, out, reason=reason)

    def _end_preference(self, call: WaitingCall) -> None:
        self._remove_waiting(call)
        call.preferred_agent = call.preferred_until = None
        self._insert_waiting(call)

    def _drop_preferences_for(self, agent_id: str) -> None:
        for call_id in sorted(self._preferred_of.get(agent_id, ())):
            self._end_preference(self._calls[call_id])

    def _remember_answered(self, call: WaitingCall) -> None:
        if self.settings.answered_calls_kept == 0:
            return
        call.offered_to = None
        self._answered[call.call_id] = call
        self._answered.move_to_end(call.call_id)
        while len(self._answered) > self.settings.answered_calls_kept:
            self._answered.popitem(last=False)

    # -- internals: repeat callers --------------------------------------------------------

    def _remember_number(self, number: str, agent_id: str, at: float) -> None:
        if not _is_number(number):
            return
        self._last_answer.pop(number, None)
        self._last_answer[number] = (agent_id, at)
        horizon = at - self.settings.repeat_caller_days * _DAY_S
        while self._last_answer:
            oldest = next(iter(self._last_answer.values()))
            if oldest[1] >= horizon:
                break
            self._last_answer.popitem(last=False)

    def _repeat_agent(self, number: str, queue: str, at: float) -> str | None:
        """The agent a repeat caller should be kept for, if any: the last to
        answer this number within the window (own memory first, then the
        injected history), logged in and serving the queue."""
        if not _is_number(number):
            return None
        agent_id: str | None = None
        found = self._last_answer.get(number)
        if found is not None and at - found[1] <= self.settings.repeat_caller_days * _DAY_S:
            agent_id = found[0]
        elif self._last_agent_for is not None:
            try:
                agent_id = self._last_agent_for(number, at)
            except Exception:  # history is a nicety: never lose the call over it
                log.exception("repeat-caller lookup failed; routing normally")
                agent_id = None
        if agent_id is None:
            return None
        agent = self.agents.get(agent_id)
        if agent is None or agent.state is AgentState.LOGGED_OUT:
            return None
        if queue not in self._serves[agent_id]:
            return None
        return agent_id

    # -- internals: timers -----------------------------------------------------------------

    def _push_timer(self, deadline: float, kind: str, subject: str) -> None:
        heapq.heappush(self._timers, (deadline, next(self._timer_seq), kind, subject))

    def _timer_live(self, timer: _Timer) -> bool:
        deadline, _, kind, subject = timer
        if kind == _SKIP:
            return self.agents[subject].skip_until == deadline
        if kind == _PREFERENCE:
            call = self._calls.get(subject)
            return (
                call is not None
                and call.offered_to is None
                and call.preferred_agent is not None
                and call.preferred_until == deadline
            )
        agent = self.agents[subject]
        expected = AgentState.WRAP_UP if kind == _WRAPUP else AgentState.RESERVED
        return agent.state is expected and agent.deadline == deadline

    # -- internals: routing -----------------------------------------------------------------

    def _settle(self, at: float, out: list[Command]) -> list[Command]:
        """End of every input: route, then check estimated waits (overflow,
        callback) of the queues where they may have grown, then route again
        for calls that moved. Routing first: a caller an agent can take now
        is never sent away."""
        self._route(at, out)
        if self._wait_checks:
            while self._wait_checks:
                name = min(self._wait_checks)
                self._wait_checks.discard(name)
                if name in self._limited:
                    self._check_waits(name, at, out)
            self._route(at, out)
        return out

    def _route(self, at: float, out: list[Command]) -> None:
        # Repeat callers first: an agent who just became free takes the caller
        # kept for it before anything else.
        while self._dirty_agents:
            agent = self.agents[self._dirty_agents.pop()]
            kept = self._preferred_of.get(agent.agent_id)
            if not agent.routable or not kept:
                continue
            call = min((self._calls[call_id] for call_id in kept), key=lambda c: c.key)
            self._offer(call, agent, at, out)
        # Then, among the queues that may have a match, the best waiting call
        # (priority, then first entry) gets the best agent of its queue.
        dirty = self._dirty_queues
        while dirty:
            best: tuple[CallKey, str] | None = None
            for name in list(dirty):
                pair = self._best_pair(name)
                if pair is None:
                    dirty.discard(name)
                elif best is None or pair[0] < best[0]:
                    best = pair
            if best is None:
                break
            self._offer(self._calls[best[0][3]], self.agents[best[1]], at, out)

    def _best_pair(self, queue: str) -> tuple[CallKey, str] | None:
        """The first waiting call of the queue that an available agent may
        take, with that agent; None when there is no such pair."""
        for key in self._general[queue]:
            agent_id = self._top_agent(queue, self._calls[key[3]].skip_agents)
            if agent_id is not None:
                return key, agent_id
            if not self._available[queue]:
                return None
            # Every available agent let this call ring out: try the next call.
        return None

    def _top_agent(self, queue: str, skip: set[str]) -> str | None:
        """The best available agent of the queue not in ``skip``. Pops stale
        entries; O(log n), plus O(log n) per skipped agent."""
        heap = self._available[queue]
        tokens = self._route_token
        while heap and tokens.get(heap[0][2]) != heap[0][1]:
            heapq.heappop(heap)
        if not heap:
            return None
        if not skip or heap[0][2] not in skip:
            return heap[0][2]
        held: list[_AgentEntry] = []
        found: str | None = None
        while heap:
            entry = heapq.heappop(heap)
            if tokens.get(entry[2]) != entry[1]:
                continue
            held.append(entry)
            if entry[2] not in skip:
                found = entry[2]
                break
        for entry in held:
            heapq.heappush(heap, entry)
        return found

    def _offer(self, call: WaitingCall, agent: Agent, at: float, out: list[Command]) -> None:
        self._remove_waiting(call)
        call.offered_to = agent.agent_id
        self._attach(agent, call.call_id, call.queue)
        self._set_state(agent, AgentState.RESERVED, at, "routed", out)
        agent.deadline = at + self.settings.reservation_timeout_s
        self._push_timer(agent.deadline, _RESERVATION, agent.agent_id)
        log.info(
            "call %s: offered to agent %s (queue %s)", call.call_id, agent.agent_id, call.queue
        )
        out.append(ConnectCall(call.call_id, agent.agent_id, call.queue, at))

    # -- internals: overflow and callback ------------------------------------------------------

    def _serving(self, queue: str) -> int:
        counts = self._counts[queue]
        return sum(counts[state] for state in STAFFED_STATES)

    def _check_waits(self, queue: str, at: float, out: list[Command]) -> None:
        """Overflow / callback for the callers of ``queue`` whose estimated
        wait is too long. The EWT grows with the position, so the callers are
        walked from the last one forwards and the walk stops at the first
        whose EWT is within every limit: O(callers acted on + callers that
        cannot be acted on in the tail)."""
        spec = self.queues[queue]
        overflow_to = spec.overflow_queue
        overflow_wait_s = spec.overflow_wait_s if overflow_to is not None else None
        limits = [x for x in (overflow_wait_s, spec.callback_wait_s) if x is not None]
        if not limits:
            return
        lowest = min(limits)
        general = self._general[queue]
        preferred = self._preferred[queue]
        # A merge of the two sorted lists, walked backwards.
        i, j = len(general) - 1, len(preferred) - 1
        position = i + j + 2
        while position > 0:
            ewt = self.estimated_wait_s(queue, position)
            if ewt <= lowest:
                break
            position -= 1
            if j >= 0 and (i < 0 or preferred[j] > general[i]):
                j -= 1  # kept for its own agent: waits for it first
                continue
            call = self._calls[general[i][3]]
            # Removing general[i] shifts only the entries already walked past.
            i -= 1
            reported = None if math.isinf(ewt) else ewt
            # A call moves once; after that only a callback can relieve it.
            if (
                overflow_to is not None
                and overflow_wait_s is not None
                and ewt > overflow_wait_s
                and not call.overflowed
            ):
                self._remove_waiting(call)
                call.queue = overflow_to
                call.overflowed = True
                self._insert_waiting(call)
                log.info(
                    "call %s: overflow %s -> %s (estimated wait %.0f s)",
                    call.call_id,
                    queue,
                    overflow_to,
                    ewt,
                )
                out.append(CallOverflowed(call.call_id, queue, overflow_to, at, reported))
                continue
            if spec.callback_wait_s is not None and ewt > spec.callback_wait_s:
                self._remove_waiting(call)
                del self._calls[call.call_id]
                log.info(
                    "call %s: callback offered in %s (estimated wait %.0f s)",
                    call.call_id,
                    queue,
                    ewt,
                )
                out.append(OfferCallback(call.call_id, queue, at, reported))


def _is_number(number: str) -> bool:
    """Anonymous or withheld callers ("", "anonymous") are never repeat callers."""
    # The common case (all digits) in one C call; else look for any digit.
    return number.isdigit() or any(ch.isdigit() for ch in number)
