"""Unit tests for cti.ami.framing: pure bytes -> messages, messages -> bytes."""

from __future__ import annotations

import ast

import pytest

from cti.ami.framing import (
    BANNER_PREFIX,
    FrameBuffer,
    MalformedMessage,
    OversizeMessage,
    encode_action,
    ends_event_list,
    parse_message,
    starts_event_list,
)

# The unit tests may run with or without tests/unit being a package.
try:
    from .transcripts import (
        FIXTURES,
        RECORD_COMMAND,
        RECORD_SCRIPT,
        RECORDED,
        TranscriptMissing,
        transcript_path,
    )
except ImportError:
    from transcripts import (  # type: ignore[no-redef]
        FIXTURES,
        RECORD_COMMAND,
        RECORD_SCRIPT,
        RECORDED,
        TranscriptMissing,
        transcript_path,
    )

CJK_NAME = "张三丰·市民热线"
CJK_EVENT = (
    "Event: Newchannel\r\n"
    "Privilege: call,all\r\n"
    "Channel: PJSIP/trunk-00000001\r\n"
    f"CallerIDNum: 13800138000\r\n"
    f"CallerIDName: {CJK_NAME}\r\n"
    "ConnectedLineName: 北京市12345热线\r\n"
    "Exten: 12345\r\n"
    "\r\n"
).encode()


def only_messages(items: list[bytes | MalformedMessage]) -> list[bytes]:
    assert all(isinstance(item, bytes) for item in items), items
    return [item for item in items if isinstance(item, bytes)]


# -- FrameBuffer ----------------------------------------------------------------


def test_banner_is_consumed_and_exposed() -> None:
    frames = FrameBuffer()
    out = frames.feed(b"Asterisk Call Manager/5.0.0\r\nResponse: Success\r\nActionID: a\r\n\r\n")
    assert frames.banner == "Asterisk Call Manager/5.0.0"
    assert out == [b"Response: Success\r\nActionID: a"]


def test_banner_split_across_feeds() -> None:
    frames = FrameBuffer()
    stream = b"Asterisk Call Manager/2.10.6\r\nEvent: FullyBooted\r\n\r\n"
    out: list[bytes | MalformedMessage] = []
    for i in range(len(stream)):
        out += frames.feed(stream[i : i + 1])
        if i < len(BANNER_PREFIX):
            assert not frames.banner_checked
    assert frames.banner == "Asterisk Call Manager/2.10.6"
    assert out == [b"Event: FullyBooted"]


def test_stream_without_banner() -> None:
    frames = FrameBuffer()
    assert frames.feed(b"Event: A\r\n\r\n") == [b"Event: A"]
    assert frames.banner is None
    assert frames.banner_checked


def test_messages_are_returned_in_order_and_partial_tail_is_kept() -> None:
    frames = FrameBuffer()
    out = frames.feed(b"Event: A\r\n\r\nEvent: B\r\n\r\nEvent: C\r\nX: 1")
    assert out == [b"Event: A", b"Event: B"]
    assert frames.feed(b"\r\n\r\n") == [b"Event: C\r\nX: 1"]
    assert frames.buffered_bytes == 0


@pytest.mark.parametrize("separator", [b"\r\n\r\n", b"\n\n", b"\r\n\n", b"\n\r\n"], ids=repr)
def test_tolerant_separators(separator: bytes) -> None:
    frames = FrameBuffer()
    out = frames.feed(b"Event: A" + separator + b"Event: B" + separator)
    assert [parse_message(raw).event for raw in only_messages(out)] == ["A", "B"]


def test_separator_split_at_every_position() -> None:
    stream = b"Event: A\r\n\r\nEvent: B\r\n\r\n"
    for cut in range(1, len(stream)):
        frames = FrameBuffer()
        out = frames.feed(stream[:cut]) + frames.feed(stream[cut:])
        assert out == [b"Event: A", b"Event: B"], cut


def test_extra_blank_lines_produce_no_empty_messages() -> None:
    frames = FrameBuffer()
    assert frames.feed(b"\r\n\r\nEvent: A\r\n\r\n\r\n\r\nEvent: B\r\n\r\n") == [
        b"Event: A",
        b"Event: B",
    ]


@pytest.mark.parametrize("cut", range(1, len(CJK_EVENT)))
def test_split_utf8_survives_every_offset(cut: int) -> None:
    frames = FrameBuffer()
    out = only_messages(frames.feed(CJK_EVENT[:cut]) + frames.feed(CJK_EVENT[cut:]))
    assert len(out) == 1
    message = parse_message(out[0])
    assert message["CallerIDName"] == CJK_NAME
    assert message["ConnectedLineName"] == "北京市12345热线"


