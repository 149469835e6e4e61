"""The console's service: builds the live snapshot, stores it in Redis for
other replicas and pushes it to open consoles (every ``kpi.print_every_s``,
and within ``PUSH_COALESCE_S`` of a caller queueing, being answered or
leaving); rings a supervisor's phone into ChanSpy on an agent's call."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from common import ami_actions as ami

from . import core

if TYPE_CHECKING:
    from cti.runtime import Runtime

__all__ = ["ConsoleService"]

log = logging.getLogger(__name__)

PUSH_COALESCE_S = 0.25


class ConsoleService:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._push_handle: asyncio.TimerHandle | None = None

    def snapshot(self) -> dict[str, Any]:
        rt = self.runtime
        return core.snapshot(
            acd=rt.acd.acd,
            tracker=rt.acd.tracker,
            calls=rt.model.calls.values(),
            extra_alarms=rt.acd.service.switch_alarms.active(),
            now=rt.clock(),
        )

    def wanted(self) -> bool:
        """Someone reads the snapshot: an open console, or the Redis store
        (other replicas, dashboards). Building it costs: not for nobody."""
        return self.runtime.snapshot_store is not None or self.runtime.hub.has_consoles()

    def push(self, _item: object = None) -> None:
        """Build the snapshot, store it, push it to the open consoles."""
        self._push_handle = None
        if not self.wanted():
            return
        try:
            snapshot = self.snapshot()
        except Exception:
            log.exception("building the live snapshot failed")
            return
        if self.runtime.snapshot_store is not None:
            self.runtime.snapshot_store.set_snapshot(snapshot)
        self.runtime.hub.publish_console(snapshot)

    def push_soon(self, _change: object = None) -> None:
        """A caller queued, answered or left: dashboards see it at once (within
        PUSH_COALESCE_S, so that a burst of calls makes one push), not at the
        next KPI period."""
        if self._push_handle is None and self.wanted():
            loop = asyncio.get_running_loop()
            self._push_handle = loop.call_later(PUSH_COALESCE_S, self._push_after_calls)

    def _push_after_calls(self) -> None:
        # The alarms first, as on the KPI period: a forecast depends on who
        # is waiting and who is free now.
        try:
            self.runtime.acd.evaluate_alarms()
        except Exception:
            log.exception("evaluating the alarms failed")
        self.push()

    def close(self) -> None:
        if self._push_handle is not None:
            self._push_handle.cancel()

    def monitor(self, agent: str, phone: str, mode: str) -> None:
        """Ring the supervisor's ``phone`` into a ChanSpy on ``agent``'s call
        (``listen``, ``whisper`` or ``barge``). ValueError for an unknown mode."""
        options = core.SPY_OPTIONS.get(mode)
        if options is None:
            raise ValueError(f"unknown monitoring mode {mode!r}; expected {list(core.SPY_OPTIONS)}")
        self.runtime.send(
            ami.originate_application(
                f"PJSIP/{phone}",
                "ChanSpy",
                # The trailing "-" keeps PJSIP/1001 from matching PJSIP/10011.
                f"PJSIP/{agent}-,{options}",
                timeout_s=30,
                caller_id=f"{mode} <{agent}>",
            ),
            what=f"monitor ({mode}) agent {agent} from {phone}",
        )

    def caller_of(self, call_id: str) -> dict[str, str] | None:
        """The caller's number and name of a live call (unmasked: the route
        allows it to supervisors only, and audits it)."""
        call = self.runtime.model.calls.get(call_id)
        if call is None:
            return None
        return {"caller_number": call.caller_number, "caller_name": call.caller_name}
