"""Unit tests for recording.transcode with the real ffmpeg on synthetic audio.

The "speech" is band-limited noise: Gaussian noise through a one-pole
low-pass filter (most energy below about 1 kHz, like voiced speech on a
telephone line), with a 4 Hz syllable-rate envelope, at about -20 dBFS. It
is harder to compress than real speech (no pauses, no pitch structure), so
the size ratios here are a floor. The legs are pure tones, 300 Hz for the
caller and 1000 Hz for the agents, so that each channel can be told apart.
"""

from __future__ import annotations

import array
import math
import random
import shutil
import stat
import wave
from pathlib import Path

import pytest

from recording.transcode import (
    Codec,
    TranscodeError,
    decode_pcm,
    merge_legs,
    probe_duration,
    transcode,
)

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
    reason="ffmpeg is not installed (scripts/setup-system.sh installs it)",
)

RATE = 8000


def _write(path: Path, samples: array.array[int]) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.tobytes())
    return path


def _speech_like(seconds: float, seed: int = 7) -> array.array[int]:
    rnd = random.Random(seed)
    out = array.array("h")
    low_passed = 0.0
    for i in range(int(seconds * RATE)):
        low_passed = 0.6 * low_passed + 0.4 * rnd.gauss(0.0, 1.0)
        syllables = 0.5 * (1.0 + math.sin(2 * math.pi * 4 * i / RATE))
        out.append(max(-32767, min(32767, int(6000 * low_passed * syllables))))
    return out


def _tone(hz: float, seconds: float, *, start_s: float, end_s: float) -> array.array[int]:
    """*hz* at -12 dBFS peak between start_s and end_s, silence elsewhere."""
    peak = 32767 * 10 ** (-12 / 20)
    return array.array(
        "h",
        (
            int(peak * math.sin(2 * math.pi * hz * i / RATE))
            if start_s * RATE <= i < end_s * RATE
            else 0
            for i in range(int(seconds * RATE))
        ),
    )


def _dbfs(pcm: bytes, start_s: float, end_s: float) -> float:
    samples = array.array("h", pcm)[int(start_s * RATE) : int(end_s * RATE)]
    rms = math.sqrt(sum(s * s for s in samples) / len(samples))
    return 20 * math.log10(rms / 32768) if rms else -120.0


@pytest.mark.parametrize(("codec", "suffix"), [("opus", ".opus"), ("mp3", ".mp3")])
def test_the_duration_survives_transcoding(tmp_path: Path, codec: Codec, suffix: str) -> None:
    src = _write(tmp_path / "call.wav", _speech_like(6.0))
    dst = tmp_path / f"call{suffix}"

    encoded = transcode(src, dst, codec=codec)

    assert encoded.path == dst
    assert (encoded.codec, encoded.channels) == (codec, 1)
    assert encoded.size_bytes == dst.stat().st_size
    assert encoded.duration_s == pytest.approx(6.0)
    assert probe_duration(dst) == pytest.approx(6.0, abs=0.1)
    assert len(decode_pcm(dst)) / 2 / RATE == pytest.approx(6.0, abs=0.1)
    assert {p.name for p in tmp_path.iterdir()} == {"call.wav", f"call{suffix}"}


def test_opus_is_at_least_eight_times_smaller_than_the_wav(tmp_path: Path) -> None:
    src = _write(tmp_path / "call.wav", _speech_like(20.0))

    encoded = transcode(src, tmp_path / "call.opus")

    assert src.stat().st_size / encoded.size_bytes >= 8.0


@pytest.mark.parametrize("codec", ["opus", "mp3"])
def test_merged_legs_put_the_caller_left_and_the_agents_right(tmp_path: Path, codec: Codec) -> None:
    # The caller speaks 0-2 s of a 3 s leg; the agents 2-4.5 s of a 4.5 s leg.
    caller = _write(tmp_path / "c-caller.wav", _tone(300, 3.0, start_s=0.0, end_s=2.0))
    agents = _write(tmp_path / "c-agents.wav", _tone(1000, 4.5, start_s=2.0, end_s=4.5))

    merged = merge_legs(caller, agents, tmp_path / f"c.legs.{codec}", codec=codec)

    assert merged.channels == 2
    assert probe_duration(merged.path) == pytest.approx(4.5, abs=0.1)
    left = decode_pcm(merged.path, channel=0)
    right = decode_pcm(merged.path, channel=1)
    assert len(left) == len(right)
    assert len(left) / 2 / RATE == pytest.approx(4.5, abs=0.1)
    assert _dbfs(left, 0.1, 1.9) > -20
    assert _dbfs(left, 2.2, 4.4) < -60
    assert _dbfs(right, 0.1, 1.9) < -60
    assert _dbfs(right, 2.2, 4.4) > -20


def test_a_mono_file_has_no_second_channel(tmp_path: Path) -> None:
    encoded = transcode(_write(tmp_path / "c.wav", _speech_like(1.0)), tmp_path / "c.opus")

    with pytest.raises(TranscodeError, match="no channel 1") as raised:
        decode_pcm(encoded.path, channel=1)
    assert str(encoded.path) in str(raised.value)


def test_a_missing_input_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "gone.wav"
    with pytest.raises(TranscodeError, match="no such file") as raised:
        transcode(missing, tmp_path / "gone.opus")
    assert str(missing) in str(raised.value)
    with pytest.raises(TranscodeError, match="no such file"):
        merge_legs(
            _write(tmp_path / "c.wav", _tone(300, 0.5, start_s=0, end_s=0.5)),
            missing,
            tmp_path / "m.opus",
        )


def test_a_garbage_input_is_named(tmp_path: Path) -> None:
    garbage = tmp_path / "noise.wav"
    garbage.write_bytes(random.Random(1).randbytes(5000))

    with pytest.raises(TranscodeError, match="not a RIFF file") as raised:
        transcode(garbage, tmp_path / "noise.opus")
    assert str(garbage) in str(raised.value)
    # Not checked as a WAV first: ffmpeg itself refuses it, and says why.
    with pytest.raises(TranscodeError, match="ffmpeg failed on .*noise.wav.*Invalid data"):
        decode_pcm(garbage)
    with pytest.raises(TranscodeError, match="ffprobe failed on .*noise.wav"):
        probe_duration(garbage)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noise.wav"]


def test_a_failed_encode_leaves_the_old_file_and_no_partial_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _write(tmp_path / "c.wav", _speech_like(0.5))
    dst = tmp_path / "c.opus"
    dst.write_bytes(b"the previous encoding")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ffmpeg"  # writes half a file, then dies as ffmpeg would
    fake.write_text(
        '#!/bin/sh\nfor last; do :; done\nprintf partial > "$last"\n'
        'echo "Error while encoding: disk on fire" >&2\nexit 1\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(bin_dir))

    with pytest.raises(TranscodeError, match=r"ffmpeg failed on .*c\.wav \(exit 1\).*disk on fire"):
        transcode(src, dst)

    assert dst.read_bytes() == b"the previous encoding"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "c.opus", "c.wav"]


def test_without_ffmpeg_the_error_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _write(tmp_path / "c.wav", _speech_like(0.5))
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))

    with pytest.raises(TranscodeError, match="ffmpeg not found on PATH"):
        transcode(src, tmp_path / "c.opus")
