"""Citizens as real SIP peers: one ``sipp`` UAC process per call.

A call dials a line's number (DID) from the citizen trunk address with a
caller number and display name (Chinese names pass through as UTF-8), stays on
the line for a given time unless the far end hangs up first, and reports how it
ended.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from xml.sax.saxutils import escape

from cti.stack.ports import free_udp_port
from cti.stack.process import ChildProcess
from cti.stack.render import render

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CitizenCall:
    """What one citizen does."""

    did: str
    number: str
    name: str = ""
    hold_s: float = 30.0
    """Seconds on the line after Asterisk answers, unless hung up on first."""


@dataclass(frozen=True)
class CitizenResult:
    call: CitizenCall
    exit_code: int
    log_path: Path

    @property
    def completed(self) -> bool:
        """sipp ran the scenario to its end (either side hung up cleanly)."""
        return self.exit_code == 0


def scenario_xml(call: CitizenCall) -> str:
    template = (
        resources.files("softphone_bridge")
        .joinpath("scenarios", "citizen_uac.xml.tmpl")
        .read_text(encoding="utf-8")
    )
    return render(
        template,
        {
            "did": escape(call.did),
            "number": escape(call.number),
            "name": escape(call.name.replace('"', "")),
            "hold_ms": max(1, int(call.hold_s * 1000)),
            "after_answer": "",
        },
        name="citizen_uac.xml.tmpl",
    )


class SippCitizens:
    """Places citizen calls at a private Asterisk's SIP port."""

    def __init__(
        self,
        *,
        asterisk_sip: tuple[str, int],
        local_host: str = "127.0.0.2",
        work_dir: Path | None = None,
    ) -> None:
        if shutil.which("sipp") is None:
            raise RuntimeError(
                "sipp is not installed; run scripts/setup-system.sh (package sip-tester)"
            )
        self.asterisk_sip = asterisk_sip
        self.local_host = local_host
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="hotline-sipp-"))
        self._seq = itertools.count(1)
        self._running: set[ChildProcess] = set()

    async def call(self, call: CitizenCall) -> CitizenResult:
        """Place *call* and wait until it has ended."""
        n = next(self._seq)
        call_dir = self.work_dir / f"call-{n:05d}"
        call_dir.mkdir(parents=True, exist_ok=True)
        scenario = call_dir / "citizen.xml"
        scenario.write_text(scenario_xml(call), encoding="utf-8")
        host, port = self.asterisk_sip
        argv = [
            "sipp",
            f"{host}:{port}",
            "-sf",
            str(scenario),
            "-i",
            self.local_host,
            "-p",
            str(free_udp_port(self.local_host)),
            "-mi",
            self.local_host,
            "-mp",
            str(free_udp_port(self.local_host)),
            "-m",
            "1",
            "-l",
            "1",
            "-nostdin",
            "-timeout_error",
            "-timeout",
            str(int(call.hold_s + 120)) + "s",
            "-trace_err",
            "-error_file",
            str(call_dir / "errors.log"),
        ]
        proc = ChildProcess(f"sipp-citizen-{n}", argv, log_path=call_dir / "sipp.log")
        self._running.add(proc)
        try:
            await proc.start()
            code = await proc.wait()
        except asyncio.CancelledError:
            # The caller gave up on this call: hang it up, leave no sipp behind.
            await asyncio.shield(proc.stop(grace_s=2.0))
            raise
        finally:
            self._running.discard(proc)
        if code != 0:
            log.warning(
                "citizen call %s to %s ended with sipp exit %s (see %s)",
                call.number,
                call.did,
                code,
                call_dir,
            )
        return CitizenResult(call=call, exit_code=code, log_path=call_dir)

    async def close(self) -> None:
        """Hang up every call still running (their sipp processes are stopped)."""
        await asyncio.gather(
            *(p.stop(grace_s=2.0) for p in list(self._running)), return_exceptions=True
        )
