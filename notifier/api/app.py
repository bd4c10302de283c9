"""Build the falcon WSGI app; collaborators come in explicitly."""

import logging

import falcon

from notifier.api import (
    claims,
    confirm,
    confirm_drivers,
    messages,
    openapi,
    portal,
    queues,
    subscriptions,
    system,
    topics,
)
from notifier.api import errors as api_errors
from notifier.api.metrics_resource import Metrics
from notifier.api.signed import SignedHeadersAuth
from notifier.core import confirmation
from notifier.delivery.ingest import MessageWriter
from notifier.delivery.service import DeliveryService
from notifier.services.confirmations import ConfirmationService
from notifier.services.messages import MessageService
from notifier.services.portal import PortalService
from notifier.services.sources import SourceService
from notifier.services.subscriptions import SubscriptionService

LOG = logging.getLogger(__name__)


def create_app(conf, storage, dispatcher, task_queues=(), pages=None):
    """Return the WSGI app. Nothing connects until a request needs it.

    ``dispatcher`` sends fan-out and delivery tasks (the composition root
    passes the Celery one, ``workers.app.CeleryDispatcher``); ``task_queues``
    names its queues, whose depths /metrics shows.

    Raises ConfirmationConfigError for settings that cannot work
    (require_confirmation without [signed_url] secret_key, an unknown
    confirmation driver). The outermost layer authorises pre-signed requests
    before the auth strategy (``notifier.api.signed``).

    ``pages`` (the composition root passes ``notifier.web.app.create_pages``)
    builds the web pages' WSGI app from the services; it serves the paths
    under ``/portal``, ``/console`` and ``/web/``, which carry their own
    signed links and never reach the API's auth.
    """
    confirmation.check_conf(conf)
    if conf.notification.require_confirmation and not conf.api.public_url:
        LOG.warning(
            "[api] public_url is not set: confirmation messages link to %s",
            confirmation.base_url(conf),
        )
    app = falcon.App()
    app.req_options.strip_url_path_trailing_slash = True
    api_errors.register(app)
    services = add_routes(app, conf, storage, dispatcher, task_queues)
    auth_app = _with_keystone(app, conf) if conf.auth_strategy == "keystone" else app
    api = SignedHeadersAuth(app, auth_app, conf.signed_url.secret_key)
    if not pages:
        return api
    if conf.auth_strategy == "keystone":
        # The console takes a Keystone token: its pages pass the middleware,
        # which decides nothing itself (the page asks for a token).
        web = pages(
            conf, storage, services, keystone=lambda inner: _with_keystone(inner, conf, True)
        )
    else:
        web = pages(conf, storage, services)
    return PathDispatch(api, web)


class PathDispatch:
    """WSGI: the web pages' paths to ``pages``, everything else to ``api``."""

    PREFIXES = ("/portal/", "/console", "/web/")

    def __init__(self, api, pages):
        self.api = api
        self.pages = pages

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        target = self.pages if path.startswith(self.PREFIXES) else self.api
        return target(environ, start_response)


class Services:
    """The application services the resources call, built once per app."""

    def __init__(self, conf, storage, dispatcher):
        self.delivery = DeliveryService(conf, storage, dispatcher)
        self.confirmations = ConfirmationService(
            conf, storage, self.delivery, confirm_drivers.load_driver(conf)
        )
        self.subscriptions = SubscriptionService(conf, storage, self.confirmations)
        self.sources = SourceService(conf, storage)
        self.messages = MessageService(conf, storage)
        self.writer = MessageWriter(storage, dispatcher)  # one per process: groups all posts
        self.portal = PortalService(
            conf, storage, self.subscriptions, self.confirmations, self.delivery
        )


