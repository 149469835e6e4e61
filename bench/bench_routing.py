"""Routing-decision latency of the ACD core (acd.core.Acd). A benchmark, not a test.

Two decisions are timed one by one with ``time.perf_counter_ns``:

* **agent frees**: every agent is busy and ``--waiting`` callers wait; an agent
  ends its wrap-up (``wrapup_done``) and the call returns its ConnectCall.
* **call arrives**: (nearly) every agent is free; ``enqueue`` of a new caller
  returns its ConnectCall.

Between two timed decisions the call is rung, answered and released (not
timed) and a new caller arrives, so the number waiting and the number free
stay constant. Agents have three skills at random levels over ``--queues``
skill queues, so the default skills policy (level first, then longest idle)
is what is measured. Run from the repository root::

    .venv/bin/python bench/bench_routing.py

Results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import shlex
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout

from acd.agents import AgentSpec, AgentState  # noqa: E402
from acd.commands import Command, ConnectCall  # noqa: E402
from acd.core import Acd  # noqa: E402
from acd.queues import AcdSettings, QueueSpec  # noqa: E402

TARGET_P99_US = 1000.0


def build(agents: int, queues: int, rng: random.Random) -> Acd:
    specs = []
    for i in range(agents):
        skills = {f"s{(i + k) % queues:02d}": rng.randint(1, 10) for k in (0, 7, 13)}
        specs.append(AgentSpec(str(10000 + i), f"agent {i}", skills=skills))
    return Acd(
        queues=[QueueSpec(f"q{q:02d}", "12345", skill=f"s{q:02d}") for q in range(queues)],
        agents=specs,
        settings=AcdSettings(wrapup_s=10.0),
    )


class Caller:
    """Fresh callers with unique numbers (no repeat-caller preference)."""

    def __init__(self, acd: Acd, queues: int, rng: random.Random) -> None:
        self.acd = acd
        self.queues = queues
        self.rng = rng
        self.seq = 0

    def arrive(self, at: float, queue: str | None = None) -> tuple[str, list[Command]]:
        self.seq += 1
        call_id = f"call-{self.seq}"
        out = self.acd.enqueue(
            call_id,
            queue=queue or f"q{self.rng.randrange(self.queues):02d}",
            line="12345",
            caller_number=f"138{self.seq:08d}",
            priority=3 if self.rng.random() < 0.05 else 0,
            at=at,
        )
        return call_id, out


def talk(acd: Acd, connect: ConnectCall, at: float) -> None:
    acd.ringing(connect.call_id, connect.agent, at)
    acd.answered(connect.call_id, connect.agent, at)
    acd.agent_released(connect.agent, at)


def only_connect(out: list[Command]) -> ConnectCall:
    connects = [c for c in out if isinstance(c, ConnectCall)]
    if len(connects) != 1:
        raise SystemExit(f"expected one ConnectCall per decision, got {connects}")
    return connects[0]


def agent_frees(args: argparse.Namespace) -> list[int]:
    rng = random.Random(args.seed)
    acd = build(args.agents, args.queues, rng)
    callers = Caller(acd, args.queues, rng)
    now = 1_700_000_000.0
    for agent_id in acd.agents:
        acd.login(agent_id, now)
    wrapping: deque[str] = deque()
    for agent in acd.agents.values():  # every agent gets a call and ends in wrap-up
        while agent.state is AgentState.AVAILABLE:
            now += 0.001
            skill = next(iter(agent.spec.skills))
            _, out = callers.arrive(now, queue="q" + skill[1:])
            connect = only_connect(out)
            talk(acd, connect, now)
            wrapping.append(connect.agent)
    for _ in range(args.waiting):
        callers.arrive(now)
    assert len(acd.waiting()) == args.waiting
    latencies: list[int] = []
    clock = time.perf_counter_ns
    while len(latencies) < args.decisions:
        now += 0.001
        agent_id = wrapping.popleft()
        start = clock()
        out = acd.wrapup_done(agent_id, now)
        latencies.append(clock() - start)
        connect = only_connect(out)
        talk(acd, connect, now)
        wrapping.append(connect.agent)
        callers.arrive(now, queue=connect.queue)  # keeps every queue's length
        acd.next_deadline()  # as the engine does after every input
    assert len(acd.waiting()) == args.waiting and not acd.audit()
    return latencies


def call_arrives(args: argparse.Namespace) -> list[int]:
    rng = random.Random(args.seed + 1)
    acd = build(args.agents, args.queues, rng)
    callers = Caller(acd, args.queues, rng)
    now = 1_700_000_000.0
    for agent_id in acd.agents:
        acd.login(agent_id, now)
    latencies: list[int] = []
    clock = time.perf_counter_ns
    while len(latencies) < args.decisions:
        now += 0.001
        start = clock()
        _, out = callers.arrive(now)
        latencies.append(clock() - start)
        connect = only_connect(out)
        talk(acd, connect, now)
        acd.wrapup_done(connect.agent, now)
        acd.next_deadline()
    assert not acd.waiting() and not acd.audit()
    return latencies


def percentile(sorted_ns: list[int], fraction: float) -> float:
    index = min(len(sorted_ns) - 1, max(0, round(fraction * len(sorted_ns)) - 1))
    return sorted_ns[index] / 1000.0


def row(name: str, latencies: list[int]) -> tuple[str, float]:
    ordered = sorted(latencies)
    p99 = percentile(ordered, 0.99)
    per_s = len(ordered) / (sum(ordered) / 1e9)
    text = (
        f"{name:<34} {len(ordered):>9} {percentile(ordered, 0.50):>8.1f} "
        f"{percentile(ordered, 0.90):>8.1f} {p99:>8.1f} {ordered[-1] / 1000.0:>9.1f} "
        f"{per_s:>12,.0f}"
    )
    return text, p99


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--queues", type=int, default=20)
    parser.add_argument("--waiting", type=int, default=500)
    parser.add_argument(
        "--decisions", type=int, default=12_000, help="timed decisions per scenario"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.queues > 20 or args.queues < 14:
        # Skills are spread as (i, i+7, i+13) mod queues: distinct for 14..20 queues.
        parser.error("--queues must be between 14 and 20")

    started = time.perf_counter()
    scenarios: list[tuple[str, Callable[[argparse.Namespace], list[int]]]] = [
        (f"agent frees, {args.waiting} waiting", agent_frees),
        (f"call arrives, {args.agents} agents free", call_arrives),
    ]
    results = [(name, run(args)) for name, run in scenarios]
    elapsed = time.perf_counter() - started

    python = os.path.relpath(sys.executable, Path.cwd())
    command = shlex.join(
        [
            python if not python.startswith("..") else sys.executable,
            os.path.relpath(__file__, Path.cwd()),
            *(f"--{k}={v}" for k, v in vars(args).items()),
        ]
    )
    lines = [
        "```",
        f"$ {command}",
        f"python {platform.python_version()} on {platform.platform()}, "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}",
        f"{args.agents} agents, {args.queues} skill queues, 3 skills/agent at levels 1-10, "
        f"policy SkillsLevel(level_first=True), gc {'on' if gc.isenabled() else 'off'}",
        f"{'scenario':<34} {'decisions':>9} {'p50 us':>8} {'p90 us':>8} {'p99 us':>8} "
        f"{'max us':>9} {'decisions/s':>12}",
    ]
    all_latencies: list[int] = []
    worst_p99 = 0.0
    for name, latencies in results:
        text, p99 = row(name, latencies)
        lines.append(text)
        all_latencies += latencies
        worst_p99 = max(worst_p99, p99)
    text, p99 = row("all decisions", all_latencies)
    lines.append(text)
    verdict = "PASS" if worst_p99 <= TARGET_P99_US else "FAIL"
    lines.append(f"target p99 <= {TARGET_P99_US:.0f} us in every scenario: {verdict}")
    lines.append(f"wall time {elapsed:.1f} s (setup and untimed call handling included)")
    lines.append("```")
    print("\n".join(lines))
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
