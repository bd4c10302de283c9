"""bench/redis_trace.py names scripts by the SHA Redis gives them as the
store registers them (libraries first, ``lua.LIBRARIES``)."""

import redis

from bench import redis_trace
from notifier.store import lua


def test_every_script_the_store_registers_is_named_by_its_sha(redis_server):
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    names = redis_trace.script_names()
    assert len(names) == 20 and "record_attempts" in names.values()
    assert sorted(names.values()) == sorted(set(names.values()))  # one SHA each
    for sha, name in names.items():
        assert client.script_load(lua.text(name)) == sha  # as Redis names it
