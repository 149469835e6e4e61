"""Recordings' audio conversion: raw WAV to the stored format, the two
direction legs to one stereo file, any recording back to PCM for the checks.

Each conversion is one ffmpeg process over whole files, with no audio
through Python: these run in the post-processing workers, where a 5-minute
call has to be repaired, transcoded and hashed in well under two seconds.
They block; never call them on the event loop.

Repair raw files first (:func:`recording.wav.repair_wav_header`): ffmpeg
does read a header with zero sizes to the end of the file, but warns of a
corrupt last packet, and other tools read such a file as empty.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from recording.wav import WavError, WavInfo, wav_info

__all__ = [
    "AudioFile",
    "Codec",
    "TranscodeError",
    "decode_pcm",
    "default_bitrate_kbps",
    "merge_legs",
    "probe_duration",
    "transcode",
]

Codec = Literal["opus", "mp3"]

_STDERR_TAIL_CHARS = 800


class TranscodeError(RuntimeError):
    """ffmpeg is missing, or it could not read or write a file (named in the message)."""


@dataclass(frozen=True, slots=True)
class AudioFile:
    """A file written by :func:`transcode` or :func:`merge_legs`."""

    path: Path
    codec: str
    size_bytes: int
    duration_s: float
    """The source's duration (the encoded file adds a few ms of codec padding)."""
    channels: int


def default_bitrate_kbps(codec: Codec) -> int:
    """The kbit/s of a mono file when none is given (a stereo one gets twice this).

    Opus at 12 kbps keeps narrow-band telephone speech fully intelligible and
    is about 10x smaller than the 128 kbit/s WAV; MP3 needs twice that for
    the same intelligibility.
    """
    if codec == "opus":
        return 12
    if codec == "mp3":
        return 24
    raise ValueError(f"codec must be 'opus' or 'mp3', got {codec!r}")


def transcode(
    src_wav: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    codec: Codec = "opus",
    bitrate_kbps: int | None = None,
    start_s: float = 0.0,
) -> AudioFile:
    """Encode *src_wav* as mono *codec* at *dst*, atomically, from *start_s*
    seconds into it (the part before is left out).

    Opus goes in an Ogg container (name the file ``.opus``), MP3 as plain MP3.
    ffmpeg writes a temporary file next to *dst*, which is fsync'd and renamed
    over *dst* only when complete: *dst* is either absent, the old file, or
    the whole new one. Raises :class:`TranscodeError` naming the file.
    """
    src = _existing(src_wav)
    source = _pcm_wav(src)
    kbps = _bitrate(codec, bitrate_kbps, channels=1)
    return _encode(
        [*_seek(start_s), "-threads", "1", "-i", str(src)],
        [],
        Path(dst),
        codec=codec,
        kbps=kbps,
        channels=1,
        duration_s=max(source.duration_s - start_s, 0.0),
        what=str(src),
    )


def merge_legs(
    caller_wav: str | os.PathLike[str],
    agents_wav: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    codec: Codec = "opus",
    bitrate_kbps: int | None = None,
    start_s: float = 0.0,
) -> AudioFile:
    """One stereo file of a call's two directions: left the caller, right the
    agents, from *start_s* seconds into them.

    The shorter leg is padded with silence to the longer one's length.
    *bitrate_kbps* is the whole file's (both legs; by default twice
    :func:`default_bitrate_kbps`). Opus codes each leg as its own mono stream
    (Ogg Opus channel mapping family 255): a coupled stereo stream at speech
    bitrates lets about -35 dB of one side bleed into the other, which would
    make the caller "speak" in the agents' channel for the checks. Players
    built on ffmpeg decode such files; those built on opusfile refuse them.
    MP3 codes the two channels independently (no joint stereo) for the same
    reason. Written atomically, as :func:`transcode` does.
    """
    caller, agents = _existing(caller_wav), _existing(agents_wav)
    duration_s = max(_pcm_wav(caller).duration_s, _pcm_wav(agents).duration_s) - start_s
    seek = _seek(start_s)
    inputs = [*seek, "-threads", "1", "-i", str(caller), *seek, "-threads", "1", "-i", str(agents)]
    # amix of two half-silent stereo streams rather than amerge/join: those stop
    # at the shorter input, amix pads it (normalize=0 keeps the levels exact).
    graph = (
        "[0:a]aformat=channel_layouts=mono,pan=stereo|c0=c0[caller];"
        "[1:a]aformat=channel_layouts=mono,pan=stereo|c1=c0[agents];"
        "[caller][agents]amix=inputs=2:duration=longest:normalize=0[call]"
    )
    mixing = ["-filter_complex_threads", "1", "-filter_complex", graph, "-map", "[call]"]
    kbps = _bitrate(codec, bitrate_kbps, channels=2)
    return _encode(
        inputs,
        mixing,
        Path(dst),
        codec=codec,
        kbps=kbps,
        channels=2,
        duration_s=max(duration_s, 0.0),
        what=f"{caller} + {agents}",
    )


def decode_pcm(
    src: str | os.PathLike[str], *, sample_rate: int = 8000, channel: int | None = None
) -> bytes:
    """The audio of *src* as 16-bit signed little-endian mono PCM at *sample_rate*.

    *channel* None mixes all channels down; 0 or 1 takes one channel of a
    stereo file (0 = left = caller, 1 = right = agents in :func:`merge_legs`
    files). Raises :class:`TranscodeError` for an unreadable file or a
    channel it does not have.
    """
    path = _existing(src)
    if channel is not None and channel < 0:
        raise ValueError(f"channel must be 0 or more, got {channel}")
    argv = [_tool("ffmpeg"), *_QUIET, "-threads", "1", "-i", str(path)]
    if channel is not None:
        channels = _probe(path)[1]
        if channel >= channels:
            raise TranscodeError(f"{path}: has {channels} channel(s), no channel {channel}")
        argv += ["-af", f"pan=mono|c0=c{channel}"]
    argv += ["-ac", "1", "-ar", str(sample_rate), "-f", "s16le", "-c:a", "pcm_s16le", "pipe:1"]
    return _run(argv, what=str(path))


