"""Subscriptions: create, change and delete them; rotate a signing secret;
read what a requester may see of their attempts and dead letters.

With ``require_confirmation`` a webhook or e-mail subscription starts
unconfirmed and is sent a SubscriptionConfirmation; creating the same
subscriber again re-sends it while unconfirmed (same id, no secret shown
again) and is a conflict once confirmed. A PATCH that points a subscription
at another subscriber confirms anew.
"""

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from notifier import errors, sinks
from notifier.core import confirmation, validation
from notifier.services.access import (
    Access,
    Record,
    hidden_replies,
    owned_record,
    visible_record,
    without_replies,
)
from notifier.services.confirmations import ConfirmationService, check_confirmable, new_nonce
from notifier.store.storage import Source, Storage

#: ``socket.getaddrinfo``'s signature: resolves webhook host names.
Resolver = Callable[..., Any]


def checked_fields(document: Any, conf: Any, resolver: Resolver | None = None) -> Record:
    """Check a whole subscription body, then let the subscriber's sink check
    its URI and options; return {subscriber, ttl, options}.

    ``resolver`` resolves webhook host names (None: the system resolver).
    """
    fields: Record = validation.subscription(document, conf)
    sinks.validate_subscriber(fields["subscriber"], fields["options"], conf, resolver)
    return fields


@dataclasses.dataclass(frozen=True)
class Created:
    """A created (or re-sent) subscription: its id, and the secrets shown once."""

    subscription_id: str
    reveal: Record


def _duplicate() -> errors.ConflictError:
    return errors.ConflictError(
        "Such subscription already exists. Subscriptions are unique by "
        "project + source + subscriber URI.",
        field="subscriber",
    )


