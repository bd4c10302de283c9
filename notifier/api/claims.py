"""Claims on a queue's messages over HTTP (Zaqar v2 wire format).

POST /v2/queues/{name}/claims?limit= {"ttl", "grace"} claims the oldest free
messages (201 with them; 204 when there are none); GET, PATCH and DELETE
/claims/{claim_id} read, renew and release a claim.
"""

import time

import falcon

from notifier.api import common, queues
from notifier.api.messages import client, shown


class ClaimCollection:
    def __init__(self, conf, consumer, scope=None):
        self.conf = conf
        self.consumer = consumer  # notifier.services.messages.MessageService
        self.scope = scope or queues.ProjectScope()

    def on_post(self, req, resp, name):
        client(req)
        source = self.scope.source(req, name)
        self.scope.before_manage(req, source)
        document = None
        if common.has_body(req):
            document = common.read_json(req, self.conf.transport.max_request_body_size)
        claim_id, messages = self.consumer.claim(source, req.get_param("limit"), document)
        if not messages:
            resp.status = falcon.HTTP_204
            return
        now = time.time()
        resp.status = falcon.HTTP_201
        resp.location = f"/v2/queues/{name}/claims/{claim_id}"
        resp.media = {"messages": [shown(name, m, now, claim_id) for m in messages]}


class ClaimItem:
    def __init__(self, conf, consumer, scope=None):
        self.conf = conf
        self.consumer = consumer
        self.scope = scope or queues.ProjectScope()

    def _source(self, req, name):
        client(req)
        source = self.scope.source(req, name)
        self.scope.before_manage(req, source)
        return source

    def on_get(self, req, resp, name, claim_id):
        claim, messages = self.consumer.get_claim(self._source(req, name), claim_id)
        now = time.time()
        resp.media = {
            "age": common.age(now, claim.created),
            "ttl": claim.ttl,
            "grace": claim.grace,
            "href": f"/v2/queues/{name}/claims/{claim.id}",
            "messages": [shown(name, m, now, claim.id) for m in messages],
        }

    def on_patch(self, req, resp, name, claim_id):
        source = self._source(req, name)
        document = common.read_json(req, self.conf.transport.max_request_body_size)
        self.consumer.renew_claim(source, claim_id, document)
        resp.status = falcon.HTTP_204

    def on_delete(self, req, resp, name, claim_id):
        self.consumer.release_claim(self._source(req, name), claim_id)
        resp.status = falcon.HTTP_204
