"""Who is asking: what the services need to know of a request's requester.

The API binds its scope (``notifier.api.queues.ProjectScope``,
``notifier.api.topics.TopicScope``) to a request; the services see only this
interface, never the request.
"""

from typing import Any, Protocol

from notifier import errors
from notifier.sinks import RequestContext
from notifier.store.storage import Source, Storage

Record = dict[str, Any]


class Access(Protocol):
    """One requester's rights on one kind of source."""

    @property
    def context(self) -> RequestContext:
        """Who is asking (project, user, token, roles)."""

    def before_subscribe(
        self, source: Source, subscriber: str, record: Record | None = None
    ) -> None:
        """Raise to refuse subscribing ``subscriber`` (or repointing ``record`` to it)."""

    def subscriber_project(self, source: Source) -> str | None:
        """Return the project to record on a new subscription, or None."""

    def sees(self, source: Source, record: Record) -> bool:
        """Return whether the requester may see and manage a subscription."""

    def owns(self, source: Source, record: Record) -> bool:
        """Return whether the subscription belongs to the requester's project."""

    def index_key(self, project: str, subscriber: str) -> str:
        """Return the key under which a subscriber is unique in a source."""


def visible_record(
    storage: Storage, access: Access, source: Source, subscription_id: str
) -> Record:
    """Return a subscription of ``source`` the requester may see, else raise
    NotFoundError (one it may not see does not exist for it)."""
    record: Record = storage.get_subscription(source, subscription_id)
    if not access.sees(source, record):
        raise errors.NotFoundError(f"Subscription {subscription_id!r} does not exist.")
    return record


def owned_record(storage: Storage, access: Access, source: Source, subscription_id: str) -> Record:
    """Return a subscription of the requester's own project, else raise
    NotFoundError (unseen) or ForbiddenError (the topic owner's view of
    another project's subscription)."""
    record = visible_record(storage, access, source, subscription_id)
    if not access.owns(source, record):
        raise errors.ForbiddenError(
            f"Subscription {subscription_id!r} belongs to project "
            f"{record.get('project')!r}: only that project may change it."
        )
    return record


def without_replies(attempt: Record) -> Record:
    """Return an attempt record without what the endpoint answered."""
    return {k: v for k, v in attempt.items() if k != "response_body"}


def hidden_replies(letter: Record) -> Record:
    """Return a dead letter without what the subscriber's endpoint answered."""
    shown = dict(letter)
    if isinstance(shown.get("last"), dict):
        shown["last"] = without_replies(shown["last"])
    if isinstance(shown.get("history"), list):
        shown["history"] = [without_replies(a) for a in shown["history"]]
    return shown
