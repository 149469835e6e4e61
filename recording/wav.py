"""WAV header inspection and repair for the raw files Asterisk leaves.

Asterisk's ``format_wav`` writes a 44-byte RIFF header whose RIFF and data
sizes are zero and only fixes them when it closes the file. A switch killed
mid-call (``kill -9``, power loss) leaves every byte of audio on disk behind a
header that says there is none. :func:`repair_wav_header` rewrites those two
sizes from the file's real size so that every tool reads the whole call.

The header parsing (:func:`parse_header`) is pure: bytes and a file size in,
:class:`WavInfo` out. The two public file functions only read and patch.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MIN_HEADER_BYTES",
    "WavError",
    "WavInfo",
    "WavRepair",
    "parse_header",
    "repair_wav_header",
    "wav_info",
]

MIN_HEADER_BYTES = 44
"""The canonical header: RIFF/WAVE (12) + a 16-byte fmt chunk (24) + data (8)."""

_HEAD_READ_BYTES = 64 * 1024
"""How much of a file is searched for the data chunk (LIST/INFO chunks before
it are small; a data chunk further in is not something Asterisk writes)."""

_MAX_RIFF_BYTES = 0xFFFF_FFFF
_PCM = 0x0001
_IEEE_FLOAT = 0x0003
_EXTENSIBLE = 0xFFFE


class WavError(ValueError):
    """A file is not a WAV file these functions can read or repair."""


@dataclass(frozen=True, slots=True)
class WavInfo:
    """What a WAV file holds.

    ``data_bytes`` and ``duration_s`` describe the audio actually on disk: when
    the header is not OK they count everything from the data chunk to the end
    of the file (whole sample frames only), i.e. what a repair would keep.
    """

    sample_rate: int
    channels: int
    bits: int
    data_offset: int
    """Where the audio starts (just past the data chunk's 8-byte header)."""
    data_bytes: int
    duration_s: float
    header_ok: bool
    """False when the RIFF or data size disagrees with the file (e.g. zero)."""


@dataclass(frozen=True, slots=True)
class WavRepair:
    repaired: bool
    """False: the header was already right and the file was not opened for writing."""
    info: WavInfo
    """The file as it is after the repair."""


def parse_header(head: bytes, file_size: int, *, source: str = "<bytes>") -> WavInfo:
    """Read the header at the start of a WAV file of *file_size* bytes.

    *head* is the file's first bytes (at least up to the data chunk's header).
    Chunks before ``data`` (``LIST``, ``fact``...) are walked over. The header
    is OK when the RIFF size is the file size minus 8 and the data chunk fits
    in the file as a whole number of frames; otherwise the audio is taken to
    run to the end of the file, which is what a writer that never closed the
    file leaves. Raises :class:`WavError` naming *source* and the problem.
    """
    if file_size < MIN_HEADER_BYTES or len(head) < 12:
        raise WavError(
            f"{source}: {file_size} bytes, shorter than a WAV header ({MIN_HEADER_BYTES})"
        )
    if head[0:4] != b"RIFF":
        raise WavError(f"{source}: not a RIFF file (starts with {head[0:4]!r})")
    if head[8:12] != b"WAVE":
        raise WavError(f"{source}: a RIFF file but not WAVE (form type {head[8:12]!r})")
    riff_size = struct.unpack_from("<I", head, 4)[0]

    fmt: tuple[int, int, int, int] | None = None
    pos = 12
    while True:
        if pos + 8 > len(head):
            where = "in the file" if pos + 8 > file_size else f"in its first {len(head)} bytes"
            raise WavError(f"{source}: no data chunk {where}")
        chunk_id = head[pos : pos + 4]
        chunk_size = struct.unpack_from("<I", head, pos + 4)[0]
        if chunk_id == b"data":
            break
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(head[pos + 8 : pos + 8 + chunk_size], chunk_size, source)
        pos += 8 + chunk_size + (chunk_size & 1)  # chunks are padded to even sizes
    if fmt is None:
        raise WavError(f"{source}: no fmt chunk before the data chunk")
    channels, sample_rate, block_align, bits = fmt

    data_offset = pos + 8
    declared = struct.unpack_from("<I", head, pos + 4)[0]
    on_disk = file_size - data_offset
    header_ok = riff_size == file_size - 8 and declared <= on_disk and declared % block_align == 0
    data_bytes = declared if header_ok else on_disk - on_disk % block_align
    return WavInfo(
        sample_rate=sample_rate,
        channels=channels,
        bits=bits,
        data_offset=data_offset,
        data_bytes=data_bytes,
        duration_s=data_bytes / block_align / sample_rate,
        header_ok=header_ok,
    )


def wav_info(path: str | os.PathLike[str]) -> WavInfo:
    """Inspect a WAV file's header against its size; see :func:`parse_header`."""
    path = Path(path)
    with path.open("rb") as f:
        file_size = os.fstat(f.fileno()).st_size
        head = f.read(_HEAD_READ_BYTES)
    return parse_header(head, file_size, source=str(path))


def repair_wav_header(path: str | os.PathLike[str]) -> WavRepair:
    """Make a WAV file's header describe the audio it holds, in place.

    The RIFF and data sizes are rewritten from the file's size; a trailing
    partial sample frame is cut off; the file is fsync'd. A file whose header
    is already right is not opened for writing (its bytes and mtime stay as
    they were). Only for a file nobody is still writing. Raises
    :class:`WavError` for a file that is not a WAV file or too short for one.
    """
    path = Path(path)
    info = wav_info(path)
    if info.header_ok:
        return WavRepair(repaired=False, info=info)

    with path.open("r+b") as f:
        # Read again under the write handle: the size the sizes are computed from.
        file_size = os.fstat(f.fileno()).st_size
        head = bytearray(f.read(_HEAD_READ_BYTES))
        info = parse_header(bytes(head), file_size, source=str(path))
        if info.header_ok:
            return WavRepair(repaired=False, info=info)
        end = info.data_offset + info.data_bytes
        if end - 8 > _MAX_RIFF_BYTES:
            raise WavError(f"{path}: {end} bytes, too large for a RIFF header (4 GiB)")
        riff_size = struct.pack("<I", end - 8)
        data_size = struct.pack("<I", info.data_bytes)
        f.seek(4)
        f.write(riff_size)
        f.seek(info.data_offset - 4)
        f.write(data_size)
        if file_size > end:
            f.truncate(end)
        f.flush()
        os.fsync(f.fileno())
    head[4:8] = riff_size
    head[info.data_offset - 4 : info.data_offset] = data_size
    return WavRepair(repaired=True, info=parse_header(bytes(head), end, source=str(path)))


def _parse_fmt(body: bytes, declared_size: int, source: str) -> tuple[int, int, int, int]:
    """(channels, sample_rate, block_align, bits) of a fmt chunk; PCM or float only,
    since only for those does the data size say the duration."""
    if declared_size < 16 or len(body) < 16:
        raise WavError(f"{source}: fmt chunk of {declared_size} bytes, expected at least 16")
    audio_format, channels, sample_rate, _byte_rate, block_align, bits = struct.unpack_from(
        "<HHIIHH", body
    )
    if audio_format == _EXTENSIBLE and len(body) >= 26:
        audio_format = struct.unpack_from("<H", body, 24)[0]  # the sub-format GUID's first field
    if audio_format not in (_PCM, _IEEE_FLOAT):
        raise WavError(f"{source}: audio format 0x{audio_format:04x} is not PCM")
    if channels == 0 or sample_rate == 0 or block_align == 0:
        raise WavError(
            f"{source}: fmt chunk with {channels} channels, {sample_rate} Hz, "
            f"{block_align}-byte frames"
        )
    return channels, sample_rate, block_align, bits
