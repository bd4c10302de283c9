"""The one module that knows notifier's Redis keys.

Key layout (``P`` = project, ``K`` = source kind ``queues``/``topics``,
``S`` = source name, every key prefixed ``notifier:``)::

    sources:P:K            ZSET   source names, score 0 (lexicographic paging)
    meta:P:K:S             STRING source metadata (JSON)
    msgs:P:K:S             ZSET   message ids by expiry time (live ones only)
    msg:ID                 STRING message (JSON), expires with the message TTL
    ctl:CID                STRING control message (a confirmation request; JSON):
                                  CID starts ``ctl-``, so no message route,
                                  listing or replay (all read ``msg:``) can
                                  ever read it; expires with its TTL
    subs:P:K:S             ZSET   subscription ids, score 0 (lexicographic paging)
    subidx:P:K:S           HASH   subscriber URI -> subscription id
    sub:ID                 STRING subscription (JSON), expires with its TTL
    attempts:sub:ID        LIST   newest-first attempt records of a subscription
    attempts:msg:ID        LIST   newest-first attempt records of a message
    attempts:ctl:CID       LIST   attempts of a control message (internal: dead
                                  letters' history; no route reads it)
    pending:ID             STRING deliveries of a topic message not yet final
    done:MID:SID:R:N       STRING attempt N (round R) of a delivery has run
                                  (expires: ``done_horizon_seconds``)
    tasks:pending          ZSET   task (JSON [name, args]) -> time sent; removed
                                  when a worker starts it (see reconcile)
    retries                ZSET   delivery (JSON) -> due time (epoch seconds)
    retries:leased         ZSET   delivery (JSON) -> time a scheduler took it
    dead:SUBID             ZSET   dead letter (JSON) -> time it died; kept
                                  ``dead_letter_ttl_seconds``, at most
                                  ``max_dead_letters_per_subscription``
    confirmrate:HASH       STRING confirmations sent by one project to one
                                  endpoint in the current window (expires
                                  with the window)
    quota:subs:P           ZSET   subscription ids of project P -> expiry
    quota:bytes:P          HASH   stored bytes of project P (messages, dead
                                  letters): ``total``, and per expiry bucket
                                  (a minute, rounded up) -> bytes
    quota:expiry:P         ZSET   the buckets of ``quota:bytes:P``, to drop
                                  them when they pass

Expired subscriptions leave their id in ``subs`` and ``subidx``; readers drop
such ids lazily, so expiry needs no sweeper. Every key of one subscription
(``subscription_keys``) is deleted with it, and expires by itself when the
subscription expires instead.

Stored bytes are counted where data is written and taken back where it is
deleted before its time, in the same Lua scripts; what expires is dropped with
its bucket, without a sweeper. The count errs high, never low: a delete that
cannot tell its bucket leaves the bytes counted until the bucket passes.
"""

import hashlib
import json
import math
import time
import uuid
from typing import NamedTuple

from redis.backoff import NoBackoff
from redis.exceptions import WatchError
from redis.retry import Retry

from notifier import errors
from notifier.store.redis_client import redis_client

PREFIX = "notifier:"
#: Ids of control messages (confirmation requests) start with this; they are
#: stored under ``ctl:`` keys, apart from the messages of queues and topics.
CONTROL_PREFIX = "ctl-"
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


def dead_letters_key(subscription_id):
    return _key("dead", subscription_id)


def subscription_attempts_key(subscription_id):
    return _key("attempts", "sub", subscription_id)


def project_subscriptions_key(project):
    return _key("quota", "subs", project)


def project_bytes_key(project):
    return _key("quota", "bytes", project)


def project_buckets_key(project):
    return _key("quota", "expiry", project)


def subscription_keys(subscription_id):
    """Every key that belongs to one subscription alone, its record first:
    what deleting the subscription deletes."""
    from notifier.store import endpoint_state  # held deliveries, rate-limit state

    return [
        _key("sub", subscription_id),
        dead_letters_key(subscription_id),
        subscription_attempts_key(subscription_id),
        *endpoint_state.subscription_keys(subscription_id),
    ]


