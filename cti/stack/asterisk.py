"""A private Asterisk: configuration rendered into a run directory, started as
our child, health-checked over AMI, stopped cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from common.contexts import APP_QUEUE, INTAKE

from .ports import free_tcp_port, free_udp_port, free_udp_range
from .process import ChildProcess
from .render import load_template, render, split_static

log = logging.getLogger(__name__)

MODULE_DIRS = (
    "/usr/lib/asterisk/modules",
    "/usr/lib/x86_64-linux-gnu/asterisk/modules",
    "/usr/lib64/asterisk/modules",
)


class AsteriskNotAvailable(RuntimeError):
    """Asterisk is not installed, or would not start."""


@dataclass(frozen=True)
class AgentSeat:
    """One agent's SIP endpoint in the generated pjsip.conf."""

    extension: str
    name: str
    password: str
    contact: str = ""
    """A static SIP contact (e.g. one sipp UAS answering for many agents); empty: registers."""


@dataclass(frozen=True)
class LineConfig:
    """A hotline line: the dialled number (DID) citizens call and its queue."""

    did: str
    line: str
    queue: str
    greeting: str = ""
    priority: int = 0
    route: str = "engine"
    """"engine" (the hotline ACD) or "app_queue" (Asterisk's Queue(), for comparison)."""


@dataclass
class AsteriskSettings:
    """What the generated configuration depends on. Ports 0 mean "pick free"."""

    run_dir: Path
    agents: list[AgentSeat]
    lines: list[LineConfig]
    ami_port: int = 0
    ami_user: str = "hotline"
    ami_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    sip_port: int = 0
    citizen_hosts: tuple[str, ...] = ("127.0.0.2",)
    trunk_peer_host: str = "127.0.0.3"
    trunk_peer_port: int = 5060
    hold_timeout_s: int = 900
    ring_timeout_s: int = 15
    engine_grace_s: int = 30
    announce_every_s: int = 20
    fallback_wait_s: int = 300
    dialplan_fragments: tuple[str, ...] = ()
    """The enabled features' contexts (``Feature.dialplan``), appended to extensions.conf."""
    queues: tuple[str, ...] = ()
    """app_queue queues for the fallback; empty: the lines' queues."""
    rtp_ports: tuple[int, int] | None = None


def find_module_dir() -> str:
    for candidate in MODULE_DIRS:
        if Path(candidate, "chan_pjsip.so").exists():
            return candidate
    raise AsteriskNotAvailable(
        "Asterisk modules not found (looked in " + ", ".join(MODULE_DIRS) + "); "
        "run scripts/setup-system.sh to install Asterisk"
    )


def render_config(settings: AsteriskSettings, *, module_dir: str, moh_dir: Path) -> dict[str, str]:
    """All files of ``etc/`` for *settings* (pure apart from reading templates)."""
    run = settings.run_dir
    agents = "\n".join(
        render(
            load_template("pjsip_agent.conf.tmpl"),
            {
                "extension": a.extension,
                "name": a.name,
                "password": a.password,
                "contact_line": f"contact = {a.contact}" if a.contact else "",
            },
            name="pjsip_agent.conf.tmpl",
        )
        for a in settings.agents
    )
    line_tmpl = load_template("extensions_line.conf.tmpl")
    lines = []
    for spec in settings.lines:
        text = render(
            line_tmpl,
            {
                "did": spec.did,
                "line": spec.line,
                "queue": spec.queue,
                "greeting": spec.greeting or "silence/1",
                "priority": spec.priority,
                "entry_context": APP_QUEUE if spec.route == "app_queue" else INTAKE,
            },
            name="extensions_line.conf.tmpl",
        )
        if not spec.greeting:
            text = "\n".join(ln for ln in text.splitlines() if "Playback(" not in ln) + "\n"
        lines.append(text)
    rtp_start, rtp_end = settings.rtp_ports or (10000, 20000)
    values = {
        "run_dir": run,
        "module_dir": module_dir,
        "data_dir": "/usr/share/asterisk",
        "ami_port": settings.ami_port,
        "ami_bind": "127.0.0.1",
        "ami_user": settings.ami_user,
        "ami_secret": settings.ami_secret,
        "ami_permit": "127.0.0.1/255.255.255.255",
        "sip_bind": "127.0.0.1",
        "sip_port": settings.sip_port,
        "agents": agents,
        "trunk_peer_host": settings.trunk_peer_host,
        "trunk_peer_port": settings.trunk_peer_port,
        "trunk_match": "\n".join(f"match = {h}" for h in settings.citizen_hosts),
        "rtp_start": rtp_start,
        "rtp_end": rtp_end,
        "moh_dir": moh_dir,
        "hold_timeout_s": settings.hold_timeout_s,
        "ring_timeout_s": settings.ring_timeout_s,
        "engine_grace_s": settings.engine_grace_s,
        "announce_every_s": settings.announce_every_s,
        "fallback_wait_s": settings.fallback_wait_s,
        "feature_dialplan": "\n\n".join(settings.dialplan_fragments),
        "recording_dir": run / "recordings",
        "inbound_lines": "\n".join(lines),
    }
    files = {}
    for name in (
        "asterisk.conf",
        "modules.conf",
        "manager.conf",
        "pjsip.conf",
        "rtp.conf",
        "musiconhold.conf",
        "logger.conf",
        "extensions.conf",
    ):
        files[name] = render(load_template(name + ".tmpl"), values, name=name + ".tmpl")
    queue_tmpl = load_template("queues_queue.conf.tmpl")
    queue_names = settings.queues or tuple(dict.fromkeys(spec.queue for spec in settings.lines))
    files["queues.conf"] = "\n".join(
        [
            "; Generated by hotline: app_queue is the dialplan's fallback.",
            "[general]",
            "persistentmembers = yes",
            "shared_lastcall = yes",
            "",
        ]
        + [
            render(
                queue_tmpl,
                {"name": name, "ring_timeout_s": settings.ring_timeout_s},
                name="queues_queue.conf.tmpl",
            )
            for name in queue_names
        ]
    )
    files.update(split_static(load_template("static.conf.tmpl")))
    return files


