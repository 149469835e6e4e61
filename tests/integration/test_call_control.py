"""Call control on real calls: hold and resume, blind transfers (to an agent,
a queue, a mobile phone through the trunk), attended transfer (completed and
cancelled), a three-way call the agent leaves, and transfers nobody answers
coming back. sipp citizens call in, pyVoIP robots are the agents, a sipp UAS
is the far end of the trunk; every step is checked in Asterisk's own channel
list, in the ACD, and in the call's single recording, which must keep growing
after each move."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from acd.sla import TODAY
from cti.calls import (
    AgentConnected,
    AgentLeft,
    AgentRinging,
    CallAnswered,
    CallEnded,
    CallTransferred,
)
from cti.control.config import ControlConfig
from cti.control.core import ControlError, Target, TargetKind
from cti.runtime import build_runtime
from cti.stack.private import engine_config_for
from softphone_bridge.sipp_citizen import CitizenCall
from softphone_bridge.sipp_far_end import SippFarEnd

from .ami_watch import AmiWatch
from .conftest import ChangeLog, EngineView, cancel_and_wait, running

pytestmark = [pytest.mark.integration]

WAV_BYTES_PER_S = 16_000  # MixMonitor's .wav: 8 kHz, 16-bit, mono


async def _channels(eng) -> dict[str, tuple[str, str]]:
    """Asterisk's own view: channel name -> (application, data)."""
    reply = await eng.link.send_action({"Action": "CoreShowChannels"})
    return {
        item["Channel"]: (item.get("Application", ""), item.get("ApplicationData", ""))
        for item in reply
        if item.get("Channel")
    }


def _by_endpoint(channels: dict[str, tuple[str, str]], prefix: str) -> list[tuple[str, str]]:
    return [app for name, app in sorted(channels.items()) if name.startswith(prefix)]


def _only_call(eng):
    (call,) = eng.model.calls.values()
    return call


def _caller_bridge(eng, call) -> list[str]:
    """Endpoints sharing the caller's bridge, the caller's own included, sorted."""
    caller = eng.model.channels.get(call.caller_channel)
    if caller is None or caller.bridge_id is None:
        return []
    bridge = eng.model.bridges.get(caller.bridge_id)
    if bridge is None:
        return []
    return sorted(
        eng.model.channels[u].endpoint for u in bridge.channels if u in eng.model.channels
    )


def _on_hold(eng, call) -> bool:
    """The caller alone in the call's conference (not merely alone for a
    moment in the bridge it is leaving)."""
    caller = eng.model.channels.get(call.caller_channel)
    return (
        caller is not None
        and caller.context == "hotline-conference"
        and _caller_bridge(eng, call) == ["trunk"]
    )


def _has_channel(eng, endpoint: str) -> bool:
    return any(ch.endpoint == endpoint for ch in eng.model.channels.values())


def _recording(info, call_id: str) -> Path:
    files = sorted(
        f
        for f in info.recording_dir.glob("*.wav")
        if not f.name.endswith(("-caller.wav", "-agents.wav"))  # the two directions
    )
    assert [f.name for f in files] == [f"{call_id}.wav"], "one recording per call"
    return files[0]


async def _grows(path: Path, size: int, *, seconds: float, timeout_s: float = 15.0) -> int:
    """Until the recording holds *seconds* more audio than *size* bytes. The
    file is all there is to watch (Asterisk reports no progress), so it is
    polled."""
    target = size + int(seconds * WAV_BYTES_PER_S)
    async with asyncio.timeout(timeout_s):
        while (now := path.stat().st_size) < target:
            await asyncio.sleep(0.1)
    return now


@pytest.fixture
async def far_end(stack, tmp_path):
    _, info = stack
    async with SippFarEnd(*info.trunk_peer, tmp_path / "far") as far:
        yield far


@pytest.fixture
async def silent_far_end(stack, tmp_path):
    _, info = stack
    async with SippFarEnd(*info.trunk_peer, tmp_path / "far", answers=False) as far:
        yield far


