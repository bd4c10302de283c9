"""A queue's consumer side: its messages listed in rank order, removed
(by id, with Zaqar's claim rules, or popped), counted, purged.

Each message of a queue is ranked by the queue's counter when it is posted
(``store_posts.lua``, as Zaqar's Redis driver does); ``ranks:`` holds every
live message, ``free:`` those no claim holds. Listing reads a page of one of
them after the marker (a rank), so it costs O(page). Expired messages and
expired claims are collected by the scripts that read the index
(``queue_index.lua``), so the index stays as large as the queue.
"""

import time
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, cast

from redis import Redis

from notifier import errors
from notifier.store import keys, lua
from notifier.store.boundary import translate_errors
from notifier.store.records import Record, Source, loads


class ListedMessage(NamedTuple):
    """A message as a listing returns it: its rank (the next marker), its
    record, and the claim holding it (None when free)."""

    rank: int
    record: Record
    claim_id: str | None


class QueueStats(NamedTuple):
    free: int
    claimed: int
    delayed: int
    total: int
    oldest: Record | None
    newest: Record | None


def index_keys(source: Source) -> list[str]:
    """The keys the consumer-side scripts take first: the expiry index and
    the queue's seven index keys."""
    return [keys.source_messages(source), *keys.queue_index(source)]


def pairs(result: Any) -> list[tuple[str, Record]]:
    """Decode a script's {id, message JSON} pairs."""
    return [(str(i), loads(raw)) for i, raw in result]


