"""Options of the default retry policy (``[retry]``): what applies where neither
a queue nor a subscription sets a ``_retry_policy``."""

from typing import Any

from oslo_config import cfg

from notifier.core.retry import RetryPolicy

GROUP = "retry"

OPTS = [
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


def retry_defaults(conf: Any) -> RetryPolicy:
    """Return the RetryPolicy used where neither queue nor subscription sets one."""
    return RetryPolicy(**{opt.dest: conf.retry[opt.dest] for opt in OPTS})