def add_routes(app, conf, storage, dispatcher, task_queues=()):
    services = Services(conf, storage, dispatcher)
    app.add_route("/v2", system.Home())
    app.add_route(
        confirmation.PAGE_PATH, confirm.ConfirmationPage(api_origin=confirmation.api_origin(conf))
    )
    app.add_route("/v2/ping", system.Ping())
    app.add_route("/v2/health", system.Health(storage, dispatcher))
    app.add_route("/v2/openapi.json", openapi.OpenAPIDocument())
    app.add_route("/metrics", Metrics(storage, list(task_queues)))
    add_source_routes(app, conf, storage, services, queues.ProjectScope("queues"))
    add_source_routes(app, conf, storage, services, topics.TopicScope(storage))
    return services


def add_source_routes(app, conf, storage, services, scope):
    """Route /v2/{kind}: the sources, their messages and their subscriptions.

    Queues also have their consumer side (listing, claims, pop, stats,
    purge); topic messages are for delivery only.
    """
    base = f"/v2/{scope.kind}"
    message = base + "/{name}/messages/{message_id}"
    app.add_route(base, queues.SourceCollection(conf, storage, scope))
    app.add_route(base + "/{name}", queues.SourceItem(conf, storage, services.sources, scope))
    if scope.kind == "queues":
        add_consumer_routes(app, conf, storage, services, scope)
    else:
        collection = queues.MessageCollection(conf, storage, services.writer, scope)
        app.add_route(base + "/{name}/messages", collection)
        app.add_route(message, queues.MessageItem(storage, scope))
    app.add_route(message + "/attempts", queues.MessageAttempts(storage, scope))
    app.add_route(base + "/{name}/share", confirm.Share(conf, scope))
    add_subscription_routes(app, conf, services, scope)


def add_consumer_routes(app, conf, storage, services, scope):
    base = "/v2/queues/{name}"
    consumer = services.messages
    collection = messages.ConsumerMessageCollection(conf, storage, services.writer, consumer, scope)
    app.add_route(base + "/messages", collection)
    app.add_route(
        base + "/messages/{message_id}", messages.ConsumerMessageItem(storage, consumer, scope)
    )
    app.add_route(base + "/stats", messages.Stats(consumer, scope))
    app.add_route(base + "/purge", messages.Purge(conf, consumer, scope))
    app.add_route(base + "/claims", claims.ClaimCollection(conf, consumer, scope))
    app.add_route(base + "/claims/{claim_id}", claims.ClaimItem(conf, consumer, scope))


def add_subscription_routes(app, conf, services, scope):
    base = f"/v2/{scope.kind}/{{name}}/subscriptions"
    item = base + "/{subscription_id}"
    kind, managed = scope.kind, services.subscriptions
    app.add_route(base, subscriptions.SubscriptionCollection(conf, managed, kind, scope))
    app.add_route(item, subscriptions.SubscriptionItem(conf, managed, kind, scope))
    confirmer = confirm.Confirm(conf, services.confirmations, scope)
    app.add_route(item + "/confirm", confirmer)
    app.add_route(item + "/confirm/{nonce}", confirmer)
    app.add_route(
        item + "/attempts", subscriptions.SubscriptionAttempts(conf, managed, kind, scope)
    )
    app.add_route(item + "/dead-letters", subscriptions.DeadLetters(conf, managed, kind, scope))
    replay = subscriptions.Replay(conf, managed, services.delivery, kind, scope)
    app.add_route(item + "/replay", replay)
    enable = subscriptions.Enable(conf, managed, services.delivery, kind, scope)
    app.add_route(item + "/enable", enable)
    app.add_route(item + "/secret/rotate", subscriptions.SecretRotation(conf, managed, kind, scope))
    app.add_route(item + "/portal", portal.PortalLink(conf, managed, services.portal, kind, scope))


def _with_keystone(app, conf, delay_auth_decision=False):
    """Wrap the app in keystonemiddleware's auth_token filter."""
    from keystonemiddleware import auth_token  # optional dependency

    local = {"oslo_config_config": conf}
    if delay_auth_decision:  # the app answers requests without a valid token
        local["delay_auth_decision"] = "true"
    return auth_token.AuthProtocol(app, local)
