"""The engine: one AMI link feeding the call model and the ACD service; the
ACD's decisions become AMI actions. The composition root builds it.

Routing never waits on PostgreSQL or Redis: the event log and the snapshot
store take writes without blocking and retry on their own.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from functools import partial
from typing import Any

from acd.core import Acd
from acd.log_events import LogEvent
from acd.presence import Presence
from acd.queues import AcdSettings, QueueSpec
from acd.service import AcdService, agent_specs, dial_policies, payload
from acd.sla import TODAY, KpiSettings, ServiceLevelTracker
from cti.ami import AMIError, AMILink, AmiMessage
from cti.api.roles import mask_number
from cti.calls import (
    CallAnswered,
    CallChange,
    CallEnded,
    CallLost,
    CallModel,
    CallPhase,
    CallQueued,
)
from cti.config import EngineConfig
from cti.control.core import CallControl, Target
from cti.control.service import CallControlService
from cti.events import KNOWN_EVENTS
from cti.events import channel_endpoint as endpoint_of
from cti.resync import ResyncReport, resync

log = logging.getLogger(__name__)

CONNECT_CONTEXT = "hotline-connect"
CALLBACK_CONTEXT = "hotline-callback"
Listener = Callable[[CallChange], None]
DEFER_CAP_S = 1.5
PUSH_COALESCE_S = 0.25
# Changes that move the console's numbers (waiting calls, answers, abandons).
_OUTCOME_CHANGES = frozenset({CallQueued, CallAnswered, CallEnded, CallLost})
# The events the engine itself looks at after the call model has applied them.
_ENGINE_EVENTS = frozenset(
    {"UserEvent", "Newchannel", "Hangup", "MusicOnHoldStart", "MusicOnHoldStop", "ContactStatus"}
)
# The events that can end a call-control step (see cti.control.service).
_CONTROL_EVENTS = frozenset(
    {"UserEvent", "BridgeEnter", "BridgeLeave", "Hangup", "OriginateResponse"}
)
# What the engine's link lets through: the call model's events, the engine's
# own and call control's. Asterisk sends more (NewConnectedLine, DialState,
# Hold...); they are dropped by name, unparsed.
WANTED_EVENTS = KNOWN_EVENTS | _ENGINE_EVENTS | _CONTROL_EVENTS
AGENT_USER_EVENTS = frozenset(
    {"HotlineAgentLogin", "HotlineAgentLogout", "HotlineAgentPause", "HotlineAgentResume"}
)


class Engine:
    def __init__(
        self,
        config: EngineConfig,
        *,
        link: AMILink | None = None,
        clock: Callable[[], float] = time.time,
        event_log: Any = None,
        snapshot_store: Any = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.link = link or AMILink(
            host=config.ami.host,
            port=config.ami.port,
            username=config.ami.username,
            secret=config.ami.secret,
            name="asterisk",
            action_timeout_s=config.ami.action_timeout_s,
            ping_interval_s=config.ami.ping_interval_s,
            event_filter=WANTED_EVENTS,
        )
        self.model = CallModel(lines=config.lines_by_did)
        self.presence = Presence([a.extension for a in config.agents])
        acd_cfg = config.acd
        self.acd = Acd(
            queues=[
                QueueSpec(
                    name=q.name,
                    line=q.line,
                    skill=q.skill or None,
                    min_level=q.min_level,
                    overflow_queue=q.overflow_queue or None,
                    overflow_wait_s=q.overflow_wait_s or None,
                    callback_wait_s=q.callback_wait_s or None,
                )
                for q in config.effective_queues
            ],
            agents=agent_specs(config),
            settings=AcdSettings(
                ring_timeout_s=float(config.ring_timeout_s),
                wrapup_s=acd_cfg.wrapup_s,
                rona_pause_reason=acd_cfg.rona_pause_reason,
                repeat_caller_days=acd_cfg.repeat_caller_days,
                repeat_caller_wait_s=acd_cfg.repeat_caller_wait_s,
                reservation_timeout_s=acd_cfg.reservation_timeout_s,
                default_aht_s=acd_cfg.default_aht_s,
                level_first=acd_cfg.level_first,
            ),
            last_agent_for=self._last_agent_for,
        )
        kpi = config.kpi
        self.tracker = ServiceLevelTracker(
            KpiSettings(
                answer_target_s=kpi.answer_target_s,
                short_abandon_s=kpi.short_abandon_s,
                rate_target=kpi.rate_target,
                talk_target_s=kpi.talk_target_s,
                min_outcomes=kpi.min_outcomes,
            )
        )
        self.event_log = event_log
        self.snapshot_store = snapshot_store
        self.recent_log: deque[LogEvent] = deque(maxlen=10_000)
        skip_policy, guard = dial_policies(acd_cfg)
        self.service = AcdService(
            acd=self.acd,
            tracker=self.tracker,
            model=self.model,
            effects=self,
            sink=self._sink,
            publish=self._publish_event,
            line_priority={spec.did: spec.priority for spec in config.lines},
            priority_callers=dict(acd_cfg.priority_callers),
            queue_skill={q.name: q.skill or None for q in config.effective_queues},
            agent_queues={a.extension: config.agent_queues(a) for a in config.agents},
            clock=clock,
            registered=lambda agent: agent in self.presence.registered,
            count_app_queue=config.kpi.count_app_queue,
            skip_policy=skip_policy,
            guard=guard,
        )
        control = config.control
        self.control = CallControlService(
            core=CallControl(
                agents=frozenset(a.extension for a in config.agents),
                queues=frozenset(q.name for q in config.effective_queues),
                agent_mobiles={a.extension: a.mobile for a in config.agents if a.mobile},
                city_center_number=control.city_center_number,
                external_number_pattern=control.external_number_pattern,
                transfer_ring_s=control.transfer_ring_s,
            ),
            model=self.model,
            acd=self.acd,
            service=self.service,
            send=self._action,
            report=self._report_changes,
            clock=clock,
            changed=self._control_changed,
        )
        self.service.transfer_prefer_s = control.transfer_prefer_s
        self._repeat_callers: dict[str, tuple[str, float]] = {}
        self._listeners: list[Listener] = []
        self._kpi_listeners: list[Callable[[dict[str, Any]], None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tick_handle: asyncio.TimerHandle | None = None
        self._tick_at: float | None = None
        self._positions: dict[str, tuple[int, int]] = {}
        self._resynced = asyncio.Condition()
        self.resyncs: list[ResyncReport] = []
        self._held: list[Any] | None = None
        self._agents_changed = asyncio.Event()
        self._on_hold: set[str] = set()
        """Caller channels now in MusicOnHold: the safe moment for a Redirect."""
        self._deferred: dict[str, tuple[str, str, asyncio.TimerHandle]] = {}
        self._stopping = False
        self._push_handle: asyncio.TimerHandle | None = None
        self._agent_state_listeners: list[Callable[[str], None]] = []
        self.link.add_event_handler(self._on_event)
        self.link.add_connect_handler(self._on_connect)

    # -- public ---------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Called with every call change, in order, synchronously on the ingest
        path: a listener that needs I/O hands the change to its own task."""
        self._listeners.append(listener)

    def add_kpi_listener(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Called with the live snapshot every ``kpi.print_every_s``."""
        self._kpi_listeners.append(listener)

    async def start(self) -> None:
        await self._restore_from_log()
        await self.link.start()
        self._spawn(self._heartbeat())
        self._spawn(self._kpi_loop())

    def _check_reply(
        self, what: str, refusal_ok: bool, reply: AmiMessage | list[AmiMessage] | Exception
    ) -> None:
        if isinstance(reply, Exception):
            # Actions still in flight when the engine stops fail by design.
            log.log(logging.INFO if self._stopping else logging.ERROR, "%s failed: %s", what, reply)
        elif isinstance(reply, AmiMessage) and not reply.success:
            log.log(
                logging.DEBUG if refusal_ok else logging.WARNING,
                "%s refused by Asterisk: %s",
                what,
                reply.get("Message", reply),
            )

    async def stop(self) -> None:
        self._stopping = True
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        if self._push_handle is not None:
            self._push_handle.cancel()
        for uniqueid in list(self._deferred):
            self._cancel_deferred(uniqueid)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.link.close()

    async def wait_resynced(self, count: int = 1, timeout_s: float = 30.0) -> ResyncReport:
        """Until at least *count* resyncs have completed; returns the latest report."""
        async with asyncio.timeout(timeout_s):
            async with self._resynced:
                await self._resynced.wait_for(lambda: len(self.resyncs) >= count)
        return self.resyncs[-1]

    # Service API for agents (the web API and tests call these).
    def login(self, agent: str) -> None:
        self.service.login(agent, self.clock())
        self._after_input()

    def logout(self, agent: str) -> None:
        self.service.logout(agent, self.clock())
        self._after_input()

    def pause(self, agent: str, reason: str) -> None:
        self.service.pause(agent, reason, self.clock())
        self._after_input()

    def resume(self, agent: str) -> None:
        self.service.resume(agent, self.clock())
        self._after_input()

    def wrapup_done(self, agent: str) -> None:
        self.service.wrapup_done(agent, self.clock())
        self._after_input()

    # ChanSpy options per monitoring mode: q no beep or name announcement to
    # the spy, E end when the agent's channel hangs up; w whisper to the agent
    # only; B barge: talk to both parties.
    SPY_OPTIONS = {"listen": "qE", "whisper": "qwE", "barge": "qBE"}

    def monitor(self, agent: str, phone: str, mode: str) -> None:
        """Ring the supervisor's ``phone`` into a ChanSpy on ``agent``'s call
        (``listen``, ``whisper`` or ``barge``). Raises ValueError for an
        unknown mode."""
        options = self.SPY_OPTIONS.get(mode)
        if options is None:
            raise ValueError(f"unknown monitoring mode {mode!r}; expected {list(self.SPY_OPTIONS)}")
        self._action(
            {
                "Action": "Originate",
                "Channel": f"PJSIP/{phone}",
                "Application": "ChanSpy",
                # The trailing "-" keeps PJSIP/1001 from matching PJSIP/10011.
                "Data": f"PJSIP/{agent}-,{options}",
                "CallerID": f"{mode} <{agent}>",
                "Timeout": "30000",
                "Async": "true",
            },
            what=f"monitor ({mode}) agent {agent} from {phone}",
        )

    def agent_on_call(self, call_id: str) -> str | None:
        """The agent talking on *call_id* (the one whose desktop controls it)."""
        for agent_id, agent in self.acd.agents.items():
            if agent.call_id == call_id and agent.state.name == "ON_CALL":
                return agent_id
        return None

    def caller_of(self, call_id: str) -> dict[str, str] | None:
        """The caller's number and name of a live call (unmasked: the API
        allows it to supervisors only, and audits it)."""
        call = self.model.calls.get(call_id)
        if call is None:
            return None
        return {"caller_number": call.caller_number, "caller_name": call.caller_name}

    def call_command(self, agent: str, command: str, target: Target | None) -> dict[str, Any]:
        """One call-control command from *agent*'s desktop (see
        :data:`cti.api.http.CALL_COMMANDS`); ControlError when it cannot be done."""
        result = self.control.run(agent, command, target)
        self._after_input()
        return {"call_id": result.call_id, "command": result.command, "control": result.state}

    def agent_states(self) -> dict[str, dict[str, Any]]:
        """Every agent's ACD state, for the HTTP API."""
        return {agent_id: self.agent_state(agent_id) for agent_id in self.acd.agents}

    def agent_state(self, agent_id: str) -> dict[str, Any]:
        """One agent's ACD state, with what call control has done to its call
        (on hold, consulting, three-way) when anything."""
        agent = self.acd.agents[agent_id]
        control = self.control.state_of(agent.call_id) if agent.call_id else None
        return {
            "state": agent.state.name,
            "since": agent.state_since,
            "pause_reason": agent.pause_reason,
            "call_id": agent.call_id,
            "control": control.as_dict() if control is not None else None,
        }

    def snapshot(self) -> dict[str, Any]:
        now = self.clock()
        kpi = self.tracker.snapshot(now=now)
        kpi["alarms"] += [alarm.to_dict() for alarm in self.service.switch_alarms.active()]
        return {
            "at": now,
            "acd": self.acd.snapshot(now),
            "kpi": kpi,
            "rate_chart": self.rate_chart(now),
            "calls": self.live_calls(now),
        }

    def live_calls(self, now: float) -> list[dict[str, Any]]:
        """The citizens' calls in progress, oldest first, numbers masked (the
        unmasked number is an audited request of its own)."""
        calls = []
        for call in sorted(self.model.calls.values(), key=lambda c: c.arrived_at):
            start = call.queued_at if call.queued_at is not None else call.arrived_at
            calls.append(
                {
                    "call_id": call.call_id,
                    "line": call.line,
                    "queue": call.queue,
                    "phase": call.phase.name,
                    "caller_number": mask_number(call.caller_number, visible=False),
                    "agent": call.agent if call.connected_legs else None,
                    "waited_s": (call.answered_at or now) - start,
                    "talk_s": now - call.answered_at if call.answered_at is not None else None,
                }
            )
        return calls

    def rate_chart(self, now: float | None = None) -> list[dict[str, Any]]:
        """The 15 s answer rate of each hour of today so far (the contract's
        local day), for the console's chart: one point per hour, the current
        hour up to now."""
        now = self.clock() if now is None else now
        start, _ = self.tracker.window_range(TODAY, now=now)
        points = []
        hour = start
        while hour < now:
            end = min(hour + 3600.0, now)
            # Windows are closed intervals: stop a hair short of the next hour
            # so that an outcome exactly on the hour counts once.
            last = end if end == now else end - 1e-6
            stats = self.tracker.window((hour, last), now=now)
            points.append(
                {
                    "from": hour,
                    "to": end,
                    "offered": stats.offered,
                    "answered": stats.answered,
                    "rate_15s": stats.rate_15s,
                }
            )
            hour += 3600.0
        return points

    # -- AMI side -------------------------------------------------------------------

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
                self._handle_change(change)
            for agent in self.acd.agents:
                self.service.agent_busy_changed(agent, self.model.agent_busy(agent), self.clock())
                self.service.presence_changed(
                    agent, agent in self.presence.registered, self.clock()
                )
            self._sync_fallback_members()
            self.control.adopt_calls()
            # Callers adopted from the engine's hold get a fresh lease at once,
            # not a heartbeat later (the old engine's may be about to run out).
            self._renew_leases()
            async with self._resynced:
                self.resyncs.append(report)
                self._resynced.notify_all()
        finally:
            self._release_held()
        self._after_input()

    def _release_held(self) -> None:
        held = self._held
        while held:
            self._apply(held.pop(0))
        # Only once empty: an event that arrived during the replay was appended
        # to the same list and has just been applied in its turn.
        self._held = None

    def _on_event(self, event: Mapping[str, Any]) -> None:
        if self._held is not None:
            self._held.append(event)
            return
        self._apply(event)

    def _apply(self, event: Mapping[str, Any]) -> None:
        changes = self.model.apply(event)
        for change in changes:
            self._handle_change(change)
        name = event.get("Event")
        if name in _CONTROL_EVENTS and self.control.core.calls:
            self.control.on_event(event)
        if name not in _ENGINE_EVENTS:
            if changes:  # else the ACD saw nothing: its next timer is unchanged
                self._after_input()
            return
        at = self._event_time(event)
        if name == "UserEvent":
            self._user_event(event, at)
        elif name in ("Newchannel", "Hangup"):
            if name == "Hangup":
                self._left_hold(str(event.get("Uniqueid", "")), hung_up=True)
            agent = endpoint_of(str(event.get("Channel", "")))
            if agent in self.acd.agents:
                self.service.agent_busy_changed(agent, self.model.agent_busy(agent), at)
        elif name == "MusicOnHoldStart":
            self._entered_hold(str(event.get("Uniqueid", "")))
        elif name == "MusicOnHoldStop":
            self._left_hold(str(event.get("Uniqueid", "")))
        elif name == "ContactStatus" and self.presence.apply(event):
            self._presence_changed(str(event.get("AOR") or event.get("Aor") or ""), at)
        self._after_input()

    def _user_event(self, event: Mapping[str, Any], at: float) -> None:
        kind = str(event.get("UserEvent", ""))
        if kind in AGENT_USER_EVENTS:
            self.service.agent_action_from_dialplan(event, at)
        elif kind == "HotlineFallback":
            call = self.model.call_for_channel(str(event.get("Uniqueid", "")))
            if call is not None:
                log.warning(
                    "call %s: the dialplan fallback took the caller (engine late or "
                    "no agent in time)",
                    call.call_id,
                )
                self.service.fallback_took(call.call_id, at)

    def _presence_changed(self, agent: str, at: float) -> None:
        self.service.presence_changed(agent, agent in self.presence.registered, at)

    def _report_changes(self, changes: list[CallChange]) -> None:
        for change in changes:
            self._handle_change(change)
        self._after_input()

    def _handle_change(self, change: CallChange) -> None:
        self.service.on_change(change)
        self.control.on_change(change)
        if type(change) in _OUTCOME_CHANGES:
            self._soon_push_snapshot()
        self._publish_event(change)
        for listener in self._listeners:
            try:
                listener(change)
            except Exception:
                log.exception("listener %r failed on %s", listener, change)

    def _event_time(self, event: Mapping[str, Any]) -> float:
        try:
            return float(event.get("Timestamp") or self.clock())
        except (TypeError, ValueError):
            return self.clock()

    # -- ACD effects (the AcdEffects port) ------------------------------------------

    def connect(self, call_id: str, agent: str) -> None:
        call = self.model.calls.get(call_id)
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
            handle = asyncio.get_running_loop().call_later(
                DEFER_CAP_S, self._send_deferred, uniqueid
            )
            self._deferred[uniqueid] = (call_id, agent, handle)
            return
        self._redirect_to_agent(call_id, agent)

    def _entered_hold(self, uniqueid: str) -> None:
        self._on_hold.add(uniqueid)
        if uniqueid in self._deferred:
            self._send_deferred(uniqueid)

    def _left_hold(self, uniqueid: str, *, hung_up: bool = False) -> None:
        self._on_hold.discard(uniqueid)
        if hung_up:
            self._cancel_deferred(uniqueid)

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
        acd_agent = self.acd.agents.get(agent)
        if acd_agent is None or acd_agent.call_id != call_id:
            return  # the ACD changed its mind meanwhile (reservation expired, caller left)
        self._redirect_to_agent(call_id, agent)

    def _redirect_to_agent(self, call_id: str, agent: str) -> None:
        channel = self._caller_channel(call_id)
        if channel is None:
            return
        log.info("call %s: routing to agent %s", call_id, agent)
        self._action(
            {
                "Action": "Redirect",
                "Channel": channel,
                "Context": CONNECT_CONTEXT,
                "Exten": agent,
                "Priority": "1",
            },
            what=f"call {call_id}: redirect to agent {agent}",
        )

    def offer_callback(self, call_id: str) -> None:
        channel = self._caller_channel(call_id)
        if channel is not None:
            log.info("call %s: estimated wait too long; offering a callback", call_id)
            self._action(
                {
                    "Action": "Redirect",
                    "Channel": channel,
                    "Context": CALLBACK_CONTEXT,
                    "Exten": "s",
                    "Priority": "1",
                },
                what=f"call {call_id}: redirect to callback",
            )

    def move_queue(self, call_id: str, queue: str) -> None:
        channel = self._caller_channel(call_id)
        if channel is not None:
            self._action(
                {
                    "Action": "Setvar",
                    "Channel": channel,
                    "Variable": "HOTLINE_QUEUE",
                    "Value": queue,
                },
                what=f"call {call_id}: overflow to {queue}",
            )

    def agent_in_fallback_queues(
        self, agent: str, *, member: bool, paused: bool, reason: str | None
    ) -> None:
        """Keep app_queue's members and pauses in step with the ACD, so that the
        dialplan's fallback rings the same agents the engine would. Asterisk
        runs one session's actions in order: QueueAdd lands before QueuePause."""
        if not self.link.connected:
            return
        interface = f"PJSIP/{agent}"
        flag = "true" if paused else "false"
        for queue in self.service.agent_queues.get(agent, ()):
            what = f"agent {agent}: app_queue member sync for {queue}"
            if not member:
                self._action(
                    {"Action": "QueueRemove", "Queue": queue, "Interface": interface},
                    what=what,
                    refusal_ok=True,
                )
                continue
            self._action(
                {
                    "Action": "QueueAdd",
                    "Queue": queue,
                    "Interface": interface,
                    "MemberName": agent,
                    "Paused": flag,
                },
                what=what,
                refusal_ok=True,
            )
            self._action(
                {
                    "Action": "QueuePause",
                    "Queue": queue,
                    "Interface": interface,
                    "Paused": flag,
                    "Reason": reason or "",
                },
                what=what,
            )

    def _sync_fallback_members(self) -> None:
        for agent_id, agent in self.acd.agents.items():
            logged_in = agent.state.name != "LOGGED_OUT"
            self.agent_in_fallback_queues(
                agent_id,
                member=logged_in,
                paused=agent.state.name == "PAUSED",
                reason=agent.pause_reason,
            )

    def _caller_channel(self, call_id: str) -> str | None:
        call = self.model.calls.get(call_id)
        if call is None:
            return None
        channel = self.model.channels.get(call.caller_channel)
        return channel.name if channel is not None else None

    def _action(self, action: dict[str, str], *, what: str, refusal_ok: bool = False) -> None:
        """Send without waiting (the routing path); the reply is only checked.
        ``refusal_ok``: Asterisk saying no is expected (a QueueAdd of a member
        already there) and only logged at debug level."""
        try:
            self.link.post_action(action, on_done=partial(self._check_reply, what, refusal_ok))
        except AMIError as exc:
            log.warning("%s: not sent (%s); resync will decide again", what, exc)

    # -- timers ---------------------------------------------------------------------

    def _after_input(self) -> None:
        """Schedule the ACD's next timer (wrap-up end, reservation, repeat caller)."""
        deadline = self.acd.next_deadline()
        if deadline is None or (self._tick_at is not None and self._tick_at <= deadline):
            return
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, deadline - self.clock())
        self._tick_at = deadline
        self._tick_handle = loop.call_later(delay, self._tick)

    def _tick(self) -> None:
        self._tick_handle = None
        self._tick_at = None
        self.service.tick(self.clock())
        self._after_input()

    async def _heartbeat(self) -> None:
        period = self.config.acd.heartbeat_s
        while True:
            await asyncio.sleep(period)  # a period, not a synchronisation
            self._renew_leases()

    def _renew_leases(self) -> None:
        """Renew each waiting caller's lease and tell it its position and
        expected wait. Without renewals the dialplan hands the caller to its
        fallback."""
        if not self.link.connected:
            return
        lease_until = str(int(self.clock() + self.config.acd.engine_grace_s))
        waiting = [
            c
            for c in self.model.calls.values()
            if c.phase is CallPhase.QUEUED and c.routed_by != "app_queue"
        ]
        for call in waiting:
            channel = self._caller_channel(call.call_id)
            if channel is None:
                continue
            self._setvar(channel, "HOTLINE_LEASE_UNTIL", lease_until, call.call_id)
            announced = self._announcement(call.call_id)
            if announced is not None and self._positions.get(call.call_id) != announced:
                self._positions[call.call_id] = announced
                # One variable, "position,minutes": the dialplan CUTs it apart.
                self._setvar(
                    channel, "HOTLINE_POSITION", f"{announced[0]},{announced[1]}", call.call_id
                )
        for call_id in list(self._positions):
            if call_id not in self.model.calls:
                del self._positions[call_id]

    def _announcement(self, call_id: str) -> tuple[int, int] | None:
        """(position, expected wait in whole minutes; 0 when unknown)."""
        position = self.acd.position(call_id)
        facts = self.service.calls.get(call_id)
        if position is None or facts is None or facts.queue is None:
            return None
        ewt = self.acd.estimated_wait_s(facts.queue, position)
        minutes = max(1, math.ceil(ewt / 60)) if math.isfinite(ewt) else 0
        return position, minutes

    def _setvar(self, channel: str, name: str, value: str, call_id: str) -> None:
        self._action(
            {"Action": "Setvar", "Channel": channel, "Variable": name, "Value": value},
            what=f"call {call_id}: {name}",
        )

    async def _kpi_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.kpi.print_every_s)  # a period
            self._push_snapshot()

    def _push_snapshot(self) -> None:
        self._push_handle = None
        try:
            self._evaluate_alarms()
            snapshot = self.snapshot()
        except Exception:
            log.exception("building the live snapshot failed")
            return
        if self.snapshot_store is not None:
            self.snapshot_store.set_snapshot(snapshot)
        for listener in self._kpi_listeners:
            try:
                listener(snapshot)
            except Exception:
                log.exception("KPI listener failed")

    def _soon_push_snapshot(self) -> None:
        """A caller queued, answered or left: dashboards see it at once (within
        PUSH_COALESCE_S, so that a burst of calls makes one push), not at the
        next KPI period."""
        if self._push_handle is None and self._kpi_listeners:
            loop = asyncio.get_running_loop()
            self._push_handle = loop.call_later(PUSH_COALESCE_S, self._push_snapshot)

    def _evaluate_alarms(self) -> None:
        """Windows roll without new outcomes, and the forecast depends on who is
        waiting and who is free now: re-check both on the KPI cadence."""
        now = self.clock()
        inputs = self.tracker.forecast_inputs(now=now)
        self.service.raise_alarms(self.tracker.evaluate_alarms(now=now, forecast_inputs=inputs))

    # -- durable state ----------------------------------------------------------------

    def _sink(self, event: LogEvent) -> None:
        self.recent_log.append(event)
        if self.event_log is not None:
            self.event_log.append(event)
        if event.kind == "CALL_ANSWERED" and event.caller_number and event.agent:
            self._repeat_callers[event.caller_number] = (event.agent, event.at)

    async def wait_agent_state(self, agent: str, state: str, timeout_s: float = 10.0) -> None:
        """Until the ACD has *agent* in *state* (an AgentState name)."""
        async with asyncio.timeout(timeout_s):
            while self.acd.agents[agent].state.name != state:
                self._agents_changed.clear()
                await self._agents_changed.wait()

    def _control_changed(self, call_id: str) -> None:
        agent = self.agent_on_call(call_id)
        if agent is not None:
            self._tell_agent_state(agent)

    def _tell_agent_state(self, agent: str) -> None:
        for listener in self._agent_state_listeners:
            try:
                listener(agent)
            except Exception:
                log.exception("agent state listener failed")

    def add_agent_state_listener(self, listener: Callable[[str], None]) -> None:
        """Called with the agent's id after each of its state changes
        (synchronously: a listener doing I/O hands off to its own task)."""
        self._agent_state_listeners.append(listener)

    def _publish_event(self, item: Any) -> None:
        kind = type(item).__name__
        if kind == "AgentStateChanged":
            self._agents_changed.set()
            self._tell_agent_state(item.agent)
        if self.snapshot_store is not None:
            self.snapshot_store.publish(kind, payload(item))

    def last_agent_for(self, number: str) -> str | None:
        """The agent who last answered ``number`` within the repeat-caller window."""
        return self._last_agent_for(number, self.clock())

    def _last_agent_for(self, number: str, now: float) -> str | None:
        found = self._repeat_callers.get(number)
        if found is None:
            return None
        agent, at = found
        return agent if now - at <= self.config.acd.repeat_caller_days * 86400 else None

    async def _restore_from_log(self) -> None:
        """Agent states and repeat callers from the event log, after a restart.
        Bounded in time: routing must not wait on the database."""
        if self.event_log is None or not self.config.database_dsn:
            return
        import asyncpg

        from acd.event_log import load_agent_states, load_repeat_callers

        try:
            async with asyncio.timeout(5.0):
                conn = await asyncpg.connect(self.config.database_dsn)
                try:
                    since = self.clock() - self.config.acd.repeat_caller_days * 86400
                    states = await load_agent_states(conn)
                    self._repeat_callers.update(await load_repeat_callers(conn, since=since))
                finally:
                    await conn.close()
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            log.warning(
                "could not restore agent states from the event log (%s); agents start logged out",
                exc,
            )
            return
        from acd.agents import AgentState

        for agent, (state, at, reason) in states.items():
            if agent in self.acd.agents and state in ("AVAILABLE", "PAUSED"):
                self.acd.restore_agent(agent, AgentState[state], at=at, pause_reason=reason)
        log.info(
            "restored %d agent states and %d repeat callers from the event log",
            len(states),
            len(self._repeat_callers),
        )

    # -- tasks ----------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("engine task failed", exc_info=task.exception())
