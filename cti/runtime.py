"""The composition root: :func:`build_runtime` wires the engine, the ACD, the
bus, the shared resources and the features; ``hotline serve``, ``hotline
demo``, the integration tests and the benchmarks all start it the same way::

    async with build_runtime(config) as runtime:
        ...

Start order (stop is the reverse; every resource is one async context,
aiohttp ``cleanup_ctx`` style): the PostgreSQL pool and the migrations (the
core's, then each feature's), the Redis client, the event log and the
snapshot store, the features (each subscribes to the bus, adds its routes,
starts its tasks), the bus's asynchronous subscribers, the agent states
restored from the event log, the AMI link, the ACD's loops, and last the
HTTP site. One asyncpg pool and one Redis client serve everybody.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from acd.alarms import Alarm
from acd.commands import (
    AgentStateChanged,
    CallOverflowed,
    ConnectCall,
    OfferCallback,
    ReservationExpired,
)
from acd.event_log import EventLogWriter
from acd.log_events import LogEvent
from acd.presence import Presence
from acd.restore import restore_from_log
from acd.runner import AcdRunner
from acd.service import AGENT_FEATURE_CODES, payload
from acd.snapshot_store import SnapshotStore
from common.call_changes import CallChange
from common.db import migrate_all, redact_dsn
from cti import events as ev
from cti.ami import AMIError, AMILink, AmiMessage
from cti.api.accounts import AccountStore, AuditLog, SessionStore
from cti.api.http import DesktopHub, build_app
from cti.api.sessions import SessionTable
from cti.bus import Bus, ami
from cti.calls import CallModel
from cti.config import EngineConfig
from cti.engine import Engine, Resynced
from cti.events import KNOWN_EVENTS
from cti.feature import Feature
from cti.features import enabled_features, section_of

__all__ = ["Runtime", "build_runtime", "tune_gc"]

log = logging.getLogger(__name__)

# Young-generation size of the cyclic garbage collector. The ingest path
# allocates a dict per AMI event and a few records per call change, nearly all
# dead long before any collection; CPython's default of 700 allocations runs a
# collection every ~30 events. 50,000 keeps each pause to a few milliseconds
# (bench/bench_ingest.py: ~5 % more events/s, docs/benchmarks.md).
GC_YOUNG_THRESHOLD = 50_000
GC_OLDER_THRESHOLDS = (50, 100)
POOL_MAX_SIZE = 24
"""The one pool: screen-pop workers (two queries each), the event-log
writer, the HTTP routes, the features' services."""
BUS_DRAIN_S = 2.0
"""At stop, how long the asynchronous subscribers may take to finish what
they were given before they are cancelled."""
REDIS_TIMEOUT_S = 2.0
RESTORE_TIMEOUT_S = 5.0
# What the snapshot store fans out to dashboards and other replicas (Redis pub/sub).
PUBLISHED = (
    CallChange,
    ConnectCall,
    OfferCallback,
    CallOverflowed,
    AgentStateChanged,
    ReservationExpired,
    Alarm,
)


