"""The ingest fast path gives exactly what the careful path gives.

``FrameBuffer.feed_regions`` + ``MessageParser.split_region`` (in C when
``cti.ami._speedups`` is built, in Python otherwise), and
``FrameBuffer.feed_texts`` + ``MessageParser.parse``, must agree with
``FrameBuffer.feed`` + ``parse_message`` on every input: the recorded
transcripts cut at every kind of offset, and hand-made odd messages.
"""

from __future__ import annotations

import contextlib
import random

import pytest

from cti.ami import (
    AmiMessage,
    FrameBuffer,
    MalformedMessage,
    MessageParser,
    OversizeMessage,
    parse_message,
)
from cti.ami.framing import Region
from cti.ami.message import CANONICAL_HEADERS, canonical_header

# The unit tests may run with or without tests/unit being a package.
try:
    from .transcripts import RECORDED, transcript_path
except ImportError:
    from transcripts import RECORDED, transcript_path  # type: ignore[no-redef]

# Listed, not globbed: a transcript missing from tests/fixtures/ami fails its
# tests (naming the command that records it) instead of silently dropping them.
TRANSCRIPTS = sorted(RECORDED)


def careful(data: bytes, cuts: list[int]) -> list[object]:
    frames = FrameBuffer()
    out: list[object] = []
    for chunk in _chunks(data, cuts):
        for item in frames.feed(chunk):
            out.append(_careful_item(item))
    return out


def fast(data: bytes, cuts: list[int], parser: MessageParser) -> list[object]:
    """One message at a time: FrameBuffer.feed_texts + MessageParser.parse."""
    frames = FrameBuffer()
    out: list[object] = []
    for chunk in _chunks(data, cuts):
        for item in frames.feed_texts(chunk):
            if isinstance(item, str):
                out.append(_parsed(parser, item))
            else:
                out.append(_careful_item(item))
    return out


def regions(
    data: bytes, cuts: list[int], parser: MessageParser, wanted: frozenset[str] | None = None
) -> tuple[list[object], int]:
    """What the protocol does: FrameBuffer.feed_regions + MessageParser.split_region,
    with events and others merged back in stream order."""
    frames = FrameBuffer()
    out: list[object] = []
    filtered = 0
    for chunk in _chunks(data, cuts):
        for item in frames.feed_regions(chunk):
            if not isinstance(item, Region):
                parsed = _careful_item(item)
                if wanted is not None and _unwanted_parsed(parsed, wanted):
                    filtered += 1  # as the protocol filters the careful path
                else:
                    out.append(parsed)
                continue
            plain, others, dropped = parser.split_region(item, wanted)
            filtered += dropped
            done = 0
            for position, other in others:
                out.extend(_as_plain(m) for m in plain[done:position])
                done = position
                out.append(_parsed(parser, other) if isinstance(other, str) else _as_plain(other))
            out.extend(_as_plain(m) for m in plain[done:])
    return out, filtered


def _unwanted_parsed(item: object, wanted: frozenset[str]) -> bool:
    return (
        isinstance(item, tuple)
        and isinstance(item[0], dict)
        and "Event" in item[0]
        and "ActionID" not in item[0]
        and item[0]["Event"] not in wanted
    )


def _parsed(parser: MessageParser, text: str) -> object:
    try:
        return _as_plain(parser.parse(text))
    except MalformedMessage as exc:
        return ("malformed", exc.reason)


def _careful_item(item: bytes | MalformedMessage) -> object:
    if isinstance(item, MalformedMessage):
        return ("oversize", item.size) if isinstance(item, OversizeMessage) else item.reason
    try:
        return _as_plain(parse_message(item))
    except MalformedMessage as exc:
        return ("malformed", exc.reason)


def _as_plain(message: AmiMessage) -> tuple[dict[str, object], str]:
    return dict(message), message.content


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(c for c in cuts if 0 < c < len(data)), len(data)]
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


@pytest.fixture(params=[True, False], ids=["c-loop", "python-loop"])
def parser(request: pytest.FixtureRequest) -> MessageParser:
    return MessageParser(accelerated=request.param)


def test_the_c_loop_is_built() -> None:
    # CI must measure and test what production runs: the editable install
    # builds cti/ami/_speedups.c; a missing build is a setup defect, not a skip.
    assert MessageParser().accelerated


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_transcripts_parse_the_same_in_64k_reads_and_odd_cuts(
    name: str, parser: MessageParser
) -> None:
    data = transcript_path(name).read_bytes()
    rng = random.Random(f"{name}.ami")
    for cuts in (
        list(range(65536, len(data), 65536)),
        list(range(7, len(data), 7)),
        sorted(rng.sample(range(1, len(data)), 200)),
    ):
        expected = careful(data, cuts)
        assert fast(data, cuts, parser) == expected
        assert regions(data, cuts, parser) == (expected, 0)
        assert len(expected) > 10


