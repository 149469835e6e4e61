"""Load a recorded AMI transcript (tests/fixtures/ami/*.ami) into header dicts.

Self-contained on purpose: the transcripts test the call model, not the AMI
link, so this splitter must not depend on cti.ami. It works like Asterisk's
wire format demands: split the BYTES on the blank line that ends each message,
then decode each whole message (a multibyte UTF-8 name is never cut in two).
"""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ami"
BANNER_PREFIX = b"Asterisk Call Manager/"
SEPARATOR = b"\r\n\r\n"

Message = dict[str, str | list[str]]


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
    ``ValueError`` if the file ends inside a message: a truncated fixture
    should fail loudly, not replay a different call.
    """
    path = Path(path)
    if not path.suffix and not path.exists():
        path = FIXTURES / f"{path}.ami"
    raw = path.read_bytes()
    if raw.startswith(BANNER_PREFIX):
        raw = raw.split(b"\r\n", 1)[1]
    *blocks, rest = raw.split(SEPARATOR)
    if rest.strip():
        raise ValueError(f"{path}: unterminated message at the end: {rest[:80]!r}")
    return [parse_message(block) for block in blocks if block.strip()]
