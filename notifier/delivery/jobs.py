"""What the delivery services pass each other, and the dispatcher they send with.

A ``Job`` is a delivery loaded with its message and subscription (as the
store returns them); a ``Result`` is a job and the record of its attempt; a
``Deferred`` delivery waits in the retry schedule without counting as an
attempt. Deliveries travel to the dispatcher and the store as dicts
(``Delivery.to_dict``): converted here, at the boundary.
"""

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar

from notifier.core.model import Attempt, Delivery

#: A message or subscription as stored (JSON).
Record = dict[str, Any]

T = TypeVar("T")


class Job(NamedTuple):
    delivery: Delivery
    message: Record
    subscription: Record


class Result(NamedTuple):
    job: Job
    attempt: Attempt


class Deferred(NamedTuple):
    due: float  # epoch seconds
    delivery: Delivery


class Dispatcher(Protocol):
    """Enqueues tasks (Celery's in the workers, a list in the tests)."""

    def send_fanout(
        self, source: Sequence[str], message_ids: Sequence[str], cursor: Any = ...
    ) -> None: ...

    def send_deliveries(self, deliveries: list[dict[str, Any]]) -> None: ...

    def send_drain(self, shard: int, owner: bool) -> None: ...

    def take_fanouts(self, limit: int) -> list[tuple[list[Any], str | None]]: ...

    def resend(self, member: Any) -> None: ...

    def prepare_fanout(self, source: Sequence[str], message_ids: Sequence[str]) -> Any: ...

    def send_prepared(self, task: Any) -> None: ...


def new_round() -> int:
    """Return a round number for a replay or a release of held deliveries."""
    return int(time.time() * 1000)


def chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def send_deliveries(dispatcher: Dispatcher, deliveries: Sequence[Delivery], per_task: int) -> None:
    """Enqueue deliveries, ``per_task`` to a task."""
    for chunk in chunked(deliveries, per_task):
        dispatcher.send_deliveries([d.to_dict() for d in chunk])


def as_delivery(delivery: Delivery | dict[str, Any]) -> Delivery:
    """Return a delivery given as a value or as its task-argument dict."""
    return delivery if isinstance(delivery, Delivery) else Delivery.from_dict(delivery)


def wire_deferred(deferred: Iterable[Deferred]) -> list[tuple[float, dict[str, Any]]]:
    """Return deferred deliveries as the retry schedule stores them."""
    return [(due, delivery.to_dict()) for due, delivery in deferred]
