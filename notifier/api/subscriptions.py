"""Subscription resources of queues and topics (Zaqar v2 wire format).

Each resource asks its scope (``notifier.api.queues.ProjectScope`` for
queues, ``notifier.api.topics.TopicScope`` for topics) which source a request
addresses, and hands the scope bound to the request to the subscription
service (``notifier.services.subscriptions``), which decides what the
requester may see and change; one it may not see is a 404, as if it did not
exist.
"""

import time

import falcon

from notifier import sinks
from notifier.api import common
from notifier.api.queues import ProjectScope
from notifier.core import validation

HIDDEN = "<hidden>"


def hidden_options(options):
    """Return options without the subscriber's tokens (post_headers values,
    post_data), for a project that sees a subscription it does not own."""
    shown = dict(options)
    if isinstance(shown.get("post_headers"), dict):
        shown["post_headers"] = dict.fromkeys(shown["post_headers"], HIDDEN)
    if "post_data" in shown:
        shown["post_data"] = HIDDEN
    return shown


def subscription_view(record, now, owned=True):
    source = record["source"]
    view = {
        "id": record["id"],
        "source": source[2],
        "subscriber": (sinks.public_subscriber if owned else sinks.shown_subscriber)(
            record["subscriber"]
        ),
        "ttl": record["ttl"],
        "age": common.age(now, record["created"]),
        "options": record["options"] if owned else hidden_options(record["options"]),
        "confirmed": record["confirmed"],
        "disabled": bool(record.get("disabled")),
        **({"disabled_reason": record["disabled_reason"]} if record.get("disabled") else {}),
    }
    if source[1] == "topics":  # topic subscribers may come from other projects
        view["project"] = record.get("project", source[0])
    return view


class SubscriptionResource:
    """Base of the resources: collaborators, and the request's source and access."""

    def __init__(self, conf, subscriptions, kind="queues", scope=None):
        self.conf = conf
        self.subscriptions = subscriptions  # notifier.services.subscriptions
        self.kind = kind
        self.scope = scope or ProjectScope(kind)

    def _addressed(self, req, name):
        """Return the source a request addresses and the requester's access."""
        return self.scope.source(req, name), self.scope.access(req)

    def _body(self, req):
        return common.read_json(req, self.conf.transport.max_request_body_size)


class SubscriptionCollection(SubscriptionResource):
    """POST creates (201, and the signing secret, shown once); GET lists."""

    def on_post(self, req, resp, name):
        source, access = self._addressed(req, name)
        created = self.subscriptions.create(access, source, self._body(req))
        resp.status = falcon.HTTP_201
        resp.location = f"/v2/{self.kind}/{name}/subscriptions/{created.subscription_id}"
        # Secrets (a webhook signing secret) are shown here once, never again.
        resp.media = dict(created.reveal, subscription_id=created.subscription_id)

    def on_get(self, req, resp, name):
        source, access = self._addressed(req, name)
        limit = validation.limit_param(req.get_param("limit"), self.conf.transport.max_page_size)
        marker = req.get_param("marker")
        shown, cursor = self.subscriptions.page(access, source, marker, limit)
        now = time.time()
        items = [subscription_view(record, now, owned) for record, owned in shown]
        # The cursor, not the live items, says whether there is more: a page
        # shortened by expired or hidden ids still has a next page.
        links = (
            [{"rel": "next", "href": f"{req.path}?marker={cursor}&limit={limit}"}] if cursor else []
        )
        resp.media = {"subscriptions": items, "links": links}


class SubscriptionItem(SubscriptionResource):
    def on_get(self, req, resp, name, subscription_id):
        source, access = self._addressed(req, name)
        record = self.subscriptions.visible(access, source, subscription_id)
        resp.media = subscription_view(record, time.time(), access.owns(source, record))

    def on_patch(self, req, resp, name, subscription_id):
        source, access = self._addressed(req, name)
        patch = validation.subscription_patch(self._body(req))
        self.subscriptions.update(access, source, subscription_id, patch)
        resp.status = falcon.HTTP_204

    def on_delete(self, req, resp, name, subscription_id):
        source, access = self._addressed(req, name)
        self.subscriptions.delete(access, source, subscription_id)
        resp.status = falcon.HTTP_204


class SubscriptionAttempts(SubscriptionResource):
    """GET .../subscriptions/{id}/attempts: newest first."""

    def on_get(self, req, resp, name, subscription_id):
        source, access = self._addressed(req, name)
        limit = validation.limit_param(req.get_param("limit"), 1000)
        attempts = self.subscriptions.attempts(access, source, subscription_id, limit)
        resp.media = {"attempts": attempts}


class DeadLetters(SubscriptionResource):
    """GET .../subscriptions/{id}/dead-letters?since=EPOCH&limit=N: oldest first."""

    def on_get(self, req, resp, name, subscription_id):
        source, access = self._addressed(req, name)
        limit = validation.limit_param(req.get_param("limit"), 1000)
        since = validation.since_param(req.get_param("since"))
        letters = self.subscriptions.dead_letters(access, source, subscription_id, since, limit)
        resp.media = {"dead_letters": letters}


class Replay(SubscriptionResource):
    """POST .../subscriptions/{id}/replay {"message_id"} or {"since"}: 202."""

    def __init__(self, conf, subscriptions, delivery, kind="queues", scope=None):
        super().__init__(conf, subscriptions, kind, scope)
        self.delivery = delivery  # DeliveryService

    def on_post(self, req, resp, name, subscription_id):
        source, access = self._addressed(req, name)
        self.subscriptions.visible(access, source, subscription_id)
        request = validation.replay_request(self._body(req))
        count = self.delivery.replay(subscription_id, **request)
        resp.status = falcon.HTTP_202
        resp.media = {"replayed": count}


class SecretRotation(SubscriptionResource):
    """POST .../subscriptions/{id}/secret/rotate: a new signing secret, shown
    once; the previous one keeps signing for the grace period."""

    def on_post(self, req, resp, name, subscription_id):
        source, access = self._addressed(req, name)
        secret, valid_until = self.subscriptions.rotate_secret(access, source, subscription_id)
        resp.status = falcon.HTTP_201
        resp.media = {"secret": secret, "previous_valid_until": valid_until}


class Enable(SubscriptionResource):
    """POST .../subscriptions/{id}/enable: resume a disabled subscription and
    send the deliveries held while it was disabled."""

    def __init__(self, conf, subscriptions, delivery, kind="queues", scope=None):
        super().__init__(conf, subscriptions, kind, scope)
        self.delivery = delivery  # DeliveryService

    def on_post(self, req, resp, name, subscription_id):
        source, access = self._addressed(req, name)
        record = self.subscriptions.visible(access, source, subscription_id)
        resp.media = {"released": self.delivery.enable(record)}
