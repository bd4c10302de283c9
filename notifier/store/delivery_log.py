"""The delivery log: attempt records by subscription and by message, and the
flags that say an attempt has run (so a redelivered task does not repeat it)."""

from collections.abc import Sequence
from typing import Any, cast

from redis import Redis

from notifier.store import keys, lua
from notifier.store.boundary import translate_errors
from notifier.store.records import (
    RAN_OUTCOMES,
    Limits,
    Record,
    dumps,
    is_control_id,
    loads,
    redacted_attempt,
)


def done_key(delivery: Record) -> str:
    """The flag of one attempt of one delivery."""
    return keys.done(
        delivery["message_id"],
        delivery["subscription_id"],
        delivery.get("round", 0),
        delivery["attempt"],
    )


@translate_errors
class DeliveryLog:
    """Attempt logs (newest first, capped, expiring) and done flags."""

    def __init__(
        self,
        client: Redis,
        limits: Limits,
        attempt_log_length: int = 1000,
        attempt_log_ttl_seconds: int = 3600,
        done_ttl_seconds: int = 720,
    ) -> None:
        self.redis = client
        self.limits = limits
        self.attempt_log_length = attempt_log_length
        self.attempt_log_ttl_seconds = attempt_log_ttl_seconds
        self.done_ttl_seconds = done_ttl_seconds
        self._record = lua.register(client, "record_attempts")

    def already_done(self, deliveries: Sequence[Record]) -> set[int]:
        """Return the set of indexes of deliveries whose attempt already ran."""
        if not deliveries:
            return set()
        flags = cast(list[str | None], self.redis.mget([done_key(d) for d in deliveries]))
        return {i for i, flag in enumerate(flags) if flag is not None}

    def record_attempts(self, attempts: Sequence[Record]) -> None:
        """Append attempt records to their subscription's and message's logs.

        One script call per batch (``record_attempts.lua``): per log key one
        LPUSH of all its records (in order: the newest ends first, as one
        LPUSH each would leave it) and one EXPIRE, trimmed only when over the
        cap, rather than three commands per record; the done flags one SET
        each.
        """
        if not attempts:
            return
        logs: dict[str, tuple[list[str], int]] = {}
        flags: list[str] = []

        def push(key: str, text: str, ttl: int) -> None:
            entry = logs.get(key)
            if entry is None:
                logs[key] = ([text], ttl)
            else:
                entry[0].append(text)

        for attempt in attempts:
            text = dumps(attempt)
            message_id = attempt.get("message_id")
            control = is_control_id(message_id)
            # The owner reads the subscription's log: a control message's id
            # stays out of it.
            push(
                keys.subscription_attempts(attempt["subscription_id"]),
                dumps(redacted_attempt(attempt)) if control else text,
                self.limits.subscription_log_ttl_seconds,
            )
            if message_id is None:
                continue  # an event of the subscription (disabled, enabled)
            if attempt["outcome"] in RAN_OUTCOMES:
                flags.append(done_key(attempt))
            msg_key = (keys.control_attempts if control else keys.message_attempts)(str(message_id))
            push(msg_key, text, self.attempt_log_ttl_seconds)
        args: list[Any] = [len(flags), self.done_ttl_seconds, self.attempt_log_length]
        for texts, ttl in logs.values():
            args += [ttl, len(texts), *texts]
        self._record(keys=[*flags, *logs], args=args)

    def subscription_attempts(self, subscription_id: str, limit: int = 100) -> list[Record]:
        return self._get_list(keys.subscription_attempts(subscription_id), limit)

    def message_attempts(self, message_id: str, limit: int = 100) -> list[Record]:
        if is_control_id(message_id):
            return []
        return self._get_list(keys.message_attempts(message_id), limit)

    def control_attempts(self, message_id: str, limit: int = 100) -> list[Record]:
        """Return a control message's attempts (internal: never served)."""
        return self._get_list(keys.control_attempts(message_id), limit)

    def _get_list(self, key: str, limit: int) -> list[Record]:
        return [loads(v) for v in cast(list[str], self.redis.lrange(key, 0, limit - 1))]
