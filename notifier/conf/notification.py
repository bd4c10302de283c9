"""Options of delivery in ``[notification]``: webhook timeouts and pools,
fan-out pages and budgets, task sizes, attempt logs.

The e-mail sink, confirmations and retention add their own options to this
group (``email.py``, ``confirmation.py``, ``limits.py``)."""

from oslo_config import cfg

GROUP = "notification"

OPTS = [
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
