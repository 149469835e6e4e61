"""The recordings' pure core on the call changes of calls recorded from a
real Asterisk (tests/fixtures/ami): when a recording opens, who took part
when, when it closes, and what an unanswered call leaves behind."""

from __future__ import annotations

from common.call_changes import CallAnswered, CallArrived, CallEnded
from cti.calls import CallModel
from recording.core import AgentSpan, Close, Discard, Open, RecordingCore, RecordingFiles

try:
    from .transcripts import load_transcript
except ImportError:
    from transcripts import load_transcript

LINES = {"12345": "12345", "96181": "96181"}


def files(call_id: str) -> RecordingFiles:
    base = f"/rec/{call_id}"
    return RecordingFiles(f"{base}.wav", f"{base}-caller.wav", f"{base}-agents.wav")


def run(name: str, *, arm: bool = True) -> tuple[list, list]:
    """Replay *name* through the call model into the core; the switch's
    HotlineRecording report (absent from these transcripts) is given at
    the call's arrival."""
    model = CallModel(lines=LINES)
    core = RecordingCore()
    changes, commands = [], []
    for message in load_transcript(name):
        for change in model.apply(message):
            changes.append(change)
            if arm and isinstance(change, CallArrived):
                commands.extend(core.armed(change.call_id, files(change.call_id)))
            commands.extend(core.apply(change))
    assert core.live == 0, "every call's state is dropped at its end"
    return changes, commands


def test_answered_call_opens_at_answer_and_closes_at_hangup() -> None:
    changes, commands = run("normal_call")
    answered = next(c for c in changes if isinstance(c, CallAnswered))
    ended = next(c for c in changes if isinstance(c, CallEnded))
    assert [type(c) for c in commands] == [Open, Close]
    opened, closed = commands
    assert opened.call_id == answered.call_id
    assert opened.at == answered.at
    assert opened.agent == answered.agent
    assert opened.files == files(answered.call_id)
    assert opened.line == "12345"
    assert opened.caller_number
    assert closed.at == ended.at
    assert closed.agents == (AgentSpan(answered.agent, answered.at, ended.at),)


def test_transfer_is_one_recording_with_both_agents() -> None:
    changes, commands = run("transfer")
    assert [type(c) for c in commands] == [Open, Close]
    closed = commands[1]
    agents = [span.agent for span in closed.agents]
    assert len(agents) == 2 and len(set(agents)) == 2, closed.agents
    first, second = closed.agents
    assert first.end is not None and second.start >= first.start
    assert all(span.end is not None for span in closed.agents)


def test_unanswered_call_discards_its_files() -> None:
    changes, commands = run("abandon")
    assert not any(isinstance(c, CallAnswered) for c in changes)
    assert [type(c) for c in commands] == [Discard]
    assert commands[0].files.mix.endswith(".wav")


def test_answered_without_a_recording_is_reported() -> None:
    _, commands = run("normal_call", arm=False)
    opened = commands[0]
    assert isinstance(opened, Open) and opened.files is None
    assert isinstance(commands[1], Close)
