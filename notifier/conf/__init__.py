"""Every configuration option of notifier, registered in one place.

Core groups are defined here; each feature with options of its own keeps them
in a module of this package (``notifier/conf/email.py`` ...) exposing
``GROUP`` and ``OPTS`` (or ``GROUPS``, {group: opts}, for options in several
groups), listed in ``FEATURE_MODULES``.

Option names follow OpenStack Zaqar's where the meaning is the same
(``[notification] smtp_mode``, ``[signed_url] secret_key``,
``[transport] default_subscription_ttl`` ...) so Zaqar config files carry over.
Units are part of the name where Zaqar did not fix the name already.
"""

from urllib.parse import urlsplit

from oslo_config import cfg

DEFAULT_OPTS = [
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

API_OPTS = [
    cfg.HostAddressOpt("bind_host", default="127.0.0.1", help="Address the API listens on."),
    cfg.PortOpt("bind_port", default=8888, help="Port the API listens on."),
    cfg.IntOpt("workers", default=2, min=1, help="Gunicorn worker processes for `notifier api`."),
    cfg.StrOpt(
        "public_url",
        default=None,
        help="Base URL clients reach the API at, used in links sent to "
        "subscribers. Defaults to http://bind_host:bind_port.",
    ),
]

TRANSPORT_OPTS = [
    cfg.IntOpt(
        "max_messages_post_size",
        default=262144,
        min=1024,
        help="Largest accepted request body for message posts, bytes.",
    ),
    cfg.IntOpt(
        "max_request_body_size",
        default=65536,
        min=1024,
        help="Largest accepted body for other requests, bytes.",
    ),
    cfg.IntOpt(
        "max_messages_per_post", default=20, min=1, help="Most messages accepted in one POST."
    ),
    cfg.IntOpt("max_message_ttl", default=1209600, min=60, help="Largest message TTL, seconds."),
    cfg.IntOpt(
        "default_message_ttl",
        default=3600,
        min=60,
        help="Message TTL when a message names none, seconds.",
    ),
    cfg.IntOpt(
        "default_subscription_ttl",
        default=3600,
        min=60,
        help="Subscription TTL when a request names none, seconds.",
    ),
    cfg.IntOpt(
        "max_subscription_ttl",
        default=10 * 365 * 86400,
        min=60,
        help="Largest subscription TTL, seconds.",
    ),
    cfg.IntOpt(
        "max_queue_metadata",
        default=65536,
        min=1024,
        help="Largest queue metadata document, bytes.",
    ),
    cfg.IntOpt("max_page_size", default=20, min=1, help="Most items a list request returns."),
    cfg.ListOpt(
        "subscriber_types",
        default=["http", "https", "mailto", "trust+http", "trust+https"],
        help="Subscriber URI schemes accepted at subscription creation.",
    ),
]

NOTIFICATION_OPTS = [
    cfg.IntOpt(
        "webhook_connect_timeout_seconds",
        default=5,
        min=1,
        help="TCP connect timeout of a webhook delivery.",
    ),
    cfg.IntOpt(
        "webhook_read_timeout_seconds",
        default=10,
        min=1,
        help="Read timeout of a webhook delivery.",
    ),
    cfg.IntOpt(
        "webhook_pool_maxsize",
        default=4,
        min=1,
        help="Keep-alive connections kept per endpoint per worker process.",
    ),
    cfg.IntOpt(
        "fanout_page_size",
        default=500,
        min=1,
        help="Subscriptions read per fan-out page; the next page is a "
        "new task, so a queue with 100,000 subscriptions never sits "
        "in one task's memory.",
    ),
    cfg.IntOpt(
        "filter_budget_per_fanout",
        default=500_000,
        min=1,
        help="Filter-policy work one fan-out task (a page of subscriptions "
        "against the messages of one post) may spend, in units of one value "
        "checked by one operator family (at most ~0.5 microseconds each, see "
        "bench/filter_hostile.py): the default is ~0.25 s of CPU at worst. "
        "Evaluations are charged their worst case before they run, cheapest "
        "first; one that would overrun the budget is not run and its "
        "delivery is skipped (attempt outcome 'skipped', error "
        "'filter_budget'), so a costly policy cannot take a worker's CPU "
        "from other tenants.",
    ),
    cfg.IntOpt(
        "deliveries_per_task",
        default=50,
        min=1,
        help="Deliveries carried by one Celery task (a task costs "
        "~1.5 ms of worker CPU, more than a keep-alive POST).",
    ),
    cfg.IntOpt(
        "attempt_log_length",
        default=1000,
        min=10,
        help="Attempts kept per subscription and per message.",
    ),
    cfg.IntOpt(
        "attempt_log_ttl_seconds",
        default=3600,
        min=60,
        help="How long a per-message attempt log is kept after its last "
        "attempt. Per-subscription logs are capped by "
        "attempt_log_length instead; dead letters keep their whole "
        "history. Together they keep Redis memory bounded under a "
        "steady load.",
    ),
]

WORKER_OPTS = [
    cfg.IntOpt(
        "concurrency",
        default=None,
        min=1,
        help="Worker pool size: processes (prefork; default: twice the "
        "cores, so a process waiting on a slow endpoint leaves the "
        "cores busy) or threads (threads; default 16).",
    ),
    cfg.StrOpt(
        "pool",
        default="prefork",
        choices=["prefork", "threads"],
        help="Celery pool. prefork uses every core from one worker; "
        "threads keeps many deliveries in flight per process: run "
        "one threads worker per core (e.g. compose --scale). "
        "prefork measured faster (bench/RESULTS.md).",
    ),
    cfg.IntOpt(
        "endpoints_in_parallel",
        default=8,
        min=1,
        help="A task delivers to this many endpoints side by side (each "
        "endpoint's deliveries in order), so a slow endpoint does "
        "not hold up the others in the same task.",
    ),
    cfg.IntOpt(
        "visibility_timeout_seconds",
        default=45,
        min=5,
        help="A task unacknowledged this long after a worker took it is "
        "redelivered: how soon a killed worker's tasks come back. A "
        "task starts no delivery later than this less one attempt "
        "(webhook connect + read timeout) and 5 s, and leaves the rest "
        "to the retry schedule, so it never runs this long.",
    ),
    cfg.IntOpt(
        "reconcile_after_seconds",
        default=50,
        min=5,
        help="A task sent this long ago that no worker has started, "
        "while the task queues are empty, was lost between the "
        "broker and a worker (celery#4354): the scheduler sends it "
        "again. Keep it above visibility_timeout_seconds, so "
        "kombu's own redelivery goes first.",
    ),
    cfg.IntOpt(
        "unacked_restore_interval_seconds",
        default=2,
        min=1,
        help="How often kombu looks for tasks of dead workers to "
        "restore (kombu's default 10 s x 10 means ~100 s).",
    ),
    cfg.StrOpt(
        "heartbeat_file",
        default=None,
        help="File the worker's consumer loop touches while alive; "
        "`notifier healthcheck worker` checks its age.",
    ),
    cfg.StrOpt(
        "scheduler_heartbeat_file",
        default=None,
        help="File the scheduler loop touches while alive.",
    ),
    cfg.IntOpt(
        "heartbeat_max_age_seconds",
        default=60,
        min=5,
        help="A heartbeat older than this means the role is stuck.",
    ),
]

RETRY_OPTS = [
    cfg.IntOpt(
        "retries_with_no_delay",
        default=3,
        min=0,
        max=100,
        help="Default immediate retries (phase 1).",
    ),
    cfg.IntOpt(
        "minimum_delay_retries",
        default=3,
        min=0,
        max=100,
        help="Default pre-backoff retries, minimum_delay apart (phase 2).",
    ),
    cfg.IntOpt(
        "minimum_delay", default=5, min=0, max=86400, help="Default minimum delay, seconds."
    ),
    cfg.IntOpt(
        "maximum_delay", default=30, min=0, max=86400, help="Default maximum delay, seconds."
    ),
    cfg.IntOpt(
        "backoff_retries",
        default=10,
        min=0,
        max=100,
        help="Default backoff-phase retries (phase 3).",
    ),
    cfg.IntOpt(
        "maximum_delay_retries",
        default=3,
        min=0,
        max=100,
        help="Default post-backoff retries, maximum_delay apart (phase 4).",
    ),
    cfg.StrOpt(
        "retry_backoff_function",
        default="linear",
        choices=["linear", "arithmetic", "geometric", "exponential"],
        help="Default backoff function.",
    ),
]

CONF_GROUPS = {
    None: DEFAULT_OPTS,
    "api": API_OPTS,
    "transport": TRANSPORT_OPTS,
    "notification": NOTIFICATION_OPTS,
    "worker": WORKER_OPTS,
    "retry": RETRY_OPTS,
}


FEATURE_MODULES = ["webhook", "email", "trustee", "metrics", "confirmation", "limits"]


def all_groups():
    """Return {group: [opts]} for the core groups and every feature module."""
    import importlib

    groups = {group: list(opts) for group, opts in CONF_GROUPS.items()}
    for name in FEATURE_MODULES:
        module = importlib.import_module(f"notifier.conf.{name}")
        for group, opts in (getattr(module, "GROUPS", None) or {module.GROUP: module.OPTS}).items():
            groups.setdefault(group, []).extend(opts)
    return groups


def register_opts(conf):
    """Register every option of notifier on ``conf``."""
    for group, opts in all_groups().items():
        conf.register_opts(opts, group=group)


def list_opts():
    """List options for oslo-config-generator (entry point ``oslo.config.opts``)."""
    return list(all_groups().items())


def load_conf(args=(), default_config_files=None):
    """Build a fresh ConfigOpts from command-line style ``args``."""
    conf = cfg.ConfigOpts()
    register_opts(conf)
    conf(list(args), project="notifier", default_config_files=default_config_files or [])
    return conf


def broker_url(conf):
    """Return the Celery broker URL: ``broker_url`` or else ``redis_url``,
    through the sentinels when ``sentinel_hosts`` is set."""
    url = conf.broker_url or conf.redis_url
    if not conf.sentinel_hosts:
        return url
    return sentinel_broker_url(url, sentinel_addresses(conf.sentinel_hosts))


def broker_transport_options(conf):
    """Return the broker transport options configuration adds (Sentinel's)."""
    if not conf.sentinel_hosts:
        return {}
    return {"master_name": sentinel_master(conf), "sentinel_kwargs": sentinel_kwargs(conf)}


def sentinel_master(conf):
    """Return the name of the Sentinel-managed master, or raise ValueError."""
    if not conf.sentinel_master:
        raise ValueError("sentinel_hosts is set but sentinel_master is not")
    return conf.sentinel_master


def sentinel_kwargs(conf):
    """Return the connection options of the sentinels themselves."""
    timeout = conf.sentinel_socket_timeout_seconds
    # No retry of a call to one sentinel: the next sentinel is the retry.
    # (redis-py's default, 10 retries with backoff, spent ~4 s on a sentinel
    # that was down each time kombu made a connection pool.)
    options = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry": None}
    if conf.sentinel_password:
        options["password"] = conf.sentinel_password
    return options


def sentinel_addresses(hosts):
    """Return [(host, port)] for ``host:port`` items; the port defaults to 26379."""
    addresses = []
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


def sentinel_broker_url(url, addresses):
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


def _netloc(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def retry_defaults(conf):
    """Return the RetryPolicy used where neither queue nor subscription sets one."""
    from notifier.core.retry import RetryPolicy

    return RetryPolicy(**{opt.dest: conf.retry[opt.dest] for opt in RETRY_OPTS})
