"""The pure call-control core: each desktop command's AMI actions and the
refusals that name what is wrong."""

from __future__ import annotations

import pytest

from cti.control.core import CallControl, ControlError, Target, TargetKind

CALLER = "PJSIP/trunk-00000000"
AGENT = "PJSIP/1001-00000001"


def control() -> CallControl:
    return CallControl(
        agents={"1001", "1002"},
        queues={"12345-general"},
        agent_mobiles={"1001": "13900139000"},
        city_center_number="12345000",
        external_number_pattern=r"1[3-9]\d{9}|0[1-9]\d{8,10}|[1-9]\d{4,7}",
        transfer_ring_s=30,
    )


def test_first_hold_moves_both_legs_then_resume_brings_the_agent_back() -> None:
    c = control()
    assert c.hold("c1", CALLER, AGENT) == [
        {
            "Action": "Redirect",
            "Channel": CALLER,
            "Context": "hotline-conference",
            "Exten": "caller",
            "Priority": "1",
            "ExtraChannel": AGENT,
            "ExtraContext": "hotline-agent-hold",
            "ExtraExten": "s",
            "ExtraPriority": "1",
        }
    ]
    with pytest.raises(ControlError, match="already on hold"):
        c.hold("c1", CALLER, AGENT)
    assert c.resume("c1", AGENT) == [
        {
            "Action": "Redirect",
            "Channel": AGENT,
            "Context": "hotline-conference",
            "Exten": "party",
            "Priority": "1",
        }
    ]
    # Second hold: the caller is already in the conference; only the agent moves.
    assert [a["Channel"] for a in c.hold("c1", CALLER, AGENT)] == [AGENT]
    with pytest.raises(ControlError, match="not on hold"):
        c.resume("c2", AGENT)


def test_targets_resolve_or_name_the_problem() -> None:
    c = control()
    mobile = c.resolve(Target(TargetKind.MOBILE), acting_agent="1001")
    assert (mobile.label, mobile.dial) == ("13900139000", "PJSIP/13900139000@trunk")
    city = c.resolve(Target(TargetKind.CITY), acting_agent="1001")
    assert city.dial == "PJSIP/12345000@trunk"
    assert c.resolve(Target(TargetKind.AGENT, "1002"), acting_agent="1001").dial == "PJSIP/1002"
    with pytest.raises(ControlError, match="no mobile") as no_mobile:
        c.resolve(Target(TargetKind.MOBILE), acting_agent="1002")
    assert no_mobile.value.field == "target.value"
    for bad in ("00882123456", "9001", "1380013800", "+8613800138000", "12345; Dial"):
        with pytest.raises(ControlError) as refused:
            c.resolve(Target(TargetKind.EXTERNAL, bad), acting_agent="1001")
        assert refused.value.status == 400
    with pytest.raises(ControlError, match="oneself"):
        c.resolve(Target(TargetKind.AGENT, "1001"), acting_agent="1001")
    with pytest.raises(ControlError, match="no queue"):
        c.resolve(Target(TargetKind.QUEUE, "x"), acting_agent="1001")


def test_blind_transfers() -> None:
    c = control()
    queue = c.resolve(Target(TargetKind.QUEUE, "12345-general"), acting_agent="1001")
    assert c.blind_transfer("c1", CALLER, AGENT, queue) == [
        {
            "Action": "Setvar",
            "Channel": CALLER,
            "Variable": "HOTLINE_QUEUE",
            "Value": "12345-general",
        },
        {
            "Action": "Redirect",
            "Channel": CALLER,
            "Context": "hotline-requeue",
            "Exten": "s",
            "Priority": "1",
        },
    ]
    # From hold, the agent's waiting leg is hung up explicitly.
    c.hold("c2", CALLER, AGENT)
    city = c.resolve(Target(TargetKind.CITY), acting_agent="1001")
    assert c.blind_transfer("c2", CALLER, AGENT, city) == [
        {
            "Action": "Redirect",
            "Channel": CALLER,
            "Context": "hotline-transfer-out",
            "Exten": "12345000",
            "Priority": "1",
        },
        {"Action": "Hangup", "Channel": AGENT, "Cause": "16"},
    ]
    assert "c2" not in c.calls


