"""Webhook sink: POST the notification to an http(s) subscriber.

Uses the keep-alive HTTP/1.1 client of ``http_transport`` (one ``sendall``
per POST, answers parsed by httptools): a delivery's HTTP costs a third of
what it cost through urllib3 (see bench/RESULTS.md). Connections go only to
vetted addresses; redirects are never followed: a 3xx is a failure, so a
subscriber cannot bounce deliveries somewhere else. Every request is signed
as Standard Webhooks specify (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``). Confirmation requests go out as the service wrote
them: the subscription's ``post_data`` and ``post_headers`` apply to
notifications only.
"""

import re
import socket
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

import urllib3

from notifier import errors
from notifier.core import netpolicy, signing
from notifier.core.payloads import render_webhook_body
from notifier.core.retry import classify_http_status, parse_retry_after
from notifier.sinks import DeliveryReport, Notification, RequestContext
from notifier.sinks.http_transport import (
    ForbiddenAddressError,
    HttpClient,
    Response,
    Target,
    TransportError,
)

RESPONSE_BODY_CAP = 64 * 1024
RETRY_AFTER_CAP_SECONDS = 3600
TARGET_CACHE_SIZE = 10_000  # parsed subscriber URLs kept per process
MAX_POST_HEADERS, MAX_HEADER_VALUE = 50, 4096
# RFC 9110 token characters: what a header name may be made of.
HEADER_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}\Z")
# Header values: printable ASCII and spaces, no CR, LF, NUL or other controls.
HEADER_VALUE_RE = re.compile(r"[ -~]*\Z")
# Headers the service owns: framing and hop-by-hop headers (a forged one makes
# a receiver read the body as another request), the Standard Webhooks
# signature headers and what the sink itself sets. Content-Type stays the
# subscriber's to set, to describe a post_data body (as in Zaqar).
RESERVED_HEADERS = frozenset(
    (
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "user-agent",
    )
)
RESERVED_PREFIXES = ("proxy-", "webhook-")


def header_problem(headers: object, reserved: Collection[str] = ()) -> str | None:
    """Return why a ``post_headers`` map may not be sent, or None."""
    if not isinstance(headers, dict):
        return "it must be an object of header names to string values"
    if len(headers) > MAX_POST_HEADERS:
        return f"at most {MAX_POST_HEADERS} headers are allowed"
    for name, value in headers.items():
        if not HEADER_NAME_RE.match(name):
            return f"{name!r} is not a valid header name"
        if not isinstance(value, str):
            return f"the value of {name} must be a string"
        if len(value) > MAX_HEADER_VALUE or not HEADER_VALUE_RE.match(value):
            return (
                f"the value of {name} must be at most {MAX_HEADER_VALUE} printable "
                "ASCII characters (no CR, LF or other control characters)"
            )
        lowered = name.lower()
        if (
            lowered in RESERVED_HEADERS
            or lowered in reserved
            or lowered.startswith(RESERVED_PREFIXES)
        ):
            return (
                f"{name} is set by the service: framing, hop-by-hop, Proxy-*, "
                "webhook-* and User-Agent headers cannot be given"
            )
    return None


def check_webhook_options(
    options: Mapping[str, Any], reserved_headers: Collection[str] = ()
) -> None:
    """Check the options of an HTTP delivery (``secret``, ``throttle_policy``,
    ``post_data``, ``post_headers``), as webhook and trust+ subscribers share
    them; ``reserved_headers``: names (lower case) the sink sets itself."""
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
        problem = header_problem(options["post_headers"], reserved_headers)
        if problem:
            raise errors.ValidationError(
                f"options.post_headers is refused: {problem}.", field="options.post_headers"
            )


def http_target(url: str, trust: bool = False, shown: str | None = None) -> netpolicy.HttpTarget:
    """Return the ``netpolicy.HttpTarget`` of a subscriber URL, or raise
    ValidationError naming ``subscriber``."""
    try:
        return netpolicy.parse_http_url(url, trust=trust)
    except ValueError as exc:
        raise errors.ValidationError(
            f"Subscriber {shown or url!r} is not a valid http(s) URL: {exc}.",
            field="subscriber",
        ) from None


