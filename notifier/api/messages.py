"""A queue's consumer side over HTTP (Zaqar v2 wire format): listing,
get and delete by ids, pop, delete with a claim id, stats and purge.

Queues only: topic messages are for delivery (their routes answer 405).
The flows are ``notifier.services.messages.MessageService``'s.
"""

import time
from datetime import UTC, datetime

import falcon

from notifier.api import common, queues
from notifier.core import validation


def shown(name, record, now, claim_id=None):
    """Return a message as Zaqar lists it (what python-zaqarclient's
    ``Message`` takes: no other field)."""
    href = f"/v2/queues/{name}/messages/{record['id']}"
    if claim_id:
        href += f"?claim_id={claim_id}"
    return {
        "id": record["id"],
        "href": href,
        "ttl": record["ttl"],
        "age": common.age(now, record["created"]),
        "body": record["body"],
    }


def client(req):
    return validation.client_id(req.get_header("Client-ID"))


def ids_param(req):
    """``?ids=a,b`` or ``?ids=a&ids=b`` (as python-zaqarclient sends a tuple)."""
    return ",".join(req.get_param_as_list("ids") or [])


class ConsumerMessageCollection(queues.MessageCollection):
    """/v2/queues/{name}/messages: POST (the producer side), GET a page or
    ``?ids=``, DELETE ``?ids=`` or ``?pop=N``."""

    def __init__(self, conf, storage, writer, consumer, scope=None):
        super().__init__(conf, storage, writer, scope)
        self.consumer = consumer  # notifier.services.messages.MessageService

    def _source(self, req, name):
        source = self.scope.source(req, name)
        self.scope.before_manage(req, source)
        return source

    def on_get(self, req, resp, name):
        client_id = client(req)
        source = self._source(req, name)
        now = time.time()
        if req.get_param("ids") is not None:
            found = self.consumer.get_many(source, ids_param(req))
            resp.media = {"messages": [shown(name, m.record, now) for m in found]}
            return
        limit = validation.limit_param(req.get_param("limit"), self.conf.transport.max_page_size)
        echo = req.get_param_as_bool("echo", default=False)
        include_claimed = req.get_param_as_bool("include_claimed", default=False)
        include_delayed = req.get_param_as_bool("include_delayed", default=False)
        page = self.consumer.page(
            source,
            req.get_param("marker"),
            limit,
            include_claimed,
            None if echo else client_id,
            include_delayed,
        )
        links = []
        if page:
            query = f"marker={page[-1].rank}&limit={limit}&echo={str(echo).lower()}"
            query += f"&include_claimed={str(include_claimed).lower()}"
            query += f"&include_delayed={str(include_delayed).lower()}"
            links = [{"rel": "next", "href": f"{req.path}?{query}"}]
        resp.media = {"messages": [shown(name, m.record, now) for m in page], "links": links}

    def on_delete(self, req, resp, name):
        client(req)
        source = self._source(req, name)
        pop = req.get_param("pop")
        if pop is not None and req.get_param("ids") is not None:
            raise falcon.HTTPBadRequest(description="Name either ids or pop, not both.")
        if pop is not None:
            now = time.time()
            popped = self.consumer.pop(source, pop)
            resp.media = {"messages": [shown(name, m, now) for m in popped]}
            return
        self.consumer.delete_many(source, ids_param(req))
        resp.status = falcon.HTTP_204


class ConsumerMessageItem(queues.MessageItem):
    """/v2/queues/{name}/messages/{id}: GET, and DELETE (``?claim_id=``)."""

    def __init__(self, storage, consumer, scope=None):
        super().__init__(storage, scope)
        self.consumer = consumer

    def on_delete(self, req, resp, name, message_id):
        client(req)
        source = self.scope.source(req, name)
        self.scope.before_manage(req, source)
        self.consumer.delete(source, message_id, req.get_param("claim_id"))
        resp.status = falcon.HTTP_204


def iso(epoch):
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Stats:
    """GET /v2/queues/{name}/stats."""

    def __init__(self, consumer, scope=None):
        self.consumer = consumer
        self.scope = scope or queues.ProjectScope()

    def on_get(self, req, resp, name):
        source = self.scope.source(req, name)
        self.scope.before_manage(req, source)
        stats = self.consumer.stats(source)
        messages = {
            "free": stats.free,
            "claimed": stats.claimed,
            "delayed": stats.delayed,
            "total": stats.total,
        }
        now = time.time()
        for end, record in (("oldest", stats.oldest), ("newest", stats.newest)):
            if record is not None:
                messages[end] = {
                    "id": record["id"],
                    "href": f"/v2/queues/{name}/messages/{record['id']}",
                    "age": common.age(now, record["created"]),
                    "created": iso(record["created"]),
                }
        resp.media = {"messages": messages}


class Purge:
    """POST /v2/queues/{name}/purge {"resource_types": [...]}."""

    def __init__(self, conf, consumer, scope=None):
        self.conf = conf
        self.consumer = consumer
        self.scope = scope or queues.ProjectScope()

    def on_post(self, req, resp, name):
        source = self.scope.source(req, name)
        self.scope.before_manage(req, source)
        document = None
        if common.has_body(req):
            document = common.read_json(req, self.conf.transport.max_request_body_size)
        self.consumer.purge(source, document)
        resp.status = falcon.HTTP_204
