"""The AMI actions the engine sends to Asterisk, built in one place.

One function per action, each returning the ``dict[str, str]`` to send
(header name -> value, in the order Asterisk's manager documentation lists
them). Pure: no I/O, no link; the protocol layer (``cti.ami``) sends them and
keeps its own session actions (Login, Ping...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

__all__ = [
    "NORMAL_CLEARING",
    "Action",
    "ActionSender",
    "core_show_channels",
    "device_state_list",
    "hangup",
    "originate_application",
    "originate_context",
    "queue_add",
    "queue_pause",
    "queue_remove",
    "redirect",
    "setvar",
    "status",
]

Action = dict[str, str]


class ActionSender(Protocol):
    """Posts an action without waiting; ``what`` names it in the log when it
    fails; ``refusal_ok``: Asterisk saying no is expected (a QueueAdd of a
    member already there) and is no warning."""

    def __call__(self, action: Action, *, what: str, refusal_ok: bool = False) -> None: ...


NORMAL_CLEARING = 16
"""Q.850 cause of an ordinary hangup."""


def _flag(value: bool) -> str:
    return "true" if value else "false"


def redirect(
    channel: str,
    context: str,
    exten: str,
    *,
    priority: int = 1,
    extra_channel: str | None = None,
    extra_context: str | None = None,
    extra_exten: str | None = None,
    extra_priority: int = 1,
) -> Action:
    """Move *channel* to ``context,exten,priority``. With ``extra_channel``,
    Asterisk moves a second channel in the same step (both legs of a bridge
    at once, so neither is left alone in it); its context and extension are
    then required."""
    action = {
        "Action": "Redirect",
        "Channel": channel,
        "Context": context,
        "Exten": exten,
        "Priority": str(priority),
    }
    if extra_channel is not None:
        if extra_context is None or extra_exten is None:
            raise ValueError("a Redirect's extra channel needs extra_context and extra_exten")
        action.update(
            {
                "ExtraChannel": extra_channel,
                "ExtraContext": extra_context,
                "ExtraExten": extra_exten,
                "ExtraPriority": str(extra_priority),
            }
        )
    return action


def setvar(channel: str, variable: str, value: str) -> Action:
    """Set a channel variable the dialplan reads."""
    return {"Action": "Setvar", "Channel": channel, "Variable": variable, "Value": value}


def hangup(channel: str, cause: int = NORMAL_CLEARING) -> Action:
    """Hang *channel* up with the Q.850 *cause*."""
    return {"Action": "Hangup", "Channel": channel, "Cause": str(cause)}


def _timeout_ms(timeout_s: float) -> str:
    return str(round(timeout_s * 1000))


def originate_context(
    channel: str,
    context: str,
    exten: str,
    *,
    timeout_s: float,
    priority: int = 1,
    channel_id: str | None = None,
    variables: Mapping[str, str] | None = None,
) -> Action:
    """Dial *channel* and, once it answers, send it to ``context,exten``.
    Asynchronous: the outcome arrives as an OriginateResponse event (whose
    Uniqueid is ``channel_id`` when given)."""
    action = {
        "Action": "Originate",
        "Channel": channel,
        "Context": context,
        "Exten": exten,
        "Priority": str(priority),
        "Timeout": _timeout_ms(timeout_s),
    }
    if channel_id is not None:
        action["ChannelId"] = channel_id
    if variables:
        action["Variable"] = ",".join(f"{name}={value}" for name, value in variables.items())
    action["Async"] = "true"
    return action


def originate_application(
    channel: str,
    application: str,
    data: str,
    *,
    timeout_s: float,
    caller_id: str | None = None,
) -> Action:
    """Dial *channel* and, once it answers, run *application* (``data`` its
    arguments) on it, outside the dialplan. Asynchronous."""
    action = {
        "Action": "Originate",
        "Channel": channel,
        "Application": application,
        "Data": data,
    }
    if caller_id is not None:
        action["CallerID"] = caller_id
    action["Timeout"] = _timeout_ms(timeout_s)
    action["Async"] = "true"
    return action


def queue_add(queue: str, interface: str, *, member_name: str, paused: bool) -> Action:
    """Make *interface* a member of app_queue's *queue*."""
    return {
        "Action": "QueueAdd",
        "Queue": queue,
        "Interface": interface,
        "MemberName": member_name,
        "Paused": _flag(paused),
    }


def queue_remove(queue: str, interface: str) -> Action:
    """Take *interface* out of app_queue's *queue*."""
    return {"Action": "QueueRemove", "Queue": queue, "Interface": interface}


def queue_pause(queue: str, interface: str, *, paused: bool, reason: str = "") -> Action:
    """Pause or unpause the member *interface* of app_queue's *queue*."""
    return {
        "Action": "QueuePause",
        "Queue": queue,
        "Interface": interface,
        "Paused": _flag(paused),
        "Reason": reason,
    }


def getvar(variable: str, channel: str | None = None) -> Action:
    """A channel's variable, or without *channel* a global one."""
    action: Action = {"Action": "Getvar", "Variable": variable}
    if channel is not None:
        action["Channel"] = channel
    return action


def core_show_channels() -> Action:
    """Every live channel, one CoreShowChannel event each."""
    return {"Action": "CoreShowChannels"}


def status(variables: Iterable[str]) -> Action:
    """Every channel's status with the values of the named channel *variables*."""
    return {"Action": "Status", "Variables": ",".join(variables)}


def device_state_list() -> Action:
    """Every device's state, one DeviceStateChange event each (presence)."""
    return {"Action": "DeviceStateList"}
