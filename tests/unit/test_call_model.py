"""cti.calls: the call model, replaying AMI transcripts recorded from Asterisk 16.

The expected durations are computed by hand from the transcripts' Timestamp
headers (the events named next to each literal), so these tests pin the KPI
clock definitions of DOMAIN.md to real Asterisk behaviour.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from cti.calls import (
    AgentConnected,
    AgentLeft,
    AgentNoAnswer,
    AgentRinging,
    Call,
    CallAnswered,
    CallArrived,
    CallChange,
    CallEnded,
    CallLost,
    CallModel,
    CallPhase,
    CallQueued,
    CallTransferred,
)

# The unit tests may run with or without tests/unit being a package.
try:
    from .transcripts import load_transcript
except ImportError:
    from transcripts import load_transcript

LINES = {"12345": "12345", "96181": "96181"}
# Float epochs near 1.8e9 carry ~2.4e-7 s of rounding; the transcript has microseconds.
US = 1e-6
P = CallPhase


def approx(value: float) -> object:
    return pytest.approx(value, abs=US)


def replay(
    name: str,
    *,
    each: Callable[[CallModel, dict], None] | None = None,
) -> tuple[CallModel, list[CallChange]]:
    model = CallModel(lines=LINES)
    changes: list[CallChange] = []
    for message in load_transcript(name):
        changes.extend(model.apply(message))
        if each is not None:
            each(model, message)
    return model, changes


def only_call(model: CallModel) -> Call:
    assert model.calls == {}
    assert len(model.ended) == 1
    return model.ended[0]


def phases(call: Call) -> list[CallPhase]:
    return [phase for _, phase, _ in call.history]


@pytest.fixture(autouse=True)
def no_model_errors(caplog):
    """The model swallows its own exceptions (it must never raise into the
    engine), so a test must also check that none was logged."""
    yield
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


# -- normal_call: 12345, queued, 1001 answers, caller hangs up -----------------

CALL_1 = "hotline-1795237408.0"


def test_normal_call_changes():
    model, changes = replay("normal_call")
    assert changes == [
        CallArrived(
            CALL_1,
            approx(1795237408.414539),
            line="12345",
            caller_number="13800138000",
            caller_name="张三丰",
            dialled="12345",
        ),
        CallQueued(
            CALL_1, approx(1795237408.916346), line="12345", queue="12345-general", requeued=False
        ),
        AgentRinging(CALL_1, approx(1795237409.919632), agent="1001"),
        # wait = DialEnd ANSWER 1795237410.925073 - HotlineEnqueue 1795237408.916346
        CallAnswered(CALL_1, approx(1795237410.925073), agent="1001", wait_s=approx(2.008727)),
        # talk = caller's BridgeLeave 1795237414.421740 - DialEnd ANSWER 1795237410.925073
        CallEnded(
            CALL_1,
            approx(1795237414.422176),
            abandoned=False,
            wait_s=approx(2.008727),
            talk_s=approx(3.496667),
            cause="Normal Clearing",
        ),
    ]


def test_normal_call_summary():
    model, _ = replay("normal_call")
    call = only_call(model)
    assert phases(call) == [P.ARRIVED, P.QUEUED, P.RINGING, P.CONNECTED, P.ENDED]
    assert [event for _, _, event in call.history] == [
        "Newchannel",
        "HotlineEnqueue",
        "DialBegin",
        "DialEnd",
        "Hangup",
    ]
    assert call.call_id == CALL_1
    assert call.caller_channel == "hotline-1795237408.0"
    assert (call.caller_number, call.caller_name) == ("13800138000", "张三丰")
    assert (call.dialled, call.line, call.queue) == ("12345", "12345", "12345-general")
    assert call.arrived_at == approx(1795237408.414539)  # Newchannel
    assert call.queued_at == approx(1795237408.916346)  # UserEvent HotlineEnqueue
    assert call.ringing_at == approx(1795237409.919632)  # DialBegin
    assert call.answered_at == approx(1795237410.925073)  # DialEnd ANSWER
    assert call.ended_at == approx(1795237414.422176)  # caller's Hangup
    assert call.wait_s == approx(2.008727)
    assert call.talk_s == approx(3.496667)
    assert call.wait_s <= 15.0  # a 15 s answer
    assert call.agent == "1001"
    assert call.agents_tried == ["1001"]
    assert call.no_answers == [] and call.transfers == []
    assert call.abandoned is False
    assert call.hangup_cause == "Normal Clearing"
    # Everything hung up: nothing left behind.
    assert model.channels == {} and model.bridges == {}
    assert model.call_for_channel("hotline-1795237409.1") is None


def test_transitions_are_logged(caplog):
    with caplog.at_level(logging.DEBUG, logger="cti.calls.model"):
        replay("normal_call")
    lines = [r.getMessage() for r in caplog.records if r.name == "cti.calls.model"]
    assert f"call {CALL_1}: ARRIVED -[HotlineEnqueue]-> QUEUED" in lines
    assert f"call {CALL_1}: QUEUED -[DialBegin]-> RINGING" in lines
    assert f"call {CALL_1}: RINGING -[DialEnd]-> CONNECTED" in lines
    assert f"call {CALL_1}: CONNECTED -[Hangup]-> ENDED" in lines


def test_agent_busy_follows_the_agent_leg():
    seen: list[tuple[str, bool]] = []

    def watch(model: CallModel, message: dict) -> None:
        if message.get("Event") in ("Newchannel", "DialBegin", "DialEnd", "Hangup"):
            seen.append((f"{message['Event']} {message['Channel']}", model.agent_busy("1001")))

    model, _ = replay("normal_call", each=watch)
    assert seen == [
        ("Newchannel PJSIP/trunk-00000000", False),
        ("Newchannel PJSIP/1001-00000001", True),  # being dialled
        ("DialBegin PJSIP/trunk-00000000", True),
        ("DialEnd PJSIP/trunk-00000000", True),  # answered, talking
        ("Hangup PJSIP/trunk-00000000", True),  # caller gone, agent leg not yet
        ("Hangup PJSIP/1001-00000001", False),
    ]
    assert not model.agent_busy("trunk")


def test_call_for_channel_during_the_call():
    checks: dict[str, object] = {}

    def watch(model: CallModel, message: dict) -> None:
        if message.get("Event") == "BridgeEnter" and message["Channel"].startswith("PJSIP/trunk"):
            checks["agent"] = model.call_for_channel("hotline-1795237409.1")
            checks["caller"] = model.call_for_channel("hotline-1795237408.0")
            checks["phase"] = model.calls[CALL_1].phase
            checks["bridge"] = set(model.bridges["dc5fc031-f998-45cd-b0da-4fa4e8cc9698"].channels)
            agent_channel = model.channels["hotline-1795237409.1"]
            checks["agent_leg"] = (
                agent_channel.endpoint,
                agent_channel.state,
                agent_channel.answered_at,
                agent_channel.bridge_id,
            )

    replay("normal_call", each=watch)
    assert checks["agent"] is checks["caller"] is not None
    assert checks["phase"] is P.CONNECTED
    assert checks["bridge"] == {"hotline-1795237408.0", "hotline-1795237409.1"}
    assert checks["agent_leg"] == (
        "1001",
        "Up",
        approx(1795237410.924974),  # answered_at: the leg's Newstate Up
        "dc5fc031-f998-45cd-b0da-4fa4e8cc9698",
    )


# -- abandon: 96181, caller hangs up while waiting ----------------------------


def test_abandon():
    model, changes = replay("abandon")
    call = only_call(model)
    assert call.line == "96181"  # from the DID, confirmed by HotlineEnqueue
    assert call.dialled == "96181"
    assert (call.caller_number, call.caller_name) == ("13900139000", "李四")
    assert phases(call) == [P.ARRIVED, P.QUEUED, P.ENDED]
    assert call.abandoned is True
    assert call.answered_at is None and call.ringing_at is None and call.agent is None
    assert call.talk_s is None
    # wait = caller's Hangup 1795237419.990706 - HotlineEnqueue 1795237417.483065
    assert call.wait_s == approx(2.507641)
    assert changes[-1] == CallEnded(
        "hotline-1795237416.0",
        approx(1795237419.990706),
        abandoned=True,
        wait_s=approx(2.507641),
        talk_s=None,
        cause="Normal Clearing",
    )
    assert [type(c) for c in changes] == [CallArrived, CallQueued, CallEnded]


# -- agent_no_answer: 1002 rings out, 1001 answers and hangs up first ---------

CALL_3 = "hotline-1795237422.0"


def test_agent_no_answer_changes():
    model, changes = replay("agent_no_answer")
    assert changes == [
        CallArrived(
            CALL_3,
            approx(1795237422.526545),
            line="12345",
            caller_number="13700137000",
            caller_name="王五",
            dialled="12345",
        ),
        CallQueued(
            CALL_3, approx(1795237423.027944), line="12345", queue="12345-general", requeued=False
        ),
        AgentRinging(CALL_3, approx(1795237423.029499), agent="1002"),
        AgentNoAnswer(
            CALL_3,
            approx(1795237427.029870),
            agent="1002",
            dial_status="NOANSWER",
            rang_s=approx(4.000371),
        ),
        CallQueued(
            CALL_3, approx(1795237427.029870), line="12345", queue="12345-general", requeued=True
        ),
        AgentRinging(CALL_3, approx(1795237427.032240), agent="1001"),
        # wait = DialEnd ANSWER 1795237428.036498 - first HotlineEnqueue 1795237423.027944
        CallAnswered(CALL_3, approx(1795237428.036498), agent="1001", wait_s=approx(5.008554)),
        # 1001 leaves the bridge while the caller is still in it
        AgentLeft(CALL_3, approx(1795237430.046458), agent="1001"),
        # talk = 1001's BridgeLeave 1795237430.046458 - DialEnd ANSWER 1795237428.036498
        CallEnded(
            CALL_3,
            approx(1795237430.929322),
            abandoned=False,
            wait_s=approx(5.008554),
            talk_s=approx(2.009960),
            cause="Normal Clearing",
        ),
    ]


def test_agent_no_answer_summary():
    model, _ = replay("agent_no_answer")
    call = only_call(model)
    assert phases(call) == [
        P.ARRIVED,
        P.QUEUED,
        P.RINGING,
        P.QUEUED,
        P.RINGING,
        P.CONNECTED,
        P.AFTER_CALL,
        P.ENDED,
    ]
    assert call.agents_tried == ["1002", "1001"]
    assert call.no_answers == ["1002"]
    assert call.queued_at == approx(1795237423.027944)  # the FIRST entry, not the requeue
    assert call.ringing_at == approx(1795237423.029499)  # the first ring (1002)
    assert call.answered_at == approx(1795237428.036498)
    assert call.talk_ended_at == approx(1795237430.046458)
    assert call.agent == "1001"
    assert call.abandoned is False
    assert call.wait_s == approx(5.008554)
    assert call.talk_s == approx(2.009960)


def test_agent_no_answer_busy_flags():
    seen: list[tuple[str, bool, bool]] = []

    def watch(model: CallModel, message: dict) -> None:
        if message.get("Event") in ("Newchannel", "Hangup"):
            seen.append((message["Channel"], model.agent_busy("1001"), model.agent_busy("1002")))

    replay("agent_no_answer", each=watch)
    assert seen == [
        ("PJSIP/trunk-00000000", False, False),
        ("PJSIP/1002-00000001", False, True),
        ("PJSIP/1002-00000001", False, False),  # the unanswered leg hung up
        ("PJSIP/1001-00000002", True, False),
        ("PJSIP/1001-00000002", False, False),  # 1001 hung up first
        ("PJSIP/trunk-00000000", False, False),
    ]


# -- transfer: 96181, 1001 answers, blind transfer to 1002 ---------------------

CALL_4 = "hotline-1795237433.0"


def test_transfer_changes():
    model, changes = replay("transfer")
    assert changes == [
        CallArrived(
            CALL_4,
            approx(1795237433.466056),
            line="96181",
            caller_number="13600136000",
            caller_name="赵六",
            dialled="96181",
        ),
        CallQueued(
            CALL_4, approx(1795237433.967947), line="96181", queue="96181-general", requeued=False
        ),
        AgentRinging(CALL_4, approx(1795237433.969410), agent="1001"),
        # wait = DialEnd ANSWER (1001) 1795237435.353860 - HotlineEnqueue 1795237433.967947
        CallAnswered(CALL_4, approx(1795237435.353860), agent="1001", wait_s=approx(1.385913)),
        CallTransferred(
            CALL_4, approx(1795237436.856334), from_agent="1001", target="1002", kind="blind"
        ),
        # 1001's leg left the bridge without hanging up (the transfer took it
        # away): it is released at its Hangup, not at its BridgeLeave.
        AgentLeft(CALL_4, approx(1795237436.856802), agent="1001"),
        AgentRinging(CALL_4, approx(1795237436.857348), agent="1002"),
        AgentConnected(CALL_4, approx(1795237437.869448), agent="1002"),
        # talk = caller's BridgeLeave (1002's bridge) 1795237445.473348 - first answer
        CallEnded(
            CALL_4,
            approx(1795237445.474553),
            abandoned=False,
            wait_s=approx(1.385913),
            talk_s=approx(10.119488),
            cause="Normal Clearing",
        ),
    ]


def test_transfer_summary():
    model, _ = replay("transfer")
    call = only_call(model)
    assert phases(call) == [
        P.ARRIVED,
        P.QUEUED,
        P.RINGING,
        P.CONNECTED,
        P.RINGING,
        P.CONNECTED,
        P.ENDED,
    ]
    assert call.line == "96181" and call.queue == "96181-general"
    assert call.transfers == [("1001", "1002")]
    assert call.agent == "1002"
    assert call.agents_tried == ["1001", "1002"]
    assert call.no_answers == []
    assert call.answered_at == approx(1795237435.353860)  # the FIRST answer (1001)
    assert call.talk_s == approx(10.119488)
    assert call.abandoned is False
    assert model.channels == {} and model.bridges == {}


def test_transfer_stays_connected_between_agents():
    during: list[CallPhase] = []

    def watch(model: CallModel, message: dict) -> None:
        if message.get("Event") == "BridgeLeave" and message["Channel"].startswith("PJSIP/1001"):
            during.append(model.calls[CALL_4].phase)

    replay("transfer", each=watch)
    # 1001 left after transferring: not the survey (AFTER_CALL), the caller is moving on.
    assert during == [P.CONNECTED]


def test_replay_is_deterministic():
    first = replay("transfer")[1]
    second = replay("transfer")[1]
    assert first == second


# -- hand-written events: odd input -------------------------------------------


def channel(
    name: str,
    uniqueid: str,
    *,
    linkedid: str | None = None,
    state: str = "Up",
    context: str = "hotline-agent",
    exten: str = "s",
    number: str = "",
    cid_name: str = "",
    prefix: str = "",
) -> dict[str, str]:
    fields = {
        "Channel": name,
        "ChannelStateDesc": state,
        "CallerIDNum": number,
        "CallerIDName": cid_name,
        "Context": context,
        "Exten": exten,
        "Uniqueid": uniqueid,
        "Linkedid": linkedid or uniqueid,
    }
    return {prefix + key: value for key, value in fields.items()}


def event(name: str, at: float, *parts: dict[str, str], **headers: str) -> dict[str, str]:
    message = {"Event": name, "Timestamp": f"{at:.6f}"}
    for part in parts:
        message.update(part)
    message.update(headers)
    return message


TRUNK = channel(
    "PJSIP/trunk-00000010",
    "c1",
    state="Ring",
    context="hotline-inbound",
    exten="12345",
    number="13800000001",
    cid_name="测试",
)
AGENT = channel("PJSIP/1001-00000011", "a1", linkedid="c1", state="Down")


def arrived_and_queued(model: CallModel, *, start: float = 100.0) -> list[CallChange]:
    return model.apply(event("Newchannel", start, TRUNK)) + model.apply(
        event(
            "UserEvent",
            start + 1,
            TRUNK,
            UserEvent="HotlineEnqueue",
            Line="12345",
            Queue="12345-general",
        )
    )


def test_odd_input_never_raises_and_changes_nothing():
    model = CallModel(lines=LINES)
    assert len(arrived_and_queued(model)) == 2
    before = (dict(model.channels), dict(model.calls), model.calls["c1"].phase)
    odd: list[object] = [
        {"Event": "Newchannel", "Timestamp": "103.0", "Channel": "PJSIP/trunk-00000012"},
        {"Event": "NoSuchEvent", "Timestamp": "103.0", "Uniqueid": "c1"},
        {"Response": "Error", "Message": "Permission denied"},
        event("Hangup", 103.0, channel("PJSIP/1009-00000099", "ghost"), Cause="16"),
        event(
            "DialEnd",
            103.0,
            TRUNK,
            channel("PJSIP/1009-00000099", "ghost", prefix="Dest"),
            DialStatus="ANSWER",
        ),
        event("BridgeLeave", 103.0, channel("PJSIP/1009-00000099", "ghost"), BridgeUniqueid="nope"),
        event("BridgeDestroy", 103.0, BridgeUniqueid="nope"),
        event("BlindTransfer", 103.0, Result="Success", Extension="1002"),
        event(
            "UserEvent",
            103.0,
            channel("PJSIP/1009-00000099", "ghost"),
            UserEvent="HotlineEnqueue",
            Line="12345",
        ),
        {"Event": "Hangup"},  # no time, no Uniqueid
        {"Event": ["Hangup", "Hangup"], "Timestamp": "x"},  # repeated identity header
        {},
        None,
        42,
    ]
    for message in odd:
        assert model.apply(message) == []  # type: ignore[arg-type]
    assert (dict(model.channels), dict(model.calls), model.calls["c1"].phase) == before
    assert list(model.ended) == []
    # Skipped as malformed: the Newchannel and the Hangup without Uniqueid,
    # the repeated Event header, None and 42 (the rest are valid, or no event).
    assert model.skipped == 5


def test_duplicate_newchannel_is_one_call():
    model = CallModel(lines=LINES)
    first = model.apply(event("Newchannel", 100.0, TRUNK))
    again = model.apply(event("Newchannel", 100.5, TRUNK))
    assert [type(c) for c in first] == [CallArrived] and again == []
    assert list(model.calls) == ["c1"] and list(model.channels) == ["c1"]
    assert model.calls["c1"].arrived_at == 100.0


def test_missing_timestamp_uses_receive_time_or_last_event():
    model = CallModel(lines=LINES)
    model.apply(event("Newchannel", 100.0, TRUNK))
    untimed = {
        "Event": "UserEvent",
        **TRUNK,
        "UserEvent": "HotlineEnqueue",
        "Line": "12345",
        "Queue": "q",
    }
    [queued] = model.apply(untimed, received_at=101.5)
    assert queued.at == 101.5
    model2 = CallModel(lines=LINES)
    model2.apply(event("Newchannel", 100.0, TRUNK))
    [queued2] = model2.apply(untimed)
    assert queued2.at == 100.0  # the last event's time: replay stays deterministic


def test_unknown_did_has_no_line_until_enqueue_says():
    model = CallModel(lines={})
    [arrived] = model.apply(event("Newchannel", 1.0, TRUNK))
    assert arrived.line is None
    [queued] = model.apply(
        event(
            "UserEvent", 2.0, TRUNK, UserEvent="HotlineEnqueue", Line="12345", Queue="12345-general"
        )
    )
    assert queued.line == "12345" and model.calls["c1"].line == "12345"


def test_internal_and_outbound_channels_make_no_call():
    model = CallModel(lines=LINES)
    # Agent 1001 calls agent 1002: tracked, busy, but not a citizen's call.
    caller = channel("PJSIP/1001-00000020", "i1", state="Ring", exten="1002")
    callee = channel("PJSIP/1002-00000021", "i2", linkedid="i1", state="Down")
    assert model.apply(event("Newchannel", 1.0, caller)) == []
    assert model.apply(event("Newchannel", 1.1, callee)) == []
    assert (
        model.apply(event("DialBegin", 1.2, caller, {"Dest" + k: v for k, v in callee.items()}))
        == []
    )
    # A dial-out through the trunk (created Down) is not an inbound call either.
    outbound = channel("PJSIP/trunk-00000022", "o1", state="Down", context="hotline-out")
    assert model.apply(event("Newchannel", 1.3, outbound)) == []
    assert model.calls == {}
    assert set(model.channels) == {"i1", "i2", "o1"}
    assert model.agent_busy("1001") and model.agent_busy("1002")
    model.apply(event("Hangup", 2.0, callee, Cause="16"))
    assert not model.agent_busy("1002") and model.agent_busy("1001")


def ring_agent(model: CallModel, at: float) -> None:
    model.apply(event("Newchannel", at, AGENT))
    model.apply(event("DialBegin", at, TRUNK, {"Dest" + k: v for k, v in AGENT.items()}))


def test_caller_hangs_up_while_ringing_is_abandoned_not_rona():
    model = CallModel(lines=LINES)
    arrived_and_queued(model)
    ring_agent(model, 103.0)
    assert model.calls["c1"].phase is P.RINGING
    changes = model.apply(event("HangupRequest", 105.0, TRUNK, Cause="16"))
    changes += model.apply(
        event(
            "DialEnd",
            105.001,
            TRUNK,
            {"Dest" + k: v for k, v in AGENT.items()},
            DialStatus="CANCEL",
        )
    )
    changes += model.apply(event("Hangup", 105.002, AGENT, Cause="16"))
    changes += model.apply(
        event("Hangup", 105.003, TRUNK, Cause="16", **{"Cause-txt": "Normal Clearing"})
    )
    assert changes == [
        CallEnded(
            "c1",
            105.003,
            abandoned=True,
            wait_s=approx(4.003),
            talk_s=None,
            cause="Normal Clearing",
        )
    ]
    call = model.ended[-1]
    assert call.no_answers == [] and call.agents_tried == ["1001"]
    assert phases(call) == [P.ARRIVED, P.QUEUED, P.RINGING, P.ENDED]


def test_busy_agent_is_a_no_answer_and_requeues():
    model = CallModel(lines=LINES)
    arrived_and_queued(model)
    ring_agent(model, 102.0)
    changes = model.apply(
        event("DialEnd", 102.2, TRUNK, {"Dest" + k: v for k, v in AGENT.items()}, DialStatus="BUSY")
    )
    assert changes == [
        AgentNoAnswer("c1", 102.2, agent="1001", dial_status="BUSY", rang_s=approx(0.2)),
        CallQueued("c1", 102.2, line="12345", queue="12345-general", requeued=True),
    ]
    assert model.calls["c1"].queued_at == 101.0


def test_attended_transfer():
    """1001 consults 1002 on a second leg and completes: the caller ends up
    with 1002 (bridge merge first, then the AttendedTransfer event)."""
    model = CallModel(lines=LINES)
    arrived_and_queued(model)
    ring_agent(model, 102.0)
    dest = {"Dest" + k: v for k, v in AGENT.items()}
    model.apply(event("DialEnd", 103.0, TRUNK, dest, DialStatus="ANSWER"))
    model.apply(event("BridgeEnter", 103.0, AGENT, BridgeUniqueid="b1"))
    model.apply(event("BridgeEnter", 103.0, TRUNK, BridgeUniqueid="b1"))
    # The consultation: a new call from 1001's phone to 1002, Linkedid of its own.
    consult = channel("PJSIP/1001-00000030", "k1", state="Ring", exten="1002")
    target = channel("PJSIP/1002-00000031", "k2", linkedid="k1", state="Down")
    for message in (
        event("Newchannel", 110.0, consult),
        event("Newchannel", 110.1, target),
        event("DialBegin", 110.1, consult, {"Dest" + k: v for k, v in target.items()}),
        event("BridgeEnter", 112.0, target, BridgeUniqueid="b2"),
        event("BridgeEnter", 112.0, consult, BridgeUniqueid="b2"),
    ):
        assert model.apply(message) == []
    assert model.call_for_channel("k2") is None
    changes: list[CallChange] = []
    for message in (
        event("BridgeLeave", 120.0, consult, BridgeUniqueid="b2"),
        event("BridgeLeave", 120.0, TRUNK, BridgeUniqueid="b1"),
        event("BridgeEnter", 120.0, TRUNK, BridgeUniqueid="b2"),
        event(
            "AttendedTransfer",
            120.001,
            {"OrigTransferer" + k: v for k, v in AGENT.items()},
            {"SecondTransferer" + k: v for k, v in consult.items()},
            {"Transferee" + k: v for k, v in TRUNK.items()},
            {"TransferTarget" + k: v for k, v in target.items()},
            Result="Success",
            DestType="Bridge",
            DestBridgeUniqueid="b2",
        ),
        event("BridgeLeave", 120.002, AGENT, BridgeUniqueid="b1"),
        event("Hangup", 120.003, AGENT, Cause="16"),
        event("Hangup", 120.004, consult, Cause="16"),
    ):
        changes += model.apply(message)
    assert changes == [
        AgentConnected("c1", 120.0, agent="1002"),
        CallTransferred("c1", 120.001, from_agent="1001", target="1002", kind="attended"),
        AgentLeft("c1", 120.003, agent="1001"),
    ]
    call = model.calls["c1"]
    assert call.phase is P.CONNECTED and call.agent == "1002"
    assert call.answered_at == 103.0
    assert model.call_for_channel("k2") is call
    # 1002 hangs up first (its phone's BYE: HangupRequest, then it leaves the
    # bridge): now the caller is alone, in the survey.
    changes = model.apply(event("HangupRequest", 130.0, target, Cause="16"))
    changes += model.apply(event("BridgeLeave", 130.0, target, BridgeUniqueid="b2"))
    assert changes == [AgentLeft("c1", 130.0, agent="1002")]
    assert call.phase is P.AFTER_CALL
    assert call.talk_s == approx(27.0)


def test_ended_calls_are_bounded():
    model = CallModel(lines=LINES, ended_kept=3)
    for n in range(5):
        trunk = channel(f"PJSIP/trunk-{n:08x}", f"c{n}", state="Ring", exten="12345")
        model.apply(event("Newchannel", float(n), trunk))
        model.apply(event("Hangup", n + 0.5, trunk, Cause="16"))
    assert [call.call_id for call in model.ended] == ["c2", "c3", "c4"]
    assert all(not call.abandoned for call in model.ended)  # never queued: not offered


# -- resync from CoreShowChannels --------------------------------------------


def show(
    name: str,
    uniqueid: str,
    *,
    linkedid: str | None = None,
    context: str,
    exten: str = "s",
    app: str = "",
    data: str = "",
    bridge: str = "",
    duration: str,
    state: str = "Up",
    number: str = "",
    cid_name: str = "",
) -> dict[str, str]:
    return {
        "Event": "CoreShowChannel",
        "ActionID": "resync-1",
        "Channel": name,
        "ChannelState": "6",
        "ChannelStateDesc": state,
        "CallerIDNum": number,
        "CallerIDName": cid_name,
        "ConnectedLineNum": "<unknown>",
        "ConnectedLineName": "<unknown>",
        "Language": "en",
        "AccountCode": "",
        "Context": context,
        "Exten": exten,
        "Priority": "3",
        "Uniqueid": uniqueid,
        "Linkedid": linkedid or uniqueid,
        "BridgeId": bridge,
        "Application": app,
        "ApplicationData": data,
        "Duration": duration,
    }


NOW = 2000.0
SNAPSHOT = [
    # A caller on hold, 12 s old.
    show(
        "PJSIP/trunk-00000040",
        "q1",
        context="hotline-hold",
        app="MusicOnHold",
        data="hotline,108",
        duration="00:00:12",
        number="13500135000",
        cid_name="钱七",
    ),
    # A caller talking with 1001: the caller's leg is 65 s old, 1001's 58 s.
    show(
        "PJSIP/trunk-00000041",
        "t1",
        context="hotline-connect",
        exten="1001",
        app="Dial",
        data="PJSIP/1001,15,g",
        bridge="br-1",
        duration="00:01:05",
        number="13400134000",
        cid_name="孙八",
    ),
    show(
        "PJSIP/1001-00000042",
        "t2",
        linkedid="t1",
        context="hotline-agent",
        app="AppDial",
        data="(Outgoing Line)",
        bridge="br-1",
        duration="00:00:58",
        number="1001",
    ),
]


def test_resync_adopts_and_loses():
    model = CallModel(lines=LINES)
    arrived_and_queued(model)  # call c1, which vanished while the link was down
    changes = model.resync(SNAPSHOT, now=NOW)
    assert [c for c in changes if c.call_id == "c1"] == [
        CallLost("c1", NOW, reason="lost during disconnect")
    ]
    lost = model.ended[-1]
    assert (lost.call_id, lost.phase, lost.hangup_cause) == (
        "c1",
        P.ENDED,
        "lost during disconnect",
    )
    assert "c1" not in model.channels

    queued = model.calls["q1"]
    assert queued.phase is P.QUEUED and queued.adopted
    assert queued.arrived_at == queued.queued_at == NOW - 12
    assert (queued.caller_number, queued.caller_name) == ("13500135000", "钱七")
    assert [c for c in changes if c.call_id == "q1"] == [
        CallArrived(
            "q1", NOW - 12, line=None, caller_number="13500135000", caller_name="钱七", dialled=""
        ),
        CallQueued("q1", NOW - 12, line=None, queue=None, requeued=False),
    ]

    talking = model.calls["t1"]
    assert talking.phase is P.CONNECTED
    assert talking.agent == "1001" and talking.agents_tried == ["1001"]
    assert talking.queued_at == NOW - 65
    assert talking.answered_at == NOW - 58
    assert talking.wait_s == 7.0
    assert [c for c in changes if c.call_id == "t1"] == [
        CallArrived(
            "t1", NOW - 65, line=None, caller_number="13400134000", caller_name="孙八", dialled=""
        ),
        CallQueued("t1", NOW - 65, line=None, queue=None, requeued=False),
        CallAnswered("t1", NOW - 58, agent="1001", wait_s=7.0),
    ]
    assert model.call_for_channel("t2") is talking
    assert model.bridges["br-1"].channels == {"t1", "t2"}
    assert model.agent_busy("1001")

    # The model keeps working on live events after the resync (the agent hangs up).
    agent_leg = channel("PJSIP/1001-00000042", "t2", linkedid="t1")
    later = model.apply(event("HangupRequest", NOW + 5, agent_leg, Cause="16"))
    later += model.apply(event("BridgeLeave", NOW + 5, agent_leg, BridgeUniqueid="br-1"))
    assert later == [AgentLeft("t1", NOW + 5, agent="1001")]
    assert talking.phase is P.AFTER_CALL


def test_resync_of_an_unchanged_model_reports_nothing():
    model = CallModel(lines=LINES)
    model.resync(SNAPSHOT, now=NOW)
    assert model.resync(SNAPSHOT, now=NOW + 1) == []
    assert {c: call.phase for c, call in model.calls.items()} == {"t1": P.CONNECTED, "q1": P.QUEUED}


def test_resync_updates_kept_calls():
    """A call ringing 1001 when the link dropped was answered meanwhile; another
    was talking to 1002, who has hung up: the caller is in the survey."""
    model = CallModel(lines=LINES)
    arrived_and_queued(model)
    ring_agent(model, 102.0)
    other = channel(
        "PJSIP/trunk-00000050", "c2", state="Ring", context="hotline-inbound", exten="96181"
    )
    other_agent = channel("PJSIP/1002-00000051", "a2", linkedid="c2", state="Down")
    model.apply(event("Newchannel", 110.0, other))
    model.apply(
        event(
            "UserEvent",
            111.0,
            other,
            UserEvent="HotlineEnqueue",
            Line="96181",
            Queue="96181-general",
        )
    )
    model.apply(event("Newchannel", 112.0, other_agent))
    model.apply(event("DialBegin", 112.0, other, {"Dest" + k: v for k, v in other_agent.items()}))
    model.apply(
        event(
            "DialEnd",
            113.0,
            other,
            {"Dest" + k: v for k, v in other_agent.items()},
            DialStatus="ANSWER",
        )
    )
    assert model.calls["c2"].phase is P.CONNECTED

    snapshot = [
        show(
            "PJSIP/trunk-00000010",
            "c1",
            context="hotline-connect",
            exten="1001",
            app="Dial",
            bridge="br-9",
            duration="00:00:30",
        ),
        show(
            "PJSIP/1001-00000011",
            "a1",
            linkedid="c1",
            context="hotline-agent",
            app="AppDial",
            bridge="br-9",
            duration="00:00:28",
        ),
        show(
            "PJSIP/trunk-00000050",
            "c2",
            context="hotline-after-call",
            app="Playback",
            data="vm-goodbye",
            duration="00:00:20",
        ),
    ]
    changes = model.resync(snapshot, now=130.0)
    assert changes == [
        CallAnswered("c1", 130.0, agent="1001", wait_s=29.0),  # "now": never flatters the KPI
        AgentLeft("c2", 130.0, agent="1002"),
    ]
    assert model.calls["c1"].phase is P.CONNECTED
    assert model.calls["c2"].phase is P.AFTER_CALL
    assert model.calls["c2"].talk_s == 17.0  # answered 113, agent gone by 130
    assert not model.agent_busy("1002")


def test_resync_skips_malformed_items():
    model = CallModel(lines=LINES)
    changes = model.resync(
        [
            {"Event": "CoreShowChannel", "Channel": "PJSIP/trunk-1"},
            {"Event": "CoreShowChannelsComplete", "ListItems": "1"},
            *SNAPSHOT[:1],
        ],
        now=NOW,
    )
    assert [type(c) for c in changes] == [CallArrived, CallQueued]


def test_a_moved_agent_leg_stays_on_the_call_and_its_consultation_is_no_offer():
    """Call control moves legs without hanging them up: the agent is still on
    the call until its leg hangs up, and what its leg dials (a consultation)
    is neither a ring nor a no-answer of the call."""
    model = CallModel(lines=LINES)
    arrived_and_queued(model)
    ring_agent(model, 102.0)
    dest = {"Dest" + k: v for k, v in AGENT.items()}
    model.apply(event("DialEnd", 103.0, TRUNK, dest, DialStatus="ANSWER"))
    model.apply(event("BridgeEnter", 103.0, AGENT, BridgeUniqueid="b1"))
    model.apply(event("BridgeEnter", 103.0, TRUNK, BridgeUniqueid="b1"))
    moves = [
        event("BridgeLeave", 110.0, TRUNK, BridgeUniqueid="b1"),
        event("BridgeLeave", 110.0, AGENT, BridgeUniqueid="b1"),
        event("BridgeEnter", 110.1, TRUNK, BridgeUniqueid="conf"),
    ]
    target = channel("PJSIP/1002-00000009", "k9", linkedid="c1", state="Down")
    consult = [
        event("Newchannel", 111.0, target),
        event("DialBegin", 111.0, AGENT, {"Dest" + k: v for k, v in target.items()}),
        event(
            "DialEnd",
            115.0,
            AGENT,
            {"Dest" + k: v for k, v in target.items()},
            DialStatus="NOANSWER",
        ),
        event("Hangup", 115.1, target, Cause="16"),
        event("BridgeEnter", 115.2, AGENT, BridgeUniqueid="conf"),
    ]
    changes = [c for m in moves + consult for c in model.apply(m)]
    assert changes == []
    call = model.calls["c1"]
    assert call.phase is P.CONNECTED and call.connected_legs == {AGENT["Uniqueid"]: "1001"}
    assert call.no_answers == [] and call.consult_legs == {}
    assert call.talk_ended_at is None  # together again: still talking
    changes = model.apply(event("HangupRequest", 120.0, AGENT, Cause="16"))
    changes += model.apply(event("BridgeLeave", 120.0, AGENT, BridgeUniqueid="conf"))
    assert changes == [AgentLeft("c1", 120.0, agent="1001")]
    assert call.talk_s == approx(17.0)


def test_ivr_choices_reach_the_call_and_its_screen_pop():
    from cti.screenpop.core import PastOrder, screen_pop

    model = CallModel(lines=LINES)
    model.apply(event("Newchannel", 100.0, TRUNK))
    model.apply(
        event(
            "UserEvent",
            101.0,
            TRUNK,
            UserEvent="HotlineEnqueue",
            Line="12345",
            Queue="12345-general",
            Ivr="社保医保|养老保险",
        )
    )
    call = model.calls["c1"]
    assert call.ivr_choices == ("社保医保", "养老保险")
    order = PastOrder("WO-1", None, "ACCEPTED", "CONSULT", "养老金查询", 50.0)
    frame = screen_pop(
        call=call,
        agent="1001",
        rung_at=104.0,
        history=[],
        repeat_agent=None,
        unmasked=False,
        orders=[order],
    )
    assert frame["ivr"] == ["社保医保", "养老保险"]
    assert frame["waited_s"] == 3.0
    assert frame["repeat_caller"] is True  # an earlier work order makes a repeat caller
    assert frame["work_orders"][0]["title"] == "养老金查询"
    assert frame["transferred_from"] is None
    model.transfer_started("c1", from_agent="1001", target="1002", kind="blind", at=105.0)
    frame = screen_pop(
        call=call, agent="1002", rung_at=106.0, history=[], repeat_agent=None, unmasked=False
    )
    assert frame["transferred_from"] == "1001"


def test_resync_keeps_an_agent_leg_on_hold_on_its_call():
    """Found after a restart: the caller alone in the call's conference, the
    agent's leg waiting apart in hotline-agent-hold. The agent is still on
    the call (answered when its leg was created), not gone."""
    snapshot = [
        show(
            "PJSIP/trunk-00000050",
            "h1",
            context="hotline-conference",
            exten="caller",
            app="ConfBridge",
            data="h1",
            bridge="conf-h1",
            duration="00:02:00",
            number="13300133000",
        ),
        show(
            "PJSIP/1002-00000051",
            "h2",
            linkedid="h1",
            context="hotline-agent-hold",
            app="Wait",
            data="3600",
            duration="00:01:50",
            number="1002",
        ),
    ]
    model = CallModel(lines=LINES)
    changes = model.resync(snapshot, now=NOW)
    call = model.calls["h1"]
    assert call.phase is P.CONNECTED and call.connected_legs == {"h2": "1002"}
    assert [type(c).__name__ for c in changes] == ["CallArrived", "CallQueued", "CallAnswered"]
    assert changes[-1].agent == "1002" and changes[-1].at == NOW - 110


def dial_marker(kind: str, at: float, **headers: str) -> dict[str, str]:
    return event("UserEvent", at, TRUNK, UserEvent=kind, Agent="1001", **headers)


def test_dial_that_never_made_a_leg_is_reported_by_the_dialplan():
    """An unregistered phone (or no RTP port): Dial fails before any channel,
    so there is no DialBegin/DialEnd; HotlineDialResult is the only word."""
    model = CallModel(lines=LINES)
    arrived_and_queued(model)
    assert model.apply(dial_marker("HotlineConnect", 102.0, Line="12345")) == []
    changes = model.apply(dial_marker("HotlineDialResult", 102.01, DialStatus="CHANUNAVAIL"))
    assert changes == [AgentNoAnswer("c1", 102.01, agent="1001", dial_status="CHANUNAVAIL")]
    call = model.calls["c1"]
    assert call.phase is P.QUEUED and call.no_answers == ["1001"] and call.dial_pending == {}
    # A second result for the same dial says nothing new.
    assert model.apply(dial_marker("HotlineDialResult", 102.02, DialStatus="CHANUNAVAIL")) == []


def test_dial_result_after_a_dial_end_is_not_reported_twice():
    model = CallModel(lines=LINES)
    arrived_and_queued(model)
    model.apply(dial_marker("HotlineConnect", 102.0, Line="12345"))
    ring_agent(model, 102.001)
    changes = model.apply(
        event(
            "DialEnd",
            117.001,
            TRUNK,
            {"Dest" + k: v for k, v in AGENT.items()},
            DialStatus="NOANSWER",
        )
    )
    assert changes[0] == AgentNoAnswer(
        "c1", 117.001, agent="1001", dial_status="NOANSWER", rang_s=approx(15.0)
    )
    assert model.apply(dial_marker("HotlineDialResult", 117.002, DialStatus="NOANSWER")) == []


def test_answered_or_cancelled_dial_result_reports_nothing():
    model = CallModel(lines=LINES)
    arrived_and_queued(model)
    for status in ("ANSWER", "CANCEL", ""):
        model.apply(dial_marker("HotlineConnect", 102.0, Line="12345"))
        assert model.apply(dial_marker("HotlineDialResult", 102.1, DialStatus=status)) == []


def test_recorded_dial_failures_unregistered_then_busy_then_answered():
    """dial_failures.ami: the engine's Redirects to 1003 (never registered: Dial
    fails before any channel, so only HotlineDialResult says CHANUNAVAIL), to
    1004 (a phone answering 486: DialBegin, DialEnd BUSY) and to 1001 (answers)."""
    model, changes = replay("dial_failures")
    failed = [c for c in changes if isinstance(c, AgentNoAnswer)]
    assert [(c.agent, c.dial_status) for c in failed] == [("1003", "CHANUNAVAIL"), ("1004", "BUSY")]
    assert failed[0].rang_s is None
    assert failed[1].rang_s is not None and 0 < failed[1].rang_s < 0.5  # refused at once
    assert [c.requeued for c in changes if isinstance(c, CallQueued)] == [False, True]
    answered = [c for c in changes if isinstance(c, CallAnswered)]
    assert [a.agent for a in answered] == ["1001"]
    call = only_call(model)
    assert call.no_answers == ["1003", "1004"] and call.agents_tried == ["1004", "1001"]
    assert call.dial_pending == {}


def test_a_caller_app_queue_serves_is_queued_as_app_queues():
    model = CallModel(lines=LINES)
    model.apply(event("Newchannel", 100.0, TRUNK))
    changes = model.apply(
        event(
            "UserEvent",
            100.5,
            TRUNK,
            UserEvent="HotlineAppQueueEnqueue",
            Line="12345",
            Queue="12345-general",
        )
    )
    assert changes == [
        CallQueued("c1", 100.5, "12345", "12345-general", requeued=False, app_queue=True)
    ]
    call = model.calls["c1"]
    assert call.routed_by == "app_queue" and call.queued_at == 100.5
