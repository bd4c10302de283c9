"""Webhook sink: POST the notification to an http(s) subscriber.

Uses urllib3's pool manager (the transport under ``requests``): keep-alive
pools per endpoint, measured 2-3x cheaper per POST than a requests.Session
(see ../shared/RESEARCH.md). Connections go only to vetted addresses
(``http_transport``); redirects are never followed: a 3xx is a failure, so a
subscriber cannot bounce deliveries somewhere else. Every request is signed
as Standard Webhooks specify (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``).
"""

import socket
import time
from urllib.parse import urlsplit

import urllib3

from notifier import errors, netpolicy, signing
from notifier.payloads import render_webhook_body
from notifier.retry import classify_http_status, parse_retry_after
from notifier.sinks import DeliveryReport
from notifier.sinks.http_transport import ForbiddenAddressError, build_pool_manager

RESPONSE_BODY_CAP = 64 * 1024
RETRY_AFTER_CAP_SECONDS = 3600
FORBIDDEN_HEADER_CHARS = set("\r\n\0")


def _check_header_map(headers):
    if not isinstance(headers, dict):
        raise errors.ValidationError(
            "options.post_headers must be an object of header names to string values.",
            field="options.post_headers",
        )
    for name, value in headers.items():
        if (
            not isinstance(value, str)
            or not name
            or FORBIDDEN_HEADER_CHARS & set(name + value)
            or not name.isascii()
            or ":" in name
            or " " in name
        ):
            raise errors.ValidationError(
                f"options.post_headers has an invalid header {name!r}.",
                field="options.post_headers",
            )


class WebhookSink:
    """Deliver notifications by HTTP POST."""

    @classmethod
    def validate(cls, subscriber, options, conf, resolver=socket.getaddrinfo):
        parts = urlsplit(subscriber)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise errors.ValidationError(
                f"Subscriber {subscriber!r} is not a valid http(s) URL.", field="subscriber"
            )
        try:
            _ = parts.port  # raises ValueError for a bad port
        except ValueError as exc:
            raise errors.ValidationError(
                f"Subscriber has an invalid port: {exc}.", field="subscriber"
            ) from exc
        check_destination(parts.hostname, parts.port, conf, resolver)
        if "secret" in options:
            signing.validate_webhook_secret(options["secret"], "options.secret")
        if "throttle_policy" in options:
            check_throttle_policy(options["throttle_policy"])
        post_data = options.get("post_data")
        if post_data is not None and not isinstance(post_data, str):
            raise errors.ValidationError(
                "options.post_data must be a string.", field="options.post_data"
            )
        if "post_headers" in options:
            _check_header_map(options["post_headers"])

    @classmethod
    def prepare_subscription(cls, fields, context, conf):
        """Give the subscription its signing secret: the subscriber's own
        (``options.secret``) or a new one, shown once in the response."""
        options = dict(fields["options"])
        secret = options.pop("secret", None) or signing.generate_webhook_secret()
        return dict(
            fields,
            options=options,
            extra={"secrets": [{"secret": secret, "expires": None}]},
            reveal={"secret": secret},
        )

    def __init__(self, conf, resolver=socket.getaddrinfo):
        timeout = urllib3.Timeout(
            connect=conf.notification.webhook_connect_timeout_seconds,
            read=conf.notification.webhook_read_timeout_seconds,
        )
        self.pool = build_pool_manager(
            timeout,
            conf.notification.webhook_pool_maxsize,
            netpolicy.parse_networks(conf.webhook.allowed_networks),
            resolver,
        )

    def deliver(self, notification, extra_headers=None, url=None):
        options = notification.subscription.get("options") or {}
        body = render_webhook_body(notification.payload, options.get("post_data"))
        headers = {"Content-Type": "application/json", "User-Agent": "notifier-webhook/1"}
        headers.update(options.get("post_headers") or {})
        headers.update(extra_headers or {})
        secrets = active_secrets(notification.subscription, time.time())
        if secrets:
            headers.update(
                signing.webhook_headers(secrets, notification.delivery_id, int(time.time()), body)
            )
        response = self._post(url or notification.subscription["subscriber"], body, headers)
        return self._judge(response)

    def _post(self, url, body, headers):
        try:
            response = self.pool.urlopen(
                "POST", url, body=body, headers=headers, redirect=False, preload_content=False
            )
        except ForbiddenAddressError as exc:
            raise errors.PermanentDeliveryError(str(exc), kind="forbidden_address") from exc
        except urllib3.exceptions.NewConnectionError as exc:
            # Caught before TimeoutError: urllib3 2 makes it a ConnectTimeoutError.
            raise errors.TransientDeliveryError(
                f"Connection failed: {exc}", kind="connection"
            ) from exc
        except urllib3.exceptions.TimeoutError as exc:
            raise errors.TransientDeliveryError(f"Timed out: {exc}", kind="timeout") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise errors.TransientDeliveryError(
                f"Connection failed: {exc}", kind="connection"
            ) from exc
        return response

    def _judge(self, response):
        text = _read_capped(response)
        verdict = classify_http_status(response.status)
        if verdict == "success":
            return DeliveryReport(status=response.status, response_body=text)
        retry_after = parse_retry_after(
            response.headers.get("Retry-After"), time.time(), RETRY_AFTER_CAP_SECONDS
        )
        cls = (
            errors.TransientDeliveryError
            if verdict == "transient"
            else errors.PermanentDeliveryError
        )
        # 410 Gone: the subscriber says it is gone for good; the service
        # disables the subscription at once.
        kind = "gone" if response.status == 410 else "http_status"
        raise cls(
            f"HTTP {response.status}",
            kind=kind,
            status=response.status,
            retry_after_seconds=retry_after,
            response_body=text,
        )


