"""acd.switch_effects: the ACD's decisions as AMI actions. A real ACD core
and ACD service, a hand-made call view, a recording ``send`` and timers
fired by hand: the exact actions, in order; nothing sleeps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from acd.agents import AgentSpec, AgentState
from acd.core import Acd
from acd.queues import AcdSettings, QueueSpec
from acd.service import AcdService
from acd.sla import KpiSettings, ServiceLevelTracker
from acd.switch_effects import DEFER_CAP_S, SwitchEffects
from cti.calls import Call, CallArrived, CallEnded, CallPhase, CallQueued, Channel

QUEUE = "q"
LINE = "12345"
GRACE_S = 30.0


@dataclass
class View:
    """The call model as the ACD reads it (acd.service.CallView)."""

    calls: dict[str, Call] = field(default_factory=dict)
    channels: dict[str, Channel] = field(default_factory=dict)
    ended: list[Call] = field(default_factory=list)


@dataclass
class Timer:
    delay: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class Timers:
    started: list[Timer] = field(default_factory=list)

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(delay, callback)
        self.started.append(timer)
        return timer

    @property
    def pending(self) -> list[Timer]:
        return [t for t in self.started if not t.cancelled]

    def fire_pending(self) -> None:
        for timer in self.pending:
            timer.callback()


@dataclass
class Rig:
    view: View
    acd: Acd
    service: AcdService
    effects: SwitchEffects
    timers: Timers
    sent: list[tuple[dict[str, str], bool]]
    link: dict[str, bool]
    now: list[float]

    @property
    def actions(self) -> list[dict[str, str]]:
        return [action for action, _ in self.sent]

    def caller_waits(
        self, call_id: str, at: float = 10.0, *, queue: str = QUEUE, on_hold: bool = False
    ) -> None:
        """A caller reaches the engine's hold and the model reports it queued."""
        self.add_call(call_id, CallPhase.QUEUED, at=at)
        if on_hold:
            self.effects.entered_hold(uniqueid(call_id))
        self.service.on_change(CallArrived(call_id, at, LINE, "138" + call_id, "", LINE))
        self.service.on_change(CallQueued(call_id, at, LINE, queue, False))

    def add_call(
        self, call_id: str, phase: CallPhase, *, at: float = 10.0, routed_by: str = "engine"
    ) -> None:
        self.view.calls[call_id] = Call(
            call_id=call_id,
            caller_channel=uniqueid(call_id),
            caller_number="138" + call_id,
            caller_name="",
            dialled=LINE,
            line=LINE,
            queue=QUEUE,
            phase=phase,
            arrived_at=at,
            queued_at=at,
            routed_by=routed_by,
        )
        self.view.channels[uniqueid(call_id)] = Channel(
            uniqueid=uniqueid(call_id),
            linkedid=call_id,
            name=channel(call_id),
            endpoint="trunk",
            state="Up",
            caller_number="138" + call_id,
            caller_name="",
            exten="s",
            context="hotline-hold",
            created_at=at,
        )

    def caller_hangs_up(self, call_id: str, at: float) -> None:
        self.effects.left_hold(uniqueid(call_id), hung_up=True)
        call = self.view.calls.pop(call_id)
        del self.view.channels[call.caller_channel]
        self.view.ended.append(call)
        self.service.on_change(CallEnded(call_id, at, True, at - call.arrived_at, None, "16"))


def uniqueid(call_id: str) -> str:
    return f"{call_id}.0"


def channel(call_id: str) -> str:
    return f"PJSIP/trunk-{call_id}"


def to_agent(call_id: str, agent: str) -> dict[str, str]:
    return {
        "Action": "Redirect",
        "Channel": channel(call_id),
        "Context": "hotline-connect",
        "Exten": agent,
        "Priority": "1",
    }


def setvar(call_id: str, variable: str, value: str) -> dict[str, str]:
    return {"Action": "Setvar", "Channel": channel(call_id), "Variable": variable, "Value": value}


def queue_add(agent: str, queue: str, paused: str) -> dict[str, str]:
    return {
        "Action": "QueueAdd",
        "Queue": queue,
        "Interface": f"PJSIP/{agent}",
        "MemberName": agent,
        "Paused": paused,
    }


def queue_pause(agent: str, queue: str, paused: str, reason: str = "") -> dict[str, str]:
    return {
        "Action": "QueuePause",
        "Queue": queue,
        "Interface": f"PJSIP/{agent}",
        "Paused": paused,
        "Reason": reason,
    }


