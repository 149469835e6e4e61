"""Agent phones as one ``sipp`` UAS: many agents, no registration.

Each agent's PJSIP endpoint gets a static contact pointing at this sipp
(``AgentSpec.contact``, see :meth:`SippPhones.contact`). The phones either
answer after a ring and hang up after a fixed talk time, or refuse every call
at once with one SIP status (486 Busy Here, 480 Temporarily Unavailable, 503
Service Unavailable): the faults a hotline's switch sees from real desk
phones. Cheaper than a pyVoIP robot per agent when many agents are needed.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from cti.stack.ports import free_udp_port
from cti.stack.render import render
from softphone_bridge.sipp_uas import OK_IN_DIALOG, SippUas

REASONS = {
    480: "Temporarily Unavailable",
    486: "Busy Here",
    503: "Service Unavailable",
    603: "Decline",
}

_ANSWER = (
    """
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
"""
    + OK_IN_DIALOG
    + """\
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
"""
    + OK_IN_DIALOG
    + """\
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
)

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


class SippPhones(SippUas):
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
        if refuse is not None and refuse not in REASONS:
            raise ValueError(f"refuse must be one of {sorted(REASONS)}, got {refuse!r}")
        super().__init__(host, port or free_udp_port(host), work_dir)
        self.name = f"sipp-phones-{refuse or 'answer'}"
        self.refuse = refuse
        self.ring_ms = ring_ms
        self.talk_ms = talk_ms

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
