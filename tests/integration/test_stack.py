"""The private stack: services reachable, external ones honoured, nothing left behind."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from cti.ami import AMILoginFailed
from cti.config import load_config
from cti.runtime import build_runtime
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


async def test_a_wrong_ami_secret_is_refused_by_asterisk(stack):
    private, info = stack
    config = load_config(overrides={"ami.port": info.ami.port, "ami.secret": "not-the-secret"})
    runtime = build_runtime(config, serve_http=False)
    async with runtime:
        with pytest.raises(TimeoutError):
            await runtime.link.wait_connected(timeout_s=3)
    link = runtime.link
    # Refused by Asterisk (not a connection failure), every attempt, and never logged in.
    assert link.stats.login_failures >= 1
    assert link.stats.login_failures == link.stats.connect_failures
    assert link.stats.logins == 0
    error = link.last_connect_error
    assert isinstance(error, AMILoginFailed)
    assert (error.username, error.host, error.port) == (
        config.ami.username,
        "127.0.0.1",
        info.ami.port,
    )


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
                async with build_runtime(
                    engine_config_for(config, info), serve_http=False
                ) as runtime:
                    report = await runtime.engine.wait_resynced(timeout_s=15)
                    assert report.fully_booted
            finally:
                await inner.stop()
        finally:
            await outer.stop()
    finally:
        await asyncio.gather(pg.stop(), rd.stop())
        shutil.rmtree(run_dir, ignore_errors=True)


OWNER_SCRIPT = """
import asyncio, json, sys
from cti.config import load_config
from cti.stack.private import PrivateStack

async def main():
    stack = PrivateStack(load_config(), env={})
    await stack.start()
    pids = [s.process.pid for s in (stack.asterisk, stack.postgres, stack.redis)]
    print(json.dumps(pids), flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def _exited(pid: int, timeout_s: float) -> None:
    """Await a non-child process's exit through a pidfd (readable once it exits)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    gone = loop.create_future()
    loop.add_reader(fd, lambda: gone.done() or gone.set_result(None))
    try:
        await asyncio.wait_for(gone, timeout_s)
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def test_services_die_with_an_owner_that_is_killed_outright():
    owner = await asyncio.create_subprocess_exec(
        sys.executable, "-c", OWNER_SCRIPT, stdout=asyncio.subprocess.PIPE
    )
    line = await asyncio.wait_for(owner.stdout.readline(), 60)
    pids = json.loads(line)
    assert len(pids) == 3 and all(_alive(p) for p in pids)
    owner.kill()  # SIGKILL: no finally blocks, no atexit; only the kernel can clean up
    await owner.wait()
    await asyncio.gather(*(_exited(p, 15) for p in pids))
    assert not [p for p in pids if _alive(p)]


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie awaiting its reaper."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


async def test_private_postgres_chooses_again_when_its_port_is_taken_meanwhile(
    monkeypatch,
) -> None:
    """Between choosing a free port and binding it, another process may take
    it; the private PostgreSQL then chooses another port instead of failing."""
    import socket

    from cti.stack import postgres as pg
    from cti.stack.ports import free_tcp_port

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    ports = iter([taken, free_tcp_port()])
    monkeypatch.setattr(pg, "free_tcp_port", lambda: next(ports))
    run_dir = Path(tempfile.mkdtemp(prefix="hotline-pg-port-"))
    run_dir.chmod(0o755)  # PostgreSQL runs as its own user when we are root
    server = pg.PrivatePostgres(run_dir / "pg")
    try:
        await server.start()
        assert server.port != taken
        assert f":{server.port}/" in server.dsn
    finally:
        await server.stop()
        squatter.close()
        shutil.rmtree(run_dir, ignore_errors=True)
