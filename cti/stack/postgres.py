"""A private PostgreSQL: ``initdb`` in a temporary directory, our child process,
loopback only, trust auth for its single local user.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
from pathlib import Path

from .ports import free_tcp_port
from .process import ChildProcess, as_user_prefix

PORT_ATTEMPTS = 3


class PostgresNotAvailable(RuntimeError):
    """PostgreSQL server binaries are missing or the server would not start."""


def find_bin_dir() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name)
    )
    if not found:
        raise PostgresNotAvailable(
            "PostgreSQL server binaries not found under /usr/lib/postgresql; "
            "run scripts/setup-system.sh (package postgresql)"
        )
    return Path(found[-1]).parent


class PrivatePostgres:
    USER = "hotline"
    DATABASE = "hotline"

    def __init__(self, run_dir: Path, *, port: int = 0) -> None:
        self.run_dir = run_dir
        self.data_dir = run_dir / "data"
        self.port = port
        self.process: ChildProcess | None = None
        self._os_user = "postgres" if os.geteuid() == 0 else None

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.USER}@127.0.0.1:{self.port}/{self.DATABASE}"

    async def _run(self, *argv: str) -> None:
        prefix = as_user_prefix(self._os_user) if self._os_user else []
        proc = await asyncio.create_subprocess_exec(
            *prefix, *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise PostgresNotAvailable(
                f"{Path(argv[0]).name} failed ({proc.returncode}): "
                f"{out.decode(errors='replace')[-2000:]}"
            )

    async def start(self, *, ready_timeout_s: float = 30.0) -> None:
        bin_dir = find_bin_dir()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self._os_user:
            shutil.chown(self.run_dir, self._os_user)
            for parent in self.run_dir.resolve().parents:
                if not parent.stat().st_mode & 0o001:
                    raise PostgresNotAvailable(
                        f"{parent} is not traversable by the '{self._os_user}' user that "
                        f"PostgreSQL runs as (we are root); chmod o+x it or choose another "
                        f"run directory"
                    )
        chosen_port = not self.port
        if chosen_port:
            self.port = free_tcp_port()
        if not (self.data_dir / "PG_VERSION").exists():
            await self._run(
                str(bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            )
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                await self._launch(bin_dir, ready_timeout_s)
                break
            except PostgresNotAvailable as exc:
                # The port was free when chosen; another process may take it
                # before postgres binds. Ours to choose: choose again.
                if not chosen_port or attempt == PORT_ATTEMPTS or "already in use" not in str(exc):
                    raise
                self.port = free_tcp_port()
        await self._run(
            str(bin_dir / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            self.USER,
            self.DATABASE,
        )

    async def _launch(self, bin_dir: Path, ready_timeout_s: float) -> None:
        prefix = as_user_prefix(self._os_user) if self._os_user else []
        # fsync off: a private throw-away cluster for demos and tests, never production.
        self.process = ChildProcess(
            "postgres",
            [
                *prefix,
                str(bin_dir / "postgres"),
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-k",
                str(self.run_dir),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=50",
                "-c",
                "TimeZone=Asia/Shanghai",
            ],
            log_path=self.run_dir / "postgres.log",
        )
        await self.process.start()
        await self._wait_ready(bin_dir, ready_timeout_s)

    async def _wait_ready(self, bin_dir: Path, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            if self.process is None or not self.process.running:
                raise PostgresNotAvailable(
                    "postgres exited during start-up:\n"
                    + (self.process.log_tail() if self.process else "")
                )
            proc = await asyncio.create_subprocess_exec(
                str(bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)
            )
            if await proc.wait() == 0:
                return
            if loop.time() > deadline:
                raise PostgresNotAvailable(
                    f"postgres not ready on 127.0.0.1:{self.port} after "
                    f"{timeout_s:.0f} s; see {self.run_dir / 'postgres.log'}"
                )
            await asyncio.sleep(0.1)  # the server offers nothing to await before it listens

    async def stop(self) -> None:
        if self.process is not None:
            # SIGINT is PostgreSQL's "fast shutdown".
            import signal

            await self.process.stop(sig=signal.SIGINT, grace_s=10.0)
