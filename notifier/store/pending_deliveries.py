"""Pending deliveries: small fan-outs' deliveries waiting, per shard, for one
drain task to deliver many of them together (``delivery/drain.py``).

A shard is a Redis list (``drain:N``) and an owner flag (``drain:N:owner``,
expiring). Pushing is one round trip that also tries to take ownership; the
owner takes batches until the list is empty, then gives ownership up in the
same script that finds it empty, so a delivery pushed meanwhile is never left
without an owner. Taken deliveries wait in the retry schedule (due after a
task's visibility timeout) until their task has settled them: a worker killed
mid-task loses none, the scheduler sends them again and the done flags skip
the attempts that ran.
"""

import json
import zlib
from collections.abc import Sequence
from typing import Any, NamedTuple, cast

from redis import Redis

from notifier.store import keys, lua
from notifier.store.boundary import translate_errors
from notifier.store.records import Record, dumps

#: Shards of pending deliveries (a source always uses the same one).
SHARDS = 8

#: How a parked fan-out's entry starts (take_pending.lua tells them apart).
PARKED_PREFIX = '{"fanout":'


def shard_of(source: Sequence[str]) -> int:
    """The shard of a source's deliveries."""
    return zlib.crc32("/".join(source).encode()) % SHARDS


def parked_fanout(member: str) -> str:
    """A fan-out task parked on its source's shard, as pushed: its outbox
    entry (``[name, args]``), which is also what brings it back should the
    drain task that takes it die."""
    return dumps({"fanout": member})


class Taken(NamedTuple):
    members: list[str]  # as stored in retries until settled
    deliveries: list[Record]
    remaining: int  # left in the shard after this take
    released: bool  # the owner gave the shard up (nothing was left)
    fanouts: list[str]  # parked fan-outs' outbox entries (not in retries)


def drain_member(delivery: Record) -> str:
    """A pending delivery as stored: marked, so it never equals a retry the
    delivery task schedules for the same delivery (settling one must not
    remove the other)."""
    return dumps({**delivery, "drain": 1})


@translate_errors
class PendingDeliveries:
    """The shards' lists and owner flags."""

    def __init__(self, client: Redis) -> None:
        self.redis = client
        self._take = lua.register(client, "take_pending")

    def push(self, shard: int, deliveries: Sequence[Record], owner_seconds: float) -> bool:
        """Append deliveries to a shard; return True if the caller now owns
        it (no drain task did), and must drain it."""
        if not deliveries:
            return False
        pipe = self.redis.pipeline(transaction=False)
        pipe.rpush(keys.pending_deliveries(shard), *[drain_member(d) for d in deliveries])
        pipe.set(keys.drain_owner(shard), "1", px=int(owner_seconds * 1000), nx=True)
        _, owned = pipe.execute()
        return bool(owned)

    def take(
        self,
        shard: int,
        limit: int,
        due: float,
        owner: bool,
        owner_seconds: float,
        sent: float = 0.0,
    ) -> Taken:
        """Take up to ``limit`` of a shard's oldest entries. Deliveries wait in
        the retry schedule, due at ``due``, until ``settle``; parked fan-outs'
        outbox entries are dated as sent at ``sent`` (the reconciler sends
        them again once that is stale, should the taker die). An owner that
        finds nothing gives the shard up (``released``)."""
        out = cast(
            list[Any],
            self._take(
                keys=[
                    keys.pending_deliveries(shard),
                    keys.drain_owner(shard),
                    keys.retries(),
                    keys.task_outbox(),
                ],
                args=[limit, due, int(owner_seconds * 1000), "1" if owner else "0", repr(sent)],
            ),
        )
        members, deliveries, fanouts = [], [], []
        for member in (str(m) for m in out[2:]):
            record = json.loads(member)
            if member.startswith(PARKED_PREFIX):
                fanouts.append(record["fanout"])
                continue
            record.pop("drain", None)
            members.append(member)
            deliveries.append(record)
        return Taken(members, deliveries, int(out[0]), bool(int(out[1])), fanouts)

    def settle(self, members: Sequence[str]) -> None:
        """Forget taken deliveries once their outcomes are stored."""
        if members:
            self.redis.zrem(keys.retries(), *members)

    def unowned(self, shards: int) -> list[int]:
        """Return the shards with deliveries waiting and no owner (its drain
        task was lost, or its owner died)."""
        pipe = self.redis.pipeline(transaction=False)
        for shard in range(shards):
            pipe.llen(keys.pending_deliveries(shard))
            pipe.exists(keys.drain_owner(shard))
        values = pipe.execute()
        return [shard for shard in range(shards) if values[2 * shard] and not values[2 * shard + 1]]

    def claim(self, shard: int, owner_seconds: float) -> bool:
        """Take ownership of a shard if nobody has it."""
        return bool(
            self.redis.set(keys.drain_owner(shard), "1", px=int(owner_seconds * 1000), nx=True)
        )
