"""The engine: ingest ordering only.

One AMI link feeds the call model; every call change and then the raw event
are published on the bus, in the order Asterisk sent them. On every
(re)connect the model is rebuilt from the switch (:func:`cti.resync.resync`)
while live events are held, and applied on top of the rebuilt state once it
is done. Everything else (the ACD, call control, screen-pops, the console,
recordings, work orders) subscribes to the bus: see :mod:`cti.runtime`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from acd.presence import Presence
from cti.ami import AMILink
from cti.bus import Bus
from cti.calls import CallModel
from cti.resync import ResyncReport, resync

__all__ = ["Engine", "Resynced"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Resynced:
    """Published once the call model was rebuilt from the switch and the
    changes it found were published; held live events follow."""

    report: ResyncReport


class Engine:
    def __init__(
        self,
        *,
        link: AMILink,
        model: CallModel,
        presence: Presence,
        bus: Bus,
        clock: Callable[[], float] = time.time,
        fully_booted_timeout_s: float = 10.0,
    ) -> None:
        self.link = link
        self.model = model
        self.presence = presence
        self.bus = bus
        self.clock = clock
        self.fully_booted_timeout_s = fully_booted_timeout_s
        self.resyncs: list[ResyncReport] = []
        self._resynced = asyncio.Condition()
        self._held: list[Mapping[str, Any]] | None = None
        link.add_event_handler(self._on_event)
        link.add_connect_handler(self._on_connect)

    async def start(self) -> None:
        await self.link.start()

    async def stop(self) -> None:
        await self.link.close()

    async def wait_resynced(self, count: int = 1, timeout_s: float = 30.0) -> ResyncReport:
        """Until at least *count* resyncs have completed; returns the latest report."""
        async with asyncio.timeout(timeout_s):
            async with self._resynced:
                await self._resynced.wait_for(lambda: len(self.resyncs) >= count)
        return self.resyncs[-1]

    async def _on_connect(self) -> None:
        # Live events keep arriving while the snapshot is taken. Applied before
        # model.resync() they would be judged against a snapshot that predates
        # them (a call that just arrived would be declared lost), so they are
        # held and applied, in order, on top of the rebuilt state.
        self._held = []
        try:
            report, changes = await resync(
                self.link,
                self.model,
                self.presence,
                fully_booted_timeout_s=self.fully_booted_timeout_s,
                clock=self.clock,
            )
            for change in changes:
                self.bus.publish(change)
            self.bus.publish(Resynced(report))
            async with self._resynced:
                self.resyncs.append(report)
                self._resynced.notify_all()
        finally:
            self._release_held()

    def _release_held(self) -> None:
        held = self._held
        while held:
            self._apply(held.pop(0))
        # Only once empty: an event that arrived during the replay was appended
        # to the same list and has just been applied in its turn.
        self._held = None

    def _on_event(self, event: Mapping[str, Any]) -> None:
        if self._held is not None:
            self._held.append(event)
            return
        self._apply(event)

    def _apply(self, event: Mapping[str, Any]) -> None:
        publish = self.bus.publish
        for change in self.model.apply(event):
            publish(change)
        self.bus.publish_ami(event)