@translate_errors
class QueueMessages:
    """List, remove, count and purge the messages of a queue."""

    def __init__(self, client: Redis) -> None:
        self.redis = client
        self._tidy = lua.register(client, "tidy_queue")
        self._remove = lua.register(client, "remove_messages")

    def tidy(self, source: Source, now: float | None = None) -> None:
        """Collect expired messages and free the messages of expired claims."""
        now = time.time() if now is None else now
        self._tidy(keys=index_keys(source), args=[repr(now)])

    def list_page(
        self,
        source: Source,
        after: int = 0,
        limit: int = 20,
        include_claimed: bool = False,
        hide_client: str | None = None,
        now: float | None = None,
        include_delayed: bool = False,
    ) -> list[ListedMessage]:
        """Return up to ``limit`` messages ranked after ``after``, oldest
        first; without the claimed ones unless ``include_claimed``, the
        delayed ones unless ``include_delayed``, and those posted by client
        ``hide_client``."""
        self.tidy(source, now)
        every = include_claimed or include_delayed
        index = keys.message_ranks(source) if every else keys.free_messages(source)
        page: list[ListedMessage] = []
        start = after
        while len(page) < limit:
            entries = cast(
                list[tuple[str, float]],
                self.redis.zrangebyscore(
                    index, f"({start}", "+inf", start=0, num=limit - len(page), withscores=True
                ),
            )
            if not entries:
                break
            ids = [i for i, _ in entries]
            pipe = self.redis.pipeline(transaction=False)
            pipe.mget([keys.message(i) for i in ids])
            pipe.hmget(keys.message_claimers(source), ids)
            pipe.zmscore(keys.delayed_messages(source), ids)
            raw_messages, claimers, delays = pipe.execute()
            for (_, rank), raw, claimer, delay in zip(entries, raw_messages, claimers, delays):
                start = int(rank)
                if raw is None:
                    continue  # deleted meanwhile; collected when it expires
                if (claimer and not include_claimed) or (delay and not include_delayed):
                    continue
                record = loads(raw)
                if hide_client and record.get("client_id") == hide_client:
                    continue
                page.append(ListedMessage(int(rank), record, claimer))
        return page

    def get_many(self, source: Source, message_ids: Iterable[str]) -> list[ListedMessage]:
        """Return the queue's messages among ``message_ids`` that exist."""
        ids = list(dict.fromkeys(message_ids))
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        pipe.mget([keys.message(i) for i in ids])
        pipe.hmget(keys.message_claimers(source), ids)
        pipe.zmscore(keys.message_ranks(source), ids)
        raw_messages, claimers, ranks = pipe.execute()
        found = []
        for raw, claimer, rank in zip(raw_messages, claimers, ranks):
            record = loads(raw) if raw else None
            if record and record.get("source") == source.to_list():
                found.append(ListedMessage(int(rank or 0), record, claimer))
        return found

    def remove(
        self,
        source: Source,
        message_ids: Sequence[str],
        mode: str = "any",
        claim_id: str = "",
        now: float | None = None,
    ) -> list[tuple[str, Record]]:
        """Delete messages of the queue (see ``remove_messages.lua`` for the
        modes); return the (id, record) pairs deleted. In mode ``claim``
        raise ForbiddenError when Zaqar's claim rules refuse."""
        now = time.time() if now is None else now
        ids = list(dict.fromkeys(message_ids))  # the script skips other queues' ids
        if not ids:
            return []
        result = self._remove(
            keys=[
                *index_keys(source),
                *keys.project_usage(source.project),
                *(keys.message(i) for i in ids),
            ],
            args=[repr(now), mode, claim_id, *ids],
        )
        if result and result[0] == "refused":
            raise errors.ForbiddenError(REFUSALS[str(result[1])])
        return pairs(result)

    def free_candidates(self, source: Source, count: int) -> list[str]:
        """Return up to ``count`` ids of the oldest free messages (after
        freeing those whose claim expired or delay ended)."""
        self.tidy(source)
        return cast(list[str], self.redis.zrange(keys.free_messages(source), 0, count - 1))

    def pop(self, source: Source, count: int, now: float | None = None) -> list[Record]:
        """Delete and return up to ``count`` of the oldest free messages."""
        popped: list[Record] = []
        for _ in range(3):  # other consumers may take the candidates first
            candidates = self.free_candidates(source, 2 * (count - len(popped)))
            if not candidates:
                break
            taken = self.remove(source, candidates[: count - len(popped)], "pop", "", now)
            popped += [record for _, record in taken]
            if len(popped) >= count:
                break
        return popped

    def stats(self, source: Source, now: float | None = None) -> QueueStats:
        """Count the queue's free, claimed, delayed and total messages."""
        now = time.time() if now is None else now
        self.tidy(source, now)
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(keys.free_messages(source))
        pipe.zcard(keys.claimed_messages(source))
        pipe.zcard(keys.delayed_messages(source))
        pipe.zcard(keys.message_ranks(source))
        pipe.zrange(keys.message_ranks(source), 0, 0)
        pipe.zrange(keys.message_ranks(source), -1, -1)
        free, claimed, delayed, total, first, last = pipe.execute()
        ends = self.get_many(source, [*first, *last])
        return QueueStats(
            free,
            claimed,
            delayed,
            total,
            ends[0].record if ends else None,
            ends[-1].record if ends else None,
        )

    def purge(self, source: Source, now: float | None = None) -> int:
        """Delete every message of the queue; return how many."""
        deleted = 0
        while True:
            ids = cast(list[str], self.redis.zrange(keys.message_ranks(source), 0, 499))
            if not ids:
                return deleted
            deleted += len(self.remove(source, ids, "any", "", now))
            # ids whose message is gone already are forgotten here
            pipe = self.redis.pipeline(transaction=False)
            for key in (
                keys.message_ranks(source),
                keys.free_messages(source),
                keys.claimed_messages(source),
                keys.delayed_messages(source),
            ):
                pipe.zrem(key, *ids)
            pipe.hdel(keys.message_claimers(source), *ids)
            pipe.hdel(keys.message_claim_counts(source), *ids)
            pipe.execute()


REFUSALS = {
    "claimed": "The message is claimed; delete it with its claim_id.",
    "not_claimed": "A claim_id was given but the message is not claimed.",
    "other_claim": "The message is claimed by another claim.",
}
