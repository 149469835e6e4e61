"""Agent phones as one ``sipp`` UAS: many agents, no registration.

Each agent's PJSIP endpoint gets a static contact pointing at this sipp
(``AgentSpec.contact``, see :meth:`SippPhones.contact`). The phones either
answer after a ring and hang up after a fixed talk time, or refuse every call
at once with one SIP status (486 Busy Here, 480 Temporarily Unavailable, 503
Service Unavailable): the faults a hotline's switch sees from real desk
phones. Cheaper than a pyVoIP robot per agent when many agents are needed.
"""

from __future__ import annotations

import re
import shutil
from importlib import resources
from pathlib import Path

from cti.stack.ports import free_udp_port
from cti.stack.process import ChildProcess
from cti.stack.render import render

REASONS = {
    480: "Temporarily Unavailable",
    486: "Busy Here",
    503: "Service Unavailable",
    603: "Decline",
}

_ANSWER = """
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]Phone[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>

  <recv request="CANCEL" timeout="{ring_ms}" ontimeout="answer"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <send>
    <![CDATA[
      SIP/2.0 487 Request Terminated
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]Phone[call_number]
      [last_Call-ID:]
      CSeq: [$invite_cseq] INVITE
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK" next="end"/>

  <label id="answer"/>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]Phone[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=phone 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 8
      a=rtpmap:0 PCMU/8000
      a=rtpmap:8 PCMA/8000
      a=sendrecv
    ]]>
  </send>
  <recv request="ACK" crlf="true"/>

  <!-- The caller may hang up first; otherwise the agent does after the talk. -->
  <recv request="BYE" timeout="{talk_ms}" ontimeout="hangup"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <nop next="end"/>

  <label id="hangup"/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$agent_party];tag=[pid]Phone[call_number]
      To: [$caller_party]
      [routes]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" crlf="true"/>
"""

_REFUSE = """
  <send>
    <![CDATA[
      SIP/2.0 {code} {reason}
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]Phone[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK"/>
"""

# What the answering phones keep of the INVITE (sipp refuses a scenario that
# sets a variable it never reads, so the refusing phones keep nothing).
_INVITE_ACTIONS = """
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="caller_party"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="agent_party"/>
      <ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="invite_cseq"/>
    </action>"""

_INVITE = re.compile(r"^INVITE sip:([^@;> ]+)@", re.MULTILINE)


class SippPhones:
    """``async with SippPhones(host, work_dir, refuse=486) as phones:``;
    ``phones.contact("1001")`` is the static contact for agent 1001."""

    def __init__(
        self,
        host: str,
        work_dir: Path,
        *,
        refuse: int | None = None,
        ring_ms: int = 300,
        talk_ms: int = 3000,
        port: int | None = None,
    ) -> None:
        if shutil.which("sipp") is None:
            raise RuntimeError(
                "sipp is not installed; run scripts/setup-system.sh (package sip-tester)"
            )
        if refuse is not None and refuse not in REASONS:
            raise ValueError(f"refuse must be one of {sorted(REASONS)}, got {refuse!r}")
        self.host = host
        self.port = port or free_udp_port(host)
        self.work_dir = work_dir
        self.refuse = refuse
        self.ring_ms = ring_ms
        self.talk_ms = talk_ms
        self.messages = work_dir / "messages.log"
        self._proc: ChildProcess | None = None

    def contact(self, extension: str) -> str:
        return f"sip:{extension}@{self.host}:{self.port}"

    @property
    def behaviour(self) -> str:
        if self.refuse is not None:
            return f"refuses every call with {self.refuse} {REASONS[self.refuse]}"
        return f"answers after {self.ring_ms} ms and hangs up after {self.talk_ms} ms"

    def scenario_xml(self) -> str:
        template = (
            resources.files("softphone_bridge")
            .joinpath("scenarios", "agent_phones_uas.xml.tmpl")
            .read_text(encoding="utf-8")
        )
        if self.refuse is not None:
            body = _REFUSE.format(code=self.refuse, reason=REASONS[self.refuse])
        else:
            body = _ANSWER.format(ring_ms=self.ring_ms, talk_ms=self.talk_ms)
        return render(
            template,
            {
                "behaviour": self.behaviour,
                "body": body,
                "invite_actions": "" if self.refuse is not None else _INVITE_ACTIONS,
            },
            name="agent_phones_uas.xml.tmpl",
        )

    async def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        scenario = self.work_dir / "phones.xml"
        scenario.write_text(self.scenario_xml(), encoding="utf-8")
        argv = [
            "sipp",
            "-sf", str(scenario),
            "-i", self.host,
            "-p", str(self.port),
            "-mi", self.host,
            "-mp", str(free_udp_port(self.host)),
            "-nostdin",
            "-trace_msg", "-message_file", str(self.messages),
            "-trace_err", "-error_file", str(self.work_dir / "errors.log"),
        ]  # fmt: skip
        self._proc = ChildProcess(
            f"sipp-phones-{self.refuse or 'answer'}", argv, log_path=self.work_dir / "sipp.log"
        )
        await self._proc.start()

    def invited(self) -> list[str]:
        """The agents (request-URI users) whose phone got an INVITE, in order.
        sipp writes its message log as it goes and offers no other signal."""
        try:
            text = self.messages.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        return _INVITE.findall(text)

    async def stop(self) -> None:
        if self._proc is not None:
            await self._proc.stop(grace_s=2.0)

    async def __aenter__(self) -> SippPhones:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
