"""The delivery log: attempt records by subscription and by message, and the
flags that say an attempt has run (so a redelivered task does not repeat it)."""

from collections.abc import Callable, Sequence
from typing import Any, cast

from redis import Redis

from notifier.store import keys, lua
from notifier.store.boundary import translate_errors
from notifier.store.records import (
    RAN_OUTCOMES,
    Limits,
    Record,
    Source,
    dumps,
    is_control_id,
    loads,
    redacted_attempt,
)

#: What a subscription's log does not repeat in each entry: its own id and
#: source (added back when read, ``subscription_attempts``).
SUBSCRIPTION_IMPLIED = ("subscription_id", "source")


def _entry(attempt: Record, implied: Sequence[str]) -> str:
    """An attempt as a log keeps it: without what the log's key says."""
    return dumps({k: v for k, v in attempt.items() if k not in implied})


def done_flag(delivery: Record) -> tuple[str, str]:
    """The flag of one attempt of one delivery: (hash key, field)."""
    return keys.done(delivery["message_id"]), keys.done_field(
        delivery["subscription_id"], delivery.get("round", 0), delivery["attempt"]
    )


def read_flags(pipe: Any, flags: Sequence[tuple[str, str]]) -> Callable[[list[Any]], set[int]]:
    """Queue the reads of ``flags`` on ``pipe`` (one HMGET per message);
    return what turns their replies (in order) into the indexes set."""
    by_key: dict[str, list[int]] = {}
    for i, (key, _) in enumerate(flags):
        by_key.setdefault(key, []).append(i)
    for key, indexes in by_key.items():
        pipe.hmget(key, [flags[i][1] for i in indexes])

    def indexes_set(replies: list[Any]) -> set[int]:
        found: set[int] = set()
        for indexes, values in zip(by_key.values(), replies):
            found.update(i for i, value in zip(indexes, values) if value is not None)
        return found

    return indexes_set


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
        pipe = self.redis.pipeline(transaction=False)
        found = read_flags(pipe, [done_flag(d) for d in deliveries])
        return found(pipe.execute())

    def record_attempts(self, attempts: Sequence[Record]) -> None:
        """Append attempt records to their subscription's and message's logs.

        One script call per batch (``record_attempts.lua``): per log key one
        LPUSH of all its records (in order: the newest ends first, as one
        LPUSH each would leave it) and one EXPIRE, trimmed only when over the
        cap, rather than three commands per record; the done flags one HSET
        and one EXPIRE per message. An entry leaves out what its log's key
        says (a third of the bytes: what Redis reads, copies and appends to
        its AOF per delivery, issue 21); the readers add it back.
        """
        if not attempts:
            return
        logs: dict[str, tuple[list[str], int]] = {}
        flags: dict[str, list[str]] = {}  # done:MID -> fields

        def push(key: str, text: str, ttl: int) -> None:
            entry = logs.get(key)
            if entry is None:
                logs[key] = ([text], ttl)
            else:
                entry[0].append(text)

        for attempt in attempts:
            message_id = attempt.get("message_id")
            control = is_control_id(message_id)
            # The owner reads the subscription's log: a control message's id
            # stays out of it.
            push(
                keys.subscription_attempts(attempt["subscription_id"]),
                _entry(redacted_attempt(attempt) if control else attempt, SUBSCRIPTION_IMPLIED),
                self.limits.subscription_log_ttl_seconds,
            )
            if message_id is None:
                continue  # an event of the subscription (disabled, enabled)
            if attempt["outcome"] in RAN_OUTCOMES:
                key, field = done_flag(attempt)
                flags.setdefault(key, []).append(field)
            msg_key = (keys.control_attempts if control else keys.message_attempts)(str(message_id))
            push(msg_key, _entry(attempt, ("message_id",)), self.attempt_log_ttl_seconds)
        args: list[Any] = [len(flags), self.done_ttl_seconds, self.attempt_log_length]
        for fields in flags.values():
            args += [len(fields), *fields]
        for texts, ttl in logs.values():
            args += [ttl, len(texts), *texts]
        self._record(keys=[*flags, *logs], args=args)

    def subscription_attempts(
        self, subscription_id: str, limit: int = 100, source: Source | None = None
    ) -> list[Record]:
        """Return a subscription's attempts, newest first; ``source``, the
        subscription's, is added back to its delivery attempts (events of the
        subscription have none)."""
        records = self._get_list(keys.subscription_attempts(subscription_id), limit)
        for record in records:
            record.setdefault("subscription_id", subscription_id)
            if source is not None and "attempt" in record:
                record.setdefault("source", source.to_list())
        return records

    def message_attempts(self, message_id: str, limit: int = 100) -> list[Record]:
        if is_control_id(message_id):
            return []
        return self._message_log(keys.message_attempts(message_id), message_id, limit)

    def control_attempts(self, message_id: str, limit: int = 100) -> list[Record]:
        """Return a control message's attempts (internal: never served)."""
        return self._message_log(keys.control_attempts(message_id), message_id, limit)

    def _message_log(self, key: str, message_id: str, limit: int) -> list[Record]:
        records = self._get_list(key, limit)
        for record in records:
            record.setdefault("message_id", message_id)
        return records

    def _get_list(self, key: str, limit: int) -> list[Record]:
        return [loads(v) for v in cast(list[str], self.redis.lrange(key, 0, limit - 1))]
