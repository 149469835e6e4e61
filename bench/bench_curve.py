"""The engine against Asterisk's app_queue as a load curve: both paths at every
point, in one run on one machine. A benchmark, not a test.

Each point is one run of ``bench/bench_vs_app_queue.py``'s :func:`run_point` on
a fresh private stack (Asterisk, PostgreSQL, Redis, ``hotline serve``): phase A
sends the load to app_queue (DID 12399), phase B the same load to the engine
(DID 12345), same agents, same talk times. The points:

* ``N`` (calls/s, e.g. 2, 5, 10, 15, 20): ``--agents-per-rate`` x N agents, so
  that with ~8 s talk and 0.7 s ring they are never all busy; the routing path
  itself under growing load;
* ``overload``: ``--overload-rate`` calls/s on ``--overload-agents`` agents
  (12 on 80: ~30 % more calls than the agents can take), callers give up after
  ``--overload-patience-s``: waits, abandons and FIFO fairness (answered pairs
  where the later queue entry was answered first);
* ``fault``: ``--fault-rate`` calls/s with ``--fault-share`` of the agents'
  phones refusing every call at once with 480, 486 or 503 (a second sipp UAS,
  ``bench/scenarios/agent_refuse_uas.xml.tmpl``); the healthy agents alone are
  ``--agents-per-rate`` x the rate. None of these refusals is an agent letting
  the phone ring: the engine must not pause anyone for them.

``--seconds-per-point`` sets the load of every point: calls per phase = rate x
seconds. The Asterisk RTP range of each stack is sized for every call the
point can hold at once (``rtp_ports_for``), and printed.

Each point prints both paths side by side and a verdict: PASS when the engine
lost no call, its queue entry -> answer p50 and p95 are no slower than
app_queue's (<= x 1.05) and it left no agent paused; otherwise FAIL with the
reasons. No verdict when the harness broke (a sipp UAS died, the benchmark's
AMI session lost events...) or failed to place 1 % or more of the offered
calls (``LOAD NOT PLACED``). At the end: a Markdown table of every point (for
docs/benchmarks.md) and an SVG chart (``--svg``).

Run from the repository root (about 20 minutes with the defaults)::

    .venv/bin/python bench/bench_curve.py

A smoke run (about 2 minutes)::

    .venv/bin/python bench/bench_curve.py --points 2,fault --seconds-per-point 15 --svg /tmp/c.svg
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout

from bench.bench_vs_app_queue import (  # noqa: E402
    ENGINE_SETUP,
    TOLERANCE,
    Options,
    PointResult,
    Summary,
    describe_load,
    fmt_ms,
    machine_line,
    not_placed,
    paused_by_engine,
    pct,
    point_lines,
    refusing_agents,
    run_point,
    script_command,
    verdict,
)
from bench.provenance import code_version  # noqa: E402

DEFAULT_POINTS = "2,5,10,15,20,overload,fault"
NO_VERDICT = frozenset({"LOAD NOT PLACED", "HARNESS BROKE", "NOT RUN"})


@dataclass(frozen=True)
class PointPlan:
    label: str  # "2/s", "overload", "fault"
    kind: str  # "rate", "overload", "fault"
    opts: Options


@dataclass
class Outcome:
    plan: PointPlan
    result: PointResult | None
    status: str  # verdict(), or "NOT RUN" when the point raised
    reasons: list[str]
    wall_s: float
    load_before: tuple[float, float, float]
    """The machine's load average when the point began: other work on the box shows here."""


