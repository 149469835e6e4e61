"""The recordings' pure core: call changes and the switch's "recording
started" report in, catalog commands out.

A call's recording is *armed* when the dialplan starts MixMonitor on the
caller's channel, just before the caller is first offered to an agent
(``UserEvent(HotlineRecording)``: the file, and when it started). It *opens*
at the call's first answer (:class:`CallAnswered`); the workers cut what
the file holds before that moment (ringing, hold music). It covers every
later agent (transfers, three-way calls), hold and the after-call step in
the same file, and *closes* at the caller's hangup (:class:`CallEnded`), or
when the call vanished with the switch (:class:`CallLost`, found by the
resync after a crash). Asterisk sends no MixMonitorStop for a channel that
simply hangs up, so nothing waits for one.

An armed call that ended unanswered has no recording: its raw files are
discarded. One *lost* with the switch while the engine was away may have
been answered unseen: its audio is kept and catalogued from the file's
start, since deleting a conversation is worse than keeping a ring.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.call_changes import (
    AgentConnected,
    AgentLeft,
    CallAnswered,
    CallArrived,
    CallChange,
    CallEnded,
    CallLost,
    CallQueued,
)

__all__ = [
    "AgentSpan",
    "Close",
    "Discard",
    "Open",
    "RecordingCore",
    "RecordingFiles",
]


@dataclass(frozen=True, slots=True)
class RecordingFiles:
    """Where Asterisk writes a call's recording: the mix and the two legs,
    and when it started writing them (the stored file is cut at the first
    answer: what comes before is ringing and hold music)."""

    mix: str
    caller: str
    agents: str
    started_at: float | None = None

    @classmethod
    def beside(cls, mix: str, started_at: float | None = None) -> RecordingFiles:
        """The legs named as the dialplan names them, beside *mix*."""
        stem = mix[: -len(".wav")] if mix.endswith(".wav") else mix
        return cls(mix, f"{stem}-caller.wav", f"{stem}-agents.wav", started_at)


@dataclass(frozen=True, slots=True)
class AgentSpan:
    agent: str
    start: float
    end: float | None

    def as_dict(self) -> dict[str, object]:
        return {"agent": self.agent, "from": self.start, "to": self.end}


@dataclass(frozen=True, slots=True)
class Open:
    """Catalog a recording: the call was answered."""

    call_id: str
    at: float
    line: str | None
    queue: str | None
    caller_number: str
    agent: str
    files: RecordingFiles | None
    """None: the switch never reported a recording for this answered call."""


@dataclass(frozen=True, slots=True)
class Close:
    """The caller hung up: the recording is complete, post-process it."""

    call_id: str
    at: float
    agents: tuple[AgentSpan, ...]


@dataclass(frozen=True, slots=True)
class Discard:
    """An unanswered call: remove whatever raw files it left."""

    call_id: str
    files: RecordingFiles


Command = Open | Close | Discard


@dataclass(slots=True)
class _Call:
    line: str | None = None
    queue: str | None = None
    caller_number: str = ""
    files: RecordingFiles | None = None
    opened: bool = False
    spans: list[AgentSpan] = field(default_factory=list)


class RecordingCore:
    """Per live call: what it is, whether it is recorded, who took part when."""

    def __init__(self) -> None:
        self._calls: dict[str, _Call] = {}

    @property
    def live(self) -> int:
        return len(self._calls)

    def is_open(self, call_id: str) -> bool:
        call = self._calls.get(call_id)
        return call is not None and call.opened

    def files_of(self, call_id: str) -> RecordingFiles | None:
        call = self._calls.get(call_id)
        return call.files if call is not None else None

    def armed(self, call_id: str, files: RecordingFiles) -> list[Command]:
        """The switch started MixMonitor for *call_id*."""
        call = self._calls.setdefault(call_id, _Call())
        if call.files is None:
            call.files = files
        return []

    def adopt(
        self,
        call_id: str,
        *,
        answered_at: float,
        agent: str,
        line: str | None,
        queue: str | None,
        caller_number: str,
    ) -> list[Command]:
        """A call found answered by a resync (the engine was away when it
        was answered): its recording opens now, as from its answer."""
        call = self._calls.setdefault(call_id, _Call())
        if call.opened:
            return []
        call.line, call.queue = call.line or line, call.queue or queue
        call.caller_number = call.caller_number or caller_number
        return self._open(call_id, call, agent, answered_at)

    def apply(self, change: CallChange) -> list[Command]:
        if isinstance(change, CallArrived):
            call = self._calls.setdefault(change.call_id, _Call())
            call.line = change.line
            call.caller_number = change.caller_number
            return []
        if isinstance(change, CallQueued):
            call = self._calls.setdefault(change.call_id, _Call())
            call.line = call.line or change.line
            call.queue = change.queue or call.queue
            return []
        call = self._calls.get(change.call_id)
        if isinstance(change, CallAnswered):
            if call is None:
                call = self._calls[change.call_id] = _Call()
            if call.opened:
                return self._join(call, change.agent, change.at)
            return self._open(change.call_id, call, change.agent, change.at)
        if call is None:
            return []
        if isinstance(change, AgentConnected) and call.opened:
            return self._join(call, change.agent, change.at)
        if isinstance(change, AgentLeft) and call.opened:
            self._leave(call, change.agent, change.at)
            return []
        if isinstance(change, CallEnded | CallLost):
            del self._calls[change.call_id]
            if call.opened:
                for span in [s for s in call.spans if s.end is None]:
                    self._leave(call, span.agent, change.at)
                return [Close(change.call_id, change.at, tuple(call.spans))]
            if call.files is None:
                return []
            if isinstance(change, CallLost) and call.files.started_at is not None:
                # Gone while the engine was away: whether it was answered is
                # not known, so the audio is kept (catalogued from the file's
                # start) rather than risk deleting a conversation.
                opened = self._open(change.call_id, call, "", call.files.started_at)
                return [*opened, Close(change.call_id, change.at, ())]
            return [Discard(change.call_id, call.files)]
        return []

    @staticmethod
    def _open(call_id: str, call: _Call, agent: str, at: float) -> list[Command]:
        call.opened = True
        if agent:
            call.spans.append(AgentSpan(agent, at, None))
        return [
            Open(
                call_id=call_id,
                at=at,
                line=call.line,
                queue=call.queue,
                caller_number=call.caller_number,
                agent=agent,
                files=call.files,
            )
        ]

    @staticmethod
    def _join(call: _Call, agent: str, at: float) -> list[Command]:
        if not any(s.agent == agent and s.end is None for s in call.spans):
            call.spans.append(AgentSpan(agent, at, None))
        return []

    @staticmethod
    def _leave(call: _Call, agent: str, at: float) -> None:
        for i, span in enumerate(call.spans):
            if span.agent == agent and span.end is None:
                call.spans[i] = AgentSpan(agent, span.start, at)
