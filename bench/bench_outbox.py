"""The work-order outbox to the city 12345 platform: delivery throughput end
to end, and delivery lag under an offered load. A benchmark, not a test.

Everything runs on this machine: a private PostgreSQL with the core's and the
work-order feature's migrations, and the city simulator
(``workorder_sync.city.simulator``: reference protocol, signed requests, no
faults, orders left alone with ``auto_progress=False``) served by
``run_simulator`` in a child process (``--city child``, the default, so that
the city does not take the workers' share of this process's core) or in this
process (``--city inproc``). Every run starts from empty work-order tables and
a fresh simulator (whose nonce store holds at most 100,000 nonces for 300 s:
keep one run under that many requests).

1. **Throughput.** ``--orders`` orders pre-created as an agent leaves them
   (new_draft -> ACCEPT -> SEND_TO_DISPATCH -> EDIT -> EDIT: a CREATE and two
   UPDATEs each, written with the order by ``OrderStore.create`` in one
   transaction), then the delivery workers started with the engine's
   ``DeliverySettings``: for each count in ``--workers``, as asyncio tasks in
   this process sharing one pool of the engine's size
   (``cti.runtime.POOL_MAX_SIZE``) and woken by a NOTIFY listener, as
   ``workorder_sync.feature`` runs them; and ``--procs`` separate
   ``python -m workorder_sync.deliver`` processes (settings on stdin, their own
   pools). Order events/s = messages delivered / (the last ``delivered_at`` -
   the workers' start); for the processes also from the first claim
   (``min(first_attempt_at)``), their start-up left out.
2. **Lag.** For each of ``--rates``, a producer in this process creates orders
   at that rate for ``--seconds`` on an open-loop schedule (new_draft ->
   ACCEPT -> SEND_TO_DISPATCH: one CREATE each, in one transaction, at most
   ``--in-flight`` at once) while ``--lag-workers`` workers deliver
   (``--lag-crew``: in-process tasks as above, or processes, which have no
   NOTIFY listener and poll an idle outbox each second). Lag = when the city
   received the CREATE (the simulator's ``Received.at``, same clock) - when
   ``OrderStore.create`` returned (committed; it returns after the pool's
   connection reset, so a lag is understated by up to that round trip). A
   rate is placed when the producer committed every order at 95 % of the rate
   or more; it stops when it falls ``GIVE_UP_BEHIND_S`` behind its schedule.
   A rate not placed is printed as such and its figures claim nothing.
3. **Checks** after every run: every order created at the city exactly once,
   its messages received in seq order (CREATE, UPDATE, UPDATE; or CREATE), no
   sequence violation at the simulator, nothing pending or dead in the
   outbox, no delivery head left, every order holding its city number.

CPU per run: the machine's busy CPU seconds (``/proc/stat``), the share of this
process tree (this process, the workers, the simulator, PostgreSQL) and the
rest, another process's load; VM steal apart. A run whose harness failed (a
check failed, a worker or the city died, the outbox not drained in time, the
200 orders/s load not placed) prints why, claims nothing and exits 2; a missed
target exits 1. Run from the repository root::

    .venv/bin/python bench/bench_outbox.py --orders 2000 --workers 1,3,6 --procs 3 \\
        --rates 200,400,800 --seconds 30

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
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402

from bench.provenance import code_version, cpu_model  # noqa: E402
from common.db import migrate_all  # noqa: E402
from common.tasks import start_task  # noqa: E402
from cti.runtime import POOL_MAX_SIZE  # noqa: E402
from cti.stack.ports import free_tcp_port  # noqa: E402
from cti.stack.postgres import PostgresNotAvailable, PrivatePostgres  # noqa: E402
from workorder_sync.city.rest import RestCityAdapter  # noqa: E402
from workorder_sync.city.simulator import SimulatorConfig, run_simulator  # noqa: E402
from workorder_sync.core import Action, OutboxEvent, WorkOrder, apply, new_draft  # noqa: E402
from workorder_sync.feature import FEATURE  # noqa: E402
from workorder_sync.outbox import CHANNEL, DeliveryWorker, outbox_stats  # noqa: E402
from workorder_sync.store import OrderStore  # noqa: E402

TARGET_EVENTS_PER_S = 1000.0
TARGET_WORKERS = 3
TARGET_RATE = 200
TARGET_LAG_P95_MS = 500.0
PLACED_SHARE = 0.95
"""A producer committing less than this share of the offered rate did not
place the load."""
APP_KEY = "district"
SECRET = "district-secret"
"""The simulator's default district key (``SimulatorConfig.app_keys``)."""
DELIVER_MODULE = "workorder_sync.deliver"
AGENT = "1001"
PREFIX = "BN"
CITY_HOST = "127.0.0.1"
CITY_NONCES = 100_000
"""The simulator's nonce store refuses requests (503) past this many live nonces."""
READY_S = 15.0
"""For the city and the delivery processes to start."""
POLL_S = 0.1
STOP_GRACE_S = 10.0
PRODUCER_HEAD_START_S = 0.2
GIVE_UP_BEHIND_S = 2.0
"""A producer this far behind its schedule stops: the rate is not placed."""
IDLE_SAMPLE_S = 1.0
CREATE_CONCURRENCY = 8
"""Creators of the pre-created orders (untimed)."""
CLK_TCK = os.sysconf("SC_CLK_TCK")
LABEL = 34
_CLIENTS_SQL = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE backend_type = 'client backend' AND datname = current_database()"
)