class Limits(NamedTuple):
    """Retention and quotas (0: no limit); ``notifier.conf.limits``."""

    dead_letter_ttl_seconds: int = 7 * 86400
    max_dead_letters_per_subscription: int = 1000
    subscription_log_ttl_seconds: int = 7 * 86400
    max_subscriptions_per_project: int = 0
    max_stored_bytes_per_project: int = 0

    @classmethod
    def from_conf(cls, conf):
        return cls(
            conf.notification.dead_letter_ttl_seconds,
            conf.notification.max_dead_letters_per_subscription,
            conf.notification.subscription_log_ttl_seconds,
            conf.quota.max_subscriptions_per_project,
            conf.quota.max_stored_bytes_per_project,
        )


#: Stored bytes are counted per minute of expiry (rounded up).
USAGE_BUCKET_SECONDS = 60


def usage_bucket(expires):
    return math.ceil(expires / USAGE_BUCKET_SECONDS)


def new_id():
    """Return a new opaque id (32 hex digits)."""
    return uuid.uuid4().hex


def is_control_id(message_id):
    """Return whether ``message_id`` names a control message."""
    return isinstance(message_id, str) and message_id.startswith(CONTROL_PREFIX)


def _message_key(message_id):
    """The key of a delivery's message: a message, or a control message."""
    return _key("ctl" if is_control_id(message_id) else "msg", message_id)


def redacted_attempt(attempt):
    """Return an attempt record as the owner may read it: of a control
    message, neither its id nor the endpoint's reply (which could echo the
    confirmation link) is shown; the record says ``control: true``."""
    if not is_control_id(attempt.get("message_id")):
        return attempt
    shown = dict(attempt, message_id=None, control=True)
    shown.pop("response_body", None)
    return shown