def test_five_megabytes_without_separator_stay_bounded() -> None:
    limit = 1 << 20
    frames = FrameBuffer(max_message_bytes=limit)
    chunk = b"X" * 65536
    dropped: list[MalformedMessage] = []
    for _ in range((5 << 20) // len(chunk)):
        for item in frames.feed(chunk):
            assert isinstance(item, OversizeMessage)
            dropped.append(item)
        assert frames.buffered_bytes <= limit
    assert len(dropped) == 1
    assert "larger than 1048576 bytes" in str(dropped[0])
    assert len(dropped[0].raw) <= 200
    # Resynchronise at the next separator: the next valid event arrives.
    out = frames.feed(b"tail of junk\r\n\r\nEvent: AfterJunk\r\nN: 1\r\n\r\n")
    assert out == [b"Event: AfterJunk\r\nN: 1"]
    assert frames.buffered_bytes == 0


def test_oversize_separator_split_across_feeds_resynchronises() -> None:
    frames = FrameBuffer(max_message_bytes=100)
    out = frames.feed(b"J" * 200 + b"\r\n")
    assert len(out) == 1 and isinstance(out[0], OversizeMessage)
    assert frames.feed(b"\r\nEvent: Next\r\n\r\n") == [b"Event: Next"]


def test_complete_message_over_the_limit_is_dropped_too() -> None:
    frames = FrameBuffer(max_message_bytes=100)
    out = frames.feed(b"Event: Big\r\nData: " + b"x" * 200 + b"\r\n\r\nEvent: Small\r\n\r\n")
    assert isinstance(out[0], OversizeMessage)
    assert out[1:] == [b"Event: Small"]


def test_follows_body_with_blank_lines_waits_for_crlf_crlf() -> None:
    frames = FrameBuffer()
    stream = (
        b"Response: Follows\r\nPrivilege: Command\r\nActionID: c1\r\n"
        b"line one\n\nline three\n--END COMMAND--\r\n\r\nEvent: After\r\n\r\n"
    )
    out = only_messages(frames.feed(stream))
    assert len(out) == 2
    reply = parse_message(out[0])
    assert reply.response == "Follows"
    assert reply.actionid == "c1"
    assert reply.content == "line one\n\nline three"
    assert parse_message(out[1]).event == "After"


def test_max_message_bytes_must_be_sane() -> None:
    with pytest.raises(ValueError):
        FrameBuffer(max_message_bytes=0)


# -- parse_message ----------------------------------------------------------------


def test_parse_accepts_key_colon_value_without_space() -> None:
    message = parse_message(b"Event: Hangup\r\nCause:16\r\nCause-txt: Normal Clearing")
    assert message["Cause"] == "16"
    assert message["Cause-txt"] == "Normal Clearing"


def test_repeated_headers_become_lists() -> None:
    message = parse_message(
        b"Response: Success\r\nActionID: x\r\nOutput: line 1\r\nOutput: line 2\r\nOutput: line 3"
    )
    assert message["Output"] == ["line 1", "line 2", "line 3"]
    event = parse_message(b"Event: VarSet\r\nChanVariable: A=1\r\nChanVariable: B=2")
    assert event["ChanVariable"] == ["A=1", "B=2"]


@pytest.mark.parametrize("header", ["Event", "Response", "ActionID"])
def test_repeated_identifying_header_is_malformed(header: str) -> None:
    raw = f"Event: A\r\nResponse: Success\r\nActionID: 1\r\n{header}: again".encode()
    with pytest.raises(MalformedMessage, match=f"repeated {header}") as info:
        parse_message(raw)
    assert info.value.raw == raw


def test_repeat_detection_ignores_case() -> None:
    with pytest.raises(MalformedMessage):
        parse_message(b"Event: A\r\nevent: B")


@pytest.mark.parametrize(
    "raw",
    [b"hello world", b"Foo: bar\r\nBaz: 1", b"\xff\xfe\x00\x81garbage", b"\r\n"],
    ids=["text", "headers-only", "binary", "empty"],
)
def test_message_without_event_or_response_is_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedMessage):
        parse_message(raw)


def test_malformed_repr_is_short() -> None:
    exc = MalformedMessage("bad", b"x" * 10_000)
    assert len(str(exc)) < 250
    assert "10000 bytes" in str(exc)


def test_invalid_utf8_byte_is_replaced_and_the_rest_kept() -> None:
    raw = "Event: Newchannel\r\nCallerIDName: 张\xff三\r\nExten: 12345".encode()
    raw = raw.replace("\xff".encode(), b"\xff")
    message = parse_message(raw)
    assert message["CallerIDName"] == "张\ufffd三"
    assert message["Exten"] == "12345"


def test_other_encoding_is_supported() -> None:
    raw = "Event: Newchannel\r\nCallerIDName: 张三".encode("gb18030")
    assert parse_message(raw, encoding="gb18030")["CallerIDName"] == "张三"


def test_result_header_is_unquoted_like_panoramisk() -> None:
    assert parse_message(b"Event: AsyncAGI\r\nResult: 200%20result%3D1")["Result"] == (
        "200 result=1"
    )


