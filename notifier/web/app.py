"""Build the web pages' WSGI app (the composition root hands it to ``create_app``)."""

import falcon

from notifier.services.console import ConsoleService
from notifier.web import console, pages, portal


def create_pages(conf, storage, services, keystone=None):
    """Return the pages' WSGI app; ``services`` is the API's (``notifier.api.app.Services``).

    ``keystone`` (under ``auth_strategy = keystone``, the API passes it) wraps
    a WSGI app in keystonemiddleware; the console's pages go through it, so a
    Keystone token opens the console of its project.
    """
    app = falcon.App(media_type=falcon.MEDIA_HTML)
    app.req_options.strip_url_path_trailing_slash = True
    pages.register_errors(app)
    app.add_route("/web/{name}", pages.Asset())
    app.add_route(
        "/portal/{kind}/{name}/{subscription_id}", portal.PortalPage(conf, services.portal)
    )
    operator = ConsoleService(conf, storage, services.subscriptions, services.delivery)
    console.register(app, conf, operator, keystone is not None)
    if keystone is None:
        return app
    return ConsolePaths(app, console.TokenCookie(keystone(app)))


class ConsolePaths:
    """WSGI: the console's paths through Keystone's middleware, the rest straight."""

    def __init__(self, pages_app, console_app):
        self.pages = pages_app
        self.console = console_app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        console_path = path == "/console" or path.startswith("/console/")
        return (self.console if console_path else self.pages)(environ, start_response)
