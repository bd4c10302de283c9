"""Draining: small fan-outs' deliveries delivered together, across posts.

A post of one message to a queue with five subscribers makes five
deliveries. Delivered in their own task, the per-task costs (loading, the
done flags, the admission script, each endpoint's lease and breaker update,
the attempt logs) are spread over five, and at a few thousand deliveries a
second the workers fall behind. So a small fan-out pushes its deliveries onto
its source's shard (``store/pending_deliveries.py``, one round trip):

- if no task owns the shard, the fan-out takes it and drains it at once (no
  extra task hop while the load is light);
- else it is done: the owner's next take holds its deliveries, together with
  every other post's that arrived meanwhile (a group commit of deliveries).

While a shard is owned, posts to its sources enqueue no fan-out task: the
script that stores their messages parks their fan-outs on the shard
(``store_posts.lua``), and the owner matches the parked fan-outs of a take
together and delivers them with it. An owner also takes waiting fan-out
tasks off the broker queue
(``Dispatcher.take_fanouts``, up to ``FANOUTS_PER_TAKE``) and runs them
itself: under load, posts cost no task each. A fan-out task with a batch of
its own does the same (``run_with_waiting``): a backlog of bigger posts runs
up to ``MAX_BATCH_TASKS`` tasks' worth per batch. Their outbox entries stay until
their deliveries are settled (re-dated to be found stale after the
visibility timeout), so a fan-out taken by a task that dies is sent again.

An owner takes up to ``deliveries_per_task`` at a time, oldest first, and
delivers them through ``Batch`` (admission, each endpoint's deliveries in
order, outcomes), until the shard is empty or its task's deadline has passed
(then it hands the shard on to a new drain task). Celery's fair scheduling
gives the tasks a worker has prefetched to its other pool processes
meanwhile. When a take leaves a full batch behind, a helper task takes one
more batch beside the owner. The owner gives the shard up in the script that
finds it empty, so no pushed delivery is left without an owner.

Nothing is lost when a worker dies: pending deliveries are in Redis; taken
ones wait in the retry schedule, due after the visibility timeout, until
their outcomes are stored (the scheduler sends them again otherwise, and the
done flags skip the attempts that ran); an owner flag expires, and the
scheduler hands a shard with deliveries and no owner to a new drain task.
"""

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from notifier.core.model import Delivery
from notifier.delivery.batch import Batch
from notifier.delivery.jobs import Dispatcher, Job, Record, send_deliveries
from notifier.store.pending_deliveries import SHARDS, Taken, shard_of
from notifier.store.storage import Storage

#: The most a drain batch delivers, in tasks' worth (``deliveries_per_task``).
MAX_BATCH_TASKS = 10

#: Fan-out tasks an owner takes off the broker queue at a time.
FANOUTS_PER_TAKE = 20

#: How long an owner flag outlives the owner's last take beyond one attempt
#: (a batch waits for its slowest endpoint's attempt).
OWNER_MARGIN_SECONDS = 5.0


