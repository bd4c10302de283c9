"""Subscription resources of queues and topics (Zaqar v2 wire format).

Each resource asks its scope (``notifier.api.queues.ProjectScope`` for
queues, ``notifier.api.topics.TopicScope`` for topics) which source a request
addresses, whether the requester may subscribe, and which subscriptions it
may see; one it may not see is a 404, as if it did not exist.
"""

import time

import falcon

from notifier import errors, sinks
from notifier.api import common
from notifier.api.confirm import (
    check_confirmable,
    check_confirmation_rate,
    needs_confirmation,
    new_nonce,
    send_confirmation,
)
from notifier.api.queues import ProjectScope, without_replies
from notifier.core import confirmation, validation

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
        "subscriber": sinks.public_subscriber(record["subscriber"]),
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


def _duplicate():
    return errors.ConflictError(
        "Such subscription already exists. Subscriptions are unique by "
        "project + source + subscriber URI.",
        field="subscriber",
    )


class SubscriptionResource:
    """Base of the resources: collaborators, and the subscription lookup."""

    def __init__(self, conf, storage, kind="queues", scope=None, service=None):
        self.conf = conf
        self.storage = storage
        self.kind = kind
        self.scope = scope or ProjectScope(kind)
        self.service = service  # DeliveryService: sends confirmations

    def _record(self, req, source, subscription_id):
        """Return a subscription of ``source`` the requester may see, else 404."""
        record = self.storage.get_subscription(source, subscription_id)
        if not self.scope.sees(req, source, record):
            raise errors.NotFoundError(f"Subscription {subscription_id!r} does not exist.")
        return record

    def _owned_record(self, req, source, subscription_id):
        """Return a subscription of the requester's own project, else 404
        (unseen) or 403 (the topic owner's view of another's subscription)."""
        record = self._record(req, source, subscription_id)
        if not self.scope.owns(req, source, record):
            raise errors.ForbiddenError(
                f"Subscription {subscription_id!r} belongs to project "
                f"{record.get('project')!r}: only that project may change it."
            )
        return record


class SubscriptionCollection(SubscriptionResource):
    """POST creates; with ``require_confirmation`` a webhook or e-mail
    subscription starts unconfirmed and is sent a SubscriptionConfirmation.
    The same subscriber again re-sends it while unconfirmed (201, same id,
    no secret shown again) and is a 409 once confirmed."""

    def on_post(self, req, resp, name):
        source = self.scope.source(req, name)
        document = common.read_json(req, self.conf.transport.max_request_body_size)
        fields = validation.subscription(document, self.conf)
        self.scope.before_subscribe(req, source, fields["subscriber"])
        requested = fields["subscriber"]
        project = self.scope.subscriber_project(req, source)
        key = self.scope.index_key(project or source.project, requested)
        confirming = needs_confirmation(self.conf, requested)
        unsent = {}
        if confirming:
            check_confirmable(requested, fields["options"])
            check_confirmation_rate(self.conf, self.storage, project or source.project, requested)
            # A nonce no link carries: nothing confirms it until its
            # confirmation message sets the real one.
            unsent = {confirmation.NONCE_FIELD: new_nonce()}
        if not confirming and self.storage.subscriber_taken(source, key, None):
            raise _duplicate()
        fields = sinks.prepare_subscription(fields, common.context(req), self.conf)
        try:
            created, subscription_id = self.storage.create_subscription(
                source,
                fields["subscriber"],
                fields["ttl"],
                fields["options"],
                confirmed=not confirming,
                unique_key=key,
                extra=dict(fields.get("extra") or {}, **unsent),
                project=project,
            )
        except errors.QuotaExceededError:
            sinks.release_subscription(fields, self.conf)  # e.g. the trust just made
            raise
        reveal = fields.get("reveal") or {}
        if not created:
            sinks.release_subscription(fields, self.conf)
            record = self._existing(source, subscription_id) if confirming else None
            if (
                not record
                or record.get("confirmed", True)
                or not self.scope.sees(req, source, record)
            ):
                raise _duplicate()
            reveal = {}  # the secret was shown when it was created
        else:
            record = {"id": subscription_id, "source": source.to_list()}
        if confirming:
            send_confirmation(self.conf, self.service, record)
        resp.status = falcon.HTTP_201
        resp.location = f"/v2/{self.kind}/{name}/subscriptions/{subscription_id}"
        # Secrets (a webhook signing secret) are shown here once, never again.
        resp.media = dict(reveal, subscription_id=subscription_id)

    def _existing(self, source, subscription_id):
        try:
            return self.storage.get_subscription(source, subscription_id)
        except errors.NotFoundError:  # expired a moment ago
            return None

    def on_get(self, req, resp, name):
        source = self.scope.source(req, name)
        limit = validation.limit_param(req.get_param("limit"), self.conf.transport.max_page_size)
        marker = req.get_param("marker")
        records, cursor = self.storage.subscription_page(source, marker, limit)
        now = time.time()
        items = [
            subscription_view(r, now, self.scope.owns(req, source, r))
            for r in records
            if self.scope.sees(req, source, r)
        ]
        # The cursor, not the live items, says whether there is more: a page
        # shortened by expired or hidden ids still has a next page.
        links = (
            [{"rel": "next", "href": f"{req.path}?marker={cursor}&limit={limit}"}] if cursor else []
        )
        resp.media = {"subscriptions": items, "links": links}


