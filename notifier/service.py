"""Fan-out and delivery: what the Celery tasks and the scheduler call.

A *delivery* is a small dict ``{"message_id", "subscription_id", "attempt"}``
(``attempt`` 0 is the first try); it is what travels in task arguments and in
the retry schedule. Everything else is loaded from storage when it runs, so a
retry always sees the subscription as it is now (deleted, disabled, edited).
"""

import logging
import time

from notifier import errors, payloads
from notifier.matching import matching_pairs
from notifier.conf import retry_defaults as configured_retry_defaults
from notifier.retry import resolve_policy
from notifier.sinks import Notification, SinkRegistry
from notifier.storage import Source

LOG = logging.getLogger(__name__)


def make_delivery(message_id, subscription_id, attempt=0):
    return {"message_id": message_id, "subscription_id": subscription_id,
            "attempt": attempt}


def chunked(items, size):
    for start in range(0, len(items), size):
        yield items[start:start + size]


class DeliveryService:
    """Turn messages into deliveries and deliveries into sink calls."""

    def __init__(self, conf, storage, dispatcher, sinks=None, clock=time.time,
                 retry_defaults=None):
        self.conf = conf
        self.storage = storage
        self.dispatcher = dispatcher
        self.sinks = sinks or SinkRegistry(conf)
        self.clock = clock
        self.retry_defaults = retry_defaults or configured_retry_defaults(conf)
        self.page_size = conf.notification.fanout_page_size
        self.per_task = conf.notification.deliveries_per_task

    # -- fan-out ----------------------------------------------------------

    def fanout(self, source, message_ids, cursor=None):
        """Match one page of a source's subscriptions against messages.

        The next page is enqueued as its own task before this page is
        delivered, so memory stays bounded by the page size however many
        subscriptions a source has. Small fan-outs are delivered in this task,
        saving a task hop (~1.5 ms of worker CPU).
        """
        source = Source(*source)
        messages = self.storage.get_messages(message_ids)
        if not messages:
            return 0
        subscriptions, next_cursor = self.storage.subscription_page(
            source, cursor, self.page_size)
        if next_cursor:
            self.dispatcher.send_fanout(source, message_ids, next_cursor)
        pairs = matching_pairs(list(messages.values()), subscriptions)
        if not pairs:
            return 0
        if cursor is None and next_cursor is None and len(pairs) <= self.per_task:
            self._deliver_pairs([(make_delivery(m["id"], s["id"]), m, s)
                                 for m, s in pairs])
        else:
            deliveries = [make_delivery(m["id"], s["id"]) for m, s in pairs]
            for chunk in chunked(deliveries, self.per_task):
                self.dispatcher.send_deliveries(chunk)
        return len(pairs)

    # -- delivery ---------------------------------------------------------

    def deliver(self, deliveries):
        """Run a batch of deliveries, loading their messages and subscriptions."""
        messages = self.storage.get_messages(
            list({d["message_id"] for d in deliveries}))
        subscriptions = self.storage.get_subscriptions(
            list({d["subscription_id"] for d in deliveries}))
        triples = []
        expired = []
        for delivery in deliveries:
            subscription = subscriptions.get(delivery["subscription_id"])
            if subscription is None:
                continue  # unsubscribed or expired: nobody to deliver to
            message = messages.get(delivery["message_id"])
            if message is None:
                expired.append(self._attempt(delivery, "expired", 0.0,
                                             detail="message TTL passed"))
                continue
            triples.append((delivery, message, subscription))
        self.storage.record_attempts(expired)
        self._deliver_pairs(triples)

    def _deliver_pairs(self, triples):
        attempts, retries, immediate, dead = [], [], [], []
        policies = {}
        for delivery, message, subscription in triples:
            attempt = self._deliver_one(delivery, message, subscription)
            if attempt["outcome"] == "failed":
                policy = self._policy(subscription, policies)
                delay = self._next_delay(policy, delivery, attempt)
                if delay is None:
                    attempt["outcome"] = "dead_lettered"
                    dead.append(self._dead_letter(delivery, message, attempt))
                else:
                    retry = make_delivery(delivery["message_id"],
                                          delivery["subscription_id"],
                                          delivery["attempt"] + 1)
                    attempt["next_retry_at"] = self.clock() + delay
                    if delay <= 0:
                        immediate.append(retry)
                    else:
                        retries.append((attempt["next_retry_at"], retry))
            attempts.append(attempt)
        self.storage.schedule_retries(retries)
        for chunk in chunked(immediate, self.per_task):
            self.dispatcher.send_deliveries(chunk)
        self.storage.record_attempts(attempts)
        self._store_dead_letters(dead)

    def _deliver_one(self, delivery, message, subscription):
        source = Source(*message["source"])
        notification = Notification(
            delivery_id=payloads.delivery_id(message["id"], subscription["id"]),
            subscription=subscription, message=message,
            payload=payloads.notification_payload(message, source.kind, source.name),
            attempt=delivery["attempt"])
        started = time.perf_counter()
        try:
            sink = self.sinks.for_subscriber(subscription["subscriber"])
            report = sink.deliver(notification)
        except errors.DeliveryError as exc:
            return self._attempt(delivery, "failed", time.perf_counter() - started,
                                 status=exc.status, error=exc.kind,
                                 detail=str(exc), permanent=not exc.retryable,
                                 retry_after=exc.retry_after_seconds,
                                 response_body=exc.response_body)
        except errors.ValidationError as exc:  # scheme no longer served
            return self._attempt(delivery, "failed", time.perf_counter() - started,
                                 error="invalid_subscriber", detail=str(exc),
                                 permanent=True)
        return self._attempt(delivery, "delivered", time.perf_counter() - started,
                             status=report.status,
                             response_body=report.response_body)

    def _attempt(self, delivery, outcome, seconds, status=None, error=None,
                 detail=None, permanent=False, retry_after=None,
                 response_body=None):
        record = {"at": self.clock(), "message_id": delivery["message_id"],
                  "subscription_id": delivery["subscription_id"],
                  "attempt": delivery["attempt"], "outcome": outcome,
                  "duration_ms": round(seconds * 1000, 2)}
        for key, value in (("status", status), ("error", error),
                           ("detail", detail), ("response_body", response_body)):
            if value is not None:
                record[key] = value if not isinstance(value, str) else value[:2048]
        if permanent:
            record["permanent"] = True
        if retry_after is not None:
            record["retry_after"] = retry_after
        return record

    def _policy(self, subscription, cache):
        source = Source(*subscription["source"])
        key = (source, subscription["id"])
        if key not in cache:
            queue_meta = self.storage.source_metadata_or_empty(source)
            cache[key] = resolve_policy(
                queue_meta.get("_retry_policy"),
                (subscription.get("options") or {}).get("_retry_policy"),
                self.retry_defaults)
        return cache[key]

    @staticmethod
    def _next_delay(policy, delivery, attempt):
        if attempt.get("permanent"):
            return None
        return policy.delay_after_failure(delivery["attempt"] + 1,
                                          attempt.get("retry_after"))

    def _dead_letter(self, delivery, message, attempt):
        return {"message_id": delivery["message_id"],
                "subscription_id": delivery["subscription_id"],
                "attempts": delivery["attempt"] + 1, "last": attempt,
                "died_at": self.clock(), "message": message}

    def _store_dead_letters(self, dead):
        for letter in dead:
            # The full history, oldest first, from the message's attempt log.
            history = [a for a in self.storage.message_attempts(
                letter["message_id"], limit=self.conf.notification.attempt_log_length)
                if a["subscription_id"] == letter["subscription_id"]]
            letter["history"] = list(reversed(history))
        self.storage.dead_letter(dead, now=self.clock())

    # -- replay -----------------------------------------------------------

    def replay(self, subscription_id, message_id=None, since=0, limit=1000):
        """Send dead-lettered deliveries of a subscription again; return how many.

        One message's (``message_id``) or all that died at or after ``since``.
        A message whose TTL has passed is stored again from the dead letter's
        copy, with its original TTL.
        """
        letters = [letter for letter in self.storage.dead_letters(
                       subscription_id, since=since, limit=limit)
                   if message_id is None or letter["message_id"] == message_id]
        for letter in letters:
            self.storage.restore_message(letter["message"])
        deliveries = [make_delivery(letter["message_id"], subscription_id)
                      for letter in letters]
        for chunk in chunked(deliveries, self.per_task):
            self.dispatcher.send_deliveries(chunk)
        self.storage.remove_dead_letters(subscription_id, letters)
        return len(letters)

    # -- retries ----------------------------------------------------------

    def move_due_retries(self, limit=1000):
        """Enqueue retries that are due; return how many were moved."""
        leased = self.storage.lease_due_retries(self.clock(), limit)
        if not leased:
            return 0
        deliveries = [d for _, d in leased]
        for chunk in chunked(deliveries, self.per_task):
            self.dispatcher.send_deliveries(chunk)
        self.storage.release_retries([m for m, _ in leased])
        return len(leased)
