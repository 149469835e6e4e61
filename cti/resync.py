"""Rebuild the engine's view from Asterisk after every (re)connect.

Order used by mature CTI servers: wait for FullyBooted, then CoreShowChannels,
then the state we own (channel variables the dialplan set, agent presence),
then Status.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from acd.presence import Presence
from common import ami_actions as ami
from common import channel_vars as var
from cti import events as ev
from cti.ami import AMILink
from cti.calls import CallChange, CallLost, CallModel

log = logging.getLogger(__name__)

STATUS_VARIABLES = (
    var.LINE,
    var.QUEUE,
    var.CALL_ID,
    var.AGENT,
    var.ENQUEUED_AT,
)


@dataclass(frozen=True)
class ResyncReport:
    fully_booted: bool
    channels: int
    calls: int
    lost: int
    agents_registered: int
    seconds: float


def _rows(reply: Any, event: str) -> list[Mapping[str, Any]]:
    messages = reply if isinstance(reply, list) else [reply]
    return [m for m in messages if ev.event_name(m) == event]


async def resync(
    link: AMILink,
    model: CallModel,
    presence: Presence,
    *,
    fully_booted_timeout_s: float,
    clock: Callable[[], float] = time.time,
) -> tuple[ResyncReport, list[CallChange]]:
    started = time.monotonic()
    log.info("AMI resync: waiting for FullyBooted")
    booted = await link.wait_fully_booted(fully_booted_timeout_s)
    if not booted:
        log.warning(
            "AMI resync: no FullyBooted within %.0f s; Asterisk may still be starting, "
            "resyncing anyway",
            fully_booted_timeout_s,
        )
    channels = _rows(await link.send_action(ami.core_show_channels()), "CoreShowChannel")
    changes = model.resync(channels, now=clock())
    statuses = _rows(await link.send_action(ami.status(STATUS_VARIABLES)), "Status")
    for row in statuses:
        variables = ev.status_variables(row)
        call = model.call_for_channel(ev.uniqueid(row))
        if call is None:
            continue
        if variables.get(var.LINE) and not call.line:
            call.line = variables[var.LINE]
        if variables.get(var.QUEUE) and not call.queue:
            call.queue = variables[var.QUEUE]
        if call.adopted and variables.get(var.ENQUEUED_AT):
            # The 15 s clock started at the first queue entry, which the
            # dialplan recorded; the channel's age would include the greeting.
            try:
                call.queued_at = float(variables[var.ENQUEUED_AT])
            except ValueError:
                log.warning(
                    "call %s: bad HOTLINE_ENQUEUED_AT %r",
                    call.call_id,
                    variables[var.ENQUEUED_AT],
                )
    presence.resync(
        ev.device_state(row)
        for row in _rows(await link.send_action(ami.device_state_list()), "DeviceStateChange")
    )
    report = ResyncReport(
        fully_booted=booted,
        channels=len(channels),
        calls=len(model.calls),
        lost=sum(isinstance(c, CallLost) for c in changes),
        agents_registered=len(presence.registered),
        seconds=time.monotonic() - started,
    )
    log.info(
        "AMI resync done in %.3f s: fully booted=%s, %d channels, %d active calls, "
        "%d calls lost while disconnected, %d agents registered (Status checked %d channels)",
        report.seconds,
        report.fully_booted,
        report.channels,
        report.calls,
        report.lost,
        report.agents_registered,
        len(statuses),
    )
    return report, changes