class SubscriptionItem(SubscriptionResource):
    def on_get(self, req, resp, name, subscription_id):
        source = self.scope.source(req, name)
        record = self._record(req, source, subscription_id)
        resp.media = subscription_view(record, time.time(), self.scope.owns(req, source, record))

    def on_patch(self, req, resp, name, subscription_id):
        source = self.scope.source(req, name)
        patch = validation.subscription_patch(
            common.read_json(req, self.conf.transport.max_request_body_size)
        )
        if isinstance(patch.get("options"), dict) and "secret" in patch["options"]:
            raise errors.ValidationError(
                "options.secret is set at creation only; rotate it with POST .../secret/rotate.",
                field="options.secret",
            )
        record = self._owned_record(req, source, subscription_id)
        merged = {
            "subscriber": record["subscriber"],
            "ttl": record["ttl"],
            "options": record["options"],
        }
        merged.update(patch)
        fields = validation.subscription(merged, self.conf)
        requested = fields["subscriber"]
        if needs_confirmation(self.conf, requested):
            check_confirmable(requested, fields["options"])
        if fields["subscriber"] != record["subscriber"]:
            self.scope.before_subscribe(req, source, fields["subscriber"], record)
        old_key = record.get("unique_key", record["subscriber"])
        key = self.scope.index_key(record.get("project", source.project), requested)
        if self.storage.subscriber_taken(source, key, subscription_id):
            raise errors.ConflictError(
                "Another subscription of this source has that subscriber.", field="subscriber"
            )
        before = dict(record)
        now = time.time()
        if "ttl" in patch:
            record["expires"] = now + fields["ttl"]
        record.update(fields)
        # e.g. a trust+ subscriber gets a new trust lasting the new TTL
        record = sinks.renew_subscription(record, before, common.context(req), self.conf)
        # The index holds public subscribers: a renewed trust id changes no key.
        moved = sinks.public_subscriber(record["subscriber"]) != sinks.public_subscriber(
            before["subscriber"]
        )
        # A new subscriber confirms anew: confirming one URL must not let
        # notifications be pointed at another.
        reconfirm = moved and needs_confirmation(self.conf, requested)
        if reconfirm:
            check_confirmation_rate(
                self.conf, self.storage, record.get("project") or source.project, requested
            )
            record["confirmed"] = False
        if moved:
            # Written with the new subscriber: every link sent before stops
            # confirming (the new confirmation sets the nonce it carries).
            record[confirmation.NONCE_FIELD] = new_nonce()
            record["unique_key"] = key
        self.storage.save_subscription(
            record, previous_subscriber=old_key if moved else None, now=now
        )
        if record["subscriber"] != before["subscriber"]:
            sinks.release_subscription(before, self.conf)
        if reconfirm:
            send_confirmation(self.conf, self.service, record)
        resp.status = falcon.HTTP_204

    def on_delete(self, req, resp, name, subscription_id):
        source = self.scope.source(req, name)
        try:
            self._record(req, source, subscription_id)
            record = self.storage.delete_subscription(source, subscription_id)
        except errors.NotFoundError:
            record = None  # deleting is idempotent, as in Zaqar
        if record:
            sinks.release_subscription(record, self.conf)
        resp.status = falcon.HTTP_204


