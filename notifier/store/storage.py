"""``Storage``: the store as the rest of notifier sees it, one object.

A thin facade over the repositories, one per concept:

    messages.py       sources and messages (and a topic message's pending count)
    subscriptions.py  subscriptions, their index, the per-project count
    schedule.py       retries and the task outbox
    delivery_log.py   attempt logs and done flags
    dead_letters.py   dead letters
    control.py        control messages and the confirmation rate
    quota.py          a project's stored bytes
    queue_messages.py a queue's consumer side: listing in rank order,
                      delete (with Zaqar's claim rules), pop, stats, purge
    claims.py         claims on a queue's messages
    pending_deliveries.py  small fan-outs' deliveries waiting for a drain task
                      (``Storage.pending``, used as it is by ``delivery/drain.py``)
    endpoint_state.py breakers, leases, rate limits, held deliveries (built by
                      delivery's guard from ``Storage.redis``)

The keys are drawn in ``notifier.store.keys``; the Lua scripts are
``scripts/*.lua``. Every method raises ``notifier.errors.UnavailableError``
when Redis cannot be reached (``boundary.py``).
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from notifier import errors
from notifier.store.boundary import translated
from notifier.store.claims import Claims
from notifier.store.control import ControlMessages
from notifier.store.dead_letters import DeadLetters
from notifier.store.delivery_log import DeliveryLog, done_flag
from notifier.store.messages import FanoutTask, Messages, Post
from notifier.store.pending_deliveries import PendingDeliveries
from notifier.store.queue_messages import QueueMessages
from notifier.store.quota import ByteQuota
from notifier.store.records import (
    Limits,
    Record,
    Source,
    done_horizon_seconds,
    new_id,
    redacted_attempt,
)
from notifier.store.redis_client import redis_client
from notifier.store.schedule import Schedule
from notifier.store.subscriptions import Subscriptions

# What the layers above import from here.
__all__ = ["Limits", "Source", "Storage", "new_id", "redacted_attempt"]


class Storage:
    """Queues, messages, subscriptions and delivery state in Redis."""

    def __init__(
        self,
        client: Redis,
        attempt_log_length: int = 1000,
        attempt_log_ttl_seconds: int = 3600,
        done_ttl_seconds: int = 720,
        limits: Limits | None = None,
    ) -> None:
        self.redis = client
        self.limits = limits or Limits()
        self.messages = Messages(client, self.limits)
        self.dead = DeadLetters(client, self.limits)
        self.subscriptions = Subscriptions(client, self.limits, self.dead)
        self.schedule = Schedule(client)
        self.log = DeliveryLog(
            client, self.limits, attempt_log_length, attempt_log_ttl_seconds, done_ttl_seconds
        )
        self.control = ControlMessages(client)
        self.quota = ByteQuota(client)
        self.queue_messages = QueueMessages(client)
        self.claims = Claims(client, self.queue_messages)
        self.pending = PendingDeliveries(client)

    @classmethod
    def from_conf(cls, conf: Any) -> "Storage":
        # One quick retry, then fail: callers answer 503 rather than hang
        # while Redis restarts.
        client = redis_client(
            conf,
            decode_responses=True,
            socket_timeout=10,
            socket_connect_timeout=2,
            health_check_interval=30,
            retry=Retry(NoBackoff(), 1),
        )
        return cls(
            client,
            conf.notification.attempt_log_length,
            conf.notification.attempt_log_ttl_seconds,
            done_horizon_seconds(conf),
            Limits.from_conf(conf),
        )

    @translated
    def ping(self) -> bool:
        return bool(self.redis.ping())

    # -- sources and messages ---------------------------------------------

    def put_source(self, source: Source, metadata: Record) -> bool:
        return self.messages.put_source(source, metadata)

    def source_exists(self, source: Source) -> bool:
        return self.messages.source_exists(source)

    def get_source_metadata(self, source: Source) -> Record:
        return self.messages.get_source_metadata(source)

    def source_metadata_or_empty(self, source: Source) -> Record:
        return self.messages.source_metadata_or_empty(source)

    def set_source_metadata(self, source: Source, metadata: Record) -> None:
        self.messages.set_source_metadata(source, metadata)

    def list_sources(
        self, project: str, kind: str, marker: str | None = None, limit: int = 20
    ) -> list[str]:
        return self.messages.list_sources(project, kind, marker, limit)

    def delete_source(self, source: Source) -> None:
        """Delete a source's metadata and messages, and what its subscriptions
        hold of them: dead letters, attempt logs, held deliveries. The
        subscriptions themselves survive, as queues are lazy (see README)."""
        self.messages.delete_source(source)
        self.subscriptions.forget_source_data(source)

    def post_messages(
        self,
        source: Source,
        messages: Sequence[Record],
        ids: Iterable[str] | None = None,
        task: FanoutTask | None = None,
        now: float | None = None,
    ) -> list[str]:
        return self.messages.post_messages(source, messages, ids, task, now)

    def store_posts(
        self, posts: Sequence[Post], now: float | None = None
    ) -> list[bool | errors.QuotaExceededError]:
        return self.messages.store_posts(posts, now)

    def get_message(self, source: Source, message_id: str) -> Record:
        return self.messages.get_message(source, message_id)

    def get_messages(self, message_ids: Iterable[str]) -> dict[str, Record]:
        return self.messages.get_messages(message_ids)

    def restore_message(self, message: Record, now: float | None = None) -> None:
        self.messages.restore_message(message, now)

    def delete_messages(self, message_ids: Iterable[str]) -> None:
        self.messages.delete_messages(message_ids)

    def add_pending(self, counts: Mapping[str, int], ttl_seconds: Mapping[str, float]) -> None:
        self.messages.add_pending(counts, ttl_seconds)

    def settle_pending(self, messages: Iterable[Record]) -> list[str]:
        return self.messages.settle_pending(messages)

    def load_deliveries(
        self, message_ids: Iterable[str], subscription_ids: Iterable[str]
    ) -> tuple[dict[str, Record], dict[str, Record]]:
        messages, subscriptions, _ = self.messages.load_deliveries(message_ids, subscription_ids)
        return messages, subscriptions

    def read_fanouts(
        self,
        message_ids: Iterable[str],
        sources: Iterable[Source],
        page_size: int,
        started: Sequence[str] = (),
    ) -> tuple[dict[str, Record], dict[Source, tuple[list[Record], str | None]]]:
        """What fan-outs start with, in two round trips rather than a task's
        outbox entry, its messages and a page's ids and subscriptions one
        after the other (issue 21): the messages that still exist and each
        source's first ``subscription_page``; the outbox entries
        ``started`` are removed with the first."""
        messages, page_ids = self.messages.read_fanouts(message_ids, sources, page_size, started)
        return messages, self.subscriptions.pages_of(page_ids, page_size)

    def load_batch(
        self,
        message_ids: Iterable[str],
        subscription_ids: Iterable[str],
        deliveries: Sequence[Record],
    ) -> tuple[dict[str, Record], dict[str, Record], set[int]]:
        """``load_deliveries`` and ``already_done`` in one round trip."""
        return self.messages.load_deliveries(
            message_ids, subscription_ids, [done_flag(d) for d in deliveries]
        )

    # -- control messages ---------------------------------------------------

    def post_control_message(
        self,
        source: Source,
        payload: Record,
        ttl: int,
        now: float | None = None,
        nonce: str | None = None,
    ) -> str:
        return self.control.post_control_message(source, payload, ttl, now, nonce)

    def get_control_messages(self, message_ids: Iterable[str]) -> dict[str, Record]:
        return self.control.get_control_messages(message_ids)

    def count_confirmation(self, subject: str, window_seconds: float) -> tuple[int, int]:
        return self.control.count_confirmation(subject, window_seconds)

    # -- subscriptions --------------------------------------------------------

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
        return self.subscriptions.create_subscription(
            source, subscriber, ttl, options, confirmed, now, unique_key, project, extra
        )

    def get_subscription(self, source: Source, subscription_id: str) -> Record:
        return self.subscriptions.get_subscription(source, subscription_id)

    def get_subscriptions(self, subscription_ids: Iterable[str]) -> dict[str, Record]:
        return self.subscriptions.get_subscriptions(subscription_ids)

    def save_subscription(
        self, record: Record, previous_subscriber: str | None = None, now: float | None = None
    ) -> None:
        self.subscriptions.save_subscription(record, previous_subscriber, now)

    def update_subscription(
        self, source: Source, subscription_id: str, change: Callable[[Record], Record]
    ) -> Record:
        return self.subscriptions.update_subscription(source, subscription_id, change)

    def subscriber_taken(self, source: Source, subscriber: str, except_id: str | None) -> bool:
        return self.subscriptions.subscriber_taken(source, subscriber, except_id)

    def delete_subscription(self, source: Source, subscription_id: str) -> Record:
        return self.subscriptions.delete_subscription(source, subscription_id)

    def forget_subscription_data(
        self, subscription_id: str, project: str | None = None, chunk: int = 100
    ) -> None:
        self.subscriptions.forget_subscription_data(subscription_id, project, chunk)

    def delete_subscription_index(self, source: Source) -> None:
        self.subscriptions.delete_subscription_index(source)

    def subscription_page(
        self, source: Source, after: str | None = None, limit: int = 500
    ) -> tuple[list[Record], str | None]:
        return self.subscriptions.subscription_page(source, after, limit)

    def subscription_count(self, project: str, now: float | None = None) -> int:
        return self.subscriptions.subscription_count(project, now)

    # -- schedule and outbox ------------------------------------------------

    def mark_task_sent(self, member: str, now: float | None = None) -> None:
        self.schedule.mark_task_sent(member, now)

    def mark_task_started(self, member: str) -> None:
        self.schedule.mark_task_started(member)

    def mark_tasks_started(self, members: Sequence[str]) -> None:
        self.schedule.mark_tasks_started(members)

    def sent_at(self, members: Sequence[str]) -> list[float | None]:
        return self.schedule.sent_at(members)

    def restamp_tasks(self, members: Sequence[str], sent: float) -> None:
        self.schedule.restamp_tasks(members, sent)

    def lease_stale_tasks(
        self, now: float, stale_seconds: float, queue_names: Iterable[str], limit: int = 500
    ) -> list[str]:
        return self.schedule.lease_stale_tasks(now, stale_seconds, queue_names, limit)

    def schedule_retries(self, due_deliveries: Iterable[tuple[float, Record]]) -> None:
        self.schedule.schedule_retries(due_deliveries)

    def lease_due_retries(
        self, now: float, limit: int, lease_seconds: float = 30
    ) -> list[tuple[str, Record]]:
        return self.schedule.lease_due_retries(now, limit, lease_seconds)

    def release_retries(self, members: Sequence[str]) -> None:
        self.schedule.release_retries(members)

    def pending_retry_count(self) -> int:
        return self.schedule.pending_retry_count()

    def shared_state(self, queue_names: Sequence[str]) -> dict[str, Any]:
        return self.schedule.shared_state(queue_names)

    # -- delivery log and dead letters --------------------------------------

    def already_done(self, deliveries: Sequence[Record]) -> set[int]:
        return self.log.already_done(deliveries)

    def record_attempts(self, attempts: Sequence[Record]) -> None:
        self.log.record_attempts(attempts)

    def subscription_attempts(
        self, subscription_id: str, limit: int = 100, source: Source | None = None
    ) -> list[Record]:
        return self.log.subscription_attempts(subscription_id, limit, source)

    def message_attempts(self, message_id: str, limit: int = 100) -> list[Record]:
        return self.log.message_attempts(message_id, limit)

    def control_attempts(self, message_id: str, limit: int = 100) -> list[Record]:
        return self.log.control_attempts(message_id, limit)

    def dead_letter(self, letters: Sequence[Record], now: float | None = None) -> list[Record]:
        return self.dead.dead_letter(letters, now)

    def dead_letters(
        self, subscription_id: str, since: float = 0, limit: int = 100, now: float | None = None
    ) -> list[Record]:
        return self.dead.dead_letters(subscription_id, since, limit, now)

    def remove_dead_letters(self, subscription_id: str, letters: Sequence[Record]) -> None:
        self.dead.remove_dead_letters(subscription_id, letters)

    # -- byte quotas ----------------------------------------------------------

    def stored_bytes(self, project: str, now: float | None = None) -> int:
        return self.quota.stored_bytes(project, now)
