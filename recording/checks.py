"""Automatic quality checks of a call from its two directions, without a model.

The caller's leg (what the caller said) and the agents' leg (what the caller
heard) are reduced to voice activity per frame by energy alone; from that
come the figures a supervisor looks at first: how long the call was, who
talked how much, the longest dead air, and how often the two talked over
each other.

Pure: PCM bytes in, :class:`CallChecks` out; no I/O, no clock. Music on hold
is on the agents' leg, so it counts as the agents talking: an energy
detector cannot tell it from a voice.
"""

from __future__ import annotations

import array
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass

__all__ = ["CallChecks", "analyse", "voice_activity"]

_FULL_SCALE = 32768.0


@dataclass(frozen=True, slots=True)
class CallChecks:
    """A call's figures; seconds are measured in samples, so they are exact
    up to the frame boundaries the activity is decided on."""

    duration_s: float
    """The longer leg's length (the shorter one is padded with silence)."""
    caller_talk_s: float
    agent_talk_s: float
    caller_talk_ratio: float
    """caller_talk_s / duration_s (0 for an empty call). The two ratios do not
    add up to 1: silence is in neither and talk-over is in both."""
    agent_talk_ratio: float
    """agent_talk_s / duration_s, as caller_talk_ratio."""
    talk_over_s: float
    """The total length of the talk-over episodes counted in talk_over_count."""
    talk_over_count: int
    """Spans where both sides speak at once, each at least the minimum length
    (a shorter overlap, e.g. a click or an "mm" under the other side, is not one)."""
    longest_silence_s: float
    """The longest span in which neither side speaks, anywhere in the call:
    the start before the first word and the end after the last one included."""
    target_s: float
    over_target: bool
    """duration_s > target_s."""

    def as_dict(self) -> dict[str, float | int | bool]:
        """The figures by name, for JSON and the catalog's ``checks`` column."""
        return asdict(self)


def analyse(
    caller_pcm: bytes,
    agents_pcm: bytes,
    *,
    sample_rate: int = 8000,
    target_s: float = 400.0,
    frame_ms: int = 20,
    threshold_dbfs: float = -40.0,
    hangover_ms: int = 300,
    min_overlap_ms: int = 200,
) -> CallChecks:
    """The checks of a call from its legs: 16-bit signed little-endian mono PCM.

    Each leg is cut into *frame_ms* frames and each frame is decided speech
    or silence by :func:`voice_activity`: RMS at least *threshold_dbfs*, and
    pauses of at most *hangover_ms* inside a turn bridged. The shorter leg is
    padded with silence. Talk-over is where both sides speak at once; a span
    of it shorter than *min_overlap_ms* is neither counted nor summed.
    """
    if sample_rate <= 0 or frame_ms <= 0 or min_overlap_ms < 0:
        raise ValueError(
            f"sample_rate and frame_ms must be positive and min_overlap_ms not negative, "
            f"got {sample_rate}, {frame_ms}, {min_overlap_ms}"
        )
    caller = _samples(caller_pcm)
    agents = _samples(agents_pcm)
    total = max(len(caller), len(agents))
    frame_len = max(1, sample_rate * frame_ms // 1000)
    frames = -(-total // frame_len)
    hangover_frames = hangover_ms // frame_ms
    caller_speaks, agents_speak = (
        voice_activity(
            leg,
            frame_len=frame_len,
            frames=frames,
            threshold_dbfs=threshold_dbfs,
            hangover_frames=hangover_frames,
        )
        for leg in (caller, agents)
    )

    def seconds(start: int, end: int) -> float:
        return (min(end * frame_len, total) - start * frame_len) / sample_rate

    both = [c and a for c, a in zip(caller_speaks, agents_speak, strict=True)]
    neither = [not (c or a) for c, a in zip(caller_speaks, agents_speak, strict=True)]
    min_overlap_s = min_overlap_ms / 1000
    overlaps = [seconds(s, e) for s, e in _runs(both)]
    overlaps = [span for span in overlaps if span >= min_overlap_s]
    duration_s = total / sample_rate
    caller_talk_s = sum((seconds(s, e) for s, e in _runs(caller_speaks)), 0.0)
    agent_talk_s = sum((seconds(s, e) for s, e in _runs(agents_speak)), 0.0)
    return CallChecks(
        duration_s=duration_s,
        caller_talk_s=caller_talk_s,
        agent_talk_s=agent_talk_s,
        caller_talk_ratio=caller_talk_s / duration_s if duration_s else 0.0,
        agent_talk_ratio=agent_talk_s / duration_s if duration_s else 0.0,
        talk_over_s=sum(overlaps, 0.0),
        talk_over_count=len(overlaps),
        longest_silence_s=max((seconds(s, e) for s, e in _runs(neither)), default=0.0),
        target_s=target_s,
        over_target=duration_s > target_s,
    )


def voice_activity(
    samples: Sequence[int],
    *,
    frame_len: int,
    frames: int,
    threshold_dbfs: float,
    hangover_frames: int,
) -> list[bool]:
    """Per frame of *frame_len* samples: does this side speak?

    A frame speaks when its RMS is at least *threshold_dbfs* (relative to
    full scale 32768: a full-scale square wave is 0 dBFS, a full-scale sine
    -3 dBFS). A pause of at most *hangover_frames* between two speaking
    frames speaks too, so that the gaps between syllables and words are not
    silence; unlike a classic hangover it does not lengthen a turn's end, so
    silences and overlaps keep their true length. Frames past the end of
    *samples* (up to *frames*) are silent.
    """
    # Compare the root of the sum of squares (math.hypot, in C) with the
    # threshold scaled to the frame's length: no per-sample Python arithmetic.
    threshold = _FULL_SCALE * 10 ** (threshold_dbfs / 20)
    speaks = [False] * frames
    for index in range(min(frames, -(-len(samples) // frame_len))):
        frame = samples[index * frame_len : (index + 1) * frame_len]
        speaks[index] = math.hypot(*frame) >= threshold * math.sqrt(len(frame))
    last_spoken = -1
    for index, spoken in enumerate(speaks):
        if not spoken:
            continue
        if 0 <= last_spoken < index - 1 and index - last_spoken - 1 <= hangover_frames:
            speaks[last_spoken + 1 : index] = [True] * (index - last_spoken - 1)
        last_spoken = index
    return speaks


def _samples(pcm: bytes) -> array.array[int]:
    """16-bit little-endian PCM as integers (a trailing odd byte is dropped)."""
    samples = array.array("h", pcm[: len(pcm) - len(pcm) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def _runs(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """The [start, end) index spans where *flags* is True."""
    runs: list[tuple[int, int]] = []
    start = -1
    for index, flag in enumerate(flags):
        if flag and start < 0:
            start = index
        elif not flag and start >= 0:
            runs.append((start, index))
            start = -1
    if start >= 0:
        runs.append((start, len(flags)))
    return runs
