"""Load a recorded AMI transcript (tests/fixtures/ami/*.ami) into header dicts.

Self-contained on purpose: the transcripts test the call model, not the AMI
link, so this splitter must not depend on cti.ami. It works like Asterisk's
wire format demands: split the BYTES on the blank line that ends each message,
then decode each whole message (a multibyte UTF-8 name is never cut in two).

A missing transcript fails the test that needs it, naming the file and the
command that records it again: a test that cannot replay its call is broken,
not skipped.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "ami"
RECORD_SCRIPT = ROOT / "scripts" / "record_transcripts.py"
RECORD_COMMAND = ".venv/bin/python scripts/record_transcripts.py"
RECORDED = ("normal_call", "abandon", "agent_no_answer", "transfer", "dial_failures")
"""The scenarios ``scripts/record_transcripts.py`` records, each one a file
``tests/fixtures/ami/<name>.ami`` that the unit tests need."""
BANNER_PREFIX = b"Asterisk Call Manager/"
SEPARATOR = b"\r\n\r\n"

Message = dict[str, str | list[str]]


class TranscriptMissing(FileNotFoundError):
    """A recorded transcript is not in tests/fixtures/ami."""


def transcript_path(name: str) -> Path:
    """The recorded transcript of scenario *name* (``"normal_call"``).

    Raises :class:`TranscriptMissing`, naming the file and the command that
    records it, when the file is not there.
    """
    path = FIXTURES / f"{name}.ami"
    if not path.is_file():
        raise TranscriptMissing(
            f"{path.relative_to(ROOT)} is missing; record it again from a private "
            f"Asterisk with: {RECORD_COMMAND} {name}"
        )
    return path


def parse_message(block: bytes) -> Message:
    """One message's bytes (without the terminating blank line) -> headers.

    A header that occurs more than once becomes a list of its values in order,
    as panoramisk does (a UserEvent repeats ``Priority``).
    """
    headers: Message = {}
    for line in block.decode("utf-8").split("\r\n"):
        key, sep, value = line.partition(":")
        if not sep:
            continue
        value = value[1:] if value.startswith(" ") else value
        previous = headers.get(key)
        if previous is None:
            headers[key] = value
        elif isinstance(previous, list):
            previous.append(value)
        else:
            headers[key] = [previous, value]
    return headers


def load_transcript(path: str | Path) -> list[Message]:
    """All messages of a transcript, in order, without the banner line.

    ``path`` may be a bare scenario name (``"normal_call"``). Raises
    :class:`TranscriptMissing` for a scenario whose file is missing, and
    ``ValueError`` if the file ends inside a message: a truncated fixture
    should fail loudly, not replay a different call.
    """
    path = Path(path)
    if not path.suffix and not path.exists():
        path = transcript_path(path.name)
    raw = path.read_bytes()
    if raw.startswith(BANNER_PREFIX):
        raw = raw.split(b"\r\n", 1)[1]
    *blocks, rest = raw.split(SEPARATOR)
    if rest.strip():
        raise ValueError(f"{path}: unterminated message at the end: {rest[:80]!r}")
    return [parse_message(block) for block in blocks if block.strip()]
