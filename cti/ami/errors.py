"""Exceptions raised by the AMI link.

Each error says what happened to the action in words an operator can act on:
above all, whether Asterisk may already have executed it, because the link
never resends an action on its own.
"""

from __future__ import annotations

__all__ = [
    "AMIActionTimeout",
    "AMIDisconnected",
    "AMIError",
    "AMILoginFailed",
    "AMINotConnected",
]


class AMIError(Exception):
    """Base class of every error raised by :mod:`cti.ami`."""


class AMINotConnected(AMIError):
    """An action was sent while the link is not logged in; nothing was sent."""

    def __init__(self, message: str, *, action: str | None = None) -> None:
        super().__init__(message)
        self.action = action

    @classmethod
    def for_action(cls, *, link: str, endpoint: str, action: str) -> AMINotConnected:
        return cls(
            f"AMI {link}: not logged in to {endpoint}; action {action} was not sent",
            action=action,
        )


class AMIDisconnected(AMIError):
    """The link dropped while an action was waiting for its reply.

    Asterisk may or may not have executed the action. It is NOT resent after
    reconnecting (resending an Originate would ring a citizen twice): the
    caller must check the state in Asterisk before retrying.
    """

    def __init__(
        self, message: str, *, action: str | None = None, action_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.action = action
        self.action_id = action_id

    @classmethod
    def for_action(cls, *, link: str, action: str, action_id: str, reason: str) -> AMIDisconnected:
        return cls(
            f"AMI {link}: connection lost ({reason}) while action {action} "
            f"(ActionID {action_id}) was waiting for its reply; it was NOT resent. "
            "Asterisk may have executed it: check the state before retrying.",
            action=action,
            action_id=action_id,
        )


class AMIActionTimeout(AMIError):
    """No complete reply to an action within its timeout."""

    def __init__(
        self,
        message: str,
        *,
        action: str | None = None,
        action_id: str | None = None,
        timeout_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.action = action
        self.action_id = action_id
        self.timeout_s = timeout_s

    @classmethod
    def for_action(
        cls, *, link: str, action: str, action_id: str, timeout_s: float
    ) -> AMIActionTimeout:
        return cls(
            f"AMI {link}: no complete reply to action {action} (ActionID {action_id}) "
            f"within {timeout_s:.2f} s; it is not resent and may still be executed "
            "by Asterisk",
            action=action,
            action_id=action_id,
            timeout_s=timeout_s,
        )


class AMILoginFailed(AMIError):
    """Asterisk refused the credentials (or the reply was not a success)."""

    def __init__(
        self,
        message: str,
        *,
        username: str | None = None,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        super().__init__(message)
        self.username = username
        self.host = host
        self.port = port

    @classmethod
    def for_credentials(
        cls, *, link: str, username: str, host: str, port: int, detail: str
    ) -> AMILoginFailed:
        return cls(
            f"AMI {link}: login refused for user {username!r} at {host}:{port} "
            f"({detail}); check manager.conf secret / HOTLINE_AMI_SECRET "
            "and the user's permit/deny ACL",
            username=username,
            host=host,
            port=port,
        )
