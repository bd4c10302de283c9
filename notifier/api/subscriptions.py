"""Subscription resources (Zaqar v2 wire format)."""

import time

import falcon

from notifier import errors, sinks, validation
from notifier.api import common


def subscription_view(record, now):
    source = record["source"]
    return {"id": record["id"], "source": source[2],
            "subscriber": sinks.public_subscriber(record["subscriber"]),
            "ttl": record["ttl"], "age": common.age(now, record["created"]),
            "options": record["options"], "confirmed": record["confirmed"]}


def _duplicate():
    return errors.ConflictError(
        "Such subscription already exists. Subscriptions are unique by "
        "project + source + subscriber URI.", field="subscriber")


class SubscriptionCollection:
    def __init__(self, conf, storage, kind="queues"):
        self.conf = conf
        self.storage = storage
        self.kind = kind

    def on_post(self, req, resp, name):
        source = common.source(req, self.kind, name)
        document = common.read_json(req, self.conf.transport.max_request_body_size)
        fields = validation.subscription(document, self.conf)
        if self.storage.subscriber_taken(source, fields["subscriber"], None):
            raise _duplicate()
        requested = fields["subscriber"]
        fields = sinks.prepare_subscription(fields, common.context(req), self.conf)
        created, subscription_id = self.storage.create_subscription(
            source, fields["subscriber"], fields["ttl"], fields["options"],
            confirmed=True, unique_key=requested)
        if not created:
            sinks.release_subscription(fields, self.conf)
            raise _duplicate()
        resp.status = falcon.HTTP_201
        resp.location = f"/v2/{self.kind}/{name}/subscriptions/{subscription_id}"
        resp.media = {"subscription_id": subscription_id}

    def on_get(self, req, resp, name):
        source = common.source(req, self.kind, name)
        limit = validation.limit_param(req.get_param("limit"),
                                       self.conf.transport.max_page_size)
        marker = req.get_param("marker")
        records, cursor = self.storage.subscription_page(source, marker, limit)
        now = time.time()
        items = [subscription_view(r, now) for r in records]
        # The cursor, not the live items, says whether there is more: a page
        # shortened by expired ids still has a next page.
        links = ([{"rel": "next", "href": f"{req.path}?marker={cursor}&limit={limit}"}]
                 if cursor else [])
        resp.media = {"subscriptions": items, "links": links}


class SubscriptionItem:
    def __init__(self, conf, storage, kind="queues"):
        self.conf = conf
        self.storage = storage
        self.kind = kind

    def on_get(self, req, resp, name, subscription_id):
        source = common.source(req, self.kind, name)
        record = self.storage.get_subscription(source, subscription_id)
        resp.media = subscription_view(record, time.time())

    def on_patch(self, req, resp, name, subscription_id):
        source = common.source(req, self.kind, name)
        patch = validation.subscription_patch(
            common.read_json(req, self.conf.transport.max_request_body_size))
        record = self.storage.get_subscription(source, subscription_id)
        merged = {"subscriber": record["subscriber"], "ttl": record["ttl"],
                  "options": record["options"]}
        merged.update(patch)
        fields = validation.subscription(merged, self.conf)
        if self.storage.subscriber_taken(source, fields["subscriber"], subscription_id):
            raise errors.ConflictError("Another subscription of this source has "
                                       "that subscriber.", field="subscriber")
        previous = record["subscriber"]
        now = time.time()
        if "ttl" in patch:
            record["expires"] = now + fields["ttl"]
        record.update(fields)
        self.storage.save_subscription(record, previous_subscriber=previous, now=now)
        resp.status = falcon.HTTP_204

    def on_delete(self, req, resp, name, subscription_id):
        source = common.source(req, self.kind, name)
        try:
            record = self.storage.delete_subscription(source, subscription_id)
        except errors.NotFoundError:
            record = None  # deleting is idempotent, as in Zaqar
        if record:
            sinks.release_subscription(record, self.conf)
        resp.status = falcon.HTTP_204


class SubscriptionAttempts:
    """GET .../subscriptions/{id}/attempts: newest first."""

    def __init__(self, conf, storage, kind="queues"):
        self.conf = conf
        self.storage = storage
        self.kind = kind

    def on_get(self, req, resp, name, subscription_id):
        source = common.source(req, self.kind, name)
        self.storage.get_subscription(source, subscription_id)
        limit = validation.limit_param(req.get_param("limit"), 1000)
        resp.media = {"attempts": self.storage.subscription_attempts(
            subscription_id, limit)}


class DeadLetters:
    """GET .../subscriptions/{id}/dead-letters?since=EPOCH&limit=N: oldest first."""

    def __init__(self, conf, storage, kind="queues"):
        self.conf = conf
        self.storage = storage
        self.kind = kind

    def on_get(self, req, resp, name, subscription_id):
        source = common.source(req, self.kind, name)
        self.storage.get_subscription(source, subscription_id)
        limit = validation.limit_param(req.get_param("limit"), 1000)
        since = validation.since_param(req.get_param("since"))
        resp.media = {"dead_letters": self.storage.dead_letters(
            subscription_id, since=since, limit=limit)}


class Replay:
    """POST .../subscriptions/{id}/replay {"message_id"} or {"since"}: 202."""

    def __init__(self, conf, storage, service, kind="queues"):
        self.conf = conf
        self.storage = storage
        self.service = service
        self.kind = kind

    def on_post(self, req, resp, name, subscription_id):
        source = common.source(req, self.kind, name)
        self.storage.get_subscription(source, subscription_id)
        document = common.read_json(req, self.conf.transport.max_request_body_size)
        request = validation.replay_request(document)
        count = self.service.replay(subscription_id, **request)
        resp.status = falcon.HTTP_202
        resp.media = {"replayed": count}