def test_response_fail_keeps_message_header() -> None:
    message = parse_message(b"Response: Fail\r\nActionID: 9\r\nMessage: No such channel")
    assert message.message == "No such channel"
    assert message.content == ""
    assert not message.success


def test_panoramisk_message_attribute_api_is_kept() -> None:
    message = parse_message(b"Response: Success\r\nActionID: abc\r\nMessage: ok")
    assert message.success
    assert message.action_id == "abc"
    assert message.message == "ok"
    assert message.unknown_header == ""


@pytest.mark.parametrize("name", RECORDED)
def test_recorded_transcripts_parse_cleanly(name: str) -> None:
    data = transcript_path(name).read_bytes()  # missing: fails, naming the command
    # Feed in small odd-sized chunks so separators and characters get split.
    frames = FrameBuffer()
    items: list[bytes | MalformedMessage] = []
    for offset in range(0, len(data), 7):
        items += frames.feed(data[offset : offset + 7])
    assert frames.banner is not None and frames.banner.startswith("Asterisk Call Manager/")
    messages = [parse_message(raw) for raw in only_messages(items)]
    assert messages
    assert all("Event" in m or "Response" in m for m in messages)


def test_the_listed_transcripts_are_the_ones_the_script_records() -> None:
    # A scenario the script records but the tests do not list would go
    # untested; a listed one it does not record could never be re-recorded.
    tree = ast.parse(RECORD_SCRIPT.read_text(encoding="utf-8"))
    (scenarios,) = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and [getattr(t, "id", None) for t in node.targets] == ["SCENARIOS"]
    ]
    assert isinstance(scenarios, ast.Dict)
    assert sorted(ast.literal_eval(key) for key in scenarios.keys) == sorted(RECORDED)
    assert {path.stem for path in FIXTURES.glob("*.ami")} <= set(RECORDED)


def test_a_missing_transcript_names_the_file_and_how_to_record_it() -> None:
    with pytest.raises(TranscriptMissing) as info:
        transcript_path("never_recorded")
    assert str(info.value) == (
        "tests/fixtures/ami/never_recorded.ami is missing; record it again from a "
        f"private Asterisk with: {RECORD_COMMAND} never_recorded"
    )


# -- encode_action ----------------------------------------------------------------


def test_encode_puts_action_first_and_repeats_list_values() -> None:
    data = encode_action(
        {
            "Channel": "PJSIP/1001",
            "Variable": ["A=1", "B=2"],
            "Action": "Originate",
            "Timeout": 30000,
        }
    )
    assert data == (
        b"Action: Originate\r\nChannel: PJSIP/1001\r\nVariable: A=1\r\nVariable: B=2\r\n"
        b"Timeout: 30000\r\n\r\n"
    )


def test_encode_round_trips_cjk() -> None:
    data = encode_action({"Action": "Setvar", "Value": CJK_NAME})
    frames = FrameBuffer()
    (raw,) = only_messages(frames.feed(data.replace(b"Action", b"Response", 1)))
    assert parse_message(raw)["Value"] == CJK_NAME


@pytest.mark.parametrize(
    "action",
    [
        {"Action": "Originate", "CallerID": "x\r\nAction: Command\r\nCommand: core stop now"},
        {"Action": "Originate", "CallerID": "x\ny"},
        {"Action": "Originate", "CallerID": "x\ry"},
        {"Action": "Originate", "Variable": ["ok=1", "bad=2\r\n"]},
        {"Action": "Originate", "Bad\r\nKey": "v"},
        {"Action": "Originate", "Bad: Key": "v"},
        {"Action": "Originate", "Bad:Key": "v"},
        {"Action": "Originate", "": "v"},
        {"Action": "Originate", "Channel": None},
    ],
)
def test_encode_rejects_header_injection_and_bad_names(action: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        encode_action(action)


# -- list completion rules --------------------------------------------------------


def test_event_list_rules() -> None:
    start = parse_message(b"Response: Success\r\nActionID: 1\r\nEventList: start\r\nMessage: x")
    legacy = parse_message(
        b"Response: Success\r\nActionID: 1\r\nMessage: Channel status will follow"
    )
    single = parse_message(
        b"Response: Success\r\nActionID: 1\r\nMessage: Originate successfully queued"
    )
    error = parse_message(b"Response: Error\r\nActionID: 1\r\nMessage: Permission denied")
    assert starts_event_list(start)
    assert starts_event_list(legacy)
    assert not starts_event_list(single)
    assert not starts_event_list(error)
    complete = parse_message(
        b"Event: CoreShowChannelsComplete\r\nActionID: 1\r\nEventList: Complete"
    )
    item = parse_message(b"Event: CoreShowChannel\r\nActionID: 1")
    assert ends_event_list(complete)
    assert not ends_event_list(item)
