"""The one module that knows notifier's Redis keys.

Key layout (``P`` = project, ``K`` = source kind ``queues``/``topics``,
``S`` = source name, every key prefixed ``notifier:``)::

    sources:P:K            ZSET   source names, score 0 (lexicographic paging)
    meta:P:K:S             STRING source metadata (JSON)
    msgs:P:K:S             ZSET   message ids by expiry time (live ones only)
    msg:ID                 STRING message (JSON), expires with the message TTL
    subs:P:K:S             ZSET   subscription ids, score 0 (lexicographic paging)
    subidx:P:K:S           HASH   subscriber URI -> subscription id
    sub:ID                 STRING subscription (JSON), expires with its TTL
    attempts:sub:ID        LIST   newest-first attempt records of a subscription
    attempts:msg:ID        LIST   newest-first attempt records of a message
    pending:ID             STRING deliveries of a topic message not yet final
    done:MID:SID:R:N       STRING attempt N (round R) of a delivery has run
                                  (expires: ``done_horizon_seconds``)
    tasks:pending          ZSET   task (JSON [name, args]) -> time sent; removed
                                  when a worker starts it (see reconcile)
    retries                ZSET   delivery (JSON) -> due time (epoch seconds)
    retries:leased         ZSET   delivery (JSON) -> time a scheduler took it
    dead:SUBID             ZSET   dead letter (JSON) -> time it died

Expired subscriptions leave their id in ``subs`` and ``subidx``; readers drop
such ids lazily, so expiry needs no sweeper.
"""

import json
import time
import uuid
from typing import NamedTuple

from redis.backoff import NoBackoff
from redis.retry import Retry

from notifier import errors
from notifier.redis_client import redis_client

PREFIX = "notifier:"
# Outcomes after which a delivery attempt must not run again.
RAN_OUTCOMES = ("delivered", "failed", "dead_lettered", "held")


def done_horizon_seconds(conf):
    """How long an attempt that ran is remembered: longer than any way the same
    attempt can come back (a redelivered task, a re-sent outbox entry, a retry
    whose scheduler lease lapsed), and no longer, so Redis memory plateaus
    under a steady load instead of holding a flag per delivery for a day."""
    return 2 * max(conf.worker.visibility_timeout_seconds, conf.worker.reconcile_after_seconds, 30)


class Source(NamedTuple):
    """Where messages are posted and subscriptions hang: a queue or a topic."""

    project: str
    kind: str  # "queues" or "topics"
    name: str

    @property
    def path(self):
        return f"{self.project}:{self.kind}:{self.name}"

    def to_list(self):
        return [self.project, self.kind, self.name]


def _key(*parts):
    return PREFIX + ":".join(parts)


def new_id():
    """Return a new opaque id (32 hex digits)."""
    return uuid.uuid4().hex


