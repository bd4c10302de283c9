"""Every Redis key of notifier, one builder per key.

No other code spells a key: the repositories, the Lua scripts (which get
their keys in ``KEYS``) and the tests build them here.

Key layout (``P`` = project, ``K`` = source kind ``queues``/``topics``,
``S`` = source name, ``E`` = endpoint, a guard key ``PROJECT:scheme://host:port``;
every key prefixed ``notifier:``)::

  Sources and messages (``messages.py``)
    sources:P:K            ZSET   source names, score 0 (lexicographic paging)
    meta:P:K:S             STRING source metadata (JSON)
    msgs:P:K:S             ZSET   message ids by expiry time (live ones only)
    msg:ID                 STRING message (JSON), expires with the message TTL
    pending:ID             STRING deliveries of a topic message not yet final

  A queue's consumer side (``queue_messages.py``, ``claims.py``; queues only)
    ranks:P:queues:S       ZSET   every live message id -> its rank (the queue's
                                  counter when it was posted): listing order
    free:P:queues:S        ZSET   the ids no claim holds and no delay hides ->
                                  rank: what listing (without claimed ones),
                                  claims and pop take
    claimed:P:queues:S     ZSET   claimed ids -> when their claim expires
    claimer:P:queues:S     HASH   claimed id -> claim id
    msgseq:P:queues:S      STRING the queue's message counter (the last rank)
    delayed:P:queues:S     ZSET   ids posted with a delay -> when it ends (they
                                  join free: then)
    claimcount:P:queues:S  HASH   id -> how many times it was claimed (for
                                  ``_max_claim_count``)
    claim:CID              STRING claim (JSON: source, ttl, grace, created,
                                  expires, message ids), expires with it

  Control messages (``control.py``)
    ctl:CID                STRING control message (a confirmation request; JSON):
                                  CID starts ``ctl-``, so no message route,
                                  listing or replay (all read ``msg:``) can
                                  ever read it; expires with its TTL
    confirmrate:HASH       STRING confirmations sent by one project to one
                                  endpoint in the current window (sha256 of
                                  the subject; expires with the window)

  Subscriptions (``subscriptions.py``)
    subs:P:K:S             ZSET   subscription ids, score 0 (lexicographic paging)
    subidx:P:K:S           HASH   subscriber URI -> subscription id
    sub:ID                 STRING subscription (JSON), expires with its TTL
    quota:subs:P           ZSET   subscription ids of project P -> expiry

  Delivery log and dead letters (``delivery_log.py``, ``dead_letters.py``)
    attempts:sub:ID        LIST   newest-first attempt records of a subscription
    attempts:msg:ID        LIST   newest-first attempt records of a message
    attempts:ctl:CID       LIST   attempts of a control message (internal: dead
                                  letters' history; no route reads it)
    done:MID               HASH   SID:R:N -> 1: attempt N (round R) of the
                                  delivery of message MID to subscription SID
                                  has run (expires ``done_horizon_seconds``
                                  after its last flag; one key per message, not
                                  per delivery: a fan-out's flags are one HSET)
    dead:SUBID             ZSET   dead letter (JSON) -> time it died; kept
                                  ``dead_letter_ttl_seconds``, at most
                                  ``max_dead_letters_per_subscription``

  Schedule and outbox (``schedule.py``)
    tasks:pending          ZSET   task (JSON [name, args]) -> time sent; removed
                                  when a worker starts it (see reconcile)
    retries                ZSET   delivery (JSON) -> due time (epoch seconds)
    retries:leased         ZSET   delivery (JSON) -> time a scheduler took it

  Pending deliveries (``pending_deliveries.py``; see ``delivery/drain.py``)
    drain:N                LIST   deliveries (JSON) of small fan-outs waiting
                                  for shard N's drain task, oldest first, and
                                  fan-outs parked while it is owned
                                  (``{"fanout": outbox entry}``)
    drain:N:owner          STRING a drain task owns shard N (expires); taken
                                  deliveries wait in ``retries`` (marked
                                  ``"drain": 1``) until their task settles them

  Byte quotas (``quota.py``)
    quota:bytes:P          HASH   stored bytes of project P (messages, dead
                                  letters): ``total``, and per expiry bucket
                                  (a minute, rounded up) -> bytes
    quota:expiry:P         ZSET   the buckets of ``quota:bytes:P``, to drop
                                  them when they pass

  Endpoint state (``endpoint_state.py``)
    breaker:E              HASH   failures, first_failure_ms, open_until_ms,
                                  cooloff_ms, opened_ms, opened_token (the last
                                  lease token handed out when it opened: the
                                  outcomes of attempts admitted before change
                                  nothing), failed_probes, recovering (a probe
                                  succeeded: one task at a time until the next
                                  success)
    breakers:open          SET    endpoints whose breaker has opened and not closed
    probe:E                STRING "TOKEN:STARTED_MS" of the half-open probe
                                  under way (expires)
    inflight:E             ZSET   lease token -> lease expiry (ms); one per task
                                  delivering to the endpoint
    inflight:seq           STRING the last lease token handed out
    proven:E               STRING it answered in time lately (expires): it may
                                  have the full concurrency cap, else one
    throttle:SUBID         STRING GCRA theoretical arrival time (ms)
    held:SUBID             LIST   deliveries held while the subscription is
                                  disabled (expires: ``HELD_TTL_SECONDS``)

  The broker's own lists (Celery queues, not prefixed) appear in two scripts:
  ``store_posts`` pushes a fan-out there, ``lease_stale_tasks`` reads their
  lengths.

Expired subscriptions leave their id in ``subs`` and ``subidx``; readers drop
such ids lazily, so expiry needs no sweeper. Every key of one subscription
(``subscription_keys``) is deleted with it, and expires by itself when the
subscription expires instead.

Stored bytes are counted where data is written and taken back where it is
deleted before its time, in the same Lua scripts; what expires is dropped with
its bucket, without a sweeper. The count errs high, never low: a delete that
cannot tell its bucket leaves the bytes counted until the bucket passes.

Scripts and Redis Cluster. Every script (``scripts/*.lua``) receives every key
it touches in ``KEYS``; none builds a key inside Lua. What a cluster would
still need is for the keys of one script call to share a slot, with hash tags
(``{...}``) that the names above do not have yet (renaming them needs a
migration of deployed data). The keys each script touches together:

    store_posts          per post: sources:P:K, meta:, msgs:, subs: of one source,
                         quota:bytes:P, quota:expiry:P, the seven consumer-side
                         keys of the source (``queue_index``), msg:ID of its
                         messages;
                         tasks:pending, the broker's fan-out queue, and the
                         source's drain:N and drain:N:owner
    unstore_messages     msg:ID, quota:bytes:P, quota:expiry:P
    tidy_queue           msgs:, and the consumer-side keys of one queue
    claim_messages       msgs:, consumer-side keys, quota:bytes:P, quota:expiry:P,
                         claim:CID, msg:ID of the candidates
    renew_claim, release_claim  as claim_messages, for the claim's messages
    remove_messages      msgs:, consumer-side keys, quota:bytes:P,
                         quota:expiry:P, msg:ID of the messages (delete, pop)
    restore_message      msg:ID, quota:bytes:P, quota:expiry:P
    settle_pending       pending:ID, msg:ID, quota:bytes:P, quota:expiry:P
    dead_letter          dead:SUBID, quota:bytes:P, quota:expiry:P
    remove_dead_letters  dead:SUBID, quota:bytes:P, quota:expiry:P
    purge_dead_letters   dead:SUBID, quota:bytes:P, quota:expiry:P
    create_subscription  subidx:, subs: of one source, quota:subs:P, sub:ID (new
                         and the one the index held)
    lease_due_retries    retries, retries:leased
    lease_stale_tasks    tasks:pending and the broker's queues
    admit                inflight:seq, and per endpoint breaker:E, probe:E,
                         inflight:E, proven:E, throttle:SUBID
    record               breakers:open, inflight:seq, and per endpoint breaker:E,
                         probe:E, proven:E
    record_attempts      done:MID of a batch's messages, attempts:sub:SUBID
                         and attempts:msg:ID (attempts:ctl:CID) of their
                         subscriptions and messages

So a slot per project (``{P}``) would hold most of them if message, dead-letter
and subscription keys carried their project; the fleet-wide keys
(``tasks:pending``, ``retries``, ``breakers:open``, ``inflight:seq``) and the
broker's queues would need splitting per slot or moving out of the scripts.
"""

