"""The recordings' configuration section ``[recording]``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cti.config import ConfigError

__all__ = ["MIN_RETENTION_DAYS", "RecordingConfig", "validate_recording"]

MIN_RETENTION_DAYS = 365
"""The contract: recordings are kept in the cloud for at least one year."""

CODECS = ("opus", "mp3")
STORES = ("local", "s3")


@dataclass(frozen=True)
class RecordingConfig:
    """Every answered call recorded, catalogued, stored, kept, checked."""

    retention_days: int = MIN_RETENTION_DAYS
    """How long a recording is kept (``retain_until`` = start + this); never
    below 365 days."""
    store: str = "local"
    """Where stored recordings live: ``local`` (a directory tree) or ``s3``
    (S3 with Object Lock in compliance mode)."""
    store_dir: str = ""
    """The local store's root; empty: ``<data_dir>/recordings``."""
    min_free_mb: int = 512
    """The local store refuses writes (and raises an alarm) below this much
    free space: the raw file is kept and the job retried."""
    s3_endpoint: str = ""
    s3_bucket: str = "hotline-recordings"
    s3_region: str = "us-east-1"
    s3_access_key: str = ""
    s3_secret_key: str = ""
    codec: str = "opus"
    """Stored format: ``opus`` (default, about 10x smaller than the WAV) or ``mp3``."""
    bitrate_kbps: int = 12
    """Opus bitrate of the mix (the legs get twice this, for two streams)."""
    mp3_bitrate_kbps: int = 24
    """MP3 bitrate of the mix (``codec = "mp3"``; MP3 needs more than Opus)."""
    asterisk_dir: str = ""
    """Where Asterisk writes the raw files, as Asterisk sees it; empty: the
    stack's ``HOTLINE_RECORDING_DIR``."""
    local_dir: str = ""
    """The same directory as the engine's workers see it, when it differs
    (Asterisk in a container or chroot); empty: the same path."""
    workers: int = 2
    """Post-processing worker processes the engine starts (0: none here; run
    ``hotline recordings worker`` on other machines)."""
    settle_s: float = 5.0
    """After the caller hung up, a raw file whose WAV header is still not
    closed this long is taken as cut off (Asterisk died) and repaired."""
    lease_s: float = 300.0
    """A job a worker took and did not finish within this is taken again."""
    max_attempts: int = 8
    """Failures (other than a full or unreachable store, retried without end)
    before a job is marked failed and an alarm is raised."""
    transcript_model: str = ""
    """The vosk model directory (see README: Chinese models); empty: no
    transcripts."""
    duration_target_s: float = 400.0
    """Calls longer than this are flagged by the automatic checks."""
    retention_every_s: float = 3600.0
    """How often the engine runs the retention job (0 never: run
    ``hotline recordings retention`` from cron instead)."""
    retention_batch: int = 500

    @property
    def mix_bitrate_kbps(self) -> int:
        return self.bitrate_kbps if self.codec == "opus" else self.mp3_bitrate_kbps

    def local_path(self, asterisk_path: str) -> Path:
        """A raw file's path as Asterisk reported it, as the workers see it."""
        if self.local_dir and self.asterisk_dir and asterisk_path.startswith(self.asterisk_dir):
            return Path(self.local_dir) / asterisk_path[len(self.asterisk_dir) :].lstrip("/")
        return Path(asterisk_path)


def validate_recording(section: RecordingConfig) -> None:
    """Raise ConfigError naming the bad key of ``[recording]``."""
    if section.retention_days < MIN_RETENTION_DAYS:
        raise ConfigError(
            "recording.retention_days",
            f"must be at least {MIN_RETENTION_DAYS} (the contract keeps recordings "
            f"one year), got {section.retention_days!r}",
        )
    if section.store not in STORES:
        raise ConfigError(
            "recording.store", f"expected one of {list(STORES)}, got {section.store!r}"
        )
    if section.codec not in CODECS:
        raise ConfigError(
            "recording.codec", f"expected one of {list(CODECS)}, got {section.codec!r}"
        )
    if not 6 <= section.bitrate_kbps <= 128:
        raise ConfigError(
            "recording.bitrate_kbps", f"must be between 6 and 128, got {section.bitrate_kbps!r}"
        )
    if not 16 <= section.mp3_bitrate_kbps <= 320:
        raise ConfigError(
            "recording.mp3_bitrate_kbps",
            f"must be between 16 and 320, got {section.mp3_bitrate_kbps!r}",
        )
    if section.store == "s3":
        for key in ("s3_endpoint", "s3_bucket", "s3_access_key", "s3_secret_key"):
            if not getattr(section, key):
                raise ConfigError(f"recording.{key}", "required when recording.store = 's3'")
    if bool(section.local_dir) != bool(section.asterisk_dir) and section.local_dir:
        raise ConfigError(
            "recording.local_dir", "needs recording.asterisk_dir (the path it stands for)"
        )
    if section.workers > 32:
        raise ConfigError("recording.workers", f"at most 32, got {section.workers!r}")
    if section.settle_s > 600:
        raise ConfigError("recording.settle_s", f"at most 600, got {section.settle_s!r}")
    if section.lease_s < 30:
        raise ConfigError("recording.lease_s", f"at least 30, got {section.lease_s!r}")
    if section.transcript_model and not Path(section.transcript_model).is_dir():
        raise ConfigError(
            "recording.transcript_model",
            f"no vosk model directory at {section.transcript_model!r}; install one "
            "(see README: Chinese models) or leave it empty",
        )
