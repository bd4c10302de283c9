"""Queue and topic resources and their messages (Zaqar v2 wire format).

A resource serves one ``kind`` of source and asks a *scope* which source a
request addresses and whether the requester may act on it. Queues use
``ProjectScope`` (a project owns every queue it names); topics use
``notifier.api.topics.TopicScope``.
"""

import time

import falcon

from notifier.api import common
from notifier.core import validation
from notifier.errors import NotFoundError

PATCH_MEDIA_TYPE = "application/openstack-messaging-v2.0-json-patch"


class ProjectScope:
    """Who may do what with a source: its own project, everything (queues).

    ``source(req, name)`` returns the source a request addresses; the
    ``before_*`` hooks raise (ForbiddenError, NotFoundError) to refuse.
    """

    def __init__(self, kind="queues"):
        self.kind = kind

    def source(self, req, name):
        return common.source(req, self.kind, name)

    def list_project(self, req):
        """Return the project whose sources a list request shows."""
        return common.project(req)

    def before_manage(self, req, source):
        """Called before reading or changing the source itself or its messages."""

    def before_publish(self, req, source):
        """Called before messages are posted."""

    def before_subscribe(self, req, source, subscriber, record=None):
        """Called before a subscription is created, or (``record``) repointed."""

    def subscriber_project(self, req, source):
        """Return the project to record on a new subscription, or None."""
        return None

    def sees(self, req, source, record):
        """Return whether the requester may see and manage a subscription."""
        return True

    def owns(self, req, source, record):
        """Return whether the subscription belongs to the requester's project:
        only then may it be changed, its secret rotated, and its options and
        endpoint's replies be shown whole."""
        return True

    def index_key(self, project, subscriber):
        """Return the key under which a subscriber is unique in a source."""
        return subscriber

    def shown_attempts(self, req, source, attempts):
        """Return a message's attempts as the requester may see them."""
        return attempts

    def access(self, req):
        """Return this scope's answers for ``req``: what the services ask."""
        return RequestAccess(self, req)


class RequestAccess:
    """A scope bound to one request (``notifier.services.access.Access``)."""

    def __init__(self, scope, req):
        self.scope = scope
        self.req = req

    @property
    def context(self):
        return common.context(self.req)

    def before_subscribe(self, source, subscriber, record=None):
        self.scope.before_subscribe(self.req, source, subscriber, record)

    def subscriber_project(self, source):
        return self.scope.subscriber_project(self.req, source)

    def sees(self, source, record):
        return self.scope.sees(self.req, source, record)

    def owns(self, source, record):
        return self.scope.owns(self.req, source, record)

    def index_key(self, project, subscriber):
        return self.scope.index_key(project, subscriber)


class SourceCollection:
    """GET /v2/{kind}: the project's queues (or topics), paged by name."""

    def __init__(self, conf, storage, scope=None):
        self.conf = conf
        self.storage = storage
        self.scope = scope or ProjectScope()

    def on_get(self, req, resp):
        kind = self.scope.kind
        project = self.scope.list_project(req)
        limit = validation.limit_param(req.get_param("limit"), self.conf.transport.max_page_size)
        marker = req.get_param("marker")
        detailed = req.get_param_as_bool("detailed", default=False)
        names = self.storage.list_sources(project, kind, marker, limit)
        items = []
        for name in names:
            entry = {"name": name, "href": f"/v2/{kind}/{name}"}
            if detailed:
                entry["metadata"] = self.storage.source_metadata_or_empty(
                    self.scope.source(req, name)
                )
            items.append(entry)
        resp.media = {
            kind: items,
            "links": common.next_link(req, names, limit, names[-1] if names else None),
        }


class SourceItem:
    """PUT/GET/PATCH/DELETE /v2/{kind}/{name}: a source's metadata."""

    def __init__(self, conf, storage, sources, scope=None):
        self.conf = conf
        self.storage = storage
        self.sources = sources  # notifier.services.sources.SourceService
        self.scope = scope or ProjectScope()

    def _source(self, req, name):
        source = self.scope.source(req, name)
        self.scope.before_manage(req, source)
        return source

    def on_put(self, req, resp, name):
        source = self._source(req, name)
        body = {}
        if common.has_body(req):
            body = common.read_json(req, self.conf.transport.max_request_body_size)
        created = self.sources.put(source, body)
        resp.status = falcon.HTTP_201 if created else falcon.HTTP_204
        resp.location = f"/v2/{self.scope.kind}/{name}"

    def on_get(self, req, resp, name):
        resp.media = self.storage.get_source_metadata(self._source(req, name))

    def on_delete(self, req, resp, name):
        self.sources.delete(self._source(req, name))
        resp.status = falcon.HTTP_204

    def on_patch(self, req, resp, name):
        source = self._source(req, name)
        if (req.content_type or "").split(";")[0].strip() != PATCH_MEDIA_TYPE:
            raise falcon.HTTPUnsupportedMediaType(
                description=f"PATCH takes Content-Type {PATCH_MEDIA_TYPE}."
            )
        ops = common.read_json(req, self.conf.transport.max_request_body_size)
        resp.media = self.sources.patch(source, ops)


