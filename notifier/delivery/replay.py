"""Replay and enable: send again what was dead-lettered or held."""

from typing import Any

from notifier.core.model import DeadLetter, Delivery
from notifier.delivery.admission import Admission, endpoint_key
from notifier.delivery.jobs import Dispatcher, new_round, send_deliveries
from notifier.store.storage import Storage


class Replay:
    """Release held deliveries and replay dead letters, as a new round."""

    def __init__(
        self, conf: Any, storage: Storage, dispatcher: Dispatcher, admission: Admission
    ) -> None:
        self.storage = storage
        self.dispatcher = dispatcher
        self.admission = admission
        self.per_task: int = conf.notification.deliveries_per_task

    def disable(self, record: dict[str, Any], reason: str, now: float) -> None:
        """Disable (pause) a subscription: its deliveries are held until it is enabled."""
        record.update(disabled=True, disabled_reason=reason, disabled_at=now)
        self.storage.save_subscription(record)

    def enable(self, record: dict[str, Any]) -> int:
        """Enable a disabled subscription and send what was held for it;
        return how many deliveries were released."""
        record.pop("disabled", None)
        record.pop("disabled_reason", None)
        record.pop("disabled_at", None)
        self.storage.save_subscription(record)
        endpoint = endpoint_key(record)  # this project's state there, no one else's
        if endpoint:
            self.admission.state.reset(endpoint)
        round_ = new_round()
        held = [
            Delivery(d["message_id"], d["subscription_id"], 0, round_)
            for d in self.admission.state.take_held(record["id"])
        ]
        send_deliveries(self.dispatcher, held, self.per_task)
        return len(held)

    def replay(
        self,
        subscription_id: str,
        message_id: str | None = None,
        since: float = 0,
        limit: int = 1000,
    ) -> int:
        """Send dead-lettered deliveries of a subscription again; return how many.

        One message's (``message_id``) or all that died at or after ``since``.
        A message whose TTL has passed is stored again from the dead letter's
        copy, with its original TTL.
        """
        stored: list[dict[str, Any]] = self.storage.dead_letters(
            subscription_id, since=since, limit=limit
        )
        # The stored dicts are kept to remove them: the store finds them by their text.
        chosen = [
            (raw, letter)
            for raw, letter in ((raw, DeadLetter.from_dict(raw)) for raw in stored)
            if letter.message is not None  # a confirmation's letter has none: not replayed
            and letter.message_id is not None
            and (message_id is None or letter.message_id == message_id)
        ]
        for _, letter in chosen:
            self.storage.restore_message(dict(letter.message or {}))
        round_ = new_round()
        deliveries = [
            Delivery(letter.message_id, subscription_id, 0, round_)
            for _, letter in chosen
            if letter.message_id is not None
        ]
        send_deliveries(self.dispatcher, deliveries, self.per_task)
        self.storage.remove_dead_letters(subscription_id, [raw for raw, _ in chosen])
        return len(chosen)
