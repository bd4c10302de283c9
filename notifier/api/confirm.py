"""Subscription confirmation, pre-signed URLs, and the confirmation page.

- ``PUT /v2/{queues|topics}/{name}/subscriptions/{id}/confirm/{nonce}``
  ``{"confirmed": true|false, "extra_spec": {...}}`` with the signed headers
  of the subscription's confirmation message → 204. Only a signed request
  may confirm: the signature is the proof that the subscriber received the
  confirmation, so the project owner cannot confirm on its behalf; the
  nonce must be the subscription's current one (403 otherwise), so a link
  sent to an earlier subscriber, or superseded by a newer confirmation,
  confirms nothing. (``.../confirm`` without a nonce confirms only
  subscriptions stored before confirmations carried one.)
- ``POST /v2/{queues|topics}/{name}/share`` ``{"methods", "paths",
  "expires"}`` → 201 with a pre-signed URL (Zaqar's response fields).
- ``GET /v2/confirmation``: ``templates/confirmation.html``.
"""

import base64
import hashlib
import html
import logging
import re
import secrets
import time
from pathlib import Path

import falcon

from notifier import errors, resources
from notifier.api import common
from notifier.api.queues import ProjectScope
from notifier.api.signed import is_signed
from notifier.core import confirmation, emails, schemes, signing, validation
from notifier.sinks import scheme_of, sink_class
from notifier.store.storage import Source

LOG = logging.getLogger(__name__)

CONFIRM_KEYS = {"confirmed", "extra_spec"}
SHARE_KEYS = {"methods", "paths", "expires"}
#: What a share may grant, relative to the source (Zaqar's list, less claims,
#: which this service does not serve).
SHARE_PATHS = ("messages", "subscriptions")
PAGE_FILE = "confirmation.html"
#: The page's tag naming the API origin it may send signed headers to.
ORIGIN_META = '<meta name="notifier-api-origin" content="{}">'
ORIGIN_RE = re.compile(r"https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?")


def confirms_itself(subscriber):
    """Return whether ``subscriber``'s sink takes confirmation messages."""
    scheme = scheme_of(subscriber)
    try:
        cls = sink_class(scheme)
    except errors.ValidationError:  # a scheme no longer served
        return False
    return confirmation.requires_confirmation(scheme, cls)


def needs_confirmation(conf, subscriber):
    """Return whether a new subscription to ``subscriber`` starts unconfirmed."""
    return conf.notification.require_confirmation and confirms_itself(subscriber)


def check_confirmable(subscriber, options):
    """Refuse what one confirmation cannot vouch for: an e-mail subscription
    with several recipients (each address must confirm for itself)."""
    if schemes.kind(scheme_of(subscriber)) != "email":
        return
    target = emails.email_target(subscriber, options or {})
    if len(set(target.to + target.cc + target.bcc)) > 1:
        raise errors.ValidationError(
            "With subscription confirmation required, an e-mail subscription has "
            "exactly one recipient (no cc or bcc): each address confirms for "
            "itself. Subscribe each address separately.",
            field="subscriber",
        )


def new_nonce():
    return secrets.token_hex(16)


def check_confirmation_rate(conf, storage, project, subscriber):
    """Count a confirmation from ``project`` to ``subscriber``'s endpoint;
    raise RateLimitedError (429) past ``[notification]
    confirmations_per_subscriber`` in the window."""
    limit = conf.notification.confirmations_per_subscriber
    if not limit:
        return
    window = conf.notification.confirmation_rate_window_seconds
    count, left = storage.count_confirmation(confirmation.rate_subject(project, subscriber), window)
    if count > limit:
        raise errors.RateLimitedError(
            f"This subscriber was sent {limit} confirmation messages in the last "
            f"{window} seconds, the most it may be sent; try again in {left} seconds.",
            field="subscriber",
            retry_after=left,
        )


