"""Options of what the API accepts: sizes, TTLs, page sizes, subscriber schemes."""

from oslo_config import cfg

from notifier.core import schemes

GROUP = "transport"

OPTS = [
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
        "max_message_delay",
        default=900,
        min=0,
        help="Largest message delay (a message's ``delay``, a queue's "
        "``_default_message_delay``), seconds.",
    ),
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
    cfg.IntOpt(
        "max_messages_per_claim_or_pop",
        default=20,
        min=1,
        help="Most messages one claim or one pop takes (a claim's default limit).",
    ),
    cfg.IntOpt(
        "default_claim_ttl", default=300, min=1, help="Claim TTL when none is named, seconds."
    ),
    cfg.IntOpt(
        "default_claim_grace", default=60, min=0, help="Claim grace when none is named, seconds."
    ),
    cfg.IntOpt("min_claim_ttl", default=60, min=1, help="Smallest claim TTL, seconds."),
    cfg.IntOpt("max_claim_ttl", default=43200, min=1, help="Largest claim TTL, seconds."),
    cfg.IntOpt("min_claim_grace", default=60, min=0, help="Smallest claim grace, seconds."),
    cfg.IntOpt("max_claim_grace", default=43200, min=0, help="Largest claim grace, seconds."),
    cfg.ListOpt(
        "subscriber_types",
        default=list(schemes.NAMES),
        help="Subscriber URI schemes accepted at subscription creation.",
    ),
]