def test_consultation_blocks_other_moves_until_completed_or_cancelled() -> None:
    c = control()
    target = c.resolve(Target(TargetKind.AGENT, "1002"), acting_agent="1001")
    actions = c.consult("c1", CALLER, AGENT, target)
    assert actions[:2] == [
        {
            "Action": "Setvar",
            "Channel": AGENT,
            "Variable": "HOTLINE_CONSULT_DIAL",
            "Value": "PJSIP/1002",
        },
        {
            "Action": "Setvar",
            "Channel": AGENT,
            "Variable": "HOTLINE_CONSULT_TARGET",
            "Value": "1002",
        },
    ]
    assert (actions[2]["Context"], actions[2]["ExtraContext"]) == (
        "hotline-conference",
        "hotline-consult",
    )
    with pytest.raises(ControlError, match="consultation with 1002"):
        c.hold("c1", CALLER, AGENT)
    with pytest.raises(ControlError, match="not answered"):
        c.complete_consult("c1", AGENT, None)
    assert c.cancel_consult("c1", "PJSIP/1002-00000002") == [
        {"Action": "Hangup", "Channel": "PJSIP/1002-00000002", "Cause": "16"}
    ]
    c.consult("c1", CALLER, AGENT, target)
    assert c.complete_consult("c1", AGENT, "PJSIP/1002-00000003") == [
        {
            "Action": "Redirect",
            "Channel": "PJSIP/1002-00000003",
            "Context": "hotline-conference",
            "Exten": "party",
            "Priority": "1",
            "ExtraChannel": AGENT,
            "ExtraContext": "hotline-release",
            "ExtraExten": "s",
            "ExtraPriority": "1",
        }
    ]
    assert c.calls["c1"].consult is None and [p.label for p in c.calls["c1"].parties] == ["1002"]


def test_three_way_call_and_leaving_it() -> None:
    c = control()
    with pytest.raises(ControlError, match="no three-way call"):
        c.leave("c1", AGENT)
    dept = c.resolve(Target(TargetKind.EXTERNAL, "88990011"), acting_agent="1001")
    move, originate = c.add_party("c1", CALLER, AGENT, dept, channel_id="c1-party1")
    assert (move["Context"], move["Exten"], move["ExtraExten"]) == (
        "hotline-conference",
        "caller",
        "party",
    )
    assert originate == {
        "Action": "Originate",
        "Channel": "PJSIP/88990011@trunk",
        "Context": "hotline-conference",
        "Exten": "party",
        "Priority": "1",
        "Timeout": "30000",
        "ChannelId": "c1-party1",
        "Variable": "HOTLINE_CALL_ID=c1",
        "Async": "true",
    }
    assert c.leave("c1", AGENT) == [{"Action": "Hangup", "Channel": AGENT, "Cause": "16"}]


def test_a_three_way_party_who_does_not_answer_is_no_party() -> None:
    c = control()
    dept = c.resolve(Target(TargetKind.EXTERNAL, "88990011"), acting_agent="1001")
    c.add_party("c1", CALLER, AGENT, dept, channel_id="c1-party1")
    assert c.calls["c1"].as_dict()["ringing"] == ["88990011"]
    assert c.party_failed("unknown") is None
    assert c.party_failed("c1-party1") == ("c1", dept)
    assert c.calls["c1"].parties == [] and c.calls["c1"].ringing_parties == {}
    with pytest.raises(ControlError, match="no three-way call"):
        c.leave("c1", AGENT)
    c.add_party("c1", CALLER, AGENT, dept, channel_id="c1-party2")
    c.party_answered("c1-party2")
    assert [p.label for p in c.calls["c1"].parties] == ["88990011"]
    assert c.leave("c1", AGENT) == [{"Action": "Hangup", "Channel": AGENT, "Cause": "16"}]


def test_control_state_is_rebuilt_from_where_the_channels_are() -> None:
    c = control()
    assert c.adopt("c1", caller_context="hotline-hold", leg_contexts=[]) is None
    held = c.adopt("c2", caller_context="hotline-conference", leg_contexts=["hotline-agent-hold"])
    assert held is not None and held.in_conference and held.held and held.consult is None
    assert c.resume("c2", AGENT)[0]["Context"] == "hotline-conference"
    consulting = c.adopt(
        "c3", caller_context="hotline-conference", leg_contexts=["hotline-consult"]
    )
    assert consulting is not None and consulting.consult is not None
    with pytest.raises(ControlError, match="not answered"):
        c.complete_consult("c3", AGENT, None)  # the target is not known again
