"""The operator console: one project's sources, subscriptions, dead letters,
endpoints, and why a message went (or did not go) to each subscriber.

The console's session (a signed console link or a Keystone token, checked in
``notifier.web.console``) names one project; every source the console
addresses is built with that project (:meth:`ConsoleService.source`), so a
guessed name or id of another project's source is simply not found. Every
change is the API's own service call: edits through
``SubscriptionService.update`` (the PATCH's validation), replay, pause and
resume through ``DeliveryService``; Explain matches with ``core.matching``,
fan-out's own plan and compiled filters.
"""

import dataclasses
import datetime
import json
import time
from typing import Any

from notifier import errors, sinks
from notifier.conf import retry_defaults
from notifier.core import confirmation, filtering, links, matching, validation
from notifier.core.rates import add_rates, rates
from notifier.core.retry import RetryPolicy, resolve_policy
from notifier.delivery.service import DeliveryService
from notifier.services.access import Record, hidden_replies, visible_record, without_replies
from notifier.services.subscriptions import SubscriptionService
from notifier.sinks import RequestContext
from notifier.store.records import is_control_id
from notifier.store.storage import Source, Storage

ValidationError = errors.ValidationError
KINDS = ("queues", "topics")
PAUSED = "paused by an operator in the console"
RETRY_FIELD = "_retry_policy"
FILTER_FIELD = "options.filter_policy"
SCOPE_FIELD = "options.filter_policy_scope"
MAX_PASTED_BYTES = 64 * 1024


@dataclasses.dataclass(frozen=True)
class ConsoleAccess:
    """A console session's access (``notifier.services.access.Access``): its
    project sees every subscription of its own sources (a topic's, whichever
    project subscribed) and changes those its project made."""

    project: str
    kind: str = "queues"

    @property
    def context(self) -> RequestContext:
        return RequestContext(project_id=self.project)

    def before_subscribe(
        self, source: Source, subscriber: str, record: Record | None = None
    ) -> None:
        raise errors.ForbiddenError("The console does not change subscribers.")

    def subscriber_project(self, source: Source) -> str | None:
        return None

    def sees(self, source: Source, record: Record) -> bool:
        return self.project in (source.project, record.get("project", source.project))

    def owns(self, source: Source, record: Record) -> bool:
        return bool(record.get("project", source.project) == self.project)

    def index_key(self, project: str, subscriber: str) -> str:
        return f"{project}:{subscriber}" if self.kind == "topics" else subscriber


def summary(record: Record) -> Record:
    """Return what a page shows of a subscription: never its secrets or tokens."""
    options = record.get("options") or {}
    return {
        "id": record["id"],
        "subscriber": sinks.shown_subscriber(record["subscriber"]),
        "project": record.get("project"),
        "filter_policy": options.get("filter_policy"),
        "filter_policy_scope": options.get("filter_policy_scope", filtering.ATTRIBUTES),
        "filter_policies": options.get("filter_policies"),
        "retry_policy": options.get(RETRY_FIELD),
        "confirmed": bool(record.get("confirmed", True)),
        "disabled": bool(record.get("disabled")),
        "disabled_reason": record.get("disabled_reason"),
        "signs": "secrets" in record,
    }


def parse_json_field(text: Any, field: str, empty: Any = None) -> Any:
    """Return the JSON value of a form field (``empty`` when blank), or raise
    ValidationError naming ``field``."""
    if not isinstance(text, str) or not text.strip():
        return empty
    if len(text.encode("utf-8", "surrogatepass")) > MAX_PASTED_BYTES:
        raise ValidationError(f"At most {MAX_PASTED_BYTES} bytes.", field=field)
    try:  # as the API parses bodies: no NaN or Infinity, no recursion blow-up
        value = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ValidationError(f"Not valid JSON: {exc}", field=field) from None
    if _deeper_than(value, validation.MAX_JSON_DEPTH):
        raise ValidationError(f"Nests deeper than {validation.MAX_JSON_DEPTH} levels.", field=field)
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _deeper_than(value: Any, most: int) -> bool:
    if most < 0:
        return True
    if isinstance(value, dict):
        value = list(value.values())
    return isinstance(value, list) and any(_deeper_than(v, most - 1) for v in value)


