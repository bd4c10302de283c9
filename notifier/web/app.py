"""Build the web pages' WSGI app (the composition root hands it to ``create_app``)."""

import falcon

from notifier.web import pages, portal


def create_pages(conf, storage, services):
    """Return the pages' falcon app; ``services`` is the API's (``notifier.api.app.Services``)."""
    app = falcon.App(media_type=falcon.MEDIA_HTML)
    app.req_options.strip_url_path_trailing_slash = True
    pages.register_errors(app)
    app.add_route("/web/{name}", pages.Asset())
    app.add_route(
        "/portal/{kind}/{name}/{subscription_id}", portal.PortalPage(conf, services.portal)
    )
    return app