async def _answered_by_1001(eng, changes, citizens, hold_s: float = 60.0):
    """A citizen's call answered by 1001 (the only agent logged in), its two
    legs bridged; returns the citizen's task, the call and an AmiWatch."""
    eng.logout("1002")
    eng.logout("1003")
    watch = AmiWatch(eng.link)
    task = asyncio.create_task(citizens.call(CitizenCall("12345", "13800138000", "张三", hold_s)))
    await changes.wait_for(lambda c: isinstance(c, CallAnswered) and c.agent == "1001")
    call = _only_call(eng)
    await watch.until(lambda: _caller_bridge(eng, call) == ["1001", "trunk"])
    return task, call, watch


@pytest.mark.stack(agents=3)
async def test_hold_resume_then_three_way_call_survives_the_agent_leaving(
    engine, robots, citizens, stack, far_end
) -> None:
    eng, changes = engine
    _, info = stack
    task, call, watch = await _answered_by_1001(eng, changes, citizens)
    try:
        wav = _recording(info, call.call_id)
        caller_name = eng.model.channels[call.caller_channel].name

        eng.control.hold("1001")
        await watch.until(lambda: _on_hold(eng, call))
        now = await _channels(eng)
        assert _by_endpoint(now, "PJSIP/trunk") == [("ConfBridge", call.call_id)]
        assert _by_endpoint(now, "PJSIP/1001") == [("Wait", "3600")]
        assert eng.acd.agents["1001"].state.name == "ON_CALL"  # a hold is still the call
        with pytest.raises(ControlError, match="already on hold"):
            eng.control.hold("1001")

        eng.control.resume("1001")
        await watch.until(lambda: _caller_bridge(eng, call) == ["1001", "trunk"])
        size = await _grows(wav, wav.stat().st_size, seconds=1.0)

        eng.control.add_party("1001", Target(TargetKind.EXTERNAL, "88990011"))
        await watch.until(lambda: _caller_bridge(eng, call) == ["1001", "trunk", "trunk"])
        now = await _channels(eng)
        assert [app for app in now.values()] == [("ConfBridge", call.call_id)] * 3
        assert far_end.called() == ["88990011"]

        eng.control.leave("1001")
        await changes.wait_for(lambda c: isinstance(c, AgentLeft) and c.agent == "1001")
        await watch.until(lambda: not _has_channel(eng, "1001"))
        assert _caller_bridge(eng, call) == ["trunk", "trunk"]
        now = await _channels(eng)
        assert sorted(now.values()) == [("ConfBridge", call.call_id)] * 2  # caller + third party
        assert eng.acd.agents["1001"].state.name in ("WRAP_UP", "AVAILABLE")
        assert eng.acd.agents["1001"].call_id in (None, call.call_id)
        await _grows(wav, size, seconds=2.0)  # still recording, with 1001 gone

        # The third party hangs up: the caller, alone, goes on to the after-call
        # step (goodbye, hang-up) instead of waiting in the conference.
        (party,) = [n for n in now if n.startswith("PJSIP/trunk") and n != caller_name]
        await eng.link.send_action({"Action": "Hangup", "Channel": party})
        ended = await changes.wait_for(lambda c: isinstance(c, CallEnded), timeout_s=20)
        assert ended[0].call_id == call.call_id and not ended[0].abandoned
    finally:
        await cancel_and_wait(task)


