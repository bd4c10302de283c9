"""Build notifier's Redis client from configuration: the server at
``redis_url``, or the master the sentinels of ``sentinel_hosts`` name.

The Celery broker's equivalent is ``notifier.conf.broker_url`` and
``broker_transport_options``: kombu builds its own connections.
"""

from typing import Any, cast

import redis
from redis.connection import parse_url
from redis.sentinel import Sentinel

from notifier.conf import sentinel_addresses, sentinel_kwargs, sentinel_master


def redis_client(conf: Any, **kwargs: Any) -> redis.Redis:
    """Return a client of ``redis_url``, or of the Sentinel-managed master.

    ``kwargs`` are connection options (timeouts, ``retry``,
    ``decode_responses`` ...). Through Sentinel, ``redis_url`` gives only the
    password, user and database number, and each new connection asks the
    sentinels where the master is, so the client follows a failover.
    """
    if not conf.sentinel_hosts:
        return redis.Redis.from_url(conf.redis_url, **kwargs)
    params = parse_url(conf.redis_url)
    if "connection_class" in params:
        raise ValueError("sentinel_hosts works with redis:// URLs only (not rediss:// or unix://)")
    params.pop("host", None)
    params.pop("port", None)
    sentinel = Sentinel(
        sentinel_addresses(conf.sentinel_hosts),
        sentinel_kwargs=sentinel_kwargs(conf),
        **{**kwargs, **params},
    )
    return cast(redis.Redis, sentinel.master_for(sentinel_master(conf)))
