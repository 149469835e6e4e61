"""Citizens' calls: the pure call model and the changes it reports.

``CallModel.apply(message)`` turns AMI messages into :mod:`common.call_changes`;
see :mod:`cti.calls.model` for how calls are recognised and followed.
"""

from __future__ import annotations

from common.call_changes import (
    AgentConnected,
    AgentLeft,
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
from cti.calls.model import Bridge, Call, CallModel, CallPhase, Channel

__all__ = [
    "AgentConnected",
    "AgentLeft",
    "AgentNoAnswer",
    "AgentRinging",
    "Bridge",
    "Call",
    "CallAnswered",
    "CallArrived",
    "CallChange",
    "CallEnded",
    "CallLost",
    "CallModel",
    "CallPhase",
    "CallQueued",
    "CallTransferred",
    "Channel",
]