def probe_duration(path: str | os.PathLike[str]) -> float:
    """The playing time of an audio file in seconds, from ffprobe."""
    return _probe(_existing(path))[0]


_QUIET = ("-nostdin", "-hide_banner", "-loglevel", "error")
_BITEXACT = ("-fflags", "+bitexact", "-flags:a", "+bitexact")
"""The same input gives the same bytes (no random Ogg serial, no encoder
version tag): a retried job produces the very file an earlier attempt may
already have stored, which the store accepts instead of refusing a change."""


def _seek(start_s: float) -> list[str]:
    if start_s < 0:
        raise ValueError(f"start_s must be >= 0, got {start_s}")
    return ["-ss", f"{start_s:.3f}"] if start_s > 0 else []


def _bitrate(codec: Codec, given: int | None, *, channels: int) -> int:
    if given is None:
        return channels * default_bitrate_kbps(codec)
    if given <= 0:
        raise ValueError(f"bitrate_kbps must be positive, got {given}")
    return given


def _encoder_args(codec: Codec, kbps: int, channels: int) -> list[str]:
    """ffmpeg output options for *codec* at *kbps* for all channels together."""
    total = f"{kbps}k"
    if codec == "opus":
        # 60 ms frames and complexity 3 rather than the defaults (20 ms, 10):
        # under half the CPU time and a 5% smaller file, for stored speech
        # (not a live call, so the 60 ms of latency costs nothing).
        args = ["-c:a", "libopus", "-b:a", total, "-vbr", "on", "-application", "voip"]
        args += ["-frame_duration", "60", "-compression_level", "3", "-f", "ogg"]
        if channels > 1:
            args += ["-mapping_family", "255"]
        return args
    if codec == "mp3":
        args = ["-c:a", "libmp3lame", "-b:a", total, "-f", "mp3"]
        if channels > 1:
            args += ["-joint_stereo", "0"]
        return args
    raise ValueError(f"codec must be 'opus' or 'mp3', got {codec!r}")


def _encode(
    inputs: list[str],
    mixing: list[str],
    dst: Path,
    *,
    codec: Codec,
    kbps: int,
    channels: int,
    duration_s: float,
    what: str,
) -> AudioFile:
    """Run ffmpeg into a temporary file next to *dst*, then rename it over *dst*.

    No ffprobe afterwards: starting it costs a tenth of a second, close to a
    tenth of the whole budget for a 5-minute call.
    """
    encoder = _encoder_args(codec, kbps, channels)
    if not dst.parent.is_dir():
        raise TranscodeError(f"{dst}: no such directory {dst.parent}")
    part = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:12]}.part")
    argv = [_tool("ffmpeg"), *_QUIET, *inputs, *mixing]
    argv += ["-ac", str(channels), "-map_metadata", "-1", "-threads", "1", *_BITEXACT]
    argv += [*encoder, str(part)]
    try:
        _run(argv, what=what)
        with part.open("rb") as written:
            os.fsync(written.fileno())
        os.replace(part, dst)
    finally:
        part.unlink(missing_ok=True)
    return AudioFile(
        path=dst,
        codec=codec,
        size_bytes=dst.stat().st_size,
        duration_s=duration_s,
        channels=channels,
    )


def _probe(path: Path) -> tuple[float, int]:
    """(duration in seconds, channels) of *path*'s first audio stream.

    MP3 encoders put a decoder delay before the audio, which ffprobe reports
    as the stream's start time and counts in its duration: it is taken off.
    """
    argv = [_tool("ffprobe"), "-v", "error", "-select_streams", "a:0"]
    argv += ["-show_entries", "format=duration:stream=channels,start_time", "-of", "json"]
    report = json.loads(_run([*argv, str(path)], what=str(path)))
    streams = report.get("streams") or []
    duration = report.get("format", {}).get("duration")
    if not streams or duration in (None, "N/A"):
        raise TranscodeError(f"{path}: no audio stream with a known duration")
    start = streams[0].get("start_time")
    delay = float(start) if start not in (None, "N/A") else 0.0
    return float(duration) - max(delay, 0.0), int(streams[0]["channels"])


def _run(argv: list[str], *, what: str) -> bytes:
    """Run a tool, return its stdout; a failure becomes TranscodeError with its stderr's tail."""
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip()[-_STDERR_TAIL_CHARS:]
        tool = Path(argv[0]).name
        raise TranscodeError(f"{tool} failed on {what} (exit {done.returncode}): {tail}")
    return done.stdout


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise TranscodeError(
            f"{name} not found on PATH; install ffmpeg (scripts/setup-system.sh does)"
        )
    return found


def _pcm_wav(path: Path) -> WavInfo:
    """The source's header, checked before ffmpeg is started for it."""
    try:
        return wav_info(path)
    except WavError as e:
        raise TranscodeError(str(e)) from e


def _existing(path: str | os.PathLike[str]) -> Path:
    """Check an input exists before starting a process for it."""
    path = Path(path)
    if not path.is_file():
        raise TranscodeError(f"{path}: no such file")
    return path
