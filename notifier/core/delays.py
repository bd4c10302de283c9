"""Delayed messages (Zaqar's delayed queues): when a message's
notifications are due.

A message posted with ``delay`` (or into a queue whose
``_default_message_delay`` is set) is hidden from listing, claims and pop
until ``created + delay``, and its notifications are sent then, through the
durable retry schedule. A message whose TTL ends first is never delivered
(the delayed-queues spec says so).
"""

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

Pair = TypeVar("Pair")


def due_time(message: Mapping[str, Any]) -> float:
    """When the message's notifications may be sent (epoch seconds)."""
    return float(message["created"]) + float(message.get("delay") or 0)


def outlives_delay(message: Mapping[str, Any]) -> bool:
    """Whether the message still exists when its delay ends."""
    return float(message.get("delay") or 0) < float(message["ttl"])


class Split(NamedTuple):
    """(message, subscription) pairs sorted by when they may go out."""

    now: list[Any]
    later: list[tuple[float, Any]]
    never: list[Any]


def split_due(pairs: Sequence[tuple[Mapping[str, Any], Pair]], now: float) -> Split:
    """Sort pairs into those due now, those due later (with their due
    time), and those whose message expires before its delay ends."""
    split = Split([], [], [])
    for pair in pairs:
        message = pair[0]
        if not outlives_delay(message):
            split.never.append(pair)
        elif due_time(message) > now:
            split.later.append((due_time(message), pair))
        else:
            split.now.append(pair)
    return split
