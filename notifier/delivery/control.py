"""Control messages: the service's own messages (subscription confirmations),
sent to one subscription and retried by the service's default policy."""

from collections.abc import Mapping, Sequence
from typing import Any

from notifier.core import confirmation
from notifier.core.model import Delivery
from notifier.delivery.jobs import Dispatcher, send_deliveries
from notifier.store.storage import Source, Storage

#: The detail of a ``superseded`` attempt.
SUPERSEDED = "a newer confirmation was sent, or the subscriber changed"


def superseded(message: Mapping[str, Any] | None, subscription: Mapping[str, Any]) -> bool:
    """Return whether ``message`` is a confirmation whose link no longer
    confirms ``subscription``: it is then not sent."""
    return bool(
        message is not None
        and message.get("control")
        and not confirmation.link_is_current(subscription, message.get("nonce"))
    )


class Control:
    """Send control messages."""

    def __init__(self, storage: Storage, dispatcher: Dispatcher) -> None:
        self.storage = storage
        self.dispatcher = dispatcher

    def send_control(
        self,
        source: Sequence[str],
        subscription_id: str,
        payload: Mapping[str, Any],
        ttl: int,
        nonce: str | None = None,
    ) -> str:
        """Send a message of the service's own (a confirmation request with
        ``nonce``) to one subscription, as a delivery retried by the
        service's default policy; return its id."""
        message_id: str = self.storage.post_control_message(
            Source(*source), dict(payload), ttl, nonce=nonce
        )
        send_deliveries(self.dispatcher, [Delivery(message_id, subscription_id)], 1)
        return message_id
