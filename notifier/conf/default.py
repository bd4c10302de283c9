"""Options of ``[DEFAULT]``: where Redis and the Celery broker are (through
Redis Sentinel too), the `notifier dev` supervisor, and the auth strategy;
and the broker settings read from them."""

from typing import Any
from urllib.parse import urlsplit

from oslo_config import cfg

GROUP = None

OPTS = [
    cfg.StrOpt(
        "redis_url",
        default="redis://127.0.0.1:6379/0",
        help="Redis holding queues, messages, subscriptions and delivery state.",
    ),
    cfg.StrOpt("broker_url", default=None, help="Celery broker URL. Defaults to redis_url."),
    cfg.ListOpt(
        "sentinel_hosts",
        default=[],
        help="Redis Sentinel addresses, host:port (port 26379 if "
        "omitted). When set, storage and the Celery broker ask "
        "the sentinels for the current master of "
        "sentinel_master and follow it through failovers; the "
        "host and port of redis_url and broker_url are then "
        "ignored, their password and database number still "
        "apply.",
    ),
    cfg.StrOpt(
        "sentinel_master",
        default=None,
        help="Name the sentinels monitor the master under (`sentinel "
        "monitor NAME ...`). Required with sentinel_hosts.",
    ),
    cfg.StrOpt(
        "sentinel_password",
        default=None,
        secret=True,
        help="Password of the sentinels themselves (their "
        "requirepass), if they have one. The master's password "
        "goes in redis_url.",
    ),
    cfg.FloatOpt(
        "sentinel_socket_timeout_seconds",
        default=2.0,
        min=0.1,
        help="Connect and read timeout of a call to one sentinel; "
        "an unreachable sentinel is skipped after it.",
    ),
    cfg.StrOpt(
        "dev_redis_appendfsync",
        default="everysec",
        choices=["everysec", "always"],
        help="fsync policy of the Redis `notifier dev` starts. everysec "
        "loses nothing on a Redis crash, up to ~1 s of writes on a "
        "power loss; always loses nothing but halves write "
        "throughput. Set the same in your own redis.conf.",
    ),
    cfg.FloatOpt(
        "dev_ready_timeout_seconds",
        default=120.0,
        min=1.0,
        help="`notifier dev` gives up, stops every role and exits non-zero "
        "if the API, the worker and the scheduler are not all ready by then.",
    ),
    cfg.StrOpt(
        "auth_strategy",
        default="noauth",
        choices=["noauth", "keystone"],
        help="noauth scopes requests by the X-Project-ID header; "
        "keystone validates tokens with keystonemiddleware.",
    ),
]


def broker_url(conf: Any) -> str:
    """Return the Celery broker URL: ``broker_url`` or else ``redis_url``,
    through the sentinels when ``sentinel_hosts`` is set."""
    url: str = conf.broker_url or conf.redis_url
    if not conf.sentinel_hosts:
        return url
    return sentinel_broker_url(url, sentinel_addresses(conf.sentinel_hosts))


def broker_transport_options(conf: Any) -> dict[str, Any]:
    """Return the broker transport options configuration adds (Sentinel's)."""
    if not conf.sentinel_hosts:
        return {}
    return {"master_name": sentinel_master(conf), "sentinel_kwargs": sentinel_kwargs(conf)}


def sentinel_master(conf: Any) -> str:
    """Return the name of the Sentinel-managed master, or raise ValueError."""
    if not conf.sentinel_master:
        raise ValueError("sentinel_hosts is set but sentinel_master is not")
    master: str = conf.sentinel_master
    return master


def sentinel_kwargs(conf: Any) -> dict[str, Any]:
    """Return the connection options of the sentinels themselves."""
    timeout = conf.sentinel_socket_timeout_seconds
    # No retry of a call to one sentinel: the next sentinel is the retry.
    # (redis-py's default, 10 retries with backoff, spent ~4 s on a sentinel
    # that was down each time kombu made a connection pool.)
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": None,
    }
    if conf.sentinel_password:
        options["password"] = conf.sentinel_password
    return options


def sentinel_addresses(hosts: list[str]) -> list[tuple[str, int]]:
    """Return [(host, port)] for ``host:port`` items; the port defaults to 26379."""
    addresses: list[tuple[str, int]] = []
    for item in hosts:
        parts = urlsplit("//" + item.strip())
        try:
            port = parts.port or 26379
        except ValueError as exc:
            raise ValueError(f"sentinel_hosts: bad port in {item!r}") from exc
        if not parts.hostname or parts.path or parts.username or parts.password:
            raise ValueError(f"sentinel_hosts: {item!r} is not host:port")
        addresses.append((parts.hostname, port))
    return addresses


def sentinel_broker_url(url: str, addresses: list[tuple[str, int]]) -> str:
    """Return kombu's Sentinel broker URL: one ``sentinel://`` URL per address,
    each with the credentials, database and query of the Redis ``url``."""
    parts = urlsplit(url)
    if parts.scheme != "redis":
        raise ValueError(f"sentinel_hosts needs a redis:// URL, not {parts.scheme}://")
    userinfo, at, _ = parts.netloc.rpartition("@")
    path = parts.path if parts.path.strip("/") else "/0"
    query = f"?{parts.query}" if parts.query else ""
    return ";".join(
        f"sentinel://{userinfo}{at}{_netloc(host, port)}{path}{query}" for host, port in addresses
    )


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
