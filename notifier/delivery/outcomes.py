"""Outcomes: what follows an attempt.

A failed attempt is retried by its retry policy (due at once: a new task;
later: the retry schedule), or dead-lettered when the policy is spent or the
failure is permanent. A subscription that admission disables gets its
failed deliveries held until it is enabled. Every attempt is recorded, and a
topic message counts its final deliveries off (it is deleted after the last).
"""

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from notifier.core.model import Attempt, DeadLetter, Delivery, Outcome
from notifier.core.retry import RetryPolicy, resolve_policy
from notifier.delivery.admission import Admission
from notifier.delivery.dead_letter_queue import DeadLetterQueues
from notifier.delivery.jobs import (
    Deferred,
    Dispatcher,
    Job,
    Record,
    Result,
    send_deliveries,
    wire_deferred,
)
from notifier.observability import metrics
from notifier.store.storage import Source, Storage, redacted_attempt

LOG = logging.getLogger(__name__)

_LOG_LEVELS = {Outcome.DELIVERED: logging.DEBUG, Outcome.FAILED: logging.INFO}


def log_results(results: Iterable[Result]) -> None:
    """Log failures (successes at DEBUG), with ids as fields, never secrets."""
    debug = LOG.isEnabledFor(logging.DEBUG)
    for _, attempt in results:
        if attempt.outcome == Outcome.DELIVERED and not debug:
            continue
        LOG.log(
            _LOG_LEVELS.get(attempt.outcome, logging.WARNING),
            "delivery %s",
            attempt.outcome.value,
            extra={
                "message_id": attempt.message_id,
                "subscription_id": attempt.subscription_id,
                "attempt": attempt.attempt,
                "status": attempt.status,
                "error": attempt.error,
            },
        )


@dataclasses.dataclass
class _Settled:
    """A batch's outcomes, sorted by what follows them."""

    attempts: list[Attempt] = dataclasses.field(default_factory=list)
    retries: list[Deferred] = dataclasses.field(default_factory=list)
    immediate: list[Delivery] = dataclasses.field(default_factory=list)
    dead: list[tuple[DeadLetter, str]] = dataclasses.field(default_factory=list)
    hold: list[Job] = dataclasses.field(default_factory=list)
    finished: list[Record] = dataclasses.field(default_factory=list)