def queue_remove(agent: str, queue: str) -> dict[str, str]:
    return {"Action": "QueueRemove", "Queue": queue, "Interface": f"PJSIP/{agent}"}


def rig(
    agents: tuple[str, ...] = ("1001", "1002"),
    *,
    login: tuple[str, ...] = (),
    agent_queues: dict[str, tuple[str, ...]] | None = None,
) -> Rig:
    acd = Acd(
        queues=[QueueSpec(QUEUE, LINE), QueueSpec("q2", LINE)],
        agents=[AgentSpec(a, a, queues=(QUEUE,)) for a in agents],
        settings=AcdSettings(wrapup_s=0.0, default_aht_s=120.0),
    )
    view = View()
    timers = Timers()
    sent: list[tuple[dict[str, str], bool]] = []
    link = {"up": True}
    now = [1000.4]

    def send(action: dict[str, str], *, what: str, refusal_ok: bool) -> None:
        assert what  # every action is named for the log
        sent.append((action, refusal_ok))

    services: list[AcdService] = []

    def queue_of(call_id: str) -> str | None:
        facts = services[0].calls.get(call_id)
        return facts.queue if facts is not None else None

    effects = SwitchEffects(
        send=send,
        calls=view,
        acd=acd,
        agent_queues=agent_queues if agent_queues is not None else {a: (QUEUE,) for a in agents},
        queue_of=queue_of,
        clock=lambda: now[0],
        connected=lambda: link["up"],
        engine_grace_s=GRACE_S,
        call_later=timers.call_later,
    )
    service = AcdService(
        acd=acd,
        tracker=ServiceLevelTracker(KpiSettings()),
        model=view,
        effects=effects,
        sink=lambda event: None,
        agent_queues=agent_queues if agent_queues is not None else {a: (QUEUE,) for a in agents},
    )
    services.append(service)
    for n, agent in enumerate(login):
        service.login(agent, float(n))
    sent.clear()
    return Rig(view, acd, service, effects, timers, sent, link, now)


# -- connect: the deferred Redirect ---------------------------------------------------


def test_a_caller_on_hold_is_redirected_to_its_agent_at_once() -> None:
    r = rig(login=("1001",))
    r.caller_waits("c1", on_hold=True)
    assert r.acd.agents["1001"].call_id == "c1"
    assert r.sent == [(to_agent("c1", "1001"), False)]
    assert r.timers.started == []


def test_a_caller_between_dialplan_steps_is_redirected_when_its_music_starts() -> None:
    r = rig(login=("1001",))
    r.caller_waits("c1")
    assert r.sent == []
    [timer] = r.timers.pending
    assert timer.delay == DEFER_CAP_S
    r.effects.entered_hold(uniqueid("c1"))
    assert r.actions == [to_agent("c1", "1001")]
    assert timer.cancelled
    r.timers.fire_pending()
    assert r.actions == [to_agent("c1", "1001")]  # sent once


def test_a_deferred_redirect_is_sent_when_the_cap_runs_out() -> None:
    r = rig(login=("1001",))
    r.caller_waits("c1")
    r.timers.fire_pending()
    assert r.actions == [to_agent("c1", "1001")]
    r.effects.entered_hold(uniqueid("c1"))  # the music after all: nothing more to send
    assert r.actions == [to_agent("c1", "1001")]


def test_music_that_stopped_defers_the_next_redirect() -> None:
    r = rig(login=("1001",))
    r.effects.entered_hold(uniqueid("c1"))
    r.effects.left_hold(uniqueid("c1"))
    r.caller_waits("c1")
    assert r.sent == []
    assert len(r.timers.pending) == 1


def test_no_redirect_when_the_acd_changed_its_mind_meanwhile() -> None:
    r = rig(login=("1001",))
    r.caller_waits("c1")
    r.service.logout("1001", 11.0)  # the reserved agent leaves; nobody else is logged in
    assert r.acd.agents["1001"].call_id is None
    r.sent.clear()
    r.timers.fire_pending()
    assert r.sent == []


def test_an_offer_to_another_agent_replaces_the_deferred_one() -> None:
    r = rig(login=("1001", "1002"))
    r.caller_waits("c1")
    r.service.logout("1001", 11.0)  # the call goes to 1002, deferred again
    assert r.acd.agents["1002"].call_id == "c1"
    r.sent.clear()
    first, second = r.timers.started
    assert first.cancelled and not second.cancelled
    r.effects.entered_hold(uniqueid("c1"))
    assert r.actions == [to_agent("c1", "1002")]