class HarnessFailed(Exception):
    """The run did not measure what it would claim: say why, claim nothing."""


# -- CPU accounting -----------------------------------------------------------------


@dataclass(frozen=True)
class CpuMark:
    at: float
    machine_busy_s: float
    steal_s: float
    parts: dict[str, float]


@dataclass(frozen=True)
class CpuUse:
    wall_s: float
    machine_busy_s: float
    steal_s: float
    parts: dict[str, float]
    """CPU seconds of this process and of each kind of its children."""

    @property
    def ours_s(self) -> float:
        return sum(self.parts.values())

    @property
    def others_s(self) -> float:
        return max(0.0, self.machine_busy_s - self.ours_s)

    def describe(self) -> str:
        capacity = self.wall_s * (os.cpu_count() or 1)
        parts = ", ".join(f"{name} {cpu_s:.1f}" for name, cpu_s in self.parts.items() if cpu_s)
        parts = parts or "ours 0.0"
        return (
            f"machine {self.machine_busy_s:.1f} of {capacity:.1f} CPU-s busy: {parts}; "
            f"other processes {self.others_s:.1f}; steal {self.steal_s:.1f}"
        )


def _machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds since boot, all CPUs (guest time is in user)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


def _component(pid: int) -> str:
    """What a child of this process is, from its command line."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "other children"
    if b"--serve-city" in argv:
        return "city"
    if b"workorder_sync.deliver" in argv:
        return "workers"
    if argv and argv[0].endswith(b"postgres"):
        return "PostgreSQL"
    return "other children"


def _parts_cpu() -> dict[str, float]:
    """CPU seconds of this process (itself) and of each child's process tree
    (each process with the children it reaped: PostgreSQL's ended backends).
    The marks bracket runs during which the children live."""
    parent_of: dict[int, int] = {}
    own: dict[int, float] = {}
    reaped: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parent_of[pid] = int(fields[1])
        own[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
        reaped[pid] = (int(fields[13]) + int(fields[14])) / CLK_TCK
    me = os.getpid()
    parts = {"this process": own.get(me, 0.0), "city": 0.0, "workers": 0.0, "PostgreSQL": 0.0}
    for child in [pid for pid, parent in parent_of.items() if parent == me]:
        tree, frontier = {child}, {child}
        while frontier:
            frontier = {pid for pid, parent in parent_of.items() if parent in frontier}
            tree |= frontier
        name = _component(child)
        parts[name] = parts.get(name, 0.0) + sum(own[pid] + reaped[pid] for pid in tree)
    return parts


def cpu_mark() -> CpuMark:
    busy, steal = _machine_cpu()
    return CpuMark(time.monotonic(), busy, steal, _parts_cpu())


def cpu_since(mark: CpuMark) -> CpuUse:
    now = cpu_mark()
    return CpuUse(
        wall_s=now.at - mark.at,
        machine_busy_s=now.machine_busy_s - mark.machine_busy_s,
        steal_s=now.steal_s - mark.steal_s,
        parts={
            name: max(0.0, cpu_s - mark.parts.get(name, 0.0)) for name, cpu_s in now.parts.items()
        },
    )


# -- the city -----------------------------------------------------------------------


def city_config() -> SimulatorConfig:
    return SimulatorConfig(auto_progress=False)


async def serve_city(port: int) -> None:
    """The child's side of ``--city child``: the simulator until SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_simulator(CITY_HOST, port, city_config(), stop=stop)


class City:
    """A fresh simulator for one run, in a child process or in this one."""

    def __init__(self, where: str, session: aiohttp.ClientSession) -> None:
        self.where = where
        self.port = free_tcp_port(CITY_HOST)
        self.url = f"http://{CITY_HOST}:{self.port}/"
        self._session = session
        self._child: asyncio.subprocess.Process | None = None
        self._stop = asyncio.Event()
        self._serving: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.where == "child":
            script = str(Path(__file__).resolve())
            self._child = await asyncio.create_subprocess_exec(
                sys.executable, script, "--serve-city", str(self.port), cwd=ROOT
            )
        else:
            self._serving = asyncio.create_task(
                run_simulator(CITY_HOST, self.port, city_config(), stop=self._stop),
                name="bench: city simulator",
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_S
        while True:
            self.check_alive()
            with contextlib.suppress(aiohttp.ClientError):
                async with self._session.get(self.url + "sim/faults") as response:
                    if response.status == 200:
                        return
            if loop.time() > deadline:
                raise HarnessFailed(f"the city simulator did not answer within {READY_S} s")
            await asyncio.sleep(0.05)  # nothing to await before it listens

    def check_alive(self) -> None:
        if self._child is not None and self._child.returncode is not None:
            raise HarnessFailed(f"the city simulator exited with {self._child.returncode}")
        if self._serving is not None and self._serving.done():
            problem = None if self._serving.cancelled() else self._serving.exception()
            raise HarnessFailed(f"the city simulator stopped: {problem!r}")

    async def state(self) -> dict[str, Any]:
        self.check_alive()
        async with self._session.get(self.url + "sim/state") as response:
            if response.status != 200:
                raise HarnessFailed(f"GET /sim/state answered {response.status}")
            state: dict[str, Any] = await response.json()
        return state

    async def stop(self) -> None:
        if self._child is not None and self._child.returncode is None:
            self._child.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(STOP_GRACE_S):
                    await self._child.wait()
            except TimeoutError:
                self._child.kill()
                await self._child.wait()
        if self._serving is not None:
            self._stop.set()
            await asyncio.gather(self._serving, return_exceptions=True)


@contextlib.asynccontextmanager
async def city_running(where: str, session: aiohttp.ClientSession) -> AsyncIterator[City]:
    city = City(where, session)
    try:
        await city.start()
        yield city
    finally:
        await city.stop()


# -- orders -------------------------------------------------------------------------


def _form(n: int) -> dict[str, Any]:
    return {
        "title": f"路灯不亮 {n}",
        "appeal_type": "HELP",
        "content": "某路路灯坏了，晚上很黑",
        "disposition": "DISPATCH",
        "division_code": "440304",
    }


def dispatched_order(order_no: str, *, n: int, edits: int) -> tuple[WorkOrder, list[OutboxEvent]]:
    """An order taken on the phone and sent to dispatch (CREATE), then edited
    *edits* times (one UPDATE each), as ``OrderStore.create`` builds it."""
    at = datetime.now(UTC)
    order = new_draft(
        order_no=order_no, agent=AGENT, at=at, line="12345", caller_number=f"138{n:08d}"
    )
    steps: list[tuple[Action, dict[str, Any] | None]] = [
        (Action.ACCEPT, _form(n)),
        (Action.SEND_TO_DISPATCH, None),
    ]
    steps += [(Action.EDIT, {"content": f"补充说明 {k}"}) for k in range(1, edits + 1)]
    events: list[OutboxEvent] = []
    for action, data in steps:
        order, sent = apply(order, action, actor=AGENT, at=at, data=data)
        events += sent
    return order, events


def today() -> date:
    return datetime.now(ZoneInfo("Asia/Shanghai")).date()


async def create_orders(store: OrderStore, count: int, *, edits: int) -> list[str]:
    """*count* orders, by a few concurrent creators (not timed)."""
    numbers: list[str] = []
    day = today()

    async def creator(first: int) -> None:
        for n in range(first, count, CREATE_CONCURRENCY):
            order = await store.create(day, lambda no, n=n: dispatched_order(no, n=n, edits=edits))
            numbers.append(order.order_no)

    async with asyncio.TaskGroup() as group:
        for first in range(CREATE_CONCURRENCY):
            group.create_task(creator(first))
    return numbers


async def reset(pool: Any) -> None:
    await pool.execute(
        "TRUNCATE work_order, work_order_day, workorder_outbox, workorder_outbox_order"
        " RESTART IDENTITY"
    )


# -- delivery crews -------------------------------------------------------------------


class InProcessCrew:
    """Workers as the engine runs them: tasks sharing the one pool, woken by
    a NOTIFY listener on a connection of that pool."""

    kind = "in-process tasks, one pool"

    def __init__(self, pool: Any, url: str, count: int) -> None:
        self._pool = pool
        self._url = url
        self._count = count
        self.workers: list[DeliveryWorker] = []
        self._tasks: list[asyncio.Task[None]] = []

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[InProcessCrew]:
        async with aiohttp.ClientSession() as session, self._pool.acquire() as listening:
            adapter = RestCityAdapter(self._url, APP_KEY, SECRET.encode(), session)
            self.workers = [
                DeliveryWorker(self._pool, adapter, name=f"bench-{n}") for n in range(self._count)
            ]

            def wake(*_: object) -> None:
                for worker in self.workers:
                    worker.wake()

            await listening.add_listener(CHANNEL, wake)
            self._tasks = [
                start_task(w.run(), name=f"bench: deliver {w.name}") for w in self.workers
            ]
            try:
                yield self
            finally:
                for task in self._tasks:
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
                await listening.remove_listener(CHANNEL, wake)

    def check_alive(self) -> None:
        for task in self._tasks:
            if task.done():
                problem = None if task.cancelled() else task.exception()
                raise HarnessFailed(f"{task.get_name()} stopped: {problem!r}")


class ProcessCrew:
    """``python -m workorder_sync.deliver`` processes, settings on stdin."""

    kind = "processes (workorder_sync.deliver)"

    def __init__(self, pool: Any, dsn: str, url: str, count: int) -> None:
        self._pool = pool
        self._dsn = dsn
        self._url = url
        self._count = count
        self._procs: list[asyncio.subprocess.Process] = []

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ProcessCrew]:
        """Started, and connected to PostgreSQL (their imports done)."""
        connected = await self._pool.fetchval(_CLIENTS_SQL)
        try:
            for n in range(self._count):
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", DELIVER_MODULE, stdin=asyncio.subprocess.PIPE, cwd=ROOT
                )
                self._procs.append(proc)
                assert proc.stdin is not None
                settings = {
                    "dsn": self._dsn,
                    "city_url": self._url,
                    "app_key": APP_KEY,
                    "secret": SECRET,
                    "name": f"bench-proc-{n}",
                }
                proc.stdin.write(json.dumps(settings).encode())
                await proc.stdin.drain()
                proc.stdin.close()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + READY_S
            while await self._pool.fetchval(_CLIENTS_SQL) < connected + self._count:
                self.check_alive()
                if loop.time() > deadline:
                    raise HarnessFailed(f"delivery processes not connected after {READY_S:g} s")
                await asyncio.sleep(0.02)  # they say nothing when ready: polled
            yield self
        finally:
            codes = await self._stop()
        if any(codes):
            raise HarnessFailed(f"delivery processes exited with {codes} when stopped (0 expected)")

    async def _stop(self) -> list[int]:
        """SIGTERM (a worker stops and exits 0), SIGKILL after a grace."""
        for proc in self._procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        codes = []
        for proc in self._procs:
            try:
                async with asyncio.timeout(STOP_GRACE_S):
                    codes.append(await proc.wait())
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                codes.append(await proc.wait())
        return codes

    def check_alive(self) -> None:
        for proc in self._procs:
            if proc.returncode is not None:
                raise HarnessFailed(f"delivery process {proc.pid} exited with {proc.returncode}")


