"""The ``[recording]`` section: a retention below a year, an unknown store
or codec, an S3 store without its keys are refused, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from cti.config import ConfigError, load_config
from recording.config import RecordingConfig
from recording.schemas import ByteRange, RangeError, parse_range


def _load(tmp_path: Path, table: str) -> RecordingConfig:
    path = tmp_path / "hotline.toml"
    path.write_text("[recording]\n" + table, encoding="utf-8")
    return load_config(path).section("recording", RecordingConfig)


def test_the_default_keeps_recordings_a_year(tmp_path: Path) -> None:
    section = _load(tmp_path, "")
    assert section.retention_days == 365
    assert section.codec == "opus" and section.store == "local"


def test_zero_workers_and_no_retention_loop_are_allowed(tmp_path: Path) -> None:
    section = _load(tmp_path, "workers = 0\nretention_every_s = 0\n")
    assert (section.workers, section.retention_every_s) == (0, 0)


def test_the_example_file_loads() -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "hotline.example.toml"
    assert load_config(example).section("recording", RecordingConfig) == RecordingConfig()


def test_retention_of_365_days_or_more_is_taken(tmp_path: Path) -> None:
    assert _load(tmp_path, "retention_days = 365\n").retention_days == 365
    assert _load(tmp_path, "retention_days = 1095\n").retention_days == 1095


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("retention_days = 364\n", "recording.retention_days"),
        ("retention_days = 30\n", "recording.retention_days"),
        ('store = "ftp"\n', "recording.store"),
        ('codec = "wav"\n', "recording.codec"),
        ('store = "s3"\ns3_endpoint = "http://127.0.0.1:9000"\n', "recording.s3_access_key"),
        ('transcript_model = "/nowhere/vosk-model-cn"\n', "recording.transcript_model"),
        ("bitrate_kbps = 2\n", "recording.bitrate_kbps"),
        ("colour = 1\n", "recording.colour"),
    ],
)
def test_bad_values_are_refused_naming_the_key(tmp_path: Path, table: str, key: str) -> None:
    with pytest.raises(ConfigError) as refused:
        _load(tmp_path, table)
    assert refused.value.key == key


def test_s3_keys_may_come_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "hotline.toml"
    path.write_text('[recording]\nstore = "s3"\ns3_endpoint = "http://127.0.0.1:9000"\n')
    section = load_config(
        path, env={"HOTLINE_S3_ACCESS_KEY": "ak", "HOTLINE_S3_SECRET_KEY": "sk"}
    ).section("recording", RecordingConfig)
    assert (section.s3_access_key, section.s3_secret_key) == ("ak", "sk")


def test_asterisk_paths_map_to_the_workers_paths() -> None:
    section = RecordingConfig(asterisk_dir="/var/spool/asterisk/rec", local_dir="/mnt/rec")
    assert section.local_path("/var/spool/asterisk/rec/1.2.wav") == Path("/mnt/rec/1.2.wav")
    assert RecordingConfig().local_path("/tmp/x.wav") == Path("/tmp/x.wav")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", ByteRange(0, 9)),
        ("bytes=10-", ByteRange(10, 99)),
        ("bytes=-5", ByteRange(95, 99)),
        ("bytes=-500", ByteRange(0, 99)),
        ("bytes=90-500", ByteRange(90, 99)),
        # Ignored (RFC 9110: the whole object, 200): reversed, malformed,
        # another unit, several ranges.
        ("bytes=5-1", None),
        ("bytes=a-b", None),
        ("bytes=-", None),
        ("items=0-1", None),
        ("bytes=0-1,5-6", None),
    ],
)
def test_ranges(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=150-200", "bytes=-0"])
def test_ranges_outside_the_object(header: str) -> None:
    with pytest.raises(RangeError):
        parse_range(header, 100)