def dumps(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# Stored bytes of a project (see the module docstring), shared by the scripts
# that write or delete counted data. A bucket number is
# ceil(expiry / USAGE_BUCKET_SECONDS), computed alike in Python and Lua.
USAGE_LUA = """
local function usage_keys(p, project)
  return p .. 'quota:bytes:' .. project, p .. 'quota:expiry:' .. project
end
local function usage_bucket(expires) return math.ceil(expires / 60) end
-- Drop the buckets whose time has passed; return the bytes still stored.
local function usage_used(p, project, now)
  local bytes, buckets = usage_keys(p, project)
  while true do
    local gone = redis.call('ZRANGEBYSCORE', buckets, '-inf', math.floor(now / 60),
                            'LIMIT', 0, 500)
    if #gone == 0 then break end
    local freed = 0
    for _, v in ipairs(redis.call('HMGET', bytes, unpack(gone))) do
      freed = freed + (tonumber(v) or 0)
    end
    redis.call('HDEL', bytes, unpack(gone))
    redis.call('ZREM', buckets, unpack(gone))
    redis.call('HINCRBY', bytes, 'total', -freed)
  end
  return tonumber(redis.call('HGET', bytes, 'total') or '0')
end
local function usage_charge(p, project, size, bucket)
  local bytes, buckets = usage_keys(p, project)
  redis.call('HINCRBY', bytes, bucket, size)
  redis.call('HINCRBY', bytes, 'total', size)
  redis.call('ZADD', buckets, bucket, bucket)
end
-- Take back bytes deleted before their time, never more than their bucket
-- holds (a bucket already dropped has taken them back).
local function usage_refund(p, project, size, bucket)
  local bytes, buckets = usage_keys(p, project)
  local held = tonumber(redis.call('HGET', bytes, bucket) or '0')
  local back = math.min(held, size)
  if back <= 0 then return end
  if back == held then
    redis.call('HDEL', bytes, bucket)
    redis.call('ZREM', buckets, bucket)
  else
    redis.call('HINCRBY', bytes, bucket, -back)
  end
  redis.call('HINCRBY', bytes, 'total', -back)
end
"""

# KEYS[1] subidx hash, KEYS[2] subs zset, KEYS[3] the project's quota:subs
# ARGV[1] subscriber, ARGV[2] new id, ARGV[3] subscription JSON, ARGV[4] ttl,
# ARGV[5] key prefix of subscription records, ARGV[6] most subscriptions of
# the project (0: no limit), ARGV[7] now, ARGV[8] expiry
# Returns {0, existing_id} when a live subscription has the subscriber,
# {-1, count} when the project has its most subscriptions, else {1, new_id}.
CREATE_SUBSCRIPTION_LUA = """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing and redis.call('EXISTS', ARGV[5] .. existing) == 1 then
  return {0, existing}
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[7])
local count = redis.call('ZCARD', KEYS[3])
if tonumber(ARGV[6]) > 0 and count >= tonumber(ARGV[6]) then
  return {-1, tostring(count)}
end
if existing then redis.call('ZREM', KEYS[2], existing) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
redis.call('SET', ARGV[5] .. ARGV[2], ARGV[3], 'EX', tonumber(ARGV[4]))
redis.call('ZADD', KEYS[3], ARGV[8], ARGV[2])
return {1, ARGV[2]}
"""

# ARGV[1] key prefix, ARGV[2] now, ARGV[3] number of posts, ARGV[4] most
# stored bytes per project (0: no limit), then per post: project, kind, name,
# message count, 1 to skip the fan-out without subscriptions, outbox entry,
# broker queue, broker message ('' for none), then per message: id, ttl,
# record JSON. Returns per post {1/0: fan-out enqueued, or -1: refused, its
# project would store more than its quota; bytes the project stores}. Keeps
# the message index to live messages (bounded under load).
STORE_POSTS_LUA = (
    USAGE_LUA
    + """
local p, now, i, limit = ARGV[1], tonumber(ARGV[2]), 5, tonumber(ARGV[4])
local results = {}
for post = 1, tonumber(ARGV[3]) do
  local project, kind, name, count = ARGV[i], ARGV[i+1], ARGV[i+2], tonumber(ARGV[i+3])
  local lazy, member, queue, payload = ARGV[i+4] == '1', ARGV[i+5], ARGV[i+6], ARGV[i+7]
  i = i + 8
  local size = 0
  for m = 0, count - 1 do size = size + #ARGV[i + 3 * m + 2] end
  local used = usage_used(p, project, now)
  if limit > 0 and used + size > limit then
    results[post] = {-1, used}
  else
    local path = project .. ':' .. kind .. ':' .. name
    redis.call('ZADD', p .. 'sources:' .. project .. ':' .. kind, 0, name)
    redis.call('SET', p .. 'meta:' .. path, '{}', 'NX')
    local index = p .. 'msgs:' .. path
    local charges = {}  -- bucket -> bytes: messages of a post mostly share one
    for m = 0, count - 1 do
      local id, ttl, record = ARGV[i + 3 * m], tonumber(ARGV[i + 3 * m + 1]), ARGV[i + 3 * m + 2]
      redis.call('SET', p .. 'msg:' .. id, record, 'EX', ttl)
      redis.call('ZADD', index, now + ttl, id)
      local bucket = usage_bucket(now + ttl)
      charges[bucket] = (charges[bucket] or 0) + #record
    end
    for bucket, bytes in pairs(charges) do usage_charge(p, project, bytes, bucket) end
    redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
    local fanout = not lazy or redis.call('EXISTS', p .. 'subs:' .. path) == 1
    if fanout and member ~= '' then redis.call('ZADD', p .. 'tasks:pending', now, member) end
    if fanout and payload ~= '' then redis.call('LPUSH', queue, payload) end
    results[post] = {fanout and 1 or 0, used + size}
  end
  i = i + 3 * count
end
return results
"""
)

# ARGV[1] key prefix, then per message: id, project, bucket. Deletes messages
# before their TTL, taking their bytes back.
UNSTORE_MESSAGES_LUA = (
    USAGE_LUA
    + """
for i = 2, #ARGV, 3 do
  local key = ARGV[1] .. 'msg:' .. ARGV[i]
  usage_refund(ARGV[1], ARGV[i + 1], redis.call('STRLEN', key), ARGV[i + 2])
  redis.call('DEL', key)
end
"""
)

# ARGV[1] key prefix, ARGV[2] now, ARGV[3] ttl, ARGV[4] project, ARGV[5] id,
# ARGV[6] message JSON. Stores a message again unless it exists; returns 1
# if it was stored.
RESTORE_MESSAGE_LUA = (
    USAGE_LUA
    + """
local now, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
if not redis.call('SET', ARGV[1] .. 'msg:' .. ARGV[5], ARGV[6], 'EX', ttl, 'NX') then return 0 end
usage_charge(ARGV[1], ARGV[4], #ARGV[6], usage_bucket(now + ttl))
return 1
"""
)

# ARGV[1] key prefix, ARGV[2] now, ARGV[3] ttl, ARGV[4] most letters per
# subscription, ARGV[5] most stored bytes per project (0: no limit), then per
# letter: subscription id, project, letter JSON. Stores dead letters by time
# of death, drops those past the TTL (their bytes pass with their bucket) and
# the oldest over the cap (taking their bytes back). Returns the 1-based
# indexes of letters not stored: their project is at its quota.
DEAD_LETTER_LUA = (
    USAGE_LUA
    + """
local p, now, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local cap, limit = tonumber(ARGV[4]), tonumber(ARGV[5])
local dropped = {}
for i = 6, #ARGV, 3 do
  local key, project, letter = p .. 'dead:' .. ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if limit > 0 and usage_used(p, project, now) + #letter > limit then
    table.insert(dropped, (i - 3) / 3)
  else
    if redis.call('ZADD', key, now, letter) == 1 then
      usage_charge(p, project, #letter, usage_bucket(now + ttl))
    end
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (now - ttl))
    local extra = redis.call('ZCARD', key) - cap
    if extra > 0 then
      local oldest = redis.call('ZRANGE', key, 0, extra - 1, 'WITHSCORES')
      for j = 1, #oldest, 2 do
        usage_refund(p, project, #oldest[j], usage_bucket(tonumber(oldest[j + 1]) + ttl))
      end
      redis.call('ZREMRANGEBYRANK', key, 0, extra - 1)
    end
    redis.call('EXPIRE', key, ttl)
  end
end
return dropped
"""
)

# ARGV[1] key prefix, ARGV[2] ttl, then per letter: subscription id, project,
# letter JSON. Removes dead letters (replayed), taking their bytes back.
REMOVE_DEAD_LETTERS_LUA = (
    USAGE_LUA
    + """
local p, ttl = ARGV[1], tonumber(ARGV[2])
for i = 3, #ARGV, 3 do
  local key = p .. 'dead:' .. ARGV[i]
  local died = redis.call('ZSCORE', key, ARGV[i + 2])
  if died then
    redis.call('ZREM', key, ARGV[i + 2])
    usage_refund(p, ARGV[i + 1], #ARGV[i + 2], usage_bucket(tonumber(died) + ttl))
  end
end
"""
)

# ARGV[1] key prefix, ARGV[2] subscription id, ARGV[3] project ('' to take
# nothing back), ARGV[4] ttl, ARGV[5] how many. Removes that many of the
# oldest dead letters, taking their bytes back; returns how many are left.
PURGE_DEAD_LETTERS_LUA = (
    USAGE_LUA
    + """
local p, project, ttl = ARGV[1], ARGV[3], tonumber(ARGV[4])
local key = p .. 'dead:' .. ARGV[2]
local oldest = redis.call('ZRANGE', key, 0, tonumber(ARGV[5]) - 1, 'WITHSCORES')
if #oldest == 0 then return 0 end
if project ~= '' then
  for j = 1, #oldest, 2 do
    usage_refund(p, project, #oldest[j], usage_bucket(tonumber(oldest[j + 1]) + ttl))
  end
end
redis.call('ZREMRANGEBYRANK', key, 0, #oldest / 2 - 1)
return redis.call('ZCARD', key)
"""
)

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


# ARGV[1] key prefix, then per message: id, project, bucket. Counts one final
# delivery off each message; a topic message with none left is deleted, its
# bytes taken back. Returns the ids deleted.
SETTLE_PENDING_LUA = (
    USAGE_LUA
    + """
local deleted = {}
for i = 2, #ARGV, 3 do
  local key = ARGV[1] .. 'pending:' .. ARGV[i]
  if redis.call('EXISTS', key) == 1 and redis.call('DECR', key) <= 0 then
    local message = ARGV[1] .. 'msg:' .. ARGV[i]
    usage_refund(ARGV[1], ARGV[i + 1], redis.call('STRLEN', message), ARGV[i + 2])
    redis.call('DEL', key, message)
    table.insert(deleted, ARGV[i])
  end
end
return deleted
"""
)


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
        self,
        client,
        attempt_log_length=1000,
        attempt_log_ttl_seconds=3600,
        done_ttl_seconds=720,
        limits=None,
    ):
        self.redis = client
        self.attempt_log_length = attempt_log_length
        self.attempt_log_ttl_seconds = attempt_log_ttl_seconds
        self.done_ttl_seconds = done_ttl_seconds
        self.limits = limits or Limits()
        self._store_posts = client.register_script(STORE_POSTS_LUA)
        self._unstore_messages = client.register_script(UNSTORE_MESSAGES_LUA)
        self._restore_message = client.register_script(RESTORE_MESSAGE_LUA)
        self._dead_letter = client.register_script(DEAD_LETTER_LUA)
        self._remove_dead_letters = client.register_script(REMOVE_DEAD_LETTERS_LUA)
        self._purge_dead_letters = client.register_script(PURGE_DEAD_LETTERS_LUA)
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
            Limits.from_conf(conf),
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
        """Delete a source's metadata and messages, and what its subscriptions
        hold of them: dead letters, attempt logs, held deliveries. The
        subscriptions themselves survive, as queues are lazy (see README)."""
        entries = self.redis.zrange(_key("msgs", source.path), 0, -1, withscores=True)
        pipe = self.redis.pipeline()
        pipe.zrem(_key("sources", source.project, source.kind), source.name)
        pipe.delete(_key("meta", source.path))
        pipe.execute()
        for start in range(0, len(entries), 500):
            self._unstore(
                (message_id, source.project, expires)
                for message_id, expires in entries[start : start + 500]
            )
        self.redis.delete(_key("msgs", source.path))
        ids = self.redis.zrange(_key("subs", source.path), 0, -1)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            records = self._get_many("sub", chunk)
            for subscription_id in chunk:
                record = records.get(subscription_id)
                self.forget_subscription_data(subscription_id, record and record.get("project"))

    def _unstore(self, messages):
        """Delete (id, project, expiry) messages before their TTL."""
        args = [_key("")]
        for message_id, project, expires in messages:
            args += [message_id, project, usage_bucket(expires)]
        if len(args) > 1:
            self._unstore_messages(args=args)

    # -- messages ---------------------------------------------------------

    def post_messages(self, source, messages, ids=None, task=None, now=None):
        """Store messages (dicts with body, ttl, ...) and return their ids;
        ``task`` is their fan-out (see ``store_posts``). Raise
        QuotaExceededError if the project would store more than its quota."""
        ids = list(ids) if ids is not None else [new_id() for _ in messages]
        [outcome] = self.store_posts([(source, messages, ids, task)], now)
        if isinstance(outcome, errors.QuotaExceededError):
            raise outcome
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

        A post that would take its project past ``max_stored_bytes_per_project``
        is not stored: its entry is a QuotaExceededError instead.
        """
        now = time.time() if now is None else now
        limit = self.limits.max_stored_bytes_per_project
        args = [PREFIX, repr(now), len(posts), limit]
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
        outcomes = []
        for (source, _, _, _), (flag, used) in zip(posts, self._store_posts(args=args)):
            outcomes.append(
                bytes_quota_error(source.project, used, limit) if flag < 0 else bool(flag)
            )
        return outcomes

    def post_control_message(self, source, payload, ttl, now=None, nonce=None):
        """Store a message the service sends itself (a subscription
        confirmation) apart from the source's messages: ``payload`` is
        delivered as it is; ``nonce`` is the confirmation it carries. Return
        its id (``ctl-...``), which no message route can read."""
        now = time.time() if now is None else now
        message_id = CONTROL_PREFIX + new_id()
        record = {
            "id": message_id,
            "created": now,
            "ttl": int(ttl),
            "control": True,
            "payload": payload,
            "source": source.to_list(),
        }
        if nonce is not None:
            record["nonce"] = nonce
        self.redis.set(_key("ctl", message_id), dumps(record), ex=int(ttl))
        return message_id

    def get_control_messages(self, message_ids):
        """Return {id: control message} for the ids that still exist."""
        return self._get_many("ctl", [i for i in message_ids if is_control_id(i)])

    def get_message(self, source, message_id):
        record = self._get_json(_key("msg", message_id))
        if record is None or record.get("control") or record.get("source") != source.to_list():
            raise errors.NotFoundError(f"Message {message_id!r} does not exist.")
        return record

    def restore_message(self, message, now=None):
        """Store a message again (for a replay) unless it still exists; it
        lives its TTL again from now, and ``expires`` says until when.
        Control messages are never restored (a replay sends no old link)."""
        if is_control_id(message.get("id")) or message.get("control"):
            return
        now = time.time() if now is None else now
        ttl = int(message["ttl"])
        record = dict(message, expires=now + ttl)
        self._restore_message(
            args=[_key(""), repr(now), ttl, message["source"][0], message["id"], dumps(record)]
        )

    def delete_messages(self, message_ids):
        """Delete messages before their TTL (a post taken back)."""
        records = self.get_messages(message_ids)
        self._unstore(
            (i, r["source"][0], message_expiry(r)) for i, r in records.items() if r.get("source")
        )

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

    def settle_pending(self, messages):
        """Count one final delivery off each message (a record); return the
        ids of the messages deleted."""
        args = [_key("")]
        for message in messages:
            args += [message["id"], message["source"][0], usage_bucket(message_expiry(message))]
        return self._settle_pending(args=args) if len(args) > 1 else []

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
        limit = self.limits.max_subscriptions_per_project
        created, found = self._create_subscription(
            keys=[
                _key("subidx", source.path),
                _key("subs", source.path),
                project_subscriptions_key(record["project"]),
            ],
            args=[
                unique_key,
                subscription_id,
                dumps(record),
                ttl,
                _key("sub", ""),
                limit,
                repr(now),
                repr(now + ttl),
            ],
        )
        if int(created) < 0:
            raise errors.QuotaExceededError(
                f"Project {record['project']!r} has {found} subscriptions, its quota "
                f"([quota] max_subscriptions_per_project = {limit}). Delete one first.",
                limit="max_subscriptions_per_project",
            )
        return bool(created), found

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
        pipe.zadd(
            project_subscriptions_key(record.get("project", source.project)),
            {record["id"]: record["expires"]},
            xx=True,
        )
        pipe.execute()

    def update_subscription(self, source, subscription_id, change):
        """Apply ``change(record) -> record`` to a stored subscription
        atomically and return the new record.

        The record is read and written under WATCH: a write in between (a
        PATCH, another confirmation) makes ``change`` run again on the new
        record, so a check in ``change`` (a confirmation's nonce) holds for
        the record written. ``change`` may raise to write nothing.
        """
        key = _key("sub", subscription_id)
        with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    record = json.loads(raw) if raw else None
                    if record is None or record.get("source") != source.to_list():
                        raise errors.NotFoundError(
                            f"Subscription {subscription_id!r} does not exist."
                        )
                    record = change(record)
                    pipe.multi()
                    pipe.set(key, dumps(record), keepttl=True)
                    pipe.execute()
                    return record
                except WatchError:
                    continue

    def count_confirmation(self, subject, window_seconds):
        """Count one confirmation sent to ``subject`` (a subscriber URL) in
        the current fixed window; return (count so far, seconds left)."""
        digest = hashlib.sha256(subject.encode("utf-8")).hexdigest()
        key = _key("confirmrate", digest)
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(key, 0, ex=int(window_seconds), nx=True)
        pipe.incr(key)
        pipe.ttl(key)
        _, count, ttl = pipe.execute()
        return count, max(int(ttl), 1)

    def subscriber_taken(self, source, subscriber, except_id):
        found = self.redis.hget(_key("subidx", source.path), subscriber)
        return bool(found and found != except_id and self.redis.exists(_key("sub", found)))

    def delete_subscription(self, source, subscription_id):
        """Delete a subscription and every key of its own; return its record."""
        record = self.get_subscription(source, subscription_id)
        project = record.get("project", source.project)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(_key("sub", subscription_id))
        pipe.zrem(_key("subs", source.path), subscription_id)
        pipe.hdel(_key("subidx", source.path), record.get("unique_key", record["subscriber"]))
        pipe.zrem(project_subscriptions_key(project), subscription_id)
        pipe.execute()
        self.forget_subscription_data(subscription_id, project)
        return record

    def forget_subscription_data(self, subscription_id, project=None, chunk=100):
        """Delete a subscription's dead letters, attempt log and held
        deliveries, taking the letters' bytes back from ``project`` (None:
        they stay counted until their retention passes)."""
        ttl = self.limits.dead_letter_ttl_seconds
        args = [_key(""), subscription_id, project or "", ttl, chunk]
        while self._purge_dead_letters(args=args):
            pass  # a chunk at a time: letters hold whole messages
        self.redis.delete(*subscription_keys(subscription_id)[1:])

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
        pipe.mget([_message_key(i) for i in message_ids] or [_key("msg", "")])
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
            control = is_control_id(attempt.get("message_id"))
            sub_key = _key("attempts", "sub", attempt["subscription_id"])
            msg_key = _key("attempts", "ctl" if control else "msg", str(attempt.get("message_id")))
            # The owner reads the subscription's log: a control message's id
            # stays out of it.
            pipe.lpush(sub_key, dumps(redacted_attempt(attempt)) if control else text)
            pipe.ltrim(sub_key, 0, cap)
            pipe.expire(sub_key, self.limits.subscription_log_ttl_seconds)
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
        if is_control_id(message_id):
            return []
        return self._get_list(_key("attempts", "msg", message_id), limit)

    def control_attempts(self, message_id, limit=100):
        """Return a control message's attempts (internal: never served)."""
        return self._get_list(_key("attempts", "ctl", message_id), limit)

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
        """Store dead letters (dicts with subscription_id and project) by time
        of death, keeping each subscription's newest
        ``max_dead_letters_per_subscription`` for ``dead_letter_ttl_seconds``.
        Return the letters not stored: their project is at its byte quota."""
        if not letters:
            return []
        now = time.time() if now is None else now
        limits = self.limits
        args = [
            _key(""),
            repr(now),
            limits.dead_letter_ttl_seconds,
            limits.max_dead_letters_per_subscription,
            limits.max_stored_bytes_per_project,
        ]
        for letter in letters:
            args += [letter["subscription_id"], letter_project(letter), dumps(letter)]
        return [letters[index - 1] for index in self._dead_letter(args=args)]

    def dead_letters(self, subscription_id, since=0, limit=100, now=None):
        """Return dead letters that died at or after ``since``, oldest first."""
        now = time.time() if now is None else now
        since = max(since, now - self.limits.dead_letter_ttl_seconds)
        members = self.redis.zrangebyscore(
            dead_letters_key(subscription_id), since, "+inf", start=0, num=limit
        )
        return [json.loads(m) for m in members]

    def remove_dead_letters(self, subscription_id, letters):
        args = [_key(""), self.limits.dead_letter_ttl_seconds]
        for letter in letters:
            args += [subscription_id, letter_project(letter), dumps(letter)]
        if letters:
            self._remove_dead_letters(args=args)

    def stored_bytes(self, project, now=None):
        """Return the bytes of messages and dead letters ``project`` stores."""
        now = time.time() if now is None else now
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(project_bytes_key(project), "total")
        pipe.zrangebyscore(
            project_buckets_key(project), "-inf", math.floor(now / USAGE_BUCKET_SECONDS)
        )
        total, passed = pipe.execute()
        if passed:
            total = int(total or 0) - sum(
                int(v or 0) for v in self.redis.hmget(project_bytes_key(project), passed)
            )
        return int(total or 0)

    def subscription_count(self, project, now=None):
        now = time.time() if now is None else now
        return self.redis.zcount(project_subscriptions_key(project), f"({now}", "+inf")

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


def message_expiry(message):
    """When a stored message's bytes stop counting: its TTL after it was
    stored, or after it was restored by a replay."""
    return message.get("expires") or message["created"] + int(message["ttl"])


def letter_project(letter):
    """The project a dead letter counts against: its subscription's."""
    return letter.get("project") or letter["message"]["source"][0]


def bytes_quota_error(project, used, limit):
    return errors.QuotaExceededError(
        f"Project {project!r} stores {used} bytes of messages and dead letters; this post "
        f"would pass its quota ([quota] max_stored_bytes_per_project = {limit}). Space "
        "frees as messages expire or are delivered, and as dead letters are replayed, "
        "expire or are deleted with their subscription.",
        limit="max_stored_bytes_per_project",
    )