def tune_gc() -> None:
    """Freeze what start-up built (configuration, agents, compiled tables) out
    of the collector's scans, and collect the young generation less often.
    Process-wide: applied by ``hotline serve`` and ``hotline demo`` only."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *GC_OLDER_THRESHOLDS)


class SwitchActions:
    """Sends AMI actions without waiting (the routing path); the reply is only
    checked and logged."""

    def __init__(self, link: AMILink) -> None:
        self.link = link
        self.stopping = False

    def __call__(self, action: dict[str, str], *, what: str, refusal_ok: bool = False) -> None:
        """``refusal_ok``: Asterisk saying no is expected (a QueueAdd of a
        member already there) and only logged at debug level."""
        try:
            self.link.post_action(action, on_done=partial(self._check_reply, what, refusal_ok))
        except AMIError as exc:
            log.warning("%s: not sent (%s); resync will decide again", what, exc)

    def _check_reply(
        self, what: str, refusal_ok: bool, reply: AmiMessage | list[AmiMessage] | Exception
    ) -> None:
        if isinstance(reply, Exception):
            # Actions still in flight when the engine stops fail by design.
            log.log(logging.INFO if self.stopping else logging.ERROR, "%s failed: %s", what, reply)
        elif isinstance(reply, AmiMessage) and not reply.success:
            log.log(
                logging.DEBUG if refusal_ok else logging.WARNING,
                "%s refused by Asterisk: %s",
                what,
                ev.reply_message(reply) or reply,
            )


class Runtime:
    """Everything one engine process runs, built by :func:`build_runtime`.

    Features reach the core through it: ``bus``, ``model`` (the call model),
    ``acd`` (the ACD runner: agents' actions, the ACD, its service and
    tracker), ``send`` (AMI actions), ``link``, ``pool`` and ``redis`` (shared;
    None when not configured), ``app`` (the HTTP application their routes
    join), ``hub`` (the desktops' and consoles' WebSockets), ``audit``,
    ``clock``, and ``agent_details`` (functions adding a feature's part to an
    agent's state).
    """

    def __init__(
        self,
        config: EngineConfig,
        *,
        features: list[Feature],
        link: AMILink | None = None,
        clock: Callable[[], float] = time.time,
        spill_dir: Path | None = None,
        serve_http: bool | None = None,
        any_port_if_taken: bool = False,
    ) -> None:
        self.config = config
        self.clock = clock
        self.features = features
        self.spill_dir = spill_dir
        self.serve_http = config.api.enabled if serve_http is None else serve_http
        self.any_port_if_taken = any_port_if_taken
        """``api.port`` taken: serve on any free port instead of failing (the demo)."""
        self.pool: asyncpg.Pool | None = None
        self.redis: aioredis.Redis | None = None
        self.event_log: EventLogWriter | None = None
        self.snapshot_store: SnapshotStore | None = None
        self.url: str | None = None
        self.services: dict[str, Any] = {}
        """A feature's service by feature name (what others may call)."""
        self.agent_details: list[Callable[[str], Mapping[str, Any]]] = []
        self.link = link or AMILink(
            host=config.ami.host,
            port=config.ami.port,
            username=config.ami.username,
            secret=config.ami.secret,
            name="asterisk",
            action_timeout_s=config.ami.action_timeout_s,
            ping_interval_s=config.ami.ping_interval_s,
            event_filter=KNOWN_EVENTS,
        )
        self.bus = Bus(on_ami_names=self._filter_changed)
        self.model = CallModel(lines=config.lines_by_did)
        self.presence = Presence([a.extension for a in config.agents])
        self.send = SwitchActions(self.link)
        self.acd = AcdRunner(
            config,
            calls=self.model,
            presence=self.presence,
            send=self.send,
            connected=lambda: self.link.connected,
            publish=self.bus.publish,
            log_row=self.bus.publish_log,
            agent_busy=self.model.agent_busy,
            clock=clock,
        )
        self.engine = Engine(
            link=self.link,
            model=self.model,
            presence=self.presence,
            bus=self.bus,
            clock=clock,
            fully_booted_timeout_s=config.resync_fully_booted_timeout_s,
        )
        self.hub = DesktopHub()
        self.sessions = SessionTable(ttl_s=config.api.session_ttl_s, clock=clock)
        self.audit: AuditLog | None = None
        self.app: web.Application = web.Application()
        self._stack = AsyncExitStack()
        self._subscribe_acd()

    # -- the ACD on the bus -------------------------------------------------------------

    def _subscribe_acd(self) -> None:
        """The ACD hears every call change and every resync first."""
        self.bus.subscribe(CallChange, self.acd.on_change, name="acd")
        self.bus.subscribe(Resynced, lambda _: self.acd.resynced(), name="acd: resync")

    def _subscribe_acd_to_switch(self) -> None:
        """The raw events the ACD reads, after the features' (call control
        sees a Hangup or a UserEvent before the ACD acts on it, as it did
        when the engine dispatched them by hand)."""
        acd, bus = self.acd, self.bus
        bus.subscribe(
            [ami(f"UserEvent:{code}") for code in sorted(AGENT_FEATURE_CODES)],
            lambda e: acd.feature_code(*ev.feature_code(e), self._at(e)),
            name="acd: feature codes",
        )
        bus.subscribe(ami("UserEvent:HotlineFallback"), self._fallback, name="acd: fallback")
        bus.subscribe([ami("Newchannel"), ami("Hangup")], self._channel, name="acd: channels")
        bus.subscribe(
            ami("MusicOnHoldStart"), lambda e: acd.music_started(ev.uniqueid(e)), name="acd: moh"
        )
        bus.subscribe(
            ami("MusicOnHoldStop"), lambda e: acd.music_stopped(ev.uniqueid(e)), name="acd: moh"
        )
        bus.subscribe(
            ami("ContactStatus"),
            lambda e: acd.contact_status(*ev.contact_status(e), self._at(e)),
            name="acd: presence",
        )

    def _channel(self, event: Mapping[str, Any]) -> None:
        """A channel came or went: an agent's phone busy or free; a caller
        gone cancels the Redirect deferred for it."""
        if ev.event_name(event) == "Hangup":
            self.acd.caller_hung_up(ev.uniqueid(event))
        agent = ev.channel_endpoint(ev.channel_name(event))
        if agent in self.acd.acd.agents:  # most channels are callers': no clock read
            self.acd.channel_changed(agent, self._at(event))

    def _fallback(self, event: Mapping[str, Any]) -> None:
        call = self.model.call_for_channel(ev.uniqueid(event))
        if call is not None:
            self.acd.fallback_took(call.call_id, self._at(event))

    def _at(self, event: Mapping[str, Any]) -> float:
        return ev.event_time(event, self.clock())

    def _filter_changed(self, names: frozenset[str]) -> None:
        self.link.set_event_filter(KNOWN_EVENTS | names)

    # -- conveniences of the core ------------------------------------------------------

    def report_changes(self, changes: Iterable[CallChange]) -> None:
        """Changes a feature made itself (a transfer started): published as
        the model's own."""
        for change in changes:
            self.bus.publish(change)

    def agent_state(self, agent_id: str) -> dict[str, Any]:
        """One agent's ACD state, with what the features add (call control:
        hold, consultation, three-way)."""
        agent = self.acd.acd.agents[agent_id]
        state: dict[str, Any] = {
            "state": agent.state.name,
            "since": agent.state_since,
            "pause_reason": agent.pause_reason,
            "call_id": agent.call_id,
        }
        for detail in self.agent_details:
            state.update(detail(agent_id))
        return state

    def agent_states(self) -> dict[str, dict[str, Any]]:
        return {agent_id: self.agent_state(agent_id) for agent_id in self.acd.acd.agents}

    # -- start and stop ---------------------------------------------------------------

    async def __aenter__(self) -> Runtime:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        stack = self._stack
        await stack.enter_async_context(self._database())
        await stack.enter_async_context(self._redis())
        self.app = build_app(
            accounts=AccountStore(self.pool),
            audit=self.audit or AuditLog(None),
            sessions=self.sessions,
            hub=self.hub,
            session_store=SessionStore(self.pool) if self.pool is not None else None,
            features=self.features,
        )
        stack.push_async_callback(self.hub.close)
        for feature in self.features:
            if feature.run is not None:
                await stack.enter_async_context(feature.run(self, section_of(self.config, feature)))
        self._subscribe_acd_to_switch()
        self.bus.start()
        stack.push_async_callback(self.bus.close, drain_timeout_s=BUS_DRAIN_S)
        await self._restore()
        # Stopped in reverse: the link first (nothing more comes in), then
        # the ACD's timers and loops, then the bus (drained, bounded).
        self.acd.start()
        stack.push_async_callback(self.acd.stop)
        await self.engine.start()
        stack.push_async_callback(self._stop_engine)
        if self.serve_http:
            await stack.enter_async_context(self._http())

    async def _stop_engine(self) -> None:
        self.send.stopping = True
        await self.engine.stop()

    @contextlib.asynccontextmanager
    async def _database(self) -> AsyncIterator[None]:
        """The pool (created while PostgreSQL may be down: it connects on
        demand), the migrations, the event log, the audit log."""
        dsn = self.config.database_dsn
        if not dsn:
            log.warning("no database_dsn: the ACD event log is not kept (KPIs live only)")
            yield
            return
        pool = self.pool = await asyncpg.create_pool(dsn, min_size=0, max_size=POOL_MAX_SIZE)
        try:
            try:
                applied = await migrate_all(pool, self._feature_migrations())
                if applied:
                    log.info("database migrations applied: %s", ", ".join(applied))
            except Exception as exc:  # the writer retries; routing goes on without the DB
                log.error(
                    "database migrations not applied yet (%s); the event log will retry "
                    "and keep events until the database is reachable",
                    exc,
                )
            spill = self.spill_dir
            writer = self.event_log = EventLogWriter(
                pool=pool,
                engine_id=self.config.engine_id,
                where=redact_dsn(dsn),
                spill_path=(spill / f"{self.config.engine_id}-event-log.jsonl") if spill else None,
            )
            await writer.start()
            self.bus.subscribe(LogEvent, writer.append, name="event log")
            self.audit = AuditLog(pool)
            try:
                yield
            finally:
                await writer.close()
        finally:
            await pool.close()

    def _feature_migrations(self) -> list[tuple[str, Path]]:
        return [(f.name, f.migrations) for f in self.features if f.migrations is not None]

    @contextlib.asynccontextmanager
    async def _redis(self) -> AsyncIterator[None]:
        if not self.config.redis_url:
            yield
            return
        # No retries of its own and socket timeouts: the snapshot store
        # retries, and notices an outage and its end soonest this way.
        client = self.redis = aioredis.from_url(
            self.config.redis_url,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            store = self.snapshot_store = SnapshotStore(client=client)
            await store.start()
            self.bus.subscribe(
                PUBLISHED,
                lambda item: store.publish(type(item).__name__, payload(item)),
                name="snapshot store",
            )
            try:
                yield
            finally:
                await store.close()
        finally:
            await client.aclose()

    async def _restore(self) -> None:
        """Agent states and repeat callers from the event log, after a restart.
        Bounded in time: routing must not wait on the database."""
        if self.pool is None:
            return
        since = self.clock() - self.config.acd.repeat_caller_days * 86400
        found = await restore_from_log(self.pool, since=since, timeout_s=RESTORE_TIMEOUT_S)
        if found is not None:
            states, repeat_callers = found
            self.acd.restore(states, repeat_callers)

    @contextlib.asynccontextmanager
    async def _http(self) -> Any:
        api = self.config.api
        if self.pool is None:
            log.warning(
                "HTTP API not started: accounts and the audit log need database_dsn "
                "(or set api.enabled = false to silence this)"
            )
            yield
            return
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, api.host, api.port)
            try:
                await site.start()
            except OSError as exc:
                if not self.any_port_if_taken or api.port == 0:
                    raise
                log.info("port %s not free (%s): the HTTP API takes any free port", api.port, exc)
                site = web.TCPSite(runner, api.host, 0)
                await site.start()
            port = runner.addresses[0][1] if runner.addresses else api.port
            self.url = f"http://{api.host}:{port}"
            log.info("HTTP API on %s (OpenAPI at %s/api/v1/openapi.json)", self.url, self.url)
            yield
        finally:
            # Open WebSockets first: aiohttp's cleanup waits for their handlers.
            await self.hub.close()
            await runner.cleanup()


def build_runtime(
    config: EngineConfig,
    *,
    link: AMILink | None = None,
    clock: Callable[[], float] = time.time,
    extra_features: Iterable[Feature] = (),
    spill_dir: Path | None = None,
    serve_http: bool | None = None,
    any_port_if_taken: bool = False,
) -> Runtime:
    """Everything wired, nothing started: ``async with`` the result to run it.
    ``extra_features``: features beyond the configured ones (tests, embedders);
    their sections are validated here (ConfigError naming the key)."""
    extra_features = list(extra_features)
    for feature in extra_features:
        if feature.config is not None:
            feature.config.validate(section_of(config, feature))
    return Runtime(
        config,
        features=enabled_features(config, extra_features),
        link=link,
        clock=clock,
        spill_dir=spill_dir,
        serve_http=serve_http,
        any_port_if_taken=any_port_if_taken,
    )
