"""Fan-out and delivery: what the Celery tasks and the scheduler call.

A *delivery* is a small dict ``{"message_id", "subscription_id", "attempt"}``
(``attempt`` 0 is the first try); it is what travels in task arguments and in
the retry schedule. Everything else is loaded from storage when it runs, so a
retry always sees the subscription as it is now (deleted, disabled, edited).
"""

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

from notifier import errors
from notifier.conf import retry_defaults as configured_retry_defaults
from notifier.core import confirmation, payloads
from notifier.core.matching import match_within
from notifier.core.retry import resolve_policy
from notifier.delivery.guard import FAIL_FAST_ERRORS, EndpointGuard, endpoint_key
from notifier.observability import metrics
from notifier.sinks import Notification, SinkRegistry
from notifier.store.storage import Source, redacted_attempt

LOG = logging.getLogger(__name__)


def make_delivery(message_id, subscription_id, attempt=0, round_=0):
    """Return a delivery. ``round`` tells a replay (or a release of held
    deliveries) from the first run, so its attempts count afresh."""
    delivery = {"message_id": message_id, "subscription_id": subscription_id, "attempt": attempt}
    if round_:
        delivery["round"] = round_
    return delivery


def new_round():
    return int(time.time() * 1000)


def log_results(results):
    """Log failures (successes at DEBUG), with ids as fields, never secrets."""
    debug = LOG.isEnabledFor(logging.DEBUG)
    for _, _, _, attempt in results:
        outcome = attempt["outcome"]
        if outcome == "delivered" and not debug:
            continue
        level = {"delivered": logging.DEBUG, "failed": logging.INFO}.get(outcome, logging.WARNING)
        LOG.log(
            level,
            "delivery %s",
            outcome,
            extra={
                "message_id": attempt["message_id"],
                "subscription_id": attempt["subscription_id"],
                "attempt": attempt["attempt"],
                "status": attempt.get("status"),
                "error": attempt.get("error"),
            },
        )


SUPERSEDED = "a newer confirmation was sent, or the subscriber changed"


def superseded(message, subscription):
    """Return whether ``message`` is a confirmation whose link no longer
    confirms ``subscription``: it is then not sent."""
    return bool(
        message is not None
        and message.get("control")
        and not confirmation.link_is_current(subscription, message.get("nonce"))
    )


def chunked(items, size):
    for start in range(0, len(items), size):
        yield items[start : start + size]


