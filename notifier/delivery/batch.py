"""Batch delivery: what one delivery task does.

A batch's deliveries are loaded with their messages and subscriptions; those
with nobody to deliver to, or whose message is gone, are recorded and
dropped. Admission decides what goes now. Each endpoint's deliveries are
attempted in order; endpoints not yet proven run beside the task in a thread
pool, so one that hangs does not hold up the others. Nothing starts after the
task's deadline: the rest goes back to the retry schedule.
"""

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple

from notifier.core.model import Attempt, Delivery, Outcome
from notifier.delivery.admission import FAIL_FAST_ERRORS, Admission, endpoint_key
from notifier.delivery.attempt import Payloads, run_attempt
from notifier.delivery.control import SUPERSEDED, superseded
from notifier.delivery.jobs import Deferred, Job, Record, Result, as_delivery
from notifier.delivery.outcomes import Outcomes
from notifier.sinks import SinkRegistry
from notifier.store.storage import Storage

LOG = logging.getLogger(__name__)

#: How long one endpoint's deliveries in a batch may run before their
#: outcomes are stored (a killed worker repeats at most that much).
SETTLE_EVERY_SECONDS = 0.05

#: How long a batch's proven endpoints run one after the other in the task;
#: then the ones not started yet run beside it, in threads, so a batch of
#: many endpoints (up to ten tasks' worth, perhaps several projects') that
#: answer slowly but in time is not as slow as their sum.
INLINE_SECONDS = 0.5


class _EndpointRun(NamedTuple):
    """One endpoint's share of a batch."""

    endpoint: str | None
    jobs: list[Job]
    tokens: list[Any]  # its concurrency leases
    deadline: float | None
    built: Payloads  # the batch's payloads, shared by its endpoints


class _EndpointDone(NamedTuple):
    results: list[Result]
    deferred: list[Deferred]
    to_disable: dict[str, str]


class _Attempted(NamedTuple):
    """An endpoint run whose attempts are made, not yet settled."""

    run: _EndpointRun
    results: list[Result]
    deferred: list[Deferred]
    settled: list[Result]  # stored already (long runs store as they go)


def _leases_of(runs: Iterable[_EndpointRun]) -> dict[str, list[Any]]:
    return {run.endpoint: run.tokens for run in runs if run.endpoint}


