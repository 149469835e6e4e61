"""The console's chart: the 15 s answer rate of each hour of today."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from cti.config import EngineConfig
from cti.console.service import ConsoleService
from cti.runtime import build_runtime

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(hour: int, minute: int, second: float = 0.0) -> float:
    return datetime(2026, 11, 21, hour, minute, tzinfo=SHANGHAI).timestamp() + second


def test_one_point_per_hour_of_the_local_day_so_far() -> None:
    now = at(10, 30)
    runtime = build_runtime(EngineConfig(), clock=lambda: now)  # never started: no AMI
    tracker = runtime.acd.tracker
    # 08:xx: two answered within 15 s, one after; 09:00:00 sharp: one within.
    calls = [
        ("c1", at(8, 10), 5.0),
        ("c2", at(8, 20), 15.0),
        ("c3", at(8, 30), 40.0),
        ("c4", at(9, 0) - 10.0, 10.0),  # answered exactly at 09:00:00
    ]
    for call_id, queued, wait in calls:
        tracker.call_queued(call_id, at=queued, line="12345", queue="12345-general", skill=None)
        tracker.call_answered(call_id, at=queued + wait, wait_s=wait, agent="1001")

    chart = tracker.rate_chart(now=now)
    assert [p["from"] for p in chart] == [at(h, 0) for h in range(11)]
    assert chart[-1]["to"] == now
    by_hour = {datetime.fromtimestamp(p["from"], SHANGHAI).hour: p for p in chart}
    assert (by_hour[8]["offered"], by_hour[8]["answered"]) == (3, 3)
    assert by_hour[8]["rate_15s"] == pytest.approx(2 / 3)
    assert (by_hour[9]["offered"], by_hour[9]["rate_15s"]) == (1, 1.0)  # counted once
    assert by_hour[10]["offered"] == 0 and by_hour[10]["rate_15s"] is None
    assert ConsoleService(runtime).snapshot()["rate_chart"] == chart
