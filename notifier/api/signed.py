"""Authorise requests by their pre-signed URL headers, before any other auth.

``SignedHeadersAuth`` is the outermost WSGI layer (as Zaqar placed its
signed-URL middleware before keystonemiddleware). A request carrying
``URL-Signature`` is judged here and only here:

- valid (right key, not expired, its method one of ``URL-Methods``, its path
  exactly one of ``URL-Paths``, ``X-Project-ID`` the signed project): it goes
  to the API *without* the auth strategy (no Keystone token needed), as the
  signed project and nobody else: identity headers a client added
  (``X-Roles``, ``X-User-ID``, ``X-Identity-Status``, ``X-Auth-Token``,
  ``X-Topic-Owner`` ...) are removed, and ``environ["notifier.signed"]``
  tells the resources the request was signed;
- anything else: 401 with the reason, never handed on to other auth.

Requests without ``URL-Signature`` go through the auth strategy
(keystonemiddleware, or none). Two exceptions need no auth at all: ``GET``
of the confirmation page, and CORS preflights of the confirm route, so a
confirmation page hosted on another origin can call it.
"""

import json
import logging
import re

from notifier.api.errors import error_body
from notifier.core import signing
from notifier.core.confirmation import PAGE_PATH
from notifier.errors import AuthError

LOG = logging.getLogger(__name__)

ENV_KEY = "notifier.signed"
CONFIRM_PATH_RE = re.compile(r"/v2/(queues|topics)/[^/]+/subscriptions/[^/]+/confirm(/[^/]+)?/?")
SIGNED_ENV = {
    "signature": "HTTP_URL_SIGNATURE",
    "expires": "HTTP_URL_EXPIRES",
    "methods": "HTTP_URL_METHODS",
    "paths": "HTTP_URL_PATHS",
    "project": "HTTP_X_PROJECT_ID",
}
# Who a request claims to be beyond its project: a signed request is its
# signed project and nobody else.
IDENTITY_PREFIXES = (
    "HTTP_X_USER",
    "HTTP_X_ROLE",
    "HTTP_X_IDENTITY",
    "HTTP_X_AUTH",
    "HTTP_X_SERVICE",
    "HTTP_X_TENANT",
    "HTTP_X_DOMAIN",
    "HTTP_X_PROJECT_",
    "HTTP_X_TRUST",
    "HTTP_X_IS_ADMIN",
    "HTTP_X_SYSTEM",
    "HTTP_X_TOPIC_OWNER",
    "HTTP_AUTHORIZATION",
)
CORS_HEADERS = [
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "PUT"),
    (
        "Access-Control-Allow-Headers",
        "Content-Type, URL-Signature, URL-Expires, URL-Methods, URL-Paths, X-Project-ID",
    ),
    ("Access-Control-Max-Age", "600"),
]


class SignedHeadersAuth:
    """WSGI: ``app`` is the bare API, ``auth_app`` the API behind its auth."""

    def __init__(self, app, auth_app, key, clock=None):
        self.app = app
        self.auth_app = auth_app
        self.key = key
        self.clock = clock  # () -> naive-UTC datetime, for tests

    def __call__(self, environ, start_response):
        environ.pop(ENV_KEY, None)
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        confirm_route = bool(CONFIRM_PATH_RE.fullmatch(path))
        if confirm_route:
            start_response = _with_cors(start_response)
            if method == "OPTIONS":
                start_response("204 No Content", list(CORS_HEADERS))
                return [b""]
        if method in ("GET", "HEAD") and path.rstrip("/") == PAGE_PATH:
            return self.app(environ, start_response)
        if "HTTP_URL_SIGNATURE" not in environ:
            return self.auth_app(environ, start_response)
        try:
            fields = self._verify(environ, method, path)
        except AuthError as exc:
            LOG.info(
                "signed request refused: %s",
                exc.description,
                extra={"method": method, "path": path},
            )
            return _unauthorized(start_response, exc.description)
        for name in [
            k for k in environ if k.startswith(IDENTITY_PREFIXES) and k != "HTTP_X_PROJECT_ID"
        ]:
            del environ[name]
        environ[ENV_KEY] = fields
        return self.app(environ, start_response)

    def _verify(self, environ, method, path):
        if not self.key:
            raise AuthError(
                "Pre-signed URLs are disabled on this service ([signed_url] secret_key is not set)."
            )
        fields = {name: environ.get(key) for name, key in SIGNED_ENV.items()}
        now = self.clock() if self.clock else None
        try:
            signing.verify_signed_request(
                self.key, **fields, request_method=method, request_path=path, now=now
            )
        except (ValueError, TypeError, OverflowError) as exc:  # e.g. undecodable text
            raise AuthError(f"The signed headers are malformed: {exc}") from None
        return fields


def _with_cors(start_response):
    def start(status, headers, exc_info=None):
        if not any(name.lower() == "access-control-allow-origin" for name, _ in headers):
            headers = list(headers) + [CORS_HEADERS[0]]
        return start_response(status, headers, exc_info)

    return start


def _unauthorized(start_response, reason):
    body = json.dumps(error_body("Unauthorized", reason)).encode("utf-8")
    start_response(
        "401 Unauthorized",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def is_signed(req):
    """Return the verified signed fields of a falcon request, or None."""
    return req.env.get(ENV_KEY)
