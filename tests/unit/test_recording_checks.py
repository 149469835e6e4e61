"""Unit tests for recording.checks on synthetic two-direction calls whose
figures are known by construction.

"Speech" is a tone at -12 dBFS peak (300 Hz for the caller, 1000 Hz for the
agents); every boundary falls on a 20 ms frame, so the expected figures are
exact and the tolerance is one frame.
"""

from __future__ import annotations

import array
import json
import math
import random

import pytest

from recording.checks import analyse

RATE = 8000
FRAME_S = 0.02


def _leg(
    seconds: float,
    spans: list[tuple[float, float]],
    *,
    hz: float,
    dbfs: float = -12.0,
    noise_dbfs: float | None = None,
) -> bytes:
    """A leg of *seconds*: a tone at *dbfs* peak during *spans*, silence (or
    Gaussian noise at *noise_dbfs* RMS) elsewhere."""
    peak = 32767 * 10 ** (dbfs / 20)
    noise = 32768 * 10 ** (noise_dbfs / 20) if noise_dbfs is not None else 0.0
    rnd = random.Random(hz)
    samples = array.array("h")
    for i in range(round(seconds * RATE)):
        t = i / RATE
        value = rnd.gauss(0.0, noise) if noise else 0.0
        if any(start <= t < end for start, end in spans):
            value += peak * math.sin(2 * math.pi * hz * t)
        samples.append(int(value))
    return samples.tobytes()


def _approx(seconds: float) -> object:
    return pytest.approx(seconds, abs=FRAME_S + 1e-9)


@pytest.mark.parametrize("noise_dbfs", [None, -60.0])
def test_a_call_with_known_figures(noise_dbfs: float | None) -> None:
    # caller 0-5 s and 12-14 s; agents 8-15 s: dead air 5-8 s, talk-over 12-14 s.
    # The caller's leg is 3 frames shorter and ends in half a sample.
    caller = _leg(15.94, [(0, 5), (12, 14)], hz=300, noise_dbfs=noise_dbfs) + b"\x01"
    agents = _leg(16.0, [(8, 15)], hz=1000, noise_dbfs=noise_dbfs)

    checks = analyse(caller, agents)

    assert checks.duration_s == 16.0
    assert checks.caller_talk_s == _approx(7.0)
    assert checks.agent_talk_s == _approx(7.0)
    assert checks.caller_talk_ratio == pytest.approx(7.0 / 16.0, abs=0.002)
    assert checks.agent_talk_ratio == pytest.approx(7.0 / 16.0, abs=0.002)
    assert checks.longest_silence_s == _approx(3.0)
    assert checks.talk_over_count == 1
    assert checks.talk_over_s == _approx(2.0)
    assert checks.over_target is False


def test_pauses_between_syllables_are_talk_and_longer_ones_are_silence() -> None:
    # Ten 200 ms syllables 160 ms apart (0-3.44 s), then a 0.5 s pause, then 1 s more.
    syllables = [(k * 0.36, k * 0.36 + 0.2) for k in range(10)]
    caller = _leg(5.0, [*syllables, (3.94, 4.94)], hz=300)
    agents = bytes(len(caller))

    bridged = analyse(caller, agents)  # hangover 300 ms
    frame_by_frame = analyse(caller, agents, hangover_ms=0)

    assert bridged.caller_talk_s == _approx(3.44 + 1.0)
    assert bridged.longest_silence_s == _approx(0.5)
    assert frame_by_frame.caller_talk_s == _approx(10 * 0.2 + 1.0)
    assert frame_by_frame.longest_silence_s == _approx(0.5)


def test_an_overlap_shorter_than_the_minimum_is_not_talk_over() -> None:
    # The agent talks 0-4 s; the caller says "mm" at 1.0-1.1 s and cuts in at 2.0-2.5 s.
    caller = _leg(4.0, [(1.0, 1.1), (2.0, 2.5)], hz=300)
    agents = _leg(4.0, [(0.0, 4.0)], hz=1000)

    default = analyse(caller, agents)  # min_overlap_ms = 200
    strict = analyse(caller, agents, min_overlap_ms=60)

    assert (default.talk_over_count, default.talk_over_s) == (1, _approx(0.5))
    assert (strict.talk_over_count, strict.talk_over_s) == (2, _approx(0.6))


def test_the_threshold_decides_what_is_speech() -> None:
    quiet = _leg(2.0, [(0.0, 1.0)], hz=300, dbfs=-45.0)  # RMS -48 dBFS
    silence = bytes(len(quiet))

    assert analyse(quiet, silence).caller_talk_s == 0.0
    assert analyse(quiet, silence, threshold_dbfs=-55.0).caller_talk_s == _approx(1.0)


def test_over_target_is_strictly_longer_than_the_target() -> None:
    short = bytes(2 * RATE * 399)
    long = bytes(2 * RATE * 401)

    under = analyse(short, short, target_s=400.0)
    over = analyse(long, long[: -2 * RATE], target_s=400.0)

    assert (under.duration_s, under.over_target) == (399.0, False)
    assert (over.duration_s, over.over_target) == (401.0, True)
    assert over.longest_silence_s == 401.0
    assert (over.caller_talk_s, over.agent_talk_s, over.talk_over_count) == (0.0, 0.0, 0)
    assert (over.caller_talk_ratio, over.agent_talk_ratio) == (0.0, 0.0)


def test_an_empty_call_has_zero_figures() -> None:
    checks = analyse(b"", b"")

    assert checks.duration_s == 0.0
    assert checks.longest_silence_s == 0.0
    assert (checks.caller_talk_ratio, checks.agent_talk_ratio) == (0.0, 0.0)
    assert checks.over_target is False


def test_the_figures_are_stored_as_json() -> None:
    caller = _leg(3.0, [(0.0, 1.0)], hz=300)
    agents = _leg(3.0, [(1.5, 3.0)], hz=1000)

    stored = json.loads(json.dumps(analyse(caller, agents, target_s=2.5).as_dict()))

    assert stored == {
        "duration_s": 3.0,
        "caller_talk_s": 1.0,
        "agent_talk_s": 1.5,
        "caller_talk_ratio": pytest.approx(1 / 3),
        "agent_talk_ratio": 0.5,
        "talk_over_s": 0.0,
        "talk_over_count": 0,
        "longest_silence_s": 0.5,
        "target_s": 2.5,
        "over_target": True,
    }


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="frame_ms"):
        analyse(b"", b"", frame_ms=0)
