"""The private stack: services reachable, external ones honoured, nothing left behind."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from cti.config import load_config
from cti.engine import Engine
from cti.stack.postgres import PrivatePostgres
from cti.stack.private import PrivateStack, engine_config_for
from cti.stack.redis import PrivateRedis

pytestmark = pytest.mark.integration


async def test_private_services_answer_on_loopback(stack):
    private, info = stack
    conn = await asyncpg.connect(info.database_dsn)
    try:
        assert await conn.fetchval("show timezone") == "Asia/Shanghai"
        assert await conn.fetchval("select inet_server_addr()::text") == "127.0.0.1/32"
    finally:
        await conn.close()
    client = aioredis.from_url(info.redis_url)
    try:
        assert await client.ping() is True
    finally:
        await client.aclose()
    settings = await private.asterisk.cli("manager show settings")
    assert f"TCP Bindaddress:           127.0.0.1:{info.ami.port}" in settings
    assert "Web Manager (AMI/HTTP):    No" in settings
    user = await private.asterisk.cli(f"manager show user {info.ami.username}")
    assert "secret: <Set>" in user and "ACL: yes" in user
    assert "0:  deny - 0.0.0.0/0.0.0.0" in user and "1: allow - 127.0.0.1/255.255.255.255" in user


async def test_a_wrong_ami_secret_is_refused_by_asterisk(stack, caplog):
    private, info = stack
    config = load_config(overrides={"ami.port": info.ami.port, "ami.secret": "not-the-secret"})
    engine = Engine(config)
    await engine.start()
    try:
        with pytest.raises(TimeoutError):
            await engine.link.wait_connected(timeout_s=3)
    finally:
        await engine.stop()
    assert "Authentication failed" in caplog.text or "login" in caplog.text.lower()


async def test_external_services_named_by_env_are_used_instead():
    run_dir = Path(tempfile.mkdtemp(prefix="hotline-ext-"))
    run_dir.chmod(0o755)  # PostgreSQL runs as its own user when we are root
    pg = PrivatePostgres(run_dir / "pg")
    rd = PrivateRedis(run_dir / "redis")
    try:
        await pg.start()
        await rd.start()
        outer = PrivateStack(load_config(), env={})
        outer_info = await outer.start()  # provides the "external" Asterisk
        try:
            env = {
                "HOTLINE_AMI_HOST": "127.0.0.1",
                "HOTLINE_AMI_PORT": str(outer_info.ami.port),
                "HOTLINE_AMI_SECRET": outer_info.ami.secret,
                "HOTLINE_PG_DSN": pg.dsn,
                "HOTLINE_REDIS_URL": rd.url,
            }
            config = load_config(env=env)
            inner = PrivateStack(config, env=env)
            info = await inner.start()
            try:
                assert inner.asterisk is None and inner.postgres is None and inner.redis is None
                assert info.database_dsn == pg.dsn and info.redis_url == rd.url
                assert info.ami.port == outer_info.ami.port
                engine = Engine(engine_config_for(config, info))
                await engine.start()
                try:
                    report = await engine.wait_resynced(timeout_s=15)
                    assert report.fully_booted
                finally:
                    await engine.stop()
            finally:
                await inner.stop()
        finally:
            await outer.stop()
    finally:
        await asyncio.gather(pg.stop(), rd.stop())
        shutil.rmtree(run_dir, ignore_errors=True)