def _read_capped(response):
    """Read at most RESPONSE_BODY_CAP bytes; keep the connection only if drained."""
    try:
        data = response.read(RESPONSE_BODY_CAP + 1)
    except urllib3.exceptions.HTTPError:
        response.close()
        return None
    if len(data) > RESPONSE_BODY_CAP:
        response.close()
        data = data[:RESPONSE_BODY_CAP]
    else:
        response.release_conn()
    return data.decode("utf-8", "replace")


def check_destination(host, port, conf, resolver=socket.getaddrinfo):
    """Refuse a webhook host the network policy forbids (at subscription time).

    A literal address is judged as it is; a name is resolved and refused if
    any address is forbidden. A name that does not resolve yet is accepted:
    the connect-time check judges whatever it resolves to later.
    """
    allowed = netpolicy.parse_networks(conf.webhook.allowed_networks)
    literal = netpolicy.host_literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = resolver(host, port or 80, type=socket.SOCK_STREAM)
        except OSError:
            return
        addresses = [info[4][0] for info in infos]
    for address in addresses:
        reason = netpolicy.refusal_reason(address, allowed)
        if reason:
            raise errors.ValidationError(
                f"Subscriber host {host} is {reason}, which webhooks may not "
                f"reach (see [webhook] allowed_networks).",
                field="subscriber",
            )


def check_throttle_policy(policy):
    """Check SNS's throttlePolicy: {"max_receives_per_second": N}."""
    rate = policy.get("max_receives_per_second") if isinstance(policy, dict) else None
    if (
        not isinstance(policy, dict)
        or set(policy) != {"max_receives_per_second"}
        or isinstance(rate, bool)
        or not isinstance(rate, (int, float))
        or not 0 < rate <= 10000
    ):
        raise errors.ValidationError(
            'options.throttle_policy must be {"max_receives_per_second": N} with 0 < N <= 10000.',
            field="options.throttle_policy",
        )


def rotate_secret(record, grace_seconds, now, new_secret=None):
    """Return (secrets list, new secret): the new one first, the old ones
    kept until ``now + grace_seconds`` at the latest."""
    new_secret = new_secret or signing.generate_webhook_secret()
    kept = []
    for entry in record.get("secrets") or ():
        expires = entry.get("expires")
        expires = now + grace_seconds if expires is None else min(expires, now + grace_seconds)
        if expires > now:
            kept.append({"secret": entry["secret"], "expires": expires})
    return [{"secret": new_secret, "expires": None}] + kept, new_secret


def active_secrets(subscription, now):
    """Return the subscription's signing secrets still in use, newest first."""
    return [
        entry["secret"]
        for entry in subscription.get("secrets") or ()
        if entry.get("expires") is None or entry["expires"] > now
    ]
