"""The engine against Asterisk's own app_queue, end to end, in one run on one
machine: same Asterisk, same agents, same sipp load. A benchmark, not a test.

One private stack (``cti.stack.private.PrivateStack``: Asterisk, PostgreSQL,
Redis) is configured with two lines into the same queue: DID 12399 routed by
app_queue (``route = "app_queue"``, the dialplan's ``Queue()``) and DID 12345
routed by the engine (``route = "engine"``). ``--agents`` agents have static
PJSIP contacts pointing at ONE sipp UAS (``bench/scenarios/agent_uas.xml.tmpl``)
that rings ``--ring-s`` before answering, talks for a time drawn once from
uniform(talk - spread, talk + spread) with ``--seed`` (the same sequence in both
phases, through a sipp injection file) and hangs up.

The engine runs in a SEPARATE process, ``hotline serve`` with a TOML written
here (``wrapup_s = 0``: app_queue has no wrap-up, so the comparison is fair;
``ring_timeout_s = 15``), so that its CPU is measured on its own. Its agents
are logged in the way an engine restart finds them: AGENT_LOGIN rows written to
its PostgreSQL event log before it starts; the engine restores them and puts
them in app_queue's queue (QueueAdd), which is checked with AMI QueueStatus
before any call is placed, so app_queue's members are the same agents.

Phase A: sipp UAC (``bench/scenarios/citizen_uac.xml.tmpl``) places ``--calls``
calls at ``--rate`` calls/s to 12399 (app_queue). Phase B: the same load to
12345 (engine). Citizens wait up to ``--patience-s`` after Asterisk answers
(then hang up: a planned abandon); otherwise the agent ends the call.

Everything is measured from AMI events recorded by the benchmark's own
manager session (``cti.ami.AMILink``), with Asterisk's ``Timestamp``:

* queue entry: ``UserEvent(HotlineEnqueue)`` (engine), ``QueueCallerJoin`` (app_queue);
* ringing: the agent leg's ``Newstate`` Ringing; answer: its ``Newstate`` Up
  (the same events on both paths);
* lost: entered (or arrived) and never answered, except planned abandons;
  dropped: answered but the caller's channel went first;
* dispatch latency: first ring - max(queue entry, the moment the ringing agent
  became free: its previous leg's Hangup), i.e. the routing delay once a call
  and a free agent both exist, whatever the queueing;
* CPU: utime + stime of Asterisk and of the engine process from /proc per phase.

Run from the repository root (about 5 minutes with the defaults)::

    .venv/bin/python bench/bench_vs_app_queue.py

Results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
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
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout

from acd.event_log import EventLogWriter  # noqa: E402
from acd.log_events import AGENT_LOGIN, LogEvent  # noqa: E402
from bench.provenance import code_version, cpu_model  # noqa: E402
from cti.ami import AMILink  # noqa: E402
from cti.config import AcdConfig, AgentSpec, EngineConfig, LineSpec  # noqa: E402
from cti.db import migrate  # noqa: E402
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
_ROUTING_LOG = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO cti\.engine: "
    r"call (\S+): routing to agent (\d+)"
)

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


class Recorder:
    """The benchmark's own manager session: call events, with Asterisk's timestamps."""

    def __init__(self, info: StackInfo) -> None:
        ami = info.ami
        self.link = AMILink(
            host=ami.host,
            port=ami.port,
            username=ami.username,
            secret=ami.secret,
            name="bench-listener",
        )
        self.events: list[Rec] = []
        self.raw: list[dict[str, str]] = []  # every event, every header (first value)
        self.live: set[str] = set()
        self.link.add_event_handler(self._on_event)

    def _on_event(self, event: Any) -> None:
        name = _first(event.get("Event"))
        self.raw.append({str(k): _first(v) for k, v in event.items()})
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

    async def close(self) -> None:
        await self.link.close()


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


def bench_config(opts: Options, uas_port: int) -> EngineConfig:
    return EngineConfig(
        agents=tuple(
            AgentSpec(
                str(1001 + n),
                f"坐席{n + 1:02d}",
                contact=f"sip:{1001 + n}@{AGENTS_HOST}:{uas_port}",
            )
            for n in range(opts.agents)
        ),
        lines=(
            LineSpec(ENGINE_DID, "12345", QUEUE, route="engine"),
            LineSpec(APP_QUEUE_DID, "12399", QUEUE, route="app_queue"),
        ),
        ring_timeout_s=RING_TIMEOUT_S,
        acd=AcdConfig(wrapup_s=0.0),
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
    writer = EventLogWriter(dsn=dsn, engine_id="bench-setup")
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


# -- analysis -------------------------------------------------------------------------------


@dataclass
class Call:
    call_id: str
    caller_uid: str
    arrived: float
    entry: float | None = None
    rings: list[tuple[float, str, str]] = field(default_factory=list)  # (at, agent, leg uid)
    answers: list[tuple[float, str, str]] = field(default_factory=list)
    connects: list[tuple[float, str]] = field(default_factory=list)  # HotlineConnect (engine)
    dial_begins: list[tuple[float, str]] = field(default_factory=list)
    hangup: float | None = None
    cause: str = ""
    fallback: bool = False


@dataclass
class PhaseResult:
    path: str
    did: str
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
    decided_at: dict[str, float]  # engine log: call id -> first "routing to agent" time


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
    return calls, agent_free, leg_hangup


def routing_decisions(log_path: Path, since: float) -> dict[str, float]:
    """call id -> time of the engine's first "routing to agent" log line (ms resolution)."""
    out: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in log_path.read_text(errors="replace").splitlines():
            match = _ROUTING_LOG.match(line)
            if not match:
                continue
            at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").timestamp()
            at += int(match.group(2)) / 1000.0
            if at >= since - 1:
                out.setdefault(match.group(3), at)
    return out


