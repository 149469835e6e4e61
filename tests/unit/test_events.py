"""cti.events: the AMI header mapping -> typed event normalizer."""

from __future__ import annotations

import pytest
from panoramisk.message import Message

from cti import events as ev

# The unit tests may run with or without tests/unit being a package.
try:
    from .transcripts import load_transcript
except ImportError:
    from transcripts import load_transcript


def first(messages: list[dict], event: str, **match: str) -> dict:
    for message in messages:
        if message.get("Event") == event and all(message.get(k) == v for k, v in match.items()):
            return message
    raise AssertionError(f"no {event} {match} in transcript")


@pytest.fixture(scope="module")
def normal_call() -> list[dict]:
    return load_transcript("normal_call")


@pytest.fixture(scope="module")
def transfer() -> list[dict]:
    return load_transcript("transfer")


# -- helpers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1795237408.414539", 1795237408.414539),
        (" 1795237408.5 ", 1795237408.5),
        ("1795237408", 1795237408.0),
        (["1795237408.1", "1795237409.2"], 1795237408.1),
    ],
)
def test_parse_timestamp(value, expected):
    assert ev.parse_timestamp(value) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("value", [None, "", "abc", "-1", "nan", "inf", []])
def test_parse_timestamp_rejects_unusable_values(value):
    assert ev.parse_timestamp(value) is None


@pytest.mark.parametrize(
    ("name", "endpoint", "tech"),
    [
        ("PJSIP/1001-00000001", "1001", "PJSIP"),
        ("PJSIP/trunk-00000000", "trunk", "PJSIP"),
        ("PJSIP/carrier-trunk-0000002a", "carrier-trunk", "PJSIP"),
        ("SIP/1001-0000000f", "1001", "SIP"),
        ("PJSIP/1001-00000001<ZOMBIE>", "1001", "PJSIP"),
        ("Local/1001@hotline-agent-00000001;1", "1001@hotline-agent", "Local"),
        ("Local/s@hotline-connect-0000abcd;2", "s@hotline-connect", "Local"),
        ("Message/ast_msg_queue", "ast_msg_queue", "Message"),
        ("nochannel", "nochannel", ""),
        ("", "", ""),
    ],
)
def test_channel_endpoint_and_tech(name, endpoint, tech):
    assert ev.channel_endpoint(name) == endpoint
    assert ev.channel_tech(name) == tech


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("00:00:12", 12),
        ("00:01:05", 65),
        ("01:00:00", 3600),
        ("100:00:00", 360000),
        ("", 0),
        ("x:y", 0),
        (None, 0),
    ],
)
def test_parse_duration(value, seconds):
    assert ev.parse_duration(value) == seconds


# -- the transcript's own messages -----------------------------------------


def test_loader_skips_banner_and_decodes_utf8(normal_call):
    assert normal_call[0] == {
        "Response": "Success",
        "ActionID": "rec-1",
        "Message": "Authentication accepted",
    }
    newchannel = first(normal_call, "Newchannel", Channel="PJSIP/trunk-00000000")
    assert newchannel["CallerIDName"] == "张三丰"
    assert newchannel["AccountCode"] == ""


def test_newchannel(normal_call):
    event = ev.normalize(first(normal_call, "Newchannel", Channel="PJSIP/trunk-00000000"))
    assert isinstance(event, ev.Newchannel)
    assert event.at == pytest.approx(1795237408.414539, abs=1e-6)
    assert event.channel == ev.ChannelInfo(
        name="PJSIP/trunk-00000000",
        uniqueid="hotline-1795237408.0",
        linkedid="hotline-1795237408.0",
        state="Ring",
        caller_number="13800138000",
        caller_name="张三丰",
        connected_number="",
        connected_name="",  # "<unknown>" means none
        context="hotline-inbound",
        exten="12345",
    )
    assert event.channel.tech == "PJSIP"
    assert event.channel.endpoint == "trunk"


