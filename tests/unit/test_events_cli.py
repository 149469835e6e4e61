"""``hotline events`` on the hardened link: JSON per event, malformed input
skipped without losing its neighbours, and still printing after a reconnect.
"""

from __future__ import annotations

import asyncio
import json

from common.backoff import Backoff
from cti.events_cli import event_json, run_events

try:
    from .ami_fake_server import FakeAMIServer, block
except ImportError:  # run without the package __init__
    from ami_fake_server import FakeAMIServer, block


class Sink:
    """A text stream whose lines a test can await."""

    def __init__(self) -> None:
        self.text = ""
        self._changed = asyncio.Event()

    def write(self, data: str) -> int:
        self.text += data
        self._changed.set()
        return len(data)

    def flush(self) -> None:
        pass

    @property
    def objects(self) -> list[dict]:
        return [json.loads(line) for line in self.text.splitlines()]

    async def wait_lines(self, n: int, timeout_s: float = 5.0) -> list[dict]:
        async with asyncio.timeout(timeout_s):
            while len(self.text.splitlines()) < n:
                self._changed.clear()
                await self._changed.wait()
        return self.objects


def test_event_json_keeps_every_header_and_lists_repeats():
    line = event_json(
        {"Event": "VarSet", "Variable": ["A=1", "B=2"], "CallerIDName": "张三", "content": ""}
    )
    assert json.loads(line) == {
        "Event": "VarSet",
        "Variable": ["A=1", "B=2"],
        "CallerIDName": "张三",
    }
    assert "张三" in line  # not \\u-escaped: readable in a terminal and in grep


async def test_events_prints_json_skips_malformed_and_survives_reconnect(monkeypatch):
    async with FakeAMIServer(secret="pw") as server:
        sink = Sink()
        stop = asyncio.Event()
        import cti.events_cli as events_cli

        real_link = events_cli.AMILink
        monkeypatch.setattr(
            events_cli,
            "AMILink",
            lambda **kw: real_link(**kw, backoff=Backoff(base_s=0.01, cap_s=0.05, jitter=0.0)),
        )
        task = asyncio.create_task(
            run_events(
                host="127.0.0.1",
                port=server.port,
                username="hotline",
                secret="pw",
                out=sink,
                stop=stop,
            )
        )
        first = await sink.wait_lines(1)
        assert first[0]["Event"] == "FullyBooted"

        good1 = block(
            "Event: Newchannel",
            "Channel: PJSIP/trunk-00000001",
            "CallerIDName: 张三丰",
            "Uniqueid: 1.1",
        )
        bad = block("Event: Newchannel", "Event: Hangup", "Uniqueid: 1.2")
        good2 = block(
            "Event: Hangup",
            "Channel: PJSIP/trunk-00000001",
            "Cause-txt: Normal Clearing",
            "Uniqueid: 1.1",
        )
        data = good1 + bad + good2
        split_inside_name = good1.index("张".encode()) + 1  # cut inside a multibyte character
        await server.current.push(data, chunks=[split_inside_name])
        objs = await sink.wait_lines(3)
        assert [o["Event"] for o in objs] == ["FullyBooted", "Newchannel", "Hangup"]
        assert objs[1]["CallerIDName"] == "张三丰"
        assert objs[2]["Cause-txt"] == "Normal Clearing"

        server.current.drop()
        await server.wait_for_connections(2)
        objs = await sink.wait_lines(4)
        assert objs[3]["Event"] == "FullyBooted"  # printing again on the new connection
        await server.current.push(
            block("Event: Newstate", "Channel: PJSIP/1001-00000002", "ChannelStateDesc: Ringing")
        )
        objs = await sink.wait_lines(5)
        assert objs[4] == {
            "Event": "Newstate",
            "Channel": "PJSIP/1001-00000002",
            "ChannelStateDesc": "Ringing",
        }
        assert not task.done()
        stop.set()
        link = await task
        assert link.stats.malformed_skipped == 1
