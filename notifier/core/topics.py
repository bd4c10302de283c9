"""Topic permissions and metadata: pure functions, plain data in and out.

A topic is a source in its owner's project whose metadata says who may use
it (spec "Introduce Topic Resource For Notification")::

    _allowed_sending_projects    publish: unset (with the users list) -> the
    _allowed_sending_users       owner project only; set -> only those listed
    _allowed_subscribe_projects  subscribe: unset (with the users list) ->
    _allowed_subscribe_users     every project; set -> only those listed
    _allowed_subscribe_protocols email, webhook, trust (the default: all three)
    _retry_policy                as a queue's

A list that is present counts as set, even when empty: ``[]`` allows nobody,
so a list emptied by a PATCH never silently reopens a topic to everyone. When
both lists of a pair are set, a project *or* a user match is enough.
"""

import json
from collections.abc import Mapping
from typing import Any, Protocol

from notifier.core import schemes, validation
from notifier.errors import ValidationError

SENDING_PROJECTS = "_allowed_sending_projects"
SENDING_USERS = "_allowed_sending_users"
SUBSCRIBE_PROJECTS = "_allowed_subscribe_projects"
SUBSCRIBE_USERS = "_allowed_subscribe_users"
SUBSCRIBE_PROTOCOLS = "_allowed_subscribe_protocols"
RETRY_POLICY = "_retry_policy"

ID_LISTS = (SENDING_PROJECTS, SENDING_USERS, SUBSCRIBE_PROJECTS, SUBSCRIBE_USERS)
#: Reserved keys a topic accepts; other keys starting with "_" are refused, so
#: a misspelt permission cannot leave a topic open.
RESERVED = (*ID_LISTS, SUBSCRIBE_PROTOCOLS, RETRY_POLICY, "_default_message_ttl")

#: Subscribe protocols: the kinds of the scheme table.
PROTOCOLS = schemes.KINDS
MAX_IDS = 1000

Metadata = Mapping[str, Any]


class Requester(Protocol):
    """Who asks (``notifier.sinks.RequestContext`` is one)."""

    @property
    def project_id(self) -> str: ...

    @property
    def user_id(self) -> str | None: ...


def protocol_of(subscriber: str) -> str | None:
    """Return the topic protocol of a subscriber URI, or None if it has none."""
    return schemes.kind_of(subscriber)


def _listed(
    metadata: Metadata, projects_key: str, users_key: str, context: Requester
) -> bool | None:
    """Return None when neither list is set, else whether the requester is listed."""
    if projects_key not in metadata and users_key not in metadata:
        return None
    return context.project_id in metadata.get(projects_key, ()) or (
        context.user_id is not None and context.user_id in metadata.get(users_key, ())
    )


def publish_refusal(metadata: Metadata, owner_project: str, context: Requester) -> str | None:
    """Return why the requester may not publish to the topic, or None."""
    listed = _listed(metadata, SENDING_PROJECTS, SENDING_USERS, context)
    if listed is None:
        if context.project_id == owner_project:
            return None
        return (
            "Only the topic's owner project may publish to it: the topic sets "
            f"no {SENDING_PROJECTS} or {SENDING_USERS}."
        )
    if listed:
        return None
    return (
        f"Project {context.project_id!r} (user {context.user_id!r}) is not in "
        f"the topic's {SENDING_PROJECTS} or {SENDING_USERS}."
    )


def subscribe_refusal(
    metadata: Metadata, owner_project: str, context: Requester, subscriber: str
) -> str | None:
    """Return why the requester may not subscribe ``subscriber``, or None.

    ``owner_project`` gets no special right: by the spec's default every
    project may subscribe, and a list, once set, must name the owner too.
    """
    if _listed(metadata, SUBSCRIBE_PROJECTS, SUBSCRIBE_USERS, context) is False:
        return (
            f"Project {context.project_id!r} (user {context.user_id!r}) is not "
            f"in the topic's {SUBSCRIBE_PROJECTS} or {SUBSCRIBE_USERS}."
        )
    return protocol_refusal(metadata, subscriber)


def protocol_refusal(metadata: Metadata, subscriber: str) -> str | None:
    """Return why the topic takes no subscriber of this URI scheme, or None."""
    allowed = metadata.get(SUBSCRIBE_PROTOCOLS, PROTOCOLS)
    protocol = protocol_of(subscriber)
    if protocol in allowed:
        return None
    scheme = subscriber.partition(":")[0]
    return (
        f"The topic's {SUBSCRIBE_PROTOCOLS} allows "
        f"{', '.join(allowed) or 'no protocol'}; a {scheme!r} subscriber is "
        f"{protocol or 'not a topic protocol'}."
    )


def may_publish(metadata: Metadata, owner_project: str, context: Requester) -> bool:
    """Return whether the requester may post messages to the topic."""
    return publish_refusal(metadata, owner_project, context) is None


def may_subscribe(
    metadata: Metadata, owner_project: str, context: Requester, subscriber: str
) -> bool:
    """Return whether the requester may subscribe ``subscriber`` to the topic."""
    return subscribe_refusal(metadata, owner_project, context, subscriber) is None


def validate_topic_metadata(metadata: Any, conf: Any) -> dict[str, Any]:
    """Check topic metadata; raise ValidationError naming the attribute."""
    validation.obj(metadata, "metadata")
    if len(json.dumps(metadata)) > conf.transport.max_queue_metadata:
        raise ValidationError(
            f"Topic metadata is larger than {conf.transport.max_queue_metadata} bytes.",
            field="metadata",
        )
    for key in metadata:
        if key.startswith("_") and key not in RESERVED:
            raise ValidationError(
                f"{key} is not a topic attribute; reserved attributes are {', '.join(RESERVED)}.",
                field=key,
            )
    for key in ID_LISTS:
        if key in metadata:
            validation.string_list(metadata[key], key, max_items=MAX_IDS)
    if SUBSCRIBE_PROTOCOLS in metadata:
        protocols = validation.string_list(metadata[SUBSCRIBE_PROTOCOLS], SUBSCRIBE_PROTOCOLS)
        unknown = sorted(set(protocols) - set(PROTOCOLS))
        if unknown:
            raise ValidationError(
                f"{SUBSCRIBE_PROTOCOLS} may hold only "
                f"{', '.join(PROTOCOLS)}, not {', '.join(unknown)}.",
                field=SUBSCRIBE_PROTOCOLS,
            )
    # _retry_policy and _default_message_ttl mean what they mean for a queue.
    return validation.queue_metadata(metadata, conf)


def canonical_patch_paths(ops: Any) -> Any:
    """Return PATCH ops with the spec's ``/metadata/allowed_...`` spelling of a
    reserved attribute rewritten to its ``_allowed_...`` key."""
    aliases = {f"/metadata/{key[1:]}": f"/metadata/{key}" for key in RESERVED}
    if not isinstance(ops, list):
        return ops
    return [
        dict(op, path=aliases[op["path"]])
        if isinstance(op, dict) and isinstance(op.get("path"), str) and op["path"] in aliases
        else op
        for op in ops
    ]
