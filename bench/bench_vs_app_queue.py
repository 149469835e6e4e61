"""The engine against Asterisk's own app_queue, end to end, in one run on one
machine: same Asterisk, same agents, same sipp load. A benchmark, not a test.

One private stack (``cti.stack.private.PrivateStack``: Asterisk, PostgreSQL,
Redis) is configured with two lines into the same queue: DID 12399 routed by
app_queue (``route = "app_queue"``, the dialplan's ``Queue()``) and DID 12345
routed by the engine (``route = "engine"``). ``--agents`` agents have static
PJSIP contacts pointing at ONE sipp UAS (``bench/scenarios/agent_uas.xml.tmpl``)
that rings ``--ring-s`` before answering, talks for a time drawn once from
uniform(talk - spread, talk + spread) with ``--seed`` (the same sequence in both
phases, through a sipp injection file) and hangs up. With ``--refusing-share``,
that share of the agents (chosen with ``--seed``) point at a second sipp UAS
(``bench/scenarios/agent_refuse_uas.xml.tmpl``) that refuses every call at
once with 480, 486 or 503, in a seeded sequence that is the same in both phases:
phones that are unreachable, busy or broken, not agents who let it ring.

The engine runs in a SEPARATE process, ``hotline serve`` with a TOML written
here (``wrapup_s = 0``: app_queue has no wrap-up, so the comparison is fair;
``ring_timeout_s = 15``), so that its CPU is measured on its own. Its agents
are logged in the way an engine restart finds them: AGENT_LOGIN rows written to
its PostgreSQL event log before it starts; the engine restores them and puts
them in app_queue's queue (QueueAdd), which is checked with AMI QueueStatus
before any call is placed, so app_queue's members are the same agents.

Phase A: sipp UAC (``bench/scenarios/citizen_uac.xml.tmpl``) places ``--calls``
calls at ``--rate`` calls/s to 12399 (app_queue). Phase B: the same load to
12345 (engine). Citizens wait up to ``--patience-s`` in the queue, then give
up (a planned abandon); otherwise the agent ends the call. sipp cannot tell
when an agent answered (Asterisk answers the caller at once), so the harness
keeps the patience (:class:`Abandoner`: AMI ``Hangup`` of a caller not
answered in time) and sipp's own hold time is only a safety net past any talk;
a call still cut mid-talk is counted apart ("cut by patience", not a loss).

Everything is measured from AMI events recorded by the benchmark's own
manager session (``cti.ami.AMILink``), with Asterisk's ``Timestamp``:

* queue entry: ``UserEvent(HotlineEnqueue)`` (engine), ``QueueCallerJoin`` (app_queue);
* ringing: the agent leg's ``Newstate`` Ringing; answer: its ``Newstate`` Up
  (the same events on both paths);
* refused: a caller Asterisk never answered (e.g. 488, no RTP port): load the
  harness failed to place, not a loss;
* lost: entered (or arrived) and never answered, except planned abandons;
  dropped: answered but the caller's channel went first, before its patience;
* dispatch latency: first ring - max(queue entry, the moment the ringing agent
  became free: its previous leg's Hangup), i.e. the routing delay once a call
  and a free agent both exist, whatever the queueing;
* FIFO: answered pairs where the later queue entry was answered first;
* agents paused at the end: app_queue's QueueStatus (which the engine keeps in
  step with its own pauses) and the engine's own log of agent transitions;
* CPU: utime + stime of Asterisk and of the engine process from /proc per phase.

The verdict (:func:`verdict`) is only given when the harness itself held and
placed the load: see ``bench/bench_curve.py`` for the load curve built from
:func:`run_point`.

Run from the repository root (about 5 minutes with the defaults)::

    .venv/bin/python bench/bench_vs_app_queue.py

Results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import logging
import math
import os
import platform
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout

from acd.event_log import EventLogWriter  # noqa: E402
from acd.log_events import AGENT_LOGIN, LogEvent  # noqa: E402
from bench.provenance import code_version, cpu_model  # noqa: E402
from common.db import migrate  # noqa: E402
from cti.ami import AMILink  # noqa: E402
from cti.config import (  # noqa: E402
    RTP_PORTS_PER_CALL,
    AcdConfig,
    AgentSpec,
    EngineConfig,
    LineSpec,
    RtpConfig,
    rtp_ports_needed,
)
from cti.stack.ports import free_udp_port  # noqa: E402
from cti.stack.private import PrivateStack, StackInfo  # noqa: E402
from cti.stack.process import ChildProcess  # noqa: E402
from cti.stack.render import render  # noqa: E402

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
QUEUE = "12345-general"
ENGINE_DID = "12345"
APP_QUEUE_DID = "12399"
CITIZEN_HOST = "127.0.0.2"  # the trunk identify of the generated pjsip.conf
AGENTS_HOST = "127.0.0.5"
RING_TIMEOUT_S = 15
REFUSAL_CODES = ("480", "486", "503")
NOT_PLACED_SHARE = 0.01
"""A point whose harness failed to place this share of the offered calls gets no verdict."""
TOLERANCE = 1.05
"""The engine may be 5 % slower than app_queue and still count as no slower (noise)."""
DRAIN_S = 60.0
"""How long the channels of a phase may outlive its last citizen."""
CLK_TCK = os.sysconf("SC_CLK_TCK")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
RECORDED = frozenset(
    {
        "Newchannel",
        "Newstate",
        "Hangup",
        "UserEvent",
        "QueueCallerJoin",
        "QueueCallerLeave",
        "QueueCallerAbandon",
        "DialBegin",
        "DialEnd",
    }
)
KEPT_HEADERS = (
    "Channel",
    "Uniqueid",
    "Linkedid",
    "ChannelStateDesc",
    "UserEvent",
    "Agent",
    "Exten",
    "CallerIDNum",
    "Cause",
    "Cause-txt",
    "DestChannel",
    "DestUniqueid",
    "DialStatus",
)
_AGENT_CHANNEL = re.compile(r"^PJSIP/(\d+)-[0-9a-f]{8}$")
_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ")
_ROUTING_LOG = re.compile(r"INFO cti\.engine: call (\S+): routing to agent (\d+)")
_AGENT_STATE_LOG = re.compile(r": agent (\S+): (\w+) -\[([^\]]*)\]-> (\w+)")

# -- recording AMI events ---------------------------------------------------------------


def _first(value: Any) -> str:
    if isinstance(value, list):
        value = value[0] if value else ""
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Rec:
    name: str
    at: float
    h: dict[str, str]


class Abandoner:
    """The citizens' patience, kept by the harness: a caller still not answered
    ``patience_s`` after entering the queue is hung up (AMI ``Hangup`` of its
    trunk channel, cause 16), as a citizen giving up would. sipp cannot see an
    agent answer (Asterisk answers the caller at once), so a patience kept by
    sipp would also cut answered calls mid-talk; sipp's own hold time is only
    a safety net far beyond this."""

    def __init__(self, link: AMILink, did: str, patience_s: float) -> None:
        self.link = link
        self.did = did
        self.patience_s = patience_s
        self.callers: dict[str, str] = {}  # linkedid -> caller channel name
        self.answered: set[str] = set()
        self.given_up: set[str] = set()
        self._timers: list[asyncio.TimerHandle] = []

    def on_event(self, name: str, h: dict[str, str]) -> None:
        linkedid = h.get("Linkedid", "")
        channel = h.get("Channel", "")
        if (
            name == "Newchannel"
            and channel.startswith("PJSIP/trunk-")
            and h.get("Exten") == self.did
        ):
            self.callers[linkedid] = channel
        elif name == "Newstate" and h.get("ChannelStateDesc") == "Up":
            if _AGENT_CHANNEL.match(channel) and linkedid in self.callers:
                self.answered.add(linkedid)
        elif linkedid in self.callers and (
            (name == "UserEvent" and h.get("UserEvent") == "HotlineEnqueue")
            or name == "QueueCallerJoin"
        ):
            loop = asyncio.get_running_loop()
            self._timers.append(loop.call_later(self.patience_s, self._give_up, linkedid))
        elif name == "Hangup" and channel == self.callers.get(linkedid):
            del self.callers[linkedid]

    def _give_up(self, linkedid: str) -> None:
        channel = self.callers.get(linkedid)
        if channel is None or linkedid in self.answered or linkedid in self.given_up:
            return
        self.given_up.add(linkedid)
        self.link.post_action({"Action": "Hangup", "Channel": channel, "Cause": "16"})

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()


class Recorder:
    """The benchmark's own manager session: call events, with Asterisk's timestamps.

    Every event, with every header, also goes to ``raw_path`` (JSON lines): the
    post-mortem of a lost call reads it back, and memory stays flat at 20 calls/s.
    """

    def __init__(self, info: StackInfo, raw_path: Path) -> None:
        ami = info.ami
        self.link = AMILink(
            host=ami.host,
            port=ami.port,
            username=ami.username,
            secret=ami.secret,
            name="bench-listener",
        )
        self.events: list[Rec] = []
        self.raw_path = raw_path
        self._raw: IO[str] = open(raw_path, "w", encoding="utf-8")
        self.live: set[str] = set()
        self.disconnects = 0
        self.abandoner: Abandoner | None = None
        self.link.add_event_handler(self._on_event)
        self.link.add_disconnect_handler(self._on_disconnect)

    def _on_event(self, event: Any) -> None:
        name = _first(event.get("Event"))
        raw = {str(k): _first(v) for k, v in event.items()}
        self._raw.write(json.dumps(raw, ensure_ascii=False) + "\n")
        if name not in RECORDED:
            return
        headers = {k: _first(event.get(k)) for k in KEPT_HEADERS if k in event}
        try:
            at = float(_first(event.get("Timestamp")))
        except ValueError:
            at = time.time()
        self.events.append(Rec(name, at, headers))
        if name == "Newchannel":
            self.live.add(headers.get("Uniqueid", ""))
        elif name == "Hangup":
            self.live.discard(headers.get("Uniqueid", ""))
        if self.abandoner is not None:
            self.abandoner.on_event(name, headers)

    def _on_disconnect(self, reason: BaseException | None) -> None:
        self.disconnects += 1

    def lost_events(self) -> int:
        """Events this session never delivered (malformed, oversize) plus its reconnects:
        any of these during a phase makes its figures unreliable."""
        stats = self.link.stats
        return stats.malformed_skipped + stats.oversize_dropped + self.disconnects

    def flush(self) -> None:
        self._raw.flush()

    async def start(self) -> None:
        await self.link.start()
        await self.link.wait_connected(15)

    async def queue_members(self) -> list[dict[str, str]]:
        reply = await self.link.send_action({"Action": "QueueStatus", "Queue": QUEUE})
        rows = reply if isinstance(reply, list) else [reply]
        return [
            {k: _first(m.get(k)) for k in ("Name", "StateInterface", "Paused", "Status")}
            for m in rows
            if _first(m.get("Event")) == "QueueMember"
        ]

    async def paused_members(self) -> list[str]:
        return sorted(m["Name"] for m in await self.queue_members() if m["Paused"] == "1")

    async def close(self) -> None:
        try:
            await self.link.close()
        finally:
            self._raw.close()


# -- processes ----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def sipp_stats(path: Path) -> dict[str, str]:
    """The last row of a sipp ``-trace_stat`` CSV file, by column."""
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return {}
    if len(lines) < 2:
        return {}
    header = lines[0].split(";")
    return dict(zip(header, lines[-1].split(";"), strict=False))


def sipp_count(stats: dict[str, str], column: str) -> int | None:
    try:
        return int(stats[column])
    except (KeyError, ValueError):
        return None


@dataclass
class Options:
    agents: int
    calls: int
    rate: float
    talk_s: float
    talk_spread_s: float
    ring_s: float
    patience_s: float
    seed: int
    refusing_share: float = 0.0
    """Share of the agents whose phones refuse every call (480/486/503)."""
    rtp_ports: int = 0
    """RTP ports of the private Asterisk; 0: :func:`rtp_ports_for` the load."""


def rtp_ports_for(opts: Options) -> int:
    """RTP ports for every call the load can hold at once, twice over, so that
    the switch is never what refuses a call (Asterisk answers 488 past its
    range). A call stays at most its wait (the caller's patience), the ring and
    the longest talk; a misbehaving router makes callers pile up, which must
    show as waits and abandons, not as calls refused at the door."""
    in_system_s = opts.patience_s + opts.ring_s + opts.talk_s + opts.talk_spread_s + 5
    concurrent = min(opts.calls, math.ceil(opts.rate * in_system_s))
    return max(rtp_ports_needed(opts.agents), concurrent * RTP_PORTS_PER_CALL * 2 + 200)


def refusing_agents(opts: Options) -> frozenset[str]:
    """The agents whose phones refuse every call, chosen with the seed."""
    count = round(opts.agents * opts.refusing_share)
    chosen = random.Random(opts.seed * 7919).sample(range(opts.agents), count)
    return frozenset(str(1001 + n) for n in chosen)


def bench_config(opts: Options, uas_port: int, refusing_port: int | None = None) -> EngineConfig:
    refusing = refusing_agents(opts)
    if refusing and refusing_port is None:
        raise ValueError("refusing agents need the port of the refusing UAS")
    agents = []
    for n in range(opts.agents):
        extension = str(1001 + n)
        port = refusing_port if extension in refusing else uas_port
        agents.append(
            AgentSpec(
                extension, f"坐席{n + 1:02d}", contact=f"sip:{extension}@{AGENTS_HOST}:{port}"
            )
        )
    return EngineConfig(
        agents=tuple(agents),
        lines=(
            LineSpec(ENGINE_DID, "12345", QUEUE, route="engine"),
            LineSpec(APP_QUEUE_DID, "12399", QUEUE, route="app_queue"),
        ),
        ring_timeout_s=RING_TIMEOUT_S,
        acd=AcdConfig(wrapup_s=0.0),
        rtp=RtpConfig(private_ports=opts.rtp_ports or rtp_ports_for(opts)),
    )


def engine_toml(config: EngineConfig, info: StackInfo) -> str:
    """What ``hotline serve --config`` reads; the AMI secret goes in the environment."""
    lines = [
        "# Written by bench/bench_vs_app_queue.py for this run.",
        f"ring_timeout_s = {config.ring_timeout_s}",
        f'database_dsn = "{info.database_dsn}"',
        f'redis_url = "{info.redis_url}"',
        "",
        "[ami]",
        f'host = "{info.ami.host}"',
        f"port = {info.ami.port}",
        f'username = "{info.ami.username}"',
        "",
        "[api]",
        "port = 0  # any free port",
        "",
        "[acd]",
        "wrapup_s = 0  # app_queue has no wrap-up: a fair comparison",
        "",
    ]
    for spec in config.lines:
        lines += [
            "[[lines]]",
            f'did = "{spec.did}"',
            f'line = "{spec.line}"',
            f'queue = "{spec.queue}"',
            f'route = "{spec.route}"',
            "",
        ]
    for agent in config.agents:
        lines += ["[[agents]]", f'extension = "{agent.extension}"', f'name = "{agent.name}"', ""]
    return "\n".join(lines)


async def log_agents_in(dsn: str, agents: Iterable[str]) -> int:
    """AGENT_LOGIN rows in the event log: the engine restores them at start."""
    await migrate(dsn)
    async with asyncpg.create_pool(dsn, min_size=0, max_size=1) as pool:
        writer = EventLogWriter(pool=pool, engine_id="bench-setup")
        await writer.start()
        now = time.time()
        count = 0
        try:
            for agent in agents:
                writer.append(LogEvent(at=now, kind=AGENT_LOGIN, agent=agent))
                count += 1
            await writer.wait_flushed(timeout_s=15)
        finally:
            await writer.close()
    return count


async def wait_for_log(path: Path, pattern: str, timeout_s: float) -> str:
    regex = re.compile(pattern)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        with contextlib.suppress(OSError):
            for line in path.read_text(errors="replace").splitlines():
                if regex.search(line):
                    return line
        await asyncio.sleep(0.1)  # polling a log file another process writes
    raise TimeoutError(f"no line matching {pattern!r} in {path} within {timeout_s:.0f} s")


# -- the engine's log -----------------------------------------------------------------------


def engine_log_lines(path: Path) -> Iterator[tuple[float, str]]:
    """(time, line) of each timestamped line of the engine log (ms resolution)."""
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            match = _LOG_TIME.match(line)
            if match is None:
                continue
            at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").timestamp()
            yield at + int(match.group(2)) / 1000.0, line


def routing_decisions(log_path: Path, since: float) -> dict[str, float]:
    """call id -> time of the engine's first "routing to agent" log line (ms resolution)."""
    out: dict[str, float] = {}
    for at, line in engine_log_lines(log_path):
        match = _ROUTING_LOG.search(line)
        if match and at >= since - 1:
            out.setdefault(match.group(1), at)
    return out


@dataclass
class EngineAgents:
    """The agents as the engine's own log tells them (``agent X: OLD -[event]-> NEW``)."""

    paused_at_end: dict[str, str]
    """agent -> the event that paused it, for each agent whose last state is PAUSED."""
    pauses: Counter[str]
    """Transitions into PAUSED during the phase, by event."""


def engine_agents(log_path: Path, start: float, end: float) -> EngineAgents:
    last: dict[str, tuple[str, str]] = {}
    pauses: Counter[str] = Counter()
    for at, line in engine_log_lines(log_path):
        if at > end + 1:
            break
        match = _AGENT_STATE_LOG.search(line)
        if match is None:
            continue
        agent, _, event, new = match.groups()
        last[agent] = (new, event)
        if new == "PAUSED" and at >= start - 1:
            pauses[event] += 1
    paused = {agent: event for agent, (state, event) in last.items() if state == "PAUSED"}
    return EngineAgents(paused_at_end=paused, pauses=pauses)


def engine_log_problems(path: Path, start: float, end: float) -> dict[str, tuple[int, str]]:
    """WARNING/ERROR lines of the engine log within [start, end]: count and first message."""
    found: dict[str, tuple[int, str]] = {}
    for at, line in engine_log_lines(path):
        parts = line.split(" ", 4)
        if len(parts) < 5 or parts[2] not in ("WARNING", "ERROR", "CRITICAL"):
            continue
        if not start - 1 <= at <= end + 1:
            continue
        key = f"{parts[2]} {parts[3].rstrip(':')}"
        count, first = found.get(key, (0, parts[4][:110]))
        found[key] = (count + 1, first)
    return found


# -- analysis -------------------------------------------------------------------------------


@dataclass
class Call:
    call_id: str
    caller_uid: str
    arrived: float
    up: float | None = None  # Asterisk answered the caller (the dialplan's Answer())
    entry: float | None = None
    rings: list[tuple[float, str, str]] = field(default_factory=list)  # (at, agent, leg uid)
    answers: list[tuple[float, str, str]] = field(default_factory=list)
    connects: list[tuple[float, str]] = field(default_factory=list)  # HotlineConnect (engine)
    dial_begins: list[tuple[float, str]] = field(default_factory=list)
    dial_failures: list[tuple[float, str, str]] = field(default_factory=list)  # (at, agent, status)
    hangup: float | None = None
    cause: str = ""
    fallback: bool = False


@dataclass
class PhaseResult:
    path: str
    did: str
    offered: int
    calls: dict[str, Call]
    agent_free: dict[str, list[float]]  # agent -> leg hangup times
    leg_hangup: dict[str, float]
    start: float
    end: float
    asterisk_cpu_s: float
    engine_cpu_s: float
    uac_exit: int
    uac: dict[str, str]
    uas: dict[str, str]
    refusing_uas: dict[str, str]  # empty: no refusing phones
    decided_at: dict[str, float]  # engine log: call id -> first "routing to agent" time
    paused_at_start: list[str]  # QueueStatus Paused=1 before the first call
    paused_at_end: list[str]  # QueueStatus Paused=1 once every channel is gone
    engine_agents: EngineAgents
    engine_problems: dict[str, tuple[int, str]]
    engine_alive: bool
    channels_left: int  # channels still up DRAIN_S after the last citizen finished
    harness_broke: list[str]  # the figures cannot be trusted: no verdict
    harness_notes: list[str]  # worth reading, not fatal


def analyse(
    events: list[Rec], did: str
) -> tuple[dict[str, Call], dict[str, list[float]], dict[str, float]]:
    calls: dict[str, Call] = {}
    legs: dict[str, tuple[str, str]] = {}  # agent leg uniqueid -> (agent, linkedid)
    agent_free: dict[str, list[float]] = {}
    leg_hangup: dict[str, float] = {}
    for rec in events:
        h = rec.h
        channel = h.get("Channel", "")
        uid = h.get("Uniqueid", "")
        linkedid = h.get("Linkedid", "")
        call = calls.get(linkedid)
        if rec.name == "Newchannel":
            if channel.startswith("PJSIP/trunk-") and h.get("Exten") == did:
                calls[linkedid] = Call(linkedid, uid, rec.at)
            else:
                match = _AGENT_CHANNEL.match(channel)
                if match and linkedid in calls:
                    legs[uid] = (match.group(1), linkedid)
        elif rec.name == "Newstate" and uid in legs:
            agent, owner = legs[uid]
            state = h.get("ChannelStateDesc")
            if state == "Ringing":
                calls[owner].rings.append((rec.at, agent, uid))
            elif state == "Up":
                calls[owner].answers.append((rec.at, agent, uid))
        elif rec.name == "Hangup":
            if uid in legs:
                agent, _ = legs[uid]
                agent_free.setdefault(agent, []).append(rec.at)
                leg_hangup[uid] = rec.at
            elif call is not None and uid == call.caller_uid:
                call.hangup = rec.at
                call.cause = f"{h.get('Cause', '')} {h.get('Cause-txt', '')}".strip()
        elif call is None:
            continue
        elif rec.name == "Newstate":
            if uid == call.caller_uid and h.get("ChannelStateDesc") == "Up" and call.up is None:
                call.up = rec.at
        elif rec.name == "UserEvent":
            kind = h.get("UserEvent")
            if kind == "HotlineEnqueue" and call.entry is None:
                call.entry = rec.at
            elif kind == "HotlineConnect":
                call.connects.append((rec.at, h.get("Agent", "")))
            elif kind == "HotlineFallback":
                call.fallback = True
        elif rec.name == "QueueCallerJoin" and call.entry is None:
            call.entry = rec.at
        elif rec.name == "DialBegin" and h.get("DestUniqueid") in legs:
            call.dial_begins.append((rec.at, legs[h["DestUniqueid"]][0]))
        elif rec.name == "DialEnd" and h.get("DestUniqueid") in legs:
            status = h.get("DialStatus", "")
            if status != "ANSWER":
                call.dial_failures.append((rec.at, legs[h["DestUniqueid"]][0], status))
    return calls, agent_free, leg_hangup


def pct(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.0f}"


def fmt_pcts(values: list[float], fractions: tuple[float, ...] = (0.5, 0.95, 0.99)) -> str:
    return " / ".join(fmt_ms(pct(values, f)) for f in fractions)


def free_since(
    agent_free: dict[str, list[float]], agent: str, before: float, floor: float
) -> float:
    """When *agent* last became free before *before* (its previous leg hung up)."""
    times = [t for t in agent_free.get(agent, []) if t <= before]
    return max(times) if times else floor


def fifo_overtakes(entries_answers: Iterable[tuple[float, float]]) -> tuple[int, int, int]:
    """(overtakes, pairs, calls overtaken) over answered calls of one queue.

    An overtake is a pair where the later queue entry was answered first; a
    call is overtaken when at least one later entry was answered before it.
    """
    ordered = sorted(entries_answers)
    seen: list[float] = []  # answer times of the earlier entries, sorted
    overtakes = 0
    for _, answer in ordered:
        overtakes += len(seen) - bisect.bisect_right(seen, answer)
        bisect.insort(seen, answer)
    overtaken = 0
    earliest_later = math.inf
    for _, answer in reversed(ordered):
        if earliest_later < answer:
            overtaken += 1
        earliest_later = min(earliest_later, answer)
    count = len(ordered)
    return overtakes, count * (count - 1) // 2, overtaken


@dataclass
class Summary:
    placed: int
    refused: int
    queued: int
    answered: int
    lost: int
    planned_abandons: int
    dropped: int
    cut_by_patience: int
    fallbacks: int
    rona: int
    dial_failures: Counter[str]
    entry_ring: list[float]
    entry_answer: list[float]
    queue_time: list[float]  # entry -> answer, or entry -> hang-up for a caller who gave up
    dispatch: list[float]
    ring_answer: list[float]
    talk: list[float]
    overtakes: int
    answered_pairs: int
    overtaken: int
    segments: dict[str, list[float]]
    lost_ids: list[str]


def summarise(phase: PhaseResult, patience_s: float) -> Summary:
    calls = list(phase.calls.values())
    entry_ring, entry_answer, queue_time, dispatch, ring_answer, talk = [], [], [], [], [], []
    segments: dict[str, list[float]] = {}
    dial_failures: Counter[str] = Counter()
    lost_ids = []
    refused = planned = dropped = cut = rona = 0

    def patience_ran_out(call: Call) -> bool:
        return call.hangup is not None and call.hangup - call.arrived >= patience_s - 1.0

    for call in calls:
        dial_failures.update(status for _, _, status in call.dial_failures)
        answered = bool(call.answers)
        if not answered:
            if call.up is None and call.entry is None:
                refused += 1
            elif patience_ran_out(call):
                planned += 1
                if call.entry is not None and call.hangup is not None:
                    queue_time.append(call.hangup - call.entry)
            else:
                lost_ids.append(call.call_id)
            continue
        answer_at, agent, leg = call.answers[0]
        if call.hangup is not None and call.hangup < phase.leg_hangup.get(leg, float("inf")):
            if patience_ran_out(call):
                cut += 1
            else:
                dropped += 1
        if leg in phase.leg_hangup:
            talk.append(phase.leg_hangup[leg] - answer_at)
        rona += max(0, len(call.rings) - 1)
        if call.entry is None or not call.rings:
            continue
        ring_at, ring_agent, _ = call.rings[0]
        entry_ring.append(ring_at - call.entry)
        entry_answer.append(answer_at - call.entry)
        queue_time.append(answer_at - call.entry)
        ring_answer.append(answer_at - ring_at)
        ready = max(call.entry, free_since(phase.agent_free, ring_agent, ring_at, phase.start))
        dispatch.append(ring_at - ready)
        dial = next((t for t, a in call.dial_begins if a == ring_agent), None)
        if phase.path == "engine":
            connect = next((t for t, a in call.connects if a == ring_agent), None)
            decided = phase.decided_at.get(call.call_id)
            if decided is not None and decided >= ready - 0.002:
                segments.setdefault("ready -> engine decision (AMI in + ACD), ms log", []).append(
                    decided - ready
                )
                if connect is not None:
                    segments.setdefault(
                        "engine decision -> HotlineConnect (Redirect round trip)", []
                    ).append(connect - decided)
            if connect is not None:
                segments.setdefault("ready -> HotlineConnect (engine + Redirect)", []).append(
                    connect - ready
                )
                if dial is not None:
                    segments.setdefault(
                        "HotlineConnect -> DialBegin (dialplan, MixMonitor)", []
                    ).append(dial - connect)
        elif dial is not None:
            segments.setdefault("ready -> DialBegin (app_queue)", []).append(dial - ready)
        if dial is not None:
            segments.setdefault("DialBegin -> Ringing (SIP INVITE/180)", []).append(ring_at - dial)
    overtakes, pairs, overtaken = fifo_overtakes(
        (c.entry, c.answers[0][0]) for c in calls if c.entry is not None and c.answers
    )
    return Summary(
        placed=len(calls),
        refused=refused,
        queued=sum(c.entry is not None for c in calls),
        answered=sum(bool(c.answers) for c in calls),
        lost=len(lost_ids),
        planned_abandons=planned,
        dropped=dropped,
        cut_by_patience=cut,
        fallbacks=sum(c.fallback for c in calls),
        rona=rona,
        dial_failures=dial_failures,
        entry_ring=entry_ring,
        entry_answer=entry_answer,
        queue_time=queue_time,
        dispatch=dispatch,
        ring_answer=ring_answer,
        talk=talk,
        overtakes=overtakes,
        answered_pairs=pairs,
        overtaken=overtaken,
        segments=segments,
        lost_ids=lost_ids,
    )


def not_placed(phase: PhaseResult, summary: Summary) -> int:
    """Offered calls the harness did not get into the switch: never seen on the
    trunk, failed in sipp (a planned abandon is a sipp success), or refused by
    Asterisk before its answer (e.g. 488 when it has no RTP port left)."""
    failed = sipp_count(phase.uac, "FailedCall(C)") or 0
    return max(phase.offered - summary.placed, failed, summary.refused)


# -- the run --------------------------------------------------------------------------------


def citizens_file(path: Path, phase: int, calls: int, rng: random.Random) -> None:
    """Caller numbers distinct per phase: the engine's repeat-caller preference
    (same agent as last time) must not see phase A's callers again in phase B."""
    rows = ["SEQUENTIAL"]
    for n in range(calls):
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.randint(1, 2)))
        rows.append(f"13{phase}9{n:07d};{name}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def _scenario(name: str, values: dict[str, object], target: Path) -> Path:
    target.write_text(
        render((SCENARIOS / name).read_text(encoding="utf-8"), values, name=name),
        encoding="utf-8",
    )
    return target


def _uas(name: str, scenario: Path, inject: Path, port: int, phase_dir: Path) -> ChildProcess:
    return ChildProcess(
        name,
        [
            "sipp",
            "-sf", str(scenario),
            "-inf", str(inject),
            "-i", AGENTS_HOST,
            "-p", str(port),
            "-mi", AGENTS_HOST,
            "-mp", str(free_udp_port(AGENTS_HOST)),
            "-nostdin",
            "-trace_err", "-error_file", str(phase_dir / f"{name}-errors.log"),
            "-trace_stat", "-stf", str(phase_dir / f"{name}-stats.csv"), "-fd", "1",
        ],
        log_path=phase_dir / f"{name}.log",
    )  # fmt: skip


async def run_phase(
    *,
    path: str,
    did: str,
    opts: Options,
    info: StackInfo,
    work: Path,
    phase_no: int,
    recorder: Recorder,
    asterisk_pid: int,
    serve: ChildProcess,
    engine_log: Path,
    talk_file: Path,
    refusal_file: Path,
    uas_port: int,
    refusing_port: int | None,
    children: list[ChildProcess],
) -> PhaseResult:
    assert info.sip is not None and serve.pid is not None
    phase_dir = work / f"phase-{path}"
    phase_dir.mkdir()
    uas_xml = _scenario(
        "agent_uas.xml.tmpl", {"ring_ms": int(opts.ring_s * 1000)}, phase_dir / "agents.xml"
    )
    # The harness hangs up callers whose patience ran out while waiting
    # (Abandoner); sipp's own hold time is a safety net past any talk.
    sipp_hold_s = opts.patience_s + opts.ring_s + opts.talk_s + opts.talk_spread_s + 30
    uac_xml = _scenario(
        "citizen_uac.xml.tmpl",
        {"did": did, "patience_ms": int(sipp_hold_s * 1000)},
        phase_dir / "citizens.xml",
    )
    citizens = phase_dir / "citizens.csv"
    citizens_file(citizens, phase_no, opts.calls, random.Random(opts.seed * 10 + phase_no))
    phones = [_uas("agents", uas_xml, talk_file, uas_port, phase_dir)]
    if refusing_port is not None:
        refuse_xml = _scenario("agent_refuse_uas.xml.tmpl", {}, phase_dir / "refusing.xml")
        phones.append(_uas("refusing", refuse_xml, refusal_file, refusing_port, phase_dir))
    for phone in phones:
        children.append(phone)
        await phone.start()
    await asyncio.sleep(0.5)  # sipp binds its port; nothing to await on
    for phone in phones:
        if not phone.running:
            raise RuntimeError(f"sipp UAS {phone.name} exited at start:\n{phone.log_tail()}")
    host, port = info.sip
    timeout_s = int(opts.calls / opts.rate + sipp_hold_s + opts.talk_s * 4 + 60)
    uac = ChildProcess(
        f"sipp-citizens-{path}",
        [
            "sipp", f"{host}:{port}",
            "-sf", str(uac_xml),
            "-inf", str(citizens),
            "-i", CITIZEN_HOST,
            "-p", str(free_udp_port(CITIZEN_HOST)),
            "-mi", CITIZEN_HOST,
            "-mp", str(free_udp_port(CITIZEN_HOST)),
            "-r", f"{opts.rate:g}", "-rp", "1000",
            "-m", str(opts.calls), "-l", str(opts.calls),
            "-nostdin", "-timeout", f"{timeout_s}s", "-timeout_error",
            "-trace_err", "-error_file", str(phase_dir / "citizens-errors.log"),
            "-trace_stat", "-stf", str(phase_dir / "citizens-stats.csv"), "-fd", "1",
        ],
        log_path=phase_dir / "citizens.log",
    )  # fmt: skip
    children.append(uac)
    paused_at_start = await recorder.paused_members()
    recorder.abandoner = Abandoner(recorder.link, did, opts.patience_s)
    mark = len(recorder.events)
    lost_events0 = recorder.lost_events()
    start = time.time()
    asterisk_cpu0, engine_cpu0 = cpu_seconds(asterisk_pid), cpu_seconds(serve.pid)
    print(
        f"phase {path}: {opts.calls} calls to {did} at {opts.rate:g}/s ...",
        file=sys.stderr,
        flush=True,
    )
    await uac.start()
    code = await asyncio.wait_for(uac.wait(), timeout_s + 30)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_S
    while recorder.live and loop.time() < deadline:
        await asyncio.sleep(0.2)  # until Asterisk reports every channel gone
    end = time.time()
    recorder.abandoner.close()
    recorder.abandoner = None
    asterisk_cpu = cpu_seconds(asterisk_pid) - asterisk_cpu0
    engine_alive = serve.running
    engine_cpu = cpu_seconds(serve.pid) - engine_cpu0 if engine_alive else math.nan
    channels_left = len(recorder.live)
    await asyncio.sleep(1.0)  # the engine's last QueuePause and log lines land
    paused_at_end = await recorder.paused_members()
    phones_died = [p for p in phones if not p.running]
    for phone in phones:
        await phone.stop(sig=2, grace_s=5)  # sipp ends on SIGINT and writes its statistics
    events = recorder.events[mark:]
    calls, agent_free, leg_hangup = analyse(events, did)
    uac_stats = sipp_stats(phase_dir / "citizens-stats.csv")
    uas_stats = sipp_stats(phase_dir / "agents-stats.csv")
    refusing_stats = sipp_stats(phase_dir / "refusing-stats.csv") if len(phones) > 1 else {}
    broke, notes = [], []
    for phone in phones_died:
        broke.append(f"sipp UAS {phone.name} died during the phase: {phone.log_tail(3)!r}")
    if code not in (0, 1):
        broke.append(
            f"sipp citizens exited with code {code} (0: all calls ok, 1: some failed; "
            f"anything else: sipp itself failed or hit its {timeout_s} s timeout)"
        )
    for name, stats in (
        ("citizens", uac_stats),
        ("agents", uas_stats),
        ("refusing", refusing_stats),
    ):
        if name == "refusing" and len(phones) < 2:
            continue
        if sipp_count(stats, "FailedCall(C)") is None:
            broke.append(f"sipp {name}: no statistics (see {name}-stats.csv)")
    for name, stats in (("agents", uas_stats), ("refusing", refusing_stats)):
        failed = sipp_count(stats, "FailedCall(C)") or 0
        if failed >= NOT_PLACED_SHARE * opts.calls:
            broke.append(f"sipp {name} UAS: {failed} failed calls (scenario out of step)")
        elif failed:
            notes.append(f"sipp {name} UAS: {failed} failed calls (see {name}-errors.log)")
    if recorder.lost_events() != lost_events0:
        broke.append("the benchmark's AMI session lost events or reconnected")
    if channels_left:
        notes.append(f"{channels_left} channels still up {DRAIN_S:.0f} s after the last citizen")
    recorder.flush()
    return PhaseResult(
        path=path,
        did=did,
        offered=opts.calls,
        calls=calls,
        agent_free=agent_free,
        leg_hangup=leg_hangup,
        start=start,
        end=end,
        asterisk_cpu_s=asterisk_cpu,
        engine_cpu_s=engine_cpu,
        uac_exit=code,
        uac=uac_stats,
        uas=uas_stats,
        refusing_uas=refusing_stats,
        decided_at=routing_decisions(engine_log, start) if path == "engine" else {},
        paused_at_start=paused_at_start,
        paused_at_end=paused_at_end,
        engine_agents=engine_agents(engine_log, start, end + 1.0),
        engine_problems=engine_log_problems(engine_log, start, end),
        engine_alive=engine_alive,
        channels_left=channels_left,
        harness_broke=broke,
        harness_notes=notes,
    )


@dataclass
class PointResult:
    """One load point: both phases on one fresh private stack."""

    opts: Options
    phases: list[PhaseResult]
    summaries: list[Summary]
    asterisk_version: str
    rtp_range: tuple[int, int]
    refusing: frozenset[str]
    logins: int
    restored: str
    resynced: str
    members: list[dict[str, str]]
    engine_alive: bool
    elapsed: float
    work: Path | None
    code: str
    trails: dict[str, list[str]]  # lost call id -> its AMI events


async def run_point(opts: Options, *, keep: bool = False) -> PointResult:
    """Start a private stack and the engine, run phase A (app_queue) and phase B
    (engine) with the same load, stop everything (also on error)."""
    work = Path(tempfile.mkdtemp(prefix="hotline-bench-vs-"))
    work.chmod(0o755)
    uas_port = free_udp_port(AGENTS_HOST)
    refusing = refusing_agents(opts)
    refusing_port = free_udp_port(AGENTS_HOST) if refusing else None
    config = bench_config(opts, uas_port, refusing_port)
    (work / "stack").mkdir()
    stack = PrivateStack(config, run_dir=work / "stack", env={}, keep_run_dir=keep)
    children: list[ChildProcess] = []
    recorder: Recorder | None = None
    started = time.perf_counter()
    code = code_version()
    try:
        info = await stack.start()
        assert stack.asterisk is not None and stack.asterisk.process is not None
        asterisk_pid = stack.asterisk.process.pid
        assert asterisk_pid is not None
        rtp_range = stack.asterisk.settings.rtp_ports or (0, 0)
        version = (await stack.asterisk.cli("core show version")).strip().splitlines()[0]
        logins = await log_agents_in(info.database_dsn, (a.extension for a in config.agents))
        toml = work / "engine.toml"
        toml.write_text(engine_toml(config, info), encoding="utf-8")
        recorder = Recorder(info, work / "ami-events.jsonl")
        await recorder.start()
        engine_log = work / "engine.log"
        serve = ChildProcess(
            "hotline-serve",
            [
                str(Path(sys.executable).with_name("hotline")),
                "--log-level", "INFO",
                "serve", "--config", str(toml),
            ],
            log_path=engine_log,
            env={**os.environ, "HOTLINE_AMI_SECRET": info.ami.secret},
        )  # fmt: skip
        children.append(serve)
        await serve.start()
        restored = await wait_for_log(engine_log, r"restored \d+ agent states", 30)
        resynced = await wait_for_log(engine_log, r"AMI resync done", 30)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        members: list[dict[str, str]] = []
        while loop.time() < deadline:
            members = await recorder.queue_members()
            if len(members) >= opts.agents and all(m["Paused"] == "0" for m in members):
                break
            await asyncio.sleep(0.2)  # app_queue has no "member added" wait
        else:
            raise RuntimeError(
                f"app_queue has {len(members)} members in {QUEUE}, expected {opts.agents}: "
                f"{members[:5]}"
            )
        rng = random.Random(opts.seed)
        talks = [
            rng.uniform(opts.talk_s - opts.talk_spread_s, opts.talk_s + opts.talk_spread_s)
            for _ in range(opts.calls * 3)
        ]
        talk_file = work / "talk.csv"
        talk_file.write_text(
            "SEQUENTIAL\n" + "".join(f"{int(t * 1000)}\n" for t in talks), encoding="utf-8"
        )
        refusal_rng = random.Random(opts.seed * 31 + 3)
        refusal_file = work / "refusals.csv"
        refusal_file.write_text(
            "SEQUENTIAL\n"
            + "".join(f"{refusal_rng.choice(REFUSAL_CODES)}\n" for _ in range(opts.calls * 3)),
            encoding="utf-8",
        )
        phases = []
        for phase_no, (path, did) in enumerate(
            (("app_queue", APP_QUEUE_DID), ("engine", ENGINE_DID)), start=1
        ):
            phases.append(
                await run_phase(
                    path=path,
                    did=did,
                    opts=opts,
                    info=info,
                    work=work,
                    phase_no=phase_no,
                    recorder=recorder,
                    asterisk_pid=asterisk_pid,
                    serve=serve,
                    engine_log=engine_log,
                    talk_file=talk_file,
                    refusal_file=refusal_file,
                    uas_port=uas_port,
                    refusing_port=refusing_port,
                    children=children,
                )
            )
            await asyncio.sleep(1.0)  # let the engine settle between phases
        engine_alive = serve.running
        summaries = [summarise(p, opts.patience_s) for p in phases]
        lost = {
            call_id: phase.calls[call_id]
            for phase, summary in zip(phases, summaries, strict=True)
            for call_id in summary.lost_ids[:5]
        }
        return PointResult(
            opts=opts,
            phases=phases,
            summaries=summaries,
            asterisk_version=version,
            rtp_range=rtp_range,
            refusing=refusing,
            logins=logins,
            restored=restored,
            resynced=resynced,
            members=members,
            engine_alive=engine_alive,
            elapsed=time.perf_counter() - started,
            work=work if keep else None,
            code=code,
            trails=call_trails(recorder.raw_path, lost),
        )
    finally:
        for child in reversed(children):
            with contextlib.suppress(Exception):
                await child.stop(sig=2 if child.name != "hotline-serve" else 15, grace_s=10)
        if recorder is not None:
            with contextlib.suppress(Exception):
                await recorder.close()
        await stack.stop()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


# -- verdict and report ---------------------------------------------------------------------


def paused_by_engine(phase: PhaseResult) -> set[str]:
    """Agents paused at the end of a phase, by QueueStatus (the engine keeps
    app_queue's pauses in step with its own) or by the engine's own log."""
    return set(phase.paused_at_end) | set(phase.engine_agents.paused_at_end)


def verdict(point: PointResult) -> tuple[str, list[str]]:
    """("PASS" | "FAIL" | "LOAD NOT PLACED" | "HARNESS BROKE", reasons).

    PASS: the engine lost no call, its entry -> answer p50 and p95 are no
    slower than app_queue's (within 5 %), and it left no agent paused. No
    verdict when the harness broke or failed to place 1 % of the offered calls.
    """
    broke = [f"{p.path} phase: {m}" for p in point.phases for m in p.harness_broke]
    short = []
    for phase, summary in zip(point.phases, point.summaries, strict=True):
        missing = not_placed(phase, summary)
        if missing >= NOT_PLACED_SHARE * phase.offered:
            short.append(
                f"{phase.path} phase: {missing} of {phase.offered} offered calls not placed "
                f"(trunk channels {summary.placed}, sipp failed "
                f"{phase.uac.get('FailedCall(C)', '?')}, refused by Asterisk {summary.refused})"
            )
    if short:
        return "LOAD NOT PLACED", short + broke
    if broke:
        return "HARNESS BROKE", broke
    pb, (a, b) = point.phases[1], point.summaries
    reasons = []
    if not pb.engine_alive or not point.engine_alive:
        reasons.append("the engine process exited")
    if b.lost:
        reasons.append(f"engine lost {b.lost} calls")
    if b.dropped:
        reasons.append(f"engine dropped {b.dropped} answered calls (caller leg went first)")
    for label, fraction in (("p50", 0.5), ("p95", 0.95)):
        ours, theirs = pct(b.entry_answer, fraction), pct(a.entry_answer, fraction)
        if ours is None or theirs is None:
            reasons.append(f"no entry -> answer {label} to compare (no answered call)")
        elif ours > theirs * TOLERANCE:
            reasons.append(
                f"entry -> answer {label} {fmt_ms(ours)} ms > app_queue {fmt_ms(theirs)} ms "
                f"x {TOLERANCE:g}"
            )
    paused = paused_by_engine(pb)
    if paused:
        on_refusing = len(paused & point.refusing)
        events = Counter(pb.engine_agents.paused_at_end.values())
        reasons.append(
            f"{len(paused)} agents paused at the end ({on_refusing} on refusing phones"
            + ("; by " + ", ".join(f"{e} x{n}" for e, n in events.most_common()) if events else "")
            + ")"
        )
    if pb.paused_at_start:
        reasons.append(f"{len(pb.paused_at_start)} agents already paused when the phase began")
    return ("FAIL" if reasons else "PASS"), reasons


def describe_load(opts: Options, refusing: frozenset[str]) -> str:
    text = (
        f"{opts.agents} agents (static contacts -> sipp UAS on {AGENTS_HOST}, ring "
        f"{opts.ring_s:g} s, talk uniform {opts.talk_s - opts.talk_spread_s:g}-"
        f"{opts.talk_s + opts.talk_spread_s:g} s, same sequence both phases"
    )
    if refusing:
        text += (
            f"; {len(refusing)} of them ({opts.refusing_share:.0%}) on a second UAS that "
            f"refuses every call with {'/'.join(REFUSAL_CODES)} in a seeded sequence"
        )
    return (
        text + f"); {opts.calls} calls/phase at {opts.rate:g}/s from one sipp UAC, "
        f"patience {opts.patience_s:g} s"
    )


def point_lines(point: PointResult) -> list[str]:
    """Both phases of one point side by side, then the verdict."""
    (pa, pb), (a, b) = point.phases, point.summaries
    low, high = point.rtp_range
    out = [
        f"Asterisk RTP ports {low}-{high} ({high - low + 1} ports, "
        f"{(high - low + 1) // RTP_PORTS_PER_CALL} calls); "
        f"agents logged in: {point.logins} AGENT_LOGIN rows -> engine log: "
        f"'{_tail(point.restored)}'; app_queue QueueStatus: {len(point.members)} members, "
        f"{sum(m['Paused'] == '0' for m in point.members)} unpaused",
        f"{'':<50} {'app_queue (' + pa.did + ')':>24} {'engine (' + pb.did + ')':>24}",
    ]

    def row(label: str, left: object, right: object) -> None:
        out.append(f"{label:<50} {left!s:>24} {right!s:>24}")

    def count(stats: dict[str, str], column: str) -> str:
        value = sipp_count(stats, column)
        return "?" if value is None else str(value)

    def sipp_row(label: str, left: dict[str, str], right: dict[str, str]) -> None:
        row(
            label,
            f"{count(left, 'SuccessfulCall(C)')} / {count(left, 'FailedCall(C)')}",
            f"{count(right, 'SuccessfulCall(C)')} / {count(right, 'FailedCall(C)')}",
        )

    def fifo(summary: Summary) -> str:
        share = summary.overtakes / summary.answered_pairs if summary.answered_pairs else 0.0
        return f"{summary.overtakes} ({share:.2%}) / {summary.overtaken}"

    def paused(phase: PhaseResult) -> str:
        return f"{len(phase.paused_at_end)} / {len(phase.engine_agents.paused_at_end)}"

    def cpu(seconds: float, summary: Summary) -> str:
        return f"{seconds:.2f} ({seconds / max(1, summary.placed) * 1000:.1f})"

    row("offered (calls sipp was asked to place)", pa.offered, pb.offered)
    row("placed (trunk channels seen)", a.placed, b.placed)
    row("refused by Asterisk (caller never answered)", a.refused, b.refused)
    row("entered the queue", a.queued, b.queued)
    row("answered by an agent", a.answered, b.answered)
    row("LOST (not answered, not a planned abandon)", a.lost, b.lost)
    row("planned abandons (patience ran out waiting)", a.planned_abandons, b.planned_abandons)
    row("dropped after answer (caller leg went first)", a.dropped, b.dropped)
    row("cut by patience during the talk", a.cut_by_patience, b.cut_by_patience)
    row(
        "re-rings (RONA) / dialplan fallbacks",
        f"{a.rona} / {a.fallbacks}",
        f"{b.rona} / {b.fallbacks}",
    )
    statuses = sorted(set(a.dial_failures) | set(b.dial_failures))
    row("agent dials not answered", a.dial_failures.total(), b.dial_failures.total())
    for status in statuses:
        row(f"  DialStatus {status}", a.dial_failures[status], b.dial_failures[status])
    sipp_row("sipp citizens: successful / failed", pa.uac, pb.uac)
    sipp_row("sipp agents: successful / failed", pa.uas, pb.uas)
    if point.refusing:
        sipp_row("sipp refusing phones: successful / failed", pa.refusing_uas, pb.refusing_uas)
    row(
        "queue entry -> ringing, p50 / p95 / p99 ms", fmt_pcts(a.entry_ring), fmt_pcts(b.entry_ring)
    )
    row(
        "queue entry -> answer, p50 / p95 / p99 ms",
        fmt_pcts(a.entry_answer),
        fmt_pcts(b.entry_answer),
    )
    row(
        "  max entry -> answer ms",
        fmt_ms(max(a.entry_answer, default=None)),
        fmt_ms(max(b.entry_answer, default=None)),
    )
    row(
        "  calls waiting > 1 s for ringing",
        sum(x > 1 for x in a.entry_ring),
        sum(x > 1 for x in b.entry_ring),
    )
    row(
        "entry -> answer or abandon, p50 / p95 / p99 ms",
        fmt_pcts(a.queue_time),
        fmt_pcts(b.queue_time),
    )
    row("FIFO overtakes (share of pairs) / calls overtaken", fifo(a), fifo(b))
    row(
        "dispatch: call+free agent -> ringing, p50/p95",
        fmt_pcts(a.dispatch, (0.5, 0.95)),
        fmt_pcts(b.dispatch, (0.5, 0.95)),
    )
    row(
        "ringing -> answer (the agent's ring), p50/p95",
        fmt_pcts(a.ring_answer, (0.5, 0.95)),
        fmt_pcts(b.ring_answer, (0.5, 0.95)),
    )
    row(
        "mean talk s (answer -> agent hangs up)",
        f"{sum(a.talk) / max(1, len(a.talk)):.2f}",
        f"{sum(b.talk) / max(1, len(b.talk)):.2f}",
    )
    row("phase wall time s", f"{pa.end - pa.start:.1f}", f"{pb.end - pb.start:.1f}")
    row("Asterisk CPU s (ms per call)", cpu(pa.asterisk_cpu_s, a), cpu(pb.asterisk_cpu_s, b))
    row("engine process CPU s (ms per call)", cpu(pa.engine_cpu_s, a), cpu(pb.engine_cpu_s, b))
    row(
        "agents paused at the start (QueueStatus)", len(pa.paused_at_start), len(pb.paused_at_start)
    )
    row("agents paused at the end (QueueStatus / engine)", paused(pa), paused(pb))
    if point.refusing:
        row(
            "  of which on refusing phones",
            len(paused_by_engine(pa) & point.refusing),
            len(paused_by_engine(pb) & point.refusing),
        )
    for phase in point.phases:
        pauses = phase.engine_agents.pauses
        if pauses:
            out.append(
                f"engine agent transitions to PAUSED during phase {phase.path}: "
                + ", ".join(f"-[{e}]-> PAUSED x{n}" for e, n in pauses.most_common())
            )
    out.append("where the time goes (p50 / p95 ms, first ring of each call):")
    for path, summary in (("app_queue", a), ("engine", b)):
        for name, values in summary.segments.items():
            out.append(
                f"  {path:<9} {name:<56} {fmt_ms(pct(values, 0.5)):>6} / "
                f"{fmt_ms(pct(values, 0.95)):>6}  (n={len(values)})"
            )
    out.append(
        f"engine process: {'still running' if point.engine_alive else 'EXITED'} at the end; "
        f"'{_tail(point.resynced)}'"
    )
    for phase in point.phases:
        out.append(
            f"engine log lines >= WARNING during phase {phase.path}: "
            + (
                "; ".join(
                    f"{k} x{v} (first: {first!r})"
                    for k, (v, first) in phase.engine_problems.items()
                )
                or "none"
            )
        )
    for phase in point.phases:
        for message in phase.harness_broke:
            out.append(f"HARNESS BROKE in phase {phase.path}: {message}")
        for message in phase.harness_notes:
            out.append(f"harness note, phase {phase.path}: {message}")
    for phase, summary in zip(point.phases, point.summaries, strict=True):
        for call_id in summary.lost_ids[:5]:
            out.append(f"{phase.path} lost call {call_id}:")
            out += point.trails.get(call_id, [])
    status, reasons = verdict(point)
    verdict_line = {
        "PASS": "PASS",
        "FAIL": "FAIL",
        "LOAD NOT PLACED": "LOAD NOT PLACED: no verdict",
        "HARNESS BROKE": "HARNESS BROKE: no verdict, the figures above cannot be trusted",
    }[status]
    out.append(
        "verdict (engine: zero lost, entry->answer p50 and p95 <= app_queue x "
        f"{TOLERANCE:g}, zero agents paused at the end): {verdict_line}"
        + (f" ({'; '.join(reasons)})" if reasons else "")
    )
    if point.work is not None:
        out.append(f"run directory kept: {point.work}")
    return out


def sipp_version() -> str:
    text = subprocess.run(["sipp", "-v"], capture_output=True, text=True).stdout
    return next((ln.strip() for ln in text.splitlines() if "SIPp" in ln), "sipp")


def machine_line(asterisk_version: str) -> str:
    return (
        f"python {platform.python_version()} on {platform.platform()}, {os.cpu_count()} CPUs, "
        f"{cpu_model()}; {asterisk_version}; {sipp_version()}"
    )


ENGINE_SETUP = (
    f"engine: separate process (hotline serve), ring_timeout_s={RING_TIMEOUT_S}, "
    "wrapup_s=0 (app_queue has no wrap-up), other ACD settings default; "
    "app_queue: strategy leastrecent, ringinuse=no, timeout 15, retry 2 "
    "(generated queues.conf)"
)


def report(point: PointResult, command: str) -> None:
    out = [
        "```",
        f"$ {command}",
        machine_line(point.asterisk_version),
        f"code {point.code}",
        describe_load(point.opts, point.refusing),
        ENGINE_SETUP,
        *point_lines(point),
        f"wall time {point.elapsed:.0f} s (stack start, both phases and teardown)",
        "```",
    ]
    print("\n".join(out), flush=True)


TRAIL_HEADERS = (
    "Channel",
    "ChannelStateDesc",
    "Context",
    "Exten",
    "Priority",
    "UserEvent",
    "Agent",
    "DialStatus",
    "DestChannel",
    "Cause",
    "Cause-txt",
    "Class",
    "Queue",
)


def call_trails(raw_path: Path, calls: dict[str, Call]) -> dict[str, list[str]]:
    """The AMI events of each call, for a lost call's post-mortem."""
    out: dict[str, list[str]] = {call_id: [] for call_id in calls}
    if not calls:
        return out
    with contextlib.suppress(OSError), open(raw_path, encoding="utf-8") as lines:
        for line in lines:
            event = json.loads(line)
            for key in ("Linkedid", "DestLinkedid"):
                call = calls.get(event.get(key, ""))
                if call is not None:
                    break
            else:
                continue
            try:
                rel = float(event.get("Timestamp", "")) - call.arrived
            except ValueError:
                rel = float("nan")
            detail = " ".join(f"{k}={event[k]}" for k in TRAIL_HEADERS if event.get(k))
            out[call.call_id].append(f"  {rel:+8.3f} s {event.get('Event', '?')} {detail}"[:200])
    return out


def _tail(line: str) -> str:
    return line.split(": ", 1)[-1] if ": " in line else line


def script_command(script: str, args: argparse.Namespace, skip: Iterable[str] = ()) -> str:
    """The command line that reproduces this run, every option spelled out."""
    python = os.path.relpath(sys.executable, Path.cwd())
    return shlex.join(
        [
            python if not python.startswith("..") else sys.executable,
            os.path.relpath(script, Path.cwd()),
            *(f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k not in skip),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--calls", type=int, default=240, help="calls per phase")
    parser.add_argument("--rate", type=float, default=2.5, help="calls per second")
    parser.add_argument("--talk-s", type=float, default=8.0)
    parser.add_argument("--talk-spread-s", type=float, default=4.0)
    parser.add_argument("--ring-s", type=float, default=0.7)
    parser.add_argument("--patience-s", type=float, default=120.0)
    parser.add_argument(
        "--refusing-share",
        type=float,
        default=0.0,
        help="share of the agents whose phones refuse every call with 480/486/503",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    args = parser.parse_args(argv)
    if not 0 <= args.talk_spread_s < args.talk_s:
        parser.error("--talk-spread-s must be >= 0 and below --talk-s")
    if not 0 <= args.refusing_share < 1:
        parser.error("--refusing-share must be >= 0 and below 1")
    if shutil.which("sipp") is None:
        parser.error("sipp is not installed (package sip-tester; scripts/setup-system.sh)")
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    opts = Options(
        agents=args.agents,
        calls=args.calls,
        rate=args.rate,
        talk_s=args.talk_s,
        talk_spread_s=args.talk_spread_s,
        ring_s=args.ring_s,
        patience_s=args.patience_s,
        seed=args.seed,
        refusing_share=args.refusing_share,
    )
    command = script_command(__file__, args, skip=("keep",))
    report(asyncio.run(run_point(opts, keep=args.keep)), command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
