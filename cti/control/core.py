"""The pure core of call control: a desktop command and the call's state in,
the AMI actions that perform it out.

How a call is moved (the contexts are in ``extensions.conf.tmpl``):

* The caller's channel carries the recording (MixMonitor), so it is never
  hung up by a move: every move is a Redirect of it, or leaves it where it is.
* The first hold, consultation or three-way call moves the caller and the
  agent into the call's conference (ConfBridge named after the call). From
  then on the caller stays there: a hold takes the agent's leg out, a
  consultation sends the agent's leg dialling, a third party is originated
  into it. Alone in it, the caller hears the hold music.
* A blind transfer sends the caller on: back to a queue (for a queue or an
  agent: the ACD routes it, RONA included) or out through the trunk (a
  mobile, the city 12345 centre), from where an unanswered ring returns it to
  the queue.

No I/O here: the engine supplies channel names and performs the actions.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import Enum

from common import ami_actions as ami
from common import channel_vars as var
from common.ami_actions import Action
from common.contexts import AGENT_HOLD, CONFERENCE, CONSULT, RELEASE, REQUEUE, TRANSFER_OUT

__all__ = [
    "CallControl",
    "ControlError",
    "ControlState",
    "Destination",
    "Target",
    "TargetKind",
]

TRUNK = "trunk"


class TargetKind(Enum):
    AGENT = "agent"  # another seat, by extension
    QUEUE = "queue"  # a queue, by name
    MOBILE = "mobile"  # an agent's mobile phone (default: the acting agent's)
    CITY = "city"  # the city 12345 centre (电话互转)
    EXTERNAL = "external"  # a number outside (a department), within the allowed pattern


@dataclass(frozen=True, slots=True)
class Target:
    kind: TargetKind
    value: str = ""


@dataclass(frozen=True, slots=True)
class Destination:
    """A resolved target: what to dial, and how it is reported."""

    kind: TargetKind
    label: str  # "1002", "12345-general", "13900139000"
    dial: str  # "PJSIP/1002", "PJSIP/13900139000@trunk"; "" for a queue

    @property
    def external(self) -> bool:
        return self.kind in (TargetKind.MOBILE, TargetKind.CITY, TargetKind.EXTERNAL)


class ControlError(Exception):
    """A command that cannot be done now or with these arguments. ``status``
    is the HTTP status the API answers with; ``field`` names the payload
    field at fault, if one is."""

    def __init__(self, message: str, *, status: int = 409, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


@dataclass(slots=True)
class ControlState:
    """What call control has done to one call so far."""

    call_id: str
    in_conference: bool = False
    held: bool = False
    consult: Destination | None = None
    parties: list[Destination] = field(default_factory=list)
    ringing_parties: dict[str, Destination] = field(default_factory=dict)
    """Three-way parties being rung, by the channel id given to Originate."""
    arriving: set[str] = field(default_factory=set)
    """Uniqueids of legs on their way into the conference (a completed
    consultation's target): until they are in, the caller is not alone."""

    def as_dict(self) -> dict[str, object]:
        return {
            "call_id": self.call_id,
            "in_conference": self.in_conference,
            "held": self.held,
            "consult": self.consult.label if self.consult else None,
            "parties": [p.label for p in self.parties],
            "ringing": [p.label for p in self.ringing_parties.values()],
        }


def _both(
    channel: str, context: str, exten: str, extra: str, extra_context: str, extra_exten: str
) -> Action:
    """One Redirect moving two legs at once (neither is left alone in a bridge)."""
    return ami.redirect(
        channel,
        context,
        exten,
        extra_channel=extra,
        extra_context=extra_context,
        extra_exten=extra_exten,
    )


@dataclass
class CallControl:
    """Per-call control state and the actions of each desktop command."""

    agents: Collection[str]
    queues: Collection[str]
    agent_mobiles: Mapping[str, str]
    city_center_number: str
    external_number_pattern: str
    transfer_ring_s: int
    calls: dict[str, ControlState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._external = re.compile(self.external_number_pattern)

    # -- targets --------------------------------------------------------------------

    def resolve(self, target: Target, *, acting_agent: str) -> Destination:
        """The destination of *target*, or ControlError (400, field ``target``)."""
        kind, value = target.kind, target.value.strip()
        if kind is TargetKind.AGENT:
            if value not in self.agents:
                raise ControlError(f"no agent {value!r}", status=400, field="target.value")
            if value == acting_agent:
                raise ControlError("cannot transfer a call to oneself", field="target.value")
            return Destination(kind, value, f"PJSIP/{value}")
        if kind is TargetKind.QUEUE:
            if value not in self.queues:
                raise ControlError(f"no queue {value!r}", status=400, field="target.value")
            return Destination(kind, value, "")
        if kind is TargetKind.MOBILE:
            owner = value or acting_agent
            number = self.agent_mobiles.get(owner, "")
            if not number:
                raise ControlError(
                    f"agent {owner} has no mobile number configured (agents[].mobile)",
                    field="target.value",
                )
            return Destination(kind, number, self._trunk(number))
        if kind is TargetKind.CITY:
            number = self.city_center_number
            return Destination(kind, number, self._trunk(number))
        if not self._external.fullmatch(value):
            raise ControlError(
                f"{value!r} is not a number this hotline may call out to "
                "(control.external_number_pattern)",
                status=400,
                field="target.value",
            )
        return Destination(kind, value, self._trunk(value))

    @staticmethod
    def _trunk(number: str) -> str:
        return f"PJSIP/{number}@{TRUNK}"

    # -- commands -------------------------------------------------------------------

    def state(self, call_id: str) -> ControlState:
        return self.calls.setdefault(call_id, ControlState(call_id))

    def hold(self, call_id: str, caller: str, agent: str) -> list[Action]:
        st = self.state(call_id)
        self._no_consult(st)
        if st.held:
            raise ControlError("the call is already on hold")
        st.held = True
        if st.in_conference:
            return [ami.redirect(agent, AGENT_HOLD, "s")]
        st.in_conference = True
        return [_both(caller, CONFERENCE, "caller", agent, AGENT_HOLD, "s")]

    def resume(self, call_id: str, agent: str) -> list[Action]:
        st = self.state(call_id)
        if not st.held:
            raise ControlError("the call is not on hold")
        st.held = False
        return [ami.redirect(agent, CONFERENCE, "party")]

    def blind_transfer(
        self, call_id: str, caller: str, agent: str, dest: Destination
    ) -> list[Action]:
        """The caller goes on to *dest*; the agent's leg is let go (a held
        leg explicitly; otherwise the end of its Dial or of the conference,
        whose marked user the caller is, releases it)."""
        st = self.state(call_id)
        self._no_consult(st)
        actions: list[Action] = []
        if dest.external:
            actions.append(ami.redirect(caller, TRANSFER_OUT, dest.label))
        else:
            if dest.kind is TargetKind.QUEUE:
                actions.append(ami.setvar(caller, var.QUEUE, dest.label))
            actions.append(ami.redirect(caller, REQUEUE, "s"))
        if st.held:
            actions.append(ami.hangup(agent))
        self.calls.pop(call_id, None)
        return actions

    def consult(self, call_id: str, caller: str, agent: str, dest: Destination) -> list[Action]:
        """The agent's leg calls *dest* while the caller waits in the conference."""
        st = self.state(call_id)
        self._no_consult(st)
        if dest.kind is TargetKind.QUEUE:
            raise ControlError("a queue cannot be consulted; transfer to it", field="target.kind")
        actions = [
            ami.setvar(agent, var.CONSULT_DIAL, dest.dial),
            ami.setvar(agent, var.CONSULT_TARGET, dest.label),
        ]
        if st.in_conference:
            actions.append(ami.redirect(agent, CONSULT, "s"))
        else:
            actions.append(_both(caller, CONFERENCE, "caller", agent, CONSULT, "s"))
        st.in_conference = True
        st.held = False
        st.consult = dest
        return actions

    def complete_consult(self, call_id: str, agent: str, target_leg: str | None) -> list[Action]:
        """The consulted party joins the caller; the agent's leg is let go."""
        st = self.state(call_id)
        if st.consult is None:
            raise ControlError("no consultation in progress")
        if target_leg is None:
            raise ControlError(f"{st.consult.label} has not answered the consultation yet")
        st.parties.append(st.consult)
        st.consult = None
        return [_both(target_leg, CONFERENCE, "party", agent, RELEASE, "s")]

    def cancel_consult(self, call_id: str, target_leg: str | None) -> list[Action]:
        """The consulted party is hung up; the agent's leg returns to the
        caller by itself (the dialplan after its Dial)."""
        st = self.state(call_id)
        if st.consult is None:
            raise ControlError("no consultation in progress")
        st.consult = None
        return [ami.hangup(target_leg)] if target_leg is not None else []

    def consult_ended(self, call_id: str) -> None:
        """The consultation's Dial is over (cancelled, unanswered, hung up):
        the agent's leg is back in the conference."""
        st = self.calls.get(call_id)
        if st is not None:
            st.consult = None

    def add_party(
        self, call_id: str, caller: str, agent: str, dest: Destination, *, channel_id: str
    ) -> list[Action]:
        """A three-way call: *dest* is rung into the call's conference (the
        caller and the agent move there first if they are not in it)."""
        st = self.state(call_id)
        self._no_consult(st)
        if st.held:
            raise ControlError("resume the call before adding a party")
        if dest.kind is TargetKind.QUEUE:
            raise ControlError("a queue cannot join a call", field="target.kind")
        actions: list[Action] = []
        if not st.in_conference:
            actions.append(_both(caller, CONFERENCE, "caller", agent, CONFERENCE, "party"))
            st.in_conference = True
        actions.append(
            ami.originate_context(
                dest.dial,
                CONFERENCE,
                "party",
                timeout_s=self.transfer_ring_s,
                channel_id=channel_id,
                variables={var.CALL_ID: call_id},
            )
        )
        st.parties.append(dest)
        st.ringing_parties[channel_id] = dest
        return actions

    def party_answered(self, channel_id: str) -> None:
        for st in self.calls.values():
            st.ringing_parties.pop(channel_id, None)

    def party_failed(self, channel_id: str) -> tuple[str, Destination] | None:
        """A three-way party did not answer: it is no party of the call; the
        caller and the agent stay in the conference. Returns (call, party)."""
        for st in self.calls.values():
            dest = st.ringing_parties.pop(channel_id, None)
            if dest is not None:
                if dest in st.parties:
                    st.parties.remove(dest)
                return st.call_id, dest
        return None

    def leave(self, call_id: str, agent: str) -> list[Action]:
        """The agent drops out of a three-way call; the others stay connected."""
        st = self.state(call_id)
        if not st.in_conference or not st.parties:
            raise ControlError("no three-way call to leave; hang up or transfer instead")
        self._no_consult(st)
        return [ami.hangup(agent)]

    def adopt(
        self, call_id: str, *, caller_context: str, leg_contexts: Collection[str]
    ) -> ControlState | None:
        """Rebuild a call's control state from where its channels are (after
        an engine restart): the caller in the call's conference, the agent's
        leg on hold or consulting. A consultation's target is not known again:
        it ends when its parties hang up (it cannot be completed from the desk)."""
        if caller_context != CONFERENCE:
            return None
        st = ControlState(call_id, in_conference=True, held=AGENT_HOLD in leg_contexts)
        if CONSULT in leg_contexts:
            st.consult = Destination(TargetKind.EXTERNAL, "", "")
        self.calls[call_id] = st
        return st

    def forget(self, call_id: str) -> None:
        self.calls.pop(call_id, None)

    @staticmethod
    def _no_consult(st: ControlState) -> None:
        if st.consult is not None:
            raise ControlError(
                f"a consultation with {st.consult.label} is in progress; complete or cancel it"
            )
