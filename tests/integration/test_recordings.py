"""Recordings on real calls: a sipp citizen calls, a pyVoIP robot answers,
Asterisk's MixMonitor records, the engine catalogues, a worker process
repairs, transcodes, checks, hashes and stores. Checked in the catalog, the
store and the files themselves; also across a blind transfer and a
three-way call, for an unanswered call, and after Asterisk is killed
mid-call."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import wave
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from cti.calls import (
    AgentConnected,
    AgentLeft,
    AgentRinging,
    CallAnswered,
    CallEnded,
    CallLost,
)
from cti.control.core import Target, TargetKind
from cti.stack.private import engine_config_for
from recording.catalog import SearchFilter
from recording.transcode import decode_pcm, probe_duration
from softphone_bridge.robot_agent import AgentBehaviour
from softphone_bridge.sipp_citizen import CitizenCall
from softphone_bridge.sipp_far_end import SippFarEnd

from .ami_watch import AmiWatch
from .conftest import ChangeLog, cancel_and_wait, running

pytestmark = [pytest.mark.integration]

LEG_SUFFIXES = ("-caller.wav", "-agents.wav")


async def until_row(fetch: Callable[[], Awaitable[Any]], timeout_s: float = 40.0) -> Any:
    """The catalog row a worker process writes: polled (no event crosses
    the process boundary to await), bounded in time."""
    async with asyncio.timeout(timeout_s):
        while not (row := await fetch()):
            await asyncio.sleep(0.1)
    return row


async def stored(eng: Any, call_id: str, timeout_s: float = 40.0) -> dict[str, Any]:
    catalog = eng.runtime.services["recording"].catalog

    async def fetch() -> dict[str, Any] | None:
        row = await catalog.by_call(call_id)
        return row if row is not None and row["state"] == "stored" else None

    return await until_row(fetch, timeout_s)


def store_root(eng: Any) -> Path:
    return Path(eng.config.data_dir) / "recordings"


def raw_files(info: Any) -> list[Path]:
    return sorted(p for p in info.recording_dir.glob("*.wav"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_stored(eng: Any, row: dict[str, Any]) -> Path:
    """The stored file and its legs exist and verify against the catalog."""
    root = store_root(eng)
    mix = root / row["storage_key"]
    legs = root / row["legs_key"]
    assert mix.is_file() and legs.is_file()
    assert sha256(mix) == row["sha256"]
    assert sha256(legs) == row["legs_sha256"]
    assert mix.stat().st_size == row["size_bytes"]
    assert row["codec"] == "opus" and mix.suffix == ".opus"
    return mix


async def _answered(eng, changes, citizens, *, hold_s: float, number: str = "13800138000"):
    for agent in ("1002", "1003"):
        if agent in eng.acd.agents:
            eng.logout(agent)
    task = asyncio.create_task(citizens.call(CitizenCall("12345", number, "张三", hold_s)))
    answered = (
        await changes.wait_for(lambda c: isinstance(c, CallAnswered) and c.agent == "1001")
    )[0]
    return task, answered


@pytest.mark.stack(agents=2)
async def test_a_call_gives_one_catalogued_verified_recording(
    engine, robots, citizens, stack
) -> None:
    eng, changes = engine
    _, info = stack
    task, answered = await _answered(eng, changes, citizens, hold_s=6.0)
    await task
    ended = (await changes.wait_for(lambda c: isinstance(c, CallEnded)))[0]
    row = await stored(eng, answered.call_id)

    assert row["call_id"] == answered.call_id == row["linkedid"]
    assert row["line"] == "12345" and row["queue"] == "12345-general"
    assert row["caller_number"] == "13800138000"
    assert row["agents"] == ["1001"]
    (span,) = row["agent_spans"]
    assert span["agent"] == "1001"
    assert span["from"] == pytest.approx(answered.at, abs=0.01)
    assert span["to"] == pytest.approx(ended.at, abs=0.01)
    assert row["started_at"].timestamp() == pytest.approx(answered.at, abs=0.01)
    assert row["ended_at"].timestamp() == pytest.approx(ended.at, abs=0.01)
    talk_s = ended.at - answered.at
    mix = check_stored(eng, row)
    assert row["duration_s"] == pytest.approx(talk_s, abs=1.0)
    assert probe_duration(mix) == pytest.approx(talk_s, abs=1.0)
    assert (row["retain_until"] - row["started_at"]).days == 365
    assert row["legal_hold"] is False and row["repaired"] is False
    # The legs: two channels of the same length as the mix.
    legs = store_root(eng) / row["legs_key"]
    caller = decode_pcm(legs, sample_rate=8000, channel=0)
    agents = decode_pcm(legs, sample_rate=8000, channel=1)
    assert len(caller) / 16000 == pytest.approx(talk_s, abs=1.0)
    assert len(agents) / 16000 == pytest.approx(talk_s, abs=1.0)
    checks = row["checks"]
    assert checks["duration_s"] == pytest.approx(talk_s, abs=1.0)
    assert checks["over_target"] is False
    # Raw files go once the stored copy verified.
    assert raw_files(info) == []
    assert len(list(store_root(eng).rglob("*.opus"))) == 2
    # A work order made from the call is listed on its recording.
    order = await eng.runtime.services["workorders"].draft_from_call(answered.call_id, "1001")
    catalog = eng.runtime.services["recording"].catalog
    assert (await catalog.by_call(answered.call_id))["work_order_ids"] == [order.order_no]
    total, found = await catalog.search(SearchFilter(work_order=order.order_no))
    assert total == 1 and found[0]["call_id"] == answered.call_id


@pytest.mark.stack(agents=2)
@pytest.mark.robots(a1001=AgentBehaviour(answers=False))
async def test_an_unanswered_call_leaves_nothing(engine, robots, citizens, stack) -> None:
    """The caller rings an agent who does not answer, then hangs up: the
    recording MixMonitor started for the ring is deleted, nothing catalogued."""
    eng, changes = engine
    _, info = stack
    eng.logout("1002")
    task = asyncio.create_task(citizens.call(CitizenCall("12345", "13900001111", "李四", 6.0)))
    rang = (await changes.wait_for(lambda c: isinstance(c, AgentRinging)))[0]
    files = eng.runtime.services["recording"].core.files_of(rang.call_id)
    assert files is not None, "MixMonitor started before the agent rang"
    await task
    ended = (await changes.wait_for(lambda c: isinstance(c, CallEnded)))[0]
    assert ended.abandoned and ended.call_id == rang.call_id
    service = eng.runtime.services["recording"]
    await service.idle()
    assert await service.catalog.by_call(ended.call_id) is None
    assert raw_files(info) == []
    assert await service.pool.fetchval("SELECT count(*) FROM recording_job") == 0
    assert not list(store_root(eng).rglob("*.opus"))


@pytest.mark.stack(agents=3)
async def test_blind_transfer_then_three_way_call_is_still_one_recording(
    engine, robots, citizens, stack, tmp_path
) -> None:
    eng, changes = engine
    _, info = stack
    async with SippFarEnd(*info.trunk_peer, tmp_path / "far"):
        task, answered = await _answered(eng, changes, citizens, hold_s=60.0)
        try:
            eng.login("1002")
            eng.control.transfer("1001", Target(TargetKind.AGENT, "1002"))
            await changes.wait_for(lambda c: isinstance(c, AgentConnected) and c.agent == "1002")
            await changes.wait_for(lambda c: isinstance(c, AgentLeft) and c.agent == "1001")
            await asyncio.sleep(1.0)  # a second of talk with 1002 in the recording
            eng.control.add_party("1002", Target(TargetKind.EXTERNAL, "88990011"))
            await AmiWatch(eng.link).until(lambda: len(_caller_bridge(eng, answered.call_id)) == 3)
            await asyncio.sleep(1.0)  # a second of the three-way call in the recording
            assert [p.name for p in raw_files(info)] == sorted(
                [f"{answered.call_id}.wav"] + [f"{answered.call_id}{s}" for s in LEG_SUFFIXES]
            )
            caller = eng.model.channels[eng.model.calls[answered.call_id].caller_channel].name
            await eng.link.send_action({"Action": "Hangup", "Channel": caller})
            ended = (await changes.wait_for(lambda c: isinstance(c, CallEnded)))[0]
        finally:
            await cancel_and_wait(task)
    row = await stored(eng, answered.call_id)
    check_stored(eng, row)
    assert {"1001", "1002"} <= set(row["agents"])
    spans = {s["agent"]: s for s in row["agent_spans"]}
    assert spans["1001"]["to"] <= spans["1002"]["from"] + 1.0
    catalog = eng.runtime.services["recording"].catalog
    total, rows = await catalog.search(SearchFilter(agent="1002"))
    assert [r["call_id"] for r in rows] == [answered.call_id] and total == 1
    # One continuous file from the first answer to the hangup: the
    # transfer's re-ring and the three-way call are in it.
    assert row["duration_s"] == pytest.approx(ended.at - answered.at, abs=1.0)
    assert probe_duration(store_root(eng) / row["storage_key"]) == pytest.approx(
        ended.at - answered.at, abs=1.0
    )
    assert len(list(store_root(eng).rglob("*.opus"))) == 2


def _caller_bridge(eng: Any, call_id: str) -> list[str]:
    """The channels sharing the caller's bridge (the caller's own included)."""
    call = eng.model.calls.get(call_id)
    caller = eng.model.channels.get(call.caller_channel) if call else None
    bridge = eng.model.bridges.get(caller.bridge_id) if caller and caller.bridge_id else None
    return sorted(bridge.channels) if bridge else []


@pytest.mark.stack(agents=2)
async def test_asterisk_killed_mid_call_the_recording_is_repaired_and_stored(
    engine, robots, citizens, stack
) -> None:
    private, info = stack
    eng, changes = engine
    task, answered = await _answered(eng, changes, citizens, hold_s=90.0)
    files = eng.runtime.services["recording"].core.files_of(answered.call_id)
    mix = Path(files.mix)
    # Let 3 s of the answered call reach the file, then crash the switch.
    wanted = 44 + int((answered.at - files.started_at + 3.0) * 16000)
    async with asyncio.timeout(15):
        while not mix.exists() or mix.stat().st_size < wanted:
            await asyncio.sleep(0.1)  # the file is all there is to watch
    private.asterisk.kill()
    await private.asterisk.process.wait()
    on_disk = mix.stat().st_size
    assert mix.read_bytes()[40:44] == b"\0\0\0\0", "format_wav leaves the size at zero"
    await cancel_and_wait(task)
    await private.asterisk.start()
    lost = (await changes.wait_for(lambda c: isinstance(c, CallLost), timeout_s=60))[0]
    assert lost.call_id == answered.call_id
    row = await stored(eng, answered.call_id, timeout_s=60)
    stored_mix = check_stored(eng, row)
    # What was recorded from the answer on (the ring before it is cut).
    before_answer_s = (row["started_at"] - row["file_started_at"]).total_seconds()
    assert 0 <= before_answer_s < 10
    recorded_s = (on_disk - 44) / 16000 - before_answer_s
    assert row["repaired"] is True
    assert row["duration_s"] == pytest.approx(recorded_s, abs=0.05)
    assert probe_duration(stored_mix) == pytest.approx(recorded_s, abs=1.0)
    assert recorded_s >= 3.0
    assert not mix.exists()


@pytest.mark.stack(agents=2)
async def test_an_engine_restart_mid_call_loses_no_recording(robots, citizens, stack) -> None:
    """The engine stops during an answered call; while it is away a call it
    never hears of leaves its raw files (as on the dialplan's fallback). The
    next engine adopts the live call from the switch's channel variables and
    catalogues the unreported files: both end up stored."""
    private, info = stack
    config = engine_config_for(private.config, info)
    async with running(config, serve_http=False) as first:
        log = ChangeLog()
        first.add_listener(log)
        first.login("1001")
        task = asyncio.create_task(
            citizens.call(CitizenCall("12345", "13800138000", "张三", hold_s=12.0))
        )
        answered = (await log.wait_for(lambda c: isinstance(c, CallAnswered)))[0]
        service = first.runtime.services["recording"]
        await service.idle()
        row = await service.catalog.by_call(answered.call_id)
        assert row["state"] == "recording"
    # The engine is away. A call it never sees leaves its files behind.
    orphan = "1796000000.77"
    for suffix in (".wav", *LEG_SUFFIXES):
        path = info.recording_dir / f"{orphan}{suffix}"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
            w.writeframes(bytes(16000 * 4))  # 4 s
        os.utime(path, (time.time() - 120, time.time() - 120))
    try:
        async with running(config, serve_http=False) as second:
            log = ChangeLog()
            second.add_listener(log)  # 1001 is restored from the event log, on the call
            service = second.runtime.services["recording"]
            await task
            await log.wait_for(lambda c: isinstance(c, CallEnded))
            row = await stored(second, answered.call_id)
            assert row["agents"] == ["1001"]
            assert row["started_at"].timestamp() == pytest.approx(answered.at, abs=1.0)
            check_stored(second, row)
            recovered = await stored(second, orphan)
            assert recovered["duration_s"] == pytest.approx(4.0, abs=0.01)
            assert recovered["caller_number"] == "" and recovered["agents"] == []
            check_stored(second, recovered)
    finally:
        await cancel_and_wait(task)
