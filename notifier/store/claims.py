"""Claims on a queue's messages (Zaqar's claims controller).

A claim takes the oldest free messages of a queue in one script
(``claim_messages.lua``): the candidates are read first, and the script
claims those still free, so two consumers never hold the same message; a
consumer that loses every candidate to another reads the next ones. A
claimed message leaves ``free:`` for ``claimed:`` (scored by the claim's
expiry) until the claim is released or expires, and lives at least the
claim's ttl plus its grace. The claim itself (``claim:CID``) expires with
its ttl; its messages are freed by the next script that reads the queue.
"""

import time
from collections.abc import Sequence
from typing import Any, NamedTuple, cast

from redis import Redis

from notifier import errors
from notifier.store import keys, lua
from notifier.store.boundary import translate_errors
from notifier.store.queue_messages import QueueMessages, index_keys, pairs
from notifier.store.records import Record, Source, dumps, loads, new_id


class DeadLetterRule(NamedTuple):
    """Zaqar's claim-count dead-lettering of a queue: a message claimed
    ``max_claim_count`` times moves to ``queue`` (with ``ttl``, 0 to keep
    its expiry) when a claim would take it once more."""

    max_claim_count: int
    queue: Source
    ttl: int = 0


class Claim(NamedTuple):
    """A claim as stored: its id, ttl, grace, when it was made and when it
    expires, and the ids of the messages it took."""

    id: str
    ttl: int
    grace: int
    created: float
    expires: float
    message_ids: list[str]

    @classmethod
    def from_dict(cls, record: Record) -> "Claim":
        return cls(
            record["id"],
            int(record["ttl"]),
            int(record["grace"]),
            float(record["created"]),
            float(record["expires"]),
            list(record.get("messages") or []),
        )


def claim_record(
    source: Source, claim_id: str, ttl: int, grace: int, created: float, now: float
) -> Record:
    return {
        "id": claim_id,
        "source": source.to_list(),
        "ttl": ttl,
        "grace": grace,
        "created": created,
        "expires": now + ttl,
    }


@translate_errors
class Claims:
    """Create, read, renew and release claims."""

    def __init__(self, client: Redis, messages: QueueMessages) -> None:
        self.redis = client
        self.messages = messages
        self._claim = lua.register(client, "claim_messages")
        self._renew = lua.register(client, "renew_claim")
        self._release = lua.register(client, "release_claim")
        self._move = lua.register(client, "move_message")

    def create(
        self,
        source: Source,
        ttl: int,
        grace: int,
        limit: int,
        now: float | None = None,
        dead_letter: DeadLetterRule | None = None,
    ) -> tuple[str, list[Record]]:
        """Claim up to ``limit`` of the oldest free messages; return the
        claim id and the messages (none: no claim was stored). With a
        ``dead_letter`` rule, a message already claimed its most times is
        moved to the rule's queue instead of being claimed."""
        now = time.time() if now is None else now
        claim_id = new_id()
        record = dumps(claim_record(source, claim_id, ttl, grace, now, now))
        most = dead_letter.max_claim_count if dead_letter else 0
        claimed: list[Record] = []
        for _ in range(3):  # lost candidates: another consumer claimed them
            candidates = self.messages.free_candidates(source, 2 * limit)
            if not candidates:
                break
            taken, over = self._claim(
                keys=[
                    *index_keys(source),
                    *keys.project_usage(source.project),
                    keys.claim(claim_id),
                    *(keys.message(i) for i in candidates),
                ],
                args=[repr(now), claim_id, ttl, grace, limit, record, most, *candidates],
            )
            claimed = [message for _, message in pairs(taken)]
            if over and dead_letter:
                self._move_all(source, over, dead_letter, now)
            if claimed or not over:
                break
        return claim_id, claimed

    def _move_all(
        self, source: Source, message_ids: Sequence[str], rule: DeadLetterRule, now: float
    ) -> None:
        """Move messages to the rule's dead-letter queue, keeping their
        claim counts; a message another consumer took meanwhile stays."""
        target = rule.queue
        raw_messages = cast(list[str | None], self.redis.mget(keys.message(i) for i in message_ids))
        counts = cast(
            list[str | None], self.redis.hmget(keys.message_claim_counts(source), message_ids)
        )
        for message_id, raw, count in zip(message_ids, raw_messages, counts):
            if raw is None:
                continue
            record = loads(raw)
            record["source"] = target.to_list()
            record["claim_count"] = int(count or 0)
            if rule.ttl:
                record["ttl"], record["expires"] = rule.ttl, now + rule.ttl
            self._move(
                keys=[
                    *index_keys(source),
                    *keys.project_usage(source.project),
                    keys.sources(target.project, target.kind),
                    keys.source_metadata(target),
                    *index_keys(target),
                    keys.message(message_id),
                ],
                args=[repr(now), message_id, dumps(record), rule.ttl, target.name],
            )

    def get(self, source: Source, claim_id: str) -> Claim:
        """Return a live claim of ``source``, or raise NotFoundError."""
        raw = cast(str | None, self.redis.get(keys.claim(claim_id)))
        record = loads(raw) if raw else None
        if record is None or record.get("source") != source.to_list():
            raise errors.NotFoundError(f"Claim {claim_id!r} does not exist.")
        return Claim.from_dict(record)

    def held_messages(self, source: Source, claim: Claim) -> list[Record]:
        """Return the messages the claim still holds, oldest first."""
        held = self.messages.get_many(source, claim.message_ids)
        return [m.record for m in sorted(held, key=lambda m: m.rank) if m.claim_id == claim.id]

    def renew(
        self,
        source: Source,
        claim_id: str,
        ttl: int | None,
        grace: int | None,
        now: float | None = None,
    ) -> None:
        """Give a claim a new ttl (and grace) from now; NotFoundError if it
        has expired or was released."""
        now = time.time() if now is None else now
        claim = self.get(source, claim_id)
        ttl = claim.ttl if ttl is None else ttl
        grace = claim.grace if grace is None else grace
        record: dict[str, Any] = claim_record(source, claim_id, ttl, grace, claim.created, now)
        record["messages"] = claim.message_ids
        renewed = self._renew(
            keys=[
                *index_keys(source),
                *keys.project_usage(source.project),
                keys.claim(claim_id),
                *(keys.message(i) for i in claim.message_ids),
            ],
            args=[repr(now), claim_id, ttl, grace, dumps(record), *claim.message_ids],
        )
        if not renewed:
            raise errors.NotFoundError(f"Claim {claim_id!r} does not exist.")

    def release(self, source: Source, claim_id: str) -> None:
        """Release a claim: its messages are free again. A claim that does
        not exist (expired, released, another queue's) is left alone."""
        try:
            claim = self.get(source, claim_id)
        except errors.NotFoundError:
            return
        self._release(
            keys=[*keys.queue_index(source), keys.claim(claim_id)],
            args=[claim_id, *claim.message_ids],
        )
