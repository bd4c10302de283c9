"""Subscription confirmation messages: pure functions over plain data.

With ``[notification] require_confirmation`` a new webhook or e-mail
subscription is stored unconfirmed and sent a ``SubscriptionConfirmation``
(Zaqar's body, see ``confirmation_payload``) carrying a pre-signed URL for
``PUT /v2/{queues|topics}/{name}/subscriptions/{id}/confirm``. The
subscriber confirms by sending that PUT with the signed fields as headers::

    URL-Signature, URL-Expires, URL-Methods, URL-Paths, X-Project-ID

and the body ``SubscribeBody`` (``{"confirmed": true}``) or
``UnsubscribeBody`` (``{"confirmed": false}``). A person confirms through
``confirmation_link``: the confirmation page with the same fields in its
query string under Zaqar's names (``Signature``, ``Methods``, ``Paths``,
``Project``, ``Expires``, ``Url``, ``Queue``; ``Topic`` for topics), so
Zaqar's sample page and this service's page read the same links.

The URL is signed for the project owning the source (for a topic: the
topic's owner), so the PUT addresses the source without other headers.

A confirmation is bound to the subscriber it was sent to: each one carries a
new random *nonce*, stored on the subscription (``confirmation_nonce``) and
part of the signed path (``.../confirm/{nonce}``). Sending another
confirmation or changing the subscriber replaces the nonce, so an older link
no longer confirms (``link_is_current``). Clients that PUT to
``SubscribeURL`` with the signed fields, as Zaqar's do, need no change.
"""

import datetime
import hmac
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from notifier.core import schemes, signing

SUBSCRIPTION = "SubscriptionConfirmation"
UNSUBSCRIBE = "UnsubscribeConfirmation"
#: Schemes whose subscribers confirm (the scheme table's ``confirms``).
#: Another sink opts in or out with a class attribute ``requires_confirmation``.
CONFIRMING_SCHEMES = frozenset(name for name in schemes.NAMES if schemes.confirms(name))
PAGE_PATH = "/v2/confirmation"
SUBSCRIBE_BODY = {"confirmed": True}
UNSUBSCRIBE_BODY = {"confirmed": False}
#: The subscription field holding the nonce of its one valid confirmation.
NONCE_FIELD = "confirmation_nonce"
#: (project, kind, name) of a queue or topic.
Source = tuple[str, str, str]
#: The payload field of the subscription's portal link (``[confirmation]
#: include_portal_link``), named like ``SubscribeURL``.
PORTAL_URL_FIELD = "PortalURL"
SIGNED_HEADER_NAMES = ("URL-Signature", "URL-Expires", "URL-Methods", "URL-Paths", "X-Project-ID")


class ConfirmationConfigError(ValueError):
    """The configuration cannot work: the service must not start."""


def check_conf(conf: Any) -> None:
    """Raise ConfirmationConfigError for settings that would fail silently."""
    if conf.notification.require_confirmation and not conf.signed_url.secret_key:
        raise ConfirmationConfigError(
            "[notification] require_confirmation = true needs [signed_url] "
            "secret_key: without it no confirmation URL can be signed and no "
            "new webhook or e-mail subscription could ever be confirmed. Set "
            "a long random secret_key (the same on every API process), or "
            "set require_confirmation = false."
        )


def requires_confirmation(scheme: str, sink_class: object = None) -> bool:
    """Return whether subscribers of ``scheme`` must confirm (when required)."""
    default = schemes.confirms(scheme)
    return bool(getattr(sink_class, "requires_confirmation", default))


def base_url(conf: Any) -> str:
    """Return the URL clients reach the API at, without a trailing slash."""
    if conf.api.public_url:
        public: str = conf.api.public_url
        return public.rstrip("/")
    host: str = conf.api.bind_host
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{conf.api.bind_port}"


def api_origin(conf: Any) -> str:
    """Return the origin (``scheme://host[:port]``) of the API's public
    URL: the only place the confirmation page sends signed headers to."""
    parts = urlsplit(base_url(conf))
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def page_url(conf: Any) -> str:
    """Return the confirmation page e-mails link to."""
    external: str | None = conf.notification.external_confirmation_url
    return external or base_url(conf) + PAGE_PATH


def confirm_path(
    source_kind: str, source_name: str, subscription_id: str, nonce: str | None = None
) -> str:
    path = f"/v2/{source_kind}/{source_name}/subscriptions/{subscription_id}/confirm"
    return f"{path}/{nonce}" if nonce else path


def link_is_current(subscription: Mapping[str, Any], nonce: object) -> bool:
    """Return whether a confirm link with ``nonce`` (None: a link without
    one) is the subscription's current confirmation.

    A subscription stored before confirmations carried nonces has none, and
    only its nonce-less links confirm it; any subscriber change or new
    confirmation gives it one.
    """
    stored = subscription.get(NONCE_FIELD)
    if stored is None:
        return nonce is None
    return isinstance(nonce, str) and hmac.compare_digest(stored.encode(), nonce.encode())


