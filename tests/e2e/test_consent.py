"""End to end: nobody but the subscriber confirms a subscription (issue 16).

The project owner is the attacker here: it subscribes an endpoint that never
agreed (the receiver, which records what it gets and never confirms) and
looks for the confirmation link through every route it may use — attempt
logs, messages, dead letters — or replays a link it received for a URL of
its own after pointing the subscription at the victim. The fleet runs as in
production: API, worker and scheduler processes, ``require_confirmation``
and a signing key.
"""

import time

import pytest
import requests

from tests.e2e.conftest import Fleet
from tests.e2e.test_confirmation import (
    CONFIRMING,
    answer,
    confirmation_of,
    confirmed_sentinel,
    notifications,
    subscribe,
)
from tests.e2e.test_pipeline import headers, post

RATE = 3
ZERO_RETRIES = {
    "retries_with_no_delay": 0,
    "minimum_delay_retries": 0,
    "backoff_retries": 0,
    "maximum_delay_retries": 0,
}


@pytest.fixture(scope="module")
def fleet(redis_server, tmp_path_factory):
    extra = CONFIRMING + f"[notification]\nconfirmations_per_subscriber = {RATE}\n"
    running = Fleet(tmp_path_factory.mktemp("consent-fleet"), redis_server.url, extra)
    running.start("api", "worker", "scheduler")
    yield running
    running.stop()


def api(fleet, project, path, method="GET", **kwargs):
    return requests.request(method, fleet.url + path, headers=headers(project), timeout=5, **kwargs)


