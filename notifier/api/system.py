"""Home document, ping and health."""

import json

import falcon

HOME_DOCUMENT = {
    "resources": {
        "rel/queues": {
            "href-template": "/v2/queues{?marker,limit,detailed}",
            "hints": {"allow": ["GET"], "formats": {"application/json": {}}},
        },
        "rel/queue": {
            "href-template": "/v2/queues/{queue_name}",
            "hints": {
                "allow": ["PUT", "GET", "DELETE", "PATCH"],
                "formats": {"application/json": {}},
            },
        },
        "rel/post_messages": {
            "href-template": "/v2/queues/{queue_name}/messages",
            "hints": {
                "allow": ["POST"],
                "formats": {"application/json": {}},
                "accept-post": ["application/json"],
            },
        },
        "rel/message": {
            "href-template": "/v2/queues/{queue_name}/messages/{message_id}",
            "hints": {"allow": ["GET"], "formats": {"application/json": {}}},
        },
        "rel/subscriptions": {
            "href-template": "/v2/queues/{queue_name}/subscriptions{?marker,limit}",
            "hints": {"allow": ["GET", "POST"], "formats": {"application/json": {}}},
        },
        "rel/subscription": {
            "href-template": "/v2/queues/{queue_name}/subscriptions/{subscription_id}",
            "hints": {"allow": ["GET", "PATCH", "DELETE"], "formats": {"application/json": {}}},
        },
        "rel/topics": {
            "href-template": "/v2/topics{?marker,limit,detailed}",
            "hints": {"allow": ["GET"], "formats": {"application/json": {}}},
        },
        "rel/topic": {
            "href-template": "/v2/topics/{topic_name}",
            "hints": {
                "allow": ["PUT", "GET", "DELETE", "PATCH"],
                "formats": {"application/json": {}},
            },
        },
        "rel/post_topic_messages": {
            "href-template": "/v2/topics/{topic_name}/messages",
            "hints": {
                "allow": ["POST"],
                "formats": {"application/json": {}},
                "accept-post": ["application/json"],
            },
        },
        "rel/topic_subscriptions": {
            "href-template": "/v2/topics/{topic_name}/subscriptions{?marker,limit}",
            "hints": {"allow": ["GET", "POST"], "formats": {"application/json": {}}},
        },
        "rel/topic_subscription": {
            "href-template": "/v2/topics/{topic_name}/subscriptions/{subscription_id}",
            "hints": {"allow": ["GET", "PATCH", "DELETE"], "formats": {"application/json": {}}},
        },
        "rel/subscription_confirm": {
            "href-template": "/v2/queues/{queue_name}/subscriptions/{subscription_id}/confirm",
            "hints": {"allow": ["PUT"], "formats": {"application/json": {}}},
        },
        "rel/queue_share": {
            "href-template": "/v2/queues/{queue_name}/share",
            "hints": {"allow": ["POST"], "formats": {"application/json": {}}},
        },
        "rel/ping": {
            "href-template": "/v2/ping",
            "hints": {"allow": ["GET", "HEAD"], "formats": {}},
        },
        "rel/health": {
            "href-template": "/v2/health",
            "hints": {"allow": ["GET", "HEAD"], "formats": {"application/json": {}}},
        },
    }
}


class Home:
    def on_get(self, req, resp):
        resp.content_type = "application/json-home"
        resp.text = json.dumps(HOME_DOCUMENT)


class Ping:
    def on_get(self, req, resp):
        resp.status = falcon.HTTP_204

    on_head = on_get


class Health:
    """Storage and broker reachability: 200 when both answer, else 503."""

    def __init__(self, storage, dispatcher):
        self.storage = storage
        self.dispatcher = dispatcher

    def on_get(self, req, resp):
        checks = {
            "storage_reachable": _answers(self.storage.ping),
            "broker_reachable": _answers(self.dispatcher.ping),
        }
        resp.media = checks
        resp.status = falcon.HTTP_200 if all(checks.values()) else falcon.HTTP_503

    def on_head(self, req, resp):
        self.on_get(req, resp)
        resp.media = None


def _answers(check):
    try:
        return bool(check())
    except Exception:  # any failure means "not reachable"; the body says which
        return False
