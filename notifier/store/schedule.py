"""Schedule and outbox: retries waiting for their time, and the task outbox
that finds tasks lost between the broker and a worker."""

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any, cast

from redis import Redis

from notifier.store import keys, lua
from notifier.store.boundary import translate_errors
from notifier.store.records import Record, dumps


@translate_errors
class Schedule:
    """Due retries (leased to one scheduler at a time) and the task outbox."""

    def __init__(self, client: Redis) -> None:
        self.redis = client
        self._lease_due_retries = lua.register(client, "lease_due_retries")
        self._lease_stale_tasks = lua.register(client, "lease_stale_tasks")

    # -- task outbox ----------------------------------------------------------

    def mark_task_sent(self, member: str, now: float | None = None) -> None:
        self.redis.zadd(keys.task_outbox(), {member: time.time() if now is None else now})

    def mark_task_started(self, member: str) -> None:
        self.redis.zrem(keys.task_outbox(), member)

    def mark_tasks_started(self, members: Sequence[str]) -> None:
        if members:
            self.redis.zrem(keys.task_outbox(), *members)

    def sent_at(self, members: Sequence[str]) -> list[float | None]:
        """When each task was sent, None for those not in the outbox."""
        return self.redis.zmscore(keys.task_outbox(), list(members))

    def restamp_tasks(self, members: Sequence[str], sent: float) -> None:
        """Date outbox entries still there as sent at ``sent`` (taken off the
        broker queue by a drain task: found stale, so sent again, that much
        sooner should the task die)."""
        if members:
            self.redis.zadd(keys.task_outbox(), dict.fromkeys(members, sent), xx=True)

    def lease_stale_tasks(
        self, now: float, stale_seconds: float, queue_names: Iterable[str], limit: int = 500
    ) -> list[str]:
        """Return tasks sent over ``stale_seconds`` ago that never started.
        (A fan-out parked on a drain shard is dated a day ahead until it is
        taken: ``store_posts.lua``.)"""
        stale = self._lease_stale_tasks(
            keys=[keys.task_outbox(), *queue_names],
            args=[now, now - stale_seconds, limit],
        )
        return cast(list[str], stale)

    # -- retries ----------------------------------------------------------------

    def schedule_retries(self, due_deliveries: Iterable[tuple[float, Record]]) -> None:
        """Store (due_epoch, delivery dict) pairs until a scheduler moves them."""
        members = {dumps(d): due for due, d in due_deliveries}
        if members:
            self.redis.zadd(keys.retries(), members)

    def lease_due_retries(
        self, now: float, limit: int, lease_seconds: float = 30
    ) -> list[tuple[str, Record]]:
        """Take up to ``limit`` due retries; they stay leased until released."""
        members = cast(
            list[str],
            self._lease_due_retries(
                keys=[keys.retries(), keys.leased_retries()],
                args=[now, limit, now - lease_seconds],
            ),
        )
        return [(m, json.loads(m)) for m in members]

    def release_retries(self, members: Sequence[str]) -> None:
        """Forget leased retries once their delivery task is enqueued."""
        if members:
            self.redis.zrem(keys.leased_retries(), *members)

    def pending_retry_count(self) -> int:
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(keys.retries())
        pipe.zcard(keys.leased_retries())
        due, leased = pipe.execute()
        return int(due) + int(leased)

    def shared_state(self, queue_names: Sequence[str]) -> dict[str, Any]:
        """Return fleet-wide gauges: task queue depths, retries, open breakers."""
        pipe = self.redis.pipeline(transaction=False)
        for name in queue_names:
            pipe.llen(name)
        pipe.zcard(keys.retries())
        pipe.zcard(keys.leased_retries())
        pipe.scard(keys.open_breakers())
        values = pipe.execute()
        count = len(queue_names)
        return {
            "queues": dict(zip(queue_names, values[:count])),
            "retries": values[count] + values[count + 1],
            "open_breakers": values[count + 2],
        }
