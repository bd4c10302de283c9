"""The one table mapping notifier's errors to HTTP statuses and JSON bodies."""

import logging

import falcon
import kombu.exceptions

from notifier import errors

LOG = logging.getLogger(__name__)


class RequestTimeout(TimeoutError):
    """The client took longer than ``[api] client_body_timeout_seconds`` to
    send its request body (raised by ``notifier.api.server``)."""


#: What the broker's 503 says (the store's UnavailableError says the same).
BROKER_DOWN = "The storage or the broker cannot be reached; nothing was accepted. Retry shortly."


def error_body(title, description, field=None):
    body = {"title": title, "description": description}
    if field:
        body["field"] = field
    return body


def _notifier_error(req, resp, exc, params):
    resp.status = falcon.code_to_http_status(exc.http_status)
    if getattr(exc, "retry_after", None):
        resp.set_header("Retry-After", str(int(exc.retry_after)))
    resp.media = error_body(exc.title, exc.description, exc.field)
    if getattr(exc, "limit", None):
        resp.media["limit"] = exc.limit


def _unavailable(req, resp, exc, params):
    """Redis (the store, raised as UnavailableError at its boundary) or
    another backend cannot be reached: 503, JSON, Retry-After."""
    if exc.backend == "redis":
        from notifier.observability.metrics import REDIS_ERRORS

        REDIS_ERRORS.labels("api").inc()
        cause = type(exc.__cause__).__name__
        LOG.warning("backend unavailable during %s %s: %s", req.method, req.path, cause)
    _notifier_error(req, resp, exc, params)


def _broker_down(req, resp, exc, params):
    """kombu could not reach the broker (a Redis too)."""
    unavailable = errors.UnavailableError(BROKER_DOWN, retry_after=1, backend="redis")
    unavailable.__cause__ = exc
    _unavailable(req, resp, unavailable, params)


def _falcon_error(req, resp, exc, params):
    resp.status = exc.status
    for name, value in (exc.headers or {}).items():
        resp.set_header(name, value)
    resp.media = error_body(exc.title or "Error", exc.description or exc.title or "")


def _request_timeout(req, resp, exc, params):
    resp.status = falcon.HTTP_408
    resp.media = error_body(
        "Request timeout",
        "The request body did not arrive within [api] client_body_timeout_seconds.",
        "body",
    )


def _unexpected(req, resp, exc, params):
    LOG.exception("unexpected error in %s %s", req.method, req.path)
    resp.status = falcon.HTTP_500
    resp.media = error_body("Internal error", "An unexpected error occurred.")


def register(app):
    """Install the handlers; falcon picks the most specific class."""
    app.add_error_handler(Exception, _unexpected)
    app.add_error_handler(falcon.HTTPError, _falcon_error)
    app.add_error_handler(errors.NotifierError, _notifier_error)
    app.add_error_handler(errors.UnavailableError, _unavailable)
    app.add_error_handler(kombu.exceptions.OperationalError, _broker_down)
    app.add_error_handler(RequestTimeout, _request_timeout)