@pytest.mark.stack(agents=3)
async def test_blind_transfer_to_an_agent_rings_through_the_acd(
    engine, robots, citizens, stack
) -> None:
    eng, changes = engine
    _, info = stack
    task, call, watch = await _answered_by_1001(eng, changes, citizens)
    try:
        eng.login("1002")
        with pytest.raises(ControlError, match="not available"):
            eng.control.transfer("1001", Target(TargetKind.AGENT, "1003"))  # logged out
        wav = _recording(info, call.call_id)
        size = wav.stat().st_size

        eng.control.transfer("1001", Target(TargetKind.AGENT, "1002"))
        await changes.wait_for(lambda c: isinstance(c, AgentConnected) and c.agent == "1002")
        assert changes.matching(lambda c: isinstance(c, CallTransferred)) == [
            CallTransferred(
                call.call_id,
                pytest.approx(eng.clock(), abs=30),
                from_agent="1001",
                target="1002",
                kind="blind",
            )
        ]
        await watch.until(lambda: _caller_bridge(eng, call) == ["1002", "trunk"])
        assert eng.acd.agents["1002"].state.name == "ON_CALL"
        assert eng.acd.agents["1002"].call_id == call.call_id
        assert eng.acd.agents["1001"].call_id in (None, call.call_id)
        assert eng.acd.agents["1001"].state.name in ("WRAP_UP", "AVAILABLE")
        # One answer for the KPIs, whatever the transfers.
        assert len(changes.matching(lambda c: isinstance(c, CallAnswered))) == 1
        await _grows(wav, size, seconds=1.5)
        assert _recording(info, call.call_id) == wav
    finally:
        await cancel_and_wait(task)


@pytest.mark.stack(agents=3)
async def test_blind_transfer_to_a_queue(engine, robots, citizens, stack) -> None:
    eng, changes = engine
    task, call, watch = await _answered_by_1001(eng, changes, citizens)
    try:
        eng.login("1002")
        eng.control.transfer("1001", Target(TargetKind.QUEUE, "96181-general"))
        await changes.wait_for(lambda c: isinstance(c, AgentConnected) and c.agent == "1002")
        assert eng.model.calls[call.call_id].queue == "96181-general"
        assert call.queued_at == call.history[1][0]  # the 15 s clock kept its first start
    finally:
        await cancel_and_wait(task)


@pytest.mark.stack(agents=3, mobiles={"1001": "13900139000"})
async def test_transfer_to_the_agents_mobile_reaches_the_trunk(
    engine, robots, citizens, stack, far_end
) -> None:
    eng, changes = engine
    _, info = stack
    task, call, watch = await _answered_by_1001(eng, changes, citizens)
    try:
        wav = _recording(info, call.call_id)
        size = wav.stat().st_size
        eng.control.transfer("1001", Target(TargetKind.MOBILE))
        await watch.until(lambda: _caller_bridge(eng, call) == ["trunk", "trunk"])
        assert await far_end.wait_called() == ["13900139000"]
        now = await _channels(eng)
        assert _by_endpoint(now, "PJSIP/1001") == []
        assert len(_by_endpoint(now, "PJSIP/trunk")) == 2  # caller + the mobile leg
        await changes.wait_for(lambda c: isinstance(c, AgentLeft) and c.agent == "1001")
        await _grows(wav, size, seconds=1.5)
    finally:
        await cancel_and_wait(task)


@pytest.mark.stack(
    agents=3,
    sections={"control": ControlConfig(transfer_ring_s=3, city_center_number="12345000")},
)
async def test_unanswered_transfer_to_the_city_comes_back_to_the_queue(
    engine, robots, citizens, stack, silent_far_end
) -> None:
    eng, changes = engine
    task, call, watch = await _answered_by_1001(eng, changes, citizens)
    try:
        eng.login("1002")
        eng.pause("1002", "meeting")  # nobody free until the transfer has failed
        eng.control.transfer("1001", Target(TargetKind.CITY))
        assert await silent_far_end.wait_called() == ["12345000"]
        await changes.wait_for(lambda c: isinstance(c, AgentLeft) and c.agent == "1001")
        eng.resume("1002")
        # The ring times out after 3 s; the caller is queued again and routed.
        ring = await changes.wait_for(
            lambda c: (
                isinstance(c, AgentRinging)
                and c.agent in ("1001", "1002")
                and c.at > call.answered_at
            ),
            timeout_s=20,
        )
        assert ring
        await changes.wait_for(lambda c: isinstance(c, AgentConnected), timeout_s=20)
        assert len(changes.matching(lambda c: isinstance(c, CallAnswered))) == 1
        snapshot = eng.tracker.snapshot(now=eng.clock())
        assert snapshot["all"]["windows"][TODAY]["offered"] == 1  # not offered again
        assert snapshot["all"]["windows"][TODAY]["answered"] == 1
    finally:
        await cancel_and_wait(task)