def test_user_event_reads_its_own_repeated_header(normal_call):
    raw = first(normal_call, "UserEvent", UserEvent="HotlineEnqueue")
    # The channel snapshot's Priority (dialplan) and the user event's (queue).
    assert raw["Priority"] == ["3", "0"]
    event = ev.normalize(raw)
    assert isinstance(event, ev.HotlineEnqueue)
    assert (event.line, event.queue, event.priority) == ("12345", "12345-general", 0)
    assert event.channel.context == "hotline-intake"
    assert event.at == pytest.approx(1795237408.916346, abs=1e-6)


def test_hotline_enqueue_carries_the_ivr_choices(normal_call):
    raw = dict(first(normal_call, "UserEvent", UserEvent="HotlineEnqueue"))
    assert ev.normalize(raw).ivr == ()  # recorded before the header existed, no IVR
    raw["Ivr"] = "社保医保|养老保险"
    assert ev.normalize(raw).ivr == ("社保医保", "养老保险")
    raw["Ivr"] = ""
    assert ev.normalize(raw).ivr == ()


def test_hotline_connect_and_dial_result(normal_call):
    connect = ev.normalize(first(normal_call, "UserEvent", UserEvent="HotlineConnect"))
    assert isinstance(connect, ev.HotlineConnect)
    assert (connect.agent, connect.line) == ("1001", "12345")


def test_dial_begin_and_end(normal_call):
    begin = ev.normalize(first(normal_call, "DialBegin"))
    assert isinstance(begin, ev.DialBegin)
    assert begin.caller is not None and begin.caller.endpoint == "trunk"
    assert begin.dest.endpoint == "1001"
    assert begin.dest.uniqueid == "hotline-1795237409.1"
    assert begin.dest.linkedid == "hotline-1795237408.0"
    assert begin.dest.caller_name == "坐席1001"
    assert begin.dial_string == "1001"
    end = ev.normalize(first(normal_call, "DialEnd"))
    assert isinstance(end, ev.DialEnd)
    assert end.dial_status == "ANSWER"
    assert end.at == pytest.approx(1795237410.925073, abs=1e-6)


def test_bridge_events(normal_call):
    enter = ev.normalize(first(normal_call, "BridgeEnter"))
    assert isinstance(enter, ev.BridgeEnter)
    assert enter.bridge_id == "dc5fc031-f998-45cd-b0da-4fa4e8cc9698"
    assert enter.channel.endpoint == "1001"
    create = ev.normalize(first(normal_call, "BridgeCreate"))
    assert create == ev.BridgeCreate(create.at, "dc5fc031-f998-45cd-b0da-4fa4e8cc9698")


def test_hangup_and_requests(normal_call):
    hangup = ev.normalize(first(normal_call, "Hangup"))
    assert isinstance(hangup, ev.Hangup)
    assert (hangup.cause, hangup.cause_txt) == (16, "Normal Clearing")
    request = ev.normalize(first(normal_call, "HangupRequest"))
    soft = ev.normalize(first(normal_call, "SoftHangupRequest"))
    assert isinstance(request, ev.HangupRequest) and not request.soft
    assert isinstance(soft, ev.HangupRequest) and soft.soft and soft.cause == 16


def test_moh_and_mixmonitor(normal_call):
    moh = ev.normalize(first(normal_call, "MusicOnHoldStart"))
    assert isinstance(moh, ev.MusicOnHold) and moh.started and moh.moh_class == "hotline"
    mix = ev.normalize(first(normal_call, "MixMonitorStart"))
    assert isinstance(mix, ev.MixMonitor) and mix.started


def test_blind_transfer(transfer):
    event = ev.normalize(first(transfer, "BlindTransfer"))
    assert isinstance(event, ev.BlindTransfer)
    assert event.result == "Success"
    assert event.transferer is not None and event.transferer.endpoint == "1001"
    assert event.transferee is not None and event.transferee.endpoint == "trunk"
    assert event.transferee.caller_name == "赵六"
    assert (event.extension, event.context) == ("1002", "hotline-connect")
    assert event.bridge_id == "c7481fa2-cd94-4c54-8729-cd41efdbc508"


def test_panoramisk_message_gives_the_same_event(normal_call):
    # What the live link hands over: panoramisk's case-insensitive Message.
    raw = first(normal_call, "UserEvent", UserEvent="HotlineEnqueue")
    text = "\r\n".join(
        f"{k}: {v}"
        for k, values in raw.items()
        for v in (values if isinstance(values, list) else [values])
    )
    message = Message.from_line(text)
    assert message["priority"] == ["3", "0"]
    assert ev.normalize(message) == ev.normalize(raw)


