"""Webhook sink: POST the notification to an http(s) subscriber.

Uses urllib3's pool manager (the transport under ``requests``): keep-alive
pools per endpoint, measured 2-3x cheaper per POST than a requests.Session
(see ../shared/RESEARCH.md). Redirects are never followed: a 3xx is a
failure, so a subscriber cannot bounce deliveries somewhere else.
"""

import time
from urllib.parse import urlsplit

import certifi
import urllib3

from notifier import errors
from notifier.retry import classify_http_status, parse_retry_after
from notifier.sinks import DeliveryReport
from notifier.payloads import render_webhook_body

RESPONSE_BODY_CAP = 64 * 1024
RETRY_AFTER_CAP_SECONDS = 3600
FORBIDDEN_HEADER_CHARS = set("\r\n\0")


def _check_header_map(headers):
    if not isinstance(headers, dict):
        raise errors.ValidationError("options.post_headers must be an object of "
                                     "header names to string values.",
                                     field="options.post_headers")
    for name, value in headers.items():
        if (not isinstance(value, str) or not name
                or FORBIDDEN_HEADER_CHARS & set(name + value)
                or not name.isascii() or ":" in name or " " in name):
            raise errors.ValidationError(
                f"options.post_headers has an invalid header {name!r}.",
                field="options.post_headers")


class WebhookSink:
    """Deliver notifications by HTTP POST."""

    @classmethod
    def validate(cls, subscriber, options, conf):
        parts = urlsplit(subscriber)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise errors.ValidationError(
                f"Subscriber {subscriber!r} is not a valid http(s) URL.",
                field="subscriber")
        try:
            parts.port
        except ValueError as exc:
            raise errors.ValidationError(f"Subscriber has an invalid port: {exc}.",
                                         field="subscriber") from exc
        post_data = options.get("post_data")
        if post_data is not None and not isinstance(post_data, str):
            raise errors.ValidationError("options.post_data must be a string.",
                                         field="options.post_data")
        if "post_headers" in options:
            _check_header_map(options["post_headers"])

    def __init__(self, conf):
        timeout = urllib3.Timeout(
            connect=conf.notification.webhook_connect_timeout_seconds,
            read=conf.notification.webhook_read_timeout_seconds)
        self.pool = urllib3.PoolManager(
            num_pools=256, maxsize=conf.notification.webhook_pool_maxsize,
            block=False, timeout=timeout, retries=False,
            cert_reqs="CERT_REQUIRED", ca_certs=certifi.where())

    def deliver(self, notification):
        options = notification.subscription.get("options") or {}
        body = render_webhook_body(notification.payload, options.get("post_data"))
        headers = {"Content-Type": "application/json",
                   "User-Agent": "notifier-webhook/1"}
        headers.update(options.get("post_headers") or {})
        response = self._post(notification.subscription["subscriber"], body, headers)
        return self._judge(response)

    def _post(self, url, body, headers):
        try:
            response = self.pool.urlopen("POST", url, body=body, headers=headers,
                                         redirect=False, preload_content=False)
        except urllib3.exceptions.TimeoutError as exc:
            raise errors.TransientDeliveryError(f"Timed out: {exc}",
                                                kind="timeout") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise errors.TransientDeliveryError(f"Connection failed: {exc}",
                                                kind="connection") from exc
        return response

    def _judge(self, response):
        text = _read_capped(response)
        verdict = classify_http_status(response.status)
        if verdict == "success":
            return DeliveryReport(status=response.status, response_body=text)
        retry_after = parse_retry_after(response.headers.get("Retry-After"),
                                        time.time(), RETRY_AFTER_CAP_SECONDS)
        cls = (errors.TransientDeliveryError if verdict == "transient"
               else errors.PermanentDeliveryError)
        raise cls(f"HTTP {response.status}", kind="http_status",
                  status=response.status, retry_after_seconds=retry_after,
                  response_body=text)


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
