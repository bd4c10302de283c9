"""A queue's consumer side, as Zaqar v2 serves it: list, get and delete
messages, pop them, claim them, count them, purge the queue.

Parsing of query values and bodies happens here (free of HTTP), with
Zaqar's limits: a page or a claim takes 1 to ``max_messages_per_claim_or_pop``
messages, a claim's ttl and grace lie between ``[transport] min_claim_*`` and
``max_claim_*`` (60 and 43200 seconds by default).
"""

import re
from collections.abc import Callable
from typing import Any

from notifier import errors, sinks
from notifier.core import validation
from notifier.services.sources import delete_subscriptions
from notifier.store.claims import Claim, DeadLetterRule
from notifier.store.queue_messages import ListedMessage, QueueStats
from notifier.store.records import Record
from notifier.store.storage import Source, Storage

#: Frees what a deleted subscription's sink held (``sinks.release_subscription``).
Release = Callable[[Record, Any], None]

ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
PURGEABLE = ("messages", "subscriptions")


def marker_rank(raw: str | None) -> int:
    """Parse a listing marker (the rank of the last message seen)."""
    if raw is None or raw == "":
        return 0
    if not raw.isdigit() or len(raw) > 18:
        raise errors.ValidationError("marker is malformed.", field="marker")
    return int(raw)


def id_list(raw: str | None, field: str, most: int) -> list[str]:
    """Parse a comma-separated list of ids (``?ids=a,b``)."""
    ids = [i for i in (raw or "").split(",") if i]
    if not ids:
        raise errors.ValidationError(f"{field} must name at least one id.", field=field)
    if len(ids) > most:
        raise errors.ValidationError(f"{field} may name at most {most} ids.", field=field)
    return ids


def claim_id(raw: str | None, field: str = "claim_id") -> str:
    """Check a claim id's form (malformed: 400; unknown: the caller's 404)."""
    if raw is None or not ID_PATTERN.match(raw):
        raise errors.ValidationError(f"{field} is malformed.", field=field)
    return raw


def claim_terms(document: Any, conf: Any, partial: bool = False) -> tuple[int | None, int | None]:
    """Return (ttl, grace) of a claim body; defaults unless ``partial``
    (a renewal keeps what is not named)."""
    document = {} if document is None else validation.obj(document, "body")
    unknown = set(document) - {"ttl", "grace"}
    if unknown:
        raise errors.ValidationError(
            f"The claim has unknown fields: {', '.join(sorted(unknown))}.", field="body"
        )
    t = conf.transport
    ttl = grace = None
    if "ttl" in document or not partial:
        ttl = document.get("ttl", t.default_claim_ttl)
        ttl = validation.integer(ttl, "ttl", t.min_claim_ttl, t.max_claim_ttl)
    if "grace" in document or not partial:
        grace = document.get("grace", t.default_claim_grace)
        grace = validation.integer(grace, "grace", t.min_claim_grace, t.max_claim_grace)
    return ttl, grace


def purge_types(document: Any) -> list[str]:
    """Return the resource types a purge body names (default: both)."""
    if document is None:
        return list(PURGEABLE)
    validation.obj(document, "body")
    types = document.get("resource_types", list(PURGEABLE))
    if (
        not isinstance(types, list)
        or not types
        or not all(isinstance(t, str) and t in PURGEABLE for t in types)
    ):
        raise errors.ValidationError(
            "resource_types must be a non-empty list of 'messages' and 'subscriptions'.",
            field="resource_types",
        )
    return types


def dead_letter_rule(source: Source, metadata: Record) -> DeadLetterRule | None:
    """The queue's claim-count dead-lettering, when its metadata names both
    ``_max_claim_count`` and ``_dead_letter_queue`` (as Zaqar: either alone
    does nothing)."""
    most = metadata.get(validation.MAX_CLAIM_COUNT)
    target = metadata.get(validation.DEAD_LETTER_QUEUE)
    if not most or not target:
        return None
    ttl = int(metadata.get(validation.DEAD_LETTER_QUEUE_TTL) or 0)
    return DeadLetterRule(int(most), Source(source.project, "queues", target), ttl)


class MessageService:
    """The consumer side of queues."""

    def __init__(
        self, conf: Any, storage: Storage, release: Release = sinks.release_subscription
    ) -> None:
        self.conf = conf
        self.storage = storage
        self.release = release

    @property
    def most(self) -> int:
        return int(self.conf.transport.max_messages_per_claim_or_pop)

    def page(
        self,
        source: Source,
        marker: str | None,
        limit: int,
        include_claimed: bool,
        hide_client: str | None,
        include_delayed: bool = False,
    ) -> list[ListedMessage]:
        return self.storage.queue_messages.list_page(
            source,
            marker_rank(marker),
            limit,
            include_claimed,
            hide_client,
            include_delayed=include_delayed,
        )

    def get_many(self, source: Source, raw_ids: str | None) -> list[ListedMessage]:
        ids = id_list(raw_ids, "ids", self.conf.transport.max_page_size)
        return self.storage.queue_messages.get_many(source, ids)

    def delete_many(self, source: Source, raw_ids: str | None) -> None:
        ids = id_list(raw_ids, "ids", self.conf.transport.max_page_size)
        self.storage.queue_messages.remove(source, ids)

    def pop(self, source: Source, raw_count: str) -> list[Record]:
        try:
            count = int(raw_count)
        except ValueError as exc:
            raise errors.ValidationError("pop must be an integer.", field="pop") from exc
        validation.integer(count, "pop", 1, self.most)
        return self.storage.queue_messages.pop(source, count)

    def delete(self, source: Source, message_id: str, raw_claim_id: str | None) -> None:
        """Delete one message by Zaqar's rules: a claimed one only with its
        claim id (ForbiddenError otherwise); an unknown one is no error."""
        cid = "" if raw_claim_id is None else claim_id(raw_claim_id)
        self.storage.queue_messages.remove(source, [message_id], "claim", cid)

    def claim(
        self, source: Source, raw_limit: str | None, document: Any
    ) -> tuple[str, list[Record]]:
        limit = validation.limit_param(raw_limit, self.most)
        ttl, grace = claim_terms(document, self.conf)
        assert ttl is not None and grace is not None
        rule = dead_letter_rule(source, self.storage.source_metadata_or_empty(source))
        return self.storage.claims.create(source, ttl, grace, limit, dead_letter=rule)

    def get_claim(self, source: Source, raw_claim_id: str) -> tuple[Claim, list[Record]]:
        claims = self.storage.claims
        claim = claims.get(source, claim_id(raw_claim_id))
        return claim, claims.held_messages(source, claim)

    def renew_claim(self, source: Source, raw_claim_id: str, document: Any) -> None:
        ttl, grace = claim_terms(document, self.conf, partial=True)
        self.storage.claims.renew(source, claim_id(raw_claim_id), ttl, grace)

    def release_claim(self, source: Source, raw_claim_id: str) -> None:
        self.storage.claims.release(source, claim_id(raw_claim_id))

    def stats(self, source: Source) -> QueueStats:
        return self.storage.queue_messages.stats(source)

    def purge(self, source: Source, document: Any) -> None:
        """Delete the queue's messages and/or subscriptions; keep the queue."""
        types = purge_types(document)
        if "messages" in types:
            self.storage.queue_messages.purge(source)
        if "subscriptions" in types:
            delete_subscriptions(self.storage, source, self.conf, release=self.release)