class WebhookSink:
    """Deliver notifications by HTTP POST."""

    # Header names (lower case) this sink sets beyond RESERVED_HEADERS.
    reserved_headers: tuple[str, ...] = ()

    @classmethod
    def validate(
        cls,
        subscriber: str,
        options: Mapping[str, Any],
        conf: Any,
        resolver: Callable[..., Any] | None = None,
    ) -> None:
        target = http_target(subscriber)
        check_destination(target.host, target.port, conf, resolver)
        check_webhook_options(options, cls.reserved_headers)

    @classmethod
    def prepare_subscription(
        cls, fields: dict[str, Any], context: RequestContext, conf: Any
    ) -> dict[str, Any]:
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

    def __init__(self, conf: Any, resolver: Callable[..., Any] = socket.getaddrinfo) -> None:
        # ``total``: connecting and waiting for the answer together take at
        # most connect + read; the body is read within the same bound, so
        # one attempt never outlasts it by much, which is what bounds a
        # task's runtime (workers/app.py).
        self.attempt_seconds: float = (
            conf.notification.webhook_connect_timeout_seconds
            + conf.notification.webhook_read_timeout_seconds
        )
        self._targets: dict[str, Target] = {}
        self.client = HttpClient(
            connect_timeout=conf.notification.webhook_connect_timeout_seconds,
            read_timeout=conf.notification.webhook_read_timeout_seconds,
            total_timeout=self.attempt_seconds,
            pool_maxsize=conf.notification.webhook_pool_maxsize,
            allowed_networks=netpolicy.parse_networks(conf.webhook.allowed_networks),
            resolver=resolver,
            body_cap=RESPONSE_BODY_CAP,
        )

    def deliver(self, notification: Notification) -> DeliveryReport:
        return self.post(notification)

    def post(
        self,
        notification: Notification,
        extra_headers: Mapping[str, str] | None = None,
        url: str | None = None,
    ) -> DeliveryReport:
        """POST the notification to ``url`` (default: the subscriber), with
        ``extra_headers`` set after the subscription's own."""
        # A control message (a confirmation request) is the service's own:
        # no post_data or post_headers of the subscription shape it.
        control = notification.message.get("control")
        options: dict[str, Any] = {} if control else notification.subscription.get("options") or {}
        post_data = options.get("post_data")
        if notification.rendered is not None and not post_data:
            body = notification.rendered  # the same bytes for every subscriber
        else:
            body = render_webhook_body(notification.payload, post_data)
        # By lower-case name: what the service sets below replaces any
        # spelling of the same name.
        headers = {"content-type": ("Content-Type", "application/json")}
        # Checked again here: a subscription stored before the check existed
        # must not smuggle a header either.
        post_headers = options.get("post_headers") or {}
        if post_headers:
            problem = header_problem(post_headers, self.reserved_headers)
            if problem:
                raise errors.PermanentDeliveryError(
                    f"options.post_headers is refused: {problem}", kind="invalid_options"
                )
            for name, value in post_headers.items():
                headers[name.lower()] = (name, value)
        headers["user-agent"] = ("User-Agent", "notifier-webhook/1")
        for name, value in (extra_headers or {}).items():
            headers[name.lower()] = (name, value)
        secrets = active_secrets(notification.subscription, time.time())
        if secrets:
            signed = signing.webhook_headers(
                secrets, notification.delivery_id, int(time.time()), body
            )
            for name, value in signed.items():
                headers[name.lower()] = (name, value)
        target = self._target(url or notification.subscription["subscriber"])
        try:
            response = self.client.post(target, list(headers.values()), body)
        except ForbiddenAddressError as exc:
            raise errors.PermanentDeliveryError(str(exc), kind="forbidden_address") from exc
        except TransportError as exc:
            label = "Timed out" if exc.kind == "timeout" else "Connection failed"
            raise errors.TransientDeliveryError(f"{label}: {exc}", kind=exc.kind) from exc
        return _judge(response)

    def _target(self, url: str) -> Target:
        """Return where a subscriber URL that the policy accepts goes,
        parsed once per URL and process."""
        target = self._targets.get(url)
        if target is None:
            try:
                netpolicy.parse_http_url(url)  # what was validated is what connects
            except ValueError as exc:
                raise errors.PermanentDeliveryError(
                    f"The subscriber URL is refused: {exc}", kind="invalid_subscriber"
                ) from None
            # urllib3's reading of a URL (percent-encoding what must be),
            # which tests/unit/test_request_forgery.py holds to netpolicy's.
            parsed = urllib3.util.parse_url(url)
            target = Target(
                (parsed.scheme or "http").lower(),
                parsed.host or "",
                parsed.port,
                parsed.request_uri,
            )
            if len(self._targets) >= TARGET_CACHE_SIZE:
                self._targets.clear()
            self._targets[url] = target
        return target


def _judge(response: Response) -> DeliveryReport:
    """A delivery report for a 2xx; the DeliveryError of any other status."""
    text = None if response.body is None else response.body.decode("utf-8", "replace")
    verdict = classify_http_status(response.status)
    if verdict == "success":
        return DeliveryReport(status=response.status, response_body=text)
    retry_after = parse_retry_after(
        response.headers.get("retry-after"), time.time(), RETRY_AFTER_CAP_SECONDS
    )
    cls: type[errors.DeliveryError] = (
        errors.TransientDeliveryError if verdict == "transient" else errors.PermanentDeliveryError
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


def check_destination(
    host: str, port: int | None, conf: Any, resolver: Callable[..., Any] | None = None
) -> None:
    """Refuse a webhook host the network policy forbids (at subscription time).

    A literal address is judged as it is; a name is resolved and refused if
    any address is forbidden. A name that does not resolve yet is accepted:
    the connect-time check judges whatever it resolves to later.
    """
    allowed = netpolicy.parse_networks(conf.webhook.allowed_networks)
    literal = netpolicy.host_literal(host)
    if literal is not None:
        addresses: list[Any] = [literal]
    else:
        # Looked up at call time, not bound at import: tests/unit's guard
        # replaces socket.getaddrinfo and must see every lookup.
        resolve = resolver or socket.getaddrinfo
        try:
            infos = resolve(host, port or 80, type=socket.SOCK_STREAM)
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


def check_throttle_policy(policy: object) -> None:
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


def rotate_secret(
    record: Mapping[str, Any], grace_seconds: float, now: float, new_secret: str | None = None
) -> tuple[list[dict[str, Any]], str]:
    """Return (secrets list, new secret): the new one first, the old ones
    kept until ``now + grace_seconds`` at the latest."""
    new_secret = new_secret or signing.generate_webhook_secret()
    kept: list[dict[str, Any]] = []
    for entry in record.get("secrets") or ():
        expires = entry.get("expires")
        expires = now + grace_seconds if expires is None else min(expires, now + grace_seconds)
        if expires > now:
            kept.append({"secret": entry["secret"], "expires": expires})
    return [{"secret": new_secret, "expires": None}] + kept, new_secret


def active_secrets(subscription: Mapping[str, Any], now: float) -> list[str]:
    """Return the subscription's signing secrets still in use, newest first."""
    return [
        entry["secret"]
        for entry in subscription.get("secrets") or ()
        if entry.get("expires") is None or entry["expires"] > now
    ]
