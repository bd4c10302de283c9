"""Build the falcon WSGI app; collaborators come in explicitly."""

import logging

import falcon

from notifier.api import confirm, confirm_drivers, openapi, queues, subscriptions, system, topics
from notifier.api import errors as api_errors
from notifier.api.metrics_resource import Metrics
from notifier.api.signed import SignedHeadersAuth
from notifier.conf import broker_url
from notifier.core import confirmation
from notifier.delivery.ingest import MessageWriter
from notifier.delivery.service import DeliveryService
from workers.app import DELIVER_QUEUE, FANOUT_QUEUE

LOG = logging.getLogger(__name__)


def create_app(conf, storage=None, dispatcher=None):
    """Return the WSGI app. Nothing connects until a request needs it.

    Raises ConfirmationConfigError for settings that cannot work
    (require_confirmation without [signed_url] secret_key, an unknown
    confirmation driver). The outermost layer authorises pre-signed requests
    before the auth strategy (``notifier.api.signed``).
    """
    confirmation.check_conf(conf)
    if conf.notification.require_confirmation and not conf.api.public_url:
        LOG.warning(
            "[api] public_url is not set: confirmation messages link to %s",
            confirmation.base_url(conf),
        )
    if storage is None:
        from notifier.store.storage import Storage

        storage = Storage.from_conf(conf)
    if dispatcher is None:
        from workers.app import CeleryDispatcher, create_celery

        dispatcher = CeleryDispatcher(
            create_celery(conf), storage, shares_storage_redis=shares_storage_redis(conf)
        )
    app = falcon.App()
    app.req_options.strip_url_path_trailing_slash = True
    api_errors.register(app)
    add_routes(app, conf, storage, dispatcher)
    auth_app = _with_keystone(app, conf) if conf.auth_strategy == "keystone" else app
    return SignedHeadersAuth(app, auth_app, conf.signed_url.secret_key)


def shares_storage_redis(conf):
    """True when the Celery broker is the storage's own Redis database."""
    return broker_url(conf) == conf.redis_url


def add_routes(app, conf, storage, dispatcher):
    service = DeliveryService(conf, storage, dispatcher)
    app.add_route("/v2", system.Home())
    app.add_route(
        confirmation.PAGE_PATH, confirm.ConfirmationPage(api_origin=confirmation.api_origin(conf))
    )
    app.add_route("/v2/ping", system.Ping())
    app.add_route("/v2/health", system.Health(storage, dispatcher))
    app.add_route("/v2/openapi.json", openapi.OpenAPIDocument())
    app.add_route("/metrics", Metrics(storage, [FANOUT_QUEUE, DELIVER_QUEUE]))
    writer = MessageWriter(storage, dispatcher)  # one per process: groups all posts
    add_source_routes(
        app, conf, storage, writer, service, queues.ProjectScope("queues"), queues.SourceItem
    )
    add_source_routes(
        app, conf, storage, writer, service, topics.TopicScope(storage), topics.TopicItem
    )


def add_source_routes(app, conf, storage, writer, service, scope, item_class):
    """Route /v2/{kind}: the sources, their messages and their subscriptions.

    No message list or claims: topic messages are for delivery only.
    """
    base = f"/v2/{scope.kind}"
    message = base + "/{name}/messages/{message_id}"
    app.add_route(base, queues.SourceCollection(conf, storage, scope))
    app.add_route(base + "/{name}", item_class(conf, storage, scope))
    app.add_route(base + "/{name}/messages", queues.MessageCollection(conf, storage, writer, scope))
    app.add_route(message, queues.MessageItem(storage, scope))
    app.add_route(message + "/attempts", queues.MessageAttempts(storage, scope))
    app.add_route(base + "/{name}/share", confirm.Share(conf, scope))
    add_subscription_routes(app, conf, storage, service, scope.kind, scope)


def add_subscription_routes(app, conf, storage, service, kind, scope=None):
    base = f"/v2/{kind}/{{name}}/subscriptions"
    item = base + "/{subscription_id}"
    app.add_route(base, subscriptions.SubscriptionCollection(conf, storage, kind, scope, service))
    app.add_route(item, subscriptions.SubscriptionItem(conf, storage, kind, scope, service))
    confirmer = confirm.Confirm(conf, storage, service, confirm_drivers.load_driver(conf), scope)
    app.add_route(item + "/confirm", confirmer)
    app.add_route(item + "/confirm/{nonce}", confirmer)
    app.add_route(
        item + "/attempts", subscriptions.SubscriptionAttempts(conf, storage, kind, scope)
    )
    app.add_route(item + "/dead-letters", subscriptions.DeadLetters(conf, storage, kind, scope))
    app.add_route(item + "/replay", subscriptions.Replay(conf, storage, service, kind, scope))
    app.add_route(item + "/enable", subscriptions.Enable(storage, service, kind, scope))
    app.add_route(item + "/secret/rotate", subscriptions.SecretRotation(conf, storage, kind, scope))


def _with_keystone(app, conf):
    """Wrap the app in keystonemiddleware's auth_token filter."""
    from keystonemiddleware import auth_token  # optional dependency

    return auth_token.AuthProtocol(app, {"oslo_config_config": conf})
