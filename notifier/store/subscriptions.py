"""Subscriptions of sources, their per-source index, and the per-project
count their quota checks (``quota:subs:P``)."""

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from redis import Redis
from redis.exceptions import WatchError

from notifier import errors
from notifier.store import keys, lua
from notifier.store.boundary import translate_errors
from notifier.store.dead_letters import DeadLetters
from notifier.store.messages import get_many
from notifier.store.records import Limits, Record, Source, dumps, loads, new_id


def _not_found(subscription_id: str) -> errors.NotFoundError:
    return errors.NotFoundError(f"Subscription {subscription_id!r} does not exist.")


def index_key(record: Record) -> str:
    """What a subscription is indexed by: its ``unique_key``, else its subscriber."""
    return str(record.get("unique_key", record["subscriber"]))


@translate_errors
class Subscriptions:
    """Subscriptions: records, the source's index, the project's count."""

    def __init__(self, client: Redis, limits: Limits, dead_letters: DeadLetters) -> None:
        self.redis = client
        self.limits = limits
        self.dead_letters = dead_letters
        self._create_subscription = lua.register(client, "create_subscription")

    def create_subscription(
        self,
        source: Source,
        subscriber: str,
        ttl: int,
        options: Record,
        confirmed: bool,
        now: float | None = None,
        unique_key: str | None = None,
        project: str | None = None,
        extra: Record | None = None,
    ) -> tuple[bool, str]:
        """Store a subscription; return (created, subscription_id).

        ``created`` is False when a live subscription with the same
        ``unique_key`` (default: the subscriber URI) exists; its id is
        returned and nothing changes. ``project`` is the subscriber's project
        where it may differ from the source's (topics); ``extra`` holds
        sink-specific fields (signing secrets).
        """
        now = time.time() if now is None else now
        subscription_id = new_id()
        unique_key = unique_key or subscriber
        record: Record = {
            "id": subscription_id,
            "source": source.to_list(),
            "subscriber": subscriber,
            "ttl": ttl,
            "options": options,
            "created": now,
            "expires": now + ttl,
            "confirmed": confirmed,
        }
        if unique_key != subscriber:
            record["unique_key"] = unique_key
        record["project"] = project or source.project
        record.update(extra or {})
        limit = self.limits.max_subscriptions_per_project
        index = keys.subscriber_index(source)
        while True:
            # The script checks that the index still holds what was read here
            # (else it changes nothing and this reads again): the record of
            # the id found is then one of its declared keys.
            seen = cast(str | None, self.redis.hget(index, unique_key)) or ""
            created, found = self._create_subscription(
                keys=[
                    index,
                    keys.source_subscriptions(source),
                    keys.project_subscriptions(record["project"]),
                    keys.subscription(subscription_id),
                    keys.subscription(seen or subscription_id),
                ],
                args=[
                    unique_key,
                    subscription_id,
                    dumps(record),
                    ttl,
                    limit,
                    repr(now),
                    repr(now + ttl),
                    seen,
                ],
            )
            if int(created) != -2:
                break
        if int(created) < 0:
            raise errors.QuotaExceededError(
                f"Project {record['project']!r} has {found} subscriptions, its quota "
                f"([quota] max_subscriptions_per_project = {limit}). Delete one first.",
                limit="max_subscriptions_per_project",
            )
        return bool(created), str(found)

    def get_subscription(self, source: Source, subscription_id: str) -> Record:
        raw = cast(str | None, self.redis.get(keys.subscription(subscription_id)))
        record = None if raw is None else loads(raw)
        if record is None or record.get("source") != source.to_list():
            raise _not_found(subscription_id)
        return record

    def get_subscriptions(self, subscription_ids: Iterable[str]) -> dict[str, Record]:
        return get_many(self.redis, keys.subscription, subscription_ids)

    def save_subscription(
        self, record: Record, previous_subscriber: str | None = None, now: float | None = None
    ) -> None:
        """Write back a changed subscription, keeping its index in step:
        ``previous_subscriber`` is the index key it had (its ``unique_key``,
        default its subscriber) when that changed."""
        now = time.time() if now is None else now
        source = Source(*record["source"])
        ttl_left = max(1, int(record["expires"] - now))
        key = index_key(record)
        pipe = self.redis.pipeline(transaction=True)
        if previous_subscriber and previous_subscriber != key:
            pipe.hdel(keys.subscriber_index(source), previous_subscriber)
            pipe.hset(keys.subscriber_index(source), key, record["id"])
        pipe.set(keys.subscription(record["id"]), dumps(record), ex=ttl_left)
        pipe.zadd(
            keys.project_subscriptions(record.get("project", source.project)),
            {record["id"]: record["expires"]},
            xx=True,
        )
        pipe.execute()

    def update_subscription(
        self, source: Source, subscription_id: str, change: Callable[[Record], Record]
    ) -> Record:
        """Apply ``change(record) -> record`` to a stored subscription
        atomically and return the new record.

        The record is read and written under WATCH: a write in between (a
        PATCH, another confirmation) makes ``change`` run again on the new
        record, so a check in ``change`` (a confirmation's nonce) holds for
        the record written. ``change`` may raise to write nothing.
        """
        key = keys.subscription(subscription_id)
        with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    record = json.loads(raw) if raw else None
                    if record is None or record.get("source") != source.to_list():
                        raise _not_found(subscription_id)
                    record = change(record)
                    pipe.multi()
                    pipe.set(key, dumps(record), keepttl=True)
                    pipe.execute()
                    return record
                except WatchError:
                    continue

    def subscriber_taken(self, source: Source, subscriber: str, except_id: str | None) -> bool:
        found = cast(str | None, self.redis.hget(keys.subscriber_index(source), subscriber))
        return bool(found and found != except_id and self.redis.exists(keys.subscription(found)))

    def delete_subscription(self, source: Source, subscription_id: str) -> Record:
        """Delete a subscription and every key of its own; return its record."""
        record = self.get_subscription(source, subscription_id)
        project = record.get("project", source.project)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(keys.subscription(subscription_id))
        pipe.zrem(keys.source_subscriptions(source), subscription_id)
        pipe.hdel(keys.subscriber_index(source), index_key(record))
        pipe.zrem(keys.project_subscriptions(project), subscription_id)
        pipe.execute()
        self.forget_subscription_data(subscription_id, project)
        return record

    def forget_subscription_data(
        self, subscription_id: str, project: str | None = None, chunk: int = 100
    ) -> None:
        """Delete a subscription's dead letters, attempt log and held
        deliveries, taking the letters' bytes back from ``project`` (None:
        they stay counted until their retention passes)."""
        self.dead_letters.purge(subscription_id, project, chunk)
        self.redis.delete(*keys.subscription_keys(subscription_id)[1:])

    def forget_source_data(self, source: Source) -> None:
        """Forget what the subscriptions of a deleted source hold of its
        messages: dead letters, attempt logs, held deliveries. The
        subscriptions themselves survive, as queues are lazy (see README)."""
        ids = cast(list[str], self.redis.zrange(keys.source_subscriptions(source), 0, -1))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            records = self.get_subscriptions(chunk)
            for subscription_id in chunk:
                record = records.get(subscription_id) or {}
                self.forget_subscription_data(subscription_id, record.get("project"))

    def delete_subscription_index(self, source: Source) -> None:
        """Drop a source's subscription index (ids of expired ones linger there)."""
        self.redis.delete(keys.source_subscriptions(source), keys.subscriber_index(source))

    def subscription_page(
        self, source: Source, after: str | None = None, limit: int = 500
    ) -> tuple[list[Record], str | None]:
        """Return (live subscriptions, cursor) for one page in id order.

        ``cursor`` is the last id read, or None when this was the last page.
        Ids whose records expired are removed from the index on the way.
        """
        start = f"({after}" if after else "-"
        index = keys.source_subscriptions(source)
        ids = cast(list[str], self.redis.zrangebylex(index, start, "+", start=0, num=limit))
        return self.pages_of({source: ids}, limit)[source]

    def pages_of(
        self, ids_by_source: Mapping[Source, Sequence[str]], limit: int
    ) -> dict[Source, tuple[list[Record], str | None]]:
        """Turn pages of subscription ids (``limit`` a page, read from each
        source's index) into ``subscription_page``'s (live subscriptions,
        cursor), with one MGET for them all."""
        found = self.get_subscriptions({i for ids in ids_by_source.values() for i in ids})
        pages = {}
        for source, ids in ids_by_source.items():
            expired = [i for i in ids if i not in found]
            if expired:
                self.redis.zrem(keys.source_subscriptions(source), *expired)
            cursor = ids[-1] if len(ids) == limit else None
            pages[source] = ([found[i] for i in ids if i in found], cursor)
        return pages

    def subscription_count(self, project: str, now: float | None = None) -> int:
        now = time.time() if now is None else now
        return int(
            cast(Any, self.redis.zcount(keys.project_subscriptions(project), f"({now}", "+inf"))
        )
