"""Transcripts of a stored recording's two directions (run in a worker
process): the stereo legs object is fetched from the store, each channel
decoded to PCM and given to vosk."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from .store import Store
from .transcode import decode_pcm

__all__ = ["DIRECTIONS", "TRANSCRIBE_RATE", "transcribe_legs"]

DIRECTIONS = ("caller", "agents")
"""Channel 0 of the legs object is the caller, channel 1 the agents."""
TRANSCRIBE_RATE = 16000
"""vosk models are trained on 16 kHz audio: the 8 kHz legs are upsampled."""


def transcribe_legs(store: Store, legs_key: str, transcriber: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hotline-transcribe-") as tmp:
        local = Path(tmp) / Path(legs_key).name
        with local.open("wb") as f, store.open_stream(legs_key) as chunks:
            for chunk in chunks:
                f.write(chunk)
        return {
            direction: transcriber.transcribe_pcm(
                decode_pcm(local, sample_rate=TRANSCRIBE_RATE, channel=channel), TRANSCRIBE_RATE
            )
            for channel, direction in enumerate(DIRECTIONS)
        }