def wait_until(check, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def secrets_of(confirmation):
    """What would let the owner confirm: the signature and the signed path."""
    payload = confirmation.json()
    return [payload["URL-Signature"], payload["URL-Paths"]]


def is_confirmed(fleet, project, queue, subscription_id):
    path = f"/queues/{queue}/subscriptions/{subscription_id}"
    return api(fleet, project, path).json()["confirmed"]


def test_the_owner_finds_no_link_in_attempt_logs_or_messages(fleet, receiver, project):
    # The endpoint echoes what it gets: its reply is the confirmation itself.
    receiver.echo("/victim")
    subscription_id = subscribe(fleet, project, "probe", receiver.url + "/victim")[
        "subscription_id"
    ]
    request = confirmation_of(receiver, "/victim")
    path = f"/queues/probe/subscriptions/{subscription_id}/attempts"
    attempts = wait_until(lambda: api(fleet, project, path).json()["attempts"])
    response = api(fleet, project, path)
    assert [a["outcome"] for a in attempts] == ["delivered"]
    [attempt] = response.json()["attempts"]
    assert attempt["message_id"] is None and attempt["control"] is True
    assert attempt["message_type"] == "SubscriptionConfirmation"
    assert "response_body" not in attempt  # the echo held the link
    for secret in secrets_of(request):
        assert secret not in response.text

    # Even knowing the control message's id (the subscriber sees it in its
    # webhook-id), the message routes cannot read it.
    control_id = request.headers["webhook-id"].split("_")[1]
    assert control_id.startswith("ctl-")
    for route in (
        f"/queues/probe/messages/{control_id}",
        f"/queues/probe/messages/{control_id}/attempts",
    ):
        found = api(fleet, project, route)
        assert found.status_code == 404, found.text
        assert found.json()["title"] == "Not found"
        for secret in secrets_of(request):
            assert secret not in found.text
    # Listing, get-by-ids and claims (Zaqar's consumer side) never hand it out.
    listed = api(fleet, project, "/queues/probe/messages?include_claimed=true")
    assert listed.status_code in (200, 204), listed.text
    by_id = api(fleet, project, f"/queues/probe/messages?ids={control_id}")
    assert by_id.status_code in (200, 204, 404), by_id.text
    claimed = api(fleet, project, "/queues/probe/claims", "POST", json={"ttl": 60, "grace": 60})
    assert claimed.status_code in (201, 204), claimed.text
    for response in (listed, by_id, claimed):
        assert control_id not in response.text
        for secret in secrets_of(request):
            assert secret not in response.text
    assert is_confirmed(fleet, project, "probe", subscription_id) is False


def test_a_dead_lettered_confirmation_carries_no_link_and_is_not_replayed(fleet, receiver, project):
    receiver.script("/refuses", [400])  # permanent: dead-lettered at once
    subscription_id = subscribe(
        fleet, project, "letters", receiver.url + "/refuses", _retry_policy=ZERO_RETRIES
    )["subscription_id"]
    request = confirmation_of(receiver, "/refuses")
    path = f"/queues/letters/subscriptions/{subscription_id}/dead-letters"
    letters = wait_until(lambda: api(fleet, project, path).json()["dead_letters"])
    response = api(fleet, project, path)
    [letter] = letters
    assert letter["message_id"] is None and letter["control"] is True
    assert letter["message_type"] == "SubscriptionConfirmation"
    assert "message" not in letter
    assert letter["last"]["status"] == 400 and letter["last"]["message_id"] is None
    assert [h["outcome"] for h in letter["history"]] == ["dead_lettered"]
    assert all(h["message_id"] is None for h in letter["history"])
    for secret in secrets_of(request):
        assert secret not in response.text
    assert "URL-Signature" not in response.text

    replay = api(
        fleet,
        project,
        f"/queues/letters/subscriptions/{subscription_id}/replay",
        "POST",
        json={"since": 0},
    )
    assert replay.status_code == 202 and replay.json() == {"replayed": 0}
    assert len(api(fleet, project, path).json()["dead_letters"]) == 1


def test_a_confirmation_is_retried_by_the_service_not_the_subscriptions_policy(
    fleet, receiver, project
):
    receiver.script("/flaky", [503, 200])
    subscribe(fleet, project, "retry", receiver.url + "/flaky", _retry_policy=ZERO_RETRIES)
    arrived = receiver.wait_for(2, "/flaky", timeout=30)
    assert [r.json()["Message_Type"] for r in arrived] == ["SubscriptionConfirmation"] * 2
    assert len({r.headers["webhook-id"] for r in arrived}) == 1  # one delivery, retried
    assert answer(arrived[-1]).status_code == 204


def test_an_old_link_does_not_confirm_the_subscriber_it_was_pointed_at_since(
    fleet, receiver, project
):
    confirmed_sentinel(fleet, receiver, project, "moved")
    subscription_id = subscribe(fleet, project, "moved", receiver.url + "/mine")["subscription_id"]
    mine = confirmation_of(receiver, "/mine")
    assert answer(mine).status_code == 204  # the owner's own URL: fine
    item = f"/queues/moved/subscriptions/{subscription_id}"
    patched = api(fleet, project, item, "PATCH", json={"subscriber": receiver.url + "/victim"})
    assert patched.status_code == 204, patched.text
    victims = confirmation_of(receiver, "/victim")

    replayed = answer(mine)
    assert replayed.status_code == 403, replayed.text
    assert replayed.json()["title"] == "Forbidden"
    assert "no longer valid" in replayed.json()["description"]
    assert is_confirmed(fleet, project, "moved", subscription_id) is False
    post(fleet, project, "moved", [{"ttl": 300, "body": "not for you"}])
    assert len(receiver.wait_for(2, "/sentinel", timeout=30)) == 2  # fan-out ran
    time.sleep(0.5)
    assert notifications(receiver, "/victim") == []

    # Only the victim's own link confirms it.
    assert answer(victims).status_code == 204
    assert is_confirmed(fleet, project, "moved", subscription_id) is True


def test_post_data_and_post_headers_shape_notifications_never_confirmations(
    fleet, receiver, project
):
    confirmed_sentinel(fleet, receiver, project, "shaped")
    subscribe(
        fleet,
        project,
        "shaped",
        receiver.url + "/shaped",
        post_data='{"wrapped": "$zaqar_message$", "click": "https://evil.example"}',
        post_headers={"X-Shaped": "yes"},
    )
    [request] = receiver.wait_for(1, "/shaped", timeout=30)
    payload = request.json()
    assert payload["Message_Type"] == "SubscriptionConfirmation"
    assert "wrapped" not in payload and "click" not in payload
    assert "x-shaped" not in {name.lower() for name in request.headers}
    assert answer(request).status_code == 204

    post(fleet, project, "shaped", [{"ttl": 300, "body": "shaped"}])
    [notification] = receiver.wait_for(2, "/shaped", timeout=30)[1:]
    assert notification.json()["wrapped"]["body"] == "shaped"
    assert notification.headers["X-Shaped"] == "yes"


def test_one_project_gets_a_bounded_number_of_confirmations_per_endpoint(fleet, receiver, project):
    popular = receiver.url + "/popular"
    # One endpoint (scheme and host): every path on it shares the budget.
    elsewhere = subscribe(fleet, project, "r5", receiver.url + "/elsewhere")["subscription_id"]
    for queue in ("r1", "r2"):
        subscribe(fleet, project, queue, popular)
    refused = api(fleet, project, "/queues/r4/subscriptions", "POST", json={"subscriber": popular})
    assert refused.status_code == 429, refused.text
    assert refused.json()["field"] == "subscriber"
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    sideways = api(
        fleet, project, "/queues/r6/subscriptions", "POST", json={"subscriber": popular + "/x?y=1"}
    )
    assert sideways.status_code == 429, sideways.text
    # Repointing a subscription there is refused too, and changes nothing.
    item = f"/queues/r5/subscriptions/{elsewhere}"
    moved = api(fleet, project, item, "PATCH", json={"subscriber": popular})
    assert moved.status_code == 429
    assert api(fleet, project, item).json()["subscriber"] == receiver.url + "/elsewhere"
    listed = api(fleet, project, "/queues/r4/subscriptions").json()["subscriptions"]
    assert listed == []  # nothing stored for the refused POST
    # Per project: another tenant's budget is its own.
    other = api(fleet, "p-other", "/queues/r1/subscriptions", "POST", json={"subscriber": popular})
    assert other.status_code == 201, other.text

    # RATE - 1 from this project, 1 from the other, and no more.
    assert len(receiver.wait_for(RATE, "/popular", timeout=30)) == RATE
    assert len(receiver.wait_for(RATE + 1, "/popular", timeout=1)) == RATE
