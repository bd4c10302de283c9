"""Unit tests of notifier.core.model: the typed values write exactly the JSON
stored and served before them (same keys, same order), and read it back."""

import json
from importlib import resources

import pytest
import yaml

from notifier.core.model import MAX_TEXT, Attempt, DeadLetter, Delivery, Outcome


def text(record):
    """The stored form: order matters (the store finds some records by text)."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


DELIVERIES = [
    {"message_id": "m1", "subscription_id": "s1", "attempt": 0},
    {"message_id": "m1", "subscription_id": "s1", "attempt": 3, "round": 1700000000123},
]

DELIVERED = {
    "at": 1700000000.25,
    "message_id": "m1",
    "subscription_id": "s1",
    "attempt": 0,
    "outcome": "delivered",
    "duration_ms": 12.34,
    "status": 200,
    "response_body": "ok",
    "source": ["p", "queues", "q"],
}
FAILED_RETRIED = {
    "at": 1700000000.25,
    "message_id": "m1",
    "subscription_id": "s1",
    "attempt": 2,
    "outcome": "failed",
    "duration_ms": 2000.0,
    "round": 1700000000123,
    "status": 503,
    "error": "http_status",
    "detail": "503 Service Unavailable",
    "response_body": "busy",
    "retry_after": 30,
    "source": ["p", "topics", "t"],
    "next_retry_at": 1700000030.25,
}
DEAD_PERMANENT = {
    "at": 1700000000.25,
    "message_id": "m1",
    "subscription_id": "s1",
    "attempt": 0,
    "outcome": "dead_lettered",
    "duration_ms": 0.5,
    "error": "invalid_subscriber",
    "detail": "no sink",
    "permanent": True,
    "source": ["p", "queues", "q"],
}
CONFIRMATION = {
    "at": 1700000000.25,
    "message_id": "ctl-abc",
    "subscription_id": "s1",
    "attempt": 1,
    "outcome": "failed",
    "duration_ms": 3.0,
    "status": 500,
    "error": "http_status",
    "source": ["p", "queues", "q"],
    "message_type": "SubscriptionConfirmation",
    "next_retry_at": 1700000010.0,
}
# A confirmation's record as its owner reads it (store.redacted_attempt).
REDACTED = {
    "at": 1700000000.25,
    "message_id": None,
    "subscription_id": "s1",
    "attempt": 1,
    "outcome": "held",
    "duration_ms": 3.0,
    "status": 500,
    "error": "http_status",
    "source": ["p", "queues", "q"],
    "message_type": "UnsubscribeConfirmation",
    "control": True,
}
SKIPPED = {
    "at": 1700000000.25,
    "message_id": "m1",
    "subscription_id": "s1",
    "attempt": 0,
    "outcome": "skipped",
    "duration_ms": 0.0,
    "error": "filter_budget",
    "detail": "over budget",
    "source": ["p", "topics", "t"],
}
EXPIRED = {
    "at": 1700000000.25,
    "message_id": "m1",
    "subscription_id": "s1",
    "attempt": 4,
    "outcome": "expired",
    "duration_ms": 0.0,
    "detail": "message TTL passed",
    "source": ["p", "queues", "q"],
}
DISABLED_EVENT = {
    "at": 1700000000.25,
    "subscription_id": "s1",
    "message_id": None,
    "outcome": "disabled",
    "detail": "the endpoint answered 410 Gone",
}
ATTEMPTS = [DELIVERED, FAILED_RETRIED, DEAD_PERMANENT, CONFIRMATION, REDACTED, SKIPPED, EXPIRED]

MESSAGE = {
    "id": "m1",
    "body": {"n": 1},
    "ttl": 300,
    "created": 1700000000.0,
    "source": ["p", "queues", "q"],
}
LETTER = {
    "message_id": "m1",
    "subscription_id": "s1",
    "project": "p",
    "attempts": 1,
    "last": DEAD_PERMANENT,
    "died_at": 1700000000.5,
    "message": MESSAGE,
    "history": [DEAD_PERMANENT],
}
CONTROL_LETTER = {
    "message_id": None,
    "subscription_id": "s1",
    "project": "p",
    "attempts": 5,
    "last": dict(REDACTED, outcome="dead_lettered"),
    "died_at": 1700000000.5,
    "control": True,
    "message_type": "SubscriptionConfirmation",
    "history": [REDACTED],
}


@pytest.mark.parametrize("record", DELIVERIES)
def test_a_delivery_reads_and_writes_its_task_argument(record):
    assert text(Delivery.from_dict(record).to_dict()) == text(record)


def test_a_retry_is_the_next_attempt_of_the_same_round():
    retry = Delivery("m", "s", 2, 7).next_attempt()
    assert retry == Delivery("m", "s", 3, 7)


@pytest.mark.parametrize("record", ATTEMPTS + [DISABLED_EVENT])
def test_an_attempt_record_reads_and_writes_the_stored_json(record):
    assert text(Attempt.from_dict(record).to_dict()) == text(record)


@pytest.mark.parametrize("record", [LETTER, CONTROL_LETTER])
def test_a_dead_letter_reads_and_writes_the_stored_json(record):
    assert text(DeadLetter.from_dict(record).to_dict()) == text(record)


def test_an_attempt_of_a_delivery_is_recorded_as_before():
    attempt = Attempt.of(
        Delivery("m1", "s1", 2, 1700000000123),
        Outcome.FAILED,
        1700000000.25,
        2.0,
        status=503,
        error="http_status",
        detail="503 Service Unavailable",
        retry_after=30,
        response_body="busy",
        source=["p", "topics", "t"],
    )
    recorded = attempt.with_outcome(Outcome.FAILED, next_retry_at=1700000030.25)
    assert text(recorded.to_dict()) == text(FAILED_RETRIED)


def test_long_texts_are_cut_and_numbers_kept():
    attempt = Attempt.of(
        Delivery("m", "s"), Outcome.FAILED, 0.0, 0.0, status=500, detail="x" * 5000
    )
    assert (attempt.status, len(attempt.detail)) == (500, MAX_TEXT)


def test_an_event_of_a_subscription_is_recorded_as_before():
    event = Attempt.event(1700000000.25, "s1", Outcome.DISABLED, "the endpoint answered 410 Gone")
    assert text(event.to_dict()) == text(DISABLED_EVENT)


def test_a_dead_letter_of_a_confirmation_is_not_replayable():
    assert DeadLetter.from_dict(LETTER).replayable
    assert not DeadLetter.from_dict(CONTROL_LETTER).replayable


def test_the_outcomes_are_those_the_api_documents():
    document = yaml.safe_load(
        resources.files("notifier.api").joinpath("openapi.yaml").read_text(encoding="utf-8")
    )
    documented = document["components"]["schemas"]["Attempt"]["properties"]["outcome"]["enum"]
    assert sorted(documented) == sorted(o.value for o in Outcome)


def test_an_outcome_is_its_json_string():
    assert json.dumps(Outcome.DEAD_LETTERED) == '"dead_lettered"'
