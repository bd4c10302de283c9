"""Options of the operator console (``/console``, ``notifier.web.console``)."""

from oslo_config import cfg

GROUP = "console"

OPTS = [
    cfg.BoolOpt(
        "enabled",
        default=False,
        help="Serve the operator console at /console under auth_strategy = noauth, "
        "reached through pre-signed console links (`notifier console-link`; they "
        "need [signed_url] secret_key). Under auth_strategy = keystone the console "
        "is always served and takes a Keystone token (or a console link). "
        "`notifier dev` turns it on.",
    ),
    cfg.IntOpt(
        "max_subscriptions",
        default=500,
        min=1,
        help="The most subscriptions of one source a console page reads (the "
        "overview, dead letters, endpoints and Explain); the page says when a "
        "source has more.",
    ),
]