def plan_points(args: argparse.Namespace) -> list[PointPlan]:
    """The points named by ``--points``, in that order."""
    plans = []
    for name in (n.strip() for n in args.points.split(",") if n.strip()):
        patience_s = args.patience_s
        refusing_share = 0.0
        if name == "overload":
            rate, agents = args.overload_rate, args.overload_agents
            patience_s = args.overload_patience_s
            label = "overload"
        elif name == "fault":
            rate = args.fault_rate
            refusing_share = args.fault_share
            # The healthy agents alone are sized like a rate point's.
            agents = math.ceil(args.agents_per_rate * rate / (1 - refusing_share))
            label = "fault"
        else:
            rate = float(name)  # checked by parse_points
            agents = math.ceil(args.agents_per_rate * rate)
            label = f"{rate:g}/s"
        plans.append(
            PointPlan(
                label=label,
                kind=name if name in ("overload", "fault") else "rate",
                opts=Options(
                    agents=agents,
                    calls=max(1, round(rate * args.seconds_per_point)),
                    rate=rate,
                    talk_s=args.talk_s,
                    talk_spread_s=args.talk_spread_s,
                    ring_s=args.ring_s,
                    patience_s=patience_s,
                    seed=args.seed,
                    refusing_share=refusing_share,
                ),
            )
        )
    return plans


def parse_points(text: str) -> str:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("no point named")
    for name in names:
        if name in ("overload", "fault"):
            continue
        try:
            rate = float(name)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name!r}: a point is calls/s (e.g. 10), 'overload' or 'fault'"
            ) from None
        if not 0 < rate <= 200:
            raise argparse.ArgumentTypeError(f"{name!r}: calls/s must be within (0, 200]")
    return text


async def run_curve(plans: list[PointPlan], *, keep: bool) -> list[Outcome]:
    outcomes = []
    for number, plan in enumerate(plans, start=1):
        opts = plan.opts
        print(
            f"point {number}/{len(plans)} {plan.label}: {opts.agents} agents, "
            f"{opts.calls} calls per phase at {opts.rate:g}/s ...",
            file=sys.stderr,
            flush=True,
        )
        started = time.perf_counter()
        load_before = os.getloadavg()
        try:
            result = await run_point(opts, keep=keep)
        except Exception as exc:  # one broken point must not cost the others
            logging.getLogger("bench_curve").exception("point %s failed", plan.label)
            outcome = Outcome(
                plan,
                None,
                "NOT RUN",
                [f"{type(exc).__name__}: {exc}"],
                time.perf_counter() - started,
                load_before,
            )
        else:
            status, reasons = verdict(result)
            outcome = Outcome(
                plan, result, status, reasons, time.perf_counter() - started, load_before
            )
        print_point(outcome)
        outcomes.append(outcome)
    return outcomes


def print_point(outcome: Outcome) -> None:
    plan, result = outcome.plan, outcome.result
    out = [f"### point {plan.label}", "", "```"]
    out.append(describe_load(plan.opts, refusing_agents(plan.opts)))
    out.append(
        "machine load average when the point began: "
        + " ".join(f"{v:.2f}" for v in outcome.load_before)
        + f" ({os.cpu_count()} CPUs)"
    )
    if result is None:
        out.append(
            f"NOT RUN: no verdict, the harness could not run this point: {outcome.reasons[0]}"
        )
    else:
        out += point_lines(result)
    out.append(f"point wall time {outcome.wall_s:.0f} s (stack start, both phases, teardown)")
    out += ["```", ""]
    print("\n".join(out), flush=True)


# -- the summary table ----------------------------------------------------------------------


def _pair(left: object, right: object) -> str:
    return f"{left} / {right}"


def _ms_pair(a: Summary, b: Summary, fraction: float) -> str:
    return _pair(fmt_ms(pct(a.entry_answer, fraction)), fmt_ms(pct(b.entry_answer, fraction)))


def _per_call_ms(seconds: float, summary: Summary) -> str:
    return f"{seconds / max(1, summary.placed) * 1000:.1f}"


def _short_status(outcome: Outcome) -> str:
    if outcome.status == "PASS":
        return "**PASS**"
    reasons = "; ".join(outcome.reasons).replace("|", "/")
    return f"**{outcome.status}**: {reasons[:160]}" + ("..." if len(reasons) > 160 else "")


