"""Options of the Prometheus metrics and of logging."""

from oslo_config import cfg

GROUP = "metrics"

OPTS = [
    cfg.StrOpt(
        "multiprocess_dir",
        default=None,
        help="Directory for prometheus_client's multiprocess files "
        "(gunicorn workers, Celery's pool). Each process uses a "
        "subdirectory of its own (ROLE-HOST-PID), so roles and workers "
        "may share the setting. Default: a fresh temporary directory "
        "per process start.",
    ),
    cfg.PortOpt(
        "worker_port",
        default=9102,
        help="Port a worker serves /metrics on (0 turns it off). If it is "
        "taken (another worker on this host), the next 15 ports are "
        "tried, then any free one; the log says which.",
    ),
    cfg.HostAddressOpt(
        "worker_host", default="127.0.0.1", help="Address the worker's metrics server listens on."
    ),
    cfg.BoolOpt(
        "json_logs",
        default=False,
        help="Write logs as one JSON object per line, with message and subscription ids as fields.",
    ),
]
