"""A private Redis on a free loopback port, keeping nothing on disk."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from .ports import free_tcp_port
from .process import ChildProcess


class RedisNotAvailable(RuntimeError):
    """redis-server is missing or would not start."""


class PrivateRedis:
    def __init__(self, run_dir: Path, *, port: int = 0) -> None:
        self.run_dir = run_dir
        self.port = port
        self.process: ChildProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self, *, ready_timeout_s: float = 15.0) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise RedisNotAvailable(
                "redis-server not found; run scripts/setup-system.sh (package redis-server)"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_tcp_port()
        self.process = ChildProcess(
            "redis",
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.run_dir),
                "--protected-mode",
                "yes",
                "--daemonize",
                "no",
                "--logfile",
                "",
            ],
            log_path=self.run_dir / "redis.log",
        )
        await self.process.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ready_timeout_s
        while not await self._pong():
            if not self.process.running:
                raise RedisNotAvailable(
                    "redis-server exited during start-up:\n" + self.process.log_tail()
                )
            if loop.time() > deadline:
                raise RedisNotAvailable(
                    f"redis not answering PING on 127.0.0.1:{self.port} "
                    f"after {ready_timeout_s:.0f} s"
                )
            await asyncio.sleep(0.05)  # nothing to await before it listens

    async def _pong(self) -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        try:
            writer.write(b"PING\r\n")
            await writer.drain()
            return (await asyncio.wait_for(reader.readline(), 2.0)).startswith(b"+PONG")
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.process is not None:
            await self.process.stop(grace_s=5.0)
