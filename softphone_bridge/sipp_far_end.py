"""The far end of the carrier trunk as a real SIP peer: one ``sipp`` UAS.

Calls Asterisk places through the trunk (a transfer to a mobile phone or to
the city 12345 centre, a department added to a three-way call) arrive here.
The far end answers after a ring, or never answers (for the "unanswered
transfer comes back" cases), and reports the numbers it was called on.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

from cti.stack.render import render
from softphone_bridge.sipp_uas import OK_IN_DIALOG, SippUas

ANSWER = (
    """
  <pause milliseconds="{ring_ms}"/>

  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpFar[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:far@[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=far 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [rtpstream_audio_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=sendrecv
    ]]>
  </send>

  <recv request="ACK" crlf="true"/>

  <nop>
    <action>
      <exec rtp_stream="{audio},-1,0"/>
    </action>
  </nop>

  <recv request="BYE"/>

"""
    + OK_IN_DIALOG
    + """\
"""
)

NO_ANSWER = """
  <recv request="CANCEL"/>

  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpFar[call_number]
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
      [last_To:];tag=[pid]SIPpFar[call_number]
      [last_Call-ID:]
      CSeq: [cseq] INVITE
      Content-Length: 0
    ]]>
  </send>

  <recv request="ACK"/>
"""


def _ulaw(sample: int) -> int:
    """G.711 mu-law encoding of one 16-bit sample."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = magnitude.bit_length() - 8
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def tone_ulaw(*, seconds: float, hz: float = 425.0, rate: int = 8000) -> bytes:
    """A tone as raw mu-law samples (what sipp's rtp_stream plays)."""
    count = int(seconds * rate)
    return bytes(_ulaw(int(8000 * math.sin(2 * math.pi * hz * n / rate))) for n in range(count))


class SippFarEnd(SippUas):
    """``async with SippFarEnd(host, port, work_dir) as far:``; ``far.called()``
    lists the numbers dialled so far, in order."""

    name = "sipp-far-end"

    def __init__(
        self, host: str, port: int, work_dir: Path, *, answers: bool = True, ring_ms: int = 500
    ) -> None:
        super().__init__(host, port, work_dir)
        self.answers = answers
        self.ring_ms = ring_ms
        self.audio = work_dir / "voice.ulaw"

    def scenario_xml(self) -> str:
        template = (
            resources.files("softphone_bridge")
            .joinpath("scenarios", "far_end_uas.xml.tmpl")
            .read_text(encoding="utf-8")
        )
        body = ANSWER.format(ring_ms=self.ring_ms, audio=self.audio) if self.answers else NO_ANSWER
        return render(
            template,
            {
                "ring_ms": self.ring_ms,
                "outcome": "answers" if self.answers else "never answers",
                "body": body,
            },
            name="far_end_uas.xml.tmpl",
        )

    def prepare(self) -> None:
        # The far end talks (a tone): a call with it is recorded like any other.
        self.audio.write_bytes(tone_ulaw(seconds=1.0))

    def called(self) -> list[str]:
        """The numbers (request-URI users) of the INVITEs received so far."""
        return self.invited()

    async def wait_called(self, count: int = 1, timeout_s: float = 15.0) -> list[str]:
        return await self.wait_invited(count, timeout_s)
