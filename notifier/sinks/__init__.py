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

Built-in sinks are named by the scheme table, ``notifier.core.schemes``;
packages may add more through the ``notifier.sinks`` entry point group (key:
URI scheme), which is read first.
"""

import dataclasses
import functools
import importlib
from collections.abc import Callable
from importlib import metadata
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from notifier import errors
from notifier.core import schemes
from notifier.core.schemes import scheme_of

HIDDEN_PASSWORD = "***"

__all__ = [
    "BUILTIN_SINKS",
    "DeliveryReport",
    "Notification",
    "RequestContext",
    "Sink",
    "SinkRegistry",
    "prepare_subscription",
    "public_subscriber",
    "shown_subscriber",
    "release_subscription",
    "renew_subscription",
    "scheme_of",
    "sink_class",
    "validate_subscriber",
]

#: scheme -> "module:attribute" of its sink class, from the scheme table.
BUILTIN_SINKS = {name: scheme.sink for name, scheme in schemes.SCHEMES.items()}


@dataclasses.dataclass(frozen=True)
class Notification:
    """One thing to deliver: a message (or a control message) to a subscription."""

    delivery_id: str
    subscription: dict[str, Any]
    message: dict[str, Any]
    payload: dict[str, Any]
    attempt: int
    # ``payload`` as JSON (UTF-8), rendered once per message when a batch
    # delivers it to several subscribers; None: the sink renders it.
    rendered: bytes | None = None


@dataclasses.dataclass(frozen=True)
class DeliveryReport:
    """What a successful delivery returned."""

    status: int | None = None
    response_body: str | None = None


class Sink(Protocol):
    """What the registry hands out: one instance per sink class and process."""

    def deliver(self, notification: Notification) -> DeliveryReport: ...


def _load(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


@functools.lru_cache(maxsize=64)
def _sink_class(scheme: str) -> Any:
    # Scanning entry points reads every installed package's metadata: it was
    # 75% of worker CPU when done per delivery, so it is done once per scheme.
    for entry in metadata.entry_points(group="notifier.sinks", name=scheme):
        return entry.load()
    if scheme in BUILTIN_SINKS:
        return _load(BUILTIN_SINKS[scheme])
    return None


def sink_class(scheme: str) -> Any:
    """Return the sink class serving ``scheme`` or raise ValidationError."""
    cls = _sink_class(scheme)
    if cls is not None:
        return cls
    raise errors.ValidationError(
        f"Subscriber scheme {scheme!r} is not supported.", field="subscriber"
    )


def validate_subscriber(
    subscriber: object,
    options: dict[str, Any],
    conf: Any,
    resolver: Callable[..., Any] | None = None,
) -> None:
    """Check a subscriber URI and its options at subscription creation;
    ``resolver``: see the module docstring (None: the system resolver)."""
    scheme = schemes.check_enabled(subscriber, conf.transport.subscriber_types)
    injected = {} if resolver is None else {"resolver": resolver}
    sink_class(scheme).validate(subscriber, options, conf, **injected)


class SinkRegistry:
    """One sink instance per scheme, built on first use in this process."""

    def __init__(self, conf: Any) -> None:
        self.conf = conf
        self._sinks: dict[Any, Any] = {}

    def for_subscriber(self, subscriber: str) -> Any:
        """Return the sink delivering to ``subscriber`` (ValidationError: none)."""
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
    roles: tuple[str, ...] = ()
    authenticated: bool = False


def prepare_subscription(
    fields: dict[str, Any], context: RequestContext, conf: Any
) -> dict[str, Any]:
    """Let the subscriber's sink prepare a new subscription's fields."""
    hook = getattr(sink_class(scheme_of(fields["subscriber"])), "prepare_subscription", None)
    if not hook:
        return fields
    prepared: dict[str, Any] = hook(fields, context, conf)
    return prepared


def release_subscription(record: dict[str, Any], conf: Any) -> None:
    """Let the subscriber's sink free what it held for a deleted subscription."""
    try:
        cls = sink_class(scheme_of(record["subscriber"]))
    except errors.ValidationError:
        return
    hook = getattr(cls, "release_subscription", None)
    if hook:
        hook(record, conf)


def renew_subscription(
    record: dict[str, Any], before: dict[str, Any], context: RequestContext, conf: Any
) -> dict[str, Any]:
    """Let the sinks of a patched subscription's old and new subscriber renew
    what they hold; return the record to store."""
    classes: list[Any] = []
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


def shown_subscriber(subscriber: str) -> str:
    """Return the subscriber URI as pages and other projects see it: as
    :func:`public_subscriber`, without the password of its userinfo
    (``http://user:pass@host`` is a credential, as ``post_headers`` are)."""
    shown = public_subscriber(subscriber)
    try:
        parts = urlsplit(shown)
        password = parts.password
    except ValueError:
        return shown.split("@", 1)[-1] if "@" in shown else shown
    if "@" not in parts.netloc:
        return shown
    _, host = parts.netloc.rsplit("@", 1)
    # A lone user name may be the token (``https://TOKEN@host``): hide it too.
    hidden = f"{parts.username}:{HIDDEN_PASSWORD}" if password is not None else HIDDEN_PASSWORD
    return urlunsplit(parts._replace(netloc=f"{hidden}@{host}"))


def public_subscriber(subscriber: str) -> str:
    """Return the subscriber URI as the API shows it."""
    try:
        cls = sink_class(scheme_of(subscriber))
    except errors.ValidationError:
        return subscriber
    hook = getattr(cls, "public_subscriber", None)
    if not hook:
        return subscriber
    shown: str = hook(subscriber)
    return shown