def pct(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.0f}"


def free_since(
    agent_free: dict[str, list[float]], agent: str, before: float, floor: float
) -> float:
    """When *agent* last became free before *before* (its previous leg hung up)."""
    times = [t for t in agent_free.get(agent, []) if t <= before]
    return max(times) if times else floor


@dataclass
class Summary:
    placed: int
    queued: int
    answered: int
    lost: int
    planned_abandons: int
    dropped: int
    fallbacks: int
    rona: int
    entry_ring: list[float]
    entry_answer: list[float]
    dispatch: list[float]
    ring_answer: list[float]
    talk: list[float]
    segments: dict[str, list[float]]
    lost_ids: list[str]


def summarise(phase: PhaseResult, patience_s: float) -> Summary:
    calls = list(phase.calls.values())
    entry_ring, entry_answer, dispatch, ring_answer, talk = [], [], [], [], []
    segments: dict[str, list[float]] = {}
    lost_ids = []
    planned = dropped = rona = 0
    for call in calls:
        answered = bool(call.answers)
        if not answered:
            waited = (call.hangup or phase.end) - call.arrived
            if call.hangup is not None and waited >= patience_s - 1.0:
                planned += 1
            else:
                lost_ids.append(call.call_id)
            continue
        answer_at, agent, leg = call.answers[0]
        if call.hangup is not None and call.hangup < phase.leg_hangup.get(leg, float("inf")):
            dropped += 1
        if leg in phase.leg_hangup:
            talk.append(phase.leg_hangup[leg] - answer_at)
        rona += max(0, len(call.rings) - 1)
        if call.entry is None or not call.rings:
            continue
        ring_at, ring_agent, _ = call.rings[0]
        entry_ring.append(ring_at - call.entry)
        entry_answer.append(answer_at - call.entry)
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
    return Summary(
        placed=len(calls),
        queued=sum(c.entry is not None for c in calls),
        answered=sum(bool(c.answers) for c in calls),
        lost=len(lost_ids),
        planned_abandons=planned,
        dropped=dropped,
        fallbacks=sum(c.fallback for c in calls),
        rona=rona,
        entry_ring=entry_ring,
        entry_answer=entry_answer,
        dispatch=dispatch,
        ring_answer=ring_answer,
        talk=talk,
        segments=segments,
        lost_ids=lost_ids,
    )


