"""Fan-out: match a source's subscriptions against posted messages, a page
at a time, and turn the matches into deliveries."""

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from notifier.core import delays
from notifier.core.matching import match_within
from notifier.core.model import Attempt, Delivery, Outcome
from notifier.delivery.batch import Batch
from notifier.delivery.drain import Drains
from notifier.delivery.jobs import Dispatcher, Job, Record, send_deliveries
from notifier.delivery.outcomes import Outcomes
from notifier.observability import metrics
from notifier.store.storage import Source, Storage

LOG = logging.getLogger(__name__)


class FanOut:
    """Turn messages into deliveries, one page of subscriptions per task."""

    def __init__(
        self,
        conf: Any,
        storage: Storage,
        dispatcher: Dispatcher,
        batch: Batch,
        outcomes: Outcomes,
        clock: Callable[[], float],
        drains: Drains,
    ) -> None:
        self.conf = conf
        self.storage = storage
        self.dispatcher = dispatcher
        self.batch = batch
        self.drains = drains
        self.outcomes = outcomes
        self.clock = clock
        self.page_size: int = conf.notification.fanout_page_size
        self.per_task: int = conf.notification.deliveries_per_task

    def fanout(
        self,
        source: Sequence[str],
        message_ids: Sequence[str],
        cursor: Any = None,
        deadline: float | None = None,
        started: str | None = None,
    ) -> int:
        """Match one page of a source's subscriptions against messages;
        return how many deliveries it made. ``started``: the task's outbox
        entry, removed with the first read.

        The next page is enqueued as its own task before this page is
        delivered, so memory stays bounded by the page size however many
        subscriptions a source has. Fan-outs of one page up to
        ``MAX_BATCH_TASKS`` tasks' worth are delivered in this task, saving
        task hops and their round trips; those under half a
        task's worth, together with other small fan-outs' deliveries
        (``Drains``): a post of one message to a few subscribers is not
        worth a batch's bookkeeping on its own. A bigger one takes the
        fan-out tasks waiting on the broker queue into its batch
        (``Drains.run_with_waiting``); their deliveries are counted too.
        """
        jobs, count = self.match_many([(source, message_ids, cursor)], [started] if started else [])
        if len(jobs) * 2 >= self.per_task:
            # a batch of its own already, with the fan-outs waiting behind it
            count += self.drains.run_with_waiting(jobs, deadline)
        elif jobs:
            self.drains.push(source, jobs, deadline)
        return count

    def match_many(
        self,
        fanouts: Sequence[tuple[Sequence[str], Sequence[str], Any]],
        started: Sequence[str] = (),
    ) -> tuple[list[Job], int]:
        """Match one page of each fan-out (source, message ids, cursor); send
        a big fan-out's deliveries as tasks. Return the small ones' jobs (to
        deliver in this task) and how many deliveries they all made.

        Many fan-outs are matched at once when a task takes the ones waiting
        behind it: their messages and each source's first subscription page
        are read together, in two round trips (``Storage.read_fanouts``,
        which also removes the outbox entries ``started``). Under load many
        posts to one queue arrive together, and round trips per post cost
        more worker and Redis CPU than their deliveries' share of a batch."""
        firsts = {Source(*source) for source, _, cursor in fanouts if cursor is None}
        messages, first_pages = self.storage.read_fanouts(
            {i for _, ids, _ in fanouts for i in ids}, firsts, self.page_size, started
        )
        jobs: list[Job] = []
        count = 0
        for raw_source, message_ids, cursor in fanouts:
            source = Source(*raw_source)
            mine = {i: messages[i] for i in message_ids if i in messages}
            if not mine:
                continue
            if cursor is None:
                page = first_pages[source]
            else:
                page = self.storage.subscription_page(source, cursor, self.page_size)
            found, made = self._match_page(source, message_ids, cursor, mine, page)
            jobs += found
            count += made
        return jobs, count

    def _match_page(
        self,
        source: Source,
        message_ids: Sequence[str],
        cursor: Any,
        messages: dict[str, Record],
        page: tuple[list[Record], str | None],
    ) -> tuple[list[Job], int]:
        """``match`` with the messages and the subscription page loaded."""
        subscriptions, next_cursor = page
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
        pairs = self._hold_delayed(pairs)
        if not pairs:
            return [], 0
        if cursor is None and next_cursor is None and len(pairs) <= self.drains.batch_most:
            # Delivered in this task: a small one with other posts' small
            # fan-outs (drain.py), a bigger one as a batch of its own rather
            # than as delivery tasks (the API writes concurrent posts to a
            # queue as one fan-out; sent on, they would each cost a task's
            # round trips again, issue 21).
            return [Job(Delivery(m["id"], s["id"]), m, s) for m, s in pairs], len(pairs)
        send_deliveries(
            self.dispatcher, [Delivery(m["id"], s["id"]) for m, s in pairs], self.per_task
        )
        return [], len(pairs)

    def _hold_delayed(self, pairs: list[tuple[Record, Record]]) -> list[tuple[Record, Record]]:
        """Put the deliveries of delayed messages on the retry schedule, due
        when the delay ends (a scheduler enqueues them then: nothing sleeps);
        return the pairs due now. A message whose TTL ends before its delay
        gets none (the delayed-queues spec)."""
        if not any(m.get("delay") for m, _ in pairs):
            return pairs
        split = delays.split_due(pairs, self.clock())
        self.storage.schedule_retries(
            (due, Delivery(m["id"], s["id"]).to_dict()) for due, (m, s) in split.later
        )
        return split.now

    def _record_skipped(self, skipped: Sequence[tuple[Record, Record, str]]) -> None:
        """Log the (message, subscription) pairs whose filter was not
        evaluated (over the fan-out's budget): no delivery, an attempt saying why."""
        LOG.warning(
            "filter budget exhausted: %d deliveries skipped",
            len(skipped),
            extra={"skipped": len(skipped)},
        )
        self.outcomes.record(
            Attempt.of(
                Delivery(message["id"], subscription["id"]),
                Outcome.SKIPPED,
                self.clock(),
                0.0,
                error="filter_budget",
                detail=reason,
                source=message["source"],
            )
            for message, subscription, reason in skipped
        )

    def _count_topic_deliveries(
        self,
        messages: Mapping[str, Record],
        pairs: Sequence[tuple[Record, Record]],
        first_page: bool,
        last_page: bool,
    ) -> None:
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
