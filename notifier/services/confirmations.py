"""Subscription confirmation: who must confirm, sending the confirmation
messages, and confirming (or unsubscribing) through a confirmation link.

A confirmation message goes through the workers like any delivery
(``DeliveryService.send_control``); its link carries a nonce, and only the
subscription's current nonce confirms: each new confirmation, and each
change of subscriber, makes every earlier link stale.
"""

import datetime
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, Protocol

from notifier import errors
from notifier.core import confirmation, emails, links, schemes
from notifier.services.access import Access, Record, visible_record
from notifier.sinks import scheme_of, sink_class
from notifier.store.storage import Source, Storage

LOG = logging.getLogger(__name__)


class ControlSender(Protocol):
    """What sends a control message (the delivery service)."""

    def send_control(
        self,
        source: Source,
        subscription_id: str,
        payload: dict[str, Any],
        ttl: int,
        nonce: str | None = None,
    ) -> Any: ...


class ConfirmationDriver(Protocol):
    """Judges a confirm request's ``extra_spec`` (``notifier.api.confirm_drivers``)."""

    def confirm(self, subscription: Record, confirmed: bool, extra_spec: Any) -> None: ...


def confirms_itself(subscriber: str) -> bool:
    """Return whether ``subscriber``'s sink takes confirmation messages."""
    scheme = scheme_of(subscriber)
    try:
        cls = sink_class(scheme)
    except errors.ValidationError:  # a scheme no longer served
        return False
    return bool(confirmation.requires_confirmation(scheme, cls))


def check_confirmable(subscriber: str, options: dict[str, Any] | None) -> None:
    """Refuse what one confirmation cannot vouch for: an e-mail subscription
    with several recipients (each address must confirm for itself)."""
    if schemes.kind(scheme_of(subscriber)) != "email":
        return
    target = emails.email_target(subscriber, options or {})
    if len(set(target.to + target.cc + target.bcc)) > 1:
        raise errors.ValidationError(
            "With subscription confirmation required, an e-mail subscription has "
            "exactly one recipient (no cc or bcc): each address confirms for "
            "itself. Subscribe each address separately.",
            field="subscriber",
        )


def new_nonce() -> str:
    return secrets.token_hex(16)


def check_current(record: Record, nonce: str | None) -> None:
    """Raise ForbiddenError unless ``nonce`` is the subscription's current one."""
    if not confirmation.link_is_current(record, nonce):
        raise errors.ForbiddenError(
            "This confirmation link is no longer valid: a newer confirmation was "
            "sent to this subscription, or its subscriber changed. Use the link "
            "of the latest confirmation message."
        )


