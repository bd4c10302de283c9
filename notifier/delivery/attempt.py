"""One attempt: hand a job to its sink and record what happened."""

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from notifier import errors
from notifier.core import payloads
from notifier.core.model import Attempt, Outcome
from notifier.delivery.jobs import Job
from notifier.sinks import Notification, SinkRegistry
from notifier.store.storage import Source


class Payloads:
    """A batch's notification payloads, each built and rendered once per
    message rather than once per subscriber (a fan-out sends one message to
    many). Shared by the batch's endpoint threads: a lost race builds the
    same payload twice, nothing worse."""

    def __init__(self) -> None:
        self._by_message: dict[str, tuple[dict[str, Any], bytes]] = {}

    def of(self, message: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        built = self._by_message.get(message["id"])
        if built is None:
            source = Source(*message["source"])
            payload = payloads.notification_payload(message, source.kind, source.name)
            built = (payload, payloads.render_webhook_body(payload))
            self._by_message[message["id"]] = built
        return built


def run_attempt(
    sinks: SinkRegistry,
    job: Job,
    clock: Callable[[], float],
    built: Payloads | None = None,
) -> Attempt:
    """Deliver one job; return its attempt record (a sink's errors become a
    failed attempt, permanent or not). ``built``: the batch's payloads."""
    message = job.message
    if not message.get("control"):
        payload, rendered = (built or Payloads()).of(message)
        return _call_sink(sinks, job, payload, clock, rendered)
    attempt = _call_sink(sinks, job, message["payload"], clock)
    return dataclasses.replace(attempt, message_type=message["payload"].get("Message_Type"))


def _call_sink(
    sinks: SinkRegistry,
    job: Job,
    payload: dict[str, Any],
    clock: Callable[[], float],
    rendered: bytes | None = None,
) -> Attempt:
    delivery, message, subscription = job
    source = message.get("source")  # whose attempts these are (the API checks)
    notification = Notification(
        delivery_id=payloads.delivery_id(message["id"], subscription["id"]),
        subscription=subscription,
        message=message,
        payload=payload,
        attempt=delivery.attempt,
        rendered=rendered,
    )
    started = time.perf_counter()
    try:
        sink = sinks.for_subscriber(subscription["subscriber"])
        report = sink.deliver(notification)
    except errors.DeliveryError as exc:
        return Attempt.of(
            delivery,
            Outcome.FAILED,
            clock(),
            time.perf_counter() - started,
            status=exc.status,
            error=exc.kind,
            detail=str(exc),
            permanent=not exc.retryable,
            retry_after=exc.retry_after_seconds,
            response_body=exc.response_body,
            source=source,
        )
    except errors.ValidationError as exc:  # scheme no longer served
        return Attempt.of(
            delivery,
            Outcome.FAILED,
            clock(),
            time.perf_counter() - started,
            error="invalid_subscriber",
            detail=str(exc),
            permanent=True,
            source=source,
        )
    return Attempt.of(
        delivery,
        Outcome.DELIVERED,
        clock(),
        time.perf_counter() - started,
        status=report.status,
        response_body=report.response_body,
        source=source,
    )