def _all_name(document, fields):
    """Whether every message names each of ``fields`` (then the source's
    defaults are not needed: a Redis round trip saved per POST)."""
    messages = document.get("messages") if isinstance(document, dict) else document
    return isinstance(messages, list) and all(
        isinstance(m, dict) and all(f in m for f in fields) for m in messages
    )


class MessageCollection:
    """POST stores messages and enqueues their fan-out before answering 201."""

    def __init__(self, conf, storage, writer, scope=None):
        self.conf = conf
        self.storage = storage
        self.writer = writer
        self.scope = scope or ProjectScope()

    def on_post(self, req, resp, name):
        source = self.scope.source(req, name)
        client_id = validation.client_id(req.get_header("Client-ID"))
        self.scope.before_publish(req, source)
        document = common.read_json(req, self.conf.transport.max_messages_post_size)
        default_ttl = self.conf.transport.default_message_ttl
        default_delay = 0
        # Topics have no default delay; a queue's _default_message_delay
        # applies to the messages that name no delay of their own.
        defaulted = ("ttl",) if self.scope.kind == "topics" else ("ttl", "delay")
        if not _all_name(document, defaulted):
            metadata = self.storage.source_metadata_or_empty(source)
            default_ttl = metadata.get("_default_message_ttl", default_ttl)
            default_delay = metadata.get(validation.DEFAULT_MESSAGE_DELAY, 0)
        messages = validation.messages(document, self.conf, default_ttl, default_delay)
        if self.scope.kind == "queues":  # listing with echo=false hides the poster's own
            messages = [dict(m, client_id=client_id) for m in messages]
        ids = self.writer.post(source, messages, req.content_length or 0)
        base = f"/v2/{self.scope.kind}/{name}/messages"
        resp.status = falcon.HTTP_201
        resp.location = f"{base}?ids={','.join(ids)}"
        resp.media = {"resources": [f"{base}/{i}" for i in ids]}


class MessageItem:
    def __init__(self, storage, scope=None):
        self.storage = storage
        self.scope = scope or ProjectScope()

    def on_get(self, req, resp, name, message_id):
        source = self.scope.source(req, name)
        validation.client_id(req.get_header("Client-ID"))
        self.scope.before_manage(req, source)
        message = self.storage.get_message(source, message_id)
        resp.media = {
            "id": message["id"],
            "href": f"/v2/{self.scope.kind}/{name}/messages/{message['id']}",
            "ttl": message["ttl"],
            "age": common.age(time.time(), message["created"]),
            "body": message["body"],
        }
        for field in ("filter_policies", "attributes"):
            if field in message:
                resp.media[field] = message[field]


class MessageAttempts:
    """GET .../messages/{id}/attempts: every subscription's attempts, newest first."""

    def __init__(self, storage, scope=None):
        self.storage = storage
        self.scope = scope or ProjectScope()

    def on_get(self, req, resp, name, message_id):
        source = self.scope.source(req, name)
        self.scope.before_manage(req, source)
        limit = validation.limit_param(req.get_param("limit"), 1000)
        attempts = source_attempts(self.storage, source, message_id, limit)
        resp.media = {"attempts": self.scope.shown_attempts(req, source, attempts)}


def source_attempts(storage, source, message_id, limit):
    """Return the attempts of ``source``'s message ``message_id``, or raise
    NotFoundError: message ids are global, so the log is filtered by the
    source each attempt records, and a message of another source (another
    project's) is a 404 like an unknown one. Attempts recorded before the
    source was (no ``source``) show only while the message is the source's."""
    wanted = source.to_list()
    attempts = storage.message_attempts(message_id, limit)
    shown = [a for a in attempts if a.get("source") == wanted]
    if any("source" not in a for a in attempts) and _message_of(storage, source, message_id):
        shown = [a for a in attempts if a.get("source", wanted) == wanted]
    if not shown:
        storage.get_message(source, message_id)  # 404 unless it is this source's
    return shown


def _message_of(storage, source, message_id):
    try:
        return storage.get_message(source, message_id)
    except NotFoundError:
        return None