def markdown_table(outcomes: list[Outcome]) -> list[str]:
    """Every point in one table; each cell is app_queue / engine."""
    out = [
        "| point | load | offered | placed | answered | lost | abandons "
        "| entry->answer p50 ms | p95 ms | p99 ms | paused at end | FIFO overtakes "
        "| Asterisk CPU ms/call | engine CPU ms/call | verdict |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for outcome in outcomes:
        opts, result = outcome.plan.opts, outcome.result
        load = f"{opts.rate:g}/s, {opts.agents} agents"
        if opts.refusing_share:
            load += f" ({opts.refusing_share:.0%} refusing)"
        if opts.patience_s < 60:
            load += f", patience {opts.patience_s:g} s"
        if result is None:
            out.append(
                f"| {outcome.plan.label} | {load} | {opts.calls} |"
                + " - |" * 11
                + f" {_short_status(outcome)} |"
            )
            continue
        (pa, pb), (a, b) = result.phases, result.summaries
        cells = [
            outcome.plan.label,
            load,
            str(opts.calls),
            _pair(a.placed, b.placed),
            _pair(a.answered, b.answered),
            _pair(a.lost, b.lost),
            _pair(a.planned_abandons, b.planned_abandons),
            _ms_pair(a, b, 0.5),
            _ms_pair(a, b, 0.95),
            _ms_pair(a, b, 0.99),
            _pair(len(paused_by_engine(pa)), len(paused_by_engine(pb))),
            _pair(a.overtakes, b.overtakes),
            _pair(_per_call_ms(pa.asterisk_cpu_s, a), _per_call_ms(pb.asterisk_cpu_s, b)),
            _per_call_ms(pb.engine_cpu_s, b),
            _short_status(outcome),
        ]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append(
        "Cells are app_queue / engine. Lost: not answered and not a planned abandon. "
        "Abandons: the caller's patience ran out while waiting. Paused at end: QueueStatus "
        "Paused=1 or the engine's own state. FIFO overtakes: answered pairs where the later "
        f"queue entry was answered first. Verdict: engine lost 0, p50 and p95 <= app_queue x "
        f"{TOLERANCE:g}, 0 agents paused; none when the harness broke or placed < 99 % of "
        "the offered calls."
    )
    return out


# -- the chart --------------------------------------------------------------------------------

APP_QUEUE_COLOUR = "#d95f02"
ENGINE_COLOUR = "#1b9e77"
WIDTH, HEIGHT = 960, 640


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """0 and round steps (1, 2 or 5 x 10^k) up to at least *top*."""
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    ticks = [0.0]
    while ticks[-1] < top:
        ticks.append(ticks[-1] + step)
    return ticks


def _text(
    x: float, y: float, text: str, *, anchor: str = "middle", size: int = 11, **extra: str
) -> str:
    attrs = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in extra.items())
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{attrs}>'
        f"{escape(text)}</text>"
    )


def _axis(
    left: float, top: float, width: float, height: float, ticks: list[float], label: str
) -> list[str]:
    """Horizontal grid lines with their values, and the y axis label."""
    out = []
    for tick in ticks:
        y = top + height - tick / ticks[-1] * height
        out.append(
            f'<line x1="{left:.1f}" y1="{y:.1f}" x2="{left + width:.1f}" y2="{y:.1f}" '
            'stroke="#ddd" stroke-width="1"/>'
        )
        out.append(_text(left - 6, y + 4, f"{tick:,.0f}", anchor="end", size=10))
    out.append(
        f'<line x1="{left:.1f}" y1="{top:.1f}" x2="{left:.1f}" y2="{top + height:.1f}" '
        'stroke="#444"/>'
    )
    middle = top + height / 2
    out.append(
        _text(
            left - 48, middle, label, size=11, transform=f"rotate(-90 {left - 48:.1f} {middle:.1f})"
        )
    )
    return out


