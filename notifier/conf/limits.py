"""Retention, per-project quotas and slow-client deadlines: what keeps one
tenant (or one slow client) from filling Redis or tying up the API."""

from oslo_config import cfg

RETENTION_OPTS = [
    cfg.IntOpt(
        "dead_letter_ttl_seconds",
        default=7 * 86400,
        min=60,
        help="How long a dead letter is kept after its delivery died (it can "
        "be replayed until then). Dead letters hold whole messages.",
    ),
    cfg.IntOpt(
        "max_dead_letters_per_subscription",
        default=1000,
        min=1,
        help="Dead letters kept per subscription; a new one drops the oldest, "
        "so a subscription that fails everything cannot grow Redis past this.",
    ),
    cfg.IntOpt(
        "subscription_log_ttl_seconds",
        default=7 * 86400,
        min=60,
        help="How long a subscription's attempt log is kept after its last "
        "attempt (it also keeps at most attempt_log_length entries).",
    ),
]

QUOTA_OPTS = [
    cfg.IntOpt(
        "max_subscriptions_per_project",
        default=10000,
        min=0,
        help="Live subscriptions a project may have, on queues and topics "
        "(a topic subscription counts for the subscriber's project). 0: no "
        "limit. Creating one more answers 403 naming this option.",
    ),
    cfg.IntOpt(
        "max_stored_bytes_per_project",
        default=1 << 30,
        min=0,
        help="Bytes of messages and dead letters a project may store in "
        "Redis (stored JSON; a topic's messages count for its owner, dead "
        "letters for their subscription's project). 0: no limit. A post "
        "that would pass it answers 403 naming this option; dead letters "
        "past it are dropped with a warning in the log.",
    ),
]

API_OPTS = [
    cfg.FloatOpt(
        "client_header_timeout_seconds",
        default=10.0,
        min=0.1,
        help="Time a client has to send a request's line and headers, from "
        "when its connection is accepted (or, kept alive, from its next "
        "byte). The API reads headers without tying up a thread, and closes "
        "connections that take longer (slowloris).",
    ),
    cfg.FloatOpt(
        "client_body_timeout_seconds",
        default=60.0,
        min=0.1,
        help="Time a client has to send a request's body once its headers "
        "are in (408 after it), and to take each response write.",
    ),
]

GROUPS = {"notification": RETENTION_OPTS, "quota": QUOTA_OPTS, "api": API_OPTS}
