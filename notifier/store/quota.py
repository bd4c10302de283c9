"""Byte quotas: how many bytes of messages and dead letters a project stores.

The scripts that write or delete counted data keep the count (``usage.lua``);
this reads it, leaving out buckets whose time has passed.
"""

import math
import time
from typing import cast

from redis import Redis

from notifier.store import keys
from notifier.store.boundary import translate_errors
from notifier.store.records import USAGE_BUCKET_SECONDS


@translate_errors
class ByteQuota:
    """Read a project's stored bytes."""

    def __init__(self, client: Redis) -> None:
        self.redis = client

    def stored_bytes(self, project: str, now: float | None = None) -> int:
        """Return the bytes of messages and dead letters ``project`` stores."""
        now = time.time() if now is None else now
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(keys.project_bytes(project), "total")
        pipe.zrangebyscore(
            keys.project_buckets(project), "-inf", math.floor(now / USAGE_BUCKET_SECONDS)
        )
        total, passed = pipe.execute()
        if passed:
            held = cast(list[str | None], self.redis.hmget(keys.project_bytes(project), passed))
            total = int(total or 0) - sum(int(v or 0) for v in held)
        return int(total or 0)
