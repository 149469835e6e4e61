"""The feature contract end to end: a tiny feature written here (a config
section, a migration, a subscription to a UserEvent, an HTTP route with its
OpenAPI part) plugs into the runtime without any other module knowing it.

The switch is a fake AMI server (the feature needs no Asterisk); PostgreSQL
is real (the migration and the rows are)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from cti import events as ev
from cti.api.accounts import AccountStore
from cti.api.http import SESSION_OF, json_response, requires
from cti.api.roles import Role
from cti.bus import Gap, ami
from cti.config import AmiConfig, ApiConfig, ConfigError, load_config
from cti.feature import ConfigSection, Feature
from cti.features import known_sections
from cti.runtime import build_runtime
from cti.stack.postgres import PrivatePostgres
from tests.unit.ami_fake_server import FakeAMIServer, block

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class TinyConfig:
    question: str = "满意吗?"
    max_score: int = 5


def validate_tiny(section: TinyConfig) -> None:
    if not 1 <= section.max_score <= 10:
        raise ConfigError("tiny.max_score", f"expected 1..10, got {section.max_score}")


class TinyService:
    def __init__(self, pool: Any, max_score: int) -> None:
        self.pool = pool
        self.max_score = max_score
        self.stored = asyncio.Event()

    async def on_result(self, event: Mapping[str, Any] | Gap) -> None:
        if isinstance(event, Gap):
            return
        score = min(int(ev.header(event, "Score") or 0), self.max_score)
        await self.pool.execute(
            "INSERT INTO tiny_score (call_id, score) VALUES ($1, $2)",
            ev.header(event, "CallId"),
            score,
        )
        self.stored.set()


TINY_SERVICE = web.AppKey("tiny", TinyService)


@requires(Role.SUPERVISOR)
async def scores(request: web.Request) -> web.StreamResponse:
    rows = await request.app[TINY_SERVICE].pool.fetch(
        "SELECT call_id, score FROM tiny_score ORDER BY call_id"
    )
    return json_response(
        {"by": request[SESSION_OF].username, "scores": [dict(row) for row in rows]}
    )


def tiny_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/tiny/scores", scores)


def tiny_openapi() -> dict[str, Any]:
    return {"paths": {"/api/v1/tiny/scores": {"get": {"summary": "the scores"}}}}


def tiny_feature(migrations: Path) -> tuple[Feature, list[TinyService]]:
    started: list[TinyService] = []

    @contextlib.asynccontextmanager
    async def run(runtime: Any, section: TinyConfig) -> AsyncIterator[None]:
        service = TinyService(runtime.pool, section.max_score)
        runtime.app[TINY_SERVICE] = service
        runtime.bus.subscribe(ami("UserEvent:HotlineTinyScore"), service.on_result, name="tiny")
        started.append(service)
        yield
        started.remove(service)

    feature = Feature(
        name="tiny",
        summary="a test feature",
        config=ConfigSection("tiny", TinyConfig, validate_tiny),
        migrations=migrations,
        routes=tiny_routes,
        openapi=tiny_openapi,
        run=run,
    )
    return feature, started


def test_a_feature_section_is_parsed_and_checked_naming_the_key(tmp_path: Path) -> None:
    feature, _ = tiny_feature(tmp_path)
    sections = known_sections([feature])
    config = load_config(overrides={"tiny.max_score": 3}, sections=sections)
    assert config.section("tiny", TinyConfig) == TinyConfig(max_score=3)
    with pytest.raises(ConfigError, match="tiny.max_score"):
        load_config(overrides={"tiny.max_score": 11}, sections=sections)
    with pytest.raises(ConfigError, match="tiny.colour"):
        load_config(overrides={"tiny.colour": "red"}, sections=sections)


async def test_a_tiny_feature_works_end_to_end_through_the_runtime(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    postgres = private_postgres
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "001_tiny_score.sql").write_text(
        "CREATE TABLE tiny_score (call_id text PRIMARY KEY, score int NOT NULL);\n"
    )
    feature, started = tiny_feature(migrations)
    async with FakeAMIServer(secret="pw") as switch:
        config = replace(
            load_config(overrides={"tiny.max_score": 4}, sections=known_sections([feature])),
            ami=AmiConfig(host="127.0.0.1", port=switch.port, secret="pw"),
            api=ApiConfig(port=0),
            database_dsn=postgres.dsn,
        )
        runtime = build_runtime(config, extra_features=[feature])
        async with runtime:
            await runtime.engine.wait_resynced(timeout_s=10)
            assert [s.max_score for s in started] == [4]
            assert "UserEvent" in runtime.bus.ami_names()
            versions = [
                r["version"]
                for r in await runtime.pool.fetch("SELECT version FROM schema_migrations")
            ]
            assert "tiny/001_tiny_score" in versions

            await switch.current.push(
                block(
                    "Event: UserEvent",
                    "UserEvent: HotlineTinyScore",
                    "CallId: call-1",
                    "Score: 9",
                )
            )
            await asyncio.wait_for(started[0].stored.wait(), 10)

            await AccountStore(runtime.pool).add("boss", Role.SUPERVISOR, "boss-password-1")
            async with aiohttp.ClientSession(runtime.url) as http:
                async with http.get("/api/v1/tiny/scores") as response:
                    assert response.status == 401
                async with http.post(
                    "/api/v1/sessions", json={"username": "boss", "password": "boss-password-1"}
                ) as response:
                    token = (await response.json())["token"]
                headers = {"Authorization": f"Bearer {token}"}
                async with http.get("/api/v1/tiny/scores", headers=headers) as response:
                    assert response.status == 200
                    assert await response.json() == {
                        "by": "boss",
                        "scores": [{"call_id": "call-1", "score": 4}],
                    }
                async with http.get("/api/v1/openapi.json") as response:
                    paths = (await response.json())["paths"]
                assert "/api/v1/tiny/scores" in paths and "/api/v1/agents" in paths
        assert started == []  # stopped with the runtime
