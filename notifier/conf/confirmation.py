"""Options of subscription confirmation and pre-signed URLs.

Zaqar's names are kept: ``[notification] require_confirmation``,
``external_confirmation_url`` and ``[signed_url] secret_key`` carry over from
a Zaqar config file. This module registers four groups (``GROUPS``);
``[confirmation]`` holds notifier's own additions.
"""

from oslo_config import cfg

NOTIFICATION_OPTS = [
    cfg.BoolOpt(
        "require_confirmation",
        default=False,
        help="New webhook and e-mail subscriptions are stored "
        "unconfirmed and receive nothing until the subscriber "
        "confirms through the pre-signed URL sent to it (Zaqar's "
        "option, default false as in Zaqar). Needs [signed_url] "
        "secret_key: the service refuses to start without it.",
    ),
    cfg.StrOpt(
        "external_confirmation_url",
        default=None,
        help="The confirmation page linked from confirmation e-mails "
        "(templates/confirmation.html hosted elsewhere); the "
        "signed parameters are appended as its query string. "
        "Default: the page this API serves itself at "
        "<public_url>/v2/confirmation.",
    ),
    cfg.IntOpt(
        "confirmations_per_subscriber",
        default=30,
        min=0,
        help="At most this many confirmation messages (subscribe or "
        "unsubscribe) go from one project to one subscriber endpoint "
        "(scheme and host, or e-mail address) per "
        "confirmation_rate_window_seconds; beyond it, subscribing or "
        "repointing a subscription there is refused with 429. 0: no limit.",
    ),
    cfg.IntOpt(
        "confirmation_rate_window_seconds",
        default=3600,
        min=1,
        help="The fixed window of confirmations_per_subscriber.",
    ),
    cfg.StrOpt(
        "confirmation_driver",
        default="noop",
        help="Name of the driver (entry point group "
        "notifier.confirmation_drivers) that checks the optional "
        "extra_spec of a confirm request: noop accepts every "
        "confirmation, mac requires extra_spec."
        "message_authentication_code (see [confirmation_mac]).",
    ),
]

SIGNED_URL_OPTS = [
    cfg.StrOpt(
        "secret_key",
        default=None,
        secret=True,
        help="Key of the HMAC-SHA256 signatures of pre-signed URLs "
        "(confirmation links, POST .../share). Unset: pre-signed "
        "URLs are disabled. Changing it invalidates every URL "
        "handed out.",
    ),
    cfg.IntOpt(
        "confirmation_url_ttl_seconds",
        default=7 * 86400,
        min=60,
        help="How long a confirmation URL (and its confirmation message's retries) stays valid.",
    ),
]

MAC_OPTS = [
    cfg.StrOpt(
        "secret_key",
        default=None,
        secret=True,
        help="Key of the mac confirmation driver: a confirm request "
        "must carry extra_spec.message_authentication_code = hex "
        "HMAC-SHA256(key, subscription id), which the operator's "
        "own channel (an SMS gateway, a portal) gives the "
        "subscriber.",
    ),
]

CONFIRMATION_OPTS = [
    cfg.BoolOpt(
        "include_portal_link",
        default=False,
        help="SubscriptionConfirmation messages carry a pre-signed link "
        "to the subscription's portal (the webhook payload's PortalURL, "
        "a line of the e-mail), minted for that subscription as POST "
        ".../subscriptions/{id}/portal mints it. Needs [signed_url] "
        "secret_key. Whoever holds the link sees and manages the "
        "subscription's deliveries until the link expires.",
    ),
    cfg.IntOpt(
        "portal_link_ttl_seconds",
        default=7 * 86400,
        min=60,
        max=90 * 86400,
        help="How long the portal link of a confirmation message stays "
        "valid (at most 90 days, the longest portal link).",
    ),
]

GROUPS = {
    "notification": NOTIFICATION_OPTS,
    "signed_url": SIGNED_URL_OPTS,
    "confirmation_mac": MAC_OPTS,
    "confirmation": CONFIRMATION_OPTS,
}