def send_confirmation(conf, service, record, message_type=confirmation.SUBSCRIPTION, now=None):
    """Send a subscription a new (un)subscribe confirmation through the workers.

    Its nonce becomes the subscription's (atomically, on the subscriber
    stored now): every earlier link of the subscription stops confirming.
    """
    now = time.time() if now is None else now
    ttl = conf.signed_url.confirmation_url_ttl_seconds
    source = Source(*record["source"])
    nonce = new_nonce()
    service.storage.update_subscription(
        source, record["id"], lambda stored: dict(stored, **{confirmation.NONCE_FIELD: nonce})
    )
    payload = confirmation.confirmation_payload(
        message_type,
        key=conf.signed_url.secret_key,
        source=tuple(record["source"]),
        subscription_id=record["id"],
        api_url=confirmation.base_url(conf),
        page=confirmation.page_url(conf),
        now=now,
        ttl_seconds=ttl,
        nonce=nonce,
    )
    return service.send_control(source, record["id"], payload, ttl, nonce)


def confirm_request(document):
    """Return (confirmed, extra_spec) of a confirm body, or raise 400."""
    validation.obj(document, "body")
    unknown = set(document) - CONFIRM_KEYS
    if unknown:
        raise errors.ValidationError(
            f"Unknown field(s): {', '.join(sorted(unknown))}; a confirm request "
            "has confirmed and, optionally, extra_spec.",
            field=sorted(unknown)[0],
        )
    confirmed = document.get("confirmed")
    if not isinstance(confirmed, bool):
        raise errors.ValidationError("confirmed must be true or false.", field="confirmed")
    extra_spec = document.get("extra_spec")
    if extra_spec is not None and not isinstance(extra_spec, dict):
        raise errors.ValidationError("extra_spec must be an object.", field="extra_spec")
    return confirmed, extra_spec


class Confirm:
    def __init__(self, conf, storage, service, driver, scope=None):
        self.conf = conf
        self.storage = storage
        self.service = service
        self.driver = driver
        self.scope = scope or ProjectScope()

    def on_put(self, req, resp, name, subscription_id, nonce=None):
        if not is_signed(req):
            raise errors.AuthError(
                "Confirming a subscription needs the signed headers of its "
                "confirmation message: URL-Signature, URL-Expires, URL-Methods, "
                "URL-Paths and X-Project-ID."
            )
        source = self.scope.source(req, name)
        confirmed, extra_spec = confirm_request(
            common.read_json(req, self.conf.transport.max_request_body_size)
        )
        record = self.storage.get_subscription(source, subscription_id)
        if not self.scope.sees(req, source, record):
            raise errors.NotFoundError(f"Subscription {subscription_id!r} does not exist.")
        _check_current(record, nonce)
        self.driver.confirm(record, confirmed, extra_spec)
        was_confirmed = bool(record.get("confirmed", True))
        if confirmed == was_confirmed:
            resp.status = falcon.HTTP_204
            return

        def change(stored):
            # Checked again on the record written: a PATCH in between made
            # this link stale.
            _check_current(stored, nonce)
            return dict(stored, confirmed=confirmed)

        record = self.storage.update_subscription(source, subscription_id, change)
        LOG.info(
            "subscription %s",
            "confirmed" if confirmed else "unsubscribed",
            extra={"subscription_id": subscription_id},
        )
        # Only on a change: a receiver answering every
        # UnsubscribeConfirmation with another "false" cannot loop.
        if not confirmed and confirms_itself(record["subscriber"]):
            self._send_goodbye(record)
        resp.status = falcon.HTTP_204

    def _send_goodbye(self, record):
        try:
            project = record["source"][0]
            check_confirmation_rate(self.conf, self.storage, project, record["subscriber"])
        except errors.RateLimitedError:
            # The unsubscribe stands; only its confirmation is not sent.
            LOG.warning(
                "unsubscribe confirmation not sent: subscriber over its confirmation rate",
                extra={"subscription_id": record["id"]},
            )
            return
        send_confirmation(self.conf, self.service, record, confirmation.UNSUBSCRIBE)