class Drains:
    """Push small fan-outs' deliveries; drain shards in batches."""

    def __init__(
        self,
        conf: Any,
        storage: Storage,
        dispatcher: Dispatcher,
        batch: Batch,
        clock: Callable[[], float],
    ) -> None:
        self.storage = storage
        self.dispatcher = dispatcher
        self.batch = batch
        self.clock = clock
        self.limit: int = conf.notification.deliveries_per_task
        #: FanOut.match_many, set by the service (fan-outs taken off the queue)
        self.match_many: (
            Callable[[Sequence[tuple[Sequence[str], Sequence[str], Any]]], tuple[list[Job], int]]
            | None
        ) = None
        # a taken fan-out's outbox entry is found stale this long after
        self.restamp_seconds: float = (
            conf.worker.reconcile_after_seconds - conf.worker.visibility_timeout_seconds
        )
        # Taken deliveries come back from the retry schedule after this long
        # if their task died; an owner that died lets go of its shard then.
        self.lease_seconds: float = conf.worker.visibility_timeout_seconds
        # An owner that died lets go of its shard this long after its last
        # take (a live one takes again sooner: a batch ends within one attempt).
        self.owner_seconds: float = (
            conf.notification.webhook_connect_timeout_seconds
            + conf.notification.webhook_read_timeout_seconds
            + OWNER_MARGIN_SECONDS
        )

    @property
    def batch_most(self) -> int:
        """The most deliveries one batch holds: ``MAX_BATCH_TASKS`` tasks' worth."""
        return MAX_BATCH_TASKS * self.limit

    def push(self, source: Sequence[str], jobs: Sequence[Job], deadline: float | None) -> int:
        """Queue a fan-out's jobs on its shard; drain it here if no task
        owns it. Return how many deliveries this task delivered."""
        shard = shard_of(source)
        owned = self.storage.pending.push(
            shard, [job.delivery.to_dict() for job in jobs], self.owner_seconds
        )
        if not owned:
            return 0
        messages = {job.message["id"]: job.message for job in jobs}
        subscriptions = {job.subscription["id"]: job.subscription for job in jobs}
        return self.drain(shard, deadline, True, (messages, subscriptions))

    def drain(
        self,
        shard: int,
        deadline: float | None = None,
        owner: bool = True,
        known: tuple[Mapping[str, Record], Mapping[str, Record]] | None = None,
    ) -> int:
        """Deliver a shard's pending deliveries, a batch at a time (one batch
        unless ``owner``; an owner also runs waiting fan-out tasks); return
        how many were delivered. ``known``: messages and subscriptions
        already loaded, by id."""
        count = 0
        while True:
            stolen, members = self._take_fanouts() if owner else ([], [])
            taken = self.storage.pending.take(
                shard,
                self.limit,
                self.clock() + self.lease_seconds,
                owner,
                self.owner_seconds,
                self.clock() - self.restamp_seconds,
            )
            if taken.remaining >= self.limit:
                self.dispatcher.send_drain(shard, False)  # a helper, beside this task
            if taken.fanouts:  # parked by store_posts.lua while this shard was owned
                parked, parked_members = self._parked(taken.fanouts)
                stolen += parked
                members += parked_members
            stolen = self._bounded(stolen)
            if not taken.members and not stolen:
                self.storage.mark_tasks_started(members)  # fan-outs that matched nothing
                if not owner or taken.released:
                    return count  # an owner gave the shard up
            else:
                count += self._deliver(taken, stolen, members, deadline, known)
                known = None
                if not owner or taken.released:
                    return count
            if deadline is not None and self.clock() >= deadline:
                self.dispatcher.send_drain(shard, True)  # hand the shard on
                return count

    def _deliver(
        self,
        taken: Taken,
        stolen: list[Job],
        members: list[str],
        deadline: float | None,
        known: tuple[Mapping[str, Record], Mapping[str, Record]] | None,
    ) -> int:
        """Deliver one take with the fan-outs matched beside it; settle both."""
        messages = dict(known[0]) if known else {}
        subscriptions = dict(known[1]) if known else {}
        for job in stolen:
            messages[job.message["id"]] = job.message
            subscriptions[job.subscription["id"]] = job.subscription
        deliveries = [Delivery.from_dict(d) for d in taken.deliveries]
        deliveries += [job.delivery for job in stolen]
        self.batch.deliver(deliveries, deadline, (messages, subscriptions))
        self.storage.pending.settle(taken.members)
        self.storage.mark_tasks_started(members)
        return len(deliveries)

    def run_with_waiting(self, jobs: list[Job], deadline: float | None) -> int:
        """Deliver a fan-out's batch (``jobs``) together with fan-out tasks
        waiting on the broker queue, up to ``MAX_BATCH_TASKS`` tasks' worth
        in all; return how many deliveries the taken ones made.

        A backlog of posts is a queue of fan-out tasks, and every task costs
        its own round trips (Celery's hand-over, the reads, the admission,
        the settling, the attempt logs): a dozen per task, each waking Redis
        (issue 21). Run together, they cost one batch's. The own jobs go
        first, then the taken ones, oldest first: each endpoint's deliveries
        stay in post order. Taken tasks' outbox entries are cleared once
        their deliveries are settled, as a drain owner's are. As many are
        taken as would fit if each were this one's size (posts waiting
        together are alike; the API writes concurrent posts to a queue as
        one fan-out); what overflows the bound goes on as delivery tasks.
        """
        room = (self.batch_most - len(jobs)) // max(len(jobs), self.limit)
        if deadline is not None and self.clock() >= deadline:
            room = 0  # this task's own deliveries go back to the schedule: take none
        taken, members = self._take_fanouts(room) if room > 0 else ([], [])
        self.batch.run(self._bounded(jobs + taken), deadline)
        self.storage.mark_tasks_started(members)
        return len(taken)

    def _bounded(self, jobs: list[Job]) -> list[Job]:
        """Keep a batch to ``MAX_BATCH_TASKS`` tasks' worth of the fan-outs'
        jobs; send the rest as delivery tasks (fan-outs of up to a task's
        worth each, ``FANOUTS_PER_TAKE`` stolen and a take's parked ones,
        could otherwise make one batch of thousands)."""
        most = self.batch_most
        if len(jobs) <= most:
            return jobs
        send_deliveries(self.dispatcher, [job.delivery for job in jobs[most:]], self.limit)
        return jobs[:most]

    def _parked(self, members: Sequence[str]) -> tuple[list[Job], list[str]]:
        """Match fan-outs parked on the shard; return their jobs and outbox
        entries (to clear once settled; the take dated them to be found
        stale, and sent again, should this task die)."""
        assert self.match_many is not None, "Drains.match_many is set by the service"
        fanouts = [_fanout_args(json.loads(member)[1]) for member in members]
        return self.match_many(fanouts)[0], list(members)

    def _take_fanouts(self, limit: int = FANOUTS_PER_TAKE) -> tuple[list[Job], list[str]]:
        """Run up to ``limit`` fan-out tasks waiting on the broker queue;
        return their small fan-outs' jobs and the tasks' outbox entries (to
        clear once settled)."""
        if self.match_many is None:
            return [], []
        taken = self.dispatcher.take_fanouts(limit)
        if not taken:
            return [], []
        members = [member for _, member in taken if member]
        self.storage.restamp_tasks(members, self.clock() - self.restamp_seconds)
        return self.match_many([_fanout_args(args) for args, _ in taken])[0], members

    def hand_on_unowned(self) -> int:
        """Send a drain task to each shard with deliveries and no owner (its
        task was lost or its worker died); return how many."""
        sent = 0
        for shard in self.storage.pending.unowned(SHARDS):
            if self.storage.pending.claim(shard, self.owner_seconds):
                self.dispatcher.send_drain(shard, True)
                sent += 1
        return sent


def _fanout_args(args: Sequence[Any]) -> tuple[Sequence[str], Sequence[str], Any]:
    """A fan-out task's (source, message ids, cursor); the cursor is optional."""
    source, message_ids, cursor = (list(args) + [None, None, None])[:3]
    return source, message_ids, cursor
