"""The store's keys keep their deployed names, its Lua scripts declare what
they touch, and Redis being unreachable surfaces as UnavailableError."""

import re
from importlib import resources

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from notifier import errors
from notifier.store import keys
from notifier.store.boundary import translated
from notifier.store.records import Source
from notifier.store.storage import Storage

SOURCE = Source("p", "queues", "q")


@pytest.mark.parametrize(
    "built, deployed",
    [
        (keys.sources("p", "queues"), "notifier:sources:p:queues"),
        (keys.source_metadata(SOURCE), "notifier:meta:p:queues:q"),
        (keys.source_messages(SOURCE), "notifier:msgs:p:queues:q"),
        (keys.message("m"), "notifier:msg:m"),
        (keys.pending("m"), "notifier:pending:m"),
        (keys.message_ranks(SOURCE), "notifier:ranks:p:queues:q"),
        (keys.free_messages(SOURCE), "notifier:free:p:queues:q"),
        (keys.claimed_messages(SOURCE), "notifier:claimed:p:queues:q"),
        (keys.message_claimers(SOURCE), "notifier:claimer:p:queues:q"),
        (keys.message_counter(SOURCE), "notifier:msgseq:p:queues:q"),
        (keys.claim("c"), "notifier:claim:c"),
        (keys.control_message("ctl-c"), "notifier:ctl:ctl-c"),
        (keys.delivered_message("ctl-c"), "notifier:ctl:ctl-c"),
        (keys.delivered_message("m"), "notifier:msg:m"),
        (
            keys.confirmation_rate("http://x"),  # sha256 of the subject
            "notifier:confirmrate:037ab55168fe8769f2a4c041c2ea5d8b3112e28b83c9ca8cf7d35445d7a03cbe",
        ),
        (keys.source_subscriptions(SOURCE), "notifier:subs:p:queues:q"),
        (keys.subscriber_index(SOURCE), "notifier:subidx:p:queues:q"),
        (keys.subscription("s"), "notifier:sub:s"),
        (keys.project_subscriptions("p"), "notifier:quota:subs:p"),
        (keys.subscription_attempts("s"), "notifier:attempts:sub:s"),
        (keys.message_attempts("m"), "notifier:attempts:msg:m"),
        (keys.control_attempts("ctl-c"), "notifier:attempts:ctl:ctl-c"),
        (keys.done("m"), "notifier:done:m"),
        (keys.done_field("s", 0, 2), "s:0:2"),
        (keys.dead_letters("s"), "notifier:dead:s"),
        (keys.task_outbox(), "notifier:tasks:pending"),
        (keys.retries(), "notifier:retries"),
        (keys.leased_retries(), "notifier:retries:leased"),
        (keys.pending_deliveries(3), "notifier:drain:3"),
        (keys.drain_owner(3), "notifier:drain:3:owner"),
        (keys.project_bytes("p"), "notifier:quota:bytes:p"),
        (keys.project_buckets("p"), "notifier:quota:expiry:p"),
        (keys.breaker("p:http://h:80"), "notifier:breaker:p:http://h:80"),
        (keys.open_breakers(), "notifier:breakers:open"),
        (keys.probe("e"), "notifier:probe:e"),
        (keys.inflight("e"), "notifier:inflight:e"),
        (keys.lease_sequence(), "notifier:inflight:seq"),
        (keys.proven("e"), "notifier:proven:e"),
        (keys.throttle("s"), "notifier:throttle:s"),
        (keys.held("s"), "notifier:held:s"),
    ],
)
def test_every_key_keeps_the_name_deployed_data_has(built, deployed):
    assert built == deployed


def lua_scripts():
    folder = resources.files("notifier.store") / "scripts"
    return sorted(
        (p.name, p.read_text("utf-8")) for p in folder.iterdir() if p.name.endswith(".lua")
    )


@pytest.mark.parametrize("name, text", lua_scripts(), ids=[n for n, _ in lua_scripts()])
def test_every_script_starts_with_what_it_takes_and_builds_no_key(name, text):
    header = "".join(line for line in text.splitlines(True) if line.startswith("--"))
    assert text.startswith("--")
    assert ("KEYS" in header and "ARGV" in header) or "Library" in header
    assert "notifier:" not in text
    # keys come whole from KEYS: no call takes a concatenated name
    assert not re.search(r"redis\.call\('\w+', [^,)]*\.\.", text)


def test_an_unreachable_redis_raises_unavailable_from_the_redis_error(tmp_path):
    client = redis.Redis(unix_socket_path=str(tmp_path / "none.sock"), retry=Retry(NoBackoff(), 0))
    with pytest.raises(errors.UnavailableError) as raised:
        Storage(client).get_messages(["m"])
    assert isinstance(raised.value.__cause__, redis.exceptions.ConnectionError)
    assert raised.value.retry_after == 1


def test_other_errors_pass_through_the_boundary():
    @translated
    def broken():
        raise redis.exceptions.ResponseError("WRONGTYPE")

    with pytest.raises(redis.exceptions.ResponseError):
        broken()
