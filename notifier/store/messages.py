"""Sources (queues and topics) and their messages.

A post stores its messages and enqueues its fan-out in one script
(``store_posts.lua``), counting the project's stored bytes (``quota.py``).
"""

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, cast

from redis import Redis

from notifier import errors
from notifier.store import keys, lua
from notifier.store.boundary import translate_errors
from notifier.store.delivery_log import read_flags
from notifier.store.pending_deliveries import parked_fanout, shard_of
from notifier.store.records import (
    Limits,
    Record,
    Source,
    bytes_quota_error,
    dumps,
    is_control_id,
    loads,
    message_expiry,
    new_id,
    usage_bucket,
)


class FanoutTask(Protocol):
    """A fan-out prepared before its messages are stored
    (``workers.app.PreparedTask``): its outbox entry and, when the broker is
    the store's Redis, the broker message and its queue."""

    @property
    def member(self) -> str | None: ...
    @property
    def queue(self) -> str | None: ...
    @property
    def payload(self) -> str | None: ...


#: (source, messages, ids, fan-out task or None)
Post = tuple[Source, Sequence[Record], Sequence[str], FanoutTask | None]


def get_many(client: Redis, key_of: Callable[[str], str], ids: Iterable[str]) -> dict[str, Record]:
    """Return {id: record} for the ids whose key (``key_of(id)``) exists."""
    ids = list(ids)
    if not ids:
        return {}
    values = cast(list[str | None], client.mget([key_of(i) for i in ids]))
    return {i: loads(v) for i, v in zip(ids, values) if v is not None}