def crew_for(kind: str, pool: Any, dsn: str, url: str, count: int) -> InProcessCrew | ProcessCrew:
    """Delivery workers of *kind*; ``check_alive`` raises when one has died."""
    if kind == "inproc":
        return InProcessCrew(pool, url, count)
    return ProcessCrew(pool, dsn, url, count)


async def wait_drained(
    pool: Any, alive: Sequence[Callable[[], None]], timeout_s: float, what: str
) -> None:
    """Until nothing is pending in the outbox (a dead letter fails the run)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        stats = await outbox_stats(pool)
        if stats.dead:
            first = stats.dead[0]
            raise HarnessFailed(
                f"{len(stats.dead)} dead letters, first {first['order_no']} "
                f"{first['kind']}: {first['last_error']}"
            )
        if stats.depth == 0:
            return
        for check in alive:
            check()
        if loop.time() > deadline:
            raise HarnessFailed(
                f"{stats.depth} messages still pending {timeout_s:g} s after {what}"
            )
        await asyncio.sleep(POLL_S)  # another component's progress: polled


# -- checks ---------------------------------------------------------------------------


def check_city(
    state: dict[str, Any], numbers: Sequence[str], kinds: Sequence[str]
) -> dict[str, float]:
    """Exactly once and in order at the city; the time each CREATE arrived."""
    violations = state["sequence_violations"]
    if violations:
        raise HarnessFailed(f"{len(violations)} sequence violations at the city: {violations[0]}")
    created, received = state["created_count"], state["received"]
    strangers = set(created) - set(numbers)
    if strangers:
        raise HarnessFailed(f"the city has orders nobody created: {sorted(strangers)[:3]}")
    arrived = {}
    for order_no in numbers:
        if created.get(order_no) != 1:
            raise HarnessFailed(f"{order_no} created {created.get(order_no, 0)} times at the city")
        messages = received.get(order_no, [])
        got = [m["kind"] for m in messages]
        seqs = [m["seq"] for m in messages]
        if got != list(kinds) or seqs != sorted(set(seqs)):
            pairs = list(zip(got, seqs, strict=True))
            raise HarnessFailed(f"{order_no}: the city received {pairs}")
        arrived[order_no] = datetime.fromisoformat(messages[0]["at"]).timestamp()
    return arrived


async def check_outbox(pool: Any, orders: int, per_order: int) -> tuple[int, float, float]:
    """Everything delivered, once; (retries, first claim, last delivery) as
    Unix seconds."""
    row = await pool.fetchrow(
        "SELECT count(*) AS messages, count(*) FILTER (WHERE state = 'delivered') AS delivered,"
        " coalesce(sum(attempts), 0) AS attempts, min(first_attempt_at) AS first,"
        " max(delivered_at) AS last FROM workorder_outbox"
    )
    if row["messages"] != orders * per_order or row["delivered"] != row["messages"]:
        raise HarnessFailed(
            f"{row['delivered']} of {row['messages']} messages delivered "
            f"({orders * per_order} expected)"
        )
    missing = await pool.fetchval("SELECT count(*) FROM work_order WHERE city_order_no IS NULL")
    if missing:
        raise HarnessFailed(f"{missing} orders without their city number after delivery")
    heads = await pool.fetchval(
        "SELECT count(*) FROM workorder_outbox_order WHERE pending > 0 OR lease_until IS NOT NULL"
    )
    if heads:
        raise HarnessFailed(f"{heads} delivery heads still pending or leased")
    retries = int(row["attempts"]) - int(row["messages"])
    return retries, row["first"].timestamp(), row["last"].timestamp()


# -- the runs -------------------------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    crew: str
    workers: int
    events: int
    wall_s: float
    from_claim_s: float
    retries: int
    cpu: CpuUse

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s


async def throughput_run(
    pool: Any,
    dsn: str,
    args: argparse.Namespace,
    session: aiohttp.ClientSession,
    *,
    crew_kind: str,
    workers: int,
) -> Throughput:
    await reset(pool)
    async with city_running(args.city, session) as city:
        numbers = await create_orders(OrderStore(pool, prefix=PREFIX), args.orders, edits=2)
        await pool.execute("ANALYZE workorder_outbox, workorder_outbox_order, work_order")
        crew = crew_for(crew_kind, pool, dsn, city.url, workers)
        mark = cpu_mark()
        started = time.time()
        async with crew.running():
            await wait_drained(
                pool, [crew.check_alive, city.check_alive], args.timeout_s, "the workers started"
            )
            cpu = cpu_since(mark)
        state = await city.state()
    check_city(state, numbers, ("CREATE", "UPDATE", "UPDATE"))
    retries, first, last = await check_outbox(pool, len(numbers), 3)
    return Throughput(
        crew=crew.kind,
        workers=workers,
        events=3 * len(numbers),
        wall_s=last - started,
        from_claim_s=last - first,
        retries=retries,
        cpu=cpu,
    )


@dataclass(frozen=True)
class Placement:
    order_no: str
    due: float
    started: float
    committed: float


@dataclass
class Produced:
    offered: int
    seconds: float
    began: float
    placed: list[Placement] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    gave_up: bool = False

    @property
    def achieved(self) -> float:
        if not self.placed:
            return 0.0
        return len(self.placed) / (max(p.committed for p in self.placed) - self.began)

    @property
    def kept(self) -> bool:
        expected = round(self.offered * self.seconds)
        return (
            not self.errors
            and not self.gave_up
            and len(self.placed) == expected
            and self.achieved >= PLACED_SHARE * self.offered
        )


async def produce(store: OrderStore, rate: int, seconds: float, in_flight: int) -> Produced:
    """Orders at *rate* per second for *seconds*, each started on schedule
    unless *in_flight* creations are already under way (then late); given up
    ``GIVE_UP_BEHIND_S`` behind the schedule."""
    loop = asyncio.get_running_loop()
    wall_offset = time.time() - loop.time()
    begin = loop.time() + PRODUCER_HEAD_START_S
    produced = Produced(offered=rate, seconds=seconds, began=begin + wall_offset)
    gate = asyncio.Semaphore(in_flight)
    running: set[asyncio.Task[None]] = set()
    day = today()

    async def one(n: int, due: float) -> None:
        try:
            started = time.time()
            order = await store.create(day, lambda no: dispatched_order(no, n=n, edits=0))
            produced.placed.append(Placement(order.order_no, due, started, time.time()))
        except Exception as exc:  # the run fails on it, after the others finish
            produced.errors.append(f"order {n}: {type(exc).__name__}: {exc}")
        finally:
            gate.release()

    for n in range(round(rate * seconds)):
        due = begin + n / rate
        if due > loop.time():
            await asyncio.sleep(due - loop.time())
        await gate.acquire()
        if loop.time() - due > GIVE_UP_BEHIND_S:
            gate.release()
            produced.gave_up = True
            break
        task = asyncio.create_task(one(n, due + wall_offset), name=f"bench: order {n}")
        running.add(task)
        task.add_done_callback(running.discard)
    await asyncio.gather(*running)
    return produced


@dataclass(frozen=True)
class LagRun:
    rate: int
    produced: Produced
    lags_ms: list[float]
    create_ms: list[float]
    late_ms: list[float]
    retries: int
    cpu: CpuUse


async def lag_run(
    pool: Any,
    dsn: str,
    args: argparse.Namespace,
    session: aiohttp.ClientSession,
    rate: int,
) -> LagRun:
    await reset(pool)
    async with city_running(args.city, session) as city:
        crew = crew_for(args.lag_crew, pool, dsn, city.url, args.lag_workers)
        store = OrderStore(pool, prefix=PREFIX)
        async with crew.running():
            mark = cpu_mark()
            produced = await produce(store, rate, args.seconds, args.in_flight)
            if produced.errors:
                raise HarnessFailed(
                    f"{len(produced.errors)} orders not created: {produced.errors[0]}"
                )
            await wait_drained(
                pool, [crew.check_alive, city.check_alive], args.timeout_s, "the producer stopped"
            )
            cpu = cpu_since(mark)
        state = await city.state()
    arrived = check_city(state, [p.order_no for p in produced.placed], ("CREATE",))
    retries, _, _ = await check_outbox(pool, len(produced.placed), 1)
    return LagRun(
        rate=rate,
        produced=produced,
        lags_ms=[(arrived[p.order_no] - p.committed) * 1000.0 for p in produced.placed],
        create_ms=[(p.committed - p.started) * 1000.0 for p in produced.placed],
        late_ms=[max(0.0, p.started - p.due) * 1000.0 for p in produced.placed],
        retries=retries,
        cpu=cpu,
    )


@dataclass(frozen=True)
class Results:
    pg_version: str
    idle: CpuUse
    throughput: list[Throughput]
    lag: list[LagRun]


async def run_all(args: argparse.Namespace, work: Path) -> Results:
    idle_mark = cpu_mark()
    await asyncio.sleep(IDLE_SAMPLE_S)
    idle = cpu_since(idle_mark)
    server = PrivatePostgres(work / "pg")
    try:
        try:
            await server.start()
        except PostgresNotAvailable as exc:
            raise HarnessFailed(str(exc)) from exc
        pool = await asyncpg.create_pool(server.dsn, min_size=4, max_size=POOL_MAX_SIZE)
        try:
            await migrate_all(pool, [(FEATURE.name, FEATURE.migrations)])
            pg_version = await pool.fetchval("SHOW server_version")
            throughput, lag = [], []
            async with aiohttp.ClientSession() as session:
                for count in args.workers:
                    throughput.append(
                        await throughput_run(
                            pool, server.dsn, args, session, crew_kind="inproc", workers=count
                        )
                    )
                if args.procs:
                    throughput.append(
                        await throughput_run(
                            pool, server.dsn, args, session, crew_kind="procs", workers=args.procs
                        )
                    )
                for rate in args.rates:
                    lag.append(await lag_run(pool, server.dsn, args, session, rate))
        finally:
            await pool.close()
    finally:
        await server.stop()
    return Results(pg_version=pg_version, idle=idle, throughput=throughput, lag=lag)


# -- the report -----------------------------------------------------------------------


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _ints(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: want integers separated by commas") from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: want positive integers")
    return values


def command_line(args: argparse.Namespace) -> str:
    return (
        f"$ .venv/bin/python bench/bench_outbox.py --orders={args.orders} "
        f"--workers={','.join(map(str, args.workers))} --procs={args.procs} "
        f"--rates={','.join(map(str, args.rates))} --seconds={args.seconds:g} "
        f"--lag-workers={args.lag_workers} --lag-crew={args.lag_crew} "
        f"--in-flight={args.in_flight} --city={args.city}"
    )


def report(args: argparse.Namespace, results: Results) -> int:
    city = (
        "in a child process (run_simulator)"
        if args.city == "child"
        else "in this process, on the workers' event loop"
    )
    idle = results.idle
    lines = [
        "```",
        command_line(args),
        f"{cpu_model()}, {os.cpu_count()} CPUs; python {platform.python_version()}; "
        f"PostgreSQL {results.pg_version} (private, fsync off); asyncpg {asyncpg.__version__}, "
        f"aiohttp {aiohttp.__version__}; code {code_version()}",
        f"city simulator {city}: reference protocol, signed, no faults, auto_progress off; "
        "fresh per run, work-order tables emptied per run",
        f"before the run, {IDLE_SAMPLE_S:g} s idle sample: {idle.describe()}; "
        f"load average {os.getloadavg()[0]:.2f}",
        "",
        f"throughput: {args.orders} orders pre-created (CREATE + 2 UPDATE each), then delivered",
        f"{'crew':<{LABEL}} {'workers':>7} {'events':>7} {'wall s':>7} {'events/s':>9} "
        f"{'retries':>7} {'CPU ms/event':>12}",
    ]
    for run in results.throughput:
        lines.append(
            f"{run.crew:<{LABEL}} {run.workers:>7} {run.events:>7} {run.wall_s:7.2f} "
            f"{run.events_per_s:>9,.0f} {run.retries:>7} "
            f"{run.cpu.ours_s * 1000.0 / run.events:>12.2f}"
        )
        if run.crew.startswith("processes"):
            lines.append(
                f"{'':<4}from the first claim (start-up left out): {run.from_claim_s:.2f} s, "
                f"{run.events / run.from_claim_s:,.0f} events/s"
            )
        lines.append(f"{'':<4}{run.cpu.describe()}")
    failed = False
    at_target = [r for r in results.throughput if r.workers == TARGET_WORKERS]
    if at_target:
        verdicts = []
        for run in at_target:
            ok = run.events_per_s >= TARGET_EVENTS_PER_S
            failed |= not ok
            verdicts.append(f"{run.crew} {run.events_per_s:,.0f}/s {_verdict(ok)}")
        lines.append(
            f"target >= {TARGET_EVENTS_PER_S:,.0f} order events/s with {TARGET_WORKERS} "
            f"workers: {'; '.join(verdicts)}"
        )
    if results.lag:
        crew = "in-process tasks" if args.lag_crew == "inproc" else "processes"
        lines += [
            "",
            f"lag: a producer in this process creating orders (one CREATE each) at the offered "
            f"rate for {args.seconds:g} s, {args.lag_workers} {crew} delivering; lag = city "
            "received - committed",
            f"{'offered/s':>9} {'placed/s':>8} {'orders':>6} {'late p95':>8} {'create p50':>10} "
            f"{'p95':>6} {'lag p50':>8} {'p95':>7} {'p99':>7} {'max ms':>7} {'retries':>7}",
        ]
        broke: str | None = None
        for run in results.lag:
            p = run.produced
            lags = run.lags_ms
            lines.append(
                f"{run.rate:>9} {p.achieved:>8.0f} {len(p.placed):>6} "
                f"{_percentile(run.late_ms, 0.95):>8.0f} {_percentile(run.create_ms, 0.50):>10.1f} "
                f"{_percentile(run.create_ms, 0.95):>6.1f} {_percentile(lags, 0.50):>8.1f} "
                f"{_percentile(lags, 0.95):>7.1f} {_percentile(lags, 0.99):>7.1f} "
                f"{max(lags):>7.1f} {run.retries:>7}"
            )
            lines.append(f"{'':<4}{run.cpu.describe()}")
            if not p.kept:
                stopped = (
                    f", and stopped {GIVE_UP_BEHIND_S:g} s behind its schedule" if p.gave_up else ""
                )
                lines.append(
                    f"{'':>9} NOT PLACED: the producer committed {p.achieved:.0f} orders/s of "
                    f"{run.rate} offered{stopped}; this row's lag claims nothing"
                )
            p95 = _percentile(lags, 0.95)
            if broke is None and (not p.kept or p95 >= TARGET_LAG_P95_MS):
                broke = (
                    f"{run.rate} orders/s offered ("
                    + (f"p95 {p95:.0f} ms" if p.kept else "the producer could not place it")
                    + ")"
                )
            if run.rate == TARGET_RATE and p.kept:
                ok = p95 < TARGET_LAG_P95_MS
                failed |= not ok
                lines.append(
                    f"{'':>9} target p95 < {TARGET_LAG_P95_MS:.0f} ms at {TARGET_RATE} orders/s: "
                    f"{_verdict(ok)} ({p95:.1f} ms)"
                )
        lines.append(
            f"lag target ({TARGET_LAG_P95_MS:.0f} ms p95) first broken at: {broke}"
            if broke
            else f"lag target held at every rate tried (up to {max(args.rates)} orders/s)"
        )
    runs = len(results.throughput) + len(results.lag)
    lines += [
        "",
        f"checks, all {runs} runs: each order created once at the city, its messages received "
        "in seq order, no sequence violation, outbox drained, no dead letter, no head left, "
        "every city number stored: PASS",
        "```",
    ]
    print("\n".join(lines))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=2000, help="per throughput run")
    parser.add_argument(
        "--workers", type=_ints, default=[1, 3, 6], help="in-process worker counts, e.g. 1,3,6"
    )
    parser.add_argument("--procs", type=int, default=3, help="worker processes (0: none)")
    parser.add_argument("--rates", type=_ints, default=[200, 400, 800], help="orders/s offered")
    parser.add_argument("--seconds", type=float, default=30.0, help="each rate's duration")
    parser.add_argument("--lag-workers", type=int, default=TARGET_WORKERS)
    parser.add_argument("--lag-crew", choices=("inproc", "procs"), default="inproc")
    parser.add_argument(
        "--in-flight", type=int, default=16, help="the producer's creations at once, at most"
    )
    parser.add_argument("--city", choices=("child", "inproc"), default="child")
    parser.add_argument("--timeout-s", type=float, default=120.0, help="to drain the outbox")
    parser.add_argument("--serve-city", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_city is not None:
        asyncio.run(serve_city(args.serve_city))
        return 0
    if args.orders < 1 or args.procs < 0 or args.seconds <= 0 or args.lag_workers < 1:
        parser.error("--orders, --seconds and --lag-workers must be positive, --procs >= 0")
    if max(3 * args.orders, max(args.rates) * args.seconds) >= CITY_NONCES:
        parser.error(f"a run must send the city fewer than {CITY_NONCES:,} requests (its nonces)")
    if not 1 <= args.in_flight <= POOL_MAX_SIZE - args.lag_workers - 2:
        parser.error(
            f"--in-flight must leave the workers, the listener and the poller a connection "
            f"of the pool ({POOL_MAX_SIZE})"
        )
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    work = Path(tempfile.mkdtemp(prefix="hotline-bench-outbox-"))
    work.chmod(0o755)  # PostgreSQL runs as its own user when we are root
    try:
        results = asyncio.run(run_all(args, work))
    except HarnessFailed as exc:
        print(
            "\n".join(
                ["```", command_line(args), f"HARNESS FAILED, nothing measured: {exc}", "```"]
            )
        )
        return 2
    finally:
        shutil.rmtree(work, ignore_errors=True)
    target_placed = [r for r in results.lag if r.rate == TARGET_RATE]
    if target_placed and not target_placed[0].produced.kept:
        report(args, results)
        print(
            f"HARNESS FAILED: the {TARGET_RATE} orders/s load was not placed; "
            "the lag target is not measured"
        )
        return 2
    return report(args, results)


if __name__ == "__main__":
    sys.exit(main())
