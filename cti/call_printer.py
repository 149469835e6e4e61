"""Prints each call's life and a running count: the demo's console view."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TextIO

from cti.calls import (
    AgentConnected,
    AgentNoAnswer,
    AgentRinging,
    CallAnswered,
    CallArrived,
    CallChange,
    CallEnded,
    CallLost,
    CallQueued,
    CallTransferred,
)


def mask_number(number: str) -> str:
    """138****8000: the console is seen by more people than may see numbers."""
    if len(number) < 8:
        return "*" * len(number)
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


@dataclass
class CallCounts:
    arrived: int = 0
    answered: int = 0
    answered_within_15s: int = 0
    answered_queued: int = 0
    """Answered calls that went through the engine's queue (have a wait)."""
    abandoned: int = 0
    ended: int = 0
    lost: int = 0

    @property
    def active(self) -> int:
        return self.arrived - self.ended - self.lost


class CallPrinter:
    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self.counts = CallCounts()
        self._lines: dict[str, str] = {}
        self._queued: set[str] = set()
        """Calls the engine queued; a ring of any other call is app_queue's."""

    def _print(self, call_id: str, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        line = self._lines.get(call_id, "?")
        # Asterisk uniqueids end in a per-boot sequence number: short and unique enough here.
        label = "#" + call_id.rsplit(".", 1)[-1]
        print(f"{stamp} [{line:>5}] {label:>6}  {text}", file=self.out, flush=True)

    def __call__(self, change: CallChange) -> None:
        c = self.counts
        if isinstance(change, CallArrived):
            c.arrived += 1
            self._lines[change.call_id] = change.line or "-"
            name = f" {change.caller_name}" if change.caller_name else ""
            self._print(change.call_id, f"arrived from {mask_number(change.caller_number)}{name}")
        elif isinstance(change, CallQueued):
            self._queued.add(change.call_id)
            self._lines[change.call_id] = change.line or self._lines.get(change.call_id, "-")
            self._print(
                change.call_id, "back in queue" if change.requeued else f"queued ({change.queue})"
            )
        elif isinstance(change, AgentRinging):
            self._print(
                change.call_id, f"{self._owner(change.call_id)}ringing agent {change.agent}"
            )
        elif isinstance(change, AgentNoAnswer):
            rang = f", rang {change.rang_s:.1f} s" if change.rang_s is not None else ""
            self._print(
                change.call_id,
                f"{self._owner(change.call_id)}agent {change.agent} did not take it "
                f"({change.dial_status}{rang})",
            )
        elif isinstance(change, CallAnswered):
            c.answered += 1
            if change.wait_s is not None:
                c.answered_queued += 1
                c.answered_within_15s += change.wait_s <= 15.0
            wait = f" after {change.wait_s:.1f} s" if change.wait_s is not None else ""
            self._print(change.call_id, f"answered by {change.agent}{wait}")
        elif isinstance(change, AgentConnected):
            self._print(change.call_id, f"now connected to agent {change.agent}")
        elif isinstance(change, CallTransferred):
            self._print(
                change.call_id,
                f"transferred {change.kind} from {change.from_agent} to {change.target}",
            )
        elif isinstance(change, CallEnded):
            c.ended += 1
            if change.abandoned:
                c.abandoned += 1
                wait = f"{change.wait_s:.1f} s" if change.wait_s is not None else "?"
                self._print(change.call_id, f"abandoned after waiting {wait}")
            else:
                talk = f"talk {change.talk_s:.1f} s" if change.talk_s is not None else "no talk"
                self._print(change.call_id, f"ended ({talk}, {change.cause})")
            self._forget(change.call_id)
        elif isinstance(change, CallLost):
            c.lost += 1
            self._print(change.call_id, f"lost: {change.reason}")
            self._forget(change.call_id)

    def _owner(self, call_id: str) -> str:
        return "" if call_id in self._queued else "(app_queue) "

    def _forget(self, call_id: str) -> None:
        self._lines.pop(call_id, None)
        self._queued.discard(call_id)

    def summary(self) -> str:
        c = self.counts
        rate = (
            f"{100.0 * c.answered_within_15s / c.answered_queued:.1f} %"
            if c.answered_queued
            else "n/a"
        )
        return (
            f"calls: {c.arrived} arrived, {c.answered} answered ({rate} within 15 s), "
            f"{c.abandoned} abandoned, {c.active} active, {c.lost} lost"
        )