def retry_preview(conf: Any, text: Any, queue_policy: Any = None) -> Record:
    """Return the delays a ``_retry_policy`` (form text) produces, with the
    queue's policy and the defaults applied as delivery applies them, or
    raise ValidationError naming the policy's field."""
    policy = parse_json_field(text, RETRY_FIELD, {})
    if not isinstance(policy, dict):
        raise ValidationError("_retry_policy must be an object", field=RETRY_FIELD)
    defaults = retry_defaults(conf)
    own = RetryPolicy.from_dict(policy, defaults)  # validates, naming the field
    effective = resolve_policy(queue_policy, policy, defaults)
    delays = effective.delays()
    return {
        "policy": own.to_dict(),
        "delays": delays,
        "total_seconds": sum(delays),
        "overridden": effective != own and bool(queue_policy),
    }


class ConsoleService:
    """What a console session may see and do in its project."""

    def __init__(
        self,
        conf: Any,
        storage: Storage,
        subscriptions: SubscriptionService,
        delivery: DeliveryService,
    ) -> None:
        self.conf = conf
        self.storage = storage
        self.subscriptions = subscriptions
        self.delivery = delivery

    @property
    def key(self) -> str:
        return str(self.conf.signed_url.secret_key or "")

    @property
    def most(self) -> int:
        return int(self.conf.console.max_subscriptions)

    def link(self, project: str, expires: object, now: datetime.datetime | None = None) -> str:
        """Return a pre-signed console URL for ``project``."""
        if not self.key:
            raise ValidationError("Console links need [signed_url] secret_key.", field="expires")
        return console_link(self.conf, project, expires, now)

    # -- addressing: every source is the session's project's -------------------

    def source(self, project: str, kind: str, name: str) -> Source:
        if kind not in KINDS:
            raise errors.NotFoundError("No such kind of source.")
        return Source(project, kind, validation.source_name(name, kind[:-1]))

    def record(self, project: str, source: Source, subscription_id: str) -> Record:
        access = ConsoleAccess(project, source.kind)
        record: Record = visible_record(self.storage, access, source, subscription_id)
        return record

    def sources(self, project: str) -> list[Source]:
        found = []
        for kind in KINDS:
            marker = None
            while True:
                names = self.storage.list_sources(project, kind, marker, 100)
                found += [Source(project, kind, name) for name in names]
                if len(names) < 100 or len(found) >= 1000:
                    break
                marker = names[-1]
        return found

    def source_subscriptions(self, source: Source) -> tuple[list[Record], bool]:
        """Return a source's subscriptions (at most ``[console]
        max_subscriptions``) and whether there are more."""
        records: list[Record] = []
        cursor = None
        while True:
            page, cursor = self.storage.subscription_page(source, cursor, 100)
            records += page
            if cursor is None or len(records) >= self.most:
                return records[: self.most], cursor is not None or len(records) > self.most

    # -- pages -------------------------------------------------------------------

    def overview(self, project: str, now: float | None = None) -> list[Record]:
        """Return a row per source: messages, subscriptions, the last hour's rates."""
        now = time.time() if now is None else now
        rows = []
        for source in self.sources(project):
            records, more = self.source_subscriptions(source)
            total = rates([], now)
            for record in records:
                attempts = self.storage.subscription_attempts(record["id"], 200, source)
                total = add_rates(total, rates(attempts, now))
            rows.append(
                {
                    "source": source,
                    "messages": self._message_count(source),
                    "subscriptions": len(records),
                    "more": more,
                    "rates": total,
                }
            )
        return rows

    def _message_count(self, source: Source) -> int | None:
        if source.kind != "queues":
            return None  # a topic's messages are for delivery only
        return int(self.storage.queue_messages.stats(source).total)

    def existing(self, source: Source) -> Source:
        """Return ``source`` if it exists (in the session's project), else raise NotFoundError."""
        if not self.storage.source_exists(source):
            raise errors.NotFoundError(f"No {source.kind[:-1]} {source.name!r} in this project.")
        return source

    def source_page(self, project: str, source: Source) -> Record:
        self.existing(source)
        records, more = self.source_subscriptions(source)
        return {"subscriptions": [summary(r) for r in records], "more": more}

    def subscription(self, project: str, source: Source, subscription_id: str) -> Record:
        """Return what the subscription page shows."""
        record = self.record(project, source, subscription_id)
        access = ConsoleAccess(project, source.kind)
        owned = access.owns(source, record)
        attempts = self.storage.subscription_attempts(subscription_id, 50, source)
        letters = self.storage.dead_letters(subscription_id, since=0, limit=200)
        if not owned:
            attempts = [without_replies(a) for a in attempts]
            letters = [hidden_replies(letter) for letter in letters]
        return {
            "subscription": summary(record),
            "owned": owned,
            "endpoint": self.delivery.endpoint_status(record),
            "attempts": attempts,
            "dead_letters": letters,
            "rates": rates(
                self.storage.subscription_attempts(subscription_id, 200, source), time.time()
            ),
            "queue_retry_policy": self.queue_retry_policy(source),
        }

    def queue_retry_policy(self, source: Source) -> Any:
        return self.storage.source_metadata_or_empty(source).get(RETRY_FIELD)

    def update(
        self,
        project: str,
        source: Source,
        subscription_id: str,
        retry_text: Any,
        filter_text: Any,
        scope: Any,
    ) -> None:
        """Set a subscription's retry and filter policies through the PATCH's
        own validation (``SubscriptionService.update``); raise
        ValidationError naming the field."""
        record = self.record(project, source, subscription_id)
        options = dict(record.get("options") or {})
        retry = parse_json_field(retry_text, RETRY_FIELD)
        policy = parse_json_field(filter_text, FILTER_FIELD)
        for name, value in ((RETRY_FIELD, retry), ("filter_policy", policy)):
            if value is None:
                options.pop(name, None)
            else:
                options[name] = value
        if scope not in (None, ""):
            options["filter_policy_scope"] = scope
        patch = validation.subscription_patch({"options": options})
        access = ConsoleAccess(project, source.kind)
        self.subscriptions.update(access, source, subscription_id, patch)

    def replay(
        self,
        project: str,
        source: Source,
        subscription_id: str,
        message_id: str | None = None,
        since: float = 0,
    ) -> int:
        self.record(project, source, subscription_id)
        return self.delivery.replay(subscription_id, message_id=message_id, since=since)

    def pause(self, project: str, source: Source, subscription_id: str) -> None:
        record = self.record(project, source, subscription_id)
        if not record.get("disabled"):
            self.delivery.disable(record, PAUSED)

    def resume(self, project: str, source: Source, subscription_id: str) -> int:
        record = self.record(project, source, subscription_id)
        return self.delivery.enable(record) if record.get("disabled") else 0

    def dead_letters(self, project: str) -> list[Record]:
        """Return the project's dead letters: a row per letter, oldest first."""
        rows: list[Record] = []
        for source in self.sources(project):
            access = ConsoleAccess(project, source.kind)
            for record in self.source_subscriptions(source)[0]:
                owned = access.owns(source, record)
                for letter in self.storage.dead_letters(record["id"], since=0, limit=200):
                    rows.append(
                        {
                            "source": source,
                            "subscription": summary(record),
                            "letter": letter if owned else hidden_replies(letter),
                        }
                    )
        rows.sort(key=lambda row: float(row["letter"].get("died_at") or 0))
        return rows

    def replay_all(self, project: str, since: float = 0) -> int:
        """Replay every dead letter of the project died since ``since``."""
        count = 0
        for source in self.sources(project):
            for record in self.source_subscriptions(source)[0]:
                count += self.delivery.replay(record["id"], since=since)
        return count

    def endpoints(self, project: str) -> list[Record]:
        """Return the subscriptions whose endpoint's breaker is not closed or
        that have deliveries held."""
        rows = []
        for source in self.sources(project):
            for record in self.source_subscriptions(source)[0]:
                status = self.delivery.endpoint_status(record)
                if status["breaker"] != "closed" or status["held"]:
                    rows.append(
                        {"source": source, "subscription": summary(record), "endpoint": status}
                    )
        return rows

    # -- Explain -----------------------------------------------------------------

    def recent_message_ids(self, source: Source, limit: int = 20) -> list[str]:
        """Return ids of messages the source's subscriptions were recently sent."""
        seen: dict[str, float] = {}
        for record in self.source_subscriptions(source)[0]:
            for attempt in self.storage.subscription_attempts(record["id"], 20, source):
                message_id = attempt.get("message_id")
                if message_id and not is_control_id(message_id):
                    at = float(attempt.get("at") or 0)
                    seen[message_id] = max(at, seen.get(message_id, 0.0))
        ordered = sorted(seen, key=lambda m: seen[m], reverse=True)
        return ordered[:limit]

    def explain(
        self,
        project: str,
        source: Source,
        message_id: str | None = None,
        body_text: Any = None,
        attributes_text: Any = None,
        tags_text: Any = None,
    ) -> Record:
        """Return, for every subscription of ``source``, whether fan-out gives
        it the message and why not; with a stored message, its attempts."""
        self.existing(source)
        if message_id:
            message = self.storage.get_message(source, message_id)  # its own source only
            body, attributes = message.get("body"), message.get("attributes") or {}
            tags = message.get("filter_policies")
        else:
            body = parse_json_field(body_text, "body")
            if body is None:
                raise ValidationError("Give a message id or paste a JSON body.", field="body")
            attributes = parse_json_field(attributes_text, "attributes", {})
            if not isinstance(attributes, dict):
                raise ValidationError("Attributes must be a JSON object.", field="attributes")
            tags = parse_json_field(tags_text, "tags")
            filtering.validate_tags(tags, field="tags")
        prepared = filtering.prepare_message(attributes, body)
        records, more = self.source_subscriptions(source)
        attempts: dict[str, list[Record]] = {}
        if message_id:
            ids = {r["id"] for r in records}
            for attempt in self.storage.message_attempts(message_id, 500):
                if attempt.get("subscription_id") in ids:
                    attempts.setdefault(attempt["subscription_id"], []).append(attempt)
        access = ConsoleAccess(project, source.kind)
        rows = []
        # Fan-out's filter budget (one message against a page of
        # subscriptions): a pasted message cannot take more of the API's CPU.
        budget = int(self.conf.notification.filter_budget_per_fanout)
        verdicts = matching.explain_within(records, tags, prepared, budget)
        for record, verdict in zip(records, verdicts, strict=True):
            shown = attempts.get(record["id"], [])
            if not access.owns(source, record):
                shown = [without_replies(a) for a in shown]
            rows.append({"subscription": summary(record), "verdict": verdict, "attempts": shown})
        return {"rows": rows, "more": more, "body": body, "attributes": attributes, "tags": tags}


def console_link(
    conf: Any, project: str, expires: object, now: datetime.datetime | None = None
) -> str:
    """Return a pre-signed console URL for ``project`` (``notifier console-link``)."""
    key = str(conf.signed_url.secret_key or "")
    if not key:
        raise ValidationError("Console links need [signed_url] secret_key.", field="secret_key")
    link = links.sign_link(
        key, links.CONSOLE_PATH, links.CONSOLE, validation.project_id(project), expires, now
    )
    return f"{confirmation.base_url(conf)}{links.CONSOLE_PATH}?{link.query()}"
