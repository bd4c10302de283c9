"""Options of the Celery worker and the scheduler: pool, redelivery, heartbeats."""

from oslo_config import cfg

GROUP = "worker"

OPTS = [
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
