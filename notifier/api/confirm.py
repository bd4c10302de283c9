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
import re
from pathlib import Path

import falcon

from notifier import errors, resources
from notifier.api import common
from notifier.api.queues import ProjectScope
from notifier.api.signed import is_signed
from notifier.core import validation
from notifier.services import sharing

CONFIRM_KEYS = {"confirmed", "extra_spec"}
PAGE_FILE = "confirmation.html"
#: The page's tag naming the API origin it may send signed headers to.
ORIGIN_META = '<meta name="notifier-api-origin" content="{}">'
ORIGIN_RE = re.compile(r"https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?")


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
    def __init__(self, conf, confirmations, scope=None):
        self.conf = conf
        self.confirmations = confirmations  # notifier.services.confirmations
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
        self.confirmations.confirm(
            self.scope.access(req), source, subscription_id, nonce, confirmed, extra_spec
        )
        resp.status = falcon.HTTP_204


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
        resp.status = falcon.HTTP_201
        resp.media = sharing.share(key, source, document)


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