class SubscriptionAttempts(SubscriptionResource):
    """GET .../subscriptions/{id}/attempts: newest first."""

    def on_get(self, req, resp, name, subscription_id):
        source = self.scope.source(req, name)
        record = self._record(req, source, subscription_id)
        limit = validation.limit_param(req.get_param("limit"), 1000)
        attempts = self.storage.subscription_attempts(subscription_id, limit)
        if not self.scope.owns(req, source, record):
            attempts = [without_replies(a) for a in attempts]
        resp.media = {"attempts": attempts}


class DeadLetters(SubscriptionResource):
    """GET .../subscriptions/{id}/dead-letters?since=EPOCH&limit=N: oldest first."""

    def on_get(self, req, resp, name, subscription_id):
        source = self.scope.source(req, name)
        record = self._record(req, source, subscription_id)
        limit = validation.limit_param(req.get_param("limit"), 1000)
        since = validation.since_param(req.get_param("since"))
        letters = self.storage.dead_letters(subscription_id, since=since, limit=limit)
        if not self.scope.owns(req, source, record):
            letters = [hidden_replies(letter) for letter in letters]
        resp.media = {"dead_letters": letters}


def hidden_replies(letter):
    """Return a dead letter without what the subscriber's endpoint answered."""
    shown = dict(letter)
    if isinstance(shown.get("last"), dict):
        shown["last"] = without_replies(shown["last"])
    if isinstance(shown.get("history"), list):
        shown["history"] = [without_replies(a) for a in shown["history"]]
    return shown


class Replay(SubscriptionResource):
    """POST .../subscriptions/{id}/replay {"message_id"} or {"since"}: 202."""

    def __init__(self, conf, storage, service, kind="queues", scope=None):
        super().__init__(conf, storage, kind, scope)
        self.service = service

    def on_post(self, req, resp, name, subscription_id):
        self._record(req, self.scope.source(req, name), subscription_id)
        document = common.read_json(req, self.conf.transport.max_request_body_size)
        request = validation.replay_request(document)
        count = self.service.replay(subscription_id, **request)
        resp.status = falcon.HTTP_202
        resp.media = {"replayed": count}


class SecretRotation(SubscriptionResource):
    """POST .../subscriptions/{id}/secret/rotate: a new signing secret, shown
    once; the previous one keeps signing for the grace period."""

    def on_post(self, req, resp, name, subscription_id):
        from notifier.sinks.webhook import rotate_secret

        record = self._owned_record(req, self.scope.source(req, name), subscription_id)
        if "secrets" not in record:
            raise errors.ValidationError(
                "This subscription's sink does not sign deliveries.", field="subscriber"
            )
        now = time.time()
        record["secrets"], secret = rotate_secret(
            record, self.conf.webhook.secret_rotation_grace_seconds, now
        )
        self.storage.save_subscription(record, now=now)
        resp.status = falcon.HTTP_201
        resp.media = {
            "secret": secret,
            "previous_valid_until": now + self.conf.webhook.secret_rotation_grace_seconds,
        }


class Enable(SubscriptionResource):
    """POST .../subscriptions/{id}/enable: resume a disabled subscription and
    send the deliveries held while it was disabled."""

    def __init__(self, storage, service, kind="queues", scope=None):
        super().__init__(None, storage, kind, scope)
        self.service = service

    def on_post(self, req, resp, name, subscription_id):
        record = self._record(req, self.scope.source(req, name), subscription_id)
        resp.media = {"released": self.service.enable(record)}
