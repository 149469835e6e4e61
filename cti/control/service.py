"""Call control performed: the desktop's commands checked against the live
call and agent state, turned into AMI actions by the pure core, and sent.

Also watches the events that end a control step on their own: a
consultation's Dial that is over, and a caller left alone in the call's
conference (the agent dropped out of a three-way call and the third party
hung up), who then goes on to the after-call step instead of waiting there.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from acd.agents import AgentState
from acd.core import Acd
from acd.service import AcdService
from common import ami_actions as ami
from common.ami_actions import ActionSender
from common.contexts import AFTER_CALL
from cti import events as ev
from cti.calls import AgentLeft, CallChange, CallEnded, CallLost, CallModel, Channel
from cti.control.core import (
    CallControl,
    ControlError,
    ControlState,
    Destination,
    Target,
    TargetKind,
)

log = logging.getLogger(__name__)


CONSULT_RESULT = "HotlineConsultResult"
"""The UserEvent the dialplan raises when a consultation's Dial is over."""


@dataclass(frozen=True, slots=True)
class ControlResult:
    """What a command did: the call, the command and the control state after it."""

    call_id: str
    command: str
    state: dict[str, object]


@dataclass
class CallControlService:
    core: CallControl
    model: CallModel
    acd: Acd
    service: AcdService
    send: ActionSender
    report: Callable[[list[CallChange]], None]
    """Publishes changes the control made itself (a transfer started) on the
    bus, as the call model's own."""
    clock: Callable[[], float]
    changed: Callable[[str], None] = lambda call_id: None
    """Told the call id whenever a call's control state changed (the feature
    publishes ``AgentDetailsChanged``: the agent's desktop gets its new state)."""
    _party_seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -- commands ---------------------------------------------------------------------

    def run(self, agent: str, command: str, target: Target | None) -> ControlResult:
        """A desktop command by name (the HTTP API's ``/calls/{id}/{command}``)."""
        if command in _WITH_TARGET:
            if target is None:
                raise ControlError(f"{command} needs a target", status=400, field="target")
            return _WITH_TARGET[command](self, agent, target)
        plain = _PLAIN.get(command)
        if plain is None:
            raise ControlError(f"unknown command {command!r}", status=404)
        return plain(self, agent)

    def command(self, agent: str, command: str, target: Target | None) -> dict[str, Any]:
        """One command from *agent*'s desktop, as the HTTP route answers it;
        ControlError when it cannot be done."""
        result = self.run(agent, command, target)
        return {"call_id": result.call_id, "command": result.command, "control": result.state}

    def agent_on_call(self, call_id: str) -> str | None:
        """The agent talking on *call_id* (the one whose desktop controls it)."""
        return self.acd.agent_on_call(call_id)

    def agent_detail(self, agent_id: str) -> dict[str, Any]:
        """What call control adds to an agent's state: its call's control
        state (on hold, consulting, three-way), or None."""
        agent = self.acd.agents.get(agent_id)
        control = self.state_of(agent.call_id) if agent is not None and agent.call_id else None
        return {"control": control.as_dict() if control is not None else None}

    def hold(self, agent: str) -> ControlResult:
        call_id, caller, leg = self._agent_call(agent)
        return self._done(call_id, "hold", self.core.hold(call_id, caller, leg))

    def resume(self, agent: str) -> ControlResult:
        call_id, _, leg = self._agent_call(agent)
        return self._done(call_id, "resume", self.core.resume(call_id, leg))

    def transfer(self, agent: str, target: Target) -> ControlResult:
        """Blind transfer: to an agent or a queue (through the ACD, which
        rings the target and, unanswered, keeps the call queued), or out
        through the trunk (unanswered, the caller comes back to the queue)."""
        dest = self._destination(agent, target)
        call_id, caller, leg = self._agent_call(agent)
        actions = self.core.blind_transfer(call_id, caller, leg, dest)
        facts = self.service.calls.get(call_id)
        if facts is not None and dest.kind is TargetKind.AGENT:
            facts.transfer_to = dest.label
        self.report(
            self.model.transfer_started(
                call_id, from_agent=agent, target=dest.label, kind="blind", at=self.clock()
            )
        )
        return self._done(call_id, f"transfer to {dest.kind.value} {dest.label}", actions)

    def consult(self, agent: str, target: Target) -> ControlResult:
        dest = self._destination(agent, target)
        call_id, caller, leg = self._agent_call(agent)
        actions = self.core.consult(call_id, caller, leg, dest)
        return self._done(call_id, f"consult {dest.label}", actions)

    def complete_consult(self, agent: str) -> ControlResult:
        """Attended transfer: the consulted party joins the caller, the agent leaves."""
        call_id, _, leg = self._agent_call(agent)
        target = self._consult_leg(call_id, answered=True)
        st = self.core.state(call_id)
        label = st.consult.label if st.consult else ""
        actions = self.core.complete_consult(
            call_id, leg, target.name if target is not None else None
        )
        if target is not None:
            st.arriving.add(target.uniqueid)
        self.report(
            self.model.transfer_started(
                call_id, from_agent=agent, target=label, kind="attended", at=self.clock()
            )
        )
        return self._done(call_id, "complete consultation", actions)

    def cancel_consult(self, agent: str) -> ControlResult:
        call_id, _, _ = self._agent_call(agent)
        target = self._consult_leg(call_id, answered=False)
        actions = self.core.cancel_consult(call_id, target.name if target is not None else None)
        return self._done(call_id, "cancel consultation", actions)

    def add_party(self, agent: str, target: Target) -> ControlResult:
        """Three-way call: *target* is rung into the call's conference."""
        dest = self._destination(agent, target)
        call_id, caller, leg = self._agent_call(agent)
        channel_id = f"{call_id}-party{next(self._party_seq)}"
        actions = self.core.add_party(call_id, caller, leg, dest, channel_id=channel_id)
        return self._done(call_id, f"add {dest.label}", actions)

    def leave(self, agent: str) -> ControlResult:
        call_id, _, leg = self._agent_call(agent)
        return self._done(call_id, "leave three-way call", self.core.leave(call_id, leg))

    def adopt_calls(self) -> int:
        """After a resync: the control state of calls found in their
        conference, rebuilt from the channels' places; how many."""
        adopted = 0
        for call in self.model.calls.values():
            if call.call_id in self.core.calls:
                continue
            caller = self.model.channels.get(call.caller_channel)
            if caller is None:
                continue
            contexts = [
                self.model.channels[uid].context
                for uid in call.connected_legs
                if uid in self.model.channels
            ]
            if self.core.adopt(call.call_id, caller_context=caller.context, leg_contexts=contexts):
                adopted += 1
                log.info("call %s: found in its conference; control state rebuilt", call.call_id)
        return adopted

    def state_of(self, call_id: str) -> ControlState | None:
        return self.core.calls.get(call_id)

    # -- events -----------------------------------------------------------------------

    def on_change(self, change: CallChange) -> None:
        if isinstance(change, (CallEnded, CallLost)):
            st = self.core.calls.get(change.call_id)
            if st is not None and st.held:
                self._release_held_leg(change.call_id)
            self.core.forget(change.call_id)
        elif isinstance(change, AgentLeft):
            # An agent's leg hung up (it may have been waiting apart, on hold,
            # and in no bridge: its Hangup is the only sign).
            self._check_caller_alone(change.call_id)

    def _release_held_leg(self, call_id: str) -> None:
        """The caller hung up while on hold: the agent's leg, waiting apart
        in silence, is let go at once (not at its hold deadline)."""
        for call in reversed(self.model.ended):
            if call.call_id != call_id:
                continue
            for uniqueid in call.connected_legs:
                channel = self.model.channels.get(uniqueid)
                if channel is not None:
                    self.send(
                        ami.hangup(channel.name),
                        what=f"call {call_id}: caller gone during hold, agent leg let go",
                        refusal_ok=True,
                    )
            return

    def on_event(self, event: Mapping[str, Any]) -> None:
        """Raw AMI events the control steps end on (called only while some
        call is under control)."""
        name = ev.event_name(event)
        if name == "UserEvent" and ev.user_event_name(event) == CONSULT_RESULT:
            call = self.model.call_for_channel(ev.uniqueid(event))
            if call is not None:
                log.info(
                    "call %s: consultation with %s over (%s)",
                    call.call_id,
                    ev.consult_target(event),
                    ev.dial_status(event),
                )
                self.core.consult_ended(call.call_id)
                self.changed(call.call_id)
        elif name == "OriginateResponse":
            channel_id = ev.uniqueid(event)
            if ev.originate_succeeded(event):
                self.core.party_answered(channel_id)
                return
            failed = self.core.party_failed(channel_id)
            if failed is not None:
                self.changed(failed[0])
                self._check_caller_alone(failed[0])
                log.warning(
                    "call %s: three-way party %s did not answer (%s); the caller stays "
                    "with the agent",
                    failed[0],
                    failed[1].label,
                    ev.originate_reason(event),
                )
        elif name == "BridgeEnter":
            uniqueid = ev.uniqueid(event)
            self._arrived(uniqueid)
            call = self.model.call_for_channel(uniqueid)
            if call is not None and call.caller_channel == uniqueid:
                # The caller arriving in its conference after its agent hung up.
                self._check_caller_alone(call.call_id)
        elif name in ("BridgeLeave", "Hangup"):
            uniqueid = ev.uniqueid(event)
            if name == "Hangup":
                self._arrived(uniqueid)  # or never will
            call = self.model.call_for_channel(uniqueid)
            if call is not None:
                self._check_caller_alone(call.call_id)

    def _arrived(self, uniqueid: str) -> None:
        for st in self.core.calls.values():
            if uniqueid in st.arriving:
                st.arriving.discard(uniqueid)
                self._check_caller_alone(st.call_id)

    def _check_caller_alone(self, call_id: str) -> None:
        st = self.core.calls.get(call_id)
        call = self.model.calls.get(call_id)
        if st is None or call is None or not st.in_conference:
            return
        if st.ringing_parties or st.arriving:
            return  # someone is on the way in
        if call.connected_legs:
            return  # an agent is still on it (talking, holding or consulting)
        caller = self.model.channels.get(call.caller_channel)
        if caller is None or caller.bridge_id is None:
            return
        bridge = self.model.bridges.get(caller.bridge_id)
        if bridge is None or bridge.channels != {call.caller_channel}:
            log.debug(
                "call %s: caller not alone in bridge %s: %s",
                call_id,
                caller.bridge_id,
                None if bridge is None else sorted(bridge.channels),
            )
            return
        log.info(
            "call %s: the caller is alone in the conference; on to the after-call step", call_id
        )
        self.core.forget(call_id)
        self.send(
            ami.redirect(caller.name, AFTER_CALL, "s"),
            what=f"call {call_id}: caller alone after the three-way call",
        )

    # -- helpers ----------------------------------------------------------------------

    def agent_call(self, agent: str) -> str:
        """The call *agent* is talking on, or ControlError (409)."""
        state = self.acd.agents.get(agent)
        if state is None:
            raise ControlError(f"no agent {agent!r}", status=404)
        if state.state is not AgentState.ON_CALL or state.call_id is None:
            raise ControlError(f"agent {agent} is not on a call ({state.state.name})")
        return state.call_id

    def _agent_call(self, agent: str) -> tuple[str, str, str]:
        call_id = self.agent_call(agent)
        call = self.model.calls.get(call_id)
        caller = self.model.channels.get(call.caller_channel) if call is not None else None
        leg = self.model.connected_leg(call_id, agent)
        if caller is None or leg is None:
            raise ControlError(f"call {call_id} has no live caller and agent {agent} legs")
        return call_id, caller.name, leg.name

    def _destination(self, agent: str, target: Target) -> Destination:
        """Where *target* is, checked before anything is done: a bad target
        is a 400; an agent who is not free to take the call, a 409."""
        dest = self.core.resolve(target, acting_agent=agent)
        if dest.kind is TargetKind.AGENT:
            state = self.acd.agents.get(dest.label)
            if state is None or state.state is not AgentState.AVAILABLE or state.busy_external:
                now = "unknown" if state is None else state.state.name
                raise ControlError(f"agent {dest.label} is not available ({now})")
        return dest

    def _consult_leg(self, call_id: str, *, answered: bool) -> Channel | None:
        call = self.model.calls.get(call_id)
        if call is None:
            return None
        for uniqueid in call.consult_legs:
            if answered and uniqueid not in call.consult_answered:
                continue
            channel = self.model.channels.get(uniqueid)
            if channel is not None:
                return channel
        return None

    def _done(self, call_id: str, command: str, actions: list[dict[str, str]]) -> ControlResult:
        for action in actions:
            self.send(action, what=f"call {call_id}: {command} ({action['Action']})")
        log.info("call %s: %s", call_id, command)
        self.changed(call_id)
        state = self.core.calls.get(call_id)
        return ControlResult(
            call_id, command, state.as_dict() if state is not None else {"call_id": call_id}
        )


_WITH_TARGET: dict[str, Callable[[CallControlService, str, Target], ControlResult]] = {
    "transfer": CallControlService.transfer,
    "consult": CallControlService.consult,
    "conference": CallControlService.add_party,
}
_PLAIN: dict[str, Callable[[CallControlService, str], ControlResult]] = {
    "hold": CallControlService.hold,
    "resume": CallControlService.resume,
    "consult-complete": CallControlService.complete_consult,
    "consult-cancel": CallControlService.cancel_consult,
    "leave": CallControlService.leave,
}