import hashlib

from notifier.store.records import Source, is_control_id

PREFIX = "notifier:"


def _key(*parts: str) -> str:
    return PREFIX + ":".join(parts)


# -- sources and messages ---------------------------------------------------


def sources(project: str, kind: str) -> str:
    return _key("sources", project, kind)


def source_metadata(source: Source) -> str:
    return _key("meta", source.path)


def source_messages(source: Source) -> str:
    return _key("msgs", source.path)


def message(message_id: str) -> str:
    return _key("msg", message_id)


def pending(message_id: str) -> str:
    return _key("pending", message_id)


# -- a queue's consumer side ---------------------------------------------------


def message_ranks(source: Source) -> str:
    return _key("ranks", source.path)


def free_messages(source: Source) -> str:
    return _key("free", source.path)


def claimed_messages(source: Source) -> str:
    return _key("claimed", source.path)


def message_claimers(source: Source) -> str:
    return _key("claimer", source.path)


def message_counter(source: Source) -> str:
    return _key("msgseq", source.path)


def delayed_messages(source: Source) -> str:
    return _key("delayed", source.path)


def message_claim_counts(source: Source) -> str:
    return _key("claimcount", source.path)


def claim(claim_id: str) -> str:
    return _key("claim", claim_id)


def queue_index(source: Source) -> list[str]:
    """The seven consumer-side keys of a queue, in the order the scripts
    take them (``scripts/queue_index.lua``)."""
    return [
        message_ranks(source),
        free_messages(source),
        claimed_messages(source),
        message_claimers(source),
        message_counter(source),
        delayed_messages(source),
        message_claim_counts(source),
    ]