class ConfirmationService:
    """Sends confirmation messages and applies confirm requests."""

    def __init__(
        self, conf: Any, storage: Storage, sender: ControlSender, driver: ConfirmationDriver
    ) -> None:
        self.conf = conf
        self.storage = storage
        self.sender = sender
        self.driver = driver

    def needed(self, subscriber: str) -> bool:
        """Return whether a new subscription to ``subscriber`` starts unconfirmed."""
        return bool(self.conf.notification.require_confirmation) and confirms_itself(subscriber)

    def check_rate(self, project: str, subscriber: str) -> None:
        """Count a confirmation from ``project`` to ``subscriber``'s endpoint;
        raise RateLimitedError (429) past ``[notification]
        confirmations_per_subscriber`` in the window."""
        limit = self.conf.notification.confirmations_per_subscriber
        if not limit:
            return
        window = self.conf.notification.confirmation_rate_window_seconds
        subject = confirmation.rate_subject(project, subscriber)
        count, left = self.storage.count_confirmation(subject, window)
        if count > limit:
            raise errors.RateLimitedError(
                f"This subscriber was sent {limit} confirmation messages in the last "
                f"{window} seconds, the most it may be sent; try again in {left} seconds.",
                field="subscriber",
                retry_after=left,
            )

    def send(
        self,
        record: Record,
        message_type: str = confirmation.SUBSCRIPTION,
        now: float | None = None,
    ) -> Any:
        """Send a subscription a new (un)subscribe confirmation through the workers.

        Its nonce becomes the subscription's (atomically, on the subscriber
        stored now): every earlier link of the subscription stops confirming.
        """
        now = time.time() if now is None else now
        conf = self.conf
        ttl = conf.signed_url.confirmation_url_ttl_seconds
        source = Source(*record["source"])
        nonce = new_nonce()
        # The portal link is bound to the subscriber stored with this nonce.
        record = self.storage.update_subscription(
            source, record["id"], lambda stored: dict(stored, **{confirmation.NONCE_FIELD: nonce})
        )
        payload = confirmation.confirmation_payload(
            message_type,
            key=conf.signed_url.secret_key,
            source=tuple(record["source"]),
            subscription_id=record["id"],
            api_url=confirmation.base_url(conf),
            page=confirmation.page_url(conf),
            now=now,
            ttl_seconds=ttl,
            nonce=nonce,
            portal_url=self.portal_url(record, message_type, now),
        )
        return self.sender.send_control(source, record["id"], payload, ttl, nonce)

    def portal_url(self, record: Record, message_type: str, now: float) -> str | None:
        """Return the portal link a SubscriptionConfirmation carries
        (``[confirmation] include_portal_link``), else None.

        Minted for this subscription alone, as the API's portal route mints
        it; it lives only in the control message (never readable through
        the message, attempt or dead-letter APIs) and what is sent.
        """
        conf = self.conf
        key = conf.signed_url.secret_key
        if message_type != confirmation.SUBSCRIPTION or not key:
            return None
        if not conf.confirmation.include_portal_link:
            return None
        return links.portal_url(
            key,
            confirmation.base_url(conf),
            tuple(record["source"]),
            record["id"],
            record["subscriber"],
            int(conf.confirmation.portal_link_ttl_seconds),
            datetime.datetime.fromtimestamp(now, datetime.UTC),
        )

    def confirm(
        self,
        access: Access,
        source: Source,
        subscription_id: str,
        nonce: str | None,
        confirmed: bool,
        extra_spec: Any,
    ) -> None:
        """Confirm (``confirmed``) or unsubscribe a subscription through the
        link of its current confirmation message (``nonce``)."""
        record = visible_record(self.storage, access, source, subscription_id)
        check_current(record, nonce)
        self.driver.confirm(record, confirmed, extra_spec)
        if confirmed == bool(record.get("confirmed", True)):
            return

        def change(stored: Record) -> Record:
            # Checked again on the record written: a PATCH in between made
            # this link stale.
            check_current(stored, nonce)
            return dict(stored, confirmed=confirmed)

        self._set_confirmed(source, subscription_id, confirmed, change)

    def unsubscribe(self, source: Source, subscription_id: str) -> None:
        """Unsubscribe a subscription as its unsubscribe confirmation does
        (the portal's button: the link it was given is the proof)."""
        self._set_confirmed(
            source, subscription_id, False, lambda stored: dict(stored, confirmed=False)
        )

    def _set_confirmed(
        self,
        source: Source,
        subscription_id: str,
        confirmed: bool,
        change: Callable[[Record], Record],
    ) -> None:
        record = self.storage.update_subscription(source, subscription_id, change)
        LOG.info(
            "subscription %s",
            "confirmed" if confirmed else "unsubscribed",
            extra={"subscription_id": subscription_id},
        )
        # Only on a change: a receiver answering every
        # UnsubscribeConfirmation with another "false" cannot loop.
        if not confirmed and confirms_itself(record["subscriber"]):
            self._send_goodbye(record)

    def _send_goodbye(self, record: Record) -> None:
        try:
            self.check_rate(record["source"][0], record["subscriber"])
        except errors.RateLimitedError:
            # The unsubscribe stands; only its confirmation is not sent.
            LOG.warning(
                "unsubscribe confirmation not sent: subscriber over its confirmation rate",
                extra={"subscription_id": record["id"]},
            )
            return
        self.send(record, confirmation.UNSUBSCRIBE)
