"""Unit tests for recording.wav: headers left as Asterisk's format_wav leaves
them when it is killed (sizes zero), repaired so that Python's ``wave`` reads
the whole call again."""

from __future__ import annotations

import array
import math
import os
import struct
import wave
from pathlib import Path

import pytest

from recording.wav import WavError, parse_header, repair_wav_header, wav_info

RATE = 8000


def _write_wav(path: Path, seconds: float, *, rate: int = RATE) -> int:
    """A 440 Hz tone as 16-bit mono PCM; returns the number of frames."""
    frames = int(seconds * rate)
    samples = array.array(
        "h", (int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(frames))
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return frames


def _zero_sizes(path: Path, data_size_at: int = 40) -> None:
    """What format_wav leaves on disk until it closes the file."""
    with path.open("r+b") as f:
        f.seek(4)
        f.write(b"\0\0\0\0")
        f.seek(data_size_at)
        f.write(b"\0\0\0\0")


def _read_back(path: Path) -> tuple[int, float]:
    with wave.open(str(path), "rb") as w:
        return w.getnframes(), w.getnframes() / w.getframerate()


def test_a_killed_recording_is_repaired_to_its_full_length(tmp_path: Path) -> None:
    path = tmp_path / "call-1.wav"
    frames = _write_wav(path, 3.5)
    _zero_sizes(path)

    before = wav_info(path)
    assert not before.header_ok
    assert (before.sample_rate, before.channels, before.bits) == (RATE, 1, 16)
    assert before.data_offset == 44
    assert before.data_bytes == 2 * frames  # the audio on disk, not what the header says

    result = repair_wav_header(path)

    assert result.repaired
    assert result.info.header_ok
    assert result.info.data_bytes == 2 * frames
    assert result.info.duration_s == pytest.approx(3.5)
    assert _read_back(path) == (frames, 3.5)
    assert wav_info(path) == result.info


def test_a_trailing_partial_frame_is_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "call-2.wav"
    frames = _write_wav(path, 1.0)
    _zero_sizes(path)
    with path.open("ab") as f:
        f.write(b"\x01")  # half of a 16-bit sample: killed mid-write
    size_before = path.stat().st_size

    result = repair_wav_header(path)

    assert result.repaired
    assert path.stat().st_size == size_before - 1
    assert result.info.data_bytes == 2 * frames
    assert _read_back(path) == (frames, 1.0)


def test_a_good_header_is_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "call-3.wav"
    _write_wav(path, 0.5)
    old = 1_600_000_000
    os.utime(path, (old, old))
    content = path.read_bytes()

    result = repair_wav_header(path)

    assert not result.repaired
    assert result.info.header_ok
    assert result.info.duration_s == pytest.approx(0.5)
    assert path.read_bytes() == content
    assert path.stat().st_mtime == old


def test_chunks_before_data_are_walked_over(tmp_path: Path) -> None:
    path = tmp_path / "call-4.wav"
    frames = _write_wav(path, 0.25)
    raw = path.read_bytes()
    info_chunk = b"INFOISFT" + struct.pack("<I", 7) + b"hotline\0"  # odd size: one pad byte
    listed = raw[:36] + b"LIST" + struct.pack("<I", len(info_chunk)) + info_chunk + raw[36:]
    path.write_bytes(listed)
    data_size_at = 36 + 8 + len(info_chunk) + 4
    _zero_sizes(path, data_size_at)

    result = repair_wav_header(path)

    assert result.repaired
    assert result.info.data_offset == data_size_at + 4
    assert _read_back(path) == (frames, 0.25)


def test_an_empty_recording_has_a_valid_zero_length_after_repair(tmp_path: Path) -> None:
    path = tmp_path / "call-5.wav"
    _write_wav(path, 0.0)
    _zero_sizes(path)

    result = repair_wav_header(path)

    assert result.repaired
    assert (result.info.data_bytes, result.info.duration_s) == (0, 0.0)
    assert _read_back(path) == (0, 0.0)


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (b"", "shorter than a WAV header"),
        (b"RIFF\0\0\0\0WAVEfmt ", "shorter than a WAV header"),
        (b"\x7fELF" + bytes(100), "not a RIFF file"),
        (b"RIFF\0\0\0\0AVI " + bytes(100), "not WAVE"),
        (b"RIFF\0\0\0\0WAVE" + b"junk" + struct.pack("<I", 1000) + bytes(40), "no data chunk"),
        (b"RIFF\0\0\0\0WAVE" + b"data" + bytes(40), "no fmt chunk"),
    ],
)
def test_what_is_not_a_wav_file_is_named(tmp_path: Path, content: bytes, complaint: str) -> None:
    path = tmp_path / "broken.wav"
    path.write_bytes(content)

    with pytest.raises(WavError, match=complaint) as raised:
        repair_wav_header(path)

    assert str(path) in str(raised.value)
    assert isinstance(raised.value, ValueError)
    assert path.read_bytes() == content


def test_a_compressed_wav_is_refused() -> None:
    gsm_fmt = struct.pack("<HHIIHH", 0x0031, 1, 8000, 1625, 65, 0)
    head = b"RIFF\0\0\0\0WAVE" + b"fmt " + struct.pack("<I", 16) + gsm_fmt + b"data\0\0\0\0"
    with pytest.raises(WavError, match="0x0031 is not PCM"):
        parse_header(head, len(head) + 650, source="call.WAV")


def test_a_header_claiming_more_than_the_file_holds_is_not_ok() -> None:
    pcm_fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    head = b"RIFF" + struct.pack("<I", 36 + 1000) + b"WAVE"
    head += b"fmt " + struct.pack("<I", 16) + pcm_fmt + b"data" + struct.pack("<I", 1000)

    info = parse_header(head, 44 + 600)

    assert not info.header_ok
    assert info.data_bytes == 600
