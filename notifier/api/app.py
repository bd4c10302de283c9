"""Build the falcon WSGI app; collaborators come in explicitly."""

import falcon

from notifier.api import errors as api_errors
from notifier.api import queues, subscriptions, system
from notifier.service import DeliveryService


def create_app(conf, storage=None, dispatcher=None):
    """Return the WSGI app. Nothing connects until a request needs it."""
    if storage is None:
        from notifier.storage import Storage
        storage = Storage.from_conf(conf)
    if dispatcher is None:
        from workers.app import CeleryDispatcher, create_celery
        dispatcher = CeleryDispatcher(create_celery(conf))
    app = falcon.App()
    app.req_options.strip_url_path_trailing_slash = True
    api_errors.register(app)
    add_routes(app, conf, storage, dispatcher)
    if conf.auth_strategy == "keystone":
        return _with_keystone(app, conf)
    return app


def add_routes(app, conf, storage, dispatcher):
    service = DeliveryService(conf, storage, dispatcher)
    app.add_route("/v2", system.Home())
    app.add_route("/v2/ping", system.Ping())
    app.add_route("/v2/health", system.Health(storage, dispatcher))
    app.add_route("/v2/queues", queues.QueueCollection(conf, storage))
    app.add_route("/v2/queues/{name}", queues.QueueItem(conf, storage))
    app.add_route("/v2/queues/{name}/messages",
                  queues.MessageCollection(conf, storage, dispatcher))
    app.add_route("/v2/queues/{name}/messages/{message_id}",
                  queues.MessageItem(storage))
    app.add_route("/v2/queues/{name}/messages/{message_id}/attempts",
                  queues.MessageAttempts(storage))
    add_subscription_routes(app, conf, storage, service, "queues")


def add_subscription_routes(app, conf, storage, service, kind):
    base = f"/v2/{kind}/{{name}}/subscriptions"
    item = base + "/{subscription_id}"
    app.add_route(base, subscriptions.SubscriptionCollection(conf, storage, kind))
    app.add_route(item, subscriptions.SubscriptionItem(conf, storage, kind))
    app.add_route(item + "/attempts",
                  subscriptions.SubscriptionAttempts(conf, storage, kind))
    app.add_route(item + "/dead-letters", subscriptions.DeadLetters(conf, storage, kind))
    app.add_route(item + "/replay", subscriptions.Replay(conf, storage, service, kind))


def _with_keystone(app, conf):
    """Wrap the app in keystonemiddleware's auth_token filter."""
    from keystonemiddleware import auth_token  # optional dependency

    return auth_token.AuthProtocol(app, {"oslo_config_config": conf})