class DeliveryService:
    """Turn messages into deliveries and deliveries into sink calls."""

    def __init__(self, conf, storage, dispatcher, sinks=None, clock=time.time, retry_defaults=None):
        self.conf = conf
        self.storage = storage
        self.dispatcher = dispatcher
        self.sinks = sinks or SinkRegistry(conf)
        self.clock = clock
        self.retry_defaults = retry_defaults or configured_retry_defaults(conf)
        self.guard = EndpointGuard(conf, storage.redis, clock)
        self.page_size = conf.notification.fanout_page_size
        self.per_task = conf.notification.deliveries_per_task
        self._runner, self._runner_pid = None, None

    # -- fan-out ----------------------------------------------------------

    def fanout(self, source, message_ids, cursor=None, deadline=None):
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
        subscriptions, next_cursor = self.storage.subscription_page(source, cursor, self.page_size)
        if next_cursor:
            self.dispatcher.send_fanout(source, message_ids, next_cursor)
        pairs, skipped = match_within(
            list(messages.values()), subscriptions, self.conf.notification.filter_budget_per_fanout
        )
        if skipped:
            self._record_skipped(skipped)
        metrics.FANOUT_SIZE.observe(len(pairs))
        if source.kind == "topics":
            self._count_topic_deliveries(messages, pairs, cursor is None, next_cursor is None)
        if not pairs:
            return 0
        if cursor is None and next_cursor is None and len(pairs) <= self.per_task:
            self._deliver_pairs(
                [(make_delivery(m["id"], s["id"]), m, s) for m, s in pairs], deadline
            )
        else:
            deliveries = [make_delivery(m["id"], s["id"]) for m, s in pairs]
            for chunk in chunked(deliveries, self.per_task):
                self.dispatcher.send_deliveries(chunk)
        return len(pairs)

    def _record_skipped(self, skipped):
        """Log the (message, subscription) pairs whose filter was not
        evaluated (over the fan-out's budget): no delivery, an attempt saying why."""
        LOG.warning(
            "filter budget exhausted: %d deliveries skipped",
            len(skipped),
            extra={"skipped": len(skipped)},
        )
        self.storage.record_attempts(
            [
                self._attempt(
                    make_delivery(message["id"], subscription["id"]),
                    "skipped",
                    0.0,
                    error="filter_budget",
                    detail=reason,
                    source=message["source"],
                )
                for message, subscription, reason in skipped
            ]
        )

    def _count_topic_deliveries(self, messages, pairs, first_page, last_page):
        """Topic messages are for delivery only: count each page's deliveries,
        plus one token while the fan-out runs, so the message is deleted when
        the last delivery is final (delivered or dead-lettered). A repeated
        first page leaves a token behind: the message then lives to its TTL."""
        counts = {message_id: 1 if first_page else 0 for message_id in messages}
        for message, _ in pairs:
            counts[message["id"]] += 1
        self.storage.add_pending(
            {k: v for k, v in counts.items() if v}, {k: m["ttl"] for k, m in messages.items()}
        )
        if last_page:
            self.storage.settle_pending(list(messages.values()))

    def _settle_topic_messages(self, finished):
        """Count final deliveries off their topic messages."""
        self.storage.settle_pending([m for m in finished if m["source"][1] == "topics"])

    # -- delivery ---------------------------------------------------------

    def deliver(self, deliveries, deadline=None):
        """Run a batch of deliveries, loading their messages and subscriptions.

        ``deadline`` (epoch seconds): start no delivery after it; the rest go
        back to the retry schedule, due at once (not counted as attempts), so
        a task ends well within its broker visibility timeout.
        """
        messages, subscriptions = self.storage.load_deliveries(
            {d["message_id"] for d in deliveries}, {d["subscription_id"] for d in deliveries}
        )
        triples = []
        skipped = []  # expired or superseded: recorded, never sent
        orphans = []
        for delivery in deliveries:
            subscription = subscriptions.get(delivery["subscription_id"])
            if subscription is None:
                # unsubscribed or expired: nobody to deliver to
                if delivery["message_id"] in messages:
                    orphans.append(messages[delivery["message_id"]])
                continue
            message = messages.get(delivery["message_id"])
            if (
                message is not None
                and not message.get("control")
                and not subscription.get("confirmed", True)
            ):
                orphans.append(message)  # unsubscribed since: receives nothing
                continue
            if superseded(message, subscription):
                skipped.append(
                    self._attempt(
                        delivery,
                        "superseded",
                        0.0,
                        detail=SUPERSEDED,
                        source=subscription["source"],
                    )
                )
                continue
            if message is None:
                skipped.append(
                    self._attempt(
                        delivery,
                        "expired",
                        0.0,
                        detail="message TTL passed",
                        source=subscription["source"],
                    )
                )
                continue
            triples.append((delivery, message, subscription))
        self.storage.record_attempts(skipped)
        self._settle_topic_messages(orphans)
        self._deliver_pairs(triples, deadline)

    def _deliver_pairs(self, triples, deadline=None):
        # A redelivered task (a worker died) or a retry enqueued twice (a
        # scheduler died) must not run an attempt that already ran.
        done = self.storage.already_done([t[0] for t in triples])
        if done:
            triples = [t for i, t in enumerate(triples) if i not in done]
        held = [t for t in triples if t[2].get("disabled")]
        self._hold([t[0] for t in held], [t[2] for t in held])
        active = [t for t in triples if not t[2].get("disabled")]
        if deadline is not None and self.clock() >= deadline:
            # it waited too long among a worker's prefetched tasks
            self.storage.schedule_retries([(self.clock(), t[0]) for t in active])
            LOG.info("task past its deadline: %d deliveries rescheduled", len(active))
            return
        admitted, deferred, leases, unproven = self.guard.admit(active)
        results, to_disable = self._run_sinks(admitted, deferred, unproven, leases, deadline)
        attempts, retries, immediate, dead, hold = [], list(deferred), [], [], []
        finished = []
        policies = {}
        for delivery, message, subscription, attempt in results:
            attempts.append(attempt)
            if attempt["outcome"] != "failed":
                finished.append(message)
                continue
            if subscription["id"] in to_disable:
                attempt["outcome"] = "held"
                hold.append((delivery, subscription))
                continue
            policy = self._policy(subscription, policies, message)
            delay = self._next_delay(policy, delivery, attempt)
            if delay is None:
                attempt["outcome"] = "dead_lettered"
                dead.append(self._dead_letter(delivery, message, subscription, attempt))
                finished.append(message)
                continue
            retry = make_delivery(
                delivery["message_id"],
                delivery["subscription_id"],
                delivery["attempt"] + 1,
                delivery.get("round", 0),
            )
            attempt["next_retry_at"] = self.clock() + delay
            if delay <= 0:
                immediate.append(retry)
            else:
                retries.append((attempt["next_retry_at"], retry))
        self.storage.schedule_retries(retries)
        for chunk in chunked(immediate, self.per_task):
            self.dispatcher.send_deliveries(chunk)
        attempts += self._disable(to_disable, [s for _, _, s, _ in results])
        self.storage.record_attempts(attempts)
        metrics.observe_results(results, self.clock())
        log_results(results)
        self._hold([d for d, _ in hold], [s for _, s in hold])
        self._store_dead_letters(dead)
        self._settle_topic_messages(finished)

    def _run_sinks(self, admitted, deferred, unproven, leases, deadline=None):
        """Deliver admitted triples, each endpoint's in order; return the
        results and the subscriptions to disable.

        Endpoints not yet proven to answer in time run beside the task, in
        threads, so one that hangs does not hold up the others' deliveries in
        this task. Each endpoint gives back its lease and feeds its breaker
        as soon as its deliveries are done, not when the task is: a quick
        endpoint is proven (and open to other tasks) while a slow one in the
        same task still waits for its answer.
        """
        groups = {}
        for triple in admitted:
            groups.setdefault(endpoint_key(triple[2]), []).append(triple)
        inline, beside = [], []
        for endpoint, group in groups.items():
            job = (endpoint, group, leases.get(endpoint, []), deadline)
            (beside if endpoint in unproven and len(groups) > 1 else inline).append(job)
        futures = [self._endpoint_runner().submit(self._run_endpoint, *job) for job in beside]
        outcomes = [self._run_endpoint(*job) for job in inline]
        outcomes += [future.result() for future in futures]
        results, to_disable = [], {}
        for group_results, group_deferred, group_disable in outcomes:
            results += group_results
            deferred += group_deferred
            to_disable.update(group_disable)
        return results, to_disable

    def _endpoint_runner(self):
        # One pool per process, made after Celery forked it (threads do not
        # survive a fork).
        if self._runner is None or self._runner_pid != os.getpid():
            self._runner = ThreadPoolExecutor(
                self.conf.worker.endpoints_in_parallel, thread_name_prefix="endpoint"
            )
            self._runner_pid = os.getpid()
        return self._runner

    def _run_endpoint(self, endpoint, triples, tokens, deadline=None):
        """Deliver to one endpoint in order; return its results, deferred
        deliveries and subscriptions to disable."""
        try:
            results, deferred = self._attempt_in_order(triples, deadline)
        finally:
            self.guard.release({endpoint: tokens})
        settled = self.guard.settle(
            [(s, a) for _, _, s, a in results], {endpoint: tokens[0] if tokens else None}
        )
        return results, deferred, settled

    def _attempt_in_order(self, triples, deadline=None):
        results, deferred, failures = [], [], 0
        threshold = self.conf.webhook.breaker_failure_threshold
        for delivery, message, subscription in triples:
            if failures >= threshold:
                deferred.append((self.clock() + 1.0, delivery))
                continue
            if deadline is not None and self.clock() >= deadline:
                deferred.append((self.clock(), delivery))  # the task's time is up
                continue
            attempt = self._deliver_one(delivery, message, subscription)
            if attempt["outcome"] == "delivered" or attempt.get("permanent"):
                failures = 0
            elif attempt.get("error") in FAIL_FAST_ERRORS:
                failures = threshold
            else:
                failures += 1
            results.append((delivery, message, subscription, attempt))
        return results, deferred

    def _hold(self, deliveries, subscriptions):
        by_subscription = {}
        for delivery, subscription in zip(deliveries, subscriptions):
            by_subscription.setdefault(subscription["id"], []).append(delivery)
        for subscription_id, held in by_subscription.items():
            self.guard.state.hold(subscription_id, held)

    def _disable(self, reasons, subscriptions):
        """Disable subscriptions; return the attempt-log events saying so."""
        events, seen = [], set()
        for subscription in subscriptions:
            reason = reasons.get(subscription["id"])
            if reason is None or subscription["id"] in seen:
                continue
            seen.add(subscription["id"])
            record = self.storage.get_subscriptions([subscription["id"]]).get(subscription["id"])
            if record is None:
                continue
            record.update(disabled=True, disabled_reason=reason, disabled_at=self.clock())
            self.storage.save_subscription(record)
            LOG.warning(
                "subscription disabled", extra={"subscription_id": record["id"], "reason": reason}
            )
            metrics.SUBSCRIPTIONS_DISABLED.inc()
            events.append(
                {
                    "at": self.clock(),
                    "subscription_id": record["id"],
                    "message_id": None,
                    "outcome": "disabled",
                    "detail": reason,
                }
            )
        return events

    def enable(self, record):
        """Enable a disabled subscription and send what was held for it."""
        record.pop("disabled", None)
        record.pop("disabled_reason", None)
        record.pop("disabled_at", None)
        self.storage.save_subscription(record)
        endpoint = endpoint_key(record)  # this project's state there, no one else's
        if endpoint:
            self.guard.state.reset(endpoint)
        round_ = new_round()
        held = [
            make_delivery(d["message_id"], d["subscription_id"], 0, round_)
            for d in self.guard.state.take_held(record["id"])
        ]
        for chunk in chunked(held, self.per_task):
            self.dispatcher.send_deliveries(chunk)
        return len(held)

    def _deliver_one(self, delivery, message, subscription):
        if not message.get("control"):
            source = Source(*message["source"])
            payload = payloads.notification_payload(message, source.kind, source.name)
            return self._run_sink(delivery, message, subscription, payload)
        attempt = self._run_sink(delivery, message, subscription, message["payload"])
        attempt["message_type"] = message["payload"].get("Message_Type")
        return attempt

    def _run_sink(self, delivery, message, subscription, payload):
        source = message.get("source")  # whose attempts these are (the API checks)
        notification = Notification(
            delivery_id=payloads.delivery_id(message["id"], subscription["id"]),
            subscription=subscription,
            message=message,
            payload=payload,
            attempt=delivery["attempt"],
        )
        started = time.perf_counter()
        try:
            sink = self.sinks.for_subscriber(subscription["subscriber"])
            report = sink.deliver(notification)
        except errors.DeliveryError as exc:
            return self._attempt(
                delivery,
                "failed",
                time.perf_counter() - started,
                status=exc.status,
                error=exc.kind,
                detail=str(exc),
                permanent=not exc.retryable,
                retry_after=exc.retry_after_seconds,
                response_body=exc.response_body,
                source=source,
            )
        except errors.ValidationError as exc:  # scheme no longer served
            return self._attempt(
                delivery,
                "failed",
                time.perf_counter() - started,
                error="invalid_subscriber",
                detail=str(exc),
                permanent=True,
                source=source,
            )
        return self._attempt(
            delivery,
            "delivered",
            time.perf_counter() - started,
            status=report.status,
            response_body=report.response_body,
            source=source,
        )

    def _attempt(
        self,
        delivery,
        outcome,
        seconds,
        status=None,
        error=None,
        detail=None,
        permanent=False,
        retry_after=None,
        response_body=None,
        source=None,
    ):
        """Return an attempt record; ``source`` (the message's) lets the API
        show a message's attempts only to the source's own project."""
        record = {
            "at": self.clock(),
            "message_id": delivery["message_id"],
            "subscription_id": delivery["subscription_id"],
            "attempt": delivery["attempt"],
            "outcome": outcome,
            "duration_ms": round(seconds * 1000, 2),
        }
        if delivery.get("round"):
            record["round"] = delivery["round"]
        for key, value in (
            ("status", status),
            ("error", error),
            ("detail", detail),
            ("response_body", response_body),
        ):
            if value is not None:
                record[key] = value if not isinstance(value, str) else value[:2048]
        if permanent:
            record["permanent"] = True
        if retry_after is not None:
            record["retry_after"] = retry_after
        if source is not None:
            record["source"] = list(source)
        return record

    def _policy(self, subscription, cache, message=None):
        if message is not None and message.get("control"):
            # The service's retries: no _retry_policy of the queue or the
            # subscription decides how often a confirmation goes out.
            return self.retry_defaults
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
    def _next_delay(policy, delivery, attempt):
        if attempt.get("permanent"):
            return None
        return policy.delay_after_failure(delivery["attempt"] + 1, attempt.get("retry_after"))

    def _dead_letter(self, delivery, message, subscription, attempt):
        letter = {
            "message_id": delivery["message_id"],
            "subscription_id": delivery["subscription_id"],
            "project": subscription.get("project", subscription["source"][0]),
            "attempts": delivery["attempt"] + 1,
            "last": attempt,
            "died_at": self.clock(),
            "message": message,
        }
        if message.get("control"):
            # Its payload is a confirmation link: never in a dead letter the
            # owner reads, nor its id; it is not replayed (subscribing
            # again sends a new confirmation).
            letter.update(message_id=None, control=True, message_type=attempt.get("message_type"))
            del letter["message"]
            letter["control_id"] = delivery["message_id"]  # dropped before storing
        return letter

    def _store_dead_letters(self, dead):
        limit = self.conf.notification.attempt_log_length
        for letter in dead:
            # The full history, oldest first, from the message's attempt log.
            control_id = letter.pop("control_id", None)
            if control_id:
                logged = self.storage.control_attempts(control_id, limit=limit)
                letter["last"] = redacted_attempt(letter["last"])
            else:
                logged = self.storage.message_attempts(letter["message_id"], limit=limit)
            history = [
                redacted_attempt(a)
                for a in logged
                if a["subscription_id"] == letter["subscription_id"]
            ]
            letter["history"] = list(reversed(history))
        for letter in self.storage.dead_letter(dead, now=self.clock()):
            LOG.warning(
                "dead letter dropped: its project is at its stored-bytes quota",
                extra={
                    "message_id": letter["message_id"],
                    "subscription_id": letter["subscription_id"],
                    "project": letter["project"],
                },
            )

    # -- control messages -------------------------------------------------

    def send_control(self, source, subscription_id, payload, ttl, nonce=None):
        """Send a message of the service's own (a confirmation request with
        ``nonce``) to one subscription, as a delivery retried by the
        service's default policy; return its id."""
        message_id = self.storage.post_control_message(source, payload, ttl, nonce=nonce)
        self.dispatcher.send_deliveries([make_delivery(message_id, subscription_id)])
        return message_id

    # -- replay -----------------------------------------------------------

    def replay(self, subscription_id, message_id=None, since=0, limit=1000):
        """Send dead-lettered deliveries of a subscription again; return how many.

        One message's (``message_id``) or all that died at or after ``since``.
        A message whose TTL has passed is stored again from the dead letter's
        copy, with its original TTL.
        """
        letters = [
            letter
            for letter in self.storage.dead_letters(subscription_id, since=since, limit=limit)
            if "message" in letter  # a confirmation's letter has none: not replayed
            and (message_id is None or letter["message_id"] == message_id)
        ]
        for letter in letters:
            self.storage.restore_message(letter["message"])
        round_ = new_round()
        deliveries = [
            make_delivery(letter["message_id"], subscription_id, 0, round_) for letter in letters
        ]
        for chunk in chunked(deliveries, self.per_task):
            self.dispatcher.send_deliveries(chunk)
        self.storage.remove_dead_letters(subscription_id, letters)
        return len(letters)

    # -- reconciling --------------------------------------------------------

    def reconcile_tasks(self, stale_seconds, queue_names):
        """Send again tasks that were sent but never started (lost between the
        broker and the worker: celery#4354, kombu#1836). Return how many."""
        members = self.storage.lease_stale_tasks(self.clock(), stale_seconds, queue_names)
        for member in members:
            LOG.warning("re-sending a task that never started")
            self.dispatcher.resend(member)
        return len(members)

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
