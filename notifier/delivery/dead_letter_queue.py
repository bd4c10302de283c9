"""Exhausted notifications posted to the source's ``_dead_letter_queue``.

Besides the subscription's dead-letter list, a notification that exhausted
its retries becomes a message of the queue its source's metadata names, so
that queue's own subscriptions fire (an operator hears of failures by
webhook or e-mail) and consumers can drain it with claims. A notice is
never posted for a notice (a queue that is its own dead-letter queue, or
two that name each other, would otherwise loop), nor for a confirmation
(its payload is a link only the subscriber may read).
"""

import logging
from collections.abc import Callable, Sequence
from typing import Any

from notifier.core import payloads, validation
from notifier.core.model import DeadLetter
from notifier.delivery.jobs import Dispatcher
from notifier.store.records import new_id
from notifier.store.storage import Source, Storage, redacted_attempt

LOG = logging.getLogger(__name__)

#: Marks a stored message as a dead-letter notice (not itself re-posted).
NOTICE_FIELD = "dead_letter_notice"


class DeadLetterQueues:
    """Post exhausted notifications to their source's dead-letter queue."""

    def __init__(
        self, conf: Any, storage: Storage, dispatcher: Dispatcher, clock: Callable[[], float]
    ) -> None:
        self.conf = conf
        self.storage = storage
        self.dispatcher = dispatcher
        self.clock = clock

    def post(self, letters: Sequence[DeadLetter]) -> None:
        """Post one notice per letter whose source names a dead-letter queue."""
        metadata: dict[Source, dict[str, Any]] = {}
        notices: dict[Source, list[dict[str, Any]]] = {}
        for letter in letters:
            message = letter.message
            if message is None or letter.control or message.get(NOTICE_FIELD):
                continue
            source = Source(*message["source"])
            if source not in metadata:
                metadata[source] = self.storage.source_metadata_or_empty(source)
            target = metadata[source].get(validation.DEAD_LETTER_QUEUE)
            if not target:
                continue
            ttl = metadata[source].get(validation.DEAD_LETTER_QUEUE_TTL)
            notices.setdefault(Source(source.project, "queues", target), []).append(
                {
                    "body": payloads.exhausted_notice(
                        dict(message),
                        list(message["source"]),
                        letter.subscription_id,
                        letter.attempts,
                        redacted_attempt(letter.last.to_dict()),
                        letter.died_at,
                    ),
                    "ttl": int(ttl or self.conf.transport.default_message_ttl),
                    NOTICE_FIELD: True,
                }
            )
        for target, messages in notices.items():
            self._store(target, messages)

    def _store(self, target: Source, messages: list[dict[str, Any]]) -> None:
        ids = [new_id() for _ in messages]
        task = self.dispatcher.prepare_fanout(target, ids)
        (outcome,) = self.storage.store_posts([(target, messages, ids, task)], now=self.clock())
        if isinstance(outcome, Exception):
            LOG.warning(
                "dead-letter notices dropped: the project is at its stored-bytes quota",
                extra={"project": target.project, "queue": target.name, "count": len(ids)},
            )
        elif outcome:
            self.dispatcher.send_prepared(task)
