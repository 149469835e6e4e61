"""Recording post-processing: CPU per recorded hour, stored size, and the
engine's event-loop lag while the workers run. A benchmark, not a test.

One speech-like call of ``--seconds`` is generated once, as Asterisk's
MixMonitor leaves it (``recording/dialplan.conf.tmpl``): an 8 kHz 16-bit mono
WAV mix and its ``-caller.wav`` and ``-agents.wav`` legs. Each leg holds its
side's turns of ``espeak-ng -v zh`` utterances, resampled to 8 kHz by ffmpeg
at half level (pauses inside a turn, gaps and some talk-over between turns, a
few holds), over a white noise floor near -59 dBFS; the mix is the sum of the
legs. The set is copied once per call; every second call has the RIFF and
data sizes of its three files zeroed, as Asterisk leaves them when it is
killed (``kill -9``) mid-call, so the header repair is exercised.

Measured in one run:

* **the steps, in this process, on one call** (median of ``--repeats``):
  repair + transcode + hash of the mix (what the issue's 200x real time per
  core is about), ``merge_legs`` of the two legs, and the automatic checks
  (legs read and analysed). CPU is this process's and its ffmpeg children's
  (``getrusage``);
* **the whole job in worker processes**: a private PostgreSQL with the core's
  and the recording feature's migrations; ``--calls`` catalog rows
  ``closed`` a minute ago (past ``settle_s``) with their ``process`` jobs;
  ``--workers`` ``python -m recording.worker`` processes given the engine's
  settings on stdin, as ``recording.service.WorkerPool`` starts them but
  started here, so that a worker that dies fails the run instead of being
  restarted; a local store under a temporary data_dir. The clock runs from
  the workers' start to the progress query that finds every row ``stored``
  (0.1 s resolution). Worker CPU is ``getrusage(RUSAGE_CHILDREN)`` across the
  workers' lives: the workers and the ffmpeg processes they ran, nothing else
  (this process starts no other child meanwhile; PostgreSQL's CPU is not in
  it);
* **event-loop lag** in this process meanwhile: a task sleeping 10 ms and
  noting how late it wakes, beside a progress query every 100 ms.

Then the sizes (WAV/codec ratio of the mix, stored bytes per recorded hour,
mix + legs) and a year's storage at 14 and 1,500 seats. A run whose harness
failed (a tool missing, a worker died, a job failed or was retried, a row not
stored in time, a repair not made, a stored file that does not play for the
call's length) prints why, claims nothing and exits 2; a missed target exits
1. Run from the repository root::

    .venv/bin/python bench/bench_recording.py --calls 16 --workers 2

Results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import functools
import logging
import os
import platform
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout

import asyncpg  # noqa: E402

from bench.provenance import code_version, cpu_model  # noqa: E402
from common.db import migrate_all  # noqa: E402
from cti.stack.postgres import PostgresNotAvailable, PrivatePostgres  # noqa: E402
from recording.checks import analyse  # noqa: E402
from recording.config import RecordingConfig  # noqa: E402
from recording.feature import FEATURE  # noqa: E402
from recording.store import file_sha256  # noqa: E402
from recording.store_local import LocalStore  # noqa: E402
from recording.transcode import (  # noqa: E402
    Codec,
    TranscodeError,
    merge_legs,
    probe_duration,
    transcode,
)
from recording.wav import repair_wav_header, wav_info  # noqa: E402
from recording.worker import worker_settings  # noqa: E402

TARGET_MIX_X = 200.0
"""Repair + transcode + hash of the mix: audio seconds per CPU second."""
TARGET_LAG_P99_MS = 10.0
SAMPLE_RATE = 8000
NOISE_DIVISOR = 2
"""Random bytes (-128..127) divided by this, added to each leg: white noise of
+-64, about -59 dBFS RMS, a quiet line below the checks' -40 dBFS threshold."""
LAG_TICK_S = 0.010
POLL_S = 0.100
ENDED_AGO_S = 60.0
"""The rows' calls ended this long ago: past ``settle_s``, so a zeroed header
is repaired at once rather than waited on."""
STOP_GRACE_S = 10.0
SEATS = (14, 1500)
LABEL = 46
"""The width of the report's first column."""
DAYS_PER_YEAR = 365
CALLER_VOICE = ("-v", "zh", "-p", "40", "-s", "170")
AGENT_VOICE = ("-v", "zh", "-p", "65", "-s", "150")
CALLER_LINES = (
    "喂，你好，我想反映一下我们小区的噪音问题。",
    "就是每天晚上十点以后，楼下的工地还在施工。",
    "我姓王，住在和平路十八号三单元。",
    "已经持续快两个星期了，孩子根本睡不好觉。",
    "对，我之前也打过一次电话，但是一直没有人处理。",
    "好的，那大概什么时候能有回复？",
    "我的电话是一三九零零一二三四五六。",
    "嗯，明白了，谢谢你啊。",
)
AGENT_LINES = (
    "您好，这里是市民服务热线，工号一零零一，请问有什么可以帮您？",
    "好的，请问您的具体地址是哪里？",
    "请您稍等，我帮您查询一下之前的工单记录。",
    "我已经为您登记了，工单会转给城管部门处理。",
    "一般会在三个工作日内给您回复。",
    "请问还有其他需要帮助的吗？",
    "感谢您的来电，祝您生活愉快，再见。",
    "嗯，好的，我记下了。",
)
_QUIET = ("-nostdin", "-hide_banner", "-loglevel", "error")
_PROGRESS_SQL = (
    "SELECT count(*) FILTER (WHERE r.state = 'stored') AS stored,"
    " min(j.error_kind) AS error_kind, min(j.last_error) AS last_error"
    " FROM recording r LEFT JOIN recording_job j ON j.recording_id = r.id"
    " AND (j.state = 'failed' OR j.error_kind IS NOT NULL)"
)


