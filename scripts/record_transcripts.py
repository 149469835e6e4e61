"""Record AMI transcripts from a real private Asterisk for the unit tests.

Each scenario starts a private Asterisk, registers robot agents (pyVoIP), places
sipp citizen calls and plays a scripted engine over a raw AMI socket (Redirect
to the connect context when a caller is enqueued, BlindTransfer...). The bytes
Asterisk sent are saved verbatim as ``tests/fixtures/ami/<scenario>.ami``; the
raw socket is deliberately independent of cti.ami so that the transcript is
exactly what Asterisk wrote.

    .venv/bin/python scripts/record_transcripts.py [scenario ...]
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from cti.stack.asterisk import AgentSeat, AsteriskSettings, LineConfig, PrivateAsterisk
from softphone_bridge.robot_agent import AgentBehaviour, RobotAgent
from softphone_bridge.sipp_citizen import CitizenCall, SippCitizens
from softphone_bridge.sipp_phones import SippPhones

PHONES_HOST = "127.0.0.5"
# A seat's phone: a pyVoIP robot, a sipp phone refusing every call with this
# SIP status, or None (the seat's phone never registers).
Phone = AgentBehaviour | int | None

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "ami"
log = logging.getLogger("record")


class RawAMI:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.raw = bytearray()
        self.buf = b""
        self.events: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self._n = 0

    @classmethod
    async def connect(cls, port: int, user: str, secret: str) -> RawAMI:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        ami = cls(reader, writer)
        ami.task = asyncio.create_task(ami._read())
        await ami.send({"Action": "Login", "Username": user, "Secret": secret, "Events": "on"})
        return ami

    async def _read(self) -> None:
        while data := await self.reader.read(65536):
            self.raw += data
            self.buf += data
            if self.buf.startswith(b"Asterisk Call Manager/") and b"\r\n" in self.buf:
                self.buf = self.buf.split(b"\r\n", 1)[1]
            while b"\r\n\r\n" in self.buf:
                msg, self.buf = self.buf.split(b"\r\n\r\n", 1)
                headers = {}
                for line in msg.decode("utf-8", "replace").split("\r\n"):
                    if ": " in line:
                        k, v = line.split(": ", 1)
                        headers.setdefault(k, v)
                await self.events.put(headers)

    async def send(self, action: dict[str, str]) -> None:
        self._n += 1
        action = {**action, "ActionID": f"rec-{self._n}"}
        self.writer.write("".join(f"{k}: {v}\r\n" for k, v in action.items()).encode() + b"\r\n")
        await self.writer.drain()

    async def wait_for(
        self, pred: Callable[[dict[str, str]], bool], timeout: float = 30
    ) -> dict[str, str]:
        async with asyncio.timeout(timeout):
            while True:
                ev = await self.events.get()
                if pred(ev):
                    return ev

    async def close(self) -> bytes:
        self.writer.close()
        self.task.cancel()
        return bytes(self.raw)


def user_event(name: str) -> Callable[[dict[str, str]], bool]:
    return lambda ev: ev.get("Event") == "UserEvent" and ev.get("UserEvent") == name


async def run(
    name: str,
    script: Callable[[RawAMI, SippCitizens, dict[str, RobotAgent]], Awaitable[None]],
    behaviours: dict[str, Phone],
) -> None:
    run_dir = Path(tempfile.mkdtemp(prefix="hotline-rec-"))
    phones = {
        ext: SippPhones(PHONES_HOST, run_dir / f"phones-{ext}", refuse=code)
        for ext, code in behaviours.items()
        if isinstance(code, int)
    }
    seats = [
        AgentSeat(
            ext,
            f"坐席{ext}",
            f"pw-{ext}-secret",
            contact=phones[ext].contact(ext) if ext in phones else "",
        )
        for ext in behaviours
    ]
    settings = AsteriskSettings(
        run_dir=run_dir,
        agents=seats,
        ring_timeout_s=4,
        lines=[
            LineConfig("12345", "12345", "12345-general"),
            LineConfig("96181", "96181", "96181-general"),
        ],
    )
    ast = PrivateAsterisk(settings)
    ast.prepare()
    await ast.start()
    robots: dict[str, RobotAgent] = {}
    try:
        ami = await RawAMI.connect(settings.ami_port, settings.ami_user, settings.ami_secret)
        await ami.wait_for(lambda ev: ev.get("Event") == "FullyBooted")
        for phone in phones.values():
            await phone.start()
        for seat in seats:
            behaviour = behaviours[seat.extension]
            if not isinstance(behaviour, AgentBehaviour):
                continue
            robots[seat.extension] = RobotAgent(
                extension=seat.extension,
                password=seat.password,
                asterisk_sip=("127.0.0.1", settings.sip_port),
                behaviour=behaviour,
            )
            await robots[seat.extension].start()
        citizens = SippCitizens(
            asterisk_sip=("127.0.0.1", settings.sip_port), work_dir=run_dir / "sipp"
        )
        await ami.send({"Action": "CoreShowChannels"})
        await script(ami, citizens, robots)
        await asyncio.sleep(1.0)  # let the trailing Hangup/Cdr events arrive before we cut
        await ami.send({"Action": "CoreShowChannels"})
        await ami.wait_for(lambda ev: ev.get("Event") == "CoreShowChannelsComplete")
        raw = await ami.close()
    finally:
        for robot in robots.values():
            await robot.stop()
        for phone in phones.values():
            await phone.stop()
        await ast.stop()
    OUT.mkdir(parents=True, exist_ok=True)
    # The login reply carries nothing secret, but the banner/version is useful.
    (OUT / f"{name}.ami").write_bytes(raw)
    log.info("%s: %d bytes -> %s", name, len(raw), OUT / f"{name}.ami")


async def normal_call(ami: RawAMI, citizens: SippCitizens, robots: dict[str, RobotAgent]) -> None:
    """12345: caller enqueued, sent to 1001, answered, caller hangs up after talking."""
    call = asyncio.create_task(
        citizens.call(CitizenCall("12345", "13800138000", "张三丰", hold_s=6))
    )
    ev = await ami.wait_for(user_event("HotlineEnqueue"))
    await asyncio.sleep(1.0)
    await ami.send(
        {
            "Action": "Redirect",
            "Channel": ev["Channel"],
            "Context": "hotline-connect",
            "Exten": "1001",
            "Priority": "1",
        }
    )
    result = await call
    assert result.completed, result


async def abandon(ami: RawAMI, citizens: SippCitizens, robots: dict[str, RobotAgent]) -> None:
    """96181: caller hangs up while waiting (3 s after entering the queue)."""
    call = asyncio.create_task(citizens.call(CitizenCall("96181", "13900139000", "李四", hold_s=3)))
    await ami.wait_for(user_event("HotlineEnqueue"))
    result = await call
    assert result.completed, result


async def agent_no_answer(
    ami: RawAMI, citizens: SippCitizens, robots: dict[str, RobotAgent]
) -> None:
    """12345: sent to 1002 who does not answer (ring timeout), back to hold, then 1001 answers
    and hangs up first; the caller hears goodbye."""
    call = asyncio.create_task(
        citizens.call(CitizenCall("12345", "13700137000", "王五", hold_s=30))
    )
    ev = await ami.wait_for(user_event("HotlineEnqueue"))
    await ami.send(
        {
            "Action": "Redirect",
            "Channel": ev["Channel"],
            "Context": "hotline-connect",
            "Exten": "1002",
            "Priority": "1",
        }
    )
    await ami.wait_for(
        lambda e: user_event("HotlineDialResult")(e) and e.get("DialStatus") == "NOANSWER"
    )
    await ami.send(
        {
            "Action": "Redirect",
            "Channel": ev["Channel"],
            "Context": "hotline-connect",
            "Exten": "1001",
            "Priority": "1",
        }
    )
    result = await call
    assert result.completed, result


async def transfer(ami: RawAMI, citizens: SippCitizens, robots: dict[str, RobotAgent]) -> None:
    """96181: 1001 answers, then blind-transfers the caller to 1002, who answers;
    the caller hangs up."""
    call = asyncio.create_task(
        citizens.call(CitizenCall("96181", "13600136000", "赵六", hold_s=12))
    )
    ev = await ami.wait_for(user_event("HotlineEnqueue"))
    await ami.send(
        {
            "Action": "Redirect",
            "Channel": ev["Channel"],
            "Context": "hotline-connect",
            "Exten": "1001",
            "Priority": "1",
        }
    )
    agent = await ami.wait_for(
        lambda e: e.get("Event") == "BridgeEnter" and e.get("Channel", "").startswith("PJSIP/1001-")
    )
    await asyncio.sleep(1.5)
    await ami.send(
        {
            "Action": "BlindTransfer",
            "Channel": agent["Channel"],
            "Context": "hotline-connect",
            "Exten": "1002",
        }
    )
    result = await call
    assert result.completed, result


async def dial_failures(ami: RawAMI, citizens: SippCitizens, robots: dict[str, RobotAgent]) -> None:
    """12345: sent to 1003, whose phone never registered (Dial fails before any
    channel: no DialBegin, CHANUNAVAIL), then to 1004, whose phone answers 486
    Busy Here, then to 1001, who answers and hangs up first."""
    call = asyncio.create_task(
        citizens.call(CitizenCall("12345", "13500135000", "钱七", hold_s=30))
    )
    ev = await ami.wait_for(user_event("HotlineEnqueue"))
    channel = ev["Channel"]
    for agent, status in (("1003", "CHANUNAVAIL"), ("1004", "BUSY")):
        await ami.send(
            {
                "Action": "Redirect",
                "Channel": channel,
                "Context": "hotline-connect",
                "Exten": agent,
                "Priority": "1",
            }
        )
        await ami.wait_for(
            lambda e, status=status: (
                user_event("HotlineDialResult")(e) and e.get("DialStatus") == status
            )
        )
        # Back on hold (a Redirect landing on the dialplan's Goto can lose the channel).
        await ami.wait_for(
            lambda e: e.get("Event") == "MusicOnHoldStart" and e.get("Channel") == channel
        )
    await ami.send(
        {
            "Action": "Redirect",
            "Channel": channel,
            "Context": "hotline-connect",
            "Exten": "1001",
            "Priority": "1",
        }
    )
    result = await call
    assert result.completed, result


SCENARIOS = {
    "dial_failures": (
        dial_failures,
        {"1001": AgentBehaviour(talk_s=2.0), "1003": None, "1004": 486},
    ),
    "normal_call": (normal_call, {"1001": AgentBehaviour(talk_s=None)}),
    "abandon": (abandon, {"1001": AgentBehaviour()}),
    "agent_no_answer": (
        agent_no_answer,
        {"1001": AgentBehaviour(talk_s=2.0), "1002": AgentBehaviour(answers=False)},
    ),
    "transfer": (
        transfer,
        {"1001": AgentBehaviour(talk_s=None), "1002": AgentBehaviour(talk_s=None)},
    ),
}


async def main(names: list[str]) -> None:
    for name in names or list(SCENARIOS):
        script, behaviours = SCENARIOS[name]
        await run(name, script, behaviours)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main(sys.argv[1:]))
