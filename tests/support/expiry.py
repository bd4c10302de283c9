"""Check a Redis key's TTL from its absolute expiry, not from how much is left.

``TTL`` counts down while the test runs, so ``ttl - 5 <= left <= ttl`` is a
bound on how fast the machine is. ``PEXPIRETIME`` (Redis 7) is the moment the
key expires: a call made between ``before`` and ``after`` (``time.time()``
readings around it) that gave the key ``seconds`` to live set it in
``[before + seconds, after + seconds]``, however long the call took.
"""


def expiry_seconds(redis_client, key):
    """Return the key's absolute expiry (epoch seconds); fail if it has none."""
    at = redis_client.pexpiretime(key)
    assert at not in (-1, -2), f"{key}: {'no TTL' if at == -1 else 'no such key'}"
    return at / 1000


def assert_lives(redis_client, key, seconds, before, after, truncated=False):
    """Assert ``key`` was given ``seconds`` to live between ``before`` and
    ``after``. ``truncated``: the code computed a whole-second TTL from an
    earlier expiry (``int(expires - now)``), which may make it up to a second
    shorter."""
    at = expiry_seconds(redis_client, key)
    low = before + seconds - (1 if truncated else 0)
    # Redis and time.time() both keep ms; allow the ms the readings round off.
    assert low - 0.001 <= at <= after + seconds + 0.001, (key, at - before, at - after)