class HarnessFailed(Exception):
    """The run did not measure what it would claim: say why, claim nothing."""


# -- the raw recordings ---------------------------------------------------------------


@dataclass(frozen=True)
class RawCall:
    """A call's raw files, named as the dialplan names them."""

    mix: Path
    caller: Path
    agents: Path

    @classmethod
    def named(cls, directory: Path, call_id: str) -> RawCall:
        return cls(
            directory / f"{call_id}.wav",
            directory / f"{call_id}-caller.wav",
            directory / f"{call_id}-agents.wav",
        )

    @property
    def files(self) -> tuple[Path, Path, Path]:
        return (self.mix, self.caller, self.agents)


def _tool(argv: list[str], stdin: bytes | None = None) -> bytes:
    done = subprocess.run(argv, input=stdin, capture_output=True, check=False)
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip()[-400:]
        raise HarnessFailed(f"{argv[0]} failed (exit {done.returncode}): {tail}")
    return done.stdout


def _samples(pcm: bytes) -> array.array[int]:
    samples = array.array("h", pcm[: len(pcm) - len(pcm) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def speak(text: str, voice: tuple[str, ...]) -> array.array[int]:
    """*text* said by espeak-ng, as 8 kHz samples at half its level (headroom
    for the mix, and about the level of a telephone call)."""
    wav = _tool(["espeak-ng", *voice, "--stdout", text])
    pcm = _tool(
        ["ffmpeg", *_QUIET, "-i", "pipe:0", "-af", "volume=0.5", "-ar", str(SAMPLE_RATE)]
        + ["-ac", "1", "-f", "s16le", "-c:a", "pcm_s16le", "pipe:1"],
        wav,
    )
    return _samples(pcm)


def conversation(seconds: float, rng: random.Random) -> tuple[array.array[int], ...]:
    """The caller's and the agents' legs of one call: turns of speech, the
    agent's first, with pauses, gaps, some talk-over and a few holds."""
    lines = (
        [speak(text, CALLER_VOICE) for text in CALLER_LINES],
        [speak(text, AGENT_VOICE) for text in AGENT_LINES],
    )
    total = round(seconds * SAMPLE_RATE)
    legs = (array.array("h", bytes(2 * total)), array.array("h", bytes(2 * total)))
    side, at = 1, round(0.8 * SAMPLE_RATE)
    while at < total:
        for _ in range(rng.randint(1, 3)):
            if at >= total:
                break
            utterance = rng.choice(lines[side])
            end = min(total, at + len(utterance))
            legs[side][at:end] = utterance[: end - at]
            at = end + round(rng.uniform(0.2, 0.6) * SAMPLE_RATE)
        side = 1 - side
        # Below zero the other side starts before this one has finished.
        gap_s = rng.uniform(4.0, 12.0) if rng.random() < 0.04 else rng.uniform(-0.8, 0.8)
        at = max(0, at + round(gap_s * SAMPLE_RATE))
    noisy = []
    for leg in legs:
        noise = rng.randbytes(len(leg))
        noisy.append(
            array.array(
                "h", [s + (n - 128) // NOISE_DIVISOR for s, n in zip(leg, noise, strict=True)]
            )
        )
    return tuple(noisy)


def write_wav(path: Path, samples: array.array[int]) -> None:
    data = array.array("h", samples)
    if sys.byteorder == "big":
        data.byteswap()
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(data.tobytes())


def make_sample(directory: Path, seconds: float, seed: int) -> RawCall:
    """One call's three raw files, headers closed."""
    directory.mkdir()
    caller, agents = conversation(seconds, random.Random(seed))
    mix = array.array(
        "h", [max(-32768, min(32767, a + b)) for a, b in zip(caller, agents, strict=True)]
    )
    sample = RawCall.named(directory, "sample")
    for path, samples in zip(sample.files, (mix, caller, agents), strict=True):
        write_wav(path, samples)
    return sample


def cut_off(path: Path) -> None:
    """Zero the RIFF and data sizes, as Asterisk's format_wav leaves them
    until it closes the file."""
    data_offset = wav_info(path).data_offset
    with path.open("r+b") as f:
        f.seek(4)
        f.write(bytes(4))
        f.seek(data_offset - 4)
        f.write(bytes(4))


def place(sample: RawCall, directory: Path, call_id: str, *, cut: bool) -> RawCall:
    raw = RawCall.named(directory, call_id)
    for source, target in zip(sample.files, raw.files, strict=True):
        shutil.copyfile(source, target)
        if cut:
            cut_off(target)
    return raw


# -- the steps, in this process -------------------------------------------------------


@dataclass(frozen=True)
class Cost:
    cpu_s: float
    wall_s: float


@dataclass(frozen=True)
class Steps:
    mix: Cost
    merge: Cost
    checks: Cost


def _cpu_s() -> float:
    """This process's CPU time and that of its children waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _measure(step: Callable[[], object]) -> Cost:
    cpu, wall = _cpu_s(), time.perf_counter()
    try:
        step()
    except TranscodeError as exc:
        raise HarnessFailed(str(exc)) from exc
    return Cost(_cpu_s() - cpu, time.perf_counter() - wall)


def _median(costs: list[Cost]) -> Cost:
    return Cost(
        statistics.median(c.cpu_s for c in costs), statistics.median(c.wall_s for c in costs)
    )


def _ext(codec: str) -> str:
    return "opus" if codec == "opus" else "mp3"


def repair_transcode_hash(mix: Path, out: Path, section: RecordingConfig) -> None:
    if not repair_wav_header(mix).repaired:
        raise HarnessFailed(f"{mix}: the zeroed header was not repaired")
    codec = cast(Codec, section.codec)
    encoded = transcode(mix, out, codec=codec, bitrate_kbps=section.bitrate_kbps)
    file_sha256(encoded.path)


def run_checks(sample: RawCall, section: RecordingConfig) -> None:
    pcm = []
    for leg in (sample.caller, sample.agents):
        with wave.open(str(leg), "rb") as w:
            pcm.append(w.readframes(w.getnframes()))
            rate = w.getframerate()
    analyse(pcm[0], pcm[1], sample_rate=rate, target_s=section.duration_target_s)


def measure_steps(
    sample: RawCall, section: RecordingConfig, directory: Path, repeats: int
) -> Steps:
    """The pipeline's steps on *sample* as the workers run them (the bitrates
    of ``recording.pipeline``); each repeat repairs a fresh cut-off copy."""
    directory.mkdir()
    ext = _ext(section.codec)
    mix, merge, checks = [], [], []
    for n in range(repeats):
        damaged = directory / f"mix-{n}.wav"
        shutil.copyfile(sample.mix, damaged)
        cut_off(damaged)
        mix.append(
            _measure(
                functools.partial(
                    repair_transcode_hash, damaged, directory / f"mix-{n}.{ext}", section
                )
            )
        )
        merge.append(
            _measure(
                functools.partial(
                    merge_legs,
                    sample.caller,
                    sample.agents,
                    directory / f"legs-{n}.{ext}",
                    codec=cast(Codec, section.codec),
                    bitrate_kbps=2 * section.bitrate_kbps,
                )
            )
        )
        checks.append(_measure(functools.partial(run_checks, sample, section)))
    return Steps(mix=_median(mix), merge=_median(merge), checks=_median(checks))


# -- the whole job, in worker processes -----------------------------------------------


@dataclass(frozen=True)
class Fleet:
    calls: int
    repaired: int
    audio_s: float
    wall_s: float
    worker_cpu_s: float
    proc_cpu_s: float
    """The workers' own + waited-for children's CPU in /proc just before
    they were stopped: a cross-check of ``worker_cpu_s`` (a little lower)."""
    mix_bytes: int
    legs_bytes: int
    lags_ms: list[float]


@dataclass(frozen=True)
class Placed:
    raw: RawCall
    cut: bool


async def catalog_calls(
    pool: Any, sample: RawCall, spool: Path, args: argparse.Namespace, section: RecordingConfig
) -> dict[str, Placed]:
    """Raw files and catalog rows as the engine leaves them at the callers'
    hangups: state ``closed``, a ``process`` job each."""
    spool.mkdir()
    ended = datetime.now(UTC) - timedelta(seconds=ENDED_AGO_S)
    started = ended - timedelta(seconds=args.seconds)
    placed: dict[str, Placed] = {}
    async with pool.acquire() as conn, conn.transaction():
        for n in range(args.calls):
            call_id = f"bench-{n:04d}"
            cut = n % 2 == 1
            raw = await asyncio.to_thread(place, sample, spool, call_id, cut=cut)
            placed[call_id] = Placed(raw, cut)
            recording_id = await conn.fetchval(
                "INSERT INTO recording (call_id, linkedid, caller_number, agents, started_at,"
                " ended_at, state, raw_path, legs_paths, retain_until)"
                " VALUES ($1, $1, $2, $3, $4, $5, 'closed', $6, $7, $8) RETURNING id",
                call_id,
                f"139{n:08d}",
                ["1001"],
                started,
                ended,
                str(raw.mix),
                [str(raw.caller), str(raw.agents)],
                started + timedelta(days=section.retention_days),
            )
            await conn.execute(
                "INSERT INTO recording_job (recording_id, kind) VALUES ($1, 'process')",
                recording_id,
            )
    return placed


async def start_worker(
    dsn: str, data_dir: Path, section: RecordingConfig, n: int
) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "recording.worker", stdin=asyncio.subprocess.PIPE, cwd=ROOT
    )
    assert proc.stdin is not None
    proc.stdin.write(worker_settings(dsn, str(data_dir), section, f"bench-worker-{n}"))
    await proc.stdin.drain()
    proc.stdin.close()
    return proc


async def stop_workers(workers: list[asyncio.subprocess.Process]) -> list[int]:
    """SIGTERM (a worker finishes its job and exits 0), SIGKILL after a grace."""
    for proc in workers:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    codes = []
    for proc in workers:
        try:
            async with asyncio.timeout(STOP_GRACE_S):
                codes.append(await proc.wait())
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            codes.append(await proc.wait())
    return codes


def proc_cpu_s(pid: int) -> float:
    """utime + stime + cutime + cstime of *pid*: its own CPU and that of the
    children it waited for (its ffmpeg runs)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


async def probe_lag(lags_ms: list[float]) -> None:
    """How late a 10 ms sleep wakes, again and again, until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + LAG_TICK_S
        await asyncio.sleep(LAG_TICK_S)
        lags_ms.append((loop.time() - due) * 1000.0)


async def wait_stored(
    pool: Any, workers: list[asyncio.subprocess.Process], calls: int, timeout_s: float
) -> None:
    """Poll the catalog as an engine's console would, until every row is stored."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        row = await pool.fetchrow(_PROGRESS_SQL)
        if row["error_kind"] is not None:
            raise HarnessFailed(
                f"a recording job went wrong ({row['error_kind']}): {row['last_error']}"
            )
        if row["stored"] == calls:
            return
        for proc in workers:
            if proc.returncode is not None:
                raise HarnessFailed(
                    f"worker pid {proc.pid} exited with {proc.returncode} while "
                    f"{calls - row['stored']} rows were still to store"
                )
        if loop.time() > deadline:
            raise HarnessFailed(f"{row['stored']} of {calls} rows stored after {timeout_s:g} s")
        await asyncio.sleep(POLL_S)


async def process_all(
    pool: Any,
    dsn: str,
    data_dir: Path,
    section: RecordingConfig,
    args: argparse.Namespace,
) -> tuple[float, float, float, list[float]]:
    """(wall s, worker CPU s, /proc CPU s, lags in ms) of the workers storing every row."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    workers = [await start_worker(dsn, data_dir, section, n) for n in range(args.workers)]
    lags_ms: list[float] = []
    try:
        probe = asyncio.create_task(probe_lag(lags_ms), name="event-loop lag probe")
        try:
            await wait_stored(pool, workers, args.calls, args.timeout_s)
        finally:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
        wall_s = time.monotonic() - started
        in_proc_s = sum(proc_cpu_s(proc.pid) for proc in workers)
    finally:
        codes = await stop_workers(workers)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if any(codes):
        raise HarnessFailed(f"workers exited with {codes} when stopped (0 expected)")
    cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall_s, cpu_s, in_proc_s, lags_ms


async def verify_stored(
    pool: Any, placed: dict[str, Placed], store_root: Path, seconds: float
) -> tuple[int, int, int, float]:
    """(repaired, mix bytes, legs bytes, audio s) once each row was checked."""
    rows = await pool.fetch(
        "SELECT call_id, state, repaired, size_bytes, storage_key, legs_key, duration_s,"
        " checks IS NOT NULL AS checked FROM recording ORDER BY call_id"
    )
    if len(rows) != len(placed):
        raise HarnessFailed(f"{len(rows)} catalog rows, {len(placed)} calls placed")
    store = LocalStore(store_root)
    mix_bytes = legs_bytes = 0
    for row in rows:
        call = placed[row["call_id"]]
        what = f"{row['call_id']} ({'cut off' if call.cut else 'closed'})"
        if row["state"] != "stored":
            raise HarnessFailed(f"{what}: state {row['state']!r} after the run")
        if row["repaired"] != call.cut:
            raise HarnessFailed(f"{what}: repaired is {row['repaired']}, expected {call.cut}")
        if not row["legs_key"] or not row["checked"]:
            raise HarnessFailed(f"{what}: stored without its legs or its checks")
        if abs(row["duration_s"] - seconds) > 0.01:
            raise HarnessFailed(f"{what}: {row['duration_s']:.2f} s catalogued, not {seconds:g} s")
        if any(path.exists() for path in call.raw.files):
            raise HarnessFailed(f"{what}: raw files left in the spool after storing")
        mix = await asyncio.to_thread(store.stat, row["storage_key"])
        legs = await asyncio.to_thread(store.stat, row["legs_key"])
        if mix.size != row["size_bytes"]:
            raise HarnessFailed(f"{what}: {mix.size} bytes stored, {row['size_bytes']} catalogued")
        mix_bytes += mix.size
        legs_bytes += legs.size
    for key in (rows[0]["storage_key"], rows[-1]["legs_key"]):
        try:
            played = await asyncio.to_thread(probe_duration, store_root / key)
        except TranscodeError as exc:
            raise HarnessFailed(str(exc)) from exc
        if abs(played - seconds) > 0.5:
            raise HarnessFailed(f"{key} plays {played:.2f} s, not {seconds:g} s")
    audio_s = sum(row["duration_s"] for row in rows)
    return sum(row["repaired"] for row in rows), mix_bytes, legs_bytes, audio_s


async def run_fleet(
    args: argparse.Namespace, sample: RawCall, work: Path, section: RecordingConfig
) -> Fleet:
    server = PrivatePostgres(work / "pg")
    try:
        try:
            await server.start()
        except PostgresNotAvailable as exc:
            raise HarnessFailed(str(exc)) from exc
        pool = await asyncpg.create_pool(server.dsn, min_size=1, max_size=2)
        try:
            await migrate_all(pool, [(FEATURE.name, FEATURE.migrations)])
            placed = await catalog_calls(pool, sample, work / "spool", args, section)
            data_dir = work / "data"
            data_dir.mkdir()
            wall_s, cpu_s, in_proc_s, lags_ms = await process_all(
                pool, server.dsn, data_dir, section, args
            )
            # recording.pipeline.open_store's local root when store_dir is empty.
            repaired, mix_bytes, legs_bytes, audio_s = await verify_stored(
                pool, placed, data_dir / "recordings", args.seconds
            )
        finally:
            await pool.close()
    finally:
        await server.stop()
    if not lags_ms:
        raise HarnessFailed("the event-loop probe never woke")
    return Fleet(
        calls=args.calls,
        repaired=repaired,
        audio_s=audio_s,
        wall_s=wall_s,
        worker_cpu_s=cpu_s,
        proc_cpu_s=in_proc_s,
        mix_bytes=mix_bytes,
        legs_bytes=legs_bytes,
        lags_ms=lags_ms,
    )


# -- the report -----------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:,.0f} B"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def command_line(args: argparse.Namespace) -> str:
    return (
        f"$ .venv/bin/python bench/bench_recording.py --calls={args.calls} "
        f"--workers={args.workers} --seconds={args.seconds:g} --codec={args.codec} "
        f"--repeats={args.repeats} --talk-hours={args.talk_hours:g} --seed={args.seed}"
    )


def ffmpeg_version() -> str:
    with contextlib.suppress(HarnessFailed):
        return " ".join(_tool(["ffmpeg", "-version"]).decode().split()[:3])
    return "ffmpeg (version unknown)"


def report(
    args: argparse.Namespace,
    section: RecordingConfig,
    steps: Steps,
    fleet: Fleet,
    wav_bytes: int,
) -> int:
    seconds = args.seconds
    mix_x = seconds / steps.mix.cpu_s
    job_cpu_s = fleet.worker_cpu_s / fleet.calls
    p50, p99 = _percentile(fleet.lags_ms, 0.50), _percentile(fleet.lags_ms, 0.99)
    hours = fleet.audio_s / 3600.0
    mix_per_h, legs_per_h = fleet.mix_bytes / hours, fleet.legs_bytes / hours
    per_h = mix_per_h + legs_per_h
    lines = [
        "```",
        command_line(args),
        f"{cpu_model()}, {os.cpu_count()} CPUs; python {platform.python_version()}; "
        f"{ffmpeg_version()}; code {code_version()}",
        f"audio: {seconds:g} s calls, 8 kHz 16-bit mono WAV mix + caller and agents legs; "
        "espeak-ng -v zh turns with pauses, talk-over and holds, noise floor about -59 dBFS",
        f"stored as {args.codec}: mix {section.bitrate_kbps} kbit/s mono, legs "
        f"{2 * section.bitrate_kbps} kbit/s stereo (the [recording] defaults)",
        "",
        f"{f'CPU per {seconds:g} s call':<{LABEL}} {'CPU s':>6}   {'wall s':>6}   x real time/core",
    ]

    def row(label: str, cost: Cost, extra: str = "") -> None:
        x = seconds / cost.cpu_s
        lines.append(f"{label:<{LABEL}} {cost.cpu_s:6.3f}   {cost.wall_s:6.3f}   {x:6.0f}x{extra}")

    row(
        "repair + transcode + hash, mix (this process)",
        steps.mix,
        f"   target >= {TARGET_MIX_X:.0f}x: {_verdict(mix_x >= TARGET_MIX_X)}",
    )
    row("merge_legs, stereo legs (this process)", steps.merge)
    row("checks: read legs + analyse (this process)", steps.checks)
    lines += [
        f"{'whole job, in the worker processes':<{LABEL}} {job_cpu_s:6.3f}        -   "
        f"{seconds / job_cpu_s:6.0f}x   ({fleet.calls} calls, {fleet.repaired} repaired)",
        "  (repair, transcode, merge_legs, checks, hash, store + verify, catalog, worker start-up)",
        f"fleet: {fleet.calls} calls ({hours:.2f} h of audio) stored in {fleet.wall_s:.1f} s "
        f"wall by {args.workers} workers: {fleet.audio_s / fleet.wall_s:.0f}x real time",
        f"worker CPU {fleet.worker_cpu_s:.2f} s (getrusage of the reaped workers and their "
        f"ffmpeg runs; /proc just before the stop: {fleet.proc_cpu_s:.2f} s)",
        "",
        f"mix: WAV {wav_bytes:,} B -> {args.codec} {fleet.mix_bytes / fleet.calls:,.0f} B "
        f"(mean): {wav_bytes * fleet.calls / fleet.mix_bytes:.1f}x smaller",
        f"stored per recorded hour: mix {_bytes(mix_per_h)} + legs {_bytes(legs_per_h)} "
        f"= {_bytes(per_h)}",
        "",
        f"event-loop lag in this process ({LAG_TICK_S * 1000:.0f} ms sleeps, progress query "
        f"every {POLL_S * 1000:.0f} ms, {args.workers} workers busy): p50 {p50:.2f} ms, "
        f"p99 {p99:.2f} ms, max {max(fleet.lags_ms):.2f} ms over {len(fleet.lags_ms)} wake-ups; "
        f"target p99 < {TARGET_LAG_P99_MS:.0f} ms: {_verdict(p99 < TARGET_LAG_P99_MS)}",
        "",
        f"a year of storage, mix + legs, assuming {args.talk_hours:g} h of recorded talk per "
        f"seat per day, {DAYS_PER_YEAR} days a year:",
    ]
    for seats in SEATS:
        seat_hours = seats * args.talk_hours * DAYS_PER_YEAR
        lines.append(f"  {seats:>5,} seats: {seat_hours:>12,.0f} h -> {_bytes(seat_hours * per_h)}")
    lines.append("```")
    print("\n".join(lines))
    return 0 if mix_x >= TARGET_MIX_X and p99 < TARGET_LAG_P99_MS else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=300.0, help="each call's length")
    parser.add_argument("--codec", choices=("opus", "mp3"), default="opus")
    parser.add_argument("--repeats", type=int, default=3, help="of the in-process steps")
    parser.add_argument(
        "--talk-hours", type=float, default=6.0, help="recorded talk per seat per day"
    )
    parser.add_argument("--timeout-s", type=float, default=600.0, help="for the workers")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.calls < 2:
        parser.error("--calls must be at least 2 (half of them are cut off)")
    if not 1 <= args.workers <= 32:
        parser.error("--workers must be between 1 and 32")
    if args.seconds < 10 or args.repeats < 1 or args.talk_hours <= 0:
        parser.error("--seconds must be at least 10, --repeats and --talk-hours positive")
    for tool in ("espeak-ng", "ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (scripts/setup-system.sh)")
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    section = RecordingConfig(codec=args.codec, workers=args.workers)
    work = Path(tempfile.mkdtemp(prefix="hotline-bench-recording-"))
    work.chmod(0o755)  # PostgreSQL runs as its own user when we are root
    try:
        sample = make_sample(work / "sample", args.seconds, args.seed)
        wav_bytes = sample.mix.stat().st_size
        steps = measure_steps(sample, section, work / "steps", args.repeats)
        fleet = asyncio.run(run_fleet(args, sample, work, section))
    except HarnessFailed as exc:
        print(
            "\n".join(
                ["```", command_line(args), f"HARNESS FAILED, nothing measured: {exc}", "```"]
            )
        )
        return 2
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report(args, section, steps, fleet, wav_bytes)


if __name__ == "__main__":
    sys.exit(main())
