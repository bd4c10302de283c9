"""Control messages: what the service sends itself (subscription
confirmations), stored apart from the messages of queues and topics, and the
rate at which confirmations go to one endpoint."""

import time
from collections.abc import Iterable
from typing import cast

from redis import Redis

from notifier.store import keys
from notifier.store.boundary import translate_errors
from notifier.store.messages import get_many
from notifier.store.records import CONTROL_PREFIX, Record, Source, dumps, is_control_id, new_id


@translate_errors
class ControlMessages:
    """Confirmation requests (``ctl-`` ids) and their per-endpoint rate."""

    def __init__(self, client: Redis) -> None:
        self.redis = client

    def post_control_message(
        self,
        source: Source,
        payload: Record,
        ttl: int,
        now: float | None = None,
        nonce: str | None = None,
    ) -> str:
        """Store a message the service sends itself (a subscription
        confirmation) apart from the source's messages: ``payload`` is
        delivered as it is; ``nonce`` is the confirmation it carries. Return
        its id (``ctl-...``), which no message route can read."""
        now = time.time() if now is None else now
        message_id = CONTROL_PREFIX + new_id()
        record: Record = {
            "id": message_id,
            "created": now,
            "ttl": int(ttl),
            "control": True,
            "payload": payload,
            "source": source.to_list(),
        }
        if nonce is not None:
            record["nonce"] = nonce
        self.redis.set(keys.control_message(message_id), dumps(record), ex=int(ttl))
        return message_id

    def get_control_messages(self, message_ids: Iterable[str]) -> dict[str, Record]:
        """Return {id: control message} for the ids that still exist."""
        ids = [i for i in message_ids if is_control_id(i)]
        return get_many(self.redis, keys.control_message, ids)

    def count_confirmation(self, subject: str, window_seconds: float) -> tuple[int, int]:
        """Count one confirmation sent to ``subject`` (a subscriber URL) in
        the current fixed window; return (count so far, seconds left)."""
        key = keys.confirmation_rate(subject)
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(key, 0, ex=int(window_seconds), nx=True)
        pipe.incr(key)
        pipe.ttl(key)
        _, count, ttl = pipe.execute()
        return cast(int, count), max(int(ttl), 1)
