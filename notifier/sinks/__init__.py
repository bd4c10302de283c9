"""Sinks deliver one notification each; they are found by subscriber URI scheme.

A sink class provides:

- ``validate(subscriber, options, conf)`` (classmethod): raise
  ``ValidationError`` for a subscriber or options it can never serve. Called
  at subscription creation, so a bad subscriber is a 400 then, not a failure
  at delivery. A caller may inject a ``resolver`` keyword (with
  ``socket.getaddrinfo``'s signature, as tests do): the built-in sinks take
  it; it is passed only when given.
- ``__init__(conf)``: build clients (connection pools); one instance per
  worker process.
- ``deliver(notification) -> DeliveryReport``: deliver, or raise
  ``TransientDeliveryError`` / ``PermanentDeliveryError``.

Optional lifecycle hooks (classmethods), for sinks that hold resources per
subscription (the Mistral sink's Keystone trust):

- ``prepare_subscription(fields, context, conf) -> fields``: before a new
  subscription is stored; may rewrite ``subscriber`` (e.g. embed a trust id).
  ``context`` is a RequestContext (project, user, token, roles).
- ``release_subscription(record, conf)``: after a subscription is deleted,
  or after a PATCH replaced what its stored subscriber held.
- ``renew_subscription(record, before, context, conf) -> record``: after a
  PATCH is applied to ``record`` (``before`` is the stored one), before it is
  stored; called for the sinks of both subscribers (e.g. a new trust for a
  new TTL).
- ``public_subscriber(subscriber) -> str``: the subscriber as API output
  shows it (secrets such as trust ids removed).

Built-in sinks are listed here; packages may add more through the
``notifier.sinks`` entry point group (key: URI scheme).
"""

import dataclasses
import functools
import importlib
from importlib import metadata
from urllib.parse import urlsplit

from notifier import errors

BUILTIN_SINKS = {
    "http": "notifier.sinks.webhook:WebhookSink",
    "https": "notifier.sinks.webhook:WebhookSink",
    "mailto": "notifier.sinks.email:EmailSink",
    "trust+http": "notifier.sinks.trust:TrustSink",
    "trust+https": "notifier.sinks.trust:TrustSink",
}


@dataclasses.dataclass(frozen=True)
class Notification:
    """One thing to deliver: a message (or a control message) to a subscription."""

    delivery_id: str
    subscription: dict
    message: dict
    payload: dict
    attempt: int


@dataclasses.dataclass(frozen=True)
class DeliveryReport:
    """What a successful delivery returned."""

    status: int | None = None
    response_body: str | None = None


def scheme_of(subscriber):
    """Return the lower-case URI scheme of a subscriber."""
    try:
        return urlsplit(subscriber).scheme.lower()
    except ValueError as exc:  # e.g. "Invalid IPv6 URL"
        raise errors.ValidationError(
            f"Subscriber is not a valid URI: {exc}.", field="subscriber"
        ) from exc


def _load(target):
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


@functools.lru_cache(maxsize=64)
def _sink_class(scheme):
    # Scanning entry points reads every installed package's metadata: it was
    # 75% of worker CPU when done per delivery, so it is done once per scheme.
    for entry in metadata.entry_points(group="notifier.sinks", name=scheme):
        return entry.load()
    if scheme in BUILTIN_SINKS:
        return _load(BUILTIN_SINKS[scheme])
    return None


def sink_class(scheme):
    """Return the sink class serving ``scheme`` or raise ValidationError."""
    cls = _sink_class(scheme)
    if cls is not None:
        return cls
    raise errors.ValidationError(
        f"Subscriber scheme {scheme!r} is not supported.", field="subscriber"
    )


def validate_subscriber(subscriber, options, conf, resolver=None):
    """Check a subscriber URI and its options at subscription creation;
    ``resolver``: see the module docstring (None: the system resolver)."""
    if not isinstance(subscriber, str) or not subscriber:
        raise errors.ValidationError("subscriber must be a non-empty string.", field="subscriber")
    scheme = scheme_of(subscriber)
    if scheme not in conf.transport.subscriber_types:
        raise errors.ValidationError(
            f"Subscriber scheme {scheme!r} is not one of the enabled types "
            f"{', '.join(conf.transport.subscriber_types)}.",
            field="subscriber",
        )
    injected = {} if resolver is None else {"resolver": resolver}
    sink_class(scheme).validate(subscriber, options, conf, **injected)


class SinkRegistry:
    """One sink instance per scheme, built on first use in this process."""

    def __init__(self, conf):
        self.conf = conf
        self._sinks = {}

    def for_subscriber(self, subscriber):
        scheme = scheme_of(subscriber)
        cls = sink_class(scheme)
        sink = self._sinks.get(cls)
        if sink is None:
            sink = self._sinks[cls] = cls(self.conf)
        return sink


@dataclasses.dataclass(frozen=True)
class RequestContext:
    """Who asked for a subscription: filled from the request's auth headers."""

    project_id: str
    user_id: str | None = None
    auth_token: str | None = None
    roles: tuple = ()
    authenticated: bool = False


def prepare_subscription(fields, context, conf):
    """Let the subscriber's sink prepare a new subscription's fields."""
    hook = getattr(sink_class(scheme_of(fields["subscriber"])), "prepare_subscription", None)
    return hook(fields, context, conf) if hook else fields


def release_subscription(record, conf):
    """Let the subscriber's sink free what it held for a deleted subscription."""
    try:
        cls = sink_class(scheme_of(record["subscriber"]))
    except errors.ValidationError:
        return
    hook = getattr(cls, "release_subscription", None)
    if hook:
        hook(record, conf)


def renew_subscription(record, before, context, conf):
    """Let the sinks of a patched subscription's old and new subscriber renew
    what they hold; return the record to store."""
    classes = []
    for subscriber in (before["subscriber"], record["subscriber"]):
        try:
            cls = sink_class(scheme_of(subscriber))
        except errors.ValidationError:
            continue
        if cls not in classes:
            classes.append(cls)
    for cls in classes:
        hook = getattr(cls, "renew_subscription", None)
        if hook:
            record = hook(record, before, context, conf)
    return record


def public_subscriber(subscriber):
    """Return the subscriber URI as the API shows it."""
    try:
        cls = sink_class(scheme_of(subscriber))
    except errors.ValidationError:
        return subscriber
    hook = getattr(cls, "public_subscriber", None)
    return hook(subscriber) if hook else subscriber
