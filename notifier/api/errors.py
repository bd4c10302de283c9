"""The one table mapping notifier's errors to HTTP statuses and JSON bodies."""

import logging

import falcon
import kombu.exceptions
import redis

from notifier import errors

LOG = logging.getLogger(__name__)


class RequestTimeout(TimeoutError):
    """The client took longer than ``[api] client_body_timeout_seconds`` to
    send its request body (raised by ``notifier.api.server``)."""


STATUS_BY_ERROR = [
    (errors.ValidationError, falcon.HTTP_400),
    (errors.AuthError, falcon.HTTP_401),
    (errors.ForbiddenError, falcon.HTTP_403),
    (errors.NotFoundError, falcon.HTTP_404),
    (errors.ConflictError, falcon.HTTP_409),
    (errors.RateLimitedError, falcon.HTTP_429),
    (errors.UnavailableError, falcon.HTTP_503),
]


def error_body(title, description, field=None):
    body = {"title": title, "description": description}
    if field:
        body["field"] = field
    return body


def _notifier_error(req, resp, exc, params):
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            resp.status = status
            break
    else:
        resp.status = falcon.HTTP_500
    if getattr(exc, "retry_after", None):
        resp.set_header("Retry-After", str(int(exc.retry_after)))
    resp.media = error_body(exc.title, exc.description, exc.field)
    if getattr(exc, "limit", None):
        resp.media["limit"] = exc.limit


def _backend_down(req, resp, exc, params):
    from notifier.observability.metrics import REDIS_ERRORS

    REDIS_ERRORS.labels("api").inc()
    LOG.warning("backend unavailable during %s %s: %s", req.method, req.path, type(exc).__name__)
    resp.status = falcon.HTTP_503
    resp.set_header("Retry-After", "1")
    resp.media = error_body(
        "Service unavailable",
        "The storage or the broker cannot be reached; nothing was accepted. Retry shortly.",
    )


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
    for cls in (
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        redis.exceptions.BusyLoadingError,
        kombu.exceptions.OperationalError,
        OSError,
    ):
        app.add_error_handler(cls, _backend_down)
    app.add_error_handler(RequestTimeout, _request_timeout)  # an OSError too