def _entry_answer_ms(outcome: Outcome, side: int, fraction: float) -> float | None:
    if outcome.result is None:
        return None
    value = pct(outcome.result.summaries[side].entry_answer, fraction)
    return None if value is None else value * 1000


def _verdict_mark(outcome: Outcome) -> str:
    return "no verdict" if outcome.status in NO_VERDICT else outcome.status


def curve_svg(outcomes: list[Outcome], subtitle: str, *, agents_per_rate: float) -> str:
    """Entry -> answer p50 and p95 against calls/s for both paths (the rate
    points), the overload and fault points as bars, and the calls lost at
    every point. Hand-written SVG: no plotting library on a benchmark box."""
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        _text(WIDTH / 2, 24, "Queue entry -> agent answer: app_queue vs engine", size=16),
        _text(WIDTH / 2, 42, subtitle, size=10, fill="#555"),
    ]
    series = (
        ("app_queue p50", 0, 0.5, APP_QUEUE_COLOUR, ""),
        ("app_queue p95", 0, 0.95, APP_QUEUE_COLOUR, "6 4"),
        ("engine p50", 1, 0.5, ENGINE_COLOUR, ""),
        ("engine p95", 1, 0.95, ENGINE_COLOUR, "6 4"),
    )
    rates = [o for o in outcomes if o.plan.kind == "rate"]
    others = [o for o in outcomes if o.plan.kind != "rate"]

    # Panel 1: the curve (rate points), ms against calls/s.
    left, top, width, height = 90.0, 100.0, 520.0, 300.0
    values = [
        v
        for o in rates
        for _, side, fraction, _, _ in series
        if (v := _entry_answer_ms(o, side, fraction)) is not None
    ]
    ticks = nice_ticks(max(values, default=1000.0))
    out += _axis(left, top, width, height, ticks, "entry -> answer, ms")
    x_ticks = nice_ticks(max((o.plan.opts.rate for o in rates), default=20.0), count=5)

    def x_of(rate: float) -> float:
        return left + rate / x_ticks[-1] * width

    def y_of(ms: float) -> float:
        return top + height - ms / ticks[-1] * height

    out.append(
        f'<line x1="{left:.1f}" y1="{top + height:.1f}" x2="{left + width:.1f}" '
        f'y2="{top + height:.1f}" stroke="#444"/>'
    )
    for tick in x_ticks:
        out.append(_text(x_of(tick), top + height + 16, f"{tick:g}", size=10))
    out.append(
        _text(
            left + width / 2,
            top + height + 34,
            f"offered calls/s (agents = {agents_per_rate:g} x rate)",
        )
    )
    for name, side, fraction, colour, dash in series:
        points = [
            (x_of(o.plan.opts.rate), y_of(v), "white" if o.status in NO_VERDICT else colour)
            for o in sorted(rates, key=lambda o: o.plan.opts.rate)
            if (v := _entry_answer_ms(o, side, fraction)) is not None
        ]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in points)
            dashes = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dashes}>'
                f"<title>{escape(name)}</title></polyline>"
            )
        for x, y, fill in points:
            out.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{fill}" stroke="{colour}"/>'
            )
    for o in rates:
        out.append(_text(x_of(o.plan.opts.rate), top - 6, _verdict_mark(o), size=9, fill="#333"))
    for n, (name, _, _, colour, dash) in enumerate(series):
        x, y = left + n * 130, 66.0
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(
            f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{x + 28:.1f}" y2="{y:.1f}" '
            f'stroke="{colour}" stroke-width="2"{dashes}/>'
        )
        out.append(_text(x + 34, y + 4, name, anchor="start", size=10))
    out.append(
        _text(left + 4 * 130, 70, "hollow: no verdict", anchor="start", size=10, fill="#555")
    )

    # Panel 2: overload and fault, grouped bars (their waits dwarf the curve's).
    left2, width2 = 700.0, 230.0
    bar_values = [
        v
        for o in others
        for _, side, fraction, _, _ in series
        if (v := _entry_answer_ms(o, side, fraction)) is not None
    ]
    ticks2 = nice_ticks(max(bar_values, default=1000.0))
    out += _axis(left2, top, width2, height, ticks2, "entry -> answer, ms")
    group = width2 / max(1, len(others))
    for n, o in enumerate(others):
        x0 = left2 + n * group + group * 0.1
        bar = group * 0.8 / len(series)
        for m, (name, side, fraction, colour, _) in enumerate(series):
            value = _entry_answer_ms(o, side, fraction)
            if value is None:
                continue
            h = value / ticks2[-1] * height
            opacity = "1" if fraction == 0.5 else "0.45"
            out.append(
                f'<rect x="{x0 + m * bar:.1f}" y="{top + height - h:.1f}" width="{bar - 2:.1f}" '
                f'height="{h:.1f}" fill="{colour}" fill-opacity="{opacity}">'
                f"<title>{escape(f'{o.plan.label} {name}: {value:,.0f} ms')}</title></rect>"
            )
        centre = left2 + n * group + group / 2
        out.append(_text(centre, top + height + 16, o.plan.label, size=10))
        out.append(_text(centre, top + height + 29, f"{o.plan.opts.rate:g}/s", size=9))
        out.append(_text(centre, top - 6, _verdict_mark(o), size=9, fill="#333"))
    if others:
        out.append(
            _text(left2 + width2 / 2, top + height + 44, "bars: p50 dark, p95 light", size=9)
        )

    # Panel 3: calls lost at every point.
    top3, height3 = 490.0, 100.0
    lost = [
        (o, [o.result.summaries[side].lost if o.result else None for side in (0, 1)])
        for o in outcomes
    ]
    ticks3 = nice_ticks(max([2, *(v for _, pair in lost for v in pair if v)]), count=2)
    out += _axis(left, top3, left2 + width2 - left, height3, ticks3, "calls lost")
    out.append(
        f'<line x1="{left:.1f}" y1="{top3 + height3:.1f}" x2="{left2 + width2:.1f}" '
        f'y2="{top3 + height3:.1f}" stroke="#444"/>'
    )
    group3 = (left2 + width2 - left) / max(1, len(lost))
    for n, (o, pair) in enumerate(lost):
        centre = left + n * group3 + group3 / 2
        for side, (value, colour) in enumerate(
            zip(pair, (APP_QUEUE_COLOUR, ENGINE_COLOUR), strict=True)
        ):
            x = centre - 22 + side * 23
            if value is None:
                out.append(_text(x + 10, top3 + height3 - 4, "n/a", size=9, fill="#888"))
                continue
            h = value / ticks3[-1] * height3
            out.append(
                f'<rect x="{x:.1f}" y="{top3 + height3 - h:.1f}" width="21" height="{h:.1f}" '
                f'fill="{colour}"/>'
            )
            out.append(_text(x + 10.5, top3 + height3 - h - 3, str(value), size=9))
        out.append(_text(centre, top3 + height3 + 15, o.plan.label, size=10))
        out.append(_text(centre, top3 + height3 + 28, _verdict_mark(o), size=9, fill="#333"))
    out.append(
        f'<rect x="{left + 10:.1f}" y="{top3 - 24:.1f}" width="10" height="10" '
        f'fill="{APP_QUEUE_COLOUR}"/>'
    )
    out.append(_text(left + 24, top3 - 15, "app_queue", anchor="start", size=10))
    out.append(
        f'<rect x="{left + 90:.1f}" y="{top3 - 24:.1f}" width="10" height="10" '
        f'fill="{ENGINE_COLOUR}"/>'
    )
    out.append(_text(left + 104, top3 - 15, "engine", anchor="start", size=10))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--points",
        type=parse_points,
        default=DEFAULT_POINTS,
        help=f"comma-separated: calls/s, 'overload', 'fault' (default {DEFAULT_POINTS})",
    )
    parser.add_argument(
        "--seconds-per-point",
        type=float,
        default=60.0,
        help="load length of each phase: calls per phase = rate x seconds",
    )
    parser.add_argument("--agents-per-rate", type=float, default=10.0)
    parser.add_argument("--overload-rate", type=float, default=12.0)
    parser.add_argument("--overload-agents", type=int, default=80)
    parser.add_argument("--overload-patience-s", type=float, default=20.0)
    parser.add_argument("--fault-rate", type=float, default=10.0)
    parser.add_argument(
        "--fault-share", type=float, default=0.2, help="share of the phones refusing (fault)"
    )
    parser.add_argument("--talk-s", type=float, default=8.0)
    parser.add_argument("--talk-spread-s", type=float, default=4.0)
    parser.add_argument("--ring-s", type=float, default=0.7)
    parser.add_argument("--patience-s", type=float, default=120.0, help="at the rate points")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--svg", type=Path, default=ROOT / "docs" / "bench_curve.svg")
    parser.add_argument("--keep", action="store_true", help="keep each point's run directory")
    args = parser.parse_args(argv)
    if not 0 <= args.talk_spread_s < args.talk_s:
        parser.error("--talk-spread-s must be >= 0 and below --talk-s")
    if not 0 < args.fault_share < 1:
        parser.error("--fault-share must be within (0, 1)")
    if args.seconds_per_point <= 0 or args.overload_agents < 1 or args.agents_per_rate <= 0:
        parser.error("--seconds-per-point, --overload-agents and --agents-per-rate must be > 0")
    if shutil.which("sipp") is None:
        parser.error("sipp is not installed (package sip-tester; scripts/setup-system.sh)")
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    command = script_command(__file__, args, skip=("keep", "svg"))
    plans = plan_points(args)
    started = time.perf_counter()
    code = code_version()
    print(
        "\n".join(
            [
                f"$ {command}",
                machine_line(_asterisk_version()),
                f"code {code}",
                ENGINE_SETUP,
                f"points: {', '.join(p.label for p in plans)}; each on a fresh private stack, "
                "app_queue phase first, then the engine phase with the same load",
                "",
            ]
        ),
        flush=True,
    )
    outcomes = asyncio.run(run_curve(plans, keep=args.keep))
    print("\n".join(["### summary", "", *markdown_table(outcomes), ""]), flush=True)
    commit, _, changes = code.partition(" + ")
    subtitle = (
        f"{datetime.now():%Y-%m-%d}, {commit}{' (+ uncommitted changes)' if changes else ''}; "
        f"{args.seconds_per_point:g} s of load per phase at every point"
    )
    args.svg.parent.mkdir(parents=True, exist_ok=True)
    args.svg.write_text(
        curve_svg(outcomes, subtitle, agents_per_rate=args.agents_per_rate), encoding="utf-8"
    )
    passed = sum(o.status == "PASS" for o in outcomes)
    no_verdict = sum(o.status in NO_VERDICT for o in outcomes)
    placed_short = [
        o.plan.label
        for o in outcomes
        if o.result is not None
        and any(not_placed(p, s) for p, s in zip(o.result.phases, o.result.summaries, strict=True))
    ]
    print(
        f"chart written to {args.svg}; {passed} of {len(outcomes)} points PASS, "
        f"{len(outcomes) - passed - no_verdict} FAIL, {no_verdict} without a verdict"
        + (f"; calls not placed at {', '.join(placed_short)}" if placed_short else "")
        + f"; wall time {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    return 0


def _asterisk_version() -> str:
    """The installed Asterisk, before any stack runs."""
    try:
        text = subprocess.run(
            ["asterisk", "-V"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "Asterisk (version unknown)"
    return text or "Asterisk (version unknown)"


if __name__ == "__main__":
    sys.exit(main())
