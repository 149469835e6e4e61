"""The generated Asterisk configuration: secure by default, complete."""

from __future__ import annotations

from pathlib import Path

import pytest

from cti.stack.asterisk import AgentSeat, AsteriskSettings, LineConfig, render_config
from cti.stack.render import TemplateError, render, split_static


def _settings(tmp_path: Path) -> AsteriskSettings:
    return AsteriskSettings(
        run_dir=tmp_path,
        agents=[AgentSeat("1001", "王芳", "pw-1001")],
        lines=[
            LineConfig("12345", "12345", "12345-general", greeting="hello"),
            LineConfig("96181", "96181", "96181-general"),
        ],
        ami_port=5999,
        sip_port=5998,
        ami_secret="s3cr3t",
        rtp_ports=(30000, 30399),
    )


def test_render_refuses_missing_values():
    assert render("a {{x}} ${ASTERISK}", {"x": 1}) == "a 1 ${ASTERISK}"
    with pytest.raises(TemplateError, match="no value for y"):
        render("{{x}} {{y}}", {"x": 1})


def test_split_static():
    assert split_static("==> a.conf\n[general]\n==> b.conf\n") == {
        "a.conf": "[general]\n",
        "b.conf": "\n",
    }


def test_manager_conf_is_loopback_only_with_secret_and_acl(tmp_path: Path):
    files = render_config(_settings(tmp_path), module_dir="/mods", moh_dir=tmp_path / "moh")
    manager = files["manager.conf"]
    assert "bindaddr = 127.0.0.1" in manager
    assert "port = 5999" in manager
    assert "secret = s3cr3t" in manager
    assert "deny = 0.0.0.0/0.0.0.0" in manager and "permit = 127.0.0.1/255.255.255.255" in manager
    assert "webenabled = no" in manager
    write = next(line for line in manager.splitlines() if line.startswith("write ="))
    # No config/system/command write classes (CVE-2024-42365 class of problems).
    assert not {"config", "system", "command", "all"} & {
        c.strip() for c in write.split("=")[1].split(",")
    }


def test_pjsip_and_dialplan_cover_agents_lines_and_trunk(tmp_path: Path):
    files = render_config(_settings(tmp_path), module_dir="/mods", moh_dir=tmp_path / "moh")
    pjsip = files["pjsip.conf"]
    assert "bind = 127.0.0.1:5998" in pjsip
    assert "[1001](agent-endpoint)" in pjsip and "password = pw-1001" in pjsip
    assert 'callerid = "王芳" <1001>' in pjsip
    assert "match = 127.0.0.2" in pjsip
    ext = files["extensions.conf"]
    assert "exten => 12345,1,NoOp(hotline line 12345)" in ext
    assert "Playback(hello)" in ext  # 12345 has a greeting, 96181 has none
    section_96181 = ext.split("exten => 96181")[1].split("exten =>")[0]
    assert "Playback" not in section_96181
    for context in ("hotline-intake", "hotline-hold", "hotline-fallback", "hotline-connect"):
        assert f"[{context}]" in ext
    # Every module that needs a config file to load gets one.
    for name in ("queues.conf", "confbridge.conf", "musiconhold.conf", "rtp.conf", "cdr.conf"):
        assert name in files
    assert "astetcdir => " + str(tmp_path / "etc") in files["asterisk.conf"]
    assert "[directories]\n" in files["asterisk.conf"]  # not "(!)", which would make it a template
