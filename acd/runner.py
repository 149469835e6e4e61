"""The ACD in time: the service, its timers, its AMI effects and its periodic
work, driven by what the switch reports and what agents do.

:class:`AcdRunner` builds the ACD (:class:`acd.core.Acd`), the KPI tracker,
the service and the switch effects from the configuration, and is fed plain
values (a call change, "this channel hung up", "this phone registered") by
the runtime, which subscribes it to the bus. After every input it schedules
the ACD's next timer (wrap-up end, reservation, repeat-caller wait). Two
owned loops renew waiting callers' leases (``acd.heartbeat_s``) and
re-evaluate the alarms (``kpi.print_every_s``).

Routing never waits on PostgreSQL or Redis: the event-log sink takes rows
without blocking.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from acd.agents import AgentState
from acd.core import Acd
from acd.log_events import LogEvent
from acd.presence import Presence
from acd.queues import AcdSettings, QueueSpec
from acd.repeat_callers import RepeatCallers
from acd.service import AcdService, CallView, agent_specs, dial_policies
from acd.sla import KpiSettings, ServiceLevelTracker
from acd.switch_effects import SwitchEffects
from common.ami_actions import ActionSender
from common.call_changes import CallChange

__all__ = ["AcdRunner", "KpiPeriod"]

log = logging.getLogger(__name__)

RECENT_LOG_ROWS = 10_000


@dataclass(frozen=True, slots=True)
class KpiPeriod:
    """Published every ``kpi.print_every_s``, after the alarms were re-evaluated."""

    at: float


class AcdRunner:
    def __init__(
        self,
        config: Any,
        *,
        calls: CallView,
        presence: Presence,
        send: ActionSender,
        connected: Callable[[], bool],
        publish: Callable[[Any], None],
        log_row: Callable[[LogEvent], None],
        agent_busy: Callable[[str], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``config``: the engine configuration (``acd``, ``kpi``, queues,
        agents, lines); ``calls``: the call model; ``send``: post an AMI
        action without waiting; ``publish``: ACD commands and alarms (to the
        bus); ``log_row``: every event-log row (to the bus, whose subscribers
        write the log); ``agent_busy``: is the agent's phone on any call."""
        self.config = config
        self.clock = clock
        self.presence = presence
        self._log_row = log_row
        self._publish = publish
        self._agent_busy = agent_busy
        acd_cfg = config.acd
        self.repeat_callers = RepeatCallers(window_s=acd_cfg.repeat_caller_days * 86400)
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
            last_agent_for=self.repeat_callers.last_agent_for,
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
        self.recent_log: deque[LogEvent] = deque(maxlen=RECENT_LOG_ROWS)
        agent_queues = {a.extension: config.agent_queues(a) for a in config.agents}
        self.effects = SwitchEffects(
            send=send,
            calls=calls,
            acd=self.acd,
            agent_queues=agent_queues,
            queue_of=self._queue_of,
            clock=clock,
            connected=connected,
            engine_grace_s=acd_cfg.engine_grace_s,
        )
        skip_policy, guard = dial_policies(acd_cfg)
        self.service = AcdService(
            acd=self.acd,
            tracker=self.tracker,
            model=calls,
            effects=self.effects,
            sink=self._sink,
            publish=publish,
            line_priority={spec.did: spec.priority for spec in config.lines},
            priority_callers=dict(acd_cfg.priority_callers),
            queue_skill={q.name: q.skill or None for q in config.effective_queues},
            agent_queues=agent_queues,
            clock=clock,
            registered=lambda agent: agent in presence.registered,
            count_app_queue=kpi.count_app_queue,
            skip_policy=skip_policy,
            guard=guard,
        )
        self._tick_handle: asyncio.TimerHandle | None = None
        self._tick_at: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- agents (the desktop, the API and the dialplan's feature codes) ------------------

    def login(self, agent: str) -> None:
        self.service.login(agent, self.clock())
        self.after_input()

    def logout(self, agent: str) -> None:
        self.service.logout(agent, self.clock())
        self.after_input()

    def pause(self, agent: str, reason: str) -> None:
        self.service.pause(agent, reason, self.clock())
        self.after_input()

    def resume(self, agent: str) -> None:
        self.service.resume(agent, self.clock())
        self.after_input()

    def wrapup_done(self, agent: str) -> None:
        self.service.wrapup_done(agent, self.clock())
        self.after_input()

    def feature_code(self, code: str, agent: str, reason: str, at: float) -> None:
        """*21..*24 dialled on the agent's phone (``HotlineAgent*`` UserEvents)."""
        self.service.agent_action_from_dialplan(code, agent, reason, at)
        self.after_input()

    def last_agent_for(self, number: str) -> str | None:
        """The agent who last answered *number* within the repeat-caller window."""
        return self.repeat_callers.last_agent_for(number, self.clock())

    # -- what the switch reports ------------------------------------------------------

    def on_change(self, change: CallChange) -> None:
        self.service.on_change(change)
        self.after_input()

    def channel_changed(self, agent: str, at: float) -> None:
        """An agent's phone made or ended a channel (Newchannel, Hangup)."""
        if agent in self.acd.agents:
            self.service.agent_busy_changed(agent, self._agent_busy(agent), at)
            self.after_input()

    def caller_hung_up(self, uniqueid: str) -> None:
        self.effects.left_hold(uniqueid, hung_up=True)

    def music_started(self, uniqueid: str) -> None:
        self.effects.entered_hold(uniqueid)

    def music_stopped(self, uniqueid: str) -> None:
        self.effects.left_hold(uniqueid)

    def contact_status(self, aor: str, status: str, at: float) -> None:
        if self.presence.contact_status(aor, status):
            self.service.presence_changed(aor, aor in self.presence.registered, at)
            self.after_input()

    def fallback_took(self, call_id: str, at: float) -> None:
        log.warning(
            "call %s: the dialplan fallback took the caller (engine late or no agent in time)",
            call_id,
        )
        self.service.fallback_took(call_id, at)
        self.after_input()

    def resynced(self) -> None:
        """After the call model was rebuilt from the switch: every agent's
        phone and presence, app_queue's members, and a fresh lease for every
        adopted caller (the old engine's may be about to run out)."""
        now = self.clock()
        for agent in self.acd.agents:
            self.service.agent_busy_changed(agent, self._agent_busy(agent), now)
            self.service.presence_changed(agent, agent in self.presence.registered, now)
        self.effects.sync_fallback_members()
        self.effects.renew_leases()
        self.after_input()

    # -- state -------------------------------------------------------------------------

    def restore(
        self,
        states: dict[str, tuple[str, float, str | None]],
        repeat_callers: dict[str, tuple[str, float]],
    ) -> None:
        """Agent states and repeat callers read from the event log at start."""
        self.repeat_callers.restore(repeat_callers)
        for agent, (name, at, reason) in states.items():
            state = AgentState.__members__.get(name)
            if agent in self.acd.agents and state in (AgentState.AVAILABLE, AgentState.PAUSED):
                self.acd.restore_agent(agent, state, at=at, pause_reason=reason)
        log.info(
            "restored %d agent states and %d repeat callers from the event log",
            len(states),
            len(self.repeat_callers),
        )

    def _sink(self, row: LogEvent) -> None:
        self.recent_log.append(row)
        self.repeat_callers.record(row)
        self._log_row(row)

    def _queue_of(self, call_id: str) -> str | None:
        facts = self.service.calls.get(call_id)
        return facts.queue if facts is not None else None

    # -- timers and loops -------------------------------------------------------------

    def after_input(self) -> None:
        """Schedule the ACD's next timer (wrap-up end, reservation, repeat caller)."""
        deadline = self.acd.next_deadline()
        if deadline is None or (self._tick_at is not None and self._tick_at <= deadline):
            return
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        loop = asyncio.get_running_loop()
        self._tick_at = deadline
        self._tick_handle = loop.call_later(max(0.0, deadline - self.clock()), self._tick)

    def _tick(self) -> None:
        self._tick_handle = None
        self._tick_at = None
        self.service.tick(self.clock())
        self.after_input()

    def evaluate_alarms(self) -> None:
        """Windows roll without new outcomes, and the forecast depends on who is
        waiting and who is free now: re-checked on the KPI cadence."""
        now = self.clock()
        inputs = self.tracker.forecast_inputs(now=now)
        self.service.raise_alarms(self.tracker.evaluate_alarms(now=now, forecast_inputs=inputs))

    def start(self) -> None:
        """Start the lease heartbeat and the KPI period (alarms, then a
        :class:`KpiPeriod` published: the console's snapshot)."""
        self._spawn(self._every(self.config.acd.heartbeat_s, self.effects.renew_leases))
        self._spawn(self._every(self.config.kpi.print_every_s, self.evaluate_alarms, self._period))

    def _period(self) -> None:
        self._publish(KpiPeriod(self.clock()))

    async def stop(self) -> None:
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        self.effects.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _every(self, period_s: float, *work: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(period_s)  # a period, not a synchronisation
            for step in work:
                try:
                    step()
                except Exception:
                    log.exception("periodic ACD work failed")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("ACD task failed", exc_info=task.exception())