# -- odd input --------------------------------------------------------------


def test_missing_timestamp_falls_back_to_receive_time():
    message = {"Event": "Hangup", "Channel": "PJSIP/1001-00000001", "Uniqueid": "u1", "Cause": "16"}
    event = ev.normalize(message, received_at=1700000000.25)
    assert isinstance(event, ev.Hangup)
    assert event.at == 1700000000.25
    assert event.channel.linkedid == "u1"  # no Linkedid: a group of its own
    assert event.cause_txt == ""
    with pytest.raises(ev.MalformedEvent, match="no Timestamp"):
        ev.normalize(message)


def test_bad_timestamp_falls_back_too():
    message = {"Event": "Newstate", "Timestamp": "soon", "Uniqueid": "u1"}
    event = ev.normalize(message, received_at=5.0)
    assert event is not None and event.at == 5.0


def test_known_event_without_uniqueid_is_malformed():
    with pytest.raises(ev.MalformedEvent, match="no Uniqueid"):
        ev.normalize({"Event": "Newchannel", "Timestamp": "1.0", "Channel": "PJSIP/x-00000001"})
    with pytest.raises(ev.MalformedEvent, match="no DestUniqueid"):
        ev.normalize({"Event": "DialBegin", "Timestamp": "1.0", "Uniqueid": "u1"})
    with pytest.raises(ev.MalformedEvent, match="no BridgeUniqueid"):
        ev.normalize({"Event": "BridgeCreate", "Timestamp": "1.0"})


@pytest.mark.parametrize(
    "message",
    [
        {"Response": "Success", "ActionID": "a1", "Message": "Redirect successful"},
        {"Event": "FullyBooted", "Status": "Fully Booted"},
        {"Event": "VarSet", "Timestamp": "1.0", "Uniqueid": "u1", "Variable": "X", "Value": "1"},
        {"Event": "UserEvent", "Timestamp": "1.0", "Uniqueid": "u1", "UserEvent": "Other"},
        {},
    ],
)
def test_ignored_messages(message):
    assert ev.normalize(message, received_at=1.0) is None


def test_dial_begin_without_caller_side():
    # An Originate dials with no calling channel.
    event = ev.normalize(
        {
            "Event": "DialBegin",
            "Timestamp": "2.0",
            "DestChannel": "PJSIP/1001-00000003",
            "DestUniqueid": "u3",
            "DestLinkedid": "u3",
            "DialString": "1001",
        }
    )
    assert isinstance(event, ev.DialBegin)
    assert event.caller is None and event.dest.endpoint == "1001"


def test_core_show_channel():
    event = ev.normalize(
        {
            "Event": "CoreShowChannel",
            "ActionID": "a2",
            "Channel": "PJSIP/trunk-00000005",
            "ChannelState": "6",
            "ChannelStateDesc": "Up",
            "CallerIDNum": "13500135000",
            "CallerIDName": "钱七",
            "Context": "hotline-hold",
            "Exten": "s",
            "Uniqueid": "u5",
            "Linkedid": "u5",
            "BridgeId": "",
            "Application": "MusicOnHold",
            "ApplicationData": "hotline,120",
            "Duration": "00:00:12",
            "AccountCode": "",
        },
        received_at=100.0,
    )
    assert isinstance(event, ev.CoreShowChannel)
    assert event.at == 100.0
    assert (event.duration_s, event.application, event.bridge_id) == (12, "MusicOnHold", "")
    assert event.channel.caller_name == "钱七"


def test_channel_snapshots_are_immutable_and_events_have_no_stray_attributes(normal_call):
    # Events are plain slotted dataclasses (frozen ones cost three times as
    # much to build, one per AMI event); the snapshot they share is a tuple.
    event = ev.normalize(first(normal_call, "Hangup"))
    with pytest.raises(AttributeError):
        event.channel.uniqueid = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        event.typo_field = 1  # type: ignore[attr-defined]
