"""Queues and topics: their metadata, changed by Zaqar's JSON patch, and
their deletion (a topic's subscriptions go with it)."""

from collections.abc import Callable
from typing import Any

from notifier import errors, sinks
from notifier.core import topics, validation
from notifier.services.access import Record
from notifier.store.storage import Source, Storage

#: Frees what a deleted subscription's sink held (``sinks.release_subscription``).
Release = Callable[[Record, Any], None]


def apply_metadata_patch(metadata: Record, ops: Any) -> Record:
    """Apply Zaqar's JSON-patch ops (add/replace/remove on /metadata/KEY)."""
    if not isinstance(ops, list) or not ops:
        raise errors.ValidationError(
            "The PATCH body must be a non-empty list of operations.", field="body"
        )
    result = dict(metadata)
    for index, op in enumerate(ops):
        field = f"body[{index}]"
        validation.obj(op, field)
        path = op.get("path")
        if (
            not isinstance(path, str)
            or not path.startswith("/metadata/")
            or len(path) <= len("/metadata/")
        ):
            raise errors.ValidationError(
                f"{field}.path must look like /metadata/KEY.", field=f"{field}.path"
            )
        key = path[len("/metadata/") :]
        kind = op.get("op")
        if kind in ("add", "replace"):
            if "value" not in op:
                raise errors.ValidationError(f"{field}.value is missing.", field=f"{field}.value")
            if kind == "replace" and key not in result:
                raise errors.ValidationError(
                    f"Cannot replace missing key {key!r}.", field=f"{field}.path"
                )
            result[key] = op["value"]
        elif kind == "remove":
            if key not in result:
                raise errors.ValidationError(
                    f"Cannot remove missing key {key!r}.", field=f"{field}.path"
                )
            del result[key]
        else:
            raise errors.ValidationError(
                f"{field}.op must be add, replace or remove.", field=f"{field}.op"
            )
    return result


def checked_metadata(kind: str, metadata: Any, conf: Any) -> Record:
    """Check a source's metadata by the rules of its kind (reserved keys)."""
    if kind == "topics":
        checked: Record = topics.validate_topic_metadata(metadata, conf)
    else:
        checked = validation.queue_metadata(metadata, conf)
    return checked


def delete_topic(
    storage: Storage,
    source: Source,
    conf: Any,
    page_size: int = 500,
    release: Release = sinks.release_subscription,
) -> None:
    """Delete a topic's metadata, messages and every subscription, letting
    ``release`` free what each subscription's sink held (a trust)."""
    # Metadata first: from now on publishing and subscribing answer 404.
    storage.delete_source(source)
    delete_subscriptions(storage, source, conf, page_size, release)


def delete_subscriptions(
    storage: Storage,
    source: Source,
    conf: Any,
    page_size: int = 500,
    release: Release = sinks.release_subscription,
) -> None:
    """Delete every subscription of ``source`` (a topic's deletion, a queue's
    purge), letting ``release`` free what each one's sink held (a trust)."""
    while True:
        # Always the first page: each pass deletes what it read, and
        # subscription_page drops expired ids, so the index only shrinks.
        records, cursor = storage.subscription_page(source, None, page_size)
        for record in records:
            try:
                deleted = storage.delete_subscription(source, record["id"])
            except errors.NotFoundError:
                continue  # expired or deleted meanwhile
            release(deleted, conf)
        if not records and cursor is None:
            break
    # Expired subscriptions leave their subscriber in the index.
    storage.delete_subscription_index(source)


class SourceService:
    """Create, change and delete queues and topics."""

    def __init__(self, conf: Any, storage: Storage) -> None:
        self.conf = conf
        self.storage = storage

    def put(self, source: Source, metadata: Any) -> bool:
        """Create a source or replace its metadata; return whether it was created."""
        created: bool = self.storage.put_source(
            source, checked_metadata(source.kind, metadata, self.conf)
        )
        return created

    def patch(self, source: Source, ops: Any) -> Record:
        """Apply Zaqar's JSON-patch ops to a source's metadata; return the result."""
        if source.kind == "topics":
            ops = topics.canonical_patch_paths(ops)
        metadata = apply_metadata_patch(self.storage.get_source_metadata(source), ops)
        checked_metadata(source.kind, metadata, self.conf)
        self.storage.set_source_metadata(source, metadata)
        return metadata

    def delete(self, source: Source) -> None:
        """Delete a source; a topic's subscriptions go with it."""
        if source.kind == "topics":
            delete_topic(self.storage, source, self.conf)
        else:
            self.storage.delete_source(source)