# -- the run --------------------------------------------------------------------------------


def citizens_file(path: Path, phase: int, calls: int, rng: random.Random) -> None:
    """Caller numbers distinct per phase: the engine's repeat-caller preference
    (same agent as last time) must not see phase A's callers again in phase B."""
    rows = ["SEQUENTIAL"]
    for n in range(calls):
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.randint(1, 2)))
        rows.append(f"13{phase}9{n:07d};{name}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


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
    engine_pid: int,
    engine_log: Path,
    talk_file: Path,
    uas_port: int,
    children: list[ChildProcess],
) -> PhaseResult:
    assert info.sip is not None
    phase_dir = work / f"phase-{path}"
    phase_dir.mkdir()
    uas_xml = phase_dir / "agents.xml"
    uas_xml.write_text(
        render(
            (SCENARIOS / "agent_uas.xml.tmpl").read_text(encoding="utf-8"),
            {"ring_ms": int(opts.ring_s * 1000)},
            name="agent_uas.xml.tmpl",
        ),
        encoding="utf-8",
    )
    uac_xml = phase_dir / "citizens.xml"
    uac_xml.write_text(
        render(
            (SCENARIOS / "citizen_uac.xml.tmpl").read_text(encoding="utf-8"),
            {"did": did, "patience_ms": int(opts.patience_s * 1000)},
            name="citizen_uac.xml.tmpl",
        ),
        encoding="utf-8",
    )
    citizens = phase_dir / "citizens.csv"
    citizens_file(citizens, phase_no, opts.calls, random.Random(opts.seed * 10 + phase_no))
    uas = ChildProcess(
        f"sipp-agents-{path}",
        [
            "sipp",
            "-sf", str(uas_xml),
            "-inf", str(talk_file),
            "-i", AGENTS_HOST,
            "-p", str(uas_port),
            "-mi", AGENTS_HOST,
            "-mp", str(free_udp_port(AGENTS_HOST)),
            "-nostdin",
            "-trace_err", "-error_file", str(phase_dir / "agents-errors.log"),
            "-trace_stat", "-stf", str(phase_dir / "agents-stats.csv"), "-fd", "1",
        ],
        log_path=phase_dir / "agents.log",
    )  # fmt: skip
    children.append(uas)
    await uas.start()
    await asyncio.sleep(0.5)  # sipp binds its port; nothing to await on
    if not uas.running:
        raise RuntimeError(f"sipp UAS exited at start:\n{uas.log_tail()}")
    host, port = info.sip
    timeout_s = int(opts.calls / opts.rate + opts.patience_s + opts.talk_s * 4 + 60)
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
    mark = len(recorder.events)
    start = time.time()
    asterisk_cpu0, engine_cpu0 = cpu_seconds(asterisk_pid), cpu_seconds(engine_pid)
    print(
        f"phase {path}: {opts.calls} calls to {did} at {opts.rate:g}/s ...",
        file=sys.stderr,
        flush=True,
    )
    await uac.start()
    code = await asyncio.wait_for(uac.wait(), timeout_s + 30)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while recorder.live and loop.time() < deadline:
        await asyncio.sleep(0.2)  # until Asterisk reports every channel gone
    end = time.time()
    asterisk_cpu = cpu_seconds(asterisk_pid) - asterisk_cpu0
    engine_cpu = cpu_seconds(engine_pid) - engine_cpu0
    await uas.stop(sig=2, grace_s=5)  # sipp ends on SIGINT and writes its statistics
    events = recorder.events[mark:]
    calls, agent_free, leg_hangup = analyse(events, did)
    return PhaseResult(
        path=path,
        did=did,
        calls=calls,
        agent_free=agent_free,
        leg_hangup=leg_hangup,
        start=start,
        end=end,
        asterisk_cpu_s=asterisk_cpu,
        engine_cpu_s=engine_cpu,
        uac_exit=code,
        uac=sipp_stats(phase_dir / "citizens-stats.csv"),
        uas=sipp_stats(phase_dir / "agents-stats.csv"),
        decided_at=routing_decisions(engine_log, start) if path == "engine" else {},
    )