@pytest.mark.stack(agents=3)
async def test_attended_transfer_cancel_then_complete(engine, robots, citizens, stack) -> None:
    eng, changes = engine
    _, info = stack
    task, call, watch = await _answered_by_1001(eng, changes, citizens)
    try:
        eng.login("1002")
        wav = _recording(info, call.call_id)

        # Consult 1002, then cancel: 1001 is back with the caller.
        eng.control.consult("1001", Target(TargetKind.AGENT, "1002"))
        await robots["1002"].next_event("answered", timeout_s=15)
        await watch.until(lambda: bool(call.consult_answered))
        assert _on_hold(eng, call)  # waiting in the conference, with music
        with pytest.raises(ControlError, match="consultation"):
            eng.control.transfer("1001", Target(TargetKind.QUEUE, "12345-general"))
        eng.control.cancel_consult("1001")
        await watch.until(lambda: _caller_bridge(eng, call) == ["1001", "trunk"])
        assert eng.control.state_of(call.call_id).consult is None
        assert not changes.matching(lambda c: isinstance(c, AgentConnected))
        await watch.until(
            lambda: (
                eng.acd.agents["1002"].state.name == "AVAILABLE"
                and not eng.acd.agents["1002"].busy_external
            )
        )

        # Consult again and complete: the caller ends up with 1002.
        eng.control.consult("1001", Target(TargetKind.AGENT, "1002"))
        await robots["1002"].next_event("answered", timeout_s=15)
        await watch.until(lambda: bool(call.consult_answered))
        size = wav.stat().st_size
        eng.control.complete_consult("1001")
        await changes.wait_for(lambda c: isinstance(c, AgentConnected) and c.agent == "1002")
        await changes.wait_for(lambda c: isinstance(c, AgentLeft) and c.agent == "1001")
        await watch.until(lambda: _caller_bridge(eng, call) == ["1002", "trunk"])
        now = await _channels(eng)
        assert _by_endpoint(now, "PJSIP/1001") == []
        assert eng.acd.agents["1002"].call_id == call.call_id
        transfers = changes.matching(lambda c: isinstance(c, CallTransferred))
        assert [(t.from_agent, t.target, t.kind) for t in transfers] == [
            ("1001", "1002", "attended")
        ]
        await _grows(wav, size, seconds=1.5)
    finally:
        await cancel_and_wait(task)


@pytest.mark.stack(agents=3, sections={"control": ControlConfig(transfer_ring_s=3)})
async def test_unanswered_consultation_returns_the_agent_to_the_caller(
    engine, robots, citizens, stack, silent_far_end
) -> None:
    eng, changes = engine
    task, call, watch = await _answered_by_1001(eng, changes, citizens)
    try:
        eng.control.consult("1001", Target(TargetKind.EXTERNAL, "01088888888"))
        assert await silent_far_end.wait_called() == ["01088888888"]
        await watch.until(lambda: _caller_bridge(eng, call) == ["1001", "trunk"], timeout_s=15)
        await watch.until(lambda: eng.control.state_of(call.call_id).consult is None)
        assert eng.acd.agents["1001"].state.name == "ON_CALL"

        # A three-way party who never answers: no party of the call, which goes on.
        eng.control.add_party("1001", Target(TargetKind.EXTERNAL, "88990022"))
        assert eng.control.state_of(call.call_id).as_dict()["ringing"] == ["88990022"]
        assert await silent_far_end.wait_called(2) == ["01088888888", "88990022"]
        await watch.until(lambda: not eng.control.state_of(call.call_id).ringing_parties)
        assert eng.control.state_of(call.call_id).parties == []
        assert _caller_bridge(eng, call) == ["1001", "trunk"]
        with pytest.raises(ControlError, match="no three-way call"):
            eng.control.leave("1001")
    finally:
        await cancel_and_wait(task)


