"""The switch vocabulary: each AMI action builder's exact headers, and the
dialplan contexts the code names are the ones the dialplan defines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from common import ami_actions as ami
from common import contexts
from cti.config import EngineConfig
from cti.features import dialplan_fragments
from cti.stack.asterisk import AsteriskSettings, render_config

ROOT = Path(__file__).resolve().parents[2]
CALLER = "PJSIP/trunk-00000000"
AGENT = "PJSIP/1001-00000001"


def test_redirect() -> None:
    assert ami.redirect(CALLER, "hotline-connect", "1001") == {
        "Action": "Redirect",
        "Channel": CALLER,
        "Context": "hotline-connect",
        "Exten": "1001",
        "Priority": "1",
    }
    assert ami.redirect(CALLER, "hotline-hold", "s", priority=3)["Priority"] == "3"


def test_redirect_with_an_extra_channel_moves_both_legs() -> None:
    action = ami.redirect(
        CALLER,
        "hotline-conference",
        "caller",
        extra_channel=AGENT,
        extra_context="hotline-agent-hold",
        extra_exten="s",
    )
    assert action == {
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
    # Header order as sent on the wire.
    assert list(action)[:5] == ["Action", "Channel", "Context", "Exten", "Priority"]


def test_redirect_extra_channel_needs_its_destination() -> None:
    with pytest.raises(ValueError, match="extra_context"):
        ami.redirect(CALLER, "hotline-conference", "caller", extra_channel=AGENT)


def test_setvar() -> None:
    assert ami.setvar(CALLER, "HOTLINE_QUEUE", "12345-urgent") == {
        "Action": "Setvar",
        "Channel": CALLER,
        "Variable": "HOTLINE_QUEUE",
        "Value": "12345-urgent",
    }


def test_hangup_defaults_to_normal_clearing() -> None:
    assert ami.hangup(AGENT) == {"Action": "Hangup", "Channel": AGENT, "Cause": "16"}
    assert ami.hangup(AGENT, cause=17)["Cause"] == "17"


def test_originate_into_a_context_as_call_control_rings_a_third_party() -> None:
    action = ami.originate_context(
        "PJSIP/1002",
        "hotline-conference",
        "party",
        timeout_s=30,
        channel_id="party-1",
        variables={"HOTLINE_CALL_ID": "c1"},
    )
    assert action == {
        "Action": "Originate",
        "Channel": "PJSIP/1002",
        "Context": "hotline-conference",
        "Exten": "party",
        "Priority": "1",
        "Timeout": "30000",
        "ChannelId": "party-1",
        "Variable": "HOTLINE_CALL_ID=c1",
        "Async": "true",
    }


def test_originate_into_a_context_without_the_optional_headers() -> None:
    action = ami.originate_context(
        "PJSIP/1002", "hotline-conference", "party", timeout_s=1.5, variables={"A": "1", "B": "2"}
    )
    assert action == {
        "Action": "Originate",
        "Channel": "PJSIP/1002",
        "Context": "hotline-conference",
        "Exten": "party",
        "Priority": "1",
        "Timeout": "1500",
        "Variable": "A=1,B=2",
        "Async": "true",
    }


def test_originate_an_application_as_the_supervisor_monitor_does() -> None:
    action = ami.originate_application(
        "PJSIP/1009", "ChanSpy", "PJSIP/1001-,qE", caller_id="listen <1001>", timeout_s=30
    )
    assert action == {
        "Action": "Originate",
        "Channel": "PJSIP/1009",
        "Application": "ChanSpy",
        "Data": "PJSIP/1001-,qE",
        "CallerID": "listen <1001>",
        "Timeout": "30000",
        "Async": "true",
    }
    assert "CallerID" not in ami.originate_application("PJSIP/1009", "Echo", "", timeout_s=5)


def test_queue_member_actions() -> None:
    assert ami.queue_add("12345-general", "PJSIP/1001", member_name="1001", paused=True) == {
        "Action": "QueueAdd",
        "Queue": "12345-general",
        "Interface": "PJSIP/1001",
        "MemberName": "1001",
        "Paused": "true",
    }
    assert ami.queue_add("q", "PJSIP/1001", member_name="1001", paused=False)["Paused"] == "false"
    assert ami.queue_remove("12345-general", "PJSIP/1001") == {
        "Action": "QueueRemove",
        "Queue": "12345-general",
        "Interface": "PJSIP/1001",
    }
    assert ami.queue_pause("12345-general", "PJSIP/1001", paused=True, reason="lunch") == {
        "Action": "QueuePause",
        "Queue": "12345-general",
        "Interface": "PJSIP/1001",
        "Paused": "true",
        "Reason": "lunch",
    }
    assert ami.queue_pause("q", "PJSIP/1001", paused=False) == {
        "Action": "QueuePause",
        "Queue": "q",
        "Interface": "PJSIP/1001",
        "Paused": "false",
        "Reason": "",
    }


def test_resync_queries() -> None:
    assert ami.core_show_channels() == {"Action": "CoreShowChannels"}
    assert ami.status(("HOTLINE_LINE", "HOTLINE_QUEUE")) == {
        "Action": "Status",
        "Variables": "HOTLINE_LINE,HOTLINE_QUEUE",
    }
    assert ami.device_state_list() == {"Action": "DeviceStateList"}


# -- contexts -------------------------------------------------------------------------


def _context_names() -> dict[str, str]:
    return {
        name: value
        for name, value in vars(contexts).items()
        if name.isupper() and isinstance(value, str)
    }


def test_every_context_the_code_names_is_defined_in_the_dialplan(tmp_path: Path) -> None:
    """In the extensions.conf the stack renders: the core's template plus the
    enabled features' fragments (call control's contexts are its own)."""
    settings = AsteriskSettings(
        run_dir=tmp_path,
        agents=[],
        lines=[],
        dialplan_fragments=tuple(dialplan_fragments(EngineConfig()).values()),
    )
    rendered = render_config(settings, module_dir="/nowhere", moh_dir=tmp_path)
    template = rendered["extensions.conf"]
    defined = set(re.findall(r"^\[([\w-]+)\]", template, flags=re.MULTILINE))
    names = _context_names()
    assert len(names) == 13
    assert set(names.values()) <= defined, set(names.values()) - defined


def test_the_groups_are_made_of_the_named_contexts() -> None:
    assert contexts.HOLD_CONTEXTS == {"hotline-intake", "hotline-hold", "hotline-fallback"}
    assert contexts.AFTER_CALL_CONTEXTS == {"hotline-after-call"}
    assert contexts.MOVED_CONTEXTS == {"hotline-agent-hold", "hotline-consult"}
    assert contexts.APP_QUEUE_CONTEXTS == {"hotline-fallback", "hotline-appqueue"}
