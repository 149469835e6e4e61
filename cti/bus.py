"""The engine's in-process event bus: what happened, handed to whoever subscribed.

Topics are of three kinds:

* a Python type: every published object of that type or of a subclass
  (``CallAnswered``, ``CallChange`` for all call changes, ``AgentStateChanged``,
  ``Alarm``, ``LogEvent`` ...);
* ``ami("Hangup")``: the raw AMI event of that name, after the call model has
  applied it; ``ami("UserEvent:HotlineSurveyResult")`` for one UserEvent;
* ``log_kind("CALL_ANSWERED")``: the event-log rows of that kind.

Synchronous subscribers run in the order they subscribed, on the ingest path:
they must not block. A subscriber that does I/O subscribes a coroutine
function instead and gets its own bounded queue and one task, owned by the
bus. When its queue is full, items are dropped, counted, logged once per gap,
and the subscriber receives a :class:`Gap` in their place, in order: a feature
whose data must not be lost re-reads its durable source when it sees one.

The AMI link's event filter is the union of the AMI topics subscribed
(:meth:`Bus.ami_names`); ``on_ami_names`` is told whenever the union grows.

No I/O here: the bus is plain data structures and asyncio queues.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cti.events import EVENT_HEADER, user_event_name

__all__ = ["AmiTopic", "Bus", "Gap", "LogTopic", "Subscription", "Topic", "ami", "log_kind"]

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 10_000
USER_EVENT = "UserEvent"


@dataclass(frozen=True, slots=True)
class AmiTopic:
    """AMI events by name; ``UserEvent:<name>`` for one UserEvent."""

    name: str

    @property
    def event(self) -> str:
        """The AMI ``Event`` header this topic needs let through."""
        return self.name.partition(":")[0]


@dataclass(frozen=True, slots=True)
class LogTopic:
    """Event-log rows of one kind (``LogEvent.kind``)."""

    kind: str


Topic = type | AmiTopic | LogTopic


def ami(name: str) -> AmiTopic:
    event, colon, _ = name.partition(":")
    if not event or name.endswith(":") or (colon and event != USER_EVENT):
        raise ValueError(f"AMI topic {name!r}: expected an event name or UserEvent:<name>")
    return AmiTopic(name)


def log_kind(kind: str) -> LogTopic:
    return LogTopic(kind)


@dataclass
class Gap:
    """Stands in an asynchronous subscriber's queue for the items it missed
    (its queue was full). ``missed`` counts them; the subscriber should
    resynchronise from its durable source."""

    subscriber: str
    missed: int = 0


@dataclass(eq=False)
class Subscription:
    name: str
    topics: tuple[Topic, ...]
    handler: Callable[[Any], Any]
    queue_size: int | None = None
    """None: synchronous. Otherwise the bound of the subscriber's queue."""
    delivered: int = 0
    dropped: int = 0
    gaps: int = 0
    failures: int = 0
    _queue: asyncio.Queue[Any] | None = field(default=None, repr=False)
    _open_gap: Gap | None = field(default=None, repr=False)
    workers: int = 1
    when: Callable[[Any], bool] | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, repr=False)

    @property
    def is_async(self) -> bool:
        return self.queue_size is not None

    def stats(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "async": self.is_async,
            "delivered": self.delivered,
            "dropped": self.dropped,
            "gaps": self.gaps,
            "failures": self.failures,
            "queued": self._queue.qsize() if self._queue is not None else 0,
        }


