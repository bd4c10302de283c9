"""Options of the webhook sink: network policy, signing, endpoint protection."""

from oslo_config import cfg

GROUP = "webhook"

OPTS = [
    cfg.ListOpt(
        "allowed_networks",
        default=[],
        help="CIDRs webhooks may reach although the default policy "
        "refuses them (loopback, private, link-local, ...). "
        "`notifier dev` allows loopback; production should not.",
    ),
    cfg.IntOpt(
        "secret_rotation_grace_seconds",
        default=86400,
        min=0,
        help="After a secret rotation, how long deliveries are also "
        "signed with the previous secret.",
    ),
    cfg.IntOpt(
        "breaker_failure_threshold",
        default=5,
        min=1,
        help="Consecutive failed deliveries to one endpoint that open its circuit breaker.",
    ),
    cfg.IntOpt(
        "breaker_cooloff_seconds",
        default=30,
        min=1,
        help="How long an open breaker holds deliveries before a probe; "
        "doubles after each failed probe.",
    ),
    cfg.IntOpt(
        "breaker_max_cooloff_seconds", default=900, min=1, help="Longest hold between probes."
    ),
    cfg.IntOpt(
        "disable_after_failing_seconds",
        default=3 * 86400,
        min=60,
        help="A subscription whose endpoint has failed without a "
        "success for this long is disabled; its deliveries are "
        "held until it is enabled again.",
    ),
    cfg.IntOpt(
        "endpoint_concurrency",
        default=8,
        min=1,
        help="Most tasks delivering to one endpoint at once across all "
        "workers, so one slow endpoint cannot occupy the fleet. An "
        "endpoint gets it once it answers in time (it is proven); "
        "until then, and after a timeout, it gets one.",
    ),
    cfg.IntOpt(
        "proven_seconds",
        default=600,
        min=1,
        help="How long an answer in time keeps an endpoint proven (renewed by every success).",
    ),
]
