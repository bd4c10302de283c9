"""The subscriber URI schemes notifier serves: one table, read by every layer.

    scheme        kind     sink (module:class)                  confirms
    http          webhook  notifier.sinks.webhook:WebhookSink   yes
    https         webhook  notifier.sinks.webhook:WebhookSink   yes
    mailto        email    notifier.sinks.email:EmailSink       yes
    trust+http    trust    notifier.sinks.trust:TrustSink       no
    trust+https   trust    notifier.sinks.trust:TrustSink       no

``kind`` is a topic's subscribe protocol (``_allowed_subscribe_protocols``)
and the ``sink`` label of the delivery metrics. ``confirms``: with
``[notification] require_confirmation`` a new subscriber of the scheme is
sent a confirmation; trust+ subscribers are the creator's own workflows,
authorised by their Keystone trust. The sink registry
(``notifier.sinks``) loads the classes named here; a package may serve
another scheme through the ``notifier.sinks`` entry point group, and a sink
class may opt in or out of confirmation with ``requires_confirmation``.
``[transport] subscriber_types`` defaults to every scheme here.

Pure: names only, nothing is imported from the sinks.
"""

import dataclasses
from urllib.parse import urlsplit

from notifier.errors import ValidationError

#: Topic subscribe protocols, in the order the API lists them.
KINDS = ("email", "webhook", "trust")
#: What a trust+ scheme puts before the URL it delivers to.
TRUST_PREFIX = "trust+"


@dataclasses.dataclass(frozen=True)
class Scheme:
    """One subscriber URI scheme and what serves it."""

    name: str
    kind: str
    sink: str  # "module:attribute" of the sink class
    confirms: bool


WEBHOOK_SINK = "notifier.sinks.webhook:WebhookSink"
EMAIL_SINK = "notifier.sinks.email:EmailSink"
TRUST_SINK = "notifier.sinks.trust:TrustSink"

SCHEMES: dict[str, Scheme] = {
    scheme.name: scheme
    for scheme in (
        Scheme("http", "webhook", WEBHOOK_SINK, confirms=True),
        Scheme("https", "webhook", WEBHOOK_SINK, confirms=True),
        Scheme("mailto", "email", EMAIL_SINK, confirms=True),
        Scheme("trust+http", "trust", TRUST_SINK, confirms=False),
        Scheme("trust+https", "trust", TRUST_SINK, confirms=False),
    )
}
#: Every built-in scheme, in table order.
NAMES = tuple(SCHEMES)


def scheme_of(subscriber: str) -> str:
    """Return the lower-case URI scheme of a subscriber, or raise ValidationError."""
    try:
        return urlsplit(subscriber).scheme.lower()
    except ValueError as exc:  # e.g. "Invalid IPv6 URL"
        raise ValidationError(f"Subscriber is not a valid URI: {exc}.", field="subscriber") from exc


def lookup(scheme: str) -> Scheme | None:
    """Return the built-in :class:`Scheme` named ``scheme`` (any case), or None."""
    return SCHEMES.get(scheme.lower())


def kind_of(subscriber: str) -> str | None:
    """Return the kind (topic protocol) of a subscriber URI, or None if its
    scheme is not a built-in one. Reads the text before the first ``:``, so
    it never raises."""
    scheme, sep, _ = subscriber.partition(":")
    return kind(scheme) if sep else None


def kind(scheme: str) -> str | None:
    """Return the kind of a built-in scheme (any case), or None."""
    found = lookup(scheme)
    return found.kind if found else None


def confirms(scheme: str) -> bool:
    """Return whether subscribers of ``scheme`` (lower case) confirm by default."""
    found = SCHEMES.get(scheme)
    return found is not None and found.confirms


def check_enabled(subscriber: object, enabled: list[str]) -> str:
    """Return the scheme of ``subscriber`` if it is one of the ``enabled``
    schemes (``[transport] subscriber_types``), else raise ValidationError."""
    if not isinstance(subscriber, str) or not subscriber:
        raise ValidationError("subscriber must be a non-empty string.", field="subscriber")
    scheme = scheme_of(subscriber)
    if scheme not in enabled:
        raise ValidationError(
            f"Subscriber scheme {scheme!r} is not one of the enabled types {', '.join(enabled)}.",
            field="subscriber",
        )
    return scheme