class Bus:
    def __init__(self, *, on_ami_names: Callable[[frozenset[str]], None] | None = None) -> None:
        self._subscriptions: list[Subscription] = []
        self._by_type: dict[type, list[Subscription]] = {}
        self._type_cache: dict[type, tuple[Subscription, ...]] = {}
        self._by_ami: dict[str, tuple[Subscription, ...]] = {}
        # UserEvent name -> the subscribers of "UserEvent" and of "UserEvent:<name>".
        self._by_user_event: dict[str, tuple[Subscription, ...]] = {}
        self._by_log: dict[str, tuple[Subscription, ...]] = {}
        self._log_cache: dict[tuple[str, type], tuple[Subscription, ...]] = {}
        self._on_ami_names = on_ami_names
        self._running = False

    # -- subscribing ------------------------------------------------------------------

    def subscribe(
        self,
        topics: Topic | Iterable[Topic],
        handler: Callable[[Any], None] | Callable[[Any], Awaitable[None]],
        *,
        name: str,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        workers: int = 1,
        when: Callable[[Any], bool] | None = None,
    ) -> Subscription:
        """Subscribe *handler* to one topic or several. A coroutine function
        is an asynchronous subscriber (its own queue of ``queue_size`` and
        task; ``workers`` tasks on the one queue for items that need no order
        among themselves, e.g. one screen-pop per ring); any other callable
        runs synchronously, in subscription order. ``when``: an asynchronous
        subscriber's filter, run synchronously at publish time, so that items it
        does not want cost no queueing and no task wake-up."""
        if workers < 1:
            raise ValueError(f"subscriber {name!r}: workers must be at least 1")
        wanted = tuple(
            dict.fromkeys((topics,) if isinstance(topics, (type, AmiTopic, LogTopic)) else topics)
        )
        if not wanted:
            raise ValueError(f"subscriber {name!r}: no topic")
        for topic in wanted:
            if not isinstance(topic, (type, AmiTopic, LogTopic)):
                raise TypeError(f"subscriber {name!r}: {topic!r} is not a topic")
        is_async = inspect.iscoroutinefunction(handler)
        if is_async and queue_size < 2:
            raise ValueError(f"subscriber {name!r}: queue_size must be at least 2")
        sub = Subscription(
            name=name,
            topics=wanted,
            handler=handler,
            queue_size=queue_size if is_async else None,
            workers=workers,
            when=when,
        )
        before = self.ami_names()
        self._subscriptions.append(sub)
        for topic in wanted:
            if isinstance(topic, type):
                self._by_type.setdefault(topic, []).append(sub)
            elif isinstance(topic, AmiTopic):
                self._by_ami[topic.name] = (*self._by_ami.get(topic.name, ()), sub)
            else:
                self._by_log[topic.kind] = (*self._by_log.get(topic.kind, ()), sub)
        self._type_cache.clear()
        self._log_cache.clear()
        self._by_user_event = {
            topic.partition(":")[2]: self._in_order(
                self._by_ami.get(USER_EVENT, ()), self._by_ami[topic]
            )
            for topic in self._by_ami
            if topic.startswith(f"{USER_EVENT}:")
        }
        if is_async and self._running:
            self._start(sub)
        after = self.ami_names()
        if after != before and self._on_ami_names is not None:
            self._on_ami_names(after)
        return sub

    def ami_names(self) -> frozenset[str]:
        """The AMI event names some subscriber needs (the link's filter)."""
        return frozenset(AmiTopic(name).event for name in self._by_ami)

    def subscriptions(self) -> list[Subscription]:
        return list(self._subscriptions)

    # -- publishing -------------------------------------------------------------------

    def publish(self, item: object) -> None:
        """Hand *item* to the subscribers of its type and of its base classes."""
        kind = type(item)
        subs = self._type_cache.get(kind)
        if subs is None:
            subs = self._subscribers_of(kind)
        self._hand(subs, item)

    def publish_ami(self, event: Mapping[str, Any]) -> None:
        """A raw AMI event, to the subscribers of its name (and of its
        UserEvent name), each once, in subscription order."""
        name = event.get(EVENT_HEADER, "")
        subs = self._by_ami.get(name)
        if name == USER_EVENT:
            subs = self._by_user_event.get(user_event_name(event), subs)
        if subs:
            self._hand(subs, event)

    def publish_log(self, row: Any) -> None:
        """An event-log row (``.kind``), to the subscribers of its kind and
        of its type (``LogEvent``), each once, in subscription order."""
        key = (row.kind, type(row))
        subs = self._log_cache.get(key)
        if subs is None:
            subs = self._log_cache[key] = self._in_order(
                self._by_log.get(row.kind, ()), self._subscribers_of(type(row))
            )
        self._hand(subs, row)

    def _in_order(self, *groups: Iterable[Subscription]) -> tuple[Subscription, ...]:
        """The subscribers of any of *groups*, each once, in subscription order."""
        found = {sub for group in groups for sub in group}
        return tuple(sub for sub in self._subscriptions if sub in found)

    def _subscribers_of(self, kind: type) -> tuple[Subscription, ...]:
        found: list[Subscription] = []
        for base in kind.__mro__:
            for sub in self._by_type.get(base, ()):
                if sub not in found:
                    found.append(sub)
        # Subscription order, whichever base matched.
        order = {id(sub): n for n, sub in enumerate(self._subscriptions)}
        subs = tuple(sorted(found, key=lambda s: order[id(s)]))
        self._type_cache[kind] = subs
        return subs

    def _hand(self, subs: tuple[Subscription, ...], item: object) -> None:
        # The ingest path: one loop, no call per subscriber beyond its own.
        for sub in subs:
            if sub.queue_size is None:
                try:
                    sub.handler(item)
                except Exception:
                    sub.failures += 1
                    log.exception("bus subscriber %s failed on %r", sub.name, item)
                else:
                    sub.delivered += 1
            else:
                try:
                    wanted = sub.when is None or sub.when(item)
                except Exception:
                    sub.failures += 1
                    log.exception("bus subscriber %s: its filter failed on %r", sub.name, item)
                    continue
                if wanted:
                    self._enqueue(sub, item)

    def _enqueue(self, sub: Subscription, item: object) -> None:
        queue = sub._queue
        if queue is None:  # not started yet: a queue of its own until it is
            queue = sub._queue = asyncio.Queue(maxsize=sub.queue_size or 0)
        # The last slot is kept for the gap marker, so a gap is always
        # delivered in its place in the order.
        if sub._open_gap is None and queue.qsize() < queue.maxsize - 1:
            queue.put_nowait(item)
            return
        sub.dropped += 1
        if sub._open_gap is None:
            sub.gaps += 1
            sub._open_gap = Gap(sub.name)
            queue.put_nowait(sub._open_gap)
            log.warning(
                "bus subscriber %s is %d items behind: dropping until it catches up "
                "(it is handed a gap marker and must resynchronise)",
                sub.name,
                queue.maxsize - 1,
            )
        sub._open_gap.missed += 1

    # -- the asynchronous subscribers' tasks ---------------------------------------------

    def start(self) -> None:
        """Start one task per asynchronous subscriber (and those subscribed later)."""
        self._running = True
        for sub in self._subscriptions:
            if sub.is_async and not sub._tasks:
                self._start(sub)

    def _start(self, sub: Subscription) -> None:
        if sub._queue is None:
            sub._queue = asyncio.Queue(maxsize=sub.queue_size or 0)
        loop = asyncio.get_running_loop()
        for n in range(sub.workers):
            task = loop.create_task(self._consume(sub), name=f"bus:{sub.name}:{n}")
            task.add_done_callback(lambda task: self._consumer_done(sub, task))
            sub._tasks.append(task)

    async def _consume(self, sub: Subscription) -> None:
        queue = sub._queue
        assert queue is not None
        while True:
            item = await queue.get()
            if isinstance(item, Gap) and item is sub._open_gap:
                sub._open_gap = None
                log.warning("bus subscriber %s missed %d items", sub.name, item.missed)
            try:
                await sub.handler(item)
            except asyncio.CancelledError:
                raise
            except Exception:
                sub.failures += 1
                log.exception("bus subscriber %s failed on %r", sub.name, item)
            else:
                sub.delivered += 1
            finally:
                queue.task_done()

    def _consumer_done(self, sub: Subscription, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("bus subscriber %s stopped", sub.name, exc_info=task.exception())

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Until every asynchronous subscriber has handled what it was given."""
        async with asyncio.timeout(timeout_s):
            for sub in self._subscriptions:
                if sub._queue is not None and sub._tasks:
                    await sub._queue.join()

    async def close(self, *, drain_timeout_s: float = 0.0) -> None:
        """Stop the asynchronous subscribers' tasks, after letting them handle
        what is queued for up to *drain_timeout_s* (what is left then is not
        handled: a feature that must not lose it reads its durable source at
        its next start)."""
        if drain_timeout_s > 0:
            try:
                await self.drain(drain_timeout_s)
            except TimeoutError:
                left = sum(s._queue.qsize() for s in self._subscriptions if s._queue is not None)
                log.warning("bus: %d items not handled at stop", left)
        self._running = False
        tasks = [task for sub in self._subscriptions for task in sub._tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sub in self._subscriptions:
            sub._tasks.clear()