def test_a_hangup_drops_the_deferred_redirect() -> None:
    r = rig(login=("1001",))
    r.caller_waits("c1")
    [timer] = r.timers.pending
    r.effects.left_hold(uniqueid("c1"), hung_up=True)
    assert timer.cancelled
    r.effects.entered_hold(uniqueid("c1"))
    timer.callback()  # a timer that fires anyway finds nothing to send
    assert r.sent == []


def test_close_cancels_every_deferred_redirect() -> None:
    r = rig(login=("1001", "1002"))
    r.caller_waits("c1")
    r.caller_waits("c2")
    assert len(r.timers.pending) == 2
    r.effects.close()
    assert r.timers.pending == []
    r.effects.entered_hold(uniqueid("c1"))
    assert r.sent == []


def test_connect_without_a_caller_channel_sends_nothing() -> None:
    r = rig(login=("1001",))
    r.effects.connect("nobody", "1001")
    r.add_call("c1", CallPhase.QUEUED)
    del r.view.channels[uniqueid("c1")]
    r.effects.connect("c1", "1001")
    assert r.sent == [] and r.timers.started == []


# -- callback and overflow ------------------------------------------------------------


def test_offer_callback_redirects_the_caller_to_the_callback_context() -> None:
    r = rig()
    r.add_call("c1", CallPhase.QUEUED)
    r.effects.offer_callback("c1")
    r.effects.offer_callback("gone")
    assert r.sent == [
        (
            {
                "Action": "Redirect",
                "Channel": channel("c1"),
                "Context": "hotline-callback",
                "Exten": "s",
                "Priority": "1",
            },
            False,
        )
    ]


def test_move_queue_sets_the_callers_queue_variable() -> None:
    r = rig()
    r.add_call("c1", CallPhase.QUEUED)
    r.effects.move_queue("c1", "q2")
    r.effects.move_queue("gone", "q2")
    assert r.sent == [(setvar("c1", "HOTLINE_QUEUE", "q2"), False)]


# -- app_queue member sync ------------------------------------------------------------


def test_a_member_is_added_then_paused_in_each_of_its_queues() -> None:
    r = rig(agent_queues={"1001": (QUEUE, "q2")})
    r.effects.agent_in_fallback_queues("1001", member=True, paused=True, reason="lunch")
    assert r.sent == [
        (queue_add("1001", QUEUE, "true"), True),
        (queue_pause("1001", QUEUE, "true", "lunch"), False),
        (queue_add("1001", "q2", "true"), True),
        (queue_pause("1001", "q2", "true", "lunch"), False),
    ]


def test_a_logged_out_agent_is_removed_from_each_of_its_queues() -> None:
    r = rig(agent_queues={"1001": (QUEUE, "q2")})
    r.effects.agent_in_fallback_queues("1001", member=False, paused=False, reason=None)
    r.effects.agent_in_fallback_queues("1002", member=False, paused=False, reason=None)
    assert r.sent == [(queue_remove("1001", QUEUE), True), (queue_remove("1001", "q2"), True)]


def test_the_acd_service_drives_member_sync_on_login_pause_resume_logout() -> None:
    r = rig()
    r.service.login("1001", 1.0)
    r.service.pause("1001", "training", 2.0)
    r.service.resume("1001", 3.0)
    r.service.logout("1001", 4.0)
    assert r.actions == [
        queue_add("1001", QUEUE, "false"),
        queue_pause("1001", QUEUE, "false"),
        queue_add("1001", QUEUE, "true"),
        queue_pause("1001", QUEUE, "true", "training"),
        queue_add("1001", QUEUE, "false"),
        queue_pause("1001", QUEUE, "false"),
        queue_remove("1001", QUEUE),
    ]


def test_nothing_is_sent_while_the_link_is_down() -> None:
    r = rig(login=("1001",))
    r.caller_waits("c2")
    r.sent.clear()
    r.link["up"] = False
    r.effects.agent_in_fallback_queues("1001", member=True, paused=False, reason=None)
    r.effects.sync_fallback_members()
    r.effects.renew_leases()
    assert r.sent == []