class Batch:
    """Run batches of deliveries through admission, sinks and outcomes."""

    def __init__(
        self,
        conf: Any,
        storage: Storage,
        sinks: SinkRegistry,
        admission: Admission,
        outcomes: Outcomes,
        clock: Callable[[], float],
    ) -> None:
        self.conf = conf
        self.storage = storage
        self.sinks = sinks
        self.admission = admission
        self.outcomes = outcomes
        self.clock = clock
        self._runner: ThreadPoolExecutor | None = None
        self._runner_pid: int | None = None

    def deliver(
        self,
        deliveries: Sequence[Delivery | dict[str, Any]],
        deadline: float | None = None,
        known: tuple[Mapping[str, Record], Mapping[str, Record]] | None = None,
    ) -> None:
        """Run a batch of deliveries, loading their messages and subscriptions.

        ``deadline`` (epoch seconds): start no delivery after it; the rest go
        back to the retry schedule, due at once (not counted as attempts), so
        a task ends well within its broker visibility timeout. ``known``:
        messages and subscriptions by id, loaded already (not loaded again).
        """
        batch = [as_delivery(d) for d in deliveries]
        known_messages, known_subscriptions = known or ({}, {})
        # the done flags are read in the same round trip (see ``run``)
        messages, subscriptions, done = self.storage.load_batch(
            {d.message_id for d in batch} - known_messages.keys(),
            {d.subscription_id for d in batch} - known_subscriptions.keys(),
            [d.to_dict() for d in batch],
        )
        ran = {batch[i] for i in done}
        messages.update(known_messages)
        subscriptions.update(known_subscriptions)
        jobs: list[Job] = []
        skipped: list[Attempt] = []  # expired or superseded: recorded, never sent
        orphans: list[Record] = []
        for delivery in batch:
            subscription = subscriptions.get(delivery.subscription_id)
            message = messages.get(delivery.message_id)
            if subscription is None:
                # unsubscribed or expired: nobody to deliver to
                if message is not None:
                    orphans.append(message)
                continue
            if (
                message is not None
                and not message.get("control")
                and not subscription.get("confirmed", True)
            ):
                orphans.append(message)  # unsubscribed since: receives nothing
                continue
            not_sent = _not_sent(message, subscription)
            if not_sent is not None:
                outcome, detail = not_sent
                skipped.append(
                    Attempt.of(
                        delivery,
                        outcome,
                        self.clock(),
                        0.0,
                        detail=detail,
                        source=subscription["source"],
                    )
                )
                continue
            assert message is not None
            jobs.append(Job(delivery, message, subscription))
        self.outcomes.record(skipped)
        self.outcomes.settle_topic_messages(orphans)
        self.run(jobs, deadline, ran)

    def run(
        self, jobs: Sequence[Job], deadline: float | None = None, ran: set[Delivery] | None = None
    ) -> None:
        """Deliver loaded jobs and follow up their outcomes. ``ran``: the
        deliveries whose attempt has run, if the caller read their done flags."""
        # A redelivered task (a worker died) or a retry enqueued twice (a
        # scheduler died) must not run an attempt that already ran; nor may a
        # task sent twice and taken twice into one batch (the done flags are
        # read once for the batch).
        jobs = list({job.delivery: job for job in jobs}.values())  # in first-seen order
        if ran is None:
            done = self.storage.already_done([job.delivery.to_dict() for job in jobs])
            jobs = [job for i, job in enumerate(jobs) if i not in done]
        elif ran:
            jobs = [job for job in jobs if job.delivery not in ran]
        self.outcomes.hold(job for job in jobs if job.subscription.get("disabled"))
        active = [job for job in jobs if not job.subscription.get("disabled")]
        if deadline is not None and self.clock() >= deadline:
            # it waited too long among a worker's prefetched tasks
            self.outcomes.reschedule(Deferred(self.clock(), job.delivery) for job in active)
            LOG.info("task past its deadline: %d deliveries rescheduled", len(active))
            return
        admitted = self.admission.admit(active)
        results, deferred, to_disable = self._run_endpoints(
            admitted.jobs, admitted.unproven, admitted.leases, deadline
        )
        self.outcomes.settle(results, admitted.deferred + deferred, to_disable)

    def _run_endpoints(
        self,
        jobs: Iterable[Job],
        unproven: set[str],
        leases: dict[str, list[Any]],
        deadline: float | None,
    ) -> _EndpointDone:
        """Deliver admitted jobs, each endpoint's in order; return the
        results, the deliveries deferred and the subscriptions to disable.

        Endpoints not yet proven to answer in time run beside the task, in
        threads, so one that hangs does not hold up the others' deliveries in
        this task. Each endpoint gives back its lease and feeds its breaker
        soon after its deliveries are done, not when the task is: a quick
        endpoint is proven (and open to other tasks) while a slow one in the
        same task still waits for its answer. Beside the task, as soon as they
        are done; in the task, with the endpoints done just before it, within
        ``SETTLE_EVERY_SECONDS`` or one attempt (``_run_inline``).
        """
        groups: dict[str | None, list[Job]] = {}
        for job in jobs:
            groups.setdefault(endpoint_key(job.subscription), []).append(job)
        inline: list[_EndpointRun] = []
        beside: list[_EndpointRun] = []
        built = Payloads()
        for endpoint, group in groups.items():
            tokens = leases.get(endpoint, []) if endpoint else []
            run = _EndpointRun(endpoint, group, tokens, deadline, built)
            (beside if endpoint in unproven and len(groups) > 1 else inline).append(run)
        futures = [self._endpoint_runner().submit(self._run_endpoint, run) for run in beside]
        outcomes = self._run_inline(inline)
        outcomes += [future.result() for future in futures]
        done = _EndpointDone([], [], {})
        for outcome in outcomes:
            done.results.extend(outcome.results)
            done.deferred.extend(outcome.deferred)
            done.to_disable.update(outcome.to_disable)
        return done

    def _endpoint_runner(self) -> ThreadPoolExecutor:
        # One pool per process, made after Celery forked it (threads do not
        # survive a fork).
        if self._runner is None or self._runner_pid != os.getpid():
            self._runner = ThreadPoolExecutor(
                self.conf.worker.endpoints_in_parallel, thread_name_prefix="endpoint"
            )
            self._runner_pid = os.getpid()
        return self._runner

    def _run_endpoint(self, run: _EndpointRun) -> _EndpointDone:
        """Deliver to one endpoint in order, then give back its leases and
        feed its breaker."""
        return self._settle_runs([self._attempt_run(run)])

    def _run_inline(self, runs: Sequence[_EndpointRun]) -> list[_EndpointDone]:
        """Deliver to endpoints one after the other; their leases go back and
        their breakers are fed together, once ``SETTLE_EVERY_SECONDS`` have
        passed since the first of them was done (checked after each attempt)
        or at the end: a batch to a few quick endpoints costs one breaker
        update, not one per endpoint (issue 21), and an endpoint's lease is
        kept at most that much longer, or one attempt's bound when the next
        endpoint hangs. After ``INLINE_SECONDS`` the endpoints not started
        yet run beside the task instead (checked after each attempt)."""
        done: list[_EndpointDone] = []
        waiting: list[_Attempted] = []
        since = 0.0
        began = time.monotonic()
        queued = list(runs)
        beside: list[Future[_EndpointDone]] = []

        def settle_waiting(final: bool = False) -> None:
            nonlocal waiting
            if waiting and (final or time.monotonic() - since >= SETTLE_EVERY_SECONDS):
                done.append(self._settle_runs(waiting))
                waiting = []

        def after_attempt() -> None:
            settle_waiting()
            if queued and time.monotonic() - began >= INLINE_SECONDS:
                beside.extend(self._endpoint_runner().submit(self._run_endpoint, r) for r in queued)
                queued.clear()

        while queued:
            run = queued.pop(0)
            try:
                attempted = self._attempt_run(run, after_attempt)
            except BaseException:
                self.admission.release(_leases_of([a.run for a in waiting]))
                raise
            if not waiting:
                since = time.monotonic()
            waiting.append(attempted)
            settle_waiting()
        settle_waiting(final=True)
        return done + [future.result() for future in beside]

    def _attempt_run(
        self, run: _EndpointRun, after_attempt: Callable[[], None] | None = None
    ) -> _Attempted:
        """Attempt one endpoint's deliveries in order (its leases are given
        back if that fails)."""
        settled: list[Result] = []
        try:
            results, deferred = self._attempt_in_order(
                run.jobs, run.deadline, run.built, settled, after_attempt
            )
        except BaseException:
            self.admission.release(_leases_of([run]))
            raise
        return _Attempted(run, results, deferred, settled)

    def _settle_runs(self, attempted: Sequence[_Attempted]) -> _EndpointDone:
        """Give back the runs' leases and feed their endpoints' breakers, in
        one round trip; return what is left to follow up."""
        runs = [a.run for a in attempted]
        to_disable = self.admission.settle(
            [(job.subscription, attempt) for a in attempted for job, attempt in a.results],
            {run.endpoint: run.tokens[0] for run in runs if run.endpoint and run.tokens},
            _leases_of(runs),
        )
        done = _EndpointDone([], [], to_disable)
        for a in attempted:
            stored = {id(result) for result in a.settled}
            done.results.extend(r for r in a.results if id(r) not in stored)
            done.deferred.extend(a.deferred)
        return done

    def _settle_delivered(self, results: Sequence[Result], settled: list[Result]) -> None:
        """Store the outcomes of the deliveries made so far and not stored yet
        (their logs and done flags), so a worker killed later in a long run
        repeats none of them. Failures wait for the batch's settling: what
        follows them depends on the endpoint's breaker update."""
        done = {id(result) for result in settled}
        delivered = [
            r for r in results if r.attempt.outcome == Outcome.DELIVERED and id(r) not in done
        ]
        if delivered:
            self.outcomes.settle(delivered, [], {})
            settled.extend(delivered)

    def _attempt_in_order(
        self,
        jobs: Iterable[Job],
        deadline: float | None,
        built: Payloads | None = None,
        settled: list[Result] | None = None,
        after_attempt: Callable[[], None] | None = None,
    ) -> tuple[list[Result], list[Deferred]]:
        """Attempt one endpoint's jobs in order; after a run of failures (or
        one timeout) the rest wait a second, and after ``deadline`` for good.

        With ``settled``, a run that lasts stores its deliveries' outcomes
        every ``SETTLE_EVERY_SECONDS`` (and adds them to ``settled``): a
        worker killed mid-batch repeats the deliveries of that long at most,
        however big the batch. ``after_attempt`` is called after each
        attempt. Returns every result, in order."""
        results: list[Result] = []
        deferred: list[Deferred] = []
        failures = 0
        last_settled = time.monotonic()
        threshold: int = self.conf.webhook.breaker_failure_threshold
        for job in jobs:
            if failures >= threshold:
                deferred.append(Deferred(self.clock() + 1.0, job.delivery))
                continue
            if deadline is not None and self.clock() >= deadline:
                deferred.append(Deferred(self.clock(), job.delivery))  # the task's time is up
                continue
            attempt = run_attempt(self.sinks, job, self.clock, built)
            if attempt.outcome == Outcome.DELIVERED or attempt.permanent:
                failures = 0
            elif attempt.error in FAIL_FAST_ERRORS:
                failures = threshold
            else:
                failures += 1
            results.append(Result(job, attempt))
            if settled is not None and time.monotonic() - last_settled >= SETTLE_EVERY_SECONDS:
                self._settle_delivered(results, settled)
                last_settled = time.monotonic()
            if after_attempt is not None:
                after_attempt()
        return results, deferred


def _not_sent(message: Record | None, subscription: Record) -> tuple[Outcome, str] | None:
    """Return why a delivery is recorded but not sent, if it is not."""
    if superseded(message, subscription):
        return Outcome.SUPERSEDED, SUPERSEDED
    if message is None:
        return Outcome.EXPIRED, "message TTL passed"
    return None
