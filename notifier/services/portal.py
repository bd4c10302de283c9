"""The subscriber portal: one subscription, reached through a signed link.

The link (``notifier.core.links``) is the authority: whoever holds it acts as
the subscription's own project, on that subscription only. Every action is
the API's own service call (replay and enable in ``notifier.delivery``,
rotation in ``SubscriptionService``, unsubscribe in ``ConfirmationService``).
"""

import dataclasses
import datetime
import time
from typing import Any

from notifier import errors
from notifier.core import confirmation, links
from notifier.core.rates import rates
from notifier.delivery.service import DeliveryService
from notifier.services.access import Access, Record, owned_record
from notifier.services.confirmations import ConfirmationService
from notifier.services.subscriptions import SubscriptionService
from notifier.sinks import RequestContext
from notifier.store.storage import Source, Storage

PAUSED = "paused by the subscriber in the portal"
TEST_TTL_SECONDS = 3600
SHOWN_ATTEMPTS = 50
RATE_ATTEMPTS = 200  # the last hour's rates count this many recent attempts, as the console's


@dataclasses.dataclass(frozen=True)
class OwnerAccess:
    """A link's access: the subscription's own project, on its source only
    (``notifier.services.access.Access``)."""

    project: str

    @property
    def context(self) -> RequestContext:
        return RequestContext(project_id=self.project)

    def before_subscribe(
        self, source: Source, subscriber: str, record: Record | None = None
    ) -> None:
        raise errors.ForbiddenError("A portal link cannot subscribe.")

    def subscriber_project(self, source: Source) -> str | None:
        return None

    def sees(self, source: Source, record: Record) -> bool:
        return self.owns(source, record)

    def owns(self, source: Source, record: Record) -> bool:
        return bool(record.get("project", source.project) == self.project)

    def index_key(self, project: str, subscriber: str) -> str:
        return subscriber


def owner_of(source: Source, record: Record) -> str:
    """Return the project a subscription belongs to."""
    return str(record.get("project", source.project))


class PortalService:
    """What a portal link may see and do."""

    def __init__(
        self,
        conf: Any,
        storage: Storage,
        subscriptions: SubscriptionService,
        confirmations: ConfirmationService,
        delivery: DeliveryService,
    ) -> None:
        self.conf = conf
        self.storage = storage
        self.subscriptions = subscriptions
        self.confirmations = confirmations
        self.delivery = delivery

    @property
    def key(self) -> str:
        return str(self.conf.signed_url.secret_key or "")

    def link(
        self,
        access: Access,
        source: Source,
        subscription_id: str,
        expires: object,
        now: datetime.datetime | None = None,
    ) -> str:
        """Return a portal URL for a subscription the requester owns."""
        if not self.key:
            raise errors.ValidationError(
                "Portal links need [signed_url] secret_key.", field="expires"
            )
        record = owned_record(self.storage, access, source, subscription_id)
        base = confirmation.base_url(self.conf)
        return links.portal_url(
            self.key, base, source, subscription_id, record["subscriber"], expires, now
        )

    def subscriber_of(self, source: Source, subscription_id: str) -> str | None:
        """Return the subscriber a subscription points at now (None if it
        is gone), which a portal link must have been minted for."""
        try:
            record = self.storage.get_subscription(source, subscription_id)
        except errors.NotFoundError:
            return None
        return str(record["subscriber"])

    def record(self, source: Source, subscription_id: str) -> Record:
        """Return the subscription a verified link names (NotFoundError if gone)."""
        record: Record = self.storage.get_subscription(source, subscription_id)
        return record

    def overview(
        self, source: Source, subscription_id: str, now: float | None = None
    ) -> dict[str, Any]:
        """Return what the portal page shows."""
        record = self.record(source, subscription_id)
        attempts = self.storage.subscription_attempts(subscription_id, RATE_ATTEMPTS, source)
        return {
            "record": record,
            "status": self.delivery.endpoint_status(record),
            "attempts": attempts[:SHOWN_ATTEMPTS],
            "rates": rates(attempts, time.time() if now is None else now),
            "dead_letters": self.storage.dead_letters(subscription_id, since=0, limit=200),
        }

    def replay(self, source: Source, subscription_id: str, **request: Any) -> int:
        self.record(source, subscription_id)
        return self.delivery.replay(subscription_id, **request)

    def pause(self, source: Source, subscription_id: str) -> None:
        record = self.record(source, subscription_id)
        if not record.get("disabled"):
            self.delivery.disable(record, PAUSED)

    def resume(self, source: Source, subscription_id: str) -> int:
        record = self.record(source, subscription_id)
        return self.delivery.enable(record) if record.get("disabled") else 0

    def send_test(self, source: Source, subscription_id: str) -> str:
        """Send a test notification to the subscription (a control message:
        no other subscriber of the source receives it)."""
        record = self.record(source, subscription_id)
        payload = {
            "Message_Type": "TestNotification",
            "subscription_id": subscription_id,
            "body": {"test": True, "sent_at": int(time.time())},
        }
        # The subscription's current nonce: a control message carrying any
        # other counts as superseded and is not sent.
        return self.delivery.send_control(
            source.to_list(),
            subscription_id,
            payload,
            TEST_TTL_SECONDS,
            record.get(confirmation.NONCE_FIELD),
        )

    def rotate_secret(self, source: Source, subscription_id: str) -> tuple[str, float]:
        record = self.record(source, subscription_id)
        access = OwnerAccess(owner_of(source, record))
        return self.subscriptions.rotate_secret(access, source, subscription_id)

    def unsubscribe(self, source: Source, subscription_id: str) -> None:
        record = self.record(source, subscription_id)
        if record.get("confirmed", True):
            self.confirmations.unsubscribe(source, subscription_id)