# -- control messages --------------------------------------------------------


def control_message(message_id: str) -> str:
    return _key("ctl", message_id)


def delivered_message(message_id: str) -> str:
    """The key of a delivery's message: a message, or a control message."""
    return control_message(message_id) if is_control_id(message_id) else message(message_id)


def confirmation_rate(subject: str) -> str:
    digest = hashlib.sha256(subject.encode("utf-8")).hexdigest()
    return _key("confirmrate", digest)


# -- subscriptions -----------------------------------------------------------


def source_subscriptions(source: Source) -> str:
    return _key("subs", source.path)


def subscriber_index(source: Source) -> str:
    return _key("subidx", source.path)


def subscription(subscription_id: str) -> str:
    return _key("sub", subscription_id)


def project_subscriptions(project: str) -> str:
    return _key("quota", "subs", project)


# -- delivery log and dead letters -------------------------------------------


def subscription_attempts(subscription_id: str) -> str:
    return _key("attempts", "sub", subscription_id)


def message_attempts(message_id: str) -> str:
    return _key("attempts", "msg", message_id)


def control_attempts(message_id: str) -> str:
    return _key("attempts", "ctl", message_id)


def done(message_id: str) -> str:
    return _key("done", message_id)


def done_field(subscription_id: str, round_number: int, attempt: int) -> str:
    return f"{subscription_id}:{round_number}:{attempt}"


def dead_letters(subscription_id: str) -> str:
    return _key("dead", subscription_id)


# -- schedule and outbox -----------------------------------------------------


def task_outbox() -> str:
    return _key("tasks", "pending")


def retries() -> str:
    return _key("retries")


def leased_retries() -> str:
    return _key("retries", "leased")


def pending_deliveries(shard: int) -> str:
    return _key("drain", str(shard))


def drain_owner(shard: int) -> str:
    return _key("drain", str(shard), "owner")


# -- byte quotas -------------------------------------------------------------


def project_bytes(project: str) -> str:
    return _key("quota", "bytes", project)


def project_buckets(project: str) -> str:
    return _key("quota", "expiry", project)


def project_usage(project: str) -> list[str]:
    """The two keys of a project's stored bytes, as the scripts take them."""
    return [project_bytes(project), project_buckets(project)]


# -- endpoint state ----------------------------------------------------------


def breaker(endpoint: str) -> str:
    return _key("breaker", endpoint)


def open_breakers() -> str:
    return _key("breakers", "open")


def probe(endpoint: str) -> str:
    return _key("probe", endpoint)


def inflight(endpoint: str) -> str:
    return _key("inflight", endpoint)


def lease_sequence() -> str:
    return _key("inflight", "seq")


def proven(endpoint: str) -> str:
    return _key("proven", endpoint)


def throttle(subscription_id: str) -> str:
    return _key("throttle", subscription_id)


def held(subscription_id: str) -> str:
    return _key("held", subscription_id)


def subscription_keys(subscription_id: str) -> list[str]:
    """Every key that belongs to one subscription alone, its record first:
    what deleting the subscription deletes."""
    return [
        subscription(subscription_id),
        dead_letters(subscription_id),
        subscription_attempts(subscription_id),
        held(subscription_id),
        throttle(subscription_id),
    ]
