"""Owned background tasks: started with a name, kept by the caller (who
cancels them at stop), and a failure logged when it happens rather than
found, if ever, when the task is gathered at stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

__all__ = ["start_task"]

log = logging.getLogger(__name__)


def _report(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error(
            "task %s stopped: %r", task.get_name(), task.exception(), exc_info=task.exception()
        )


def start_task(coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
    """A task whose failure is logged at once; the caller keeps and cancels it."""
    task = asyncio.create_task(coro, name=name)
    task.add_done_callback(_report)
    return task