class Outcomes:
    """Retry, dead-letter, hold or disable after a batch's attempts."""

    def __init__(
        self,
        conf: Any,
        storage: Storage,
        dispatcher: Dispatcher,
        admission: Admission,
        clock: Callable[[], float],
        retry_defaults: RetryPolicy,
    ) -> None:
        self.conf = conf
        self.storage = storage
        self.dispatcher = dispatcher
        self.admission = admission
        self.clock = clock
        self.retry_defaults = retry_defaults
        self.per_task: int = conf.notification.deliveries_per_task
        self.dead_letter_queues = DeadLetterQueues(conf, storage, dispatcher, clock)

    def settle(
        self, results: Sequence[Result], deferred: Iterable[Deferred], to_disable: Mapping[str, str]
    ) -> None:
        """Follow up a batch: ``deferred`` deliveries were not attempted;
        ``to_disable`` maps subscription ids to why admission disables them."""
        settled = _Settled(retries=list(deferred))
        policies: dict[tuple[Source, str], RetryPolicy] = {}
        for result in results:
            settled.attempts.append(self._follow(result, to_disable, policies, settled))
        self.storage.schedule_retries(wire_deferred(settled.retries))
        send_deliveries(self.dispatcher, settled.immediate, self.per_task)
        records = [a.to_dict() for a in settled.attempts]
        records += [a.to_dict() for a in self._disable(to_disable, [r.job for r in results])]
        self.storage.record_attempts(records)
        metrics.observe_results(
            [
                (job.delivery, job.message, job.subscription, record)
                for (job, _), record in zip(results, records)
            ],
            self.clock(),
        )
        log_results(Result(r.job, a) for r, a in zip(results, settled.attempts))
        self.hold(settled.hold)
        self._store_dead_letters(settled.dead)
        self.settle_topic_messages(settled.finished)

    def _follow(
        self,
        result: Result,
        to_disable: Mapping[str, str],
        policies: dict[tuple[Source, str], RetryPolicy],
        settled: _Settled,
    ) -> Attempt:
        """Sort one result into ``settled``; return its attempt as recorded."""
        job, attempt = result
        if attempt.outcome != Outcome.FAILED:
            settled.finished.append(job.message)
            return attempt
        if job.subscription["id"] in to_disable:
            settled.hold.append(job)
            return attempt.with_outcome(Outcome.HELD)
        delay = self._next_delay(self._policy(job, policies), job.delivery, attempt)
        if delay is None:
            attempt = attempt.with_outcome(Outcome.DEAD_LETTERED)
            settled.dead.append(self._dead_letter(job, attempt))
            settled.finished.append(job.message)
            return attempt
        retry = job.delivery.next_attempt()
        due = self.clock() + delay
        if delay <= 0:
            settled.immediate.append(retry)
        else:
            settled.retries.append(Deferred(due, retry))
        return dataclasses.replace(attempt, next_retry_at=due)

    def hold(self, jobs: Iterable[Job]) -> None:
        """Keep deliveries of disabled subscriptions until they are enabled."""
        by_subscription: dict[str, list[dict[str, Any]]] = {}
        for job in jobs:
            by_subscription.setdefault(job.subscription["id"], []).append(job.delivery.to_dict())
        for subscription_id, held in by_subscription.items():
            self.admission.state.hold(subscription_id, held)

    def reschedule(self, deferred: Iterable[Deferred]) -> None:
        """Put deliveries not attempted back in the retry schedule."""
        self.storage.schedule_retries(wire_deferred(deferred))

    def record(self, attempts: Iterable[Attempt]) -> None:
        self.storage.record_attempts([a.to_dict() for a in attempts])

    def settle_topic_messages(self, finished: Iterable[Record]) -> None:
        """Count final deliveries off their topic messages."""
        self.storage.settle_pending([m for m in finished if m["source"][1] == "topics"])

    def _disable(self, reasons: Mapping[str, str], subscriptions: Iterable[Job]) -> list[Attempt]:
        """Disable subscriptions; return the attempt-log events saying so."""
        events: list[Attempt] = []
        seen: set[str] = set()
        for job in subscriptions:
            subscription_id = job.subscription["id"]
            reason = reasons.get(subscription_id)
            if reason is None or subscription_id in seen:
                continue
            seen.add(subscription_id)
            record = self.storage.get_subscriptions([subscription_id]).get(subscription_id)
            if record is None:
                continue
            record.update(disabled=True, disabled_reason=reason, disabled_at=self.clock())
            self.storage.save_subscription(record)
            LOG.warning(
                "subscription disabled", extra={"subscription_id": record["id"], "reason": reason}
            )
            metrics.SUBSCRIPTIONS_DISABLED.inc()
            events.append(Attempt.event(self.clock(), record["id"], Outcome.DISABLED, reason))
        return events

    def _policy(self, job: Job, cache: dict[tuple[Source, str], RetryPolicy]) -> RetryPolicy:
        if job.message.get("control"):
            # The service's retries: no _retry_policy of the queue or the
            # subscription decides how often a confirmation goes out.
            return self.retry_defaults
        subscription = job.subscription
        source = Source(*subscription["source"])
        key = (source, subscription["id"])
        if key not in cache:
            queue_meta = self.storage.source_metadata_or_empty(source)
            cache[key] = resolve_policy(
                queue_meta.get("_retry_policy"),
                (subscription.get("options") or {}).get("_retry_policy"),
                self.retry_defaults,
            )
        return cache[key]

    @staticmethod
    def _next_delay(policy: RetryPolicy, delivery: Delivery, attempt: Attempt) -> float | None:
        if attempt.permanent:
            return None
        delay: float | None = policy.delay_after_failure(delivery.attempt + 1, attempt.retry_after)
        return delay

    def _dead_letter(self, job: Job, attempt: Attempt) -> tuple[DeadLetter, str]:
        """Return the dead letter of a job and the id of the message whose
        attempt log holds its history."""
        delivery, message, subscription = job
        letter = DeadLetter(
            message_id=delivery.message_id,
            subscription_id=delivery.subscription_id,
            project=subscription.get("project", subscription["source"][0]),
            attempts=delivery.attempt + 1,
            last=attempt,
            died_at=self.clock(),
            message=message,
        )
        if message.get("control"):
            # Its payload is a confirmation link: never in a dead letter the
            # owner reads, nor its id; it is not replayed (subscribing
            # again sends a new confirmation).
            letter = dataclasses.replace(
                letter,
                message_id=None,
                message=None,
                control=True,
                message_type=attempt.message_type,
            )
        return letter, delivery.message_id

    def _store_dead_letters(self, dead: Sequence[tuple[DeadLetter, str]]) -> None:
        limit = self.conf.notification.attempt_log_length
        letters = []
        for letter, logged_under in dead:
            # The full history, oldest first, from the message's attempt log.
            if letter.control:
                logged = self.storage.control_attempts(logged_under, limit=limit)
                letter = dataclasses.replace(letter, last=_redacted(letter.last))
            else:
                logged = self.storage.message_attempts(logged_under, limit=limit)
            history = [
                Attempt.from_dict(redacted_attempt(a))
                for a in logged
                if a["subscription_id"] == letter.subscription_id
            ]
            letters.append(dataclasses.replace(letter, history=tuple(reversed(history))))
        for refused in self.storage.dead_letter([d.to_dict() for d in letters], now=self.clock()):
            LOG.warning(
                "dead letter dropped: its project is at its stored-bytes quota",
                extra={
                    "message_id": refused["message_id"],
                    "subscription_id": refused["subscription_id"],
                    "project": refused["project"],
                },
            )
        try:
            self.dead_letter_queues.post(letters)
        except Exception:  # the dead letters are stored; the notices are extra
            LOG.exception("posting dead-letter notices failed", extra={"count": len(letters)})


def _redacted(attempt: Attempt) -> Attempt:
    return Attempt.from_dict(redacted_attempt(attempt.to_dict()))