@pytest.mark.stack(agents=3)
async def test_agent_hanging_up_on_hold_sends_the_caller_on(engine, robots, citizens) -> None:
    eng, changes = engine
    task, call, watch = await _answered_by_1001(eng, changes, citizens)
    try:
        eng.control.hold("1001")
        await watch.until(lambda: _on_hold(eng, call))
        leg = eng.model.connected_leg(call.call_id, "1001")
        await eng.link.send_action({"Action": "Hangup", "Channel": leg.name})
        # Alone in the conference for good: on to the after-call step, which ends the call.
        ended = await changes.wait_for(lambda c: isinstance(c, CallEnded), timeout_s=20)
        assert ended[0].call_id == call.call_id and not ended[0].abandoned
        assert eng.acd.agents["1001"].state.name in ("WRAP_UP", "AVAILABLE")
    finally:
        await cancel_and_wait(task)


@pytest.mark.stack(agents=3, sections={"control": ControlConfig(conference_max_s=4)})
async def test_the_dialplan_lets_a_caller_out_of_the_conference_by_itself(
    engine, robots, citizens
) -> None:
    """The conference's own deadline (for a dead engine): the caller on hold
    is let out after control.conference_max_s, and the agent's waiting leg is
    released with the call."""
    eng, changes = engine
    task, call, watch = await _answered_by_1001(eng, changes, citizens)
    try:
        eng.control.hold("1001")
        await watch.until(lambda: _on_hold(eng, call))
        ended = await changes.wait_for(lambda c: isinstance(c, CallEnded), timeout_s=20)
        assert ended[0].call_id == call.call_id
        await watch.until(lambda: not _has_channel(eng, "1001"))
        assert (await _channels(eng)) == {}
    finally:
        await cancel_and_wait(task)


@pytest.mark.stack(agents=3)
async def test_a_call_on_hold_survives_an_engine_restart(stack, robots, citizens) -> None:
    """The engine stops while a caller is on hold; the next engine finds the
    caller in its conference and the agent's leg waiting, restores the agent
    ON_CALL from the event log, and the agent can take the caller back."""
    private, info = stack
    config = engine_config_for(private.config, info)
    task = None
    try:
        first_runtime = build_runtime(config, serve_http=False)
        first = EngineView(first_runtime)
        changes = ChangeLog()
        first.add_listener(changes)
        async with first_runtime:
            await first.wait_resynced()
            first.login("1001")
            watch = AmiWatch(first.link)
            task = asyncio.create_task(
                citizens.call(CitizenCall("12345", "13800138000", "张三", 60.0))
            )
            await changes.wait_for(lambda c: isinstance(c, CallAnswered) and c.agent == "1001")
            call = _only_call(first)
            await watch.until(lambda: _caller_bridge(first, call) == ["1001", "trunk"])
            first.control.hold("1001")
            await watch.until(lambda: _on_hold(first, call))
        async with running(config, serve_http=False) as second:  # started and resynced
            assert second.acd.agents["1001"].state.name == "ON_CALL"
            assert second.acd.agents["1001"].call_id == call.call_id
            state = second.control.state_of(call.call_id)
            assert state is not None and state.held and state.in_conference
            watch = AmiWatch(second.link)
            again = second.model.calls[call.call_id]
            second.control.resume("1001")
            await watch.until(lambda: _caller_bridge(second, again) == ["1001", "trunk"])
    finally:
        if task is not None:
            await cancel_and_wait(task)