@translate_errors
class Messages:
    """Sources, messages, and the count of a topic message's deliveries."""

    def __init__(self, client: Redis, limits: Limits) -> None:
        self.redis = client
        self.limits = limits
        self._store_posts = lua.register(client, "store_posts")
        self._unstore_messages = lua.register(client, "unstore_messages")
        self._restore_message = lua.register(client, "restore_message")
        self._settle_pending = lua.register(client, "settle_pending")

    # -- sources ------------------------------------------------------------

    def put_source(self, source: Source, metadata: Record) -> bool:
        """Create or replace a source's metadata; return True if it was new."""
        pipe = self.redis.pipeline()
        pipe.zadd(keys.sources(source.project, source.kind), {source.name: 0})
        pipe.set(keys.source_metadata(source), dumps(metadata), get=True)
        _, previous = pipe.execute()
        return previous is None

    def source_exists(self, source: Source) -> bool:
        return bool(self.redis.exists(keys.source_metadata(source)))

    def get_source_metadata(self, source: Source) -> Record:
        """Return a source's metadata dict, or raise NotFoundError."""
        raw = cast(str | None, self.redis.get(keys.source_metadata(source)))
        if raw is None:
            raise errors.NotFoundError(
                f"{source.kind[:-1].capitalize()} {source.name!r} does not exist."
            )
        return loads(raw)

    def source_metadata_or_empty(self, source: Source) -> Record:
        raw = cast(str | None, self.redis.get(keys.source_metadata(source)))
        return loads(raw) if raw else {}

    def set_source_metadata(self, source: Source, metadata: Record) -> None:
        self.redis.set(keys.source_metadata(source), dumps(metadata))

    def list_sources(
        self, project: str, kind: str, marker: str | None = None, limit: int = 20
    ) -> list[str]:
        """Return up to ``limit`` source names after ``marker``, in name order."""
        start = f"({marker}" if marker else "-"
        names = self.redis.zrangebylex(keys.sources(project, kind), start, "+", start=0, num=limit)
        return cast(list[str], names)

    def delete_source(self, source: Source) -> None:
        """Delete a source's metadata and messages (its subscriptions' data
        is the subscriptions' to forget)."""
        entries = cast(
            list[tuple[str, float]],
            self.redis.zrange(keys.source_messages(source), 0, -1, withscores=True),
        )
        pipe = self.redis.pipeline()
        pipe.zrem(keys.sources(source.project, source.kind), source.name)
        pipe.delete(keys.source_metadata(source))
        pipe.execute()
        for start in range(0, len(entries), 500):
            self._unstore(
                (message_id, source.project, expires)
                for message_id, expires in entries[start : start + 500]
            )
        self.redis.delete(keys.source_messages(source), *keys.queue_index(source))

    def _unstore(self, messages: Iterable[tuple[str, str, float]]) -> None:
        """Delete (id, project, expiry) messages before their TTL."""
        script_keys: list[str] = []
        args: list[int] = []
        for message_id, project, expires in messages:
            script_keys += [keys.message(message_id), *keys.project_usage(project)]
            args.append(usage_bucket(expires))
        if args:
            self._unstore_messages(keys=script_keys, args=args)

    # -- messages -----------------------------------------------------------

    def post_messages(
        self,
        source: Source,
        messages: Sequence[Record],
        ids: Iterable[str] | None = None,
        task: FanoutTask | None = None,
        now: float | None = None,
    ) -> list[str]:
        """Store messages (dicts with body, ttl, ...) and return their ids;
        ``task`` is their fan-out (see ``store_posts``). Raise
        QuotaExceededError if the project would store more than its quota."""
        ids = list(ids) if ids is not None else [new_id() for _ in messages]
        [outcome] = self.store_posts([(source, messages, ids, task)], now)
        if isinstance(outcome, errors.QuotaExceededError):
            raise outcome
        return ids

    def store_posts(
        self, posts: Sequence[Post], now: float | None = None
    ) -> list[bool | errors.QuotaExceededError]:
        """Store ``(source, messages, ids, fanout task)`` posts in one atomic
        script; return, per post, whether its fan-out was enqueued.

        The fan-out (``workers.app.PreparedTask`` or None) is written with
        the messages: its outbox entry, and its broker message when it carries
        one, so stored messages and their enqueued fan-out are one atomic
        write and one round trip. While a drain task owns the source's shard
        (``delivery/drain.py``), the fan-out is parked on that shard instead
        of the broker queue: the owner runs it with its next batch, and under
        load a post costs no task. A queue with no subscriptions gets no
        fan-out (there is nothing to match, as in Zaqar, which lists
        subscriptions when a message is posted); a topic always does, since
        its fan-out deletes messages that match nothing.

        A post that would take its project past ``max_stored_bytes_per_project``
        is not stored: its entry is a QuotaExceededError instead.
        """
        now = time.time() if now is None else now
        limit = self.limits.max_stored_bytes_per_project
        script_keys = [keys.task_outbox()]
        args: list[Any] = [repr(now), len(posts), limit]
        for source, messages, ids, task in posts:
            payload = (task and task.payload) or ""
            script_keys += [
                keys.sources(source.project, source.kind),
                keys.source_metadata(source),
                keys.source_messages(source),
                keys.source_subscriptions(source),
                *keys.project_usage(source.project),
                *keys.queue_index(source),
            ]
            member = (task and task.member) or ""
            if payload:
                shard = shard_of(source)
                script_keys += [
                    str(task and task.queue),
                    keys.pending_deliveries(shard),
                    keys.drain_owner(shard),
                ]
            args += [
                source.name,
                len(messages),
                int(source.kind == "queues"),
                member,
                payload,
                parked_fanout(member) if payload else "",
            ]
            for message_id, message in zip(ids, messages):
                record = dict(message, id=message_id, created=now, source=source.to_list())
                script_keys.append(keys.message(message_id))
                delay = int(message.get("delay", 0))
                args += [message_id, int(message["ttl"]), delay, dumps(record)]
        outcomes: list[bool | errors.QuotaExceededError] = []
        results = self._store_posts(keys=script_keys, args=args)
        for (source, _, _, _), (flag, used) in zip(posts, results):
            outcomes.append(
                bytes_quota_error(source.project, used, limit) if flag < 0 else bool(flag)
            )
        return outcomes

    def get_message(self, source: Source, message_id: str) -> Record:
        raw = cast(str | None, self.redis.get(keys.message(message_id)))
        record = None if raw is None else loads(raw)
        if record is None or record.get("control") or record.get("source") != source.to_list():
            raise errors.NotFoundError(f"Message {message_id!r} does not exist.")
        return record

    def get_messages(self, message_ids: Iterable[str]) -> dict[str, Record]:
        """Return {id: message} for the ids that still exist."""
        return get_many(self.redis, keys.message, message_ids)

    def restore_message(self, message: Record, now: float | None = None) -> None:
        """Store a message again (for a replay) unless it still exists; it
        lives its TTL again from now, and ``expires`` says until when.
        Control messages are never restored (a replay sends no old link)."""
        if is_control_id(message.get("id")) or message.get("control"):
            return
        now = time.time() if now is None else now
        ttl = int(message["ttl"])
        record = dict(message, expires=now + ttl)
        self._restore_message(
            keys=[keys.message(message["id"]), *keys.project_usage(message["source"][0])],
            args=[repr(now), ttl, dumps(record)],
        )

    def delete_messages(self, message_ids: Iterable[str]) -> None:
        """Delete messages before their TTL (a post taken back)."""
        records = self.get_messages(message_ids)
        self._unstore(
            (i, r["source"][0], message_expiry(r)) for i, r in records.items() if r.get("source")
        )

    def add_pending(self, counts: Mapping[str, int], ttl_seconds: Mapping[str, float]) -> None:
        """Count deliveries still to finish for topic messages ({id: n})."""
        pipe = self.redis.pipeline(transaction=False)
        for message_id, count in counts.items():
            pipe.incrby(keys.pending(message_id), count)
            pipe.expire(keys.pending(message_id), int(ttl_seconds.get(message_id, 3600)))
        pipe.execute()

    def settle_pending(self, messages: Iterable[Record]) -> list[str]:
        """Count one final delivery off each message (a record); return the
        ids of the messages deleted."""
        script_keys: list[str] = []
        args: list[Any] = []
        for message in messages:
            script_keys += [
                keys.pending(message["id"]),
                keys.message(message["id"]),
                *keys.project_usage(message["source"][0]),
            ]
            args += [message["id"], usage_bucket(message_expiry(message))]
        if not args:
            return []
        return cast(list[str], self._settle_pending(keys=script_keys, args=args))

    def read_fanouts(
        self,
        message_ids: Iterable[str],
        sources: Iterable[Source],
        page_size: int,
        started: Sequence[str] = (),
    ) -> tuple[dict[str, Record], dict[Source, list[str]]]:
        """Return fan-outs' messages that still exist and the ids on each
        source's first subscription page (``page_size``), in one round trip;
        remove the outbox entries ``started`` (tasks that began) in it too."""
        message_ids, sources = list(message_ids), list(sources)
        pipe = self.redis.pipeline(transaction=False)
        if started:
            pipe.zrem(keys.task_outbox(), *started)
        pipe.mget([keys.message(i) for i in message_ids] or [keys.message("")])
        for source in sources:
            pipe.zrangebylex(keys.source_subscriptions(source), "-", "+", start=0, num=page_size)
        replies = pipe.execute()[1 if started else 0 :]
        messages = {i: loads(v) for i, v in zip(message_ids, replies[0]) if v}
        return messages, dict(zip(sources, replies[1:]))

    def load_deliveries(
        self,
        message_ids: Iterable[str],
        subscription_ids: Iterable[str],
        flags: Sequence[tuple[str, str]] = (),
    ) -> tuple[dict[str, Record], dict[str, Record], set[int]]:
        """Return ({id: message}, {id: subscription}, indexes of the ``flags``
        (done hash, field) that are set) in one round trip."""
        message_ids, subscription_ids = list(message_ids), list(subscription_ids)
        pipe = self.redis.pipeline(transaction=False)
        pipe.mget([keys.delivered_message(i) for i in message_ids] or [keys.message("")])
        pipe.mget([keys.subscription(i) for i in subscription_ids] or [keys.subscription("")])
        found = read_flags(pipe, flags)
        raw_messages, raw_subscriptions, *raw_flags = pipe.execute()
        return (
            {i: loads(v) for i, v in zip(message_ids, raw_messages) if v},
            {i: loads(v) for i, v in zip(subscription_ids, raw_subscriptions) if v},
            found(raw_flags),
        )
