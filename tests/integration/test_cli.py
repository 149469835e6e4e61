"""The operator's commands as a user runs them: real processes, real Asterisk."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from softphone_bridge.sipp_citizen import CitizenCall

pytestmark = pytest.mark.integration

HOTLINE = [sys.executable, "-m", "cti.cli"]


class JsonLines:
    """Reads a process's stdout as JSON objects; awaitable by predicate."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.stream = stream
        self.seen: list[dict] = []

    async def wait_for(self, predicate, timeout_s: float = 30.0) -> dict:
        for obj in self.seen:
            if predicate(obj):
                return obj
        async with asyncio.timeout(timeout_s):
            while True:
                line = await self.stream.readline()
                if not line:
                    raise EOFError("hotline events exited")
                obj = json.loads(line)
                self.seen.append(obj)
                if predicate(obj):
                    return obj


async def test_hotline_events_prints_real_events_and_survives_asterisk_restart(stack, citizens):
    private, info = stack
    env = {**os.environ, "HOTLINE_AMI_SECRET": info.ami.secret}
    proc = await asyncio.create_subprocess_exec(
        *HOTLINE,
        "events",
        "--ami-host",
        "127.0.0.1",
        "--ami-port",
        str(info.ami.port),
        "--ami-user",
        info.ami.username,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out = JsonLines(proc.stdout)
        await out.wait_for(lambda e: e.get("Event") == "FullyBooted")
        call = asyncio.create_task(
            citizens.call(CitizenCall("96181", "13512345678", "诸葛孔明", hold_s=2))
        )
        new = await out.wait_for(lambda e: e.get("Event") == "Newchannel")
        assert new["CallerIDName"] == "诸葛孔明"
        assert new["CallerIDNum"] == "13512345678"
        assert new["Exten"] == "96181"
        user = await out.wait_for(lambda e: e.get("UserEvent") == "HotlineEnqueue")
        assert user["Line"] == "96181"
        await out.wait_for(lambda e: e.get("Event") == "Hangup")
        assert (await call).exit_code == 0

        booted_before = sum(e.get("Event") == "FullyBooted" for e in out.seen)
        private.asterisk.kill()
        await private.asterisk.process.wait()
        await private.asterisk.start()
        await out.wait_for(
            lambda e: (
                e.get("Event") == "FullyBooted"
                and sum(x.get("Event") == "FullyBooted" for x in out.seen) > booted_before
            ),
            timeout_s=60,
        )
        assert proc.returncode is None
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 15)
        err = (await proc.stderr.read()).decode()
    assert code == 0, err
    assert "connection lost" in err
    assert info.ami.secret not in err


async def test_hotline_events_names_the_missing_secret():
    env = {k: v for k, v in os.environ.items() if k != "HOTLINE_AMI_SECRET"}
    proc = await asyncio.create_subprocess_exec(
        *HOTLINE,
        "events",
        "--ami-port",
        "1",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 2
    assert "--ami-secret" in err.decode() and "HOTLINE_AMI_SECRET" in err.decode()


async def test_hotline_demo_runs_calls_end_to_end_and_stops_cleanly(tmp_path: Path):
    proc = await asyncio.create_subprocess_exec(
        *HOTLINE,
        "demo",
        "--duration",
        "30",
        "--agents",
        "2",
        "--calls-per-minute",
        "20",
        "--seed",
        "3",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    text = out.decode()
    (tmp_path / "demo.out").write_text(text + "\n--- stderr ---\n" + err.decode())
    assert proc.returncode == 0, text[-2000:] + err.decode()[-2000:]
    assert "robot agents registered" in text
    assert re.search(r"\[12345\] +#\d+ +arrived from 1\d\d\*{4}\d{4} \S+", text), text
    assert re.search(r"answered by 100[12] after \d+\.\d s", text), text
    assert re.search(r"ended \(talk \d+\.\d s", text), text
    summary = re.search(r"hotline demo: calls: (\d+) arrived, (\d+) answered .* (\d+) lost", text)
    assert summary, text[-1000:]
    arrived, answered, lost = map(int, summary.groups())
    assert arrived >= 3 and answered >= 2 and lost == 0


async def test_hotline_demo_stops_cleanly_on_ctrl_c():
    proc = await asyncio.create_subprocess_exec(
        *HOTLINE,
        "demo",
        "--agents",
        "1",
        "--calls-per-minute",
        "30",
        "--seed",
        "5",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    seen = []
    try:
        async with asyncio.timeout(90):
            while not any("answered by 1001" in line for line in seen):
                line = (await proc.stdout.readline()).decode()
                assert line, "demo exited early: " + "".join(seen)
                seen.append(line)
        # The demo serves the console and the desktop, with accounts made for this run.
        desk = next(line for line in seen if "supervisor console" in line)
        found = re.search(r"console (http://\S+)/console .* this run: (\S+)", desk)
        assert found, desk
        url, password = found.groups()
        async with aiohttp.ClientSession() as http:
            page = await http.get(url + "/console")
            assert page.status == 200 and "班长监控台" in await page.text()
            login = await http.post(
                url + "/api/v1/sessions", json={"username": "supervisor", "password": password}
            )
            assert login.status == 201
            token = (await login.json())["token"]
            console = await http.get(
                url + "/api/v1/console", headers={"Authorization": f"Bearer {token}"}
            )
            assert sorted((await console.json())["acd"]["agents"]) == ["1001"]
    finally:
        proc.send_signal(signal.SIGINT)
    rest, err = await asyncio.wait_for(proc.communicate(), 60)
    text = "".join(seen) + rest.decode()
    assert proc.returncode == 0, text[-2000:] + err.decode()[-2000:]
    assert "hotline demo: stopping ..." in text
    assert re.search(r"hotline demo: calls: \d+ arrived, [1-9]\d* answered", text), text[-1000:]
