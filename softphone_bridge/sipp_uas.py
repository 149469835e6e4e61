"""One ``sipp`` UAS process as a SIP peer of the private Asterisk: the base of
the trunk's far end (:mod:`softphone_bridge.sipp_far_end`) and of agent phones
without registration (:mod:`softphone_bridge.sipp_phones`).

A subclass says what the peer does (:meth:`SippUas.scenario_xml`) and may add
sipp arguments; the base writes the scenario, runs sipp on its own address with
a message log, reads that log for the INVITEs received, and stops it.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

from cti.stack.ports import free_udp_port
from cti.stack.process import ChildProcess

_INVITE = re.compile(r"^INVITE sip:([^@;> ]+)@", re.MULTILINE)

OK_IN_DIALOG = """\
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
"""
"""Scenario text: 200 OK to the request just received (a BYE, a CANCEL)."""


class SippUas:
    """``async with Peer(...) as peer:``; :meth:`invited` lists the request-URI
    users of the INVITEs received so far, in order."""

    name = "sipp-uas"

    def __init__(self, host: str, port: int, work_dir: Path) -> None:
        if shutil.which("sipp") is None:
            raise RuntimeError(
                "sipp is not installed; run scripts/setup-system.sh (package sip-tester)"
            )
        self.host = host
        self.port = port
        self.work_dir = work_dir
        self.messages = work_dir / "messages.log"
        self._proc: ChildProcess | None = None

    def scenario_xml(self) -> str:
        raise NotImplementedError

    def extra_args(self) -> list[str]:
        """More sipp arguments (e.g. an injection file)."""
        return []

    def prepare(self) -> None:
        """Files the scenario needs, written before sipp starts."""

    async def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.prepare()
        scenario = self.work_dir / "scenario.xml"
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
            *self.extra_args(),
        ]  # fmt: skip
        self._proc = ChildProcess(self.name, argv, log_path=self.work_dir / "sipp.log")
        await self._proc.start()

    def invited(self) -> list[str]:
        """The request-URI users of the INVITEs received so far, in order."""
        try:
            text = self.messages.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        return _INVITE.findall(text)

    async def wait_invited(self, count: int = 1, timeout_s: float = 15.0) -> list[str]:
        """Until *count* INVITEs have arrived. sipp writes its message log as
        it goes and offers no other signal, so the log is polled."""
        async with asyncio.timeout(timeout_s):
            while len(found := self.invited()) < count:
                await asyncio.sleep(0.1)
        return found

    async def stop(self) -> None:
        if self._proc is not None:
            await self._proc.stop(grace_s=2.0)

    async def __aenter__(self) -> SippUas:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
