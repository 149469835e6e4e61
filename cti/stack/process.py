"""Child processes of the private stack: owned, logged, never orphaned.

Each child gets ``PR_SET_PDEATHSIG=SIGKILL`` so that it dies with the engine or
test run even when that is killed outright; a normal stop is graceful first.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
from collections.abc import Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1

log = logging.getLogger(__name__)


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass


def as_user_prefix(user: str) -> list[str]:
    """Command prefix that runs a child as *user* when we are root.

    ``setpriv`` execs in place (no fork), and sets the death signal after the
    user switch, which would otherwise clear it.
    """
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--pdeathsig=KILL"]


class ChildProcess:
    """One long-running child with its output in a log file."""

    def __init__(
        self, name: str, argv: Sequence[str], *, log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=self.env,
                preexec_fn=_die_with_parent,
            )
        log.debug("%s started (pid %s): %s", self.name, self.proc.pid, " ".join(self.argv))

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def stop(self, *, sig: int = signal.SIGTERM, grace_s: float = 10.0) -> None:
        """Signal the child, wait *grace_s*, then SIGKILL. Idempotent."""
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            self.proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            await asyncio.wait_for(self.proc.wait(), grace_s)
        except TimeoutError:
            log.warning(
                "%s (pid %s) ignored signal %s for %.0f s; killing it",
                self.name,
                self.proc.pid,
                sig,
                grace_s,
            )
            self.kill()
            await self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass

    async def wait(self) -> int:
        assert self.proc is not None
        return await self.proc.wait()
