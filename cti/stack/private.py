"""The private stack: Asterisk, PostgreSQL and Redis on free loopback ports,
started together, health-checked, and stopped together whatever happens.

Used by ``hotline demo`` and by the test fixtures. When ``HOTLINE_AMI_*``,
``HOTLINE_PG_DSN`` or ``HOTLINE_REDIS_URL`` name external services, those are
used instead of starting our own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from cti.config import AmiConfig, EngineConfig
from cti.feature import Feature
from cti.features import dialplan_fragments

from .asterisk import AgentSeat, AsteriskSettings, LineConfig, PrivateAsterisk
from .ports import free_udp_port, free_udp_range
from .postgres import PrivatePostgres
from .redis import PrivateRedis

log = logging.getLogger(__name__)

# The carrier side of the private trunk: calls Asterisk places out go here.
TRUNK_PEER_HOST = "127.0.0.3"


@dataclass
class StackInfo:
    """Where the running services are."""

    ami: AmiConfig
    database_dsn: str
    redis_url: str
    sip: tuple[str, int] | None
    agents: list[AgentSeat] = field(default_factory=list)
    recording_dir: Path | None = None
    data_dir: Path | None = None
    """The engine's own files (``EngineConfig.data_dir``) for this stack."""
    trunk_peer: tuple[str, int] | None = None
    """Where Asterisk sends the calls it places through the trunk (mobiles,
    the city centre): a test or the demo puts a SIP far end there."""


class PrivateStack:
    """Start with ``async with PrivateStack(config) as info``."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        run_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
        keep_run_dir: bool = False,
        extra_features: Iterable[Feature] = (),
    ) -> None:
        """``extra_features``: features beyond the configured ones whose
        dialplan fragments the Asterisk needs (as given to ``build_runtime``)."""
        self.config = config
        self.extra_features = list(extra_features)
        self.env = os.environ if env is None else env
        self.run_dir = run_dir or Path(tempfile.mkdtemp(prefix="hotline-stack-"))
        # PostgreSQL runs as its own OS user when we are root: it must reach its data dir.
        self.run_dir.chmod(0o755)
        self.keep_run_dir = keep_run_dir
        self.asterisk: PrivateAsterisk | None = None
        self.postgres: PrivatePostgres | None = None
        self.redis: PrivateRedis | None = None
        self.info: StackInfo | None = None

    def _external(self, *names: str) -> bool:
        return any(self.env.get(n) for n in names)

    async def start(self) -> StackInfo:
        cfg = self.config
        seats = [
            AgentSeat(a.extension, a.name, a.password or secrets.token_urlsafe(12), a.contact)
            for a in cfg.agents
        ]
        ami = cfg.ami
        sip: tuple[str, int] | None = None
        recording_dir = None
        trunk_peer: tuple[str, int] | None = None
        starts = []
        if self._external("HOTLINE_AMI_HOST", "HOTLINE_AMI_PORT"):
            log.info("using external Asterisk AMI at %s:%s", ami.host, ami.port)
            if self.env.get("HOTLINE_SIP_PORT"):
                sip = (
                    self.env.get("HOTLINE_SIP_HOST", ami.host),
                    int(self.env["HOTLINE_SIP_PORT"]),
                )
        else:
            self.asterisk = PrivateAsterisk(
                AsteriskSettings(
                    run_dir=self.run_dir / "asterisk",
                    agents=seats,
                    lines=[
                        LineConfig(s.did, s.line, s.queue, s.greeting, s.priority, s.route)
                        for s in cfg.lines
                    ],
                    queues=tuple(q.name for q in cfg.effective_queues),
                    ring_timeout_s=cfg.ring_timeout_s,
                    hold_timeout_s=cfg.hold_timeout_s,
                    engine_grace_s=int(cfg.acd.engine_grace_s),
                    announce_every_s=int(cfg.acd.announce_every_s),
                    fallback_wait_s=int(cfg.acd.fallback_wait_s),
                    dialplan_fragments=tuple(dialplan_fragments(cfg, self.extra_features).values()),
                    trunk_peer_port=free_udp_port(TRUNK_PEER_HOST),
                    trunk_peer_host=TRUNK_PEER_HOST,
                    rtp_ports=free_udp_range(cfg.private_rtp_ports),
                )
            )
            self.asterisk.prepare()
            settings = self.asterisk.settings
            ami = replace(
                ami,
                host="127.0.0.1",
                port=settings.ami_port,
                username=settings.ami_user,
                secret=settings.ami_secret,
            )
            sip = ("127.0.0.1", settings.sip_port)
            recording_dir = self.asterisk.recording_dir
            trunk_peer = (settings.trunk_peer_host, settings.trunk_peer_port)
            starts.append(self.asterisk.start())
        dsn = cfg.database_dsn
        if not self._external("HOTLINE_PG_DSN"):
            self.postgres = PrivatePostgres(self.run_dir / "postgres")
            starts.append(self.postgres.start())
        redis_url = cfg.redis_url
        if not self._external("HOTLINE_REDIS_URL"):
            self.redis = PrivateRedis(self.run_dir / "redis")
            starts.append(self.redis.start())
        results = await asyncio.gather(*starts, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self.stop()
            raise errors[0]
        if self.postgres:
            dsn = self.postgres.dsn
        if self.redis:
            redis_url = self.redis.url
        self.info = StackInfo(
            ami=ami,
            database_dsn=dsn,
            redis_url=redis_url,
            sip=sip,
            agents=seats,
            recording_dir=recording_dir,
            data_dir=self.run_dir / "data",
            trunk_peer=trunk_peer,
        )
        log.info(
            "private stack up in %s: AMI 127.0.0.1:%s, SIP %s, PostgreSQL %s, Redis %s",
            self.run_dir,
            ami.port,
            sip,
            dsn,
            redis_url,
        )
        return self.info

    async def stop(self) -> None:
        """Stop every service we started. Idempotent; never raises."""
        services = [s for s in (self.asterisk, self.postgres, self.redis) if s is not None]
        results = await asyncio.gather(*(s.stop() for s in services), return_exceptions=True)
        for service, result in zip(services, results, strict=True):
            if isinstance(result, BaseException):
                log.error("stopping %s failed: %s", type(service).__name__, result)
        if not self.keep_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    async def __aenter__(self) -> StackInfo:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def engine_config_for(config: EngineConfig, info: StackInfo) -> EngineConfig:
    """The engine's configuration pointed at the running stack."""
    data_dir = str(info.data_dir) if info.data_dir is not None else config.data_dir
    return replace(
        config,
        ami=info.ami,
        database_dsn=info.database_dsn,
        redis_url=info.redis_url,
        data_dir=data_dir,
    )