def test_sync_fallback_members_states_every_agents_membership() -> None:
    r = rig(("1001", "1002", "1003"), login=("1001", "1002"))
    r.service.pause("1002", "training", 5.0)
    r.sent.clear()
    r.effects.sync_fallback_members()
    assert r.sent == [
        (queue_add("1001", QUEUE, "false"), True),
        (queue_pause("1001", QUEUE, "false"), False),
        (queue_add("1002", QUEUE, "true"), True),
        (queue_pause("1002", QUEUE, "true", "training"), False),
        (queue_remove("1003", QUEUE), True),
    ]


# -- leases and announcements ---------------------------------------------------------


def busy_but_serving(r: Rig, agent: str) -> None:
    """Logged in and counted for the estimated wait, but offered nothing."""
    r.service.login(agent, 1.0)
    r.service.agent_busy_changed(agent, True, 2.0)
    r.sent.clear()


def test_renewal_extends_each_waiting_callers_lease_and_announces_its_place() -> None:
    r = rig()
    busy_but_serving(r, "1001")  # one serving agent, AHT 120 s: 2 minutes a place
    r.caller_waits("c1", 10.0)
    r.caller_waits("c2", 11.0)
    r.add_call("c3", CallPhase.QUEUED, routed_by="app_queue")
    r.add_call("c4", CallPhase.CONNECTED)
    r.effects.renew_leases()
    lease = str(int(1000.4 + GRACE_S))
    assert r.sent == [
        (setvar("c1", "HOTLINE_LEASE_UNTIL", lease), False),
        (setvar("c1", "HOTLINE_POSITION", "1,2"), False),
        (setvar("c2", "HOTLINE_LEASE_UNTIL", lease), False),
        (setvar("c2", "HOTLINE_POSITION", "2,4"), False),
    ]


def test_an_unchanged_announcement_is_not_repeated_and_a_changed_one_is() -> None:
    r = rig()
    busy_but_serving(r, "1001")
    r.caller_waits("c1", 10.0)
    r.caller_waits("c2", 11.0)
    r.effects.renew_leases()
    r.sent.clear()
    r.now[0] = 1005.0
    r.effects.renew_leases()
    assert r.actions == [
        setvar("c1", "HOTLINE_LEASE_UNTIL", "1035"),
        setvar("c2", "HOTLINE_LEASE_UNTIL", "1035"),
    ]
    r.sent.clear()
    r.caller_hangs_up("c1", 20.0)
    r.effects.renew_leases()
    assert r.actions == [
        setvar("c2", "HOTLINE_LEASE_UNTIL", "1035"),
        setvar("c2", "HOTLINE_POSITION", "1,2"),
    ]


def test_nobody_serving_announces_the_position_without_a_wait() -> None:
    r = rig()
    r.caller_waits("c1")
    r.effects.renew_leases()
    assert r.actions == [
        setvar("c1", "HOTLINE_LEASE_UNTIL", "1030"),
        setvar("c1", "HOTLINE_POSITION", "1,0"),
    ]


def test_a_call_the_acd_does_not_route_gets_its_lease_but_no_announcement() -> None:
    r = rig()
    r.caller_waits("c1", queue="not-configured")
    r.effects.renew_leases()
    assert r.actions == [setvar("c1", "HOTLINE_LEASE_UNTIL", "1030")]


def test_the_announcement_of_an_ended_call_is_forgotten() -> None:
    r = rig()
    r.caller_waits("c1")
    r.effects.renew_leases()
    r.caller_hangs_up("c1", 20.0)
    r.effects.renew_leases()
    r.sent.clear()
    # The same id waiting again (as an adopted call would) is told its place anew.
    r.caller_waits("c1", 30.0)
    r.effects.renew_leases()
    assert r.actions == [
        setvar("c1", "HOTLINE_LEASE_UNTIL", "1030"),
        setvar("c1", "HOTLINE_POSITION", "1,0"),
    ]


# -- presence -------------------------------------------------------------------------


def test_presence_routes_but_does_not_touch_app_queue_membership() -> None:
    """An unregistered phone keeps its agent's state (presence is not a
    pause), so no member sync is sent; the agent is only not offered calls
    until the phone registers again, which routes the waiting caller."""
    r = rig(login=("1001",))
    r.service.presence_changed("1001", False, 5.0)
    assert r.acd.agents["1001"].state is AgentState.AVAILABLE
    assert r.acd.agents["1001"].offline
    r.caller_waits("c1", 10.0, on_hold=True)
    assert r.sent == []
    r.service.presence_changed("1001", True, 12.0)
    assert r.sent == [(to_agent("c1", "1001"), False)]