async def run(opts: Options, command: str, keep: bool) -> int:
    work = Path(tempfile.mkdtemp(prefix="hotline-bench-vs-"))
    work.chmod(0o755)
    uas_port = free_udp_port(AGENTS_HOST)
    config = bench_config(opts, uas_port)
    (work / "stack").mkdir()
    stack = PrivateStack(config, run_dir=work / "stack", env={}, keep_run_dir=keep)
    children: list[ChildProcess] = []
    recorder: Recorder | None = None
    serve: ChildProcess | None = None
    started = time.perf_counter()
    code = code_version()
    try:
        info = await stack.start()
        assert stack.asterisk is not None and stack.asterisk.process is not None
        asterisk_pid = stack.asterisk.process.pid
        assert asterisk_pid is not None
        version = (await stack.asterisk.cli("core show version")).strip().splitlines()[0]
        logins = await log_agents_in(info.database_dsn, (a.extension for a in config.agents))
        toml = work / "engine.toml"
        toml.write_text(engine_toml(config, info), encoding="utf-8")
        recorder = Recorder(info)
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
        assert serve.pid is not None
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
                f"{members}"
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
                    engine_pid=serve.pid,
                    engine_log=engine_log,
                    talk_file=talk_file,
                    uas_port=uas_port,
                    children=children,
                )
            )
            await asyncio.sleep(1.0)  # let the engine settle between phases
        engine_alive = serve.running
        if keep:
            with open(work / "ami-events.jsonl", "w", encoding="utf-8") as dump:
                for event in recorder.raw:
                    dump.write(json.dumps(event, ensure_ascii=False) + "\n")
        elapsed = time.perf_counter() - started
        report(
            opts=opts,
            command=command,
            version=version,
            phases=phases,
            logins=logins,
            restored=restored,
            resynced=resynced,
            members=members,
            engine_log=engine_log,
            engine_alive=engine_alive,
            elapsed=elapsed,
            work=work if keep else None,
            code=code,
            raw_events=recorder.raw,
        )
        return 0
    finally:
        for child in reversed(children):
            with contextlib.suppress(Exception):
                await child.stop(sig=2 if child.name.startswith("sipp") else 15, grace_s=10)
        if recorder is not None:
            with contextlib.suppress(Exception):
                await recorder.close()
        await stack.stop()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def report(
    *,
    opts: Options,
    command: str,
    version: str,
    phases: list[PhaseResult],
    logins: int,
    restored: str,
    resynced: str,
    members: list[dict[str, str]],
    engine_log: Path,
    engine_alive: bool,
    elapsed: float,
    work: Path | None,
    code: str,
    raw_events: list[dict[str, str]],
) -> None:
    sums = [summarise(p, opts.patience_s) for p in phases]
    a, b = sums
    pa, pb = phases
    sipp_version = subprocess.run(["sipp", "-v"], capture_output=True, text=True).stdout
    sipp_version = next((ln.strip() for ln in sipp_version.splitlines() if "SIPp" in ln), "sipp")
    out = [
        "```",
        f"$ {command}",
        f"python {platform.python_version()} on {platform.platform()}, {os.cpu_count()} CPUs, "
        f"{cpu_model()}; {version}; {sipp_version}",
        f"code {code}",
        f"{opts.agents} agents (static contacts -> one sipp UAS on {AGENTS_HOST}, ring "
        f"{opts.ring_s:g} s, talk uniform {opts.talk_s - opts.talk_spread_s:g}-"
        f"{opts.talk_s + opts.talk_spread_s:g} s, same sequence both phases); "
        f"{opts.calls} calls/phase at {opts.rate:g}/s from one sipp UAC, patience "
        f"{opts.patience_s:g} s",
        f"engine: separate process (hotline serve), ring_timeout_s={RING_TIMEOUT_S}, "
        "wrapup_s=0 (app_queue has no wrap-up), other ACD settings default; "
        "app_queue: strategy leastrecent, ringinuse=no, timeout 15, retry 2 "
        "(generated queues.conf)",
        f"agents logged in: {logins} AGENT_LOGIN rows -> engine log: "
        f"'{_tail(restored)}'; app_queue QueueStatus: {len(members)} members, "
        f"{sum(m['Paused'] == '0' for m in members)} unpaused",
        f"{'':<46} {'app_queue (' + pa.did + ')':>18} {'engine (' + pb.did + ')':>18}",
    ]

    def row(label: str, left: object, right: object) -> None:
        out.append(f"{label:<46} {left!s:>18} {right!s:>18}")

    def dist(label: str, left: list[float], right: list[float]) -> None:
        row(
            label,
            f"{fmt_ms(pct(left, 0.5))} / {fmt_ms(pct(left, 0.95))}",
            f"{fmt_ms(pct(right, 0.5))} / {fmt_ms(pct(right, 0.95))}",
        )

    row("calls placed (trunk channels seen)", a.placed, b.placed)
    row("entered the queue", a.queued, b.queued)
    row("answered by an agent", a.answered, b.answered)
    row("LOST (not answered, not a planned abandon)", a.lost, b.lost)
    row("planned abandons (patience ran out)", a.planned_abandons, b.planned_abandons)
    row("dropped after answer (caller leg went first)", a.dropped, b.dropped)
    row(
        "re-rings (RONA) / dialplan fallbacks",
        f"{a.rona} / {a.fallbacks}",
        f"{b.rona} / {b.fallbacks}",
    )
    row(
        "sipp citizens: successful / failed",
        f"{pa.uac.get('SuccessfulCall(C)', '?')} / {pa.uac.get('FailedCall(C)', '?')}",
        f"{pb.uac.get('SuccessfulCall(C)', '?')} / {pb.uac.get('FailedCall(C)', '?')}",
    )
    row(
        "sipp agents: successful / failed",
        f"{pa.uas.get('SuccessfulCall(C)', '?')} / {pa.uas.get('FailedCall(C)', '?')}",
        f"{pb.uas.get('SuccessfulCall(C)', '?')} / {pb.uas.get('FailedCall(C)', '?')}",
    )
    dist("queue entry -> agent ringing, p50 / p95 ms", a.entry_ring, b.entry_ring)
    dist("queue entry -> agent answer, p50 / p95 ms", a.entry_answer, b.entry_answer)
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
    dist("dispatch: call+free agent -> ringing, p50/p95", a.dispatch, b.dispatch)
    dist("ringing -> answer (the agent's ring), p50/p95", a.ring_answer, b.ring_answer)
    row(
        "mean talk s (answer -> agent hangs up)",
        f"{sum(a.talk) / max(1, len(a.talk)):.2f}",
        f"{sum(b.talk) / max(1, len(b.talk)):.2f}",
    )
    row("phase wall time s", f"{pa.end - pa.start:.1f}", f"{pb.end - pb.start:.1f}")
    for label, attr in (("Asterisk", "asterisk_cpu_s"), ("engine process", "engine_cpu_s")):
        left, right = getattr(pa, attr), getattr(pb, attr)
        row(
            f"{label} CPU s (ms per call)",
            f"{left:.2f} ({left / max(1, a.placed) * 1000:.1f})",
            f"{right:.2f} ({right / max(1, b.placed) * 1000:.1f})",
        )
    out.append("where the time goes (p50 / p95 ms, first ring of each call):")
    for path, summary in (("app_queue", a), ("engine", b)):
        for name, values in summary.segments.items():
            out.append(
                f"  {path:<9} {name:<56} {fmt_ms(pct(values, 0.5)):>6} / "
                f"{fmt_ms(pct(values, 0.95)):>6}  (n={len(values)})"
            )
    med_a, med_b = pct(a.entry_answer, 0.5), pct(b.entry_answer, 0.5)
    no_slower = med_a is not None and med_b is not None and med_b <= med_a
    zero_lost = b.lost == 0 and b.dropped == 0
    delta = "" if med_a is None or med_b is None else f", {(med_b - med_a) * 1000:+,.0f} ms"
    out.append(
        "goal (engine no slower than app_queue at the median entry->answer, zero calls lost): "
        f"{'PASS' if no_slower and zero_lost else 'FAIL'} (median {fmt_ms(med_b)} vs "
        f"{fmt_ms(med_a)} ms{delta}; lost {b.lost}, dropped {b.dropped})"
    )
    out.append(
        f"engine process: {'still running' if engine_alive else 'EXITED'} at the end; "
        f"'{_tail(resynced)}'"
    )
    for phase in phases:
        problems = _engine_log_problems(engine_log, phase.start, phase.end)
        out.append(
            f"engine log lines >= WARNING during phase {phase.path}: "
            + (
                "; ".join(f"{k} x{v} (first: {first!r})" for k, (v, first) in problems.items())
                or "none"
            )
        )
    for phase, summary in zip(phases, sums, strict=True):
        for call_id in summary.lost_ids[:5]:
            out.append(f"{phase.path} lost call {call_id}:")
            out += trail(raw_events, phase.calls[call_id])
    out.append(f"wall time {elapsed:.0f} s (stack start, both phases and teardown)")
    if work is not None:
        out.append(f"run directory kept: {work}")
    out.append("```")
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