class SubscriptionService:
    """The subscription flows of the API."""

    def __init__(
        self,
        conf: Any,
        storage: Storage,
        confirmations: ConfirmationService,
        resolver: Resolver | None = None,
    ) -> None:
        self.conf = conf
        self.storage = storage
        self.confirmations = confirmations
        self.resolver = resolver

    def visible(self, access: Access, source: Source, subscription_id: str) -> Record:
        return visible_record(self.storage, access, source, subscription_id)

    def page(
        self, access: Access, source: Source, marker: str | None, limit: int
    ) -> tuple[list[tuple[Record, bool]], str | None]:
        """Return the requester's visible subscriptions of a page, each with
        whether it owns it, and the cursor of the next page (None: the last)."""
        records, cursor = self.storage.subscription_page(source, marker, limit)
        shown = [(r, access.owns(source, r)) for r in records if access.sees(source, r)]
        return shown, cursor

    def create(self, access: Access, source: Source, document: Any) -> Created:
        """Create a subscription from a POST body."""
        fields = checked_fields(document, self.conf, self.resolver)
        requested = fields["subscriber"]
        access.before_subscribe(source, requested)
        project = access.subscriber_project(source)
        key = access.index_key(project or source.project, requested)
        confirming = self.confirmations.needed(requested)
        unsent = {}
        if confirming:
            check_confirmable(requested, fields["options"])
            self.confirmations.check_rate(project or source.project, requested)
            # A nonce no link carries: nothing confirms it until its
            # confirmation message sets the real one.
            unsent = {confirmation.NONCE_FIELD: new_nonce()}
        if not confirming and self.storage.subscriber_taken(source, key, None):
            raise _duplicate()
        fields = sinks.prepare_subscription(fields, access.context, self.conf)
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
            if not record or record.get("confirmed", True) or not access.sees(source, record):
                raise _duplicate()
            reveal = {}  # the secret was shown when it was created
        else:
            record = {"id": subscription_id, "source": source.to_list()}
        if confirming:
            self.confirmations.send(record)
        return Created(subscription_id, reveal)

    def _existing(self, source: Source, subscription_id: str) -> Record | None:
        try:
            record: Record = self.storage.get_subscription(source, subscription_id)
        except errors.NotFoundError:  # expired a moment ago
            return None
        return record

    def update(self, access: Access, source: Source, subscription_id: str, patch: Record) -> None:
        """Apply a PATCH body (already shape-checked) to a subscription."""
        if isinstance(patch.get("options"), dict) and "secret" in patch["options"]:
            raise errors.ValidationError(
                "options.secret is set at creation only; rotate it with POST .../secret/rotate.",
                field="options.secret",
            )
        record = owned_record(self.storage, access, source, subscription_id)
        merged = {
            "subscriber": record["subscriber"],
            "ttl": record["ttl"],
            "options": record["options"],
        }
        merged.update(patch)
        fields = checked_fields(merged, self.conf, self.resolver)
        requested = fields["subscriber"]
        if self.confirmations.needed(requested):
            check_confirmable(requested, fields["options"])
        if requested != record["subscriber"]:
            access.before_subscribe(source, requested, record)
        old_key = record.get("unique_key", record["subscriber"])
        key = access.index_key(record.get("project", source.project), requested)
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
        record = sinks.renew_subscription(record, before, access.context, self.conf)
        # The index holds public subscribers: a renewed trust id changes no key.
        moved = sinks.public_subscriber(record["subscriber"]) != sinks.public_subscriber(
            before["subscriber"]
        )
        reconfirm = moved and self._repoint(record, source, requested, key)
        self.storage.save_subscription(
            record, previous_subscriber=old_key if moved else None, now=now
        )
        if record["subscriber"] != before["subscriber"]:
            sinks.release_subscription(before, self.conf)
        if reconfirm:
            self.confirmations.send(record)

    def _repoint(self, record: Record, source: Source, requested: str, key: str) -> bool:
        """Prepare a subscription given a new subscriber (``requested``, as
        the PATCH named it); return whether it must confirm anew (it then
        starts unconfirmed)."""
        # A new subscriber confirms anew: confirming one URL must not let
        # notifications be pointed at another.
        reconfirm = self.confirmations.needed(requested)
        if reconfirm:
            self.confirmations.check_rate(record.get("project") or source.project, requested)
            record["confirmed"] = False
        # Written with the new subscriber: every link sent before stops
        # confirming (the new confirmation sets the nonce it carries).
        record[confirmation.NONCE_FIELD] = new_nonce()
        record["unique_key"] = key
        return reconfirm

    def delete(self, access: Access, source: Source, subscription_id: str) -> None:
        """Delete a subscription; deleting one that does not exist is no error
        (as in Zaqar)."""
        try:
            self.visible(access, source, subscription_id)
            record = self.storage.delete_subscription(source, subscription_id)
        except errors.NotFoundError:
            record = None
        if record:
            sinks.release_subscription(record, self.conf)

    def rotate_secret(
        self, access: Access, source: Source, subscription_id: str
    ) -> tuple[str, float]:
        """Give a subscription a new signing secret; return it and until when
        the previous one keeps signing."""
        from notifier.sinks.webhook import rotate_secret

        record = owned_record(self.storage, access, source, subscription_id)
        if "secrets" not in record:
            raise errors.ValidationError(
                "This subscription's sink does not sign deliveries.", field="subscriber"
            )
        grace = self.conf.webhook.secret_rotation_grace_seconds
        now = time.time()
        record["secrets"], secret = rotate_secret(record, grace, now)
        self.storage.save_subscription(record, now=now)
        return secret, now + grace

    def attempts(
        self, access: Access, source: Source, subscription_id: str, limit: int
    ) -> list[Record]:
        """Return a subscription's attempts, newest first; what its endpoint
        answered only for its own project."""
        record = self.visible(access, source, subscription_id)
        attempts: list[Record] = self.storage.subscription_attempts(subscription_id, limit, source)
        if not access.owns(source, record):
            attempts = [without_replies(a) for a in attempts]
        return attempts

    def dead_letters(
        self, access: Access, source: Source, subscription_id: str, since: float, limit: int
    ) -> list[Record]:
        """Return a subscription's dead letters, oldest first; what its
        endpoint answered only for its own project."""
        record = self.visible(access, source, subscription_id)
        letters: list[Record] = self.storage.dead_letters(subscription_id, since=since, limit=limit)
        if not access.owns(source, record):
            letters = [hidden_replies(letter) for letter in letters]
        return letters