def dumps(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# KEYS[1] subidx hash, KEYS[2] subs zset
# ARGV[1] subscriber, ARGV[2] new id, ARGV[3] subscription JSON, ARGV[4] ttl,
# ARGV[5] key prefix of subscription records
# Returns {0, existing_id} when a live subscription has the subscriber,
# else {1, new_id}.
CREATE_SUBSCRIPTION_LUA = """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing and redis.call('EXISTS', ARGV[5] .. existing) == 1 then
  return {0, existing}
end
if existing then redis.call('ZREM', KEYS[2], existing) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
redis.call('SET', ARGV[5] .. ARGV[2], ARGV[3], 'EX', tonumber(ARGV[4]))
return {1, ARGV[2]}
"""

# ARGV[1] key prefix, ARGV[2] now, ARGV[3] number of posts, then per post:
# project, kind, name, message count, 1 to skip the fan-out without
# subscriptions, outbox entry, broker queue, broker message ('' for none),
# then per message: id, ttl, record JSON. Returns 1/0 per post: fan-out
# enqueued. Keeps the message index to live messages (bounded under load).
STORE_POSTS_LUA = """
local p, now, i = ARGV[1], tonumber(ARGV[2]), 4
local enqueued = {}
for post = 1, tonumber(ARGV[3]) do
  local project, kind, name, count = ARGV[i], ARGV[i+1], ARGV[i+2], tonumber(ARGV[i+3])
  local lazy, member, queue, payload = ARGV[i+4] == '1', ARGV[i+5], ARGV[i+6], ARGV[i+7]
  i = i + 8
  local path = project .. ':' .. kind .. ':' .. name
  redis.call('ZADD', p .. 'sources:' .. project .. ':' .. kind, 0, name)
  redis.call('SET', p .. 'meta:' .. path, '{}', 'NX')
  local index = p .. 'msgs:' .. path
  for m = 1, count do
    local ttl = tonumber(ARGV[i+1])
    redis.call('SET', p .. 'msg:' .. ARGV[i], ARGV[i+2], 'EX', ttl)
    redis.call('ZADD', index, now + ttl, ARGV[i])
    i = i + 3
  end
  redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
  local fanout = not lazy or redis.call('EXISTS', p .. 'subs:' .. path) == 1
  if fanout and member ~= '' then redis.call('ZADD', p .. 'tasks:pending', now, member) end
  if fanout and payload ~= '' then redis.call('LPUSH', queue, payload) end
  enqueued[post] = fanout and 1 or 0
end
return enqueued
"""

# KEYS[1] retries zset, KEYS[2] leased zset
# ARGV[1] now, ARGV[2] limit, ARGV[3] lease expiry cutoff (now - lease seconds)
# Returns up to ARGV[2] members due by ARGV[1] and moves them to the lease
# set, first putting back leases older than the cutoff (their scheduler died).
LEASE_DUE_RETRIES_LUA = """
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[3], 'LIMIT', 0, 1000)
for _, member in ipairs(stale) do
  redis.call('ZREM', KEYS[2], member)
  redis.call('ZADD', KEYS[1], ARGV[1], member)
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZADD', KEYS[2], ARGV[1], member)
end
return due
"""


# ARGV[1] key prefix, ARGV[2...] message ids. Counts one final delivery off
# each message; a topic message with none left is deleted. Returns the ids
# deleted.
SETTLE_PENDING_LUA = """
local deleted = {}
for i = 2, #ARGV do
  local key = ARGV[1] .. 'pending:' .. ARGV[i]
  if redis.call('EXISTS', key) == 1 and redis.call('DECR', key) <= 0 then
    redis.call('DEL', key, ARGV[1] .. 'msg:' .. ARGV[i])
    table.insert(deleted, ARGV[i])
  end
end
return deleted
"""


# KEYS[1] tasks:pending, KEYS[2...] broker queue lists
# ARGV[1] now, ARGV[2] stale cutoff, ARGV[3] limit
# Returns tasks sent before the cutoff that no worker has started, but only
# while every broker queue is empty (a task waiting in a backlog is not lost),
# re-stamping them so each is re-sent once per staleness period.
LEASE_STALE_TASKS_LUA = """
for i = 2, #KEYS do
  if redis.call('LLEN', KEYS[i]) > 0 then return {} end
end
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(stale) do
  redis.call('ZADD', KEYS[1], ARGV[1], member)
end
return stale
"""


class Storage:
    """Queues, messages, subscriptions and delivery state in Redis."""

    def __init__(
        self, client, attempt_log_length=1000, attempt_log_ttl_seconds=3600, done_ttl_seconds=720
    ):
        self.redis = client
        self.attempt_log_length = attempt_log_length
        self.attempt_log_ttl_seconds = attempt_log_ttl_seconds
        self.done_ttl_seconds = done_ttl_seconds
        self._store_posts = client.register_script(STORE_POSTS_LUA)
        self._create_subscription = client.register_script(CREATE_SUBSCRIPTION_LUA)
        self._lease_due_retries = client.register_script(LEASE_DUE_RETRIES_LUA)
        self._settle_pending = client.register_script(SETTLE_PENDING_LUA)
        self._lease_stale_tasks = client.register_script(LEASE_STALE_TASKS_LUA)

    @classmethod
    def from_conf(cls, conf):
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
        )

    def ping(self):
        return bool(self.redis.ping())

    # -- sources (queues and topics) ------------------------------------

    def put_source(self, source, metadata):
        """Create or replace a source's metadata; return True if it was new."""
        pipe = self.redis.pipeline()
        pipe.zadd(_key("sources", source.project, source.kind), {source.name: 0})
        pipe.set(_key("meta", source.path), dumps(metadata), get=True)
        _, previous = pipe.execute()
        return previous is None

    def source_exists(self, source):
        return bool(self.redis.exists(_key("meta", source.path)))

    def get_source_metadata(self, source):
        """Return a source's metadata dict, or raise NotFoundError."""
        raw = self.redis.get(_key("meta", source.path))
        if raw is None:
            raise errors.NotFoundError(
                f"{source.kind[:-1].capitalize()} {source.name!r} does not exist."
            )
        return json.loads(raw)

    def source_metadata_or_empty(self, source):
        raw = self.redis.get(_key("meta", source.path))
        return json.loads(raw) if raw else {}

    def set_source_metadata(self, source, metadata):
        self.redis.set(_key("meta", source.path), dumps(metadata))

    def list_sources(self, project, kind, marker=None, limit=20):
        """Return up to ``limit`` source names after ``marker``, in name order."""
        start = f"({marker}" if marker else "-"
        return self.redis.zrangebylex(
            _key("sources", project, kind), start, "+", start=0, num=limit
        )

    def delete_source(self, source):
        """Delete a source's metadata and messages (subscriptions survive,
        as queues are lazy: see README)."""
        ids = self.redis.zrange(_key("msgs", source.path), 0, -1)
        pipe = self.redis.pipeline()
        pipe.zrem(_key("sources", source.project, source.kind), source.name)
        pipe.delete(_key("meta", source.path), _key("msgs", source.path))
        for chunk_start in range(0, len(ids), 500):
            pipe.delete(*[_key("msg", i) for i in ids[chunk_start : chunk_start + 500]])
        pipe.execute()

    # -- messages ---------------------------------------------------------

    def post_messages(self, source, messages, ids=None, task=None, now=None):
        """Store messages (dicts with body, ttl, ...) and return their ids;
        ``task`` is their fan-out (see ``store_posts``)."""
        ids = list(ids) if ids is not None else [new_id() for _ in messages]
        self.store_posts([(source, messages, ids, task)], now)
        return ids

    def store_posts(self, posts, now=None):
        """Store ``(source, messages, ids, fanout task)`` posts in one atomic
        script; return, per post, whether its fan-out was enqueued.

        The fan-out (``workers.app.PreparedTask`` or None) is written with
        the messages: its outbox entry, and its broker message when it carries
        one, so stored messages and their enqueued fan-out are one atomic
        write and one round trip. A queue with no subscriptions gets no
        fan-out (there is nothing to match, as in Zaqar, which lists
        subscriptions when a message is posted); a topic always does, since
        its fan-out deletes messages that match nothing.
        """
        now = time.time() if now is None else now
        args = [PREFIX, repr(now), len(posts)]
        for source, messages, ids, task in posts:
            args += [
                source.project,
                source.kind,
                source.name,
                len(messages),
                int(source.kind == "queues"),
                (task and task.member) or "",
                (task and task.queue) or "",
                (task and task.payload) or "",
            ]
            for message_id, message in zip(ids, messages):
                record = dict(message, id=message_id, created=now, source=source.to_list())
                args += [message_id, int(message["ttl"]), dumps(record)]
        return [bool(flag) for flag in self._store_posts(args=args)]

    def post_control_message(self, source, payload, ttl, now=None):
        """Store a message the service sends itself (a subscription
        confirmation): ``payload`` is delivered as it is. Return its id."""
        now = time.time() if now is None else now
        message_id = new_id()
        record = {
            "id": message_id,
            "created": now,
            "ttl": int(ttl),
            "control": True,
            "payload": payload,
            "body": payload,
            "source": source.to_list(),
        }
        self.redis.set(_key("msg", message_id), dumps(record), ex=int(ttl))
        return message_id

    def get_message(self, source, message_id):
        record = self._get_json(_key("msg", message_id))
        if record is None or record.get("source") != source.to_list():
            raise errors.NotFoundError(f"Message {message_id!r} does not exist.")
        return record

    def restore_message(self, message):
        """Store a message again (for a replay) unless it still exists."""
        self.redis.set(_key("msg", message["id"]), dumps(message), ex=int(message["ttl"]), nx=True)

    def delete_messages(self, message_ids):
        if message_ids:
            self.redis.delete(*[_key("msg", i) for i in message_ids])

    def get_messages(self, message_ids):
        """Return {id: message} for the ids that still exist."""
        return self._get_many("msg", message_ids)

    def add_pending(self, counts, ttl_seconds):
        """Count deliveries still to finish for topic messages ({id: n})."""
        pipe = self.redis.pipeline(transaction=False)
        for message_id, count in counts.items():
            pipe.incrby(_key("pending", message_id), count)
            pipe.expire(_key("pending", message_id), int(ttl_seconds.get(message_id, 3600)))
        pipe.execute()

    def settle_pending(self, message_ids):
        """Count one final delivery off each id; return the messages deleted."""
        if not message_ids:
            return []
        return self._settle_pending(args=[_key("")] + list(message_ids))

    # -- subscriptions ----------------------------------------------------

    def create_subscription(
        self,
        source,
        subscriber,
        ttl,
        options,
        confirmed,
        now=None,
        unique_key=None,
        project=None,
        extra=None,
    ):
        """Store a subscription; return (created, subscription_id).

        ``created`` is False when a live subscription with the same
        ``unique_key`` (default: the subscriber URI) exists; its id is
        returned and nothing changes. ``project`` is the subscriber's project
        where it may differ from the source's (topics); ``extra`` holds
        sink-specific fields (signing secrets).
        """
        now = time.time() if now is None else now
        subscription_id = new_id()
        unique_key = unique_key or subscriber
        record = {
            "id": subscription_id,
            "source": source.to_list(),
            "subscriber": subscriber,
            "ttl": ttl,
            "options": options,
            "created": now,
            "expires": now + ttl,
            "confirmed": confirmed,
        }
        if unique_key != subscriber:
            record["unique_key"] = unique_key
        record["project"] = project or source.project
        record.update(extra or {})
        created, found_id = self._create_subscription(
            keys=[_key("subidx", source.path), _key("subs", source.path)],
            args=[unique_key, subscription_id, dumps(record), ttl, _key("sub", "")],
        )
        return bool(created), found_id

    def get_subscription(self, source, subscription_id):
        record = self._get_json(_key("sub", subscription_id))
        if record is None or record.get("source") != source.to_list():
            raise errors.NotFoundError(f"Subscription {subscription_id!r} does not exist.")
        return record

    def save_subscription(self, record, previous_subscriber=None, now=None):
        """Write back a changed subscription, keeping its index in step:
        ``previous_subscriber`` is the index key it had (its ``unique_key``,
        default its subscriber) when that changed."""
        now = time.time() if now is None else now
        source = Source(*record["source"])
        ttl_left = max(1, int(record["expires"] - now))
        key = record.get("unique_key", record["subscriber"])
        pipe = self.redis.pipeline(transaction=True)
        if previous_subscriber and previous_subscriber != key:
            pipe.hdel(_key("subidx", source.path), previous_subscriber)
            pipe.hset(_key("subidx", source.path), key, record["id"])
        pipe.set(_key("sub", record["id"]), dumps(record), ex=ttl_left)
        pipe.execute()

    def subscriber_taken(self, source, subscriber, except_id):
        found = self.redis.hget(_key("subidx", source.path), subscriber)
        return bool(found and found != except_id and self.redis.exists(_key("sub", found)))

    def delete_subscription(self, source, subscription_id):
        record = self.get_subscription(source, subscription_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(_key("sub", subscription_id))
        pipe.zrem(_key("subs", source.path), subscription_id)
        pipe.hdel(_key("subidx", source.path), record.get("unique_key", record["subscriber"]))
        pipe.execute()
        return record

    def delete_subscription_index(self, source):
        """Drop a source's subscription index (ids of expired ones linger there)."""
        self.redis.delete(_key("subs", source.path), _key("subidx", source.path))

    def subscription_page(self, source, after=None, limit=500):
        """Return (live subscriptions, cursor) for one page in id order.

        ``cursor`` is the last id read, or None when this was the last page.
        Ids whose records expired are removed from the index on the way.
        """
        start = f"({after}" if after else "-"
        ids = self.redis.zrangebylex(_key("subs", source.path), start, "+", start=0, num=limit)
        found = self._get_many("sub", ids)
        expired = [i for i in ids if i not in found]
        if expired:
            self.redis.zrem(_key("subs", source.path), *expired)
        cursor = ids[-1] if len(ids) == limit else None
        return [found[i] for i in ids if i in found], cursor

    def get_subscriptions(self, subscription_ids):
        return self._get_many("sub", subscription_ids)

    def load_deliveries(self, message_ids, subscription_ids):
        """Return ({id: message}, {id: subscription}) in one round trip."""
        message_ids, subscription_ids = list(message_ids), list(subscription_ids)
        pipe = self.redis.pipeline(transaction=False)
        pipe.mget([_key("msg", i) for i in message_ids] or [_key("msg", "")])
        pipe.mget([_key("sub", i) for i in subscription_ids] or [_key("sub", "")])
        raw_messages, raw_subscriptions = pipe.execute()
        return (
            {i: json.loads(v) for i, v in zip(message_ids, raw_messages) if v},
            {i: json.loads(v) for i, v in zip(subscription_ids, raw_subscriptions) if v},
        )

    # -- task outbox ------------------------------------------------------

    def mark_task_sent(self, member, now=None):
        self.redis.zadd(_key("tasks", "pending"), {member: time.time() if now is None else now})

    def mark_task_started(self, member):
        self.redis.zrem(_key("tasks", "pending"), member)

    def lease_stale_tasks(self, now, stale_seconds, queue_names, limit=500):
        """Return tasks sent over ``stale_seconds`` ago that never started."""
        return self._lease_stale_tasks(
            keys=[_key("tasks", "pending")] + list(queue_names),
            args=[now, now - stale_seconds, limit],
        )

    # -- delivery state -----------------------------------------------------

    @staticmethod
    def _done_key(delivery):
        return _key(
            "done",
            delivery["message_id"],
            delivery["subscription_id"],
            str(delivery.get("round", 0)),
            str(delivery["attempt"]),
        )

    def already_done(self, deliveries):
        """Return the set of indexes of deliveries whose attempt already ran."""
        if not deliveries:
            return set()
        flags = self.redis.mget([self._done_key(d) for d in deliveries])
        return {i for i, flag in enumerate(flags) if flag is not None}

    def record_attempts(self, attempts):
        """Append attempt records to their subscription's and message's logs."""
        if not attempts:
            return
        pipe = self.redis.pipeline(transaction=False)
        cap = self.attempt_log_length - 1
        for attempt in attempts:
            text = dumps(attempt)
            sub_key = _key("attempts", "sub", attempt["subscription_id"])
            msg_key = _key("attempts", "msg", str(attempt.get("message_id")))
            pipe.lpush(sub_key, text)
            pipe.ltrim(sub_key, 0, cap)
            if attempt.get("message_id") is None:
                continue  # an event of the subscription (disabled, enabled)
            if attempt["outcome"] in RAN_OUTCOMES:
                pipe.set(self._done_key(attempt), "1", ex=self.done_ttl_seconds)
            pipe.lpush(msg_key, text)
            pipe.ltrim(msg_key, 0, cap)
            pipe.expire(msg_key, self.attempt_log_ttl_seconds)
        pipe.execute()

    def subscription_attempts(self, subscription_id, limit=100):
        return self._get_list(_key("attempts", "sub", subscription_id), limit)

    def message_attempts(self, message_id, limit=100):
        return self._get_list(_key("attempts", "msg", message_id), limit)

    def schedule_retries(self, due_deliveries):
        """Store (due_epoch, delivery dict) pairs until a scheduler moves them."""
        if due_deliveries:
            self.redis.zadd(_key("retries"), {dumps(d): due for due, d in due_deliveries})

    def lease_due_retries(self, now, limit, lease_seconds=30):
        """Take up to ``limit`` due retries; they stay leased until released."""
        members = self._lease_due_retries(
            keys=[_key("retries"), _key("retries", "leased")],
            args=[now, limit, now - lease_seconds],
        )
        return [(m, json.loads(m)) for m in members]

    def release_retries(self, members):
        """Forget leased retries once their delivery task is enqueued."""
        if members:
            self.redis.zrem(_key("retries", "leased"), *members)

    def pending_retry_count(self):
        return self.redis.zcard(_key("retries")) + self.redis.zcard(_key("retries", "leased"))

    def shared_state(self, queue_names):
        """Return fleet-wide gauges: task queue depths, retries, open breakers."""
        pipe = self.redis.pipeline(transaction=False)
        for name in queue_names:
            pipe.llen(name)
        pipe.zcard(_key("retries"))
        pipe.zcard(_key("retries", "leased"))
        pipe.scard(_key("breakers", "open"))
        values = pipe.execute()
        count = len(queue_names)
        return {
            "queues": dict(zip(queue_names, values[:count])),
            "retries": values[count] + values[count + 1],
            "open_breakers": values[count + 2],
        }

    def dead_letter(self, letters, now=None):
        """Store dead letters (dicts with subscription_id) by time of death."""
        if not letters:
            return
        now = time.time() if now is None else now
        pipe = self.redis.pipeline(transaction=False)
        for letter in letters:
            pipe.zadd(_key("dead", letter["subscription_id"]), {dumps(letter): now})
        pipe.execute()

    def dead_letters(self, subscription_id, since=0, limit=100):
        members = self.redis.zrangebyscore(
            _key("dead", subscription_id), since, "+inf", start=0, num=limit
        )
        return [json.loads(m) for m in members]

    def remove_dead_letters(self, subscription_id, letters):
        if letters:
            self.redis.zrem(_key("dead", subscription_id), *[dumps(letter) for letter in letters])

    # -- helpers ----------------------------------------------------------

    def _get_json(self, key):
        raw = self.redis.get(key)
        return None if raw is None else json.loads(raw)

    def _get_many(self, kind, ids):
        if not ids:
            return {}
        values = self.redis.mget([_key(kind, i) for i in ids])
        return {i: json.loads(v) for i, v in zip(ids, values) if v is not None}

    def _get_list(self, key, limit):
        return [json.loads(v) for v in self.redis.lrange(key, 0, limit - 1)]