def trail(raw_events: list[dict[str, str]], call: Call) -> list[str]:
    """The AMI events of one call, for a lost call's post-mortem."""
    lines = []
    for event in raw_events:
        if call.call_id not in (event.get("Linkedid"), event.get("DestLinkedid")):
            continue
        try:
            rel = float(event.get("Timestamp", "")) - call.arrived
        except ValueError:
            rel = float("nan")
        detail = " ".join(f"{k}={event[k]}" for k in TRAIL_HEADERS if event.get(k))
        lines.append(f"  {rel:+8.3f} s {event.get('Event', '?')} {detail}"[:200])
    return lines


def _tail(line: str) -> str:
    return line.split(": ", 1)[-1] if ": " in line else line


def _engine_log_problems(path: Path, start: float, end: float) -> dict[str, tuple[int, str]]:
    """WARNING/ERROR lines of the engine log within [start, end]: count and first message."""
    found: dict[str, tuple[int, str]] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split(" ", 4)
            if len(parts) < 5 or parts[2] not in ("WARNING", "ERROR", "CRITICAL"):
                continue
            try:
                at = datetime.strptime(f"{parts[0]} {parts[1]}", "%Y-%m-%d %H:%M:%S,%f")
            except ValueError:
                continue
            if not start - 1 <= at.timestamp() <= end + 1:
                continue
            key = f"{parts[2]} {parts[3].rstrip(':')}"
            count, first = found.get(key, (0, parts[4][:110]))
            found[key] = (count + 1, first)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--calls", type=int, default=240, help="calls per phase")
    parser.add_argument("--rate", type=float, default=2.5, help="calls per second")
    parser.add_argument("--talk-s", type=float, default=8.0)
    parser.add_argument("--talk-spread-s", type=float, default=4.0)
    parser.add_argument("--ring-s", type=float, default=0.7)
    parser.add_argument("--patience-s", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    args = parser.parse_args(argv)
    if not 0 <= args.talk_spread_s < args.talk_s:
        parser.error("--talk-spread-s must be >= 0 and below --talk-s")
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
    )
    python = os.path.relpath(sys.executable, Path.cwd())
    command = shlex.join(
        [
            python if not python.startswith("..") else sys.executable,
            os.path.relpath(__file__, Path.cwd()),
            *(f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k != "keep"),
        ]
    )
    return asyncio.run(run(opts, command, args.keep))


if __name__ == "__main__":
    sys.exit(main())
