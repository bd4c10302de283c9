"""End to end: the webhook confirmation flow against the fleet (API, worker and
scheduler processes) with ``require_confirmation = true``.

The receiver confirms as a subscriber would: from the SubscriptionConfirmation
POST alone, it PUTs ``SubscribeBody`` to ``SubscribeURL`` with the signed
fields as headers.
"""

import time

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from tests.e2e.conftest import Fleet
from tests.e2e.test_pipeline import headers, post

SIGNED = ("URL-Signature", "URL-Expires", "URL-Methods", "URL-Paths", "X-Project-ID")
CONFIRMING = (
    "[notification]\nrequire_confirmation = true\n[signed_url]\nsecret_key = e2e-confirmation-key\n"
)


@pytest.fixture(scope="module")
def confirming_fleet(redis_server, tmp_path_factory):
    running = Fleet(tmp_path_factory.mktemp("confirm-fleet"), redis_server.url, CONFIRMING)
    running.start("api", "worker", "scheduler")
    yield running
    running.stop()


def subscribe(fleet, project, queue, subscriber, **options):
    response = requests.post(
        f"{fleet.url}/queues/{queue}/subscriptions",
        json={"subscriber": subscriber, "ttl": 3600, "options": options},
        headers=headers(project),
        timeout=5,
    )
    assert response.status_code == 201, response.text
    return response.json()


def confirmation_of(receiver, path, message_type="SubscriptionConfirmation", count=1):
    arrived = [
        r
        for r in receiver.wait_for(count, path, timeout=30)
        if r.json().get("Message_Type") == message_type
    ]
    assert arrived, f"no {message_type} reached {path}"
    return arrived[-1]


def answer(request, body_field="SubscribeBody"):
    """What a subscriber does with a confirmation request: PUT its body to its URL."""
    payload = request.json()
    return requests.put(
        payload["SubscribeURL"],
        json=payload[body_field],
        headers={name: payload[name] for name in SIGNED},
        timeout=5,
    )


def notifications(receiver, path):
    return [
        r.json()["body"]
        for r in receiver.received(path)
        if r.json().get("Message_Type") == "Notification"
    ]


def wait_for_body(receiver, path, body, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if body in notifications(receiver, path):
            return True
        time.sleep(0.1)
    return False


def confirmed_sentinel(fleet, receiver, project, queue):
    """A confirmed subscriber of ``queue``: when it has a message, the
    message's fan-out has run for every subscriber of the queue."""
    subscribe(fleet, project, queue, receiver.url + "/sentinel")
    assert answer(confirmation_of(receiver, "/sentinel")).status_code == 204


def test_a_webhook_receives_nothing_until_it_confirms_then_everything(
    confirming_fleet, receiver, project
):
    fleet = confirming_fleet
    confirmed_sentinel(fleet, receiver, project, "orders")
    created = subscribe(fleet, project, "orders", receiver.url + "/hook")
    request = confirmation_of(receiver, "/hook")
    # Signed like every delivery: the receiver can tell it came from us.
    payload = Webhook(created["secret"]).verify(request.body, request.headers)
    assert payload["subscription_id"] == created["subscription_id"]
    assert payload["SubscribeURL"] == f"{fleet.url[:-3]}{payload['URL-Paths']}"
    assert payload["X-Project-ID"] == project and payload["queue_name"] == "orders"

    post(fleet, project, "orders", [{"ttl": 300, "body": {"n": 1}}])
    assert wait_for_body(receiver, "/sentinel", {"n": 1})
    assert notifications(receiver, "/hook") == []

    assert answer(request).status_code == 204
    post(fleet, project, "orders", [{"ttl": 300, "body": {"n": 2}}])
    assert wait_for_body(receiver, "/hook", {"n": 2})
    assert notifications(receiver, "/hook") == [{"n": 2}]
    view = requests.get(
        f"{fleet.url}/queues/orders/subscriptions/{created['subscription_id']}",
        headers=headers(project),
        timeout=5,
    ).json()
    assert view["confirmed"] is True


def test_unsubscribing_sends_an_unsubscribe_confirmation_and_stops_notifications(
    confirming_fleet, receiver, project
):
    fleet = confirming_fleet
    confirmed_sentinel(fleet, receiver, project, "news")
    subscribe(fleet, project, "news", receiver.url + "/reader")
    request = confirmation_of(receiver, "/reader")
    assert answer(request).status_code == 204
    post(fleet, project, "news", [{"ttl": 300, "body": "first"}])
    assert wait_for_body(receiver, "/reader", "first")

    assert answer(request, "UnsubscribeBody").status_code == 204
    goodbye = confirmation_of(receiver, "/reader", "UnsubscribeConfirmation", count=3)
    assert "resubscribe" in goodbye.json()["Message"]
    post(fleet, project, "news", [{"ttl": 300, "body": "second"}])
    assert wait_for_body(receiver, "/sentinel", "second")
    time.sleep(0.5)
    assert notifications(receiver, "/reader") == ["first"]

    # The UnsubscribeConfirmation's own URL subscribes again.
    assert answer(goodbye).status_code == 204
    post(fleet, project, "news", [{"ttl": 300, "body": "third"}])
    assert wait_for_body(receiver, "/reader", "third")


def test_a_confirmation_that_fails_first_is_retried(confirming_fleet, receiver, project):
    receiver.script("/flaky", [503, 500, 200])
    # Retried by the service's [retry] defaults (three at once, here), not
    # by a policy of the subscription's (test_consent.py).
    created = subscribe(confirming_fleet, project, "jobs", receiver.url + "/flaky")
    arrived = receiver.wait_for(3, "/flaky", timeout=30)
    assert len(arrived) == 3
    assert {r.json()["Message_Type"] for r in arrived} == {"SubscriptionConfirmation"}
    assert len({r.headers["webhook-id"] for r in arrived}) == 1  # one delivery, retried
    url = f"{confirming_fleet.url}/queues/jobs/subscriptions/{created['subscription_id']}/attempts"
    deadline = time.monotonic() + 10
    while True:  # the worker records the attempt just after the POST returns
        attempts = requests.get(url, headers=headers(project), timeout=5).json()
        outcomes = [a["outcome"] for a in attempts["attempts"]]
        if outcomes[:1] == ["delivered"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert outcomes == ["delivered", "failed", "failed"]
    assert answer(arrived[-1]).status_code == 204


def test_a_lost_confirmation_is_sent_again_by_subscribing_again(
    confirming_fleet, receiver, project
):
    first = subscribe(confirming_fleet, project, "again", receiver.url + "/again")
    receiver.wait_for(1, "/again", timeout=30)
    second = subscribe(confirming_fleet, project, "again", receiver.url + "/again")
    assert second == {"subscription_id": first["subscription_id"]}
    arrived = receiver.wait_for(2, "/again", timeout=30)
    assert len(arrived) == 2
    # The new confirmation supersedes the first: only its link confirms.
    assert answer(arrived[0]).status_code == 403
    assert answer(arrived[1]).status_code == 204
    response = requests.post(
        f"{confirming_fleet.url}/queues/again/subscriptions",
        json={"subscriber": receiver.url + "/again"},
        headers=headers(project),
        timeout=5,
    )
    assert response.status_code == 409