ODD_MESSAGES = [
    b"Event: A\r\nKey: \r\nOther: x: y\r\n\r\n",  # empty value, ": " inside a value
    b"Event: A\r\nCause:16\r\nCause-txt: Normal\r\n\r\n",  # "Key:value"
    b"Event: A\r\nKey : spaced\r\n\r\n",  # space before the colon
    b"Event: A\r\nno colon line\r\nB: 1\r\n\r\n",
    b"Event: UserEvent\r\nPriority: 3\r\nPriority: 0\r\nPriority: 9\r\n\r\n",
    b"Event: A\r\nEvent: B\r\n\r\n",  # repeated identifying header
    b"Event: A\r\nevent: B\r\n\r\n",  # the same, in another case
    b"Event: A\r\nUNIQUEID: x\r\nactionid: 7\r\n\r\n",  # non-canonical spellings
    b"Foo: bar\r\n\r\n",  # neither Event nor Response
    b"Event: A\r\nResult: 200%20ok\r\n\r\n",  # unquoted like panoramisk
    "Event: A\r\nCallerIDName: 张三\r\n\r\n".encode(),
    b"Event: A\r\nName: a\rb\r\n\r\n",  # a lone CR stays in the value
    b"\r\n\r\nEvent: AfterBlankLines\r\n\r\n",
    b"Event: A\r\n\xff\xfeKey: v\r\n\r\n",  # undecodable bytes
    b"Event: A\r\nK\x01ey: v\r\n\r\n",  # control character in a name
]


@pytest.mark.parametrize("raw", ODD_MESSAGES, ids=range(len(ODD_MESSAGES)))
def test_odd_messages_parse_the_same(raw: bytes, parser: MessageParser) -> None:
    stream = b"Event: Before\r\n\r\n" + raw + b"Event: After\r\n\r\n"
    expected = careful(stream, [])
    assert fast(stream, [], parser) == expected
    assert regions(stream, [], parser) == (expected, 0)
    # The neighbours survive whatever the middle message is.
    assert expected[0] == ({"Event": "Before"}, "")
    assert expected[-1] == ({"Event": "After"}, "")


def test_repeats_become_lists_and_keep_the_channel_priority_first(
    parser: MessageParser,
) -> None:
    message = parser.parse("Event: UserEvent\r\nPriority: 3\r\nUserEvent: X\r\nPriority: 0")
    assert message["Priority"] == ["3", "0"]
    assert message["UserEvent"] == "X"


def test_non_canonical_spellings_are_stored_canonically(parser: MessageParser) -> None:
    message = parser.parse("Event: ContactStatus\r\nAor: 1001\r\nUNIQUEID: u1\r\nX-Custom: 1")
    assert message == {"Event": "ContactStatus", "AOR": "1001", "Uniqueid": "u1", "X-Custom": "1"}
    assert canonical_header("actionId") == "ActionID"
    assert all(canonical_header(name.upper()) == name for name in CANONICAL_HEADERS.values())


def test_recorded_headers_are_their_own_canonical_spelling() -> None:
    # The table must never rename what Asterisk 16 actually sends.
    for transcript in TRANSCRIPTS:
        for item in FrameBuffer().feed(transcript_path(transcript).read_bytes()):
            assert isinstance(item, bytes)
            for line in item.decode().split("\r\n"):
                name = line.partition(": ")[0]
                if name:
                    assert canonical_header(name) == name, (transcript, name)


def test_attribute_api() -> None:
    reply = AmiMessage({"response": "Success", "actionid": "a1", "Ping": "Pong"})
    assert reply == {"Response": "Success", "ActionID": "a1", "Ping": "Pong"}
    assert reply.success and reply.action_id == "a1" and reply.ping == "Pong"
    assert reply.event == "" and reply.missing == ""
    assert not AmiMessage({"Response": "Error"}).success
    assert AmiMessage({"Event": "Hangup"}).success
    with pytest.raises(AttributeError):
        reply.__wrapped__  # noqa: B018 - dunder lookups are not headers


def test_known_header_memory_is_bounded() -> None:
    parser = MessageParser(max_known_keys=3)
    for n in range(50):
        assert parser.parse(f"Event: A\r\nHeader{n}: {n}")[f"Header{n}"] == str(n)
    assert len(parser._known) <= 3


def test_bare_lf_streams_take_the_careful_path() -> None:
    frames = FrameBuffer()
    items = frames.feed_texts(b"Event: A\nKey: 1\n\nEvent: B\r\n\r\n")
    assert all(isinstance(item, bytes) for item in items)
    assert [parse_message(i)["Event"] for i in items if isinstance(i, bytes)] == ["A", "B"]


def test_follows_bodies_take_the_careful_path() -> None:
    body = (
        b"Response: Follows\r\nActionID: c1\r\nline one\nline two\n\n--END COMMAND--\r\n\r\n"
        b"Event: After\r\n\r\n"
    )
    items = FrameBuffer().feed_texts(body)
    assert all(isinstance(item, bytes) for item in items)
    reply = parse_message(items[0])  # type: ignore[arg-type]
    assert reply.content == "line one\nline two"


