"""Resync against a fake Asterisk: what happens while the snapshot is taken."""

from __future__ import annotations

from dataclasses import replace

from cti.calls import CallArrived, CallChange, CallLost, CallPhase
from cti.config import AmiConfig, EngineConfig
from cti.runtime import build_runtime

try:
    from .ami_fake_server import FakeAMIServer, block
except ImportError:  # run without the package __init__
    from ami_fake_server import FakeAMIServer, block


def _newchannel(uniqueid: str, number: str, name: str) -> bytes:
    return block(
        "Event: Newchannel",
        "Timestamp: 1795240000.100000",
        f"Channel: PJSIP/trunk-{int(uniqueid.rsplit('.', 1)[1]):08x}",
        "ChannelState: 4",
        "ChannelStateDesc: Ring",
        f"CallerIDNum: {number}",
        f"CallerIDName: {name}",
        "Context: hotline-inbound",
        "Exten: 12345",
        f"Uniqueid: {uniqueid}",
        f"Linkedid: {uniqueid}",
    )


async def test_a_call_arriving_during_resync_is_kept_not_declared_lost():
    async with FakeAMIServer(secret="pw") as server:
        server.silent_actions = {"coreshowchannels"}  # we answer it by hand, late
        config = replace(
            EngineConfig(), ami=AmiConfig(host="127.0.0.1", port=server.port, secret="pw")
        )
        runtime = build_runtime(config, serve_http=False)
        engine = runtime.engine
        seen: list[CallChange] = []
        runtime.bus.subscribe(CallChange, seen.append, name="test")
        async with runtime:
            await server.wait_for_actions("CoreShowChannels")
            request = server.received("CoreShowChannels")[0]
            # The snapshot is taken now (empty); then a citizen's call arrives,
            # and only then does the snapshot reply reach the engine.
            aid = f"ActionID: {request.action_id}"
            await server.current.push(
                _newchannel("hotline-1795240000.7", "13800138000", "新来电")
                + block("Response: Success", aid, "EventList: start")
                + block(
                    "Event: CoreShowChannelsComplete", aid, "EventList: Complete", "ListItems: 0"
                )
            )
            report = await engine.wait_resynced(timeout_s=5)
    assert report.channels == 0
    assert not [c for c in seen if isinstance(c, CallLost)]
    arrived = [c for c in seen if isinstance(c, CallArrived)]
    assert [(a.call_id, a.caller_name, a.line) for a in arrived] == [
        ("hotline-1795240000.7", "新来电", "12345")
    ]
    assert engine.model.calls["hotline-1795240000.7"].phase is CallPhase.ARRIVED


async def test_a_call_gone_while_disconnected_is_reported_lost():
    async with FakeAMIServer(secret="pw") as server:
        config = replace(
            EngineConfig(), ami=AmiConfig(host="127.0.0.1", port=server.port, secret="pw")
        )
        runtime = build_runtime(config, serve_http=False)
        engine = runtime.engine
        seen: list[CallChange] = []
        runtime.bus.subscribe(CallChange, seen.append, name="test")
        async with runtime:
            await engine.wait_resynced(timeout_s=5)
            await server.current.push(_newchannel("hotline-1795240000.9", "13900000000", "甲"))
            server.current.drop()
            report = await engine.wait_resynced(count=2, timeout_s=10)
    assert report.lost == 1
    assert [c.call_id for c in seen if isinstance(c, CallLost)] == ["hotline-1795240000.9"]
