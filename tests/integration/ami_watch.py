"""The integration tests' one AMI watcher: it follows the AMI events of a
link (the engine's, or an AMI session of its own when the engine runs in
another process) and awaits conditions on them, re-checked after every event.
Never a sleep: the state the tests look at changes only on events."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from cti.ami import AMILink
from cti.config import AmiConfig

EventTest = Callable[[dict[str, Any]], bool]


class AmiWatch:
    def __init__(self, link: AMILink, *, keep_events: bool = False) -> None:
        """Watch *link*'s events; ``keep_events``: remember them (for
        :meth:`count` and :meth:`wait`)."""
        self.link = link
        self.events: list[dict[str, Any]] = []
        self._keep = keep_events
        self._changed = asyncio.Event()
        link.add_event_handler(self._on_event)

    @classmethod
    def session(cls, ami: AmiConfig, *, name: str = "watch") -> AmiWatch:
        """A watcher on an AMI session of its own (start and close its link)."""
        link = AMILink(
            host=ami.host, port=ami.port, username=ami.username, secret=ami.secret, name=name
        )
        return cls(link, keep_events=True)

    def _on_event(self, event: Mapping[str, Any]) -> None:
        if self._keep:
            self.events.append(dict(event))
        self._changed.set()

    async def until(self, predicate: Callable[[], bool], *, timeout_s: float = 15.0) -> None:
        """Until *predicate()* holds (checked now and after every event)."""
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def count(self, test: EventTest) -> int:
        return sum(1 for event in self.events if test(event))

    async def wait(self, test: EventTest, count: int, timeout_s: float) -> None:
        """Until *count* of the kept events pass *test*."""
        await self.until(lambda: self.count(test) >= count, timeout_s=timeout_s)