def test_oversize_is_dropped_on_the_fast_path_too() -> None:
    frames = FrameBuffer(max_message_bytes=1024)
    items = frames.feed_texts(b"Event: Big\r\nData: " + b"x" * 5000)
    assert len(items) == 1 and isinstance(items[0], OversizeMessage)
    after = frames.feed_texts(b"x" * 10 + b"\r\n\r\nEvent: Next\r\n\r\n")
    # While resynchronising the careful path hands out raw bytes.
    assert [parse_message(i)["Event"] for i in after if isinstance(i, bytes)] == ["Next"]
    assert frames.feed_texts(b"Event: Later\r\n\r\n") == ["Event: Later"]


def test_random_streams_parse_the_same(parser: MessageParser) -> None:
    # Messages built from the pieces that matter to the splitter: separators,
    # colons, spaces, CR alone, repeated and odd-cased names, wide characters.
    pieces = ["Event", "Response", "ActionID", "Priority", "uniqueid", ": ", ":", " ", "\r\n"]
    pieces += ["\r", "\n", "a", "7", "张", "-", "Key"]
    rng = random.Random(12345)
    for _ in range(300):
        lines = ["Event: Fuzz"]
        for _ in range(rng.randrange(0, 8)):
            lines.append("".join(rng.choice(pieces) for _ in range(rng.randrange(0, 6))))
        stream = ("\r\n".join(lines) + "\r\n\r\nEvent: After\r\n\r\n").encode()
        expected = careful(stream, [])
        assert fast(stream, [], parser) == expected, stream
        assert regions(stream, [], parser) == (expected, 0), stream


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_filtered_regions_keep_exactly_the_wanted_events_and_every_reply(
    name: str, parser: MessageParser
) -> None:
    data = transcript_path(name).read_bytes()
    wanted = frozenset({"Newchannel", "Hangup", "BridgeEnter", "UserEvent"})
    expected = [item for item in careful(data, []) if not _unwanted_parsed(item, wanted)]
    got, filtered = regions(data, list(range(4096, len(data), 4096)), parser, wanted)
    # FullyBooted is dropped here too (the protocol adds it to every filter).
    assert got == expected
    assert filtered == len(careful(data, [])) - len(expected) > 0


def test_split_region_sorts_plain_events_from_the_rest(parser: MessageParser) -> None:
    parser.parse("Event: X\r\nActionID: 1\r\nResponse: Success\r\nChannel: c")  # learn names
    region = (
        "Event: A\r\nChannel: 1\r\n\r\n"
        "Response: Success\r\nActionID: 1\r\n\r\n"
        "Event: B\r\nChannel: 2\r\n\r\n"
        "Event: FullyBooted\r\n\r\n"
        "Event: Unseen\r\nNewHeader: 1\r\n\r\n"  # a name not yet known: as text
        "Event: C\r\nActionID: 9"  # a list item
    )
    plain, others, filtered = parser.split_region(region, None)
    assert [m["Event"] for m in plain] == ["A", "B"]
    kinds = [(n, o if isinstance(o, str) else dict(o)) for n, o in others]
    assert kinds == [
        (1, {"Response": "Success", "ActionID": "1"}),
        (2, {"Event": "FullyBooted"}),
        (2, "Event: Unseen\r\nNewHeader: 1"),
        (2, {"Event": "C", "ActionID": "9"}),
    ]
    assert filtered == 0


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_the_region_splitters_agree(name: str) -> None:
    # C on the UTF-8 bytes, and the Python twin on the bytes and on the text.
    raw = transcript_path(name).read_bytes().split(b"\r\n", 1)[1]  # without the banner line
    raw = raw[: raw.rfind(b"\r\n\r\n")]
    raw += "\r\n\r\nEvent: Odd\r\nCallerIDName: 张三\r\n\r\n".encode()
    raw += b"Event: X\r\nCallerIDName: \xe5\r\n\r\nEvent: X\r\nBad\xffKey: 1"  # invalid UTF-8
    wanted = frozenset({"Newchannel", "Hangup", "UserEvent", "Odd", "X"})

    def run(parser: MessageParser, region: Region | str) -> object:
        for block in Region(raw).text().split("\r\n\r\n"):  # learn the names first
            with contextlib.suppress(MalformedMessage):
                parser.parse(block)
        plain, others, filtered = parser.split_region(region, wanted)
        return (
            [dict(m) for m in plain],
            [(n, o if isinstance(o, str) else dict(o)) for n, o in others],
            filtered,
        )

    on_bytes = run(MessageParser(), Region(raw))
    assert on_bytes == run(MessageParser(), Region(raw).text())
    assert on_bytes == run(MessageParser(accelerated=False), Region(raw))
    assert on_bytes[2] > 0 and len(on_bytes[0]) >= 3