def rate_subject(project: str, subscriber: str) -> str:
    """Return what the confirmation rate limit counts by: the asking project
    and the subscriber's endpoint (scheme and host of a URL, the address of
    a mailto:). Per project, so one tenant cannot use up another's budget;
    per endpoint, so varying a path or query does not reset it."""
    scheme, _, rest = subscriber.partition(":")
    rest = rest.split("#", 1)[0]
    if rest.startswith("//"):
        authority = re.split(r"[/?]", rest[2:], maxsplit=1)[0]
        rest = "//" + authority.rsplit("@", 1)[-1].lower()
    elif schemes.kind(scheme) == "email":
        rest = rest.split("?", 1)[0].lower()
    return f"{project}\n{scheme.lower()}:{rest}"


def expiry(now: float, ttl_seconds: float) -> datetime.datetime:
    """Return the naive-UTC expiry ``ttl_seconds`` after epoch ``now``."""
    moment = datetime.datetime.fromtimestamp(now + ttl_seconds, datetime.UTC)
    return moment.replace(tzinfo=None, microsecond=0)


def signed_fields(
    key: str | bytes,
    source: Source,
    subscription_id: str,
    now: float,
    ttl_seconds: float,
    nonce: str | None = None,
) -> dict[str, Any]:
    """Return the signed-header fields of a subscription's confirm URL,
    valid for ``ttl_seconds`` from epoch ``now``, for confirmation ``nonce``."""
    project, kind, name = source
    path = confirm_path(kind, name, subscription_id, nonce)
    share = signing.create_signed_url(
        key, [path], ["PUT"], project, expiry(now, ttl_seconds), now=expiry(now, 0)
    )
    return {
        "URL-Signature": share["signature"],
        "URL-Methods": "PUT",
        "URL-Paths": path,
        "X-Project-ID": project,
        "URL-Expires": share["expires"],
    }


def confirmation_link(
    page: str, fields: Mapping[str, Any], source_kind: str, source_name: str, subscribe_url: str
) -> str:
    """Return the page URL with Zaqar's query parameters appended."""
    params = {
        "Signature": fields["URL-Signature"],
        "Methods": fields["URL-Methods"],
        "Paths": fields["URL-Paths"],
        "Project": fields["X-Project-ID"],
        "Expires": fields["URL-Expires"],
        "Url": subscribe_url,
        "Queue": source_name,
    }
    if source_kind == "topics":
        params["Topic"] = source_name
    separator = "&" if "?" in page else "?"
    return page + separator + urlencode(params)


def confirmation_payload(
    message_type: str,
    *,
    key: str | bytes,
    source: Source,
    subscription_id: str,
    api_url: str,
    page: str,
    now: float,
    ttl_seconds: float,
    nonce: str | None = None,
    portal_url: str | None = None,
) -> dict[str, Any]:
    """Return the body of a SubscriptionConfirmation or UnsubscribeConfirmation.

    ``source`` is (project, kind, name); ``api_url`` the API's public base
    URL; ``page`` the confirmation page URL; the signed URL is valid for
    ``ttl_seconds`` after epoch ``now`` and names confirmation ``nonce``.
    The content is the service's own: nothing of it comes from the
    subscription's options.
    The fields are Zaqar's (``WSGISubscribeURL`` too, as Zaqar named it),
    plus ``SubscribeURL`` and ``confirmation_link``, and ``PortalURL``
    (the subscription's portal link) when ``portal_url`` is given.
    """
    if message_type not in (SUBSCRIPTION, UNSUBSCRIBE):
        raise ValueError(f"message_type must be {SUBSCRIPTION} or {UNSUBSCRIBE}")
    project, kind, name = source
    noun = "topic" if kind == "topics" else "queue"
    fields = signed_fields(key, source, subscription_id, now, ttl_seconds, nonce)
    subscribe_url = api_url.rstrip("/") + fields["URL-Paths"]
    if message_type == SUBSCRIPTION:
        text = f"You have chosen to subscribe to the {noun}: {name}"
    else:
        text = (
            f"You have unsubscribed successfully to the {noun}: {name}, you "
            "can resubscribe it by using confirmed=True."
        )
    payload = {
        "Message_Type": message_type,
        "Message": text,
        **fields,
        "SubscribeURL": subscribe_url,
        "WSGISubscribeURL": subscribe_url,
        "SubscribeBody": dict(SUBSCRIBE_BODY),
        "UnsubscribeBody": dict(UNSUBSCRIBE_BODY),
        "queue_name": name,
        "subscription_id": subscription_id,
        "confirmation_link": confirmation_link(page, fields, kind, name, subscribe_url),
    }
    if kind == "topics":
        payload["topic_name"] = name
    if portal_url:
        payload[PORTAL_URL_FIELD] = portal_url
    return payload


def headers_of(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Return the request headers that confirm with ``payload``'s URL."""
    return {name: payload[name] for name in SIGNED_HEADER_NAMES}