class PrivateAsterisk:
    """Asterisk started from its own run directory, on free loopback ports."""

    def __init__(self, settings: AsteriskSettings) -> None:
        self.settings = settings
        self.run_dir = settings.run_dir
        self.process: ChildProcess | None = None

    @property
    def conf_path(self) -> Path:
        return self.run_dir / "etc" / "asterisk.conf"

    @property
    def recording_dir(self) -> Path:
        return self.run_dir / "recordings"

    def prepare(self) -> None:
        """Pick ports, write the configuration, generate hold music."""
        if not shutil.which("asterisk") and not Path("/usr/sbin/asterisk").exists():
            raise AsteriskNotAvailable("asterisk is not installed; run scripts/setup-system.sh")
        s = self.settings
        if not s.ami_port:
            s.ami_port = free_tcp_port()
        if not s.sip_port:
            s.sip_port = free_udp_port()
        if s.rtp_ports is None:
            s.rtp_ports = free_udp_range(400)
        for sub in ("etc", "lib", "agi", "spool", "run", "log", "recordings", "moh"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        moh_dir = self.run_dir / "moh"
        self._make_hold_music(moh_dir)
        for name, text in render_config(s, module_dir=find_module_dir(), moh_dir=moh_dir).items():
            (self.run_dir / "etc" / name).write_text(text, encoding="utf-8")

    @staticmethod
    def _make_hold_music(moh_dir: Path) -> None:
        target = moh_dir / "hold.wav"
        if target.exists():
            return
        import subprocess

        # A soft two-tone chime: enough for MusicOnHold to have a file to play.
        subprocess.run(
            [
                "sox",
                "-n",
                "-r",
                "8000",
                "-c",
                "1",
                "-b",
                "16",
                str(target),
                "synth",
                "0.4",
                "sine",
                "523",
                "synth",
                "0.4",
                "sine",
                "659",
                "pad",
                "0",
                "1.2",
                "repeat",
                "5",
                "gain",
                "-18",
            ],
            check=True,
            capture_output=True,
        )

    async def start(self, *, ready_timeout_s: float = 30.0) -> None:
        self.process = ChildProcess(
            "asterisk",
            ["asterisk", "-C", str(self.conf_path), "-f", "-n", "-q"],
            log_path=self.run_dir / "log" / "console.log",
        )
        await self.process.start()
        try:
            await self.wait_ready(ready_timeout_s)
        except Exception:
            await self.stop()
            raise

    async def wait_ready(self, timeout_s: float) -> None:
        """Until AMI answers with its banner and Asterisk is fully booted."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            if self.process is None or not self.process.running:
                raise AsteriskNotAvailable(
                    "asterisk exited during start-up:\n"
                    + (self.process.log_tail() if self.process else "")
                )
            if await self._ami_banner_ok():
                out = await self.cli(
                    "core waitfullybooted", timeout_s=max(1.0, deadline - loop.time())
                )
                if "fully booted" in out.lower():
                    return
            if loop.time() > deadline:
                raise AsteriskNotAvailable(
                    f"asterisk not ready after {timeout_s:.0f} s "
                    f"(AMI 127.0.0.1:{self.settings.ami_port}); see {self.run_dir / 'log'}"
                )
            await asyncio.sleep(0.1)  # polling a port that is not open yet: nothing to await

    async def _ami_banner_ok(self) -> bool:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.settings.ami_port), 1.0
            )
        except (OSError, TimeoutError):
            return False
        try:
            line = await asyncio.wait_for(reader.readline(), 2.0)
            return line.startswith(b"Asterisk Call Manager/")
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()

    async def cli(self, command: str, *, timeout_s: float = 10.0) -> str:
        """Run an Asterisk CLI command on this instance (``asterisk -rx``)."""
        proc = await asyncio.create_subprocess_exec(
            "asterisk",
            "-C",
            str(self.conf_path),
            "-rx",
            command,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        return out.decode(errors="replace")

    async def stop(self) -> None:
        """Graceful stop (``core stop now``), then signals. Idempotent."""
        if self.process is None or not self.process.running:
            return
        try:
            await self.cli("core stop now", timeout_s=5.0)
            await asyncio.wait_for(self.process.wait(), 5.0)
        except (TimeoutError, OSError):
            pass
        await self.process.stop(grace_s=5.0)

    def kill(self) -> None:
        """SIGKILL, as a crash would (for the reconnect tests)."""
        if self.process is not None:
            self.process.kill()
