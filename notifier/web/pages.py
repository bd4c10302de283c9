"""Rendering: the shipped templates, their assets, and the security headers."""

import datetime
import functools
import json
import mimetypes

import falcon
import jinja2

from notifier import errors, resources
from notifier.core.rates import rate_chart

#: Nothing inline, nothing from elsewhere; no framing, no referrer (links hold signatures).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
ASSETS = ("web.css", "web.js")


def _load(name):
    text = resources.read_packaged("web", name)
    if text is None:
        raise jinja2.TemplateNotFound(name)
    return text


@functools.cache
def environment():
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load), autoescape=True, undefined=jinja2.StrictUndefined
    )
    env.filters["when"] = when
    env.globals["rate_chart"] = rate_chart
    env.filters["pretty"] = lambda value: json.dumps(value, indent=2, sort_keys=True)
    return env


def when(epoch):
    """Render Unix seconds as UTC time."""
    if not epoch:
        return ""
    moment = datetime.datetime.fromtimestamp(float(epoch), datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def render(resp, template, status=falcon.HTTP_200, **context):
    resp.status = status
    resp.content_type = "text/html; charset=utf-8"
    resp.text = environment().get_template(template).render(**context)
    secure(resp)


def secure(resp):
    for name, value in HEADERS.items():
        resp.set_header(name, value)


class Asset:
    """GET /web/{name}: the pages' stylesheet and script, from the package."""

    def on_get(self, req, resp, name):
        resource = resources.packaged("web", "static", name)
        if name not in ASSETS or not resource.is_file():
            raise errors.NotFoundError("No such asset.")
        resp.content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        resp.data = resource.read_bytes()
        secure(resp)
        resp.set_header("Cache-Control", "public, max-age=3600")


def register_errors(app):
    """Answer errors with an HTML page (never a stack trace or a secret)."""

    def notifier_error(req, resp, exc, params):
        # A page has no credentials to ask for: a refused link is a 403.
        code = 403 if exc.http_status == 401 else exc.http_status
        status = falcon.code_to_http_status(code)
        render(resp, "error.html", status=status, message=str(exc))

    app.add_error_handler(errors.NotifierError, notifier_error)