def _check_current(record, nonce):
    if not confirmation.link_is_current(record, nonce):
        raise errors.ForbiddenError(
            "This confirmation link is no longer valid: a newer confirmation was "
            "sent to this subscription, or its subscriber changed. Use the link "
            "of the latest confirmation message."
        )


class Share:
    """POST .../share: a pre-signed URL for this source's messages or
    subscriptions, for whoever may manage the source."""

    def __init__(self, conf, scope):
        self.conf = conf
        self.scope = scope

    def on_post(self, req, resp, name):
        key = self.conf.signed_url.secret_key
        if not key:
            raise falcon.HTTPNotImplemented(
                title="Pre-signed URLs are disabled",
                description="[signed_url] secret_key is not set on this service.",
            )
        source = self.scope.source(req, name)
        self.scope.before_manage(req, source)
        document = {}
        if common.has_body(req):
            document = common.read_json(req, self.conf.transport.max_request_body_size)
        validation.obj(document, "body")
        unknown = set(document) - SHARE_KEYS
        if unknown:
            raise errors.ValidationError(
                f"Unknown field(s): {', '.join(sorted(unknown))}; a share request "
                "has methods, paths and expires.",
                field=sorted(unknown)[0],
            )
        paths = document.get("paths") or ["messages"]
        if not isinstance(paths, list) or any(p not in SHARE_PATHS for p in paths):
            raise errors.ValidationError(
                f"paths must be a list of: {', '.join(SHARE_PATHS)}.", field="paths"
            )
        methods = document.get("methods")
        if methods is not None and (
            not isinstance(methods, list) or not all(isinstance(m, str) for m in methods)
        ):
            raise errors.ValidationError("methods must be a list of HTTP methods.", field="methods")
        base = f"/v2/{self.scope.kind}/{source.name}/"
        share = signing.create_signed_url(
            key,
            [base + p for p in paths],
            methods,
            project=source.project,
            expires_at=document.get("expires"),
        )
        resp.status = falcon.HTTP_201
        resp.media = share


def _csp_hashes(html, tag):
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.S)
    return " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in blocks
    )


class ConfirmationPage:
    """GET /v2/confirmation: the page confirmation e-mails link to.

    Static: it reads its parameters from its own URL in the browser. It
    sends the signed headers only to the API's own origin (``[api]
    public_url``), written into its ``notifier-api-origin`` meta tag here
    and enforced twice: by the page's script, which refuses a link whose
    ``Url`` is elsewhere, and by the CSP's ``connect-src``. The CSP allows
    only its own inline script and style (by hash), and no referrer leaves
    it: the URL holds a signature.
    """

    def __init__(self, path=None, api_origin=None):
        if path is None:
            self.html = resources.read_packaged(PAGE_FILE)
        else:
            self.html = Path(path).read_text(encoding="utf-8")
        origin = api_origin if api_origin and ORIGIN_RE.fullmatch(api_origin) else None
        if self.html:
            self.html = self.html.replace(
                ORIGIN_META.format(""), ORIGIN_META.format(html.escape(origin or "", quote=True))
            )
            scripts, styles = _csp_hashes(self.html, "script"), _csp_hashes(self.html, "style")
            connect = origin or "'self'"
            self.csp = (
                f"default-src 'none'; script-src {scripts}; style-src {styles}; "
                f"connect-src {connect}; img-src 'none'; "
                "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
            )

    def on_get(self, req, resp):
        if self.html is None:
            raise errors.NotFoundError(
                "templates/confirmation.html is not installed on this server."
            )
        resp.content_type = "text/html; charset=utf-8"
        resp.text = self.html
        resp.set_header("Content-Security-Policy", self.csp)
        resp.set_header("Referrer-Policy", "no-referrer")
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("Cache-Control", "no-cache")
